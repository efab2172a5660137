// Integration-test harness: psql and pgbench as subprocesses.
#pragma once

#include <string>
#include <vector>

#include "tests/integration/harness/libpq_client.h"
#include "tests/integration/harness/processes.h"

namespace pgtandem::it {

// ---------------------------------------------------------------------------------------------
// Client tools as subprocesses

ProcessResult run_psql(const Endpoint& ep, const std::vector<std::string>& args,
                       milliseconds timeout = milliseconds(60000),
                       const std::string& dbname = "postgres",
                       const std::string& user = "postgres");

struct PgbenchSummary {
  bool parsed = false;
  long processed = -1;  // "number of transactions actually processed"
  long failed = -1;     // "number of failed transactions" (pgbench 15)
  double tps = 0;
};
PgbenchSummary parse_pgbench(const std::string& out);
ProcessResult run_pgbench(const Endpoint& ep, const std::vector<std::string>& args,
                          const std::string& dbname, milliseconds timeout = milliseconds(120000));

}  // namespace pgtandem::it

#include "tests/integration/harness/client_tools.h"

#include <cstdlib>
#include <sstream>
#include <string>

#include "tests/integration/harness/internal.h"

namespace pgtandem::it {

// ---------------------------------------------------------------------------------------------
// psql and pgbench

ProcessResult run_psql(const Endpoint& ep, const std::vector<std::string>& args,
                       milliseconds timeout, const std::string& dbname, const std::string& user) {
  std::vector<std::string> argv = {"psql", "-X",    "-v", "ON_ERROR_STOP=1",
                                   "-h",   ep.host, "-p", std::to_string(ep.port),
                                   "-U",   user,    "-d", dbname};
  argv.insert(argv.end(), args.begin(), args.end());
  RunOptions ro;
  ro.timeout = timeout;
  ro.env = {"PGCONNECT_TIMEOUT=10", "LC_ALL=C", "PGAPPNAME=pgtandem-it-psql"};
  return run_process(argv, ro);
}

PgbenchSummary parse_pgbench(const std::string& out) {
  PgbenchSummary s;
  std::istringstream in(out);
  std::string line;
  bool have_processed = false, have_failed = false;
  while (std::getline(in, line)) {
    auto value_after = [&](const std::string& key) -> const char* {
      if (line.rfind(key, 0) != 0) return nullptr;
      return line.c_str() + key.size();
    };
    if (const char* v = value_after("number of transactions actually processed:")) {
      s.processed = std::strtol(v, nullptr, 10);
      have_processed = true;
    } else if (const char* v2 = value_after("number of failed transactions:")) {
      s.failed = std::strtol(v2, nullptr, 10);
      have_failed = true;
    } else if (const char* v3 = value_after("tps = ")) {
      s.tps = std::strtod(v3, nullptr);
    }
  }
  s.parsed = have_processed && have_failed;
  return s;
}

ProcessResult run_pgbench(const Endpoint& ep, const std::vector<std::string>& args,
                          const std::string& dbname, milliseconds timeout) {
  std::vector<std::string> argv = {pg_tool("pgbench"),      "-h", ep.host,   "-p",
                                   std::to_string(ep.port), "-U", "postgres"};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back(dbname);
  RunOptions ro;
  ro.timeout = timeout;
  ro.env = {"PGCONNECT_TIMEOUT=10", "LC_ALL=C"};
  return run_process(argv, ro);
}

}  // namespace pgtandem::it

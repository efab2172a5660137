// GoogleTest fixtures shared by the integration tests.
//
// Most tests are value-parameterized on `Via`: the same test runs against PostgreSQL directly
// (proving the test itself is right) and through the shared pgtandem. Tests that compare pgtandem
// with the server run the scenario on both and compare; under `direct` they compare the server
// with itself, which checks that the scenario is deterministic.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <utility>
#include <vector>

#include "tests/integration/harness/harness.h"

namespace pgtandem::it {

enum class Via { kDirect, kProxy };

inline std::string via_name(const ::testing::TestParamInfo<Via>& info) {
  return info.param == Via::kDirect ? "direct" : "pgtandem";
}

// The pgbench tables of `db` on `c` in a few values: each table's balance sum and ordered md5, and
// the history's row count (as (what, value) pairs, comparable between two clusters).
inline std::vector<std::pair<std::string, std::string>> pgbench_state(const PgCluster& c,
                                                                      const std::string& db) {
  std::vector<std::pair<std::string, std::string>> r;
  const std::vector<std::pair<std::string, std::string>> tables = {
      {"pgbench_accounts", "aid"}, {"pgbench_tellers", "tid"}, {"pgbench_branches", "bid"}};
  for (const auto& [table, key] : tables) {
    std::string bal = table == "pgbench_accounts"  ? "abalance"
                      : table == "pgbench_tellers" ? "tbalance"
                                                   : "bbalance";
    r.emplace_back(table + " sum",
                   c.query_value("SELECT coalesce(sum(" + bal + "), 0) FROM " + table, db));
    r.emplace_back(table + " md5", c.query_value("SELECT md5(string_agg(t::text, ',' ORDER BY " +
                                                     key + ")) FROM " + table + " t",
                                                 db));
  }
  r.emplace_back("pgbench_history count", c.query_value("SELECT count(*) FROM pgbench_history", db));
  return r;
}

// Base for tests that need the clusters; dumps log tails when a test failed.
class ClusterTest : public ::testing::Test {
 protected:
  PgCluster& old_cluster() { return Env::get().old_cluster(); }
  PgCluster& new_cluster() { return Env::get().new_cluster(); }
  Endpoint direct() { return old_cluster().endpoint(); }
  // A name unique in this run, for tables, channels and databases.
  std::string unique(const std::string& base);
  // Make sure a server that a previous test stopped or crashed is back.
  void SetUp() override;
  void TearDown() override;
  void dump_proxy_log(ProxyProcess& p, const char* label);
};

class ViaTest : public ClusterTest, public ::testing::WithParamInterface<Via> {
 protected:
  void SetUp() override;
  void TearDown() override;
  bool via_proxy() const { return GetParam() == Via::kProxy; }
  const Endpoint& ep() const { return ep_; }
  std::string suffix() const { return via_proxy() ? "pgtandem" : "direct"; }
  std::string unique(const std::string& base) { return ClusterTest::unique(base + "_" + suffix()); }

 private:
  Endpoint ep_;
};

#define PGTANDEM_INSTANTIATE_VIA(suite)                                                         \
  INSTANTIATE_TEST_SUITE_P(                                                                     \
      Via, suite, ::testing::Values(::pgtandem::it::Via::kDirect, ::pgtandem::it::Via::kProxy), \
      ::pgtandem::it::via_name)

// Tests of pgtandem itself (limits, admin, Unix socket, CLI): each starts the proxies it needs.
class ProxyTest : public ClusterTest {
 protected:
  // A dedicated pgtandem with these options (old/new ports filled in); throws if it cannot start.
  ProxyProcess& start_proxy(ProxyOptions options);
  ProxyProcess& start_proxy() { return start_proxy(Env::get().default_proxy_options()); }
  void TearDown() override;
  // A test that stopped `new` (an outage) and failed before starting it again must not leave it
  // stopped for the next test: start it (a failure of its own if it cannot).
  void restart_new_if_stopped();
  // Drops these databases on both clusters (WITH FORCE; a cluster that is down is skipped).
  static void drop_databases(const std::vector<std::string>& dbs);

 private:
  std::vector<std::unique_ptr<ProxyProcess>> proxies_;
};

}  // namespace pgtandem::it

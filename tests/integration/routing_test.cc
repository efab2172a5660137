// Read routing end to end (issue 4, "Metrics and tests"): which target serves a read. 0% leaves
// new untouched (its own statistics) and 100% sends every read there; 50% by user gives each user
// one target, the same on two pgtandem replicas, about half on new; reads in transactions, after
// a write without mirroring and in pinned sessions stay on the primary, while extended-protocol
// reads (unnamed and named statements) are routed; read-your-writes with 100% of reads on new;
// new stopped with reads routed to it (fallback, breaker trip and reset); an error on new; pgbench
// -S while the percentage is reloaded 0 -> 25 -> 100 -> 0. The link's connection shared by
// routed reads, shadow reads and flips: routing_link_test.cc. The fixture: routing_fixture.h.
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "tests/integration/routing_fixture.h"
namespace pgtandem::it {
namespace {

TEST_F(RoutingTest, ZeroPercentLeavesNewUntouchedAndHundredSendsEveryRead) {
  const std::string db = make_db("zero");
  ProxyProcess& zero = start_proxy(options("[[routes]]\npercent = 0\n", false));
  // make_db's own scans reach the statistics when its backends flush them (up to a second, later
  // on a loaded machine): wait until the count holds still before taking it as the baseline.
  long before = seq_scans(new_cluster(), db);
  for (int i = 0; i < 20; ++i) {
    std::this_thread::sleep_for(milliseconds(1200));
    const long now = seq_scans(new_cluster(), db);
    if (now == before) break;
    before = now;
  }
  for (int i = 0; i < 3; ++i) {
    ConnPtr c = connect(zero.endpoint().conninfo("", db));
    for (int j = 0; j < 10; ++j) {
      ASSERT_EQ(whoami(c.get()), "old");
      ASSERT_EQ(whoami_extended(c.get()), "old");
    }
  }
  std::this_thread::sleep_for(milliseconds(1500));  // statistics are flushed within a second
  EXPECT_EQ(seq_scans(new_cluster(), db), before) << "new saw reads with 0% routed to it";
  EXPECT_EQ(decisions(zero, "new"), 0);

  ProxyProcess& all = start_proxy(options("[[routes]]\npercent = 100\n", false));
  ConnPtr c = connect(all.endpoint().conninfo("", db));
  for (int j = 0; j < 10; ++j) {
    ASSERT_EQ(whoami(c.get()), "new");
    ASSERT_EQ(whoami_extended(c.get()), "new");
  }
  // A routed read is counted once its answer has gone to the client: the count may trail the
  // client by a moment.
  EXPECT_TRUE(poll_until([&] { return decisions(all, "new") >= 20; }, milliseconds(10000)))
      << decisions(all, "new");
  std::string last;
  EXPECT_TRUE(poll_until([&] { return seq_scans(new_cluster(), db) >= before + 20; }, kDeadline))
      << "new's statistics do not show the routed reads";
}

TEST_F(RoutingTest, FiftyPercentByUserIsStablePerUserAndAcrossReplicas) {
  const std::string db = make_db("byuser");
  const int kUsers = 24;
  for (PgCluster* c : {&old_cluster(), &new_cluster()}) {
    std::string sql;
    for (int i = 0; i < kUsers; ++i) {
      sql += "DO $$BEGIN CREATE ROLE route_u" + std::to_string(i) +
             " LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END$$;";
    }
    c->exec(sql);
  }
  const std::string rule = "[[routes]]\nname = \"half\"\npercent = 50\nhash_key = \"user\"\n";
  ProxyProcess& a = start_proxy(options(rule, false));
  ProxyProcess& b = start_proxy(options(rule, false));
  int on_new = 0;
  for (int i = 0; i < kUsers; ++i) {
    const std::string user = "route_u" + std::to_string(i);
    std::set<std::string> seen;
    for (ProxyProcess* p : {&a, &b}) {
      for (int k = 0; k < 2; ++k) {
        ConnPtr c = connect(p->endpoint().conninfo("user=" + user, db));
        for (int j = 0; j < 3; ++j) {
          seen.insert(whoami(c.get()));
          seen.insert(whoami_extended(c.get()));
        }
      }
    }
    ASSERT_EQ(seen.size(), 1u) << user << " was routed to both targets";
    if (*seen.begin() == "new") ++on_new;
  }
  // About half: a binomial(24, 0.5) is within 4..20 with probability > 0.999.
  EXPECT_GE(on_new, 4);
  EXPECT_LE(on_new, 20);
  EXPECT_GT(a.metrics().sum("pgtandem_route_decisions_total", {{"rule", "half"}, {"target", "new"}}), 0);
}

TEST_F(RoutingTest, TransactionsWritesAndPinnedSessionsStayOnThePrimary) {
  const std::string db = make_db("safety");
  ProxyProcess& p = start_proxy(options("[[routes]]\ntarget = \"new\"\n", false));
  {
    ConnPtr c = connect(p.endpoint().conninfo("", db));
    EXPECT_EQ(whoami(c.get()), "new");
    EXPECT_EQ(whoami_extended(c.get()), "new");
    // A named statement, prepared where the session's state lives, is routed too.
    ResultPtr prep(PQprepare(c.get(), "who", "SELECT v FROM whoami", 0, nullptr));
    ASSERT_EQ(PQresultStatus(prep.get()), PGRES_COMMAND_OK) << PQerrorMessage(c.get());
    std::string who;
    EXPECT_TRUE(poll_until([&] {
      ResultPtr r(PQexecPrepared(c.get(), "who", 0, nullptr, nullptr, nullptr, 0));
      EXPECT_EQ(PQresultStatus(r.get()), PGRES_TUPLES_OK) << PQerrorMessage(c.get());
      who = PQresultStatus(r.get()) == PGRES_TUPLES_OK ? PQgetvalue(r.get(), 0, 0) : "error";
      return who == "new";
    }, kDeadline)) << who;
    // A transaction stays on one target: the primary.
    exec(c.get(), "BEGIN");
    EXPECT_EQ(whoami(c.get()), "old");
    EXPECT_EQ(whoami_extended(c.get()), "old");
    exec(c.get(), "COMMIT");
    exec(c.get(), "BEGIN READ ONLY");
    EXPECT_EQ(whoami(c.get()), "old");
    exec(c.get(), "COMMIT");
    EXPECT_EQ(whoami(c.get()), "new");
    // A SET reaches the routed reads too: the mirror applies it (asynchronously: until then reads
    // stay on the primary), and a read served by new never misses it.
    exec(c.get(), "SET application_name = 'routed-app'");
    std::string seen;
    EXPECT_TRUE(poll_until([&] {
      seen = query_value(c.get(), "SELECT current_setting('application_name') || '@' || v FROM whoami");
      EXPECT_EQ(seen.substr(0, seen.find('@')), "routed-app");
      return seen == "routed-app@new";
    }, kDeadline)) << seen;
    // Without mirroring, new never gets this write: the session's reads stay on the primary.
    exec(c.get(), "INSERT INTO t VALUES (1, 'x')");
    EXPECT_EQ(whoami(c.get()), "old");
    EXPECT_EQ(query_value(c.get(), "SELECT count(*) FROM t"), "1");
  }
  {
    ConnPtr c = connect(p.endpoint().conninfo("", db));
    EXPECT_EQ(whoami(c.get()), "new");
    exec(c.get(), "CREATE TEMP TABLE tmp (x int)");
    EXPECT_EQ(whoami(c.get()), "old") << "a session with a temp table must stay on the primary";
  }
  {
    ConnPtr c = connect(p.endpoint().conninfo("", db));
    exec(c.get(), "LISTEN chan");
    EXPECT_EQ(whoami(c.get()), "old") << "a listening session must stay on the primary";
  }
  {
    ConnPtr c = connect(p.endpoint().conninfo("", db));
    EXPECT_EQ(query_value(c.get(), "SELECT pg_try_advisory_lock(42)::text"), "true");
    EXPECT_EQ(whoami(c.get()), "old") << "a session holding an advisory lock stays on the primary";
  }
}

TEST_F(RoutingTest, ReadYourWritesWithEveryReadRoutedToNew) {
  const std::string db = make_db("ryw");
  ProxyProcess& p = start_proxy(options("[[routes]]\npercent = 100\n", true));
  ConnPtr c = connect(p.endpoint().conninfo("", db));
  EXPECT_EQ(whoami(c.get()), "new");
  for (int i = 1; i <= 200; ++i) {
    exec(c.get(), "INSERT INTO t VALUES (" + std::to_string(i) + ", 'w')");
    ASSERT_EQ(query_value(c.get(), "SELECT count(*) FROM t WHERE id = " + std::to_string(i)), "1")
        << "read " << i << " did not see the session's own write";
    ASSERT_EQ(whoami_extended(c.get()).substr(0, 1) != "e", true);
  }
  // Reads went to new whenever the mirror had caught up; let it catch up and check.
  ASSERT_TRUE(poll_until([&] { return whoami(c.get()) == "new"; }, kDeadline));
  EXPECT_GT(decisions(p, "new"), 1);
  EXPECT_EQ(new_cluster().query_value("SELECT count(*) FROM t", db), "200");
}

TEST_F(RoutingTest, NewStoppedWithReadsRoutedThereCostsNoClientError) {
  const std::string db = make_db("down");
  ProxyProcess& p = start_proxy(options(
      "[[routes]]\npercent = 100\n[breaker]\nmin_requests = 5\nerror_rate = 0.5\ncooldown_ms = 500\n"
      "half_open_requests = 2\n",
      false));
  ConnPtr c = connect(p.endpoint().conninfo("", db));
  ConnPtr other = connect(p.endpoint().conninfo("", db));
  EXPECT_EQ(whoami(c.get()), "new");
  new_cluster().stop();
  for (int i = 0; i < 40; ++i) {
    ASSERT_EQ(whoami(c.get()), "old") << "read " << i;
    ASSERT_EQ(whoami_extended(other.get()), "old") << "read " << i;
  }
  Metrics m = p.metrics();
  EXPECT_GT(m.sum("pgtandem_route_fallbacks_total"), 0) << m.text();
  EXPECT_GE(m.sum("pgtandem_breaker_trips_total", {{"target", "new"}}), 1) << m.text();
  new_cluster().start();
  // After the cool-down, trial reads close the breaker and reads go to new again.
  EXPECT_TRUE(poll_until([&] {
    ConnPtr fresh = connect(p.endpoint().conninfo("", db));
    return whoami(fresh.get()) == "new" &&
           p.metrics().sum("pgtandem_breaker_state", {{"target", "new"}}) == 0;
  }, kDeadline)) << p.metrics().text();
}

TEST_F(RoutingTest, AnErrorOnNewFallsBackUnlessFallbackIsOff) {
  const std::string db = make_db("fallback");
  new_cluster().exec("ALTER TABLE whoami RENAME TO whoami_gone", db);  // the read fails on new only
  ProxyProcess& with = start_proxy(options("[[routes]]\npercent = 100\n", false));
  ConnPtr c = connect(with.endpoint().conninfo("", db));
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(whoami(c.get()), "old");
    EXPECT_EQ(whoami_extended(c.get()), "old");
  }
  EXPECT_GE(with.metrics().sum("pgtandem_route_fallbacks_total", {{"reason", "error"}}), 10);
  EXPECT_EQ(query_value(c.get(), "SELECT 'still usable'"), "still usable");

  ProxyProcess& without =
      start_proxy(options("[routing]\nfallback_to_primary = false\n[[routes]]\npercent = 100\n", false));
  ConnPtr d = connect(without.endpoint().conninfo("", db));
  ResultPtr r(PQexec(d.get(), "SELECT v FROM whoami"));
  EXPECT_EQ(PQresultStatus(r.get()), PGRES_FATAL_ERROR);
  EXPECT_STREQ(PQresultErrorField(r.get(), PG_DIAG_SQLSTATE), "42P01") << PQerrorMessage(d.get());
  // The session goes on: the error was an answer like any other.
  EXPECT_EQ(query_value(d.get(), "SELECT 'still usable'"), "still usable");
}

TEST_F(RoutingTest, PercentReloadedUnderPgbenchCostsNoTransaction) {
  const std::string db = make_db("reload");
  for (PgCluster* c : {&old_cluster(), &new_cluster()}) {
    auto r = run_pgbench(c->endpoint(), {"-i", "-s", "1", "-q"}, db, milliseconds(300000));
    ASSERT_TRUE(r.ok()) << r.describe();
  }
  ProxyProcess& p = start_proxy(options("[[routes]]\npercent = 0\n", false));
  ProcessResult bench;
  std::thread t([&] {
    bench = run_pgbench(p.endpoint(), {"-S", "-c", "4", "-j", "2", "-T", "14", "-M", "extended"},
                        db, milliseconds(300000));
  });
  double applied = 0;
  for (int pct : {25, 100, 0, 25}) {
    std::this_thread::sleep_for(milliseconds(3000));
    reload(p, "[[routes]]\npercent = " + std::to_string(pct) + "\n", false);
    wait_reloads(p, ++applied);
  }
  t.join();
  ASSERT_TRUE(bench.ok()) << bench.describe();
  PgbenchSummary s = parse_pgbench(bench.out);
  ASSERT_TRUE(s.parsed) << bench.out;
  EXPECT_EQ(s.failed, 0);
  EXPECT_GT(s.processed, 0);
  EXPECT_GT(decisions(p, "new"), 0) << "no read ever reached new";
}

}  // namespace
}  // namespace pgtandem::it

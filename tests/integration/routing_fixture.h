// The fixture of the read-routing integration tests (routing_test.cc: which target serves a read;
// routing_link_test.cc: the link's connection shared by routed reads, shadow reads and flips):
// dedicated pgtandems in front of the two clusters with [[routes]] rules, and a database whose
// table `whoami` holds 'old' on old and 'new' on new, so a read of it names the target that ran it.
#pragma once

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <chrono>
#include <exception>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/fixture.h"
#include "tests/integration/harness/harness.h"

namespace pgtandem::it {

constexpr milliseconds kDeadline{120000};

class RoutingTest : public ProxyTest {
 protected:
  void TearDown() override {
    if (HasFailure()) restart_new_if_stopped();
    ProxyTest::TearDown();
    drop_databases(databases_);
  }

  // A database on both clusters with whoami = the cluster's name, readable by everyone.
  std::string make_db(const std::string& base) {
    std::string db = unique("route_" + base);
    for (PgCluster* c : {&old_cluster(), &new_cluster()}) {
      c->create_database(db);
      c->exec("CREATE TABLE whoami (v text); INSERT INTO whoami VALUES ('" + c->name() +
                  "'); GRANT SELECT ON whoami TO PUBLIC;"
                  "CREATE TABLE t (id int PRIMARY KEY, note text); GRANT ALL ON t TO PUBLIC",
              db);
    }
    databases_.push_back(db);
    return db;
  }

  ProxyOptions options(const std::string& routes_toml, bool mirror) {
    ProxyOptions o = Env::get().default_proxy_options();
    if (mirror) {
      o.section_lines[""].push_back("mirror_writes = true");
      journal_dir_ = std::make_unique<TempDir>("pgtandem-routing-it");
      o.extra_toml = "[mirror]\njournal_path = \"" + journal_dir_->file("mirror.journal") + "\"\n";
    }
    o.extra_toml += routes_toml;
    return o;
  }

  static std::string whoami(PGconn* c) { return query_value(c, "SELECT v FROM whoami"); }

  static std::string whoami_extended(PGconn* c) {
    ResultPtr r(PQexecParams(c, "SELECT v FROM whoami WHERE $1::int = 1", 1, nullptr,
                             std::vector<const char*>{"1"}.data(), nullptr, nullptr, 0));
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) return std::string("error: ") + PQerrorMessage(c);
    return PQgetvalue(r.get(), 0, 0);
  }

  // Sequential scans of whoami on `c` (its statistics, flushed at least once a second).
  static long seq_scans(PgCluster& c, const std::string& db) {
    return std::stol(c.query_value(
        "SELECT pg_stat_force_next_flush(); SELECT seq_scan FROM pg_stat_user_tables "
        "WHERE relname = 'whoami'",
        db));
  }

  static double decisions(const ProxyProcess& p, const std::string& target) {
    return p.metrics().sum("pgtandem_route_decisions_total", {{"target", target}});
  }

  void reload(ProxyProcess& p, const std::string& routes_toml, bool mirror) {
    std::string base = options("", mirror).extra_toml;
    p.options().extra_toml = base + routes_toml;
    p.write_config();
    p.send_signal(SIGHUP);
  }

  // Waits until a reload with this many applied reloads in total has taken effect.
  void wait_reloads(const ProxyProcess& p, double applied) {
    const auto until = std::chrono::steady_clock::now() + kDeadline;
    double got = 0;
    while (std::chrono::steady_clock::now() < until) {
      got = p.metrics().sum("pgtandem_config_reloads_total", {{"outcome", "applied"}});
      if (got >= applied) return;
      std::this_thread::sleep_for(milliseconds(20));
    }
    FAIL() << "reload not applied: " << got << " of " << applied << "\n" << tail(p.log_text());
  }

  // Runs body(s, rng, conn, failure) for sessions s = 0 .. sessions - 1 at once, each on a thread
  // of its own with its own connection to `db` through `p` and a generator seeded from `seed`.
  // A session records what went wrong in `failure` (an exception's message too: the harness's
  // exec and query_value throw) and returns; each session's must stay empty.
  template <typename Body>
  static void run_sessions(const ProxyProcess& p, const std::string& db, int sessions,
                           unsigned seed, Body body) {
    std::vector<std::string> failures(sessions);
    std::vector<std::thread> threads;
    for (int s = 0; s < sessions; ++s) {
      threads.emplace_back([&, s] {
        try {
          std::mt19937 rng(seed + static_cast<unsigned>(s));
          ConnPtr c = connect(p.endpoint().conninfo("", db));
          body(s, rng, c.get(), failures[s]);
        } catch (const std::exception& e) {
          failures[s] = std::string("error: ") + e.what();
        }
      });
    }
    for (auto& t : threads) t.join();
    for (int s = 0; s < sessions; ++s) {
      EXPECT_EQ(failures[s], "") << "seed " << seed << ", session " << s << "\n"
                                 << tail(p.log_text());
    }
  }

  std::unique_ptr<TempDir> journal_dir_;
  std::vector<std::string> databases_;
};

}  // namespace pgtandem::it

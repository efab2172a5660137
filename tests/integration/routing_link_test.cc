// The mirror link's connection shared (docs/design.md 4.2): read-your-writes while the link
// applies on its own thread, routed and shadow reads borrowing it from two threads, primary flips
// while shadow reads borrow it, and a primary flip and back under pgbench TPC-B with identical
// data afterwards. The fixture: routing_fixture.h.
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

// The mirror link runs on a thread of its own ([mirror] link_threads) and lends its connection
// to the session's worker for a routed read (docs/design.md 4.2): a lend must wait until the link
// is drained, i.e. until its thread is done with the socket. Several sessions each write (one
// statement, or a transaction of several, simple or extended protocol) and read their own rows
// back at once, at random moments, with 100% of reads routed to new: every read sees every write
// of its session, with no error. Against a link that counts a unit settled when it takes it from
// its queue (before applying it), reads are served on the socket while the link still writes to
// it: they see a missing row, an error or a desynchronised connection. The seed is printed.
TEST_F(RoutingTest, ReadYourWritesWhileTheLinkAppliesOnItsOwnThread) {
  const std::string db = make_db("rywthreads");
  ProxyOptions o = options("[[routes]]\npercent = 100\n", true);
  const size_t at = o.extra_toml.find("[mirror]\n");
  ASSERT_NE(at, std::string::npos);
  o.extra_toml.insert(at + 9, "link_threads = 1\n");
  ProxyProcess& p = start_proxy(o);
  // (The start line may follow the listener by a moment.)
  ASSERT_TRUE(poll_until(
      [&] { return p.log_text().find("mirror_link_threads=1") != std::string::npos; }, kDeadline))
      << tail(p.log_text());
  const unsigned seed = std::random_device{}();
  std::printf("[seed] ReadYourWritesWhileTheLinkAppliesOnItsOwnThread: %u\n", seed);
  constexpr int kSessions = 6;
  constexpr int kRounds = 60;
  std::vector<int> on_new(kSessions, 0);
  run_sessions(p, db, kSessions, seed,
               [&](int s, std::mt19937& rng, PGconn* c, std::string& failure) {
    int written = 0;
    for (int round = 0; round < kRounds && failure.empty(); ++round) {
      const int n = 1 + static_cast<int>(rng() % 4);  // rows this round
      const bool block = n > 1 && rng() % 2 == 0;
      if (block) exec(c, "BEGIN");
      for (int k = 0; k < n; ++k) {
        const int id = s * 100000 + ++written;
        if (rng() % 2 == 0) {
          exec(c, "INSERT INTO t VALUES (" + std::to_string(id) + ", 'w')");
        } else {
          const std::string v = std::to_string(id);
          ResultPtr r(PQexecParams(c, "INSERT INTO t VALUES ($1::int, 'x')", 1, nullptr,
                                   std::vector<const char*>{v.c_str()}.data(), nullptr, nullptr,
                                   0));
          if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
            failure = "insert: " + std::string(PQerrorMessage(c));
            return;
          }
        }
      }
      if (block) exec(c, "COMMIT");
      // At random: read at once (the link is still applying: the primary answers), a little
      // later, when the link may be anywhere between taking the units and settling them, or
      // after a pause long enough for it to have caught up (the read is served on its socket).
      const unsigned pause = rng() % 4;
      if (pause == 1 || pause == 2) {
        std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
      } else if (pause == 3) {
        std::this_thread::sleep_for(std::chrono::microseconds(5000 + rng() % 20000));
      }
      const std::string range = "id > " + std::to_string(s * 100000) + " AND id <= " +
                                std::to_string(s * 100000 + 99999);
      std::string got;
      if (rng() % 2 == 0) {
        got = query_value(c, "SELECT count(*) FROM t WHERE " + range);
      } else {
        ResultPtr r(PQexecParams(c, ("SELECT count(*) FROM t WHERE $1::int = 1 AND " + range).c_str(),
                                 1, nullptr, std::vector<const char*>{"1"}.data(), nullptr,
                                 nullptr, 0));
        got = PQresultStatus(r.get()) == PGRES_TUPLES_OK
                  ? std::string(PQgetvalue(r.get(), 0, 0))
                  : "error: " + std::string(PQerrorMessage(c));
      }
      if (got != std::to_string(written)) {
        failure = "round " + std::to_string(round) + ": read " + got + " rows of " +
                  std::to_string(written) + " written";
        return;
      }
      if (whoami(c) == "new") ++on_new[s];
    }
    if (!failure.empty()) return;
    // Then once the link has caught up (on a loaded machine its thread, at nice 10, may lag the
    // whole burst): the read is served on its connection and sees every write.
    const bool caught_up = poll_until([&] { return whoami(c) == "new"; }, kDeadline);
    const std::string all = query_value(c, "SELECT count(*) FROM t WHERE id > " +
                                               std::to_string(s * 100000) + " AND id <= " +
                                               std::to_string(s * 100000 + 99999));
    if (!caught_up) {
      failure = "the link never caught up: no read was served on new";
    } else if (all != std::to_string(written)) {
      failure = "after catching up: read " + all + " rows of " + std::to_string(written);
    } else {
      ++on_new[s];
    }
  });
  int total_on_new = 0;
  for (int v : on_new) total_on_new += v;
  std::printf("[ryw-threads] seed %u: %d of %d whoami reads served on the link's connection\n",
              seed, total_on_new, kSessions * kRounds);
  // The lend path itself ran: reads were served on the link's connection (at least each
  // session's last two).
  EXPECT_GE(total_on_new, kSessions) << "seed " << seed;
  Metrics m = p.metrics();
  EXPECT_GE(decisions(p, "new"), 2 * kSessions) << m.text();
  EXPECT_EQ(m.sum("pgtandem_mirror_writes_total", {{"outcome", "journaled"}}), 0) << m.text();
  EXPECT_EQ(m.sum("pgtandem_mirror_divergences_total"), 0) << m.text();
}

// Two borrowers on two threads share the link's connection: a session's routed reads (on its
// worker) and its shadow reads (on the link's thread, docs/design.md 4.2). Both may find the link
// free at once; one claims it (MirrorLink::lend), the other keeps the read on the primary or
// waits. Several sessions write their own rows and read them back at random moments, tagged
// reads routed to new, untagged ones served by old and all shadowed: every answer is right, the
// routed reads really ran on new, the shadow reads were compared and all matched, and no routed
// read fell back as if new were down. Two borrowers on the socket at once mix their answers: a
// wrong count, an error, a shadow mismatch or a lost connection (a lend that checks and then
// sets `lent` instead of claiming it in one step failed 5 of 8 runs here). The seed is printed.
TEST_F(RoutingTest, RoutedAndShadowReadsShareTheLinkAcrossThreads) {
  const std::string db = make_db("sharedlink");
  ProxyProcess& p = start_proxy(options(
      "[[routes]]\nname = \"tagged\"\ntags = { go = \"new\" }\ntarget = \"new\"\n"
      "[shadow]\nsample_rate = 1\n",
      true));
  const unsigned seed = std::random_device{}();
  std::printf("[seed] RoutedAndShadowReadsShareTheLinkAcrossThreads: %u\n", seed);
  constexpr int kSessions = 6;
  constexpr int kRounds = 300;
  std::vector<int> on_new(kSessions, 0);
  run_sessions(p, db, kSessions, seed,
               [&](int s, std::mt19937& rng, PGconn* c, std::string& failure) {
    const std::string range = "id > " + std::to_string(s * 100000) + " AND id <= " +
                              std::to_string(s * 100000 + 99999);
    int written = 0;
    for (int round = 0; round < kRounds && failure.empty(); ++round) {
      if (rng() % 6 == 0) {
        exec(c, "INSERT INTO t VALUES (" + std::to_string(s * 100000 + ++written) + ", 'w')");
      }
      // Mostly none: the next read then meets the last one's shadow read starting.
      if (rng() % 4 == 0) std::this_thread::sleep_for(std::chrono::microseconds(rng() % 4000));
      const bool tagged = rng() % 2 == 0;
      const std::string got =
          query_value(c, "SELECT count(*) FROM t WHERE " + range + (tagged ? " /*go='new'*/" : ""));
      if (got != std::to_string(written)) {
        failure = "round " + std::to_string(round) + (tagged ? " (tagged)" : "") + ": read " + got +
                  " rows of " + std::to_string(written) + " written";
        return;
      }
      if (rng() % 4 == 0) {
        const std::string who = query_value(c, "SELECT v FROM whoami /*go='new'*/");
        if (who == "new") ++on_new[s];
      }
    }
    if (!failure.empty()) return;
    // Then once the link has caught up (on a loaded machine its thread, at nice 10, may lag
    // the whole burst, keeping every read on old): a tagged read is served on new, and an
    // untagged one is shadowed and compared there.
    const std::string tagged_whoami = "SELECT v FROM whoami /*go='new'*/";
    if (poll_until([&] { return query_value(c, tagged_whoami) == "new"; }, kDeadline)) {
      ++on_new[s];
    } else {
      failure = "the link never caught up: no tagged read was served on new";
    }
    const auto matched = [&] {
      return p.metrics().sum("pgtandem_shadow_reads_total", {{"outcome", "match"}});
    };
    const double before = matched();
    if (!poll_until(
            [&] {
              query_value(c, "SELECT count(*) FROM t WHERE " + range);
              return matched() > before;
            },
            kDeadline)) {
      failure = "no shadow read was compared once the link caught up";
    }
  });
  int total_on_new = 0;
  for (int v : on_new) total_on_new += v;
  Metrics m = p.metrics();
  const double matched = m.sum("pgtandem_shadow_reads_total", {{"outcome", "match"}});
  std::printf("[shared-link] seed %u: %d tagged whoami reads on new, %g shadow reads matched\n",
              seed, total_on_new, matched);
  EXPECT_GT(total_on_new, 0) << m.text();
  EXPECT_GT(matched, 0) << m.text();
  EXPECT_EQ(m.sum("pgtandem_shadow_reads_total", {{"outcome", "mismatch"}}), 0) << m.text();
  EXPECT_EQ(m.sum("pgtandem_route_fallbacks_total"), 0) << m.text();
  EXPECT_EQ(m.sum("pgtandem_mirror_writes_total", {{"outcome", "journaled"}}), 0) << m.text();
  EXPECT_EQ(m.sum("pgtandem_mirror_divergences_total"), 0) << m.text();
}

// A primary flip takes the link's connection (it becomes the session's primary connection) while
// the session's shadow reads, on the link's thread, keep borrowing it: with every read shadowed
// and nothing written, the link is free almost all the time and a shadow read is on it whenever
// the flip looks. The flip waits for it and claims it (MirrorLink::lend; a flip that loses the
// claim waits again): pgbench -S through four flips loses no transaction, no session is closed,
// and the shadow reads before and after (on new, then on old) all match. (The claim's race itself
// is RoutedAndShadowReadsShareTheLinkAcrossThreads's to catch: this test passed 4 of 4 runs
// against a check-then-set lend; it covers flips through a busy lane on another thread.)
TEST_F(RoutingTest, PrimaryFlipsWhileShadowReadsBorrowTheLink) {
  const std::string db = make_db("flipshadow");
  for (PgCluster* c : {&old_cluster(), &new_cluster()}) {
    auto r = run_pgbench(c->endpoint(), {"-i", "-s", "1", "-q"}, db, milliseconds(300000));
    ASSERT_TRUE(r.ok()) << r.describe();
  }
  ProxyProcess& p = start_proxy(options("[shadow]\nsample_rate = 1\n", true));
  ProcessResult bench;
  std::thread t([&] {
    bench = run_pgbench(p.endpoint(), {"-S", "-M", "prepared", "-c", "4", "-j", "2", "-T", "10"},
                        db, milliseconds(300000));
  });
  for (const char* primary : {"new", "old", "new", "old"}) {
    std::this_thread::sleep_for(milliseconds(2000));
    p.options().primary = primary;
    p.write_config();
    p.send_signal(SIGHUP);
  }
  t.join();
  ASSERT_TRUE(bench.ok()) << bench.describe() << "\n" << tail(p.log_text());
  PgbenchSummary s = parse_pgbench(bench.out);
  ASSERT_TRUE(s.parsed) << bench.out;
  EXPECT_EQ(s.failed, 0);
  EXPECT_GT(s.processed, 0);
  Metrics m = p.metrics();
  EXPECT_EQ(m.sum("pgtandem_primary_flips_total", {{"outcome", "closed"}}), 0) << m.text();
  EXPECT_GE(m.sum("pgtandem_primary_flips_total", {{"outcome", "moved"}}), 4) << m.text();
  EXPECT_GT(m.sum("pgtandem_shadow_reads_total", {{"outcome", "match"}}), 0) << m.text();
  EXPECT_EQ(m.sum("pgtandem_shadow_reads_total", {{"outcome", "mismatch"}}), 0) << m.text();
}

TEST_F(RoutingTest, PrimaryFlipAndBackUnderTpcbLosesNothing) {
  const std::string db = make_db("flip");
  for (PgCluster* c : {&old_cluster(), &new_cluster()}) {
    auto r = run_pgbench(c->endpoint(), {"-i", "-s", "1", "-q"}, db, milliseconds(300000));
    ASSERT_TRUE(r.ok()) << r.describe();
  }
  ProxyProcess& p = start_proxy(options("", true));
  std::string timeline;  // for a failure report: when each run and flip happened (server clock)
  auto mark = [&](const std::string& what) {
    timeline += "\n  " + old_cluster().query_value("SELECT clock_timestamp()::text", db) + " " + what;
  };
  for (const char* mode : {"prepared", "simple"}) {
    ProcessResult bench;
    mark(std::string("pgbench -M ") + mode + " starts");
    std::thread t([&] {
      bench = run_pgbench(p.endpoint(), {"-c", "4", "-j", "2", "-T", "12", "-M", mode}, db,
                          milliseconds(300000));
    });
    std::this_thread::sleep_for(milliseconds(4000));
    p.options().primary = "new";
    p.write_config();
    p.send_signal(SIGHUP);
    mark("primary = new");
    std::this_thread::sleep_for(milliseconds(4000));
    {
      // /status names the mirror's target as it is now: old, once new is the primary.
      const std::string status = http_get(p.admin_port(), "/status").body;
      EXPECT_NE(status.find("\"target\":\"old\",\"applied\""), std::string::npos) << status;
    }
    p.options().primary = "old";
    p.write_config();
    p.send_signal(SIGHUP);
    mark("primary = old");
    t.join();
    mark(std::string("pgbench -M ") + mode + " ended");
    ASSERT_TRUE(bench.ok()) << mode << ": " << bench.describe() << "\n" << tail(p.log_text());
    PgbenchSummary s = parse_pgbench(bench.out);
    ASSERT_TRUE(s.parsed) << bench.out;
    EXPECT_EQ(s.failed, 0) << mode;
    EXPECT_GT(s.processed, 0) << mode;
  }
  Metrics m = p.metrics();
  EXPECT_GE(m.sum("pgtandem_primary_flips_total", {{"outcome", "moved"}}), 8) << m.text();
  // Every write reached both: wait for the mirrors to drain, then compare.
  auto state = [&](PgCluster& c) {
    return c.query_value(
        "SELECT (SELECT sum(abalance) FROM pgbench_accounts) || '/' ||"
        " (SELECT md5(string_agg(t::text, ',' ORDER BY tid)) FROM pgbench_tellers t) || '/' ||"
        " (SELECT md5(string_agg(b::text, ',' ORDER BY bid)) FROM pgbench_branches b) || '/' ||"
        " (SELECT count(*) FROM pgbench_history)",
        db);
  };
  std::string o, n;
  EXPECT_TRUE(poll_until([&] {
    o = state(old_cluster());
    n = state(new_cluster());
    return o == n;
  }, kDeadline)) << "old " << o << " vs new " << n;
  if (o != n) {
    // For whoever investigates: the history rows (without mtime, which each server stamps itself)
    // that only one side has.
    // Each side's own consistency too: pgbench keeps sum(delta) of the history equal to every
    // balance sum, so a side where they differ holds a history row without its updates (or the
    // reverse).
    std::string sums;
    for (PgCluster* c : {&old_cluster(), &new_cluster()}) {
      sums += std::string("\n  ") + (c == &old_cluster() ? "old" : "new") +
              " sum(abalance)/sum(tbalance)/sum(bbalance)/sum(delta): " +
              c->query_value(
                  "SELECT (SELECT sum(abalance) FROM pgbench_accounts) || '/' ||"
                  " (SELECT sum(tbalance) FROM pgbench_tellers) || '/' ||"
                  " (SELECT sum(bbalance) FROM pgbench_branches) || '/' ||"
                  " (SELECT coalesce(sum(delta), 0) FROM pgbench_history)",
                  db);
    }
    struct Seen {
      int on_old = 0, on_new = 0;
      std::string mtime;  // the side's own stamp (each server stamps its own)
    };
    std::map<std::string, Seen> rows_seen;  // (tid,bid,aid,delta) -> where
    for (PgCluster* c : {&old_cluster(), &new_cluster()}) {
      const std::string rows = c->query_value(
          "SELECT string_agg(tid || ',' || bid || ',' || aid || ',' || delta || '@' || mtime, ';') "
          "FROM pgbench_history", db);
      size_t pos = 0;
      while (pos < rows.size()) {
        size_t end = rows.find(';', pos);
        if (end == std::string::npos) end = rows.size();
        const std::string item = rows.substr(pos, end - pos);
        const size_t at = item.find('@');
        Seen& seen = rows_seen[item.substr(0, at)];
        ++(c == &old_cluster() ? seen.on_old : seen.on_new);
        if (at != std::string::npos) seen.mtime = item.substr(at + 1);
        pos = end + 1;
      }
    }
    std::string only;
    int shown = 0;
    for (const auto& [row, seen] : rows_seen) {
      if (seen.on_old == seen.on_new || ++shown > 20) continue;
      only += "\n  " + row + ": " + std::to_string(seen.on_old) + " on old, " +
              std::to_string(seen.on_new) + " on new, stamped " + seen.mtime;
    }
    only += sums + "\n timeline:" + timeline;
    std::string mirror_metrics;
    std::istringstream lines(p.metrics().text());
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("pgtandem_mirror", 0) == 0 || line.rfind("pgtandem_primary", 0) == 0) {
        mirror_metrics += "\n  " + line;
      }
    }
    ADD_FAILURE() << "pgbench_history (tid,bid,aid,delta) differing:" << only << mirror_metrics;
  }
  EXPECT_EQ(p.metrics().sum("pgtandem_mirror_divergences_total"), 0);
}

}  // namespace
}  // namespace pgtandem::it

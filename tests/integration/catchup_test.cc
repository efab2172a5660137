// Automatic catch-up (issue 15, proxy/mirror/catchup.h) against real PostgreSQL servers: `new`
// goes down under pgbench TPC-B (-M prepared) through pgtandem; once it is back, the running
// pgtandem applies its own journal backlog, every session returns to live mirroring by itself,
// and old == new without a replay step and without a client error. Then the same with pgtandem
// SIGKILLed during catch-up and restarted: the restarted process finishes the backlog and applies
// nothing twice (the target's record of applied entries), and `pgtandem replay` afterwards finds
// nothing left to apply.
#include <sys/stat.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include "tests/integration/fixture.h"
#include "tests/integration/harness/harness.h"

namespace pgtandem::it {
namespace {

using std::chrono::seconds;

constexpr milliseconds kDeadline{300000};  // the machine is small and shared: be patient

struct Backlog {
  double entries = 0, bytes = 0, applied_live = 0, journaled = 0, catchup_applied = 0, groups = 0;
  double catchup_skipped = 0, returns = 0, live_state = 0, divergences = 0, rate = 0;
  std::string describe() const {
    std::ostringstream s;
    s << "backlog_entries=" << entries << " backlog_bytes=" << bytes
      << " applied_live=" << applied_live << " journaled=" << journaled
      << " catchup_applied=" << catchup_applied << " catchup_skipped=" << catchup_skipped
      << " groups=" << groups
      << " returns_to_live=" << returns << " live=" << live_state
      << " divergences=" << divergences << " rate=" << rate;
    return s.str();
  }
};

Backlog backlog(const ProxyProcess& p) {
  Metrics m = p.metrics();
  Backlog b;
  b.entries = m.sum("pgtandem_mirror_backlog_entries");
  b.bytes = m.sum("pgtandem_mirror_backlog_bytes");
  b.applied_live = m.sum("pgtandem_mirror_writes_total", {{"outcome", "applied"}});
  b.journaled = m.sum("pgtandem_mirror_writes_total", {{"outcome", "journaled"}});
  b.catchup_applied = m.sum("pgtandem_mirror_catchup_applied_total");
  b.catchup_skipped = m.sum("pgtandem_mirror_catchup_skipped_total");
  b.groups = m.sum("pgtandem_mirror_catchup_groups_total");
  b.returns = m.sum("pgtandem_mirror_catchup_returns_to_live_total");
  b.live_state = m.sum("pgtandem_mirror_catchup_state", {{"state", "live"}});
  b.divergences = m.sum("pgtandem_mirror_divergences_total");
  b.rate = m.sum("pgtandem_mirror_catchup_rate");
  return b;
}

long report_number(const std::string& report, const std::string& label) {
  std::regex re("\\n\\s*" + label + ":\\s*([0-9]+)");
  std::smatch m;
  std::string text = "\n" + report;
  if (!std::regex_search(text, m, re)) return -1;
  return std::stol(m[1].str());
}

class CatchupTest : public ProxyTest {
 protected:
  // The backends on new of the mirror links of pgbench's sessions (the client's application_name;
  // catch-up's connection has its own), once at least `at_least` are there (or what is there after
  // 30 s).
  std::vector<pid_t> mirror_backends(const std::string& db, size_t at_least) {
    std::vector<pid_t> pids;
    poll_until(
        [&] {
          const std::string list = new_cluster().query_value(
              "SELECT coalesce(string_agg(pid::text, ','), '') FROM pg_stat_activity WHERE "
              "datname = '" + db + "' AND application_name = 'pgbench'");
          pids.clear();
          std::stringstream in(list);
          std::string one;
          while (std::getline(in, one, ',')) pids.push_back(static_cast<pid_t>(std::stol(one)));
          return pids.size() >= at_least;
        },
        milliseconds(30000), milliseconds(100));
    return pids;
  }

  // The hung-`new` tests' proxy: mirroring with catch-up and a short apply timeout.
  static constexpr int kTimeoutMs = 1000;
  ProxyProcess& start_apply_timeout_proxy() {
    return start_mirror_proxy("apply_timeout_ms = " + std::to_string(kTimeoutMs) + "\n");
  }

  void SetUp() override {
    ProxyTest::SetUp();
    if (HasFatalFailure()) return;
    dir_ = std::make_unique<TempDir>("pgtandem-catchup-it");
    journal_ = dir_->file("mirror.journal");
  }

  void TearDown() override {
    restart_new_if_stopped();
    ProxyTest::TearDown();
    drop_databases(databases_);
  }

  std::string make_db(const std::string& base) {
    std::string db = unique("catchup_" + base);
    old_cluster().create_database(db);
    new_cluster().create_database(db);
    databases_.push_back(db);
    for (PgCluster* c : {&old_cluster(), &new_cluster()}) {
      auto r = run_pgbench(c->endpoint(), {"-i", "-s", "1", "-q"}, db, milliseconds(300000));
      EXPECT_TRUE(r.ok()) << "pgbench -i on " << c->name() << ": " << r.describe();
    }
    return db;
  }

  ProxyProcess& start_mirror_proxy(const std::string& more_mirror_keys = "") {
    ProxyOptions o = Env::get().default_proxy_options();
    o.section_lines[""].push_back("mirror_writes = true");
    o.extra_toml = "[mirror]\njournal_path = \"" + journal_ +
                   "\"\nreconnect_interval_ms = 200\ncatchup = true\n" + more_mirror_keys;
    return start_proxy(o);
  }

  void expect_identical(const std::string& db, const std::string& when) {
    auto o = pgbench_state(old_cluster(), db);
    auto n = pgbench_state(new_cluster(), db);
    ASSERT_EQ(o.size(), n.size());
    for (size_t i = 0; i < o.size(); ++i) {
      EXPECT_EQ(o[i].second, n[i].second) << when << ": " << o[i].first << " old vs new";
    }
    EXPECT_NE(o.back().second, "0") << when << ": pgbench_history is empty";
  }

  // Until the backlog is applied and every session mirrors live again (`returned`: after a
  // backlog this process saw; a restarted one may find it applied already).
  bool wait_caught_up(const ProxyProcess& p, Backlog* last, bool returned = true) {
    return poll_until(
        [&] {
          *last = backlog(p);
          return last->entries == 0 && last->live_state == 1 && (!returned || last->returns >= 1);
        },
        kDeadline, milliseconds(200));
  }

  std::unique_ptr<TempDir> dir_;
  std::string journal_;
  std::vector<std::string> databases_;
};

// `new` down for 5 s under TPC-B: the sessions return to live mirroring by themselves, the backlog
// drains, old == new, no replay step, zero client errors.
TEST_F(CatchupTest, NewDownUnderLoadHealsByItself) {
  const std::string db = make_db("heal");
  if (HasFailure()) return;
  ProxyProcess& p = start_mirror_proxy();
  ProcessResult bench;
  std::atomic<bool> bench_done{false};
  std::thread t([&] {
    // At a fixed rate: on a loaded 2-core machine the one backend catch-up uses on new gets about
    // the CPU share the load's own backends get, so an unbounded load can keep the backlog from
    // draining before it ends (bench/README.md); at 300 tps it drains with the load still on.
    bench = run_pgbench(p.endpoint(),
                        {"-c", "4", "-j", "2", "-T", "45", "-R", "300", "-M", "prepared"}, db,
                        milliseconds(600000));
    bench_done = true;
  });
  // Writes are mirrored live first.
  const bool mirroring = poll_until([&] { return backlog(p).applied_live > 100; },
                                    milliseconds(60000), milliseconds(100));
  new_cluster().stop();
  const auto down_at = std::chrono::steady_clock::now();
  const bool journaled = poll_until([&] { return backlog(p).journaled > 0; }, milliseconds(60000),
                                    milliseconds(100));
  std::this_thread::sleep_until(down_at + seconds(5));
  new_cluster().start();
  // While pgbench still runs: the backlog drains and the sessions go live again.
  Backlog b;
  const bool caught_up = wait_caught_up(p, &b);
  const bool during_load = !bench_done.load();
  const Backlog at_return = b;
  // Live again: the same sessions' writes are applied live, not journaled.
  bool live_again = false;
  if (during_load) {
    live_again = poll_until(
        [&] {
          Backlog now = backlog(p);
          return now.applied_live > at_return.applied_live + 100;
        },
        milliseconds(60000), milliseconds(100));
  }
  t.join();
  ASSERT_TRUE(mirroring) << backlog(p).describe();
  ASSERT_TRUE(journaled) << backlog(p).describe();
  ASSERT_TRUE(caught_up) << b.describe() << "\n" << tail(p.log_text(), 3000);
  PgbenchSummary s = parse_pgbench(bench.out);
  ASSERT_TRUE(bench.ok()) << bench.describe();
  ASSERT_TRUE(s.parsed) << bench.describe();
  EXPECT_EQ(s.failed, 0) << bench.describe();
  EXPECT_TRUE(during_load) << "the backlog drained only after pgbench ended; " << b.describe();
  if (during_load) {
    EXPECT_TRUE(live_again) << backlog(p).describe();
  }
  // The end of the run: everything on new, by pgtandem alone.
  ASSERT_TRUE(wait_caught_up(p, &b)) << b.describe();
  ASSERT_TRUE(poll_until(
      [&] {
        auto o = pgbench_state(old_cluster(), db);
        auto n = pgbench_state(new_cluster(), db);
        return o == n;
      },
      milliseconds(120000), milliseconds(500)));
  expect_identical(db, "after catch-up");
  Backlog end = backlog(p);
  EXPECT_GT(end.catchup_applied, 0) << end.describe();
  // pgbench's prepared TPC-B entries, after each session's first, commit several to a transaction.
  EXPECT_GT(end.groups, 0) << end.describe();
  EXPECT_EQ(end.divergences, 0) << end.describe() << "\n" << tail(p.log_text(), 3000);
  std::fprintf(stderr, "[catchup] %ld transactions (%.0f tps); %s\n", s.processed, s.tps,
               end.describe().c_str());
  HttpResponse status = http_get(p.admin_port(), "/status");
  EXPECT_NE(status.body.find("\"catchup\":{"), std::string::npos) << status.body;
  EXPECT_NE(status.body.find("\"backlog\":{\"entries\":0"), std::string::npos) << status.body;
}

// The same, with pgtandem SIGKILLed during catch-up and restarted: the restarted process finishes
// the backlog, nothing is applied twice.
TEST_F(CatchupTest, KilledDuringCatchupFinishesAfterRestart) {
  const std::string db = make_db("kill");
  if (HasFailure()) return;
  // Catch-up is much faster than the load that made the backlog: slowed down on new only (2 ms per
  // history row, the data unchanged), so that the kill lands in the middle of it.
  new_cluster().exec(
      "CREATE FUNCTION slow_down() RETURNS trigger LANGUAGE plpgsql AS "
      "$$ BEGIN PERFORM pg_sleep(0.002); RETURN NEW; END $$;"
      "CREATE TRIGGER slow_down BEFORE INSERT ON pgbench_history FOR EACH ROW "
      "EXECUTE FUNCTION slow_down()",
      db);
  ProxyProcess& p = start_mirror_proxy();
  ProcessResult bench;
  std::thread t([&] {
    bench = run_pgbench(p.endpoint(), {"-c", "4", "-j", "2", "-T", "12", "-M", "prepared"}, db,
                        milliseconds(600000));
  });
  const bool mirroring = poll_until([&] { return backlog(p).applied_live > 100; },
                                    milliseconds(60000), milliseconds(100));
  new_cluster().stop();
  // The load ends while new is down: the whole backlog is in the journal, nothing in flight.
  t.join();
  ASSERT_TRUE(mirroring) << backlog(p).describe();
  PgbenchSummary s = parse_pgbench(bench.out);
  ASSERT_TRUE(bench.ok()) << bench.describe();
  EXPECT_EQ(s.failed, 0) << bench.describe();
  Backlog before;
  ASSERT_TRUE(poll_until(
      [&] {
        before = backlog(p);
        return before.entries > 1000;
      },
      milliseconds(60000), milliseconds(200)))
      << before.describe();
  new_cluster().start();
  // Killed as soon as catch-up has applied something, well before it is done.
  Backlog mid;
  const bool started = poll_until(
      [&] {
        mid = backlog(p);
        return mid.catchup_applied > 200;
      },
      kDeadline, milliseconds(10));
  p.kill();
  ASSERT_TRUE(started) << mid.describe();
  std::fprintf(stderr, "[catchup] killed with %.0f of %.0f entries applied\n",
               mid.catchup_applied, before.entries);
  EXPECT_LT(mid.catchup_applied, before.entries) << "the kill came after catch-up had finished";
  p.start();
  Backlog b;
  ASSERT_TRUE(wait_caught_up(p, &b, false)) << b.describe() << "\n" << tail(p.log_text(), 3000);
  expect_identical(db, "after the restarted catch-up");
  EXPECT_EQ(b.divergences, 0) << b.describe() << "\n" << tail(p.log_text(), 3000);
  std::fprintf(stderr, "[catchup] after restart: %s\n", b.describe().c_str());
  // A replay for the same journal finds nothing to apply.
  EXPECT_TRUE(p.stop());
  RunOptions ro;
  ro.timeout = milliseconds(300000);
  ProcessResult replay = run_process(
      {pgtandem_binary(), "replay", "--config", p.config_path(), "--journal", journal_}, ro);
  EXPECT_EQ(replay.exit_code, 0) << replay.describe();
  EXPECT_EQ(report_number(replay.out, "applied"), 0) << replay.out;
  expect_identical(db, "after replay");
}

// A hung `new` (apply timeout, docs/design.md "Apply timeout"): the backends of the sessions'
// mirror connections on new are SIGSTOPped (their connections stay open) under a steady TPC-B
// load. Within apply_timeout_ms (plus slack) the sessions journal instead of queueing in memory,
// the queue stops growing, and once the backends resume the units in flight get their answers
// (applied live, once), catch-up applies the journal and old == new, nothing marked for repair.
TEST_F(CatchupTest, HungNewJournalsAfterApplyTimeout) {
  const std::string db = make_db("hung");
  if (HasFailure()) return;
  ProxyProcess& p = start_apply_timeout_proxy();
  ProcessResult bench;
  std::atomic<bool> bench_done{false};
  std::thread t([&] {
    bench = run_pgbench(p.endpoint(),
                        {"-c", "4", "-j", "2", "-T", "40", "-R", "200", "-M", "prepared"}, db,
                        milliseconds(600000));
    bench_done = true;
  });
  auto metric = [&](const char* name) { return p.metrics().sum(name); };
  const bool mirroring = poll_until([&] { return backlog(p).applied_live > 100; },
                                    milliseconds(60000), milliseconds(100));
  std::vector<pid_t> pids = mirror_backends(db, 4);
  if (!mirroring || pids.empty()) {
    t.join();
    FAIL() << "mirroring=" << mirroring << " backends on new=" << pids.size() << " "
           << backlog(p).describe();
  }
  for (pid_t pid : pids) new_cluster().signal_backend(pid, SIGSTOP);
  const auto stopped_at = std::chrono::steady_clock::now();
  const bool timed_out = poll_until(
      [&] { return metric("pgtandem_mirror_apply_timeouts_total") >= 1; }, milliseconds(60000),
      milliseconds(50));
  const auto took = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() -
                                                             stopped_at);
  // The load goes on into the journal; the links' queues no longer grow.
  const double queue_at_hang = metric("pgtandem_mirror_queue_bytes");
  const double journaled_at_hang = backlog(p).journaled;
  const bool journaling = poll_until(
      [&] { return backlog(p).journaled > journaled_at_hang + 200; }, milliseconds(60000),
      milliseconds(100));
  const double queue_later = metric("pgtandem_mirror_queue_bytes");
  const double hung_links = metric("pgtandem_mirror_hung_links");
  HttpResponse during = http_get(p.admin_port(), "/status");
  for (pid_t pid : pids) new_cluster().signal_backend(pid, SIGCONT);
  ASSERT_TRUE(timed_out) << backlog(p).describe() << "\n" << tail(p.log_text(), 3000);
  std::fprintf(stderr, "[apply-timeout] %zu backends stopped; timeout noticed after %lld ms\n",
               pids.size(), static_cast<long long>(took.count()));
  EXPECT_LT(took.count(), kTimeoutMs + 10000) << "apply_timeout_ms plus slack";
  EXPECT_TRUE(journaling) << backlog(p).describe();
  EXPECT_LE(queue_later, queue_at_hang) << "the link queues kept growing while new was hung";
  EXPECT_GE(hung_links, 1) << backlog(p).describe();
  EXPECT_NE(during.body.find("\"apply_timeout\":{\"timeouts\":"), std::string::npos)
      << during.body;
  // Resumed: the units in flight are answered, the hung links settle, catch-up drains.
  EXPECT_TRUE(poll_until([&] { return metric("pgtandem_mirror_hung_links") == 0; }, kDeadline,
                         milliseconds(100)));
  Backlog b;
  ASSERT_TRUE(wait_caught_up(p, &b)) << b.describe() << "\n" << tail(p.log_text(), 3000);
  t.join();
  PgbenchSummary s = parse_pgbench(bench.out);
  ASSERT_TRUE(bench.ok()) << bench.describe();
  EXPECT_EQ(s.failed, 0) << bench.describe();
  ASSERT_TRUE(wait_caught_up(p, &b)) << b.describe();
  ASSERT_TRUE(poll_until(
      [&] { return pgbench_state(old_cluster(), db) == pgbench_state(new_cluster(), db); },
      milliseconds(120000), milliseconds(500)));
  expect_identical(db, "after the hang and catch-up");
  Backlog end = backlog(p);
  EXPECT_EQ(end.divergences, 0) << end.describe() << "\n" << tail(p.log_text(), 3000);
  EXPECT_EQ(metric("pgtandem_mirror_apply_timeout_unresolved_total"), 0);
  HttpResponse status = http_get(p.admin_port(), "/status");
  EXPECT_NE(status.body.find("\"needs_repair\":[]"), std::string::npos) << status.body;
  std::fprintf(stderr, "[apply-timeout] %ld transactions (%.0f tps); %s\n", s.processed, s.tps,
               end.describe().c_str());
}

// One session hangs twice (SIGSTOP, SIGCONT, SIGSTOP again within a minute): the second hang is
// noticed within apply_timeout_ms too. After the first, the link's lazy watch waits for the give-up
// time (60 s later); the next apply's earlier deadline must re-arm it, or the second hang goes
// unnoticed (no journaling, the link's queue growing) until that wait ends (mirror_link_timeout.cc).
TEST_F(CatchupTest, HungTwiceNoticedTwice) {
  const std::string db = make_db("hungtwice");
  if (HasFailure()) return;
  ProxyProcess& p = start_apply_timeout_proxy();
  ProcessResult bench;
  std::atomic<bool> bench_done{false};
  std::thread t([&] {
    bench = run_pgbench(p.endpoint(), {"-c", "1", "-T", "50", "-R", "100", "-M", "prepared"}, db,
                        milliseconds(600000));
    bench_done = true;
  });
  auto timeouts = [&] { return p.metrics().sum("pgtandem_mirror_apply_timeouts_total"); };
  auto hang = [&](int round) -> long long {
    const double live_before = backlog(p).applied_live;
    if (!poll_until([&] { return backlog(p).applied_live > live_before + 50; }, milliseconds(60000),
                    milliseconds(100))) {
      ADD_FAILURE() << "round " << round << ": not mirroring live " << backlog(p).describe();
      return -1;
    }
    const std::vector<pid_t> pids = mirror_backends(db, 1);
    if (pids.empty() || bench_done) {
      ADD_FAILURE() << "round " << round << ": backends=" << pids.size()
                    << " load ended=" << bench_done.load();
      return -1;
    }
    const double before = timeouts();
    for (pid_t pid : pids) new_cluster().signal_backend(pid, SIGSTOP);
    const auto at = std::chrono::steady_clock::now();
    const bool noticed =
        poll_until([&] { return timeouts() >= before + 1; }, milliseconds(90000), milliseconds(50));
    const auto took =
        std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - at).count();
    for (pid_t pid : pids) new_cluster().signal_backend(pid, SIGCONT);
    EXPECT_TRUE(noticed) << "round " << round << " " << backlog(p).describe();
    std::fprintf(stderr, "[hung-twice] round %d: noticed after %lld ms\n", round,
                 static_cast<long long>(took));
    EXPECT_TRUE(poll_until([&] { return p.metrics().sum("pgtandem_mirror_hung_links") == 0; },
                           kDeadline, milliseconds(100)));
    Backlog b;
    EXPECT_TRUE(wait_caught_up(p, &b)) << b.describe() << "\n" << tail(p.log_text(), 3000);
    return took;
  };
  const long long first = hang(1);
  const long long second = hang(2);
  t.join();
  ASSERT_GE(first, 0);
  ASSERT_GE(second, 0);
  EXPECT_LT(first, kTimeoutMs + 10000);
  EXPECT_LT(second, kTimeoutMs + 10000) << "the second hang waited for the first one's give-up time";
  ASSERT_TRUE(bench.ok()) << bench.describe();
  Backlog b;
  ASSERT_TRUE(wait_caught_up(p, &b)) << b.describe();
  expect_identical(db, "after two hangs");
  EXPECT_EQ(p.metrics().sum("pgtandem_mirror_apply_timeout_unresolved_total"), 0);
}

// The same hang, ended by a crash of new instead (a hung backend SIGKILLed: the postmaster
// restarts every backend): the units in flight never got an answer, and whether they committed
// cannot be known, so they are neither applied again nor dropped silently: a needs-repair mark
// `apply_timeout` names them, the count says how many, and catch-up carries on with the rest.
TEST_F(CatchupTest, HungNewCrashLeavesRepairMark) {
  const std::string db = make_db("hungcrash");
  if (HasFailure()) return;
  ProxyProcess& p = start_mirror_proxy("apply_timeout_ms = 500\n");
  std::thread t([&] {
    run_pgbench(p.endpoint(), {"-c", "2", "-j", "2", "-T", "20", "-R", "100", "-M", "prepared"},
                db, milliseconds(600000));
  });
  auto metric = [&](const char* name) { return p.metrics().sum(name); };
  const bool mirroring = poll_until([&] { return backlog(p).applied_live > 50; },
                                    milliseconds(60000), milliseconds(100));
  std::vector<pid_t> pids = mirror_backends(db, 2);
  if (!mirroring || pids.empty()) {
    t.join();
    FAIL() << "mirroring=" << mirroring << " backends on new=" << pids.size();
  }
  for (pid_t pid : pids) new_cluster().signal_backend(pid, SIGSTOP);
  const bool hung = poll_until([&] { return metric("pgtandem_mirror_hung_links") >= 1; },
                               milliseconds(60000), milliseconds(50));
  // Every stopped backend dies without running what it had received (SIGKILL reaches a stopped
  // process); the postmaster restarts the rest.
  for (size_t i = 1; i < pids.size(); ++i) ::kill(pids[i], SIGKILL);
  new_cluster().signal_backend(pids.front(), SIGKILL);
  new_cluster().wait_ready();
  const bool marked = poll_until(
      [&] {
        return metric("pgtandem_mirror_apply_timeout_unresolved_total") >= 1 &&
               metric("pgtandem_mirror_hung_links") == 0;
      },
      kDeadline, milliseconds(100));
  t.join();
  ASSERT_TRUE(hung) << backlog(p).describe();
  ASSERT_TRUE(marked) << backlog(p).describe() << "\n" << tail(p.log_text(), 3000);
  Backlog b;
  EXPECT_TRUE(wait_caught_up(p, &b)) << b.describe() << "\n" << tail(p.log_text(), 3000);
  HttpResponse status = http_get(p.admin_port(), "/status");
  EXPECT_NE(status.body.find("\"kind\":\"apply_timeout\""), std::string::npos) << status.body;
  EXPECT_EQ(status.body.find("\"unresolved_units\":0"), std::string::npos) << status.body;
  EXPECT_NE(p.log_text().find("mirrored writes of unknown fate"), std::string::npos);
  std::fprintf(stderr, "[apply-timeout] crash: %.0f unit(s) marked; %s\n",
               metric("pgtandem_mirror_apply_timeout_unresolved_total"), b.describe().c_str());
}

// The mirror links' backends on `new` terminated (pg_terminate_backend: SIGTERM, as a fast shutdown
// sends) at random moments under unbounded TPC-B, while the links have several transactions joined
// in one request in flight. A backend ended mid-request answers what it committed and then 57P01;
// what it did not answer did not commit. Sending the whole request again from the journal (as once)
// applies the answered transactions twice, a silent divergence of the balances; settled by the
// answers, old == new and no unit's fate is unknown. The moments come from a seed printed with the
// result.
TEST_F(CatchupTest, MirrorBackendsTerminatedMidBatchApplyNothingTwice) {
  const std::string db = make_db("terminated");
  if (HasFailure()) return;
  // new applies more slowly than old runs (no HOT updates), so the links' queues fill and their
  // requests carry several transactions.
  new_cluster().exec("CREATE INDEX ON pgbench_accounts (abalance); "
                     "CREATE INDEX ON pgbench_tellers (tbalance); "
                     "CREATE INDEX ON pgbench_branches (bbalance)", db);
  ProxyProcess& p = start_mirror_proxy();
  const unsigned seed = std::random_device{}();
  std::mt19937 rng(seed);
  ProcessResult bench;
  std::atomic<bool> bench_done{false};
  std::thread t([&] {
    bench = run_pgbench(p.endpoint(), {"-c", "16", "-j", "2", "-T", "25", "-M", "prepared"}, db,
                        milliseconds(600000));
    bench_done = true;
  });
  const bool mirroring = poll_until([&] { return backlog(p).applied_live > 200; },
                                    milliseconds(60000), milliseconds(50));
  // Until 20 backends were ended mid-request or the load ends (on a loaded machine catch-up may
  // take most of the run to drain: fewer then).
  long terminated = 0;
  while (mirroring && !bench_done.load() && terminated < 20) {
    // Once the links mirror live again (the backlog applied), 100-600 ms into it: the backends
    // then running a link's request.
    poll_until([&] { return bench_done.load() || backlog(p).live_state == 1; },
               milliseconds(20000), milliseconds(20));
    std::this_thread::sleep_for(milliseconds(std::uniform_int_distribution<int>(100, 600)(rng)));
    const std::string n = new_cluster().query_value(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '" + db +
        "' AND application_name = 'pgbench' AND state = 'active'");
    terminated += std::atol(n.c_str());
  }
  t.join();
  ASSERT_TRUE(mirroring) << backlog(p).describe();
  ASSERT_TRUE(bench.ok()) << bench.describe();
  ASSERT_GE(terminated, 1) << "seed " << seed << ": no backend was ended while running a request";
  Backlog b;
  ASSERT_TRUE(wait_caught_up(p, &b)) << b.describe() << "\n" << tail(p.log_text(), 3000);
  const double unknown = p.metrics().sum("pgtandem_mirror_lost_answer_unresolved_total");
  std::fprintf(stderr,
               "[terminated] seed %u: %ld mirror backends terminated; %.0f unit(s) of unknown "
               "fate; %s\n",
               seed, terminated, unknown, b.describe().c_str());
  EXPECT_EQ(unknown, 0) << "a terminated backend answers every unit it ends (57P01): seed " << seed
                        << "\n" << tail(p.log_text(), 3000);
  EXPECT_TRUE(poll_until(
      [&] { return pgbench_state(old_cluster(), db) == pgbench_state(new_cluster(), db); },
      milliseconds(60000), milliseconds(500)))
      << "seed " << seed;
  expect_identical(db, "after terminated mirror backends (seed " + std::to_string(seed) + ")");
  EXPECT_EQ(b.divergences, 0) << b.describe();
  const std::string status = http_get(p.admin_port(), "/status").body;
  EXPECT_NE(status.find("\"lost_answer_unresolved_units\":0"), std::string::npos) << status;
}
}  // namespace
}  // namespace pgtandem::it

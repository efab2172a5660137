// Shadow reads end to end (issue 5): a dedicated pgtandem with [shadow] sample_rate = 1 in front of
// the two clusters, a database with the same tables on both. Reads served by the primary (old) run
// on new too; the counters and the mismatch log say whether they agreed.
//
// Covered: pgbench -S on identical data, simple and prepared (matches only); named statements,
// fingerprints; recheck (persistent vs transient); the flipped phase (primary new, shadows on old); a row changed on new (a read touching it is
// a "rows" mismatch logged with that row, one not touching it matches); a column added on new
// ("columns"); a table missing on new ("error"); LIMIT without ORDER BY (skipped, not compared);
// redact_values; reads after mirrored writes (mirror_writes = true: compared once applied, never a
// mismatch); a rule's shadow_sample_rate over [shadow] sample_rate; nothing shadowed by default;
// the other target's answer spent on the mirror link's thread, not the session's worker.
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <boost/json/src.hpp>  // header-only Boost.JSON: compiled into this test file only

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/integration/fixture.h"
#include "tests/integration/harness/harness.h"

namespace pgtandem::it {
namespace {

constexpr milliseconds kDeadline{30000};

class ShadowTest : public ProxyTest {
 protected:
  void TearDown() override {
    ProxyTest::TearDown();
    drop_databases(databases_);
  }

  // A database on both clusters with the same table t (ids 1..10).
  std::string make_db(const std::string &base) {
    std::string db = unique("shadow_" + base);
    for (PgCluster *c : {&old_cluster(), &new_cluster()}) {
      c->create_database(db);
      c->exec(
          "CREATE TABLE t (id int PRIMARY KEY, note text); GRANT ALL ON t TO "
          "PUBLIC;"
          "INSERT INTO t SELECT g, 'note ' || g FROM generate_series(1, 10) g",
          db);
    }
    databases_.push_back(db);
    return db;
  }

  ProxyProcess &start(const std::string &shadow_toml = "sample_rate = 1\n",
                      const std::string &primary = "old") {
    dir_ = std::make_unique<TempDir>("pgtandem-shadow-it");
    ProxyOptions o = Env::get().default_proxy_options();
    o.primary = primary;
    o.extra_toml =
        "[shadow]\nmismatch_log = \"" + dir_->file("mismatches.jsonl") + "\"\n" + shadow_toml;
    return start_proxy(o);
  }

  std::string mismatch_log() const {
    try {
      return read_file(dir_->file("mismatches.jsonl"));
    } catch (const std::exception &) {
      return "";
    }
  }

  static double reads(const ProxyProcess &p, const std::string &outcome) {
    return p.metrics().sum("pgtandem_shadow_reads_total", {{"outcome", outcome}});
  }
  static double mismatches(const ProxyProcess &p, const std::string &kind) {
    return p.metrics().sum("pgtandem_shadow_mismatches_total", {{"kind", kind}});
  }
  static double skips(const ProxyProcess &p, const std::string &reason) {
    return p.metrics().sum("pgtandem_shadow_skips_total", {{"reason", reason}});
  }
  static double drops(const ProxyProcess &p, const std::string &reason) {
    return p.metrics().sum("pgtandem_shadow_drops_total", {{"reason", reason}});
  }
  static double compared(const ProxyProcess &p) { return reads(p, "match") + reads(p, "mismatch"); }

  // Waits until `n` shadow reads in all were compared (or skipped/dropped).
  static void wait_done(const ProxyProcess &p, double n) {
    ASSERT_TRUE(poll_until(
        [&] { return compared(p) + reads(p, "skipped") + reads(p, "dropped") >= n; }, kDeadline))
        << p.metrics().text();
  }

  std::unique_ptr<TempDir> dir_;
  std::vector<std::string> databases_;
};

// The acceptance run: identical data, pgbench -S for 10 s with every read sampled, in both the
// simple protocol and with prepared (named) statements: not one mismatch, and the shadow reads
// really ran (compared), not just skipped.
TEST_F(ShadowTest, PgbenchOnIdenticalDataMatchesOnly) {
  const std::string db = make_db("bench");
  for (PgCluster *c : {&old_cluster(), &new_cluster()}) {
    auto r = run_pgbench(c->endpoint(), {"-i", "-s", "1", "-q"}, db, milliseconds(300000));
    ASSERT_TRUE(r.ok()) << r.describe();
  }
  ProxyProcess &p = start();
  long transactions = 0;
  for (const char *mode : {"simple", "prepared"}) {
    const double compared_before = compared(p);
    auto bench = run_pgbench(p.endpoint(), {"-S", "-M", mode, "-c", "2", "-T", "5"}, db,
                             milliseconds(120000));
    ASSERT_TRUE(bench.ok()) << bench.describe();
    PgbenchSummary s = parse_pgbench(bench.out);
    ASSERT_TRUE(s.parsed) << bench.out;
    EXPECT_EQ(s.failed, 0);
    transactions += s.processed;
    // Sampled, and compared: -M prepared binds named statements, shadowed as unnamed copies.
    ASSERT_TRUE(poll_until([&] { return compared(p) > compared_before; }, kDeadline))
        << mode << "\n" << p.metrics().text();
  }
  // Every sampled read is accounted for: compared, skipped or dropped.
  ASSERT_TRUE(poll_until(
      [&] {
        return compared(p) + reads(p, "skipped") + reads(p, "dropped") >=
               static_cast<double>(transactions);
      },
      kDeadline))
      << p.metrics().text();
  EXPECT_EQ(reads(p, "mismatch"), 0) << p.metrics().text() << mismatch_log();
  EXPECT_EQ(mismatch_log(), "");
  EXPECT_EQ(skips(p, "named_statement"), 0) << p.metrics().text();
  std::printf(
      "[shadow] pgbench -S (simple + prepared, 10 s): %ld transactions; shadow match=%g "
      "skipped=%g dropped=%g (queue_full %g, busy %g)\n",
      transactions, reads(p, "match"), reads(p, "skipped"), reads(p, "dropped"),
      drops(p, "queue_full"), drops(p, "busy"));
}

// A prepared (named) statement is shadowed too: a mismatch on a changed row, found with its
// fingerprint (the bounded per-fingerprint metric), the normalized query in the log.
TEST_F(ShadowTest, NamedStatementMismatchIsCountedByFingerprint) {
  const std::string db = make_db("named");
  new_cluster().exec("UPDATE t SET note = 'changed on new' WHERE id = 4", db);
  ProxyProcess &p = start();
  ConnPtr c = connect(p.endpoint().conninfo("", db));
  ResultPtr prep(PQprepare(c.get(), "by_id", "SELECT note FROM t WHERE id = $1::int", 1, nullptr));
  ASSERT_EQ(PQresultStatus(prep.get()), PGRES_COMMAND_OK) << PQerrorMessage(c.get());
  for (const char *id : {"3", "4", "5", "4"}) {
    ResultPtr r(PQexecPrepared(c.get(), "by_id", 1, std::vector<const char *>{id}.data(), nullptr,
                               nullptr, 0));
    ASSERT_EQ(PQresultStatus(r.get()), PGRES_TUPLES_OK) << PQerrorMessage(c.get());
    EXPECT_EQ(std::string(PQgetvalue(r.get(), 0, 0)), std::string("note ") + id)
        << "the client always gets the primary's answer";
  }
  wait_done(p, 4);
  EXPECT_EQ(reads(p, "match"), 2) << p.metrics().text();
  EXPECT_EQ(mismatches(p, "rows"), 2) << p.metrics().text();
  ASSERT_TRUE(poll_until([&] { return !mismatch_log().empty(); }, kDeadline));
  const std::string log = mismatch_log();
  EXPECT_NE(log.find("\"normalized\":\"SELECT note FROM t WHERE id = $1::int\""), std::string::npos)
      << log;
  const size_t at = log.find("\"fingerprint\":\"");
  ASSERT_NE(at, std::string::npos) << log;
  const std::string fingerprint = log.substr(at + 15, 16);
  EXPECT_EQ(p.metrics().sum("pgtandem_shadow_mismatches_by_fingerprint_total",
                            {{"fingerprint", fingerprint}}),
            2)
      << p.metrics().text();
  // The same statement written with another constant has the same fingerprint.
  exec(c.get(), "SELECT note FROM t WHERE id = 4");
  EXPECT_TRUE(poll_until([&] { return mismatches(p, "rows") == 3; }, kDeadline));
  EXPECT_EQ(p.metrics().sum("pgtandem_shadow_mismatches_by_fingerprint_total", {}), 3);
}

// The admin /status shows the mismatch table: one entry per fingerprint, highest count first, with
// the normalized query, counts by kind, first/last seen, the rule and an example.
TEST_F(ShadowTest, StatusShowsTheMismatchTableByFingerprint) {
  const std::string db = make_db("status");
  new_cluster().exec("UPDATE t SET note = 'differs' WHERE id = 1", db);
  new_cluster().exec("ALTER TABLE t ADD COLUMN extra int", db);
  ProxyProcess &p = start();
  ConnPtr c = connect(p.endpoint().conninfo("", db));
  // Three row-count mismatches of one statement shape, one columns mismatch of another, and a
  // matching read.
  for (int id : {1, 1, 1}) exec(c.get(), "SELECT note FROM t WHERE id = " + std::to_string(id));
  exec(c.get(), "SELECT * FROM t WHERE id = 2");
  exec(c.get(), "SELECT note FROM t WHERE id = 3");
  wait_done(p, 5);
  const HttpResponse r = http_get(p.admin_port(), "/status");
  ASSERT_EQ(r.status, 200) << r.body;
  const boost::json::value status = boost::json::parse(r.body);
  const boost::json::object &shadow = status.at("shadow").as_object();
  EXPECT_EQ(shadow.at("mismatches_total").to_number<int>(), 4) << r.body;
  EXPECT_EQ(shadow.at("other").to_number<int>(), 0);
  const boost::json::array &table = shadow.at("table").as_array();
  ASSERT_EQ(table.size(), 2u) << r.body;
  const boost::json::object &top = table[0].as_object();
  EXPECT_EQ(top.at("count").to_number<int>(), 3) << r.body;
  EXPECT_EQ(top.at("query").as_string(), "SELECT note FROM t WHERE id = $1") << r.body;
  EXPECT_EQ(top.at("kinds").at("rows").to_number<int>(), 3) << r.body;
  EXPECT_EQ(top.at("rule").as_string(), "default");
  EXPECT_EQ(top.at("target").as_string(), "new");
  EXPECT_EQ(top.at("fingerprint").as_string().size(), 16u);
  EXPECT_FALSE(top.at("first_seen").as_string().empty());
  EXPECT_FALSE(top.at("example").as_string().empty());
  const boost::json::object &second = table[1].as_object();
  EXPECT_EQ(second.at("count").to_number<int>(), 1);
  EXPECT_EQ(second.at("kinds").at("columns").to_number<int>(), 1) << r.body;
  // The same fingerprints label the bounded metric.
  EXPECT_EQ(p.metrics().sum("pgtandem_shadow_mismatches_by_fingerprint_total",
                            {{"fingerprint", std::string(top.at("fingerprint").as_string())}}),
            3);
}

// A rule's own comparison options: its reads ignore the column that differs; other reads do not.
TEST_F(ShadowTest, RuleComparisonOptionsApplyToItsReadsOnly) {
  const std::string db = make_db("ruleopts");
  new_cluster().exec("UPDATE t SET note = 'rewritten by the migration' WHERE id = 8", db);
  ProxyProcess &p = start(
      "sample_rate = 1\n\n[[routes]]\nname = \"reports\"\napplication_names = [\"reports\"]\n"
      "target = \"primary\"\nshadow_ignore_columns = [\"note\"]\n");
  ConnPtr reports = connect(p.endpoint().conninfo("", db) + " application_name=reports");
  EXPECT_EQ(query_value(reports.get(), "SELECT id, note FROM t WHERE id = 8"), "8");
  wait_done(p, 1);
  EXPECT_EQ(reads(p, "match"), 1) << "note is ignored for the reports rule\n" << p.metrics().text();
  ConnPtr other = connect(p.endpoint().conninfo("", db) + " application_name=web");
  EXPECT_EQ(query_value(other.get(), "SELECT id, note FROM t WHERE id = 8"), "8");
  wait_done(p, 2);
  EXPECT_EQ(mismatches(p, "rows"), 1) << p.metrics().text();
}

// On a mismatch, the recheck runs the read on both targets again after a delay: a difference in
// the data stays (persistent); one fixed meanwhile was transient.
TEST_F(ShadowTest, RecheckClassifiesPersistentAndTransient) {
  const std::string db = make_db("recheck");
  new_cluster().exec("UPDATE t SET note = 'stays different' WHERE id = 2", db);
  new_cluster().exec("UPDATE t SET note = 'fixed soon' WHERE id = 9", db);
  ProxyProcess &p = start("sample_rate = 1\nrecheck_delay_ms = 3000\n");
  ConnPtr c = connect(p.endpoint().conninfo("", db));
  auto rechecks = [&](const std::string &result) {
    return p.metrics().sum("pgtandem_shadow_rechecks_total", {{"result", result}});
  };
  EXPECT_EQ(query_value(c.get(), "SELECT note FROM t WHERE id = 2"), "note 2");
  EXPECT_EQ(query_value(c.get(), "SELECT note FROM t WHERE id = 9"), "note 9");
  ASSERT_TRUE(poll_until([&] { return mismatches(p, "rows") == 2; }, kDeadline))
      << p.metrics().text();
  // Fixed on new before the recheck runs (3 s after the mismatch).
  new_cluster().exec("UPDATE t SET note = 'note 9' WHERE id = 9", db);
  ASSERT_TRUE(poll_until([&] { return rechecks("persistent") + rechecks("transient") +
                                          rechecks("failed") >= 2; },
                         kDeadline))
      << p.metrics().text();
  EXPECT_EQ(rechecks("persistent"), 1) << p.metrics().text();
  EXPECT_EQ(rechecks("transient"), 1) << p.metrics().text();
  EXPECT_EQ(rechecks("failed"), 0) << p.metrics().text();
  // The session is unaffected: it goes on reading.
  EXPECT_EQ(query_value(c.get(), "SELECT count(*) FROM t"), "10");
}

// After the flip (primary new), shadow reads run on old: a row that differs on old is a mismatch
// counted against target old.
TEST_F(ShadowTest, FlippedPhaseShadowsOnOld) {
  const std::string db = make_db("flipped");
  old_cluster().exec("UPDATE t SET note = 'stale on old' WHERE id = 5", db);
  ProxyProcess &p = start("sample_rate = 1\n", "new");
  ConnPtr c = connect(p.endpoint().conninfo("", db));
  EXPECT_EQ(query_value(c.get(), "SELECT note FROM t WHERE id = 5"), "note 5")
      << "new is the primary: its answer reaches the client";
  EXPECT_EQ(query_value(c.get(), "SELECT note FROM t WHERE id = 6"), "note 6");
  wait_done(p, 2);
  EXPECT_EQ(reads(p, "match"), 1) << p.metrics().text();
  EXPECT_EQ(mismatches(p, "rows"), 1) << p.metrics().text();
  ASSERT_TRUE(poll_until([&] { return !mismatch_log().empty(); }, kDeadline));
  const std::string log = mismatch_log();
  EXPECT_NE(log.find("\"target\":\"old\""), std::string::npos) << log;
  EXPECT_NE(log.find("stale on old"), std::string::npos) << log;
}

TEST_F(ShadowTest, ChangedRowIsAMismatchOnlyForReadsTouchingIt) {
  const std::string db = make_db("rows");
  new_cluster().exec("UPDATE t SET note = 'changed on new' WHERE id = 7", db);
  ProxyProcess &p = start();
  ConnPtr c = connect(p.endpoint().conninfo("", db));
  EXPECT_EQ(query_value(c.get(), "SELECT note FROM t WHERE id = 3"), "note 3");
  wait_done(p, 1);
  EXPECT_EQ(reads(p, "match"), 1) << p.metrics().text();
  EXPECT_EQ(reads(p, "mismatch"), 0);

  EXPECT_EQ(query_value(c.get(), "SELECT count(*) FROM (SELECT * FROM t WHERE id > 5) s"), "5");
  wait_done(p, 2);
  EXPECT_EQ(reads(p, "match"), 2) << "a count does not see the changed note";

  exec(c.get(), "SELECT id, note FROM t WHERE id BETWEEN 6 AND 8");
  wait_done(p, 3);
  EXPECT_EQ(mismatches(p, "rows"), 1) << p.metrics().text();
  ASSERT_TRUE(poll_until([&] { return !mismatch_log().empty(); }, kDeadline));
  const std::string log = mismatch_log();
  EXPECT_NE(log.find("\"kind\":\"rows\""), std::string::npos) << log;
  EXPECT_NE(log.find("changed on new"), std::string::npos) << log;
  EXPECT_NE(log.find("note 7"), std::string::npos) << log;
  EXPECT_NE(log.find("BETWEEN 6 AND 8"), std::string::npos) << log;
  EXPECT_EQ(log.find("note 3"), std::string::npos) << log;

  // The extended protocol (unnamed statement) is shadowed too.
  ResultPtr r(PQexecParams(c.get(), "SELECT note FROM t WHERE id = $1::int", 1, nullptr,
                           std::vector<const char *>{"7"}.data(), nullptr, nullptr, 0));
  ASSERT_EQ(PQresultStatus(r.get()), PGRES_TUPLES_OK);
  wait_done(p, 4);
  EXPECT_EQ(mismatches(p, "rows"), 2) << p.metrics().text();
}

TEST_F(ShadowTest, RedactedValuesStayOutOfTheLog) {
  const std::string db = make_db("redact");
  new_cluster().exec("UPDATE t SET note = 'secret on new' WHERE id = 2", db);
  ProxyProcess &p = start("sample_rate = 1\nredact_values = true\n");
  ConnPtr c = connect(p.endpoint().conninfo("", db));
  exec(c.get(), "SELECT id, note FROM t WHERE id = 2");
  ASSERT_TRUE(poll_until([&] { return !mismatch_log().empty(); }, kDeadline)) << p.metrics().text();
  const std::string log = mismatch_log();
  EXPECT_EQ(log.find("secret on new"), std::string::npos) << log;
  EXPECT_NE(log.find("<redacted>"), std::string::npos) << log;
}

TEST_F(ShadowTest, ColumnAddedOnNewIsAColumnsMismatch) {
  const std::string db = make_db("columns");
  new_cluster().exec("ALTER TABLE t ADD COLUMN extra int", db);
  ProxyProcess &p = start();
  ConnPtr c = connect(p.endpoint().conninfo("", db));
  exec(c.get(), "SELECT * FROM t WHERE id = 1");
  wait_done(p, 1);
  EXPECT_EQ(mismatches(p, "columns"), 1) << p.metrics().text();
  // Naming the columns hides the difference.
  exec(c.get(), "SELECT id, note FROM t WHERE id = 1");
  wait_done(p, 2);
  EXPECT_EQ(reads(p, "match"), 1) << p.metrics().text();
}

TEST_F(ShadowTest, TableMissingOnNewIsAnErrorMismatch) {
  const std::string db = make_db("error");
  old_cluster().exec(
      "CREATE TABLE only_old (v int); GRANT ALL ON only_old TO PUBLIC;"
      "INSERT INTO only_old VALUES (1)",
      db);
  ProxyProcess &p = start();
  ConnPtr c = connect(p.endpoint().conninfo("", db));
  EXPECT_EQ(query_value(c.get(), "SELECT v FROM only_old"), "1");
  wait_done(p, 1);
  EXPECT_EQ(mismatches(p, "error"), 1) << p.metrics().text();
  // The same error on both sides is no mismatch.
  ResultPtr r(PQexec(c.get(), "SELECT v FROM missing_everywhere"));
  EXPECT_EQ(PQresultStatus(r.get()), PGRES_FATAL_ERROR);
  wait_done(p, 2);
  EXPECT_EQ(reads(p, "match"), 1) << p.metrics().text();
}

TEST_F(ShadowTest, LimitWithoutOrderByIsSkipped) {
  const std::string db = make_db("limit");
  new_cluster().exec("UPDATE t SET note = 'changed on new' WHERE id = 1", db);
  ProxyProcess &p = start();
  ConnPtr c = connect(p.endpoint().conninfo("", db));
  exec(c.get(), "SELECT id, note FROM t LIMIT 1");
  wait_done(p, 1);
  EXPECT_EQ(skips(p, "limit_without_order_by"), 1) << p.metrics().text();
  EXPECT_EQ(reads(p, "mismatch"), 0);
  EXPECT_EQ(mismatch_log(), "");
  // With ORDER BY it is compared (and differs: row 1 changed on new).
  exec(c.get(), "SELECT id, note FROM t ORDER BY id LIMIT 1");
  wait_done(p, 2);
  EXPECT_EQ(mismatches(p, "rows"), 1) << p.metrics().text();
}

TEST_F(ShadowTest, ReadsAfterMirroredWritesMatch) {
  const std::string db = make_db("mirror");
  dir_ = std::make_unique<TempDir>("pgtandem-shadow-it");
  ProxyOptions o = Env::get().default_proxy_options();
  o.section_lines[""].push_back("mirror_writes = true");
  o.extra_toml = "[mirror]\njournal_path = \"" + dir_->file("mirror.journal") +
                 "\"\n[shadow]\nsample_rate = 1\nmismatch_log = \"" +
                 dir_->file("mismatches.jsonl") + "\"\n";
  ProxyProcess &p = start_proxy(o);
  ConnPtr c = connect(p.endpoint().conninfo("", db));
  constexpr int kRounds = 10;
  auto applied = [&] {
    return p.metrics().sum("pgtandem_mirror_writes_total", {{"outcome", "applied"}});
  };
  // A read right behind a write finds the write not yet applied on new: not compared (noise).
  exec(c.get(), "INSERT INTO t VALUES (100, 'written')");
  exec(c.get(), "SELECT id, note FROM t WHERE id >= 100");
  wait_done(p, 1);
  EXPECT_EQ(reads(p, "match") + skips(p, "writes_pending"), 1) << p.metrics().text();
  const double matched = reads(p, "match");
  // Once the mirror applied it, the same read is compared, and matches.
  for (int i = 1; i <= kRounds; ++i) {
    exec(c.get(), "INSERT INTO t VALUES (" + std::to_string(100 + i) + ", 'written')");
    ASSERT_TRUE(poll_until([&] { return applied() >= i + 1; }, kDeadline)) << p.metrics().text();
    exec(c.get(), "SELECT id, note FROM t WHERE id >= 100");
    wait_done(p, i + 1);
  }
  EXPECT_EQ(reads(p, "mismatch"), 0) << p.metrics().text() << mismatch_log();
  EXPECT_EQ(reads(p, "match") - matched, kRounds) << p.metrics().text();
}

TEST_F(ShadowTest, SlowShadowIsDroppedWithoutDelayingTheClient) {
  const std::string db = make_db("slow");
  ProxyProcess& p = start("sample_rate = 1\nstatement_timeout_ms = 300\n");
  // A lock on new holds the shadow read back; the client's answer comes from old at once.
  ConnPtr locker = connect(new_cluster().conninfo(db));
  exec(locker.get(), "BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE");
  ConnPtr c = connect(p.endpoint().conninfo("", db));
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(query_value(c.get(), "SELECT note FROM t WHERE id = 5"), "note 5");
  EXPECT_LT(std::chrono::steady_clock::now() - started, milliseconds(250));
  wait_done(p, 1);
  EXPECT_EQ(reads(p, "dropped"), 1) << p.metrics().text();
  exec(locker.get(), "ROLLBACK");
  // mirror_writes is off: the timed-out connection was closed, the next shadow read reconnects.
  EXPECT_EQ(query_value(c.get(), "SELECT note FROM t WHERE id = 5"), "note 5");
  wait_done(p, 2);
  EXPECT_EQ(reads(p, "match"), 1) << p.metrics().text();
}

TEST_F(ShadowTest, RuleRateWinsOverTheDefault) {
  const std::string db = make_db("rule");
  ProxyProcess &p = start(
      "sample_rate = 0\n[[routes]]\nname = "
      "\"t-reads\"\ntables = \"t\"\ntarget = \"primary\"\n"
      "shadow_sample_rate = 1\n");
  new_cluster().exec("UPDATE t SET note = 'changed on new' WHERE id = 4", db);
  ConnPtr c = connect(p.endpoint().conninfo("", db));
  exec(c.get(), "SELECT 1");  // no rule: the default rate, 0
  exec(c.get(), "SELECT id, note FROM t WHERE id = 4");
  wait_done(p, 1);
  EXPECT_EQ(mismatches(p, "rows"), 1) << p.metrics().text();
  ASSERT_TRUE(poll_until([&] { return !mismatch_log().empty(); }, kDeadline));
  EXPECT_NE(mismatch_log().find("\"rule\":\"t-reads\""), std::string::npos) << mismatch_log();
  std::this_thread::sleep_for(milliseconds(200));
  EXPECT_EQ(compared(p) + reads(p, "skipped"), 1) << p.metrics().text();
}

// CPU time (user + system, clock ticks) of pgtandem's thread named `name`; -1 if there is none.
long thread_ticks(pid_t pid, const std::string &name) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (const auto &task : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::string comm;
    std::getline(std::ifstream(task.path() / "comm"), comm);
    if (comm != name) continue;
    std::string stat;
    std::getline(std::ifstream(task.path() / "stat"), stat);
    // After "(comm)": state, then fields 4..; utime and stime are fields 14 and 15.
    std::istringstream in(stat.substr(stat.rfind(')') + 2));
    std::string field;
    long utime = 0;
    long stime = 0;
    for (int i = 3; i <= 15 && in >> field; ++i) {
      if (i == 14) utime = std::stol(field);
      if (i == 15) stime = std::stol(field);
    }
    return utime + stime;
  }
  return -1;
}

// The other target's answer to a shadow read is read, digested and compared on the mirror link's
// thread (pgt-link-0: [mirror] link_threads = 1, the default, at the links' lower priority), not
// on the session's worker, whose relay it would slow. Mirroring is off here, so that thread has
// nothing else to do: its CPU time grows with the shadow reads (each reads 10 rows). Against a
// lane that runs on the session's worker it stays at zero however many reads are compared.
TEST_F(ShadowTest, ShadowReadsRunOnTheMirrorLinkThread) {
  const std::string db = make_db("thread");
  ProxyProcess &p = start();
  ConnPtr c = connect(p.endpoint().conninfo("", db));
  ASSERT_GE(thread_ticks(p.pid(), "pgt-worker-0"), 0) << "threads are not named";
  const long before = thread_ticks(p.pid(), "pgt-link-0");
  ASSERT_GE(before, 0) << "no mirror link thread";
  // Until the thread spent 50 ms (5 ticks) more than at the start, 2,000 reads at a time.
  constexpr long kTicks = 5;
  long spent = 0;
  const auto until = std::chrono::steady_clock::now() + kDeadline;
  while (spent < kTicks && std::chrono::steady_clock::now() < until) {
    for (int i = 0; i < 2000; ++i) exec(c.get(), "SELECT id, note FROM t");
    spent = thread_ticks(p.pid(), "pgt-link-0") - before;
  }
  std::printf("[shadow-thread] pgt-link-0 spent %ld ticks on %g compared shadow reads\n", spent,
              compared(p));
  EXPECT_GE(spent, kTicks) << p.metrics().text();
  EXPECT_GT(reads(p, "match"), 100) << p.metrics().text();
  EXPECT_EQ(reads(p, "mismatch"), 0) << p.metrics().text() << mismatch_log();
}

TEST_F(ShadowTest, OffByDefault) {
  const std::string db = make_db("off");
  new_cluster().exec("UPDATE t SET note = 'changed on new' WHERE id = 1", db);
  ProxyProcess &p = start("");
  ConnPtr c = connect(p.endpoint().conninfo("", db));
  for (int i = 0; i < 5; ++i) exec(c.get(), "SELECT id, note FROM t");
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_EQ(compared(p) + reads(p, "skipped") + reads(p, "dropped"), 0) << p.metrics().text();
}

}  // namespace
}  // namespace pgtandem::it

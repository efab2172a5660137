// Write mirroring when new cannot keep up or fails (issue 3, "Tests and acceptance"): what cannot
// reach new (new stopped mid-run, or down at start) goes to the journal, which `pgtandem replay`
// applies so that the tables are identical again, never twice; divergences are counted; the
// client never waits for a blocked mirror; a graceful shutdown loses no queued write; replay
// reproduces a journaled session (state, prepared statements, COPY); queue overflow in both
// policies; the documented journaling after a mirror error; a coalesced transaction failing on
// new. The fixture: mirror_fixture.h.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include "tests/integration/mirror_fixture.h"

namespace pgtandem::it {
namespace {

// ---------------------------------------------------------------------------------------------
// 7. new stopped mid-run: clients see nothing; the journal gets the rest; replay repairs.

TEST_F(MirrorTest, NewStoppedMidRunIsRepairedByReplay) {
  std::string db = make_db("stopnew");
  pgbench_init_both(db);
  if (HasFatalFailure()) return;
  ProxyProcess& p = start_mirror_proxy({"reconnect_interval_ms = 200"});
  ProcessResult bench;
  auto started = Clock::now();
  std::thread t([&] {
    bench = run_pgbench(p.endpoint(), {"-c", "4", "-j", "2", "-T", "10"}, db, milliseconds(300000));
  });
  // ~3 s in, once writes are being mirrored, stop new.
  bool mirroring =
      poll_until([&] { return Clock::now() - started >= seconds(3) && counters(p).applied > 0; },
                 milliseconds(60000), milliseconds(100));
  new_cluster().stop();
  t.join();
  ASSERT_TRUE(mirroring) << "no write was mirrored before new was stopped: "
                         << counters(p).describe() << "\n"
                         << bench.describe();
  PgbenchSummary s = parse_pgbench(bench.out);
  ASSERT_TRUE(bench.ok()) << bench.describe();
  ASSERT_TRUE(s.parsed) << bench.describe();
  EXPECT_EQ(s.failed, 0) << bench.describe();
  EXPECT_GT(s.processed, 0);
  MirrorCounters idle;
  ASSERT_TRUE(wait_mirror_idle(p, kMirrorDeadline, 5, &idle)) << idle.describe();
  EXPECT_GT(idle.journaled, 0) << idle.describe();
  EXPECT_EQ(idle.failed, 0) << idle.describe();
  EXPECT_GT(file_size(journal_), 0);
  EXPECT_GT(idle.journal_bytes, 0) << idle.describe();
  std::fprintf(stderr, "[mirror] %ld transactions; mirror %s\n", s.processed,
               idle.describe().c_str());

  new_cluster().start();
  ProcessResult replay = run_replay(p);
  EXPECT_EQ(replay.exit_code, 0) << replay.describe();
  std::fprintf(stderr, "[mirror] replay report:\n%s\n", tail(replay.out, 2000).c_str());
  EXPECT_GT(report_number(replay.out, "applied"), 0) << replay.out;
  expect_pgbench_identical(db, "after replay");

  // Again: nothing is applied twice.
  ProcessResult again = run_replay(p);
  EXPECT_EQ(again.exit_code, 0) << again.describe();
  EXPECT_EQ(report_number(again.out, "applied"), 0) << again.out;
  EXPECT_EQ(report_number(again.out, "skipped \\(already applied\\)"),
            report_number(replay.out, "applied") +
                report_number(replay.out, "skipped \\(already applied\\)"))
      << again.out;
  expect_pgbench_identical(db, "after the second replay");
}

// ---------------------------------------------------------------------------------------------
// 8. new down when pgtandem starts: clients work, writes are journaled, and once new is back, new
// sessions mirror again.

TEST_F(MirrorTest, NewDownAtStartThenBack) {
  std::string db = make_db("downatstart", "CREATE TABLE t (id int PRIMARY KEY, v text)");
  new_cluster().stop();
  ProxyProcess& p = start_mirror_proxy({"reconnect_interval_ms = 200"});
  int next_id = 1;
  int errors = 0;
  std::string first_error;
  for (int session = 0; session < 4; ++session) {
    ConnPtr c = connect_raw(p.endpoint().conninfo("", db));
    if (PQstatus(c.get()) != CONNECTION_OK) {
      ++errors;
      if (first_error.empty()) first_error = PQerrorMessage(c.get());
      continue;
    }
    for (int i = 0; i < 5; ++i) {
      std::string sql = "INSERT INTO t VALUES (" + std::to_string(next_id++) + ", 'while down')";
      if (i == 4) sql = "BEGIN; " + sql + "; COMMIT";
      ResultPtr r(PQexec(c.get(), sql.c_str()));
      if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
        ++errors;
        if (first_error.empty()) first_error = PQerrorMessage(c.get());
      }
    }
    EXPECT_EQ(query_value(c.get(), "SELECT count(*) FROM t"), std::to_string(next_id - 1));
  }
  EXPECT_EQ(errors, 0) << first_error;
  MirrorCounters idle;
  ASSERT_TRUE(wait_mirror_idle(p, kMirrorDeadline, 5, &idle)) << idle.describe();
  EXPECT_GE(idle.journaled, 20) << idle.describe();
  EXPECT_EQ(idle.applied, 0) << idle.describe();
  EXPECT_GT(file_size(journal_), 0);

  new_cluster().start();
  // A session that starts after new is back (and after reconnect_interval_ms) mirrors directly.
  bool mirrored = false;
  int attempts = 0;
  auto deadline = Clock::now() + milliseconds(120000);
  while (!mirrored && Clock::now() < deadline) {
    ++attempts;
    int id = 1000 + attempts;
    {
      ConnPtr c = client(p, db);
      exec(c.get(), "INSERT INTO t VALUES (" + std::to_string(id) + ", 'after new is back')");
    }
    mirrored =
        wait_value(new_cluster(), db, "SELECT count(*) FROM t WHERE id = " + std::to_string(id),
                   "1", milliseconds(5000));
  }
  ASSERT_TRUE(mirrored) << "no new session mirrored after new came back (" << attempts
                        << " attempts); " << counters(p).describe();
  std::fprintf(stderr, "[mirror] mirrored again after %d session(s)\n", attempts);
  EXPECT_GT(counters(p).applied, 0);
  EXPECT_EQ(new_cluster().query_value("SELECT count(*) FROM t WHERE id < 1000", db), "0")
      << "writes made while new was down reached it without replay";

  // And replay brings the rest.
  ASSERT_TRUE(wait_mirror_idle(p, kMirrorDeadline, 5, &idle)) << idle.describe();
  ProcessResult replay = run_replay(p);
  EXPECT_EQ(replay.exit_code, 0) << replay.describe();
  expect_same(db, "SELECT id, v FROM t ORDER BY id", "table t after replay");
  EXPECT_EQ(counters(p).divergences, 0);
}

// ---------------------------------------------------------------------------------------------
// 9. A divergence is counted and logged; the client does not notice.

TEST_F(MirrorTest, DivergenceIsCountedAndTheClientIsUnaffected) {
  std::string db = make_db("diverge",
                           "CREATE TABLE t (id int PRIMARY KEY, v int);"
                           "INSERT INTO t SELECT g, 0 FROM generate_series(1, 10) g");
  ProxyProcess& p = start_mirror_proxy();
  new_cluster().exec("DELETE FROM t WHERE id = 5", db);
  MirrorCounters before = counters(p);
  ConnPtr c = client(p, db);
  {
    ResultPtr r = exec(c.get(), "UPDATE t SET v = v + 1 WHERE id = 5");
    EXPECT_STREQ(PQcmdTuples(r.get()), "1");
  }
  ASSERT_TRUE(poll_until([&] { return counters(p).divergences > before.divergences; },
                         kMirrorDeadline, milliseconds(100)))
      << counters(p).describe();
  Metrics m = p.metrics();
  EXPECT_EQ(m.sum("pgtandem_mirror_divergences_total", {{"kind", "row_count"}}), 1) << m.text();
  EXPECT_EQ(m.sum("pgtandem_mirror_divergences_total"), 1) << m.text();
  EXPECT_TRUE(
      poll_until([&] { return p.log_text().find("mirror divergence") != std::string::npos; },
                 milliseconds(10000)))
      << tail(p.log_text());
  // The session goes on, and so does its mirroring.
  EXPECT_EQ(query_value(c.get(), "SELECT v FROM t WHERE id = 5"), "1");
  exec(c.get(), "UPDATE t SET v = 7 WHERE id = 6");
  EXPECT_TRUE(wait_value(new_cluster(), db, "SELECT v FROM t WHERE id = 6", "7"))
      << counters(p).describe();
  EXPECT_EQ(counters(p).divergences, 1);
}

// The link compares the target's answers with the primary's as it reads them, and writes them down
// only from the first difference: a transaction that diverges in its third statement is still
// reported with every statement's answer, the matched ones before it included, whether it was
// joined into one request (simple Queries) or sent as it came (simple and extended mixed).
TEST_F(MirrorTest, DivergenceInsideATransactionNamesEveryAnswer) {
  std::string db = make_db("diverge_txn",
                           "CREATE TABLE t (id int PRIMARY KEY, v int);"
                           "INSERT INTO t SELECT g, 0 FROM generate_series(1, 10) g");
  ProxyProcess& p = start_mirror_proxy();
  new_cluster().exec("DELETE FROM t WHERE id IN (5, 8)", db);
  ConnPtr c = client(p, db);
  exec(c.get(), "BEGIN");
  exec(c.get(), "UPDATE t SET v = v + 1 WHERE id = 4");
  exec(c.get(), "UPDATE t SET v = v + 1 WHERE id = 5");
  exec(c.get(), "COMMIT");
  exec(c.get(), "BEGIN");
  exec(c.get(), "UPDATE t SET v = v + 1 WHERE id = 7");
  {
    const char* values[] = {"8"};
    ResultPtr r(PQexecParams(c.get(), "UPDATE t SET v = v + 2 WHERE id = $1", 1, nullptr, values,
                             nullptr, nullptr, 0));
    ASSERT_EQ(PQresultStatus(r.get()), PGRES_COMMAND_OK) << PQerrorMessage(c.get());
    EXPECT_STREQ(PQcmdTuples(r.get()), "1");
  }
  exec(c.get(), "COMMIT");
  ASSERT_TRUE(poll_until([&] { return counters(p).divergences >= 2; }, kMirrorDeadline,
                         milliseconds(100)))
      << counters(p).describe();
  const std::string want = "BEGIN, UPDATE 1, UPDATE 0, COMMIT";
  EXPECT_TRUE(poll_until(
      [&] {
        const std::string log = p.log_text();
        const size_t first = log.find(want);
        return first != std::string::npos && log.find(want, first + 1) != std::string::npos;
      },
      milliseconds(10000)))
      << tail(p.log_text());
  Metrics m = p.metrics();
  EXPECT_EQ(m.sum("pgtandem_mirror_divergences_total", {{"kind", "row_count"}}), 2) << m.text();
  // The rows that exist on both were updated on both.
  EXPECT_EQ(new_cluster().query_value("SELECT v FROM t WHERE id = 4", db), "1");
  EXPECT_EQ(new_cluster().query_value("SELECT v FROM t WHERE id = 7", db), "1");
  EXPECT_EQ(counters(p).divergences, 2);
}

// ---------------------------------------------------------------------------------------------
// 10. The client never waits for the mirror: with the table locked on new, so that the mirror
// cannot apply anything, clients' writes through pgtandem still complete; once the lock goes, the
// mirror catches up.

// Holds an ACCESS EXCLUSIVE lock on a table of new until release() (or destruction).
class NewTableLock {
 public:
  NewTableLock(const PgCluster& c, const std::string& db, const std::string& table)
      : conn_(connect(c.conninfo(db))) {
    exec(conn_.get(), "BEGIN");
    exec(conn_.get(), "LOCK TABLE " + table + " IN ACCESS EXCLUSIVE MODE");
  }
  ~NewTableLock() { release(); }
  void release() {
    if (conn_) {
      PQclear(PQexec(conn_.get(), "ROLLBACK"));
      conn_.reset();
    }
  }

 private:
  ConnPtr conn_;
};

TEST_F(MirrorTest, ClientNeverWaitsForABlockedMirror) {
  std::string db = make_db("blocked", "CREATE TABLE t (id int PRIMARY KEY, v text)");
  ProxyProcess& p = start_mirror_proxy();
  NewTableLock lock(new_cluster(), db, "t");
  ConnPtr c = client(p, db);
  for (int i = 1; i <= 50; ++i) {
    ResultPtr r = exec(c.get(), "INSERT INTO t VALUES (" + std::to_string(i) + ", 'x')");
    EXPECT_STREQ(PQcmdStatus(r.get()), "INSERT 0 1");
  }
  // Another session too, with an explicit transaction.
  {
    ConnPtr c2 = client(p, db);
    exec(c2.get(), "BEGIN; INSERT INTO t VALUES (1001, 'y'); COMMIT");
  }
  // All done on the primary while the mirror is stuck behind the lock.
  EXPECT_EQ(old_cluster().query_value("SELECT count(*) FROM t", db), "51");
  EXPECT_GT(counters(p).queue_bytes, 0) << counters(p).describe();
  lock.release();
  std::string last;
  EXPECT_TRUE(wait_value(new_cluster(), db, "SELECT count(*) FROM t", "51", kMirrorDeadline, &last))
      << last << "; " << counters(p).describe();
  expect_same(db, "SELECT id, v FROM t ORDER BY id", "table t");
  MirrorCounters after;
  ASSERT_TRUE(wait_mirror_idle(p, kMirrorDeadline, 5, &after)) << after.describe();
  EXPECT_EQ(after.divergences + after.journaled + after.failed, 0) << after.describe();
}

// ---------------------------------------------------------------------------------------------
// 11. A graceful shutdown (SIGTERM) while writes wait for the mirror: they are applied or
// journaled, never dropped. Afterwards replay makes new identical to old.

TEST_F(MirrorTest, ShutdownWithQueuedWritesLosesNothing) {
  std::string db = make_db("shutdown", "CREATE TABLE t (id int PRIMARY KEY, v text)");
  // The mirror is blocked for the whole drain: a short drain deadline, then the journal.
  ProxyProcess& p = start_mirror_proxy({}, "[shutdown]\ndrain_timeout_ms = 2000\n");
  {
    NewTableLock lock(new_cluster(), db, "t");
    ConnPtr c = client(p, db);
    for (int i = 1; i <= 20; ++i)
      exec(c.get(), "INSERT INTO t VALUES (" + std::to_string(i) + ", 'q')");
    EXPECT_GT(counters(p).queue_bytes, 0);
    c.reset();  // the client is gone; its writes wait for the mirror
    EXPECT_TRUE(p.stop(milliseconds(30000))) << "pgtandem did not exit on SIGTERM";
    lock.release();
  }
  // Whatever the stopped mirror had sent lands now; give it a moment, then replay the journal.
  std::string before_replay;
  wait_value(new_cluster(), db, "SELECT count(*) FROM t", "20", milliseconds(5000), &before_replay);
  long journal = file_size(journal_);
  ProcessResult replay = run_replay(p);
  EXPECT_TRUE(replay.exit_code == 0 || replay.exit_code == 2) << replay.describe();
  std::string o = dump(old_cluster(), db, "SELECT id, v FROM t ORDER BY id");
  std::string n = dump(new_cluster(), db, "SELECT id, v FROM t ORDER BY id");
  EXPECT_EQ(o, n) << "writes queued for the mirror at shutdown were lost: new had " << before_replay
                  << " rows before replay, journal " << journal << " bytes; replay:\n"
                  << replay.out << "\nproxy log:\n"
                  << tail(p.log_text());
}

// ---------------------------------------------------------------------------------------------
// 12. Replay reproduces a session faithfully: session state, startup options, prepared
// statements with binary parameters, COPY in both formats, savepoints, all journaled because new
// was down when the session ran.

TEST_F(MirrorTest, ReplayOfAJournaledSessionIsFaithful) {
  std::string db =
      make_db("fidelity",
              "CREATE SCHEMA sa; CREATE TABLE public.t (id int4 PRIMARY KEY, name text,"
              " data bytea, amount int8); CREATE TABLE sa.t (LIKE public.t INCLUDING ALL)");
  new_cluster().stop();
  ProxyProcess& p = start_mirror_proxy({"reconnect_interval_ms = 200"});
  {
    ConnPtr c = client(p, db, "options='-c search_path=sa'");
    exec(c.get(), "INSERT INTO t (id, name) VALUES (1, 'startup search_path')");
    exec(c.get(), "SET search_path TO public");
    exec(c.get(), "INSERT INTO t (id, name) VALUES (2, 'after SET')");
    const Oid types[4] = {23, 25, 17, 20};
    ResultPtr prep(PQprepare(c.get(), "ins", "INSERT INTO t VALUES ($1, $2, $3, $4)", 4, types));
    ASSERT_EQ(PQresultStatus(prep.get()), PGRES_COMMAND_OK) << PQerrorMessage(c.get());
    const int formats[4] = {1, 1, 1, 1};
    for (int i = 10; i < 40; ++i) {
      std::string v[4] = {be32(static_cast<uint32_t>(i)), "bin \x01\xc3\xa9 " + std::to_string(i),
                          std::string("\0\xff\x7f", 3) + std::to_string(i),
                          be64(static_cast<uint64_t>(-static_cast<int64_t>(i) * 77777777777LL))};
      const char* values[4] = {v[0].data(), v[1].data(), i % 4 ? v[2].data() : nullptr,
                               v[3].data()};
      const int lengths[4] = {4, static_cast<int>(v[1].size()), static_cast<int>(v[2].size()), 8};
      ResultPtr r(PQexecPrepared(c.get(), "ins", 4, values, lengths, formats, 0));
      ASSERT_EQ(PQresultStatus(r.get()), PGRES_COMMAND_OK) << PQerrorMessage(c.get());
    }
    ResultPtr copy(PQexec(c.get(), "COPY t FROM STDIN"));
    ASSERT_EQ(PQresultStatus(copy.get()), PGRES_COPY_IN) << PQerrorMessage(c.get());
    std::string text = "100\tcopied \\t text\t\\\\x00ff\t5\n101\t\\N\t\\N\t\\N\n";
    PQputCopyData(c.get(), text.data(), static_cast<int>(text.size()));
    PQputCopyEnd(c.get(), nullptr);
    ResultPtr copy_end(PQgetResult(c.get()));
    EXPECT_EQ(PQresultStatus(copy_end.get()), PGRES_COMMAND_OK) << PQerrorMessage(c.get());
    while (ResultPtr more{PQgetResult(c.get())}) {
    }
    ResultPtr bcopy(PQexec(c.get(), "COPY t FROM STDIN (FORMAT binary)"));
    ASSERT_EQ(PQresultStatus(bcopy.get()), PGRES_COPY_IN) << PQerrorMessage(c.get());
    std::string bin = copy_binary_rows(200, 260);
    PQputCopyData(c.get(), bin.data(), static_cast<int>(bin.size()));
    PQputCopyEnd(c.get(), nullptr);
    ResultPtr bcopy_end(PQgetResult(c.get()));
    EXPECT_EQ(PQresultStatus(bcopy_end.get()), PGRES_COMMAND_OK) << PQerrorMessage(c.get());
    while (ResultPtr more{PQgetResult(c.get())}) {
    }
    exec(c.get(), "BEGIN");
    exec(c.get(), "INSERT INTO t (id, name) VALUES (300, 'kept')");
    exec(c.get(), "SAVEPOINT s");
    exec(c.get(), "INSERT INTO t (id, name) VALUES (301, 'rolled back to savepoint')");
    exec(c.get(), "ROLLBACK TO SAVEPOINT s");
    exec(c.get(), "UPDATE t SET amount = amount * 2 WHERE id BETWEEN 10 AND 20");
    exec(c.get(), "COMMIT");
    exec(c.get(), "RESET search_path");
    exec(c.get(), "SET search_path TO sa");
    exec(c.get(), "DELETE FROM t WHERE id = 1");
    exec(c.get(), "INSERT INTO t (id, name) VALUES (3, 'sa again')");
  }
  MirrorCounters idle;
  ASSERT_TRUE(wait_mirror_idle(p, kMirrorDeadline, 5, &idle)) << idle.describe();
  EXPECT_GT(idle.journaled, 0) << idle.describe();
  new_cluster().start();
  ProcessResult replay = run_replay(p);
  EXPECT_EQ(replay.exit_code, 0) << replay.describe();
  for (const char* schema : {"public", "sa"}) {
    expect_same(db,
                std::string("SELECT count(*), md5(string_agg(t::text, ',' ORDER BY id)) FROM ") +
                    schema + ".t t",
                std::string(schema) + ".t after replay");
    expect_same(db, std::string("SELECT * FROM ") + schema + ".t ORDER BY id LIMIT 8",
                std::string(schema) + ".t rows after replay");
  }
}

// ---------------------------------------------------------------------------------------------
// 13. Queue overflow (overflow = journal): a unit bigger than the session queue goes to the
// journal, and so do the session's later writes, in order; replay applies them.

TEST_F(MirrorTest, QueueOverflowJournalsInOrder) {
  std::string db = make_db("overflow", "CREATE TABLE t (id int PRIMARY KEY, v bigint, pad text)");
  ProxyProcess& p = start_mirror_proxy({"session_queue_bytes = 65536", "overflow = \"journal\""});
  ConnPtr c = client(p, db);
  exec(c.get(), "INSERT INTO t VALUES (0, 1, 'before the overflow')");
  wait_marker(db, "SELECT count(*) FROM t WHERE id = 0", p);
  if (HasFatalFailure()) return;
  // One COPY of ~200 kB: more than the session queue holds.
  ResultPtr copy(PQexec(c.get(), "COPY t FROM STDIN"));
  ASSERT_EQ(PQresultStatus(copy.get()), PGRES_COPY_IN) << PQerrorMessage(c.get());
  std::string text;
  for (int i = 1; i <= 1000; ++i)
    text += std::to_string(i) + "\t1\t" + std::string(200, 'p') + "\n";
  PQputCopyData(c.get(), text.data(), static_cast<int>(text.size()));
  PQputCopyEnd(c.get(), nullptr);
  ResultPtr end(PQgetResult(c.get()));
  ASSERT_EQ(PQresultStatus(end.get()), PGRES_COMMAND_OK) << PQerrorMessage(c.get());
  while (ResultPtr more{PQgetResult(c.get())}) {
  }
  // Order-sensitive writes after it.
  exec(c.get(), "UPDATE t SET v = v * 3");
  exec(c.get(), "UPDATE t SET v = v + 1");
  exec(c.get(), "INSERT INTO t VALUES (5000, 42, 'last')");
  MirrorCounters idle;
  ASSERT_TRUE(wait_mirror_idle(p, kMirrorDeadline, 5, &idle)) << idle.describe();
  EXPECT_GE(idle.journaled, 4) << idle.describe();
  EXPECT_EQ(new_cluster().query_value("SELECT count(*) FROM t", db), "1")
      << "writes after the overflow reached new directly";
  ProcessResult replay = run_replay(p);
  EXPECT_EQ(replay.exit_code, 0) << replay.describe();
  expect_same(db, "SELECT count(*), sum(v), md5(string_agg(t::text, ',' ORDER BY id)) FROM t t",
              "table t after replay");
}

// ---------------------------------------------------------------------------------------------
// 15. docs/configuration.md: "Once one write of a session could not be applied, the session's
// later writes go to the journal too, so that pgtandem replay applies them after it, in order."
// A write that new refuses (mirror_error) is such a write.

TEST_F(MirrorTest, AfterAMirrorErrorLaterWritesOfTheSessionAreJournaled) {
  std::string db = make_db("mirrorerror", "CREATE TABLE t (id int PRIMARY KEY, v int)");
  new_cluster().exec("INSERT INTO t VALUES (1, 100)", db);  // new differs: id 1 exists there
  ProxyProcess& p = start_mirror_proxy();
  ConnPtr c = client(p, db);
  exec(c.get(), "INSERT INTO t VALUES (1, 0)");  // fine on old, duplicate key on new
  exec(c.get(), "UPDATE t SET v = v + 1 WHERE id = 1");
  exec(c.get(), "INSERT INTO t VALUES (2, 0)");
  MirrorCounters idle;
  ASSERT_TRUE(wait_mirror_idle(p, kMirrorDeadline, 5, &idle)) << idle.describe();
  Metrics m = p.metrics();
  EXPECT_EQ(m.sum("pgtandem_mirror_divergences_total", {{"kind", "error_on_mirror"}}), 1)
      << idle.describe();
  EXPECT_EQ(idle.journaled, 3) << "the writes after the refused one were applied directly, "
                                  "before it: "
                               << idle.describe() << "\nnew: "
                               << dump(new_cluster(), db, "SELECT * FROM t ORDER BY id");
}

// A transaction applied on new as one request (simple: one multi-statement Query; extended: one
// Sync) that fails there midway: new keeps none of it (the statements before the failure are
// rolled back, as the COMMIT of a failed transaction would when sent one by one), the failure is
// a divergence and the unit is journaled, and the link's connection is left usable.
TEST_F(MirrorTest, CoalescedTransactionFailingOnNewLeavesNothingThere) {
  std::string db = make_db("coalescefail",
                           "CREATE TABLE t (id int PRIMARY KEY, v int);"
                           "INSERT INTO t SELECT g, 0 FROM generate_series(1, 4) g");
  new_cluster().exec("INSERT INTO t VALUES (10, 100), (20, 100)", db);  // only new has them
  ProxyProcess& p = start_mirror_proxy();
  MirrorCounters before = counters(p);
  // Both sessions stay open to the end: their mirror connections are checked for a transaction
  // left open.
  ConnPtr simple = client(p, db);
  exec(simple.get(), "BEGIN");
  exec(simple.get(), "UPDATE t SET v = v + 1 WHERE id = 1");
  exec(simple.get(), "INSERT INTO t VALUES (10, 0)");  // duplicate key on new only
  exec(simple.get(), "UPDATE t SET v = v + 1 WHERE id = 2");
  exec(simple.get(), "COMMIT");
  ConnPtr extended = client(p, db);  // one Sync per statement
  for (const char* sql : {"BEGIN", "UPDATE t SET v = v + 1 WHERE id = $1",
                          "INSERT INTO t VALUES ($1 * 10, 0)", "COMMIT"}) {
    const bool param = std::string(sql).find('$') != std::string::npos;
    const char* value = std::string(sql).find("INSERT") != std::string::npos ? "2" : "3";
    ResultPtr r(PQexecParams(extended.get(), sql, param ? 1 : 0, nullptr,
                             param ? &value : nullptr, nullptr, nullptr, 0));
    ASSERT_EQ(PQresultStatus(r.get()), PGRES_COMMAND_OK)
        << sql << ": " << PQerrorMessage(extended.get());
  }
  MirrorCounters idle;
  ASSERT_TRUE(wait_mirror_idle(p, kMirrorDeadline, 5, &idle)) << idle.describe();
  EXPECT_EQ(idle.coalesced - before.coalesced, 2) << idle.describe();
  EXPECT_EQ(idle.journaled - before.journaled, 2) << idle.describe();
  Metrics m = p.metrics();
  EXPECT_EQ(m.sum("pgtandem_mirror_divergences_total", {{"kind", "error_on_mirror"}}), 2)
      << m.text();
  // Old has all of both transactions; new none of them (its own rows 10 and 20 untouched).
  EXPECT_EQ(old_cluster().query_value("SELECT string_agg(id || '=' || v, ',' ORDER BY id) FROM t", db),
            "1=1,2=1,3=1,4=0,10=0,20=0");
  EXPECT_EQ(new_cluster().query_value("SELECT string_agg(id || '=' || v, ',' ORDER BY id) FROM t", db),
            "1=0,2=0,3=0,4=0,10=100,20=100");
  // Nothing was left open on new: the two sessions' mirror connections are there, neither idle in
  // an aborted transaction.
  EXPECT_EQ(new_cluster().query_value(
                "SELECT count(*) FILTER (WHERE state LIKE 'idle in transaction%') || '/' || "
                "count(*) FROM pg_stat_activity WHERE datname = '" + db +
                    "' AND pid <> pg_backend_pid()",
                db),
            "0/2");
}

// ---------------------------------------------------------------------------------------------
// 16. overflow = "block": the queue limit is backpressure, nothing goes to the journal.

TEST_F(MirrorTest, OverflowBlockAppliesBackpressureInsteadOfJournaling) {
  std::string db = make_db("block", "CREATE TABLE t (id int PRIMARY KEY, pad text)");
  ProxyProcess& p = start_mirror_proxy({"session_queue_bytes = 65536", "overflow = \"block\""});
  NewTableLock lock(new_cluster(), db, "t");
  constexpr int kRows = 1000;  // ~1 MB of statements: far more than the queue holds
  std::atomic<int> done{0};
  std::string error;
  std::thread writer([&] {
    try {
      ConnPtr c = client(p, db);
      for (int i = 1; i <= kRows; ++i) {
        exec(c.get(),
             "INSERT INTO t VALUES (" + std::to_string(i) + ", '" + std::string(1000, 'b') + "')");
        done = i;
      }
    } catch (const std::exception& e) {
      error = e.what();
    }
  });
  // The queue fills up and the writer stops short of the end while new is locked.
  bool full = poll_until([&] { return counters(p).queue_bytes >= 60000; }, milliseconds(60000),
                         milliseconds(100));
  EXPECT_TRUE(full) << counters(p).describe();
  EXPECT_LT(done.load(), kRows) << "the writer never waited for the blocked mirror";
  lock.release();
  writer.join();
  EXPECT_EQ(error, "");
  EXPECT_EQ(done.load(), kRows);
  std::string last;
  EXPECT_TRUE(wait_value(new_cluster(), db, "SELECT count(*) FROM t", std::to_string(kRows),
                         kMirrorDeadline, &last))
      << last << "; " << counters(p).describe();
  MirrorCounters idle;
  ASSERT_TRUE(wait_mirror_idle(p, kMirrorDeadline, 5, &idle)) << idle.describe();
  EXPECT_EQ(idle.journaled + idle.failed + idle.divergences, 0) << idle.describe();
  EXPECT_EQ(file_size(journal_), 0);
}

}  // namespace
}  // namespace pgtandem::it

// Write mirroring end to end (issue 3, "Tests and acceptance"): a dedicated pgtandem with
// `mirror_writes = true` in front of the two clusters, each test with fresh databases on both and a
// journal of its own. What a client writes through pgtandem on `old` must reach `new` (pgbench
// TPC-B in the three query modes, explicit transactions with ROLLBACK and savepoints, COPY FROM in
// text and binary format, prepared statements with binary parameters, session state); what cannot
// reach it (new stopped mid-run, or down at start) goes to the journal, which `pgtandem replay`
// applies so that the tables are identical again, never twice. Divergences are counted.
// Further: the client never waits for a blocked mirror; a graceful shutdown loses no queued write;
// replay reproduces a journaled session (state, prepared statements, COPY); queue overflow in
// both policies; the mirror's own credentials; the documented journaling after a mirror error; and
// serial/identity defaults counted as nondeterministic.
//
// Mirroring is asynchronous: the tests never sleep for it. They poll, with generous deadlines,
// either for the metrics to settle (queue empty, outcome counters no longer moving) or for a
// marker row written last in the same session (the mirror applies a session's writes in order,
// so once the marker is on `new`, everything before it was applied or skipped).
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

#include "tests/integration/fixture.h"
#include "tests/integration/harness/harness.h"

namespace pgtandem::it {
namespace {

using std::chrono::seconds;

constexpr milliseconds kMirrorDeadline{300000};  // the machine is small and shared: be patient

std::string be64(uint64_t v) {
  return be32(static_cast<uint32_t>(v >> 32)) + be32(static_cast<uint32_t>(v));
}

// Every row of a query as text, rows separated by '\n', columns by '|' (NULL as "<null>").
std::string dump(const PgCluster& c, const std::string& db, const std::string& sql) {
  ConnPtr conn = connect(c.conninfo(db));
  ResultPtr r = exec(conn.get(), sql);
  std::string out;
  for (int row = 0; row < PQntuples(r.get()); ++row) {
    for (int col = 0; col < PQnfields(r.get()); ++col) {
      if (col) out += '|';
      out += PQgetisnull(r.get(), row, col) ? "<null>" : PQgetvalue(r.get(), row, col);
    }
    out += '\n';
  }
  return out;
}

struct MirrorCounters {
  double applied = 0, failed = 0, journaled = 0, skipped_rollback = 0;
  double divergences = 0, queue_bytes = 0, nondeterministic = 0, journal_bytes = 0;
  double lag_count = 0, coalesced = 0;
  double done() const { return applied + failed + journaled; }
  std::string describe() const {
    std::ostringstream s;
    s << "applied=" << applied << " failed=" << failed << " journaled=" << journaled
      << " skipped_rollback=" << skipped_rollback << " divergences=" << divergences
      << " queue_bytes=" << queue_bytes << " nondeterministic=" << nondeterministic
      << " journal_bytes=" << journal_bytes << " lag_count=" << lag_count
      << " coalesced=" << coalesced;
    return s.str();
  }
};

MirrorCounters counters(const ProxyProcess& p) {
  Metrics m = p.metrics();
  MirrorCounters c;
  const std::string w = "pgtandem_mirror_writes_total";
  c.applied = m.sum(w, {{"outcome", "applied"}});
  c.failed = m.sum(w, {{"outcome", "failed"}});
  c.journaled = m.sum(w, {{"outcome", "journaled"}});
  c.skipped_rollback = m.sum(w, {{"outcome", "skipped_rollback"}});
  c.divergences = m.sum("pgtandem_mirror_divergences_total");
  c.queue_bytes = m.sum("pgtandem_mirror_queue_bytes");
  c.nondeterministic = m.sum("pgtandem_mirror_nondeterministic_writes_total");
  c.journal_bytes = m.sum("pgtandem_mirror_journal_bytes");
  c.lag_count = m.sum("pgtandem_mirror_lag_seconds_count");
  c.coalesced = m.sum("pgtandem_mirror_coalesced_transactions_total");
  return c;
}

// Until the mirror queue is empty and the outcome counters stopped moving (same value for
// `stable_polls` polls in a row, 200 ms apart).
bool wait_mirror_idle(const ProxyProcess& p, milliseconds timeout = kMirrorDeadline,
                      int stable_polls = 5, MirrorCounters* last_seen = nullptr) {
  double last = -1;
  int stable = 0;
  bool ok = poll_until(
      [&] {
        MirrorCounters c = counters(p);
        if (last_seen) *last_seen = c;
        if (c.queue_bytes == 0 && c.done() == last) {
          ++stable;
        } else {
          stable = 0;
        }
        last = c.done();
        return stable >= stable_polls;
      },
      timeout, milliseconds(200));
  return ok;
}

// Until `sql` (one value) returns `expected` on the cluster.
bool wait_value(const PgCluster& c, const std::string& db, const std::string& sql,
                const std::string& expected, milliseconds timeout = kMirrorDeadline,
                std::string* last = nullptr) {
  std::string seen;
  bool ok = poll_until(
      [&] {
        try {
          seen = c.query_value(sql, db);
        } catch (const std::exception& e) {
          seen = std::string("error: ") + e.what();
        }
        return seen == expected;
      },
      timeout, milliseconds(100));
  if (last) *last = seen;
  return ok;
}

long file_size(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return -1;
  return static_cast<long>(st.st_size);
}

// "  applied:        12" in a replay report.
long report_number(const std::string& report, const std::string& label) {
  std::regex re("\\n\\s*" + label + ":\\s*([0-9]+)");
  std::smatch m;
  std::string text = "\n" + report;
  if (!std::regex_search(text, m, re)) return -1;
  return std::stol(m[1].str());
}

const char* kNondeterministicSetup =
    "CREATE TABLE t (id int PRIMARY KEY, ts timestamptz, r float8, note text);"
    "CREATE TABLE bumps (note text);"
    "CREATE FUNCTION bump() RETURNS int LANGUAGE sql AS "
    "$$ INSERT INTO bumps VALUES ('bumped'); SELECT count(*)::int FROM bumps $$";

class MirrorTest : public ProxyTest {
 protected:
  void SetUp() override {
    ProxyTest::SetUp();
    if (HasFatalFailure()) return;
    dir_ = std::make_unique<TempDir>("pgtandem-mirror-it");
    journal_ = dir_->file("mirror.journal");
  }

  void TearDown() override {
    if (HasFailure() && file_size(journal_) > 0) {
      std::fprintf(stderr, "[mirror] journal %s (%ld bytes), tail:\n%s\n", journal_.c_str(),
                   file_size(journal_), tail(read_file(journal_), 3000).c_str());
    }
    // A failed test must not leave new stopped for the next one.
    if (HasFailure()) restart_new_if_stopped();
    ProxyTest::TearDown();  // stops the proxies (their mirror connections close)
    drop_databases(databases_);
  }

  // A fresh database with the same name on both clusters, `setup` run directly on both.
  std::string make_db(const std::string& base, const std::string& setup = "") {
    std::string db = unique("mirror_" + base);
    old_cluster().create_database(db);
    new_cluster().create_database(db);
    databases_.push_back(db);
    if (!setup.empty()) both(db, setup);
    return db;
  }

  void both(const std::string& db, const std::string& sql) {
    old_cluster().exec(sql, db);
    new_cluster().exec(sql, db);
  }

  ProxyOptions mirror_options(const std::vector<std::string>& mirror_lines = {},
                              const std::string& more_toml = "") {
    ProxyOptions o = Env::get().default_proxy_options();
    o.section_lines[""].push_back("mirror_writes = true");
    std::string toml = "[mirror]\njournal_path = \"" + journal_ + "\"\n";
    // These tests check the journal and `pgtandem replay` themselves: no automatic catch-up
    // (tests/integration/catchup_test.cc covers it) unless a test asks for it.
    bool catchup_given = false;
    for (const auto& l : mirror_lines) catchup_given |= l.rfind("catchup", 0) == 0;
    if (!catchup_given) toml += "catchup = false\n";
    for (const auto& l : mirror_lines) toml += l + "\n";
    toml += more_toml;
    o.extra_toml = toml;
    return o;
  }

  ProxyProcess& start_mirror_proxy(const std::vector<std::string>& mirror_lines = {},
                                   const std::string& more_toml = "") {
    return start_proxy(mirror_options(mirror_lines, more_toml));
  }

  ConnPtr client(ProxyProcess& p, const std::string& db, const std::string& extra = "") {
    return connect(p.endpoint().conninfo(extra, db));
  }

  // The same rows on both clusters (full dump, for small tables).
  void expect_same(const std::string& db, const std::string& sql, const std::string& what) {
    std::string o = dump(old_cluster(), db, sql);
    std::string n = dump(new_cluster(), db, sql);
    EXPECT_EQ(o, n) << what << " differs between old and new: " << describe_difference(o, n);
  }

  // Waits until the last row a session wrote (`marker_sql` returns "1") is on new.
  void wait_marker(const std::string& db, const std::string& marker_sql, ProxyProcess& p) {
    std::string last;
    ASSERT_TRUE(wait_value(new_cluster(), db, marker_sql, "1", kMirrorDeadline, &last))
        << "the marker never reached new (" << last << "); " << counters(p).describe();
  }

  // Sums and ordered md5s of the pgbench tables, and the history row count.
  std::vector<std::pair<std::string, std::string>> pgbench_state(const PgCluster& c,
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
    r.emplace_back("pgbench_history count",
                   c.query_value("SELECT count(*) FROM pgbench_history", db));
    return r;
  }

  void expect_pgbench_identical(const std::string& db, const std::string& when) {
    auto o = pgbench_state(old_cluster(), db);
    auto n = pgbench_state(new_cluster(), db);
    ASSERT_EQ(o.size(), n.size());
    for (size_t i = 0; i < o.size(); ++i) {
      EXPECT_EQ(o[i].second, n[i].second) << when << ": " << o[i].first << " old vs new";
    }
    // A run that did nothing would compare equal too.
    EXPECT_NE(o.back().second, "0") << when << ": pgbench_history is empty";
  }

  void pgbench_init_both(const std::string& db) {
    for (PgCluster* c : {&old_cluster(), &new_cluster()}) {
      auto r = run_pgbench(c->endpoint(), {"-i", "-s", "1", "-q"}, db, milliseconds(300000));
      ASSERT_TRUE(r.ok()) << "pgbench -i on " << c->name() << ": " << r.describe();
    }
  }

  ProcessResult run_replay(ProxyProcess& p) {
    RunOptions ro;
    ro.timeout = milliseconds(300000);
    return run_process(
        {pgtandem_binary(), "replay", "--config", p.config_path(), "--journal", journal_}, ro);
  }

  // Test 6: nondeterministic writes through `p` into a database set up with
  // kNondeterministicSetup.
  void nondeterministic_scenario(ProxyProcess& p, const std::string& db) {
    MirrorCounters before = counters(p);
    ConnPtr c = client(p, db);
    exec(c.get(), "INSERT INTO t (id, ts, note) VALUES (1, now(), 'now')");
    exec(c.get(), "INSERT INTO t (id, r, note) VALUES (2, random(), 'random')");
    exec(c.get(), "INSERT INTO t (id, ts, note) VALUES (3, clock_timestamp(), 'clock')");
    EXPECT_EQ(query_value(c.get(), "SELECT bump()"), "1");
    {
      ResultPtr r(PQexecParams(c.get(), "SELECT bump()", 0, nullptr, nullptr, nullptr, nullptr, 0));
      EXPECT_EQ(PQresultStatus(r.get()), PGRES_TUPLES_OK) << PQerrorMessage(c.get());
    }
    exec(c.get(), "INSERT INTO t (id, note) VALUES (99, 'marker')");
    wait_marker(db, "SELECT count(*) FROM t WHERE id = 99", p);
    if (HasFatalFailure()) return;
    MirrorCounters after = counters(p);
    EXPECT_GE(after.nondeterministic - before.nondeterministic, 3) << after.describe();
    EXPECT_EQ(old_cluster().query_value("SELECT count(*) FROM bumps", db), "2");
    EXPECT_EQ(new_cluster().query_value("SELECT count(*) FROM bumps", db), "2")
        << "SELECT bump() was not mirrored; " << after.describe();
    expect_same(db, "SELECT id, note, ts IS NULL, r IS NULL FROM t ORDER BY id", "table t");
    EXPECT_EQ(after.divergences, 0) << after.describe();
    EXPECT_EQ(after.journaled + after.failed, 0) << after.describe();
  }

  std::unique_ptr<TempDir> dir_;
  std::string journal_;
  std::vector<std::string> databases_;
};

// ---------------------------------------------------------------------------------------------
// 1. pgbench TPC-B through pgtandem with mirroring, in the three query modes.

TEST_F(MirrorTest, PgbenchTpcbAllModesLeaveIdenticalTables) {
  std::string db = make_db("tpcb");
  ProxyProcess& p = start_mirror_proxy();
  for (const std::string mode : {"simple", "extended", "prepared"}) {
    SCOPED_TRACE("-M " + mode);
    pgbench_init_both(db);
    if (HasFatalFailure()) return;
    MirrorCounters before = counters(p);
    auto r = run_pgbench(p.endpoint(), {"-c", "8", "-j", "2", "-T", "20", "-M", mode}, db,
                         milliseconds(300000));
    PgbenchSummary s = parse_pgbench(r.out);
    ASSERT_TRUE(r.ok()) << r.describe();
    ASSERT_TRUE(s.parsed) << r.describe();
    EXPECT_EQ(s.failed, 0) << r.describe();
    EXPECT_GT(s.processed, 0) << r.describe();
    MirrorCounters after;
    ASSERT_TRUE(wait_mirror_idle(p, kMirrorDeadline, 5, &after))
        << "the mirror did not settle: " << after.describe();
    std::fprintf(stderr, "[mirror] -M %s: %ld transactions (%.1f tps); mirror %s\n", mode.c_str(),
                 s.processed, s.tps, after.describe().c_str());
    // Every transaction (7 statements) is one unit; a few more for pgbench's own set-up
    // (vacuum, truncate).
    EXPECT_GE(after.applied - before.applied, static_cast<double>(s.processed));
    EXPECT_EQ(after.failed, 0);
    EXPECT_EQ(after.journaled, 0);
    EXPECT_EQ(after.divergences, 0);
    EXPECT_EQ(after.queue_bytes, 0);
    EXPECT_GT(after.lag_count, before.lag_count);
    // Every TPC-B transaction reached new as one request (policy/mirror/mirror_batch.h).
    EXPECT_GE(after.coalesced - before.coalesced, static_cast<double>(s.processed));
    expect_pgbench_identical(db, "-M " + mode);
  }
  MirrorCounters end = counters(p);
  EXPECT_EQ(end.divergences, 0) << end.describe();
  EXPECT_EQ(end.journal_bytes, 0) << end.describe();
  EXPECT_EQ(file_size(journal_), 0) << "the journal is not empty:\n" << tail(read_file(journal_));
}

// ---------------------------------------------------------------------------------------------
// 2. Explicit transactions: what the primary rolled back never reaches new.

TEST_F(MirrorTest, RolledBackWorkLeavesNoTraceOnNew) {
  std::string db = make_db("txn", "CREATE TABLE t (id int PRIMARY KEY, v text)");
  ProxyProcess& p = start_mirror_proxy();
  MirrorCounters before = counters(p);
  ConnPtr c = client(p, db);
  auto ok = [&](const std::string& sql) {
    ResultPtr r(PQexec(c.get(), sql.c_str()));
    auto st = PQresultStatus(r.get());
    EXPECT_TRUE(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        << sql << ": " << PQerrorMessage(c.get());
    return std::string(PQcmdStatus(r.get()));
  };
  auto fails = [&](const std::string& sql, const std::string& sqlstate) {
    ResultPtr r(PQexec(c.get(), sql.c_str()));
    EXPECT_EQ(PQresultStatus(r.get()), PGRES_FATAL_ERROR) << sql;
    const char* code = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE);
    EXPECT_EQ(code ? code : "", sqlstate) << sql << ": " << PQerrorMessage(c.get());
  };

  // A plain ROLLBACK.
  ok("BEGIN");
  ok("INSERT INTO t VALUES (1, 'rolled back')");
  ok("ROLLBACK");
  // ROLLBACK TO SAVEPOINT in a committed transaction.
  ok("BEGIN");
  ok("INSERT INTO t VALUES (10, 'a')");
  ok("SAVEPOINT s");
  ok("INSERT INTO t VALUES (11, 'b')");
  ok("ROLLBACK TO SAVEPOINT s");
  ok("INSERT INTO t VALUES (12, 'c')");
  EXPECT_EQ(ok("COMMIT"), "COMMIT");
  // A failing statement inside a savepoint, recovered.
  ok("INSERT INTO t VALUES (20, 'base')");
  ok("BEGIN");
  ok("INSERT INTO t VALUES (21, 'd')");
  ok("SAVEPOINT s");
  fails("INSERT INTO t VALUES (20, 'duplicate in savepoint')", "23505");
  ok("ROLLBACK TO SAVEPOINT s");
  ok("INSERT INTO t VALUES (22, 'e')");
  EXPECT_EQ(ok("COMMIT"), "COMMIT");
  // An autocommit write that fails.
  fails("INSERT INTO t VALUES (20, 'autocommit duplicate')", "23505");
  // A failed transaction: its COMMIT is a ROLLBACK.
  ok("BEGIN");
  ok("INSERT INTO t VALUES (30, 'in a failed transaction')");
  fails("INSERT INTO t VALUES (20, 'duplicate')", "23505");
  EXPECT_EQ(ok("COMMIT"), "ROLLBACK");
  // A multi-statement simple query that fails as a whole (implicit transaction).
  fails("INSERT INTO t VALUES (40, 'implicit'); SELECT 1/0", "22012");
  // The same in one query string, with ROLLBACK.
  ok("BEGIN; INSERT INTO t VALUES (41, 'one string'); ROLLBACK");
  // Extended protocol inside a rolled-back transaction.
  ok("BEGIN");
  {
    const char* values[2] = {"50", "extended rolled back"};
    ResultPtr r(PQexecParams(c.get(), "INSERT INTO t VALUES ($1, $2)", 2, nullptr, values, nullptr,
                             nullptr, 0));
    EXPECT_EQ(PQresultStatus(r.get()), PGRES_COMMAND_OK) << PQerrorMessage(c.get());
  }
  ok("ROLLBACK");
  ok("INSERT INTO t VALUES (99, 'marker')");

  wait_marker(db, "SELECT count(*) FROM t WHERE id = 99", p);
  if (HasFatalFailure()) return;
  const std::string q = "SELECT id, v FROM t ORDER BY id";
  EXPECT_EQ(dump(old_cluster(), db, q), "10|a\n12|c\n20|base\n21|d\n22|e\n99|marker\n");
  expect_same(db, q, "table t");
  MirrorCounters after;
  ASSERT_TRUE(wait_mirror_idle(p, kMirrorDeadline, 5, &after)) << after.describe();
  // ROLLBACK, autocommit failure, failed transaction, implicit-transaction failure, the
  // one-string ROLLBACK, the extended-protocol ROLLBACK.
  EXPECT_GE(after.skipped_rollback - before.skipped_rollback, 6) << after.describe();
  EXPECT_EQ(after.divergences, 0) << after.describe();
  EXPECT_EQ(after.failed, 0) << after.describe();
  EXPECT_EQ(after.journaled, 0) << after.describe();
  EXPECT_EQ(file_size(journal_), 0);
}

// ---------------------------------------------------------------------------------------------
// 3. COPY FROM STDIN, text and binary; a CopyFail leaves nothing anywhere.

std::string copy_binary_rows(int from, int to) {
  std::string s("PGCOPY\n\xff\r\n\0", 11);
  s += be32(0) + be32(0);  // flags, header extension
  for (int i = from; i <= to; ++i) {
    s += be16(4);
    s += be32(4) + be32(static_cast<uint32_t>(i));
    if (i % 9 == 0) {
      s += be32(0xffffffffu);  // NULL
    } else {
      std::string name = "bin \t row " + std::to_string(i) + " \xc3\xbc";
      s += be32(static_cast<uint32_t>(name.size())) + name;
    }
    std::string data;
    for (int k = 0; k < i % 37; ++k) data.push_back(static_cast<char>((i * 13 + k * 7) & 0xff));
    s += be32(static_cast<uint32_t>(data.size())) + data;
    s += be32(8) + be64(static_cast<uint64_t>(static_cast<int64_t>(i) * -1000000007LL));
  }
  s += be16(0xffff);
  return s;
}

TEST_F(MirrorTest, CopyFromStdinIsMirrored) {
  std::string db =
      make_db("copy", "CREATE TABLE t (id int4 PRIMARY KEY, name text, data bytea, amount int8)");
  ProxyProcess& p = start_mirror_proxy();
  ConnPtr c = client(p, db);
  auto copy = [&](const std::string& sql, const std::vector<std::string>& chunks,
                  const char* fail_message) {
    ResultPtr r(PQexec(c.get(), sql.c_str()));
    ASSERT_EQ(PQresultStatus(r.get()), PGRES_COPY_IN) << sql << ": " << PQerrorMessage(c.get());
    for (const auto& chunk : chunks) {
      ASSERT_EQ(PQputCopyData(c.get(), chunk.data(), static_cast<int>(chunk.size())), 1)
          << PQerrorMessage(c.get());
    }
    ASSERT_EQ(PQputCopyEnd(c.get(), fail_message), 1) << PQerrorMessage(c.get());
    ResultPtr end(PQgetResult(c.get()));
    if (fail_message) {
      EXPECT_EQ(PQresultStatus(end.get()), PGRES_FATAL_ERROR);
      EXPECT_NE(std::string(PQerrorMessage(c.get())).find(fail_message), std::string::npos)
          << PQerrorMessage(c.get());
    } else {
      EXPECT_EQ(PQresultStatus(end.get()), PGRES_COMMAND_OK) << PQerrorMessage(c.get());
    }
    while (ResultPtr more{PQgetResult(c.get())}) {
    }
  };

  // Text format: 3000 rows in chunks that do not align with rows, one chunk of ~100 kB.
  std::string text;
  for (int i = 1; i <= 3000; ++i) {
    text += std::to_string(i) + "\t";
    text += i % 10 == 0 ? "\\N" : "text row " + std::to_string(i) + " with a \\t tab and \\\\";
    text += "\t\\\\x" + std::string(i % 5 == 0 ? "" : "00ff10") + "\t" +
            std::to_string(static_cast<int64_t>(i) * 999999937LL) + "\n";
  }
  std::vector<std::string> chunks;
  for (size_t off = 0; off < text.size();) {
    size_t n = chunks.empty() ? 100000 : 777;
    chunks.push_back(text.substr(off, n));
    off += n;
  }
  copy("COPY t FROM STDIN", chunks, nullptr);
  // Binary format, in two chunks.
  std::string bin = copy_binary_rows(5001, 5500);
  copy("COPY t FROM STDIN (FORMAT binary)", {bin.substr(0, 1000), bin.substr(1000)}, nullptr);
  // CopyFail after some data: the primary rolls back, nothing reaches new.
  copy("COPY t FROM STDIN", {"9001\tfailed copy\t\\\\x00\t1\n9002\tfailed\t\\\\x01\t2\n"},
       "client gave up");
  // COPY inside a transaction that is rolled back.
  exec(c.get(), "BEGIN");
  copy("COPY t FROM STDIN", {"9101\tcopy rolled back\t\\\\x00\t1\n"}, nullptr);
  exec(c.get(), "ROLLBACK");
  // COPY inside a committed transaction.
  exec(c.get(), "BEGIN");
  copy("COPY t FROM STDIN (FORMAT binary)", {copy_binary_rows(9201, 9210)}, nullptr);
  exec(c.get(), "COMMIT");
  exec(c.get(), "INSERT INTO t VALUES (99999, 'marker', NULL, 0)");

  wait_marker(db, "SELECT count(*) FROM t WHERE id = 99999", p);
  if (HasFatalFailure()) return;
  EXPECT_EQ(old_cluster().query_value("SELECT count(*) FROM t", db), "3511");
  EXPECT_EQ(old_cluster().query_value("SELECT count(*) FROM t WHERE id BETWEEN 9001 AND 9199", db),
            "0");
  for (const auto& [what, sql] : std::vector<std::pair<std::string, std::string>>{
           {"count", "SELECT count(*) FROM t"},
           {"md5", "SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM t"},
           {"text rows",
            "SELECT id, name, data, amount FROM t WHERE id IN (1, 10, 2999, 3000) "
            "ORDER BY id"},
           {"binary rows",
            "SELECT id, name, data, amount FROM t WHERE id IN (5001, 5004, 5500, "
            "9201) ORDER BY id"}}) {
    expect_same(db, sql, what);
  }
  MirrorCounters after;
  ASSERT_TRUE(wait_mirror_idle(p, kMirrorDeadline, 5, &after)) << after.describe();
  EXPECT_EQ(after.divergences, 0) << after.describe();
  EXPECT_EQ(after.journaled + after.failed, 0) << after.describe();
}

// ---------------------------------------------------------------------------------------------
// 4. Prepared statements with binary parameters.

TEST_F(MirrorTest, PreparedStatementsWithBinaryParametersAreMirrored) {
  std::string db =
      make_db("binparams", "CREATE TABLE t (id int4 PRIMARY KEY, big int8, b bytea, t text)");
  ProxyProcess& p = start_mirror_proxy();
  ConnPtr c = client(p, db);
  const Oid types[4] = {23, 20, 17, 25};
  {
    ResultPtr r(PQprepare(c.get(), "ins", "INSERT INTO t VALUES ($1, $2, $3, $4)", 4, types));
    ASSERT_EQ(PQresultStatus(r.get()), PGRES_COMMAND_OK) << PQerrorMessage(c.get());
  }
  {
    const Oid utypes[2] = {20, 23};
    ResultPtr r(PQprepare(c.get(), "upd", "UPDATE t SET big = $1 WHERE id = $2", 2, utypes));
    ASSERT_EQ(PQresultStatus(r.get()), PGRES_COMMAND_OK) << PQerrorMessage(c.get());
  }
  const int formats[4] = {1, 1, 1, 1};
  auto row = [](int i, std::string* v, const char** values, int* lengths) {
    v[0] = be32(static_cast<uint32_t>(i * 7 - 500));
    v[1] = be64(static_cast<uint64_t>(static_cast<int64_t>(i) * 10000000019LL * (i % 2 ? -1 : 1)));
    v[2].clear();
    for (int k = 0; k < i % 41; ++k) v[2].push_back(static_cast<char>((i * 31 + k) & 0xff));
    v[3] = "row " + std::to_string(i) + " 'single' \"double\" \\ \xe2\x82\xac";
    for (int k = 0; k < 4; ++k) {
      values[k] = v[k].data();
      lengths[k] = static_cast<int>(v[k].size());
    }
    if (i % 5 == 0) values[1] = nullptr;
    if (i % 7 == 0) values[2] = nullptr;
    if (i % 11 == 0) values[3] = nullptr;
  };
  for (int i = 1; i <= 300; ++i) {
    std::string v[4];
    const char* values[4];
    int lengths[4];
    row(i, v, values, lengths);
    // Binary results for some, to vary the Bind message.
    ResultPtr r(PQexecPrepared(c.get(), "ins", 4, values, lengths, formats, i % 3 == 0 ? 1 : 0));
    ASSERT_EQ(PQresultStatus(r.get()), PGRES_COMMAND_OK) << i << ": " << PQerrorMessage(c.get());
  }
  // The unnamed statement with binary parameters, inside a committed transaction.
  exec(c.get(), "BEGIN");
  for (int i = 301; i <= 320; ++i) {
    std::string v[4];
    const char* values[4];
    int lengths[4];
    row(i, v, values, lengths);
    ResultPtr r(PQexecParams(c.get(), "INSERT INTO t VALUES ($1, $2, $3, $4)", 4, types, values,
                             lengths, formats, 1));
    ASSERT_EQ(PQresultStatus(r.get()), PGRES_COMMAND_OK) << i << ": " << PQerrorMessage(c.get());
  }
  exec(c.get(), "COMMIT");
  // A binary-parameter UPDATE with an affected-row count to compare.
  for (int i = 10; i <= 300; i += 10) {
    std::string big = be64(static_cast<uint64_t>(-static_cast<int64_t>(i) * 3));
    std::string id = be32(static_cast<uint32_t>(i * 7 - 500));
    const char* values[2] = {big.data(), id.data()};
    const int lengths[2] = {8, 4};
    const int fmt[2] = {1, 1};
    ResultPtr r(PQexecPrepared(c.get(), "upd", 2, values, lengths, fmt, 0));
    ASSERT_EQ(PQresultStatus(r.get()), PGRES_COMMAND_OK) << PQerrorMessage(c.get());
    EXPECT_STREQ(PQcmdTuples(r.get()), "1");
  }
  // SQL-level PREPARE/EXECUTE (session state on the mirror connection).
  exec(c.get(), "PREPARE sqlins(int4, text) AS INSERT INTO t (id, t) VALUES ($1, $2)");
  exec(c.get(), "EXECUTE sqlins(100000, 'sql prepare')");
  exec(c.get(), "DEALLOCATE sqlins");
  exec(c.get(), "INSERT INTO t (id, t) VALUES (100001, 'marker')");

  wait_marker(db, "SELECT count(*) FROM t WHERE id = 100001", p);
  if (HasFatalFailure()) return;
  EXPECT_EQ(old_cluster().query_value("SELECT count(*) FROM t", db), "322");
  expect_same(db, "SELECT count(*), md5(string_agg(t::text, ',' ORDER BY id)) FROM t", "md5 of t");
  expect_same(db, "SELECT * FROM t WHERE id IN (-493, -486, -465, -430, 1600, 1740) ORDER BY id",
              "sample rows");
  MirrorCounters after;
  ASSERT_TRUE(wait_mirror_idle(p, kMirrorDeadline, 5, &after)) << after.describe();
  EXPECT_EQ(after.divergences, 0) << after.describe();
  EXPECT_EQ(after.journaled + after.failed, 0) << after.describe();
}

// Issue 15: a named statement prepared inside a transaction that is rolled back, on a table that
// transaction created (what psycopg does after its prepare threshold). The primary keeps the
// statement (prepared statements are not transactional) but not the table; preparing it on the
// mirror fails for the same reason. That is no divergence, and the session keeps mirroring live:
// a later write is applied on new, not journaled, and a statement prepared in a rolled-back
// transaction on a table that exists still works on the mirror when it is used later.
TEST_F(MirrorTest, StatementPreparedInRolledBackTransactionIsNoDivergence) {
  std::string db = make_db("lazyprep", "CREATE TABLE kept (id int PRIMARY KEY, v text)");
  ProxyProcess& p = start_mirror_proxy();
  ConnPtr c = client(p, db);
  for (int round = 0; round < 3; ++round) {
    exec(c.get(), "BEGIN");
    exec(c.get(), "CREATE TABLE gone (a int)");
    const std::string name = "_pg3_" + std::to_string(round);
    {
      ResultPtr r(PQprepare(c.get(), name.c_str(), "INSERT INTO gone VALUES ($1)", 0, nullptr));
      ASSERT_EQ(PQresultStatus(r.get()), PGRES_COMMAND_OK) << PQerrorMessage(c.get());
    }
    const char* one[1] = {"1"};
    {
      ResultPtr r(PQexecPrepared(c.get(), name.c_str(), 1, one, nullptr, nullptr, 0));
      ASSERT_EQ(PQresultStatus(r.get()), PGRES_COMMAND_OK) << PQerrorMessage(c.get());
    }
    exec(c.get(), "ROLLBACK");
  }
  // Prepared inside a rolled-back transaction too, but on a table that exists: used later in a
  // committed write, it must reach the mirror first.
  exec(c.get(), "BEGIN");
  {
    ResultPtr r(PQprepare(c.get(), "ins_kept", "INSERT INTO kept VALUES ($1, $2)", 0, nullptr));
    ASSERT_EQ(PQresultStatus(r.get()), PGRES_COMMAND_OK) << PQerrorMessage(c.get());
  }
  exec(c.get(), "ROLLBACK");
  for (int i = 1; i <= 5; ++i) {
    const std::string id = std::to_string(i);
    const char* values[2] = {id.c_str(), "later"};
    ResultPtr r(PQexecPrepared(c.get(), "ins_kept", 2, values, nullptr, nullptr, 0));
    ASSERT_EQ(PQresultStatus(r.get()), PGRES_COMMAND_OK) << PQerrorMessage(c.get());
  }
  exec(c.get(), "INSERT INTO kept VALUES (100, 'marker')");
  wait_marker(db, "SELECT count(*) FROM kept WHERE id = 100", p);
  if (HasFatalFailure()) return;
  expect_same(db, "SELECT * FROM kept ORDER BY id", "kept");
  EXPECT_EQ(old_cluster().query_value("SELECT count(*) FROM kept", db), "6");
  MirrorCounters after;
  ASSERT_TRUE(wait_mirror_idle(p, kMirrorDeadline, 5, &after)) << after.describe();
  EXPECT_EQ(after.divergences, 0) << after.describe();
  EXPECT_EQ(after.journaled + after.failed, 0) << after.describe();
  EXPECT_EQ(file_size(journal_) <= 0, true) << "journal: " << tail(read_file(journal_), 2000);
}

// ---------------------------------------------------------------------------------------------
// 5. Session state is replayed on the mirror connection.

TEST_F(MirrorTest, SessionStateIsReplayedOnTheMirror) {
  std::string db = make_db("state",
                           "CREATE SCHEMA sa; CREATE SCHEMA sb;"
                           "CREATE TABLE public.t (v text); CREATE TABLE sa.t (v text);"
                           "CREATE TABLE sb.t (v text)");
  ProxyProcess& p = start_mirror_proxy();
  {
    ConnPtr c = client(p, db);
    exec(c.get(), "SET search_path TO sa");
    exec(c.get(), "INSERT INTO t VALUES ('after SET')");
    // A SET in a rolled-back transaction does not stick (on the primary or the mirror).
    exec(c.get(), "BEGIN");
    exec(c.get(), "SET search_path TO sb");
    exec(c.get(), "ROLLBACK");
    exec(c.get(), "INSERT INTO t VALUES ('after rolled-back SET')");
    // SET LOCAL lasts for its transaction only.
    exec(c.get(), "BEGIN");
    exec(c.get(), "SET LOCAL search_path TO sb");
    exec(c.get(), "INSERT INTO t VALUES ('SET LOCAL')");
    exec(c.get(), "COMMIT");
    exec(c.get(), "INSERT INTO t VALUES ('after SET LOCAL')");
    // set_config() in a SELECT.
    exec(c.get(), "SELECT set_config('search_path', 'sb', false)");
    exec(c.get(), "INSERT INTO t VALUES ('after set_config')");
    exec(c.get(), "RESET search_path");
    exec(c.get(), "INSERT INTO t VALUES ('after RESET')");
    // Extended protocol after a SET.
    exec(c.get(), "SET search_path = sa, public");
    const char* values[1] = {"extended after SET"};
    ResultPtr r(PQexecParams(c.get(), "INSERT INTO t VALUES ($1)", 1, nullptr, values, nullptr,
                             nullptr, 0));
    ASSERT_EQ(PQresultStatus(r.get()), PGRES_COMMAND_OK) << PQerrorMessage(c.get());
    exec(c.get(), "INSERT INTO public.t VALUES ('marker 1')");
  }
  {
    // The search_path from the startup packet.
    ConnPtr c = client(p, db, "options='-c search_path=sb'");
    EXPECT_EQ(query_value(c.get(), "SHOW search_path"), "sb");
    exec(c.get(), "INSERT INTO t VALUES ('startup options')");
    exec(c.get(), "INSERT INTO public.t VALUES ('marker 2')");
  }
  wait_marker(db, "SELECT count(*) FROM public.t WHERE v = 'marker 1'", p);
  wait_marker(db, "SELECT count(*) FROM public.t WHERE v = 'marker 2'", p);
  if (HasFatalFailure()) return;
  EXPECT_EQ(dump(old_cluster(), db, "SELECT v FROM sa.t ORDER BY v"),
            "after SET\nafter SET LOCAL\nafter rolled-back SET\nextended after SET\n");
  EXPECT_EQ(dump(old_cluster(), db, "SELECT v FROM sb.t ORDER BY v"),
            "SET LOCAL\nafter set_config\nstartup options\n");
  for (const char* schema : {"public", "sa", "sb"}) {
    expect_same(db, std::string("SELECT v FROM ") + schema + ".t ORDER BY v",
                std::string(schema) + ".t");
  }
  MirrorCounters after = counters(p);
  EXPECT_EQ(after.divergences, 0) << after.describe();
  EXPECT_EQ(after.journaled + after.failed, 0) << after.describe();
}

// ---------------------------------------------------------------------------------------------
// 6. Nondeterministic writes are counted; a volatile function called in a SELECT is mirrored.

TEST_F(MirrorTest, NondeterministicWritesAreCountedAndVolatileFunctionsMirrored) {
  std::string db = make_db("nondet", kNondeterministicSetup);
  ProxyProcess& p = start_mirror_proxy();  // unknown_function_is_write = true (default)
  nondeterministic_scenario(p, db);
}

TEST_F(MirrorTest, VolatilityLearnedFromTheCatalogMakesASelectAWrite) {
  std::string db = make_db("catalog", kNondeterministicSetup);
  // bump() is unknown to the built-in tables: only the catalog says it is VOLATILE.
  ProxyProcess& p =
      start_mirror_proxy({}, "\n[classifier]\ncatalog_user = \"postgres\"\ncatalog_database = \"" +
                                 db + "\"\nunknown_function_is_write = false\n");
  ASSERT_TRUE(poll_until(
      [&] { return p.log_text().find("function volatility learned") != std::string::npos; },
      milliseconds(60000), milliseconds(100)))
      << "the catalog was not loaded; log:\n"
      << tail(p.log_text());
  nondeterministic_scenario(p, db);
}

// A serial column left to its default gets another value from new's own sequence: with the
// catalog's column defaults, an INSERT that omits it counts as nondeterministic; one that lists
// every column with constants does not.
TEST_F(MirrorTest, SerialDefaultBehindAColumnListIsCountedAsNondeterministic) {
  std::string db = make_db("serial", "CREATE TABLE items (id serial PRIMARY KEY, name text)");
  ProxyProcess& p = start_mirror_proxy(
      {}, "\n[classifier]\ncatalog_user = \"postgres\"\ncatalog_database = \"" + db + "\"\n");
  ASSERT_TRUE(poll_until(
      [&] { return p.log_text().find("function volatility learned") != std::string::npos; },
      milliseconds(60000), milliseconds(100)))
      << "the catalog was not loaded; log:\n"
      << tail(p.log_text());
  EXPECT_NE(p.log_text().find("column defaults learned"), std::string::npos) << tail(p.log_text());
  ConnPtr c = client(p, db);
  const MirrorCounters before = counters(p);
  exec(c.get(), "INSERT INTO items (id, name) VALUES (1000, 'explicit')");
  wait_marker(db, "SELECT count(*) FROM items WHERE id = 1000", p);
  if (HasFatalFailure()) return;
  const MirrorCounters explicit_columns = counters(p);
  EXPECT_EQ(explicit_columns.nondeterministic, before.nondeterministic)
      << explicit_columns.describe();
  exec(c.get(), "INSERT INTO items (name) VALUES ('serial')");
  wait_marker(db, "SELECT count(*) FROM items WHERE name = 'serial'", p);
  if (HasFatalFailure()) return;
  const MirrorCounters after = counters(p);
  EXPECT_EQ(after.nondeterministic - before.nondeterministic, 1) << after.describe();
  EXPECT_EQ(after.divergences, 0) << after.describe();
}

// pg_terminate_backend(pid) acts on the server it runs on: mirrored, it would end whatever
// backend has that pid on new. A backend on new, whose pid the client names, survives.
TEST_F(MirrorTest, TerminateBackendIsNotMirrored) {
  std::string db = make_db("terminate", "CREATE TABLE t (id int PRIMARY KEY)");
  ProxyProcess& p = start_mirror_proxy();
  ConnPtr bystander = connect(new_cluster().conninfo(db));
  const std::string pid = query_value(bystander.get(), "SELECT pg_backend_pid()");
  ConnPtr c = client(p, db);
  // On old that pid is most likely no backend (a warning and false), or one of old's own.
  exec(c.get(), "SELECT pg_terminate_backend(" + pid + ") FROM pg_stat_activity WHERE pid = " +
                    pid + " AND datname = current_database()");
  {
    const std::string sql = "SELECT pg_cancel_backend($1::int)";
    const char* values[] = {pid.c_str()};
    ResultPtr r(PQexecParams(c.get(), sql.c_str(), 1, nullptr, values, nullptr, nullptr, 0));
    EXPECT_EQ(PQresultStatus(r.get()), PGRES_TUPLES_OK) << PQerrorMessage(c.get());
  }
  exec(c.get(), "SELECT pg_terminate_backend(" + pid + ")");
  exec(c.get(), "INSERT INTO t VALUES (1)");
  wait_marker(db, "SELECT count(*) FROM t WHERE id = 1", p);
  if (HasFatalFailure()) return;
  EXPECT_EQ(query_value(bystander.get(), "SELECT 42"), "42")
      << "the backend on new was terminated through the mirror";
  const MirrorCounters after = counters(p);
  EXPECT_EQ(after.divergences, 0) << after.describe();
  EXPECT_EQ(after.journaled + after.failed, 0) << after.describe();
}

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
// 14. The mirror logs in with pgtandem's own credentials (SCRAM-SHA-256 and md5 users).

TEST_F(MirrorTest, MirrorUsesCredentialsFileForPasswordUsers) {
  std::string db = make_db("creds", std::string("CREATE TABLE t (who text, n int);"
                                                "GRANT ALL ON t TO ") +
                                        kScramUser + ", " + kMd5User);
  std::string creds = dir_->file("credentials");
  write_file(creds, "# pgtandem's own\n127.0.0.1:" + std::to_string(new_cluster().port()) +
                        ":*:" + kScramUser + ":" + kScramPassword +
                        "\n127.0.0.1:" + std::to_string(new_cluster().port()) + ":*:" + kMd5User +
                        ":" + kMd5Password + "\n");
  ::chmod(creds.c_str(), 0600);
  ProxyProcess& p = start_mirror_proxy({"credentials_file = \"" + creds + "\""});
  for (auto [user, password] : {std::pair{kScramUser, kScramPassword}, {kMd5User, kMd5Password}}) {
    ConnPtr c = connect(p.endpoint().conninfo(std::string("password=") + password, db, user));
    exec(c.get(), std::string("INSERT INTO t VALUES ('") + user + "', 1)");
    exec(c.get(), std::string("UPDATE t SET n = n + 1 WHERE who = '") + user + "'");
  }
  std::string last;
  EXPECT_TRUE(wait_value(new_cluster(), db, "SELECT string_agg(who || n, ',' ORDER BY who) FROM t",
                         std::string(kMd5User) + "2," + kScramUser + "2", kMirrorDeadline, &last))
      << last << "; " << counters(p).describe() << "\n"
      << tail(p.log_text());
  MirrorCounters c = counters(p);
  EXPECT_EQ(c.journaled + c.failed + c.divergences, 0) << c.describe();
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

// Commit order across sessions (policy/mirror/mirror_order.h): session A's write is held up on new (an
// advisory lock that only its statement takes); session B's write, made after A's committed,
// must not overtake it there, though B has a mirror connection of its own. Then a TRUNCATE in one
// session followed by INSERTs in others (what pgbench does at every start) leaves the same rows
// on both.
TEST_F(MirrorTest, WritesOfDifferentSessionsReachNewInCommitOrder) {
  std::string db = make_db("order", "CREATE TABLE log (who text, at timestamptz DEFAULT clock_timestamp())");
  ProxyProcess& p = start_mirror_proxy();
  ConnPtr held = connect(new_cluster().conninfo(db));
  exec(held.get(), "SELECT pg_advisory_lock(42)");  // new only: A's mirrored write waits on it
  ConnPtr a = client(p, db);
  ConnPtr b = client(p, db);
  exec(a.get(), "INSERT INTO log (who) SELECT 'a' FROM (SELECT pg_advisory_xact_lock(42)) l");
  exec(b.get(), "INSERT INTO log (who) VALUES ('b')");
  EXPECT_EQ(old_cluster().query_value("SELECT string_agg(who, ',' ORDER BY at) FROM log", db), "a,b");
  // B's write is ready to apply on new: it must wait for A's.
  std::this_thread::sleep_for(milliseconds(1500));
  EXPECT_EQ(new_cluster().query_value("SELECT count(*) FROM log", db), "0")
      << "B's write reached new before A's, which committed first on old";
  exec(held.get(), "SELECT pg_advisory_unlock(42)");
  EXPECT_TRUE(wait_value(new_cluster(), db, "SELECT string_agg(who, ',' ORDER BY at) FROM log", "a,b"))
      << new_cluster().query_value("SELECT string_agg(who, ',' ORDER BY at) FROM log", db);
  EXPECT_GE(p.metrics().sum("pgtandem_mirror_order_waits_total", {{"result", "ok"}}), 1);

  // TRUNCATE, then INSERTs by other sessions, while the TRUNCATE is held up on new.
  exec(held.get(), "SELECT pg_advisory_lock(43)");
  ConnPtr t = client(p, db);
  exec(t.get(), "BEGIN");
  exec(t.get(), "SELECT pg_advisory_xact_lock(43)");  // a write: advisory locks are mirrored
  exec(t.get(), "TRUNCATE log");
  exec(t.get(), "COMMIT");
  for (ConnPtr* c : {&a, &b}) {
    for (int i = 0; i < 5; ++i) exec(c->get(), "INSERT INTO log (who) VALUES ('after')");
  }
  exec(held.get(), "SELECT pg_advisory_unlock(43)");
  MirrorCounters idle;
  ASSERT_TRUE(wait_mirror_idle(p, kMirrorDeadline, 5, &idle)) << idle.describe();
  EXPECT_EQ(old_cluster().query_value("SELECT count(*) FROM log", db), "10");
  EXPECT_EQ(new_cluster().query_value("SELECT count(*) FROM log", db), "10")
      << "the TRUNCATE was applied on new after INSERTs that followed it on old";
  EXPECT_EQ(idle.journaled, 0) << idle.describe();
  EXPECT_EQ(idle.divergences, 0) << idle.describe();
}

namespace {
// Runs the hot-row workload of issue 13 through `p` until `total` transactions committed: 8
// sessions overwrite 10 rows non-commutatively (v = v * 31 + k), each UPDATE waiting on the row
// lock of another session's transaction and reading what it wrote. `style(s)` says how session s
// commits: 0 BEGIN, UPDATE, COMMIT as three requests; 1 BEGIN, an extended-protocol UPDATE, then
// COMMIT; 2 an autocommit UPDATE. Rows are random. Returns the sessions' errors, joined.
std::string hot_rows(ProxyProcess& p, const std::string& db, int total,
                     const std::function<int(int)>& style, unsigned seed) {
  std::atomic<bool> stop{false};
  std::atomic<int> transactions{0};
  std::vector<std::thread> sessions;
  std::vector<std::string> errors(8);
  for (int s = 0; s < 8; ++s) {
    sessions.emplace_back([&, s] {
      try {
        ConnPtr c = connect(p.endpoint().conninfo("", db));
        std::mt19937 rng(seed + static_cast<unsigned>(s));
        const std::string set = "UPDATE hot SET v = (v * 31 + " + std::to_string(s + 1) +
                                ") % 1000000007 WHERE id = ";
        while (!stop) {
          const std::string id = std::to_string(1 + rng() % 10);
          switch (style(s)) {
            case 0:
              exec(c.get(), "BEGIN");
              exec(c.get(), set + id);
              exec(c.get(), "COMMIT");
              break;
            case 1: {
              exec(c.get(), "BEGIN");
              const char* values[] = {id.c_str()};
              PGresult* r = PQexecParams(c.get(), (set + "$1::int").c_str(), 1, nullptr, values,
                                         nullptr, nullptr, 0);
              const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
              PQclear(r);
              if (!ok) throw std::runtime_error(PQerrorMessage(c.get()));
              exec(c.get(), "COMMIT");
              break;
            }
            default:
              exec(c.get(), set + id);
          }
          ++transactions;
        }
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(s)] = e.what();
      }
    });
  }
  // Counted, not timed: thousands of conflicts however loaded the machine is.
  poll_until([&] { return transactions >= total; }, milliseconds(60000), milliseconds(50));
  stop = true;
  for (auto& t : sessions) t.join();
  std::string out;
  for (const auto& e : errors) out += e;
  return out;
}
}  // namespace

// Commit order across sessions (policy/mirror/mirror_order.h) on the hot-row workload: a
// transaction whose UPDATE waited on another's row lock must reach new after it, or the row ends
// up different on new with no divergence counted (both sides answer UPDATE 1); one inversion in a
// row's hundreds of updates is enough. The first rule (follow what committed before the
// transaction began) left every row different, and so did ordering by the answers' arrival alone
// (a backend releasing a row lock is often preempted by the one it woke before it sends its own
// answer). With a lone COMMIT, simple or after an extended-protocol statement, the order is exact.
TEST_F(MirrorTest, HotRowsEndedByALoneCommitReachNewInThePrimarysOrder) {
  std::string db = make_db("hot", "CREATE TABLE hot (id int PRIMARY KEY, v bigint NOT NULL)");
  for (PgCluster* c : {&old_cluster(), &new_cluster()})
    c->exec("INSERT INTO hot SELECT g, g FROM generate_series(1, 10) g", db);
  ProxyProcess& p = start_mirror_proxy();
  const unsigned seed = static_cast<unsigned>(std::random_device{}());
  EXPECT_EQ(hot_rows(p, db, 4000, [](int s) { return s % 2; }, seed), "");
  MirrorCounters idle;
  ASSERT_TRUE(wait_mirror_idle(p, kMirrorDeadline, 5, &idle)) << idle.describe();
  const std::string q = "SELECT string_agg(id || '=' || v, ',' ORDER BY id) FROM hot";
  EXPECT_EQ(new_cluster().query_value(q, db), old_cluster().query_value(q, db))
      << "seed " << seed << "; " << idle.describe();
  EXPECT_EQ(idle.journaled, 0) << idle.describe();
  EXPECT_EQ(idle.divergences, 0) << idle.describe();
  EXPECT_EQ(p.metrics().sum("pgtandem_mirror_order_waits_total", {{"result", "timeout"}}), 0);
  EXPECT_EQ(p.metrics().sum("pgtandem_mirror_unordered_overlaps"), 0);

  // Autocommit UPDATEs on the same rows: pgtandem sees no lone COMMIT, only the answers' order,
  // so what overlapped is counted for verify to look at first (MigrateTest's hot rows: verify
  // names every differing row and repair fixes it).
  EXPECT_EQ(hot_rows(p, db, 1000, [](int) { return 2; }, seed), "");
  ASSERT_TRUE(wait_mirror_idle(p, kMirrorDeadline, 5, &idle)) << idle.describe();
  EXPECT_GT(p.metrics().sum("pgtandem_mirror_unordered_overlaps"), 0);
  EXPECT_NE(http_get(p.admin_port(), "/status").body.find("\"mirror_unordered_overlaps\":"),
            std::string::npos);
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

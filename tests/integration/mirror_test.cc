// Write mirroring end to end (issue 3, "Tests and acceptance"), what reaches new and in which
// order: what a client writes through pgtandem on `old` must reach `new` (pgbench TPC-B in the
// three query modes, explicit transactions with ROLLBACK and savepoints, COPY FROM in text and
// binary format, prepared statements with binary parameters, session state), nondeterministic
// writes counted (serial/identity defaults too), pg_terminate_backend not mirrored, the mirror's
// own credentials, and the writes of different sessions applied in the primary's commit order.
// What happens when new cannot keep up or fails: mirror_failure_test.cc. The fixture and its
// helpers: mirror_fixture.h.
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

}  // namespace
}  // namespace pgtandem::it

// Sessions through pgtandem behave as direct ones: psql, libpq simple/extended/pipeline, COPY,
// LISTEN/NOTIFY, notices, ParameterStatus, cancel, BackendKeyData, startup parameters.
#include <libpq/libpq-fs.h>
#include <poll.h>

#include <cstring>
#include <sstream>

#include "tests/integration/fixture.h"

namespace pgtandem::it {
namespace {

class SessionTest : public ViaTest {};
PGTANDEM_INSTANTIATE_VIA(SessionTest);

// Wait (bounded) for the pending result of an async query; returns null on timeout.
ResultPtr get_result(PGconn* c, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (PQisBusy(c)) {
    pollfd p{PQsocket(c), POLLIN, 0};
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return nullptr;
    poll(&p, 1, static_cast<int>(left));
    if (!PQconsumeInput(c)) break;
  }
  return ResultPtr(PQgetResult(c));
}

// Until the backend runs `pid`'s query in a wait (so a cancel or terminate lands mid-query).
bool wait_backend_waiting(PgCluster& cluster, int pid, const std::string& wait_event) {
  return poll_until(
      [&] {
        return cluster.query_value(
                   "SELECT count(*) FROM pg_stat_activity WHERE pid = " + std::to_string(pid) +
                   " AND state = 'active' AND wait_event = '" + wait_event + "'") == "1";
      },
      milliseconds(10000), milliseconds(20));
}

TEST_P(SessionTest, PsqlCommand) {
  auto r = run_psql(ep(), {"-At", "-c", "SELECT 40 + 2", "-c",
                           "SELECT current_user || '@' || current_database()"});
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(r.out, "42\npostgres@postgres\n");
}

TEST_P(SessionTest, PsqlScriptWithCopy) {
  TempDir dir("pgtandem-it-psql");
  std::string table = unique("psql_copy");
  std::ostringstream data;
  for (int i = 1; i <= 2000; ++i) {
    data << i << "\tname " << i << "\t";
    if (i % 7 == 0)
      data << "\\N";
    else if (i % 5 == 0)
      data << "tab\\there \\\\ backslash h\xc3\xa9llo";
    else
      data << "note-" << i * 31;
    data << "\n";
  }
  write_file(dir.file("in.tsv"), data.str());
  std::string script = "CREATE TABLE " + table + " (id int PRIMARY KEY, name text, note text);\n" +
                       "\\copy " + table + " FROM '" + dir.file("in.tsv") + "'\n" +
                       "\\copy (SELECT * FROM " + table + " ORDER BY id) TO '" +
                       dir.file("out.tsv") + "'\n" + "SELECT count(*), sum(id), count(note) FROM " +
                       table + ";\n";
  write_file(dir.file("script.sql"), script);
  auto r = run_psql(ep(), {"-At", "-f", dir.file("script.sql")});
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_NE(r.out.find("2000|2001000|1715"), std::string::npos) << r.out;
  EXPECT_EQ(describe_difference(read_file(dir.file("out.tsv")), data.str()), "");
  EXPECT_EQ(old_cluster().query_value("SELECT count(*) FROM " + table), "2000");
}

TEST_P(SessionTest, SimpleQueryMultiStatementAndErrors) {
  ConnPtr c = connect(ep().conninfo());
  ASSERT_TRUE(PQsendQuery(c.get(),
                          "SELECT 1 AS a; SELECT 'x'::text AS b, NULL::int AS c; "
                          "CREATE TEMP TABLE sq(v int); INSERT INTO sq VALUES (1), (2), (3)"));
  std::vector<std::string> seen;
  while (ResultPtr r{PQgetResult(c.get())}) {
    std::string s = result_status_name(r.get()) + " " + PQcmdStatus(r.get());
    if (PQresultStatus(r.get()) == PGRES_TUPLES_OK) {
      for (int i = 0; i < PQntuples(r.get()); ++i)
        for (int j = 0; j < PQnfields(r.get()); ++j)
          s += std::string(" ") + PQfname(r.get(), j) + "=" +
               (PQgetisnull(r.get(), i, j) ? "NULL" : PQgetvalue(r.get(), i, j));
    }
    seen.push_back(s);
  }
  std::vector<std::string> expected = {
      "PGRES_TUPLES_OK SELECT 1 a=1", "PGRES_TUPLES_OK SELECT 1 b=x c=NULL",
      "PGRES_COMMAND_OK CREATE TABLE", "PGRES_COMMAND_OK INSERT 0 3"};
  EXPECT_EQ(seen, expected);

  // An error stops the rest of a multi-statement query string.
  ASSERT_TRUE(PQsendQuery(c.get(), "SELECT 1; SELECT 1/0; SELECT 2"));
  seen.clear();
  while (ResultPtr r{PQgetResult(c.get())}) {
    const char* state = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE);
    seen.push_back(result_status_name(r.get()) + (state ? std::string(" ") + state : ""));
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"PGRES_TUPLES_OK", "PGRES_FATAL_ERROR 22012"}));

  ResultPtr empty(PQexec(c.get(), ""));
  EXPECT_EQ(PQresultStatus(empty.get()), PGRES_EMPTY_QUERY);
  EXPECT_EQ(query_value(c.get(), "SELECT sum(v) FROM sq"), "6");
}

TEST_P(SessionTest, ExtendedQueryTextAndBinaryParams) {
  ConnPtr c = connect(ep().conninfo());
  Oid types[5] = {23, 17, 25, 701, 25};  // int4, bytea, text, float8, text
  std::string bytea("\x00\x01\x02\xff\x00", 5);
  double d = 2.5;
  uint64_t bits;
  std::memcpy(&bits, &d, 8);
  std::string f8 = be32(static_cast<uint32_t>(bits >> 32)) + be32(static_cast<uint32_t>(bits));
  const char* values[5] = {"42", bytea.data(), "h\xc3\xa9llo", f8.data(), nullptr};
  int lengths[5] = {0, static_cast<int>(bytea.size()), 0, 8, 0};
  int formats[5] = {0, 1, 0, 1, 0};
  ResultPtr r(PQexecParams(
      c.get(), "SELECT $1::int4 + 1, $2::bytea, $3::text, $4::float8 * 2, $5::text IS NULL", 5,
      types, values, lengths, formats, /*resultFormat=*/1));
  ASSERT_EQ(PQresultStatus(r.get()), PGRES_TUPLES_OK) << PQerrorMessage(c.get());
  ASSERT_EQ(PQntuples(r.get()), 1);
  auto bin = [&](int col) {
    return std::string(PQgetvalue(r.get(), 0, col), PQgetlength(r.get(), 0, col));
  };
  EXPECT_EQ(bin(0), be32(43));
  EXPECT_EQ(bin(1), bytea);
  EXPECT_EQ(bin(2), "h\xc3\xa9llo");
  double five = 5.0;
  std::memcpy(&bits, &five, 8);
  EXPECT_EQ(bin(3), be32(static_cast<uint32_t>(bits >> 32)) + be32(static_cast<uint32_t>(bits)));
  EXPECT_EQ(bin(4), std::string("\x01", 1));
  EXPECT_EQ(PQfformat(r.get(), 0), 1);

  // A 1 MB parameter and text results.
  std::string big(1 << 20, 'q');
  big[12345] = 'Z';
  const char* bv[1] = {big.c_str()};
  ResultPtr r2(
      PQexecParams(c.get(), "SELECT length($1), md5($1)", 1, nullptr, bv, nullptr, nullptr, 0));
  ASSERT_EQ(PQresultStatus(r2.get()), PGRES_TUPLES_OK) << PQerrorMessage(c.get());
  EXPECT_EQ(std::string(PQgetvalue(r2.get(), 0, 0)), std::to_string(big.size()));
  ConnPtr d2 = connect(direct().conninfo());
  ResultPtr r3(PQexecParams(d2.get(), "SELECT md5($1)", 1, nullptr, bv, nullptr, nullptr, 0));
  EXPECT_EQ(std::string(PQgetvalue(r2.get(), 0, 1)), std::string(PQgetvalue(r3.get(), 0, 0)));

  // An error in Bind (bad input for the type) and the session goes on.
  const char* bad[1] = {"not-a-number"};
  ResultPtr r4(PQexecParams(c.get(), "SELECT $1::int4", 1, types, bad, nullptr, nullptr, 0));
  EXPECT_EQ(PQresultStatus(r4.get()), PGRES_FATAL_ERROR);
  EXPECT_STREQ(PQresultErrorField(r4.get(), PG_DIAG_SQLSTATE), "22P02");
  EXPECT_EQ(query_value(c.get(), "SELECT 'still fine'"), "still fine");
}

TEST_P(SessionTest, PrepareAndExecPrepared) {
  ConnPtr c = connect(ep().conninfo());
  Oid types[2] = {23, 25};
  ResultPtr p(PQprepare(c.get(), "s1", "SELECT $1::int * 2 AS doubled, upper($2) AS up", 2, types));
  ASSERT_EQ(PQresultStatus(p.get()), PGRES_COMMAND_OK) << PQerrorMessage(c.get());
  ResultPtr desc(PQdescribePrepared(c.get(), "s1"));
  ASSERT_EQ(PQresultStatus(desc.get()), PGRES_COMMAND_OK);
  EXPECT_EQ(PQnparams(desc.get()), 2);
  EXPECT_EQ(PQparamtype(desc.get(), 1), 25u);
  ASSERT_EQ(PQnfields(desc.get()), 2);
  EXPECT_STREQ(PQfname(desc.get(), 1), "up");
  for (int i = 0; i < 50; ++i) {
    std::string n = std::to_string(i);
    std::string s = "abc" + n;
    const char* v[2] = {n.c_str(), s.c_str()};
    ResultPtr r(PQexecPrepared(c.get(), "s1", 2, v, nullptr, nullptr, 0));
    ASSERT_EQ(PQresultStatus(r.get()), PGRES_TUPLES_OK) << PQerrorMessage(c.get());
    ASSERT_EQ(std::string(PQgetvalue(r.get(), 0, 0)), std::to_string(2 * i));
    ASSERT_EQ(std::string(PQgetvalue(r.get(), 0, 1)), "ABC" + n);
  }
  ResultPtr bad(PQprepare(c.get(), "s2", "SELEC 1", 0, nullptr));
  EXPECT_EQ(PQresultStatus(bad.get()), PGRES_FATAL_ERROR);
  EXPECT_STREQ(PQresultErrorField(bad.get(), PG_DIAG_SQLSTATE), "42601");
  EXPECT_STREQ(PQresultErrorField(bad.get(), PG_DIAG_STATEMENT_POSITION), "1");
  exec(c.get(), "DEALLOCATE s1");
  ResultPtr gone(PQexecPrepared(c.get(), "s1", 0, nullptr, nullptr, nullptr, 0));
  EXPECT_STREQ(PQresultErrorField(gone.get(), PG_DIAG_SQLSTATE), "26000");
}

// A pipeline with Sync only between some statements, an error in the middle, a statement that
// depends on an aborted Parse, and implicit-transaction rollback. Returns a transcript.
std::string run_pipeline(const Endpoint& ep, const std::string& table) {
  ConnPtr c = connect(ep.conninfo());
  exec(c.get(), "DROP TABLE IF EXISTS " + table + "; CREATE TABLE " + table + " (v int)");
  std::ostringstream t;
  if (PQenterPipelineMode(c.get()) != 1) return "cannot enter pipeline mode";
  const char* one[1] = {"41"};
  std::string ins1 = "INSERT INTO " + table + " VALUES (1)";
  std::string ins2 = "INSERT INTO " + table + " VALUES (2)";
  std::string ins3 = "INSERT INTO " + table + " VALUES (3)";
  int ok = 1;
  // group 1: succeeds
  ok &= PQsendQueryParams(c.get(), "SELECT $1::int + 1", 1, nullptr, one, nullptr, nullptr, 0);
  ok &= PQsendQueryParams(c.get(), ins1.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0);
  ok &= PQpipelineSync(c.get());
  // group 2: insert, error with a position, then statements skipped until Sync
  ok &= PQsendQueryParams(c.get(), ins2.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0);
  ok &= PQsendQueryParams(c.get(), ("SELECT nosuchcolumn FROM " + table).c_str(), 0, nullptr,
                          nullptr, nullptr, nullptr, 0);
  ok &= PQsendQueryParams(c.get(), "SELECT 2", 0, nullptr, nullptr, nullptr, nullptr, 0);
  ok &= PQsendPrepare(c.get(), "pstmt", "SELECT $1::text || '!'", 1, nullptr);
  ok &= PQpipelineSync(c.get());
  // group 3: the prepared statement was never created; insert 3 is rolled back with it
  ok &= PQsendQueryParams(c.get(), ins3.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0);
  ok &= PQsendQueryPrepared(c.get(), "pstmt", 1, one, nullptr, nullptr, 0);
  ok &= PQsendQueryParams(c.get(), "SELECT 1/0", 0, nullptr, nullptr, nullptr, nullptr, 0);
  ok &= PQpipelineSync(c.get());
  // group 4: a flush request without Sync, then the rest, then Sync
  ok &= PQsendPrepare(c.get(), "pstmt2", "SELECT $1::text || '?'", 1, nullptr);
  ok &= PQsendFlushRequest(c.get());
  ok &= PQsendQueryPrepared(c.get(), "pstmt2", 1, one, nullptr, nullptr, 1);
  ok &= PQsendQueryParams(c.get(), ("SELECT count(*), sum(v) FROM " + table).c_str(), 0, nullptr,
                          nullptr, nullptr, nullptr, 0);
  ok &= PQpipelineSync(c.get());
  if (!ok) return std::string("send failed: ") + PQerrorMessage(c.get());
  int syncs = 0;
  int nulls_in_a_row = 0;
  while (syncs < 4) {
    ResultPtr r = get_result(c.get(), milliseconds(10000));
    if (!r) {
      if (PQstatus(c.get()) != CONNECTION_OK)
        return t.str() + " connection lost: " + PQerrorMessage(c.get());
      if (++nulls_in_a_row > 2) return t.str() + " stuck";
      t << "| ";
      continue;
    }
    nulls_in_a_row = 0;
    auto st = PQresultStatus(r.get());
    t << PQresStatus(st);
    if (st == PGRES_PIPELINE_SYNC) ++syncs;
    if (st == PGRES_TUPLES_OK) {
      for (int i = 0; i < PQntuples(r.get()); ++i)
        for (int j = 0; j < PQnfields(r.get()); ++j)
          t << " [" << std::string(PQgetvalue(r.get(), i, j), PQgetlength(r.get(), i, j)) << "]";
    }
    if (st == PGRES_COMMAND_OK) t << " " << PQcmdStatus(r.get());
    if (st == PGRES_FATAL_ERROR) {
      const char* pos = PQresultErrorField(r.get(), PG_DIAG_STATEMENT_POSITION);
      t << " " << PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) << " pos=" << (pos ? pos : "-")
        << " \"" << PQresultErrorField(r.get(), PG_DIAG_MESSAGE_PRIMARY) << "\"";
    }
    t << "\n";
  }
  PQexitPipelineMode(c.get());
  t << "after: "
    << query_value(c.get(), "SELECT count(*) || '/' || coalesce(sum(v), 0) FROM " + table);
  return t.str();
}

TEST_P(SessionTest, PipelineModeMatchesDirect) {
  std::string expected = run_pipeline(direct(), unique("pipe_ref"));
  // The reference itself has the shape the protocol prescribes.
  EXPECT_NE(expected.find("PGRES_FATAL_ERROR 42703 pos=8"), std::string::npos) << expected;
  EXPECT_NE(expected.find("PGRES_PIPELINE_ABORTED"), std::string::npos) << expected;
  EXPECT_NE(expected.find("PGRES_FATAL_ERROR 26000"), std::string::npos) << expected;
  EXPECT_NE(expected.find("PGRES_TUPLES_OK [1] [1]"), std::string::npos) << expected;
  EXPECT_NE(expected.find("after: 1/1"), std::string::npos) << expected;
  std::string actual = run_pipeline(ep(), unique("pipe"));
  EXPECT_EQ(actual, expected);
}

std::string copy_out(PGconn* c, const std::string& sql) {
  ResultPtr r(PQexec(c, sql.c_str()));
  if (PQresultStatus(r.get()) != PGRES_COPY_OUT)
    return "not COPY_OUT: " + std::string(PQerrorMessage(c));
  std::string out;
  for (;;) {
    char* buf = nullptr;
    int n = PQgetCopyData(c, &buf, 0);
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
      PQfreemem(buf);
      continue;
    }
    if (buf) PQfreemem(buf);
    break;
  }
  ResultPtr end(PQgetResult(c));
  if (PQresultStatus(end.get()) != PGRES_COMMAND_OK)
    return "COPY failed: " + std::string(PQerrorMessage(c));
  return out;
}

TEST_P(SessionTest, CopyFromStdinAndToStdout) {
  std::string table = unique("copy");
  // Synchronized scans would start each COPY TO where the previous scan of this table stopped.
  const std::string no_sync_scan = "options='-c synchronize_seqscans=off'";
  ConnPtr c = connect(ep().conninfo(no_sync_scan));
  exec(c.get(), "CREATE TABLE " + table + " (id int, payload text, b bytea)");
  std::string data;
  for (int i = 0; i < 60000; ++i) {
    data += std::to_string(i) + "\trow " + std::to_string(i) + " " +
            std::string(static_cast<size_t>(i % 97), 'p') + "\t\\\\x" + (i % 2 ? "00ff" : "") +
            "\n";
  }
  ResultPtr start(PQexec(c.get(), ("COPY " + table + " FROM STDIN").c_str()));
  ASSERT_EQ(PQresultStatus(start.get()), PGRES_COPY_IN) << PQerrorMessage(c.get());
  // Uneven chunks, so CopyData boundaries fall anywhere in the rows.
  size_t off = 0, step = 1;
  while (off < data.size()) {
    size_t n = std::min(step, data.size() - off);
    ASSERT_EQ(PQputCopyData(c.get(), data.data() + off, static_cast<int>(n)), 1);
    off += n;
    step = step * 3 % 65521 + 1;
  }
  ASSERT_EQ(PQputCopyEnd(c.get(), nullptr), 1);
  ResultPtr done(PQgetResult(c.get()));
  ASSERT_EQ(PQresultStatus(done.get()), PGRES_COMMAND_OK) << PQerrorMessage(c.get());
  EXPECT_STREQ(PQcmdStatus(done.get()), "COPY 60000");
  EXPECT_EQ(ResultPtr(PQgetResult(c.get())), nullptr);

  ConnPtr d = connect(direct().conninfo(no_sync_scan));
  std::string text_ep = copy_out(c.get(), "COPY " + table + " TO STDOUT");
  std::string text_direct = copy_out(d.get(), "COPY " + table + " TO STDOUT");
  EXPECT_EQ(describe_difference(text_ep, text_direct), "")
      << "COPY TO STDOUT (text) differs from direct";
  // Heap order is not insertion order (COPY fills free space left on earlier pages): sort.
  std::string sorted_ep =
      copy_out(c.get(), "COPY (SELECT * FROM " + table + " ORDER BY id) TO STDOUT");
  EXPECT_EQ(describe_difference(sorted_ep, data), "")
      << "COPY TO STDOUT (text) differs from what was copied in";
  std::string bin_ep = copy_out(c.get(), "COPY " + table + " TO STDOUT (FORMAT binary)");
  std::string bin_direct = copy_out(d.get(), "COPY " + table + " TO STDOUT (FORMAT binary)");
  EXPECT_GT(bin_ep.size(), 1000000u);
  EXPECT_EQ(describe_difference(bin_ep, bin_direct), "")
      << "COPY TO STDOUT (binary) differs from direct";
  std::string csv_ep =
      copy_out(c.get(), "COPY (SELECT id, payload FROM " + table +
                            " WHERE id < 5000 ORDER BY id) TO STDOUT (FORMAT csv, HEADER)");
  std::string csv_direct =
      copy_out(d.get(), "COPY (SELECT id, payload FROM " + table +
                            " WHERE id < 5000 ORDER BY id) TO STDOUT (FORMAT csv, HEADER)");
  EXPECT_EQ(describe_difference(csv_ep, csv_direct), "");
}

TEST_P(SessionTest, CopyFailLeavesTableUnchanged) {
  std::string table = unique("copyfail");
  ConnPtr c = connect(ep().conninfo());
  exec(c.get(), "CREATE TABLE " + table + " (v int); INSERT INTO " + table + " VALUES (1), (2)");
  ResultPtr start(PQexec(c.get(), ("COPY " + table + " FROM STDIN").c_str()));
  ASSERT_EQ(PQresultStatus(start.get()), PGRES_COPY_IN) << PQerrorMessage(c.get());
  std::string rows;
  for (int i = 0; i < 1000; ++i) rows += std::to_string(i) + "\n";
  ASSERT_EQ(PQputCopyData(c.get(), rows.data(), static_cast<int>(rows.size())), 1);
  ASSERT_EQ(PQputCopyEnd(c.get(), "client gave up"), 1);
  ResultPtr r(PQgetResult(c.get()));
  ASSERT_EQ(PQresultStatus(r.get()), PGRES_FATAL_ERROR);
  EXPECT_STREQ(PQresultErrorField(r.get(), PG_DIAG_SQLSTATE), "57014");
  EXPECT_STREQ(PQresultErrorField(r.get(), PG_DIAG_MESSAGE_PRIMARY),
               "COPY from stdin failed: client gave up");
  EXPECT_EQ(ResultPtr(PQgetResult(c.get())), nullptr);
  EXPECT_EQ(query_value(c.get(), "SELECT count(*) FROM " + table), "2");
  EXPECT_EQ(old_cluster().query_value("SELECT count(*) FROM " + table), "2");

  // A COPY that fails on the server side (bad data) inside a transaction.
  exec(c.get(), "BEGIN");
  ResultPtr s2(PQexec(c.get(), ("COPY " + table + " FROM STDIN").c_str()));
  ASSERT_EQ(PQresultStatus(s2.get()), PGRES_COPY_IN);
  std::string bad = "3\nnot-a-number\n4\n";
  PQputCopyData(c.get(), bad.data(), static_cast<int>(bad.size()));
  PQputCopyEnd(c.get(), nullptr);
  ResultPtr r2(PQgetResult(c.get()));
  EXPECT_STREQ(PQresultErrorField(r2.get(), PG_DIAG_SQLSTATE), "22P02");
  EXPECT_EQ(ResultPtr(PQgetResult(c.get())), nullptr);
  EXPECT_EQ(PQtransactionStatus(c.get()), PQTRANS_INERROR);
  exec(c.get(), "ROLLBACK");
  EXPECT_EQ(query_value(c.get(), "SELECT count(*) FROM " + table), "2");
}

TEST_P(SessionTest, LargeObjectsUseFunctionCalls) {
  // libpq's large-object API runs on the fastpath FunctionCall ('F') message.
  ConnPtr c = connect(ep().conninfo());
  exec(c.get(), "BEGIN");
  Oid oid = lo_creat(c.get(), INV_READ | INV_WRITE);
  ASSERT_NE(oid, InvalidOid) << PQerrorMessage(c.get());
  int fd = lo_open(c.get(), oid, INV_READ | INV_WRITE);
  ASSERT_GE(fd, 0) << PQerrorMessage(c.get());
  std::string blob;
  for (int i = 0; i < 300000; ++i) blob.push_back(static_cast<char>(i * 7 % 251));
  ASSERT_EQ(lo_write(c.get(), fd, blob.data(), blob.size()), static_cast<int>(blob.size()));
  ASSERT_EQ(lo_lseek64(c.get(), fd, 0, SEEK_SET), 0);
  std::string back(blob.size(), '\0');
  ASSERT_EQ(lo_read(c.get(), fd, back.data(), back.size()), static_cast<int>(blob.size()));
  EXPECT_EQ(describe_difference(back, blob), "");
  EXPECT_EQ(lo_tell64(c.get(), fd), static_cast<pg_int64>(blob.size()));
  EXPECT_EQ(lo_close(c.get(), fd), 0);
  EXPECT_LT(lo_open(c.get(), oid + 1000000, INV_READ), 0);  // an error through the fastpath
  exec(c.get(), "ROLLBACK");
  exec(c.get(), "BEGIN");
  EXPECT_EQ(query_value(c.get(), "SELECT count(*) FROM pg_largeobject_metadata WHERE oid = " +
                                     std::to_string(oid)),
            "0");
  exec(c.get(), "COMMIT");
}

TEST_P(SessionTest, ReplicationCopyBoth) {
  // A physical walsender session: startup parameter replication=true, IDENTIFY_SYSTEM, then
  // START_REPLICATION streams WAL in CopyBoth mode; the client sends status updates and ends it.
  ConnPtr c = connect(ep().conninfo("replication=true"));
  ResultPtr id = exec(c.get(), "IDENTIFY_SYSTEM");
  ASSERT_EQ(PQntuples(id.get()), 1);
  std::string xlogpos = PQgetvalue(id.get(), 0, 2);
  ASSERT_FALSE(xlogpos.empty());
  std::string table = unique("walgen");
  old_cluster().exec("CREATE TABLE " + table + " AS SELECT g FROM generate_series(1, 1000) g");
  ResultPtr start(PQexec(c.get(), ("START_REPLICATION PHYSICAL " + xlogpos).c_str()));
  ASSERT_EQ(PQresultStatus(start.get()), PGRES_COPY_BOTH) << PQerrorMessage(c.get());
  long wal_bytes = 0;
  int keepalives = 0;
  auto deadline = Clock::now() + milliseconds(10000);
  while (wal_bytes == 0 && Clock::now() < deadline) {
    char* buf = nullptr;
    int n = PQgetCopyData(c.get(), &buf, 1);
    if (n == 0) {
      pollfd p{PQsocket(c.get()), POLLIN, 0};
      poll(&p, 1, 100);
      PQconsumeInput(c.get());
      continue;
    }
    ASSERT_GT(n, 0) << PQerrorMessage(c.get());
    if (buf[0] == 'w') wal_bytes += n - 25;  // XLogData header: 1 + 8 + 8 + 8
    if (buf[0] == 'k') ++keepalives;
    PQfreemem(buf);
  }
  EXPECT_GT(wal_bytes, 0) << "no XLogData within 10 s";
  // Standby status update (client -> server CopyData): 'r', write/flush/apply LSNs, time, reply
  // flag.
  std::string status = "r" + be32(0) + be32(0) + be32(0) + be32(0) + be32(0) + be32(0) + be32(0) +
                       be32(0) + std::string(1, '\0');
  ASSERT_EQ(PQputCopyData(c.get(), status.data(), static_cast<int>(status.size())), 1);
  ASSERT_EQ(PQputCopyEnd(c.get(), nullptr), 1);
  // The server answers CopyDone; drain the remaining CopyData, then the command's results.
  for (;;) {
    char* buf = nullptr;
    int n = PQgetCopyData(c.get(), &buf, 0);
    if (buf) PQfreemem(buf);
    if (n < 0) break;
  }
  std::vector<std::string> results;
  while (ResultPtr r = get_result(c.get(), milliseconds(10000)))
    results.push_back(result_status_name(r.get()));
  ASSERT_FALSE(results.empty());
  EXPECT_EQ(results.back(), "PGRES_COMMAND_OK");
  EXPECT_EQ(PQstatus(c.get()), CONNECTION_OK);
  ResultPtr again = exec(c.get(), "IDENTIFY_SYSTEM");
  EXPECT_EQ(PQntuples(again.get()), 1);
}

TEST_P(SessionTest, SslRequiredIsRefusedLikeTheServer) {
  // Neither the test servers (ssl=off) nor pgtandem (no TLS yet) offer TLS.
  ConnPtr c = connect_raw(ep().conninfo("sslmode=require"));
  ConnPtr d = connect_raw(direct().conninfo("sslmode=require"));
  EXPECT_EQ(PQstatus(c.get()), CONNECTION_BAD);
  EXPECT_EQ(strip_connection_prefix(PQerrorMessage(c.get())),
            strip_connection_prefix(PQerrorMessage(d.get())));
  ConnPtr plain = connect_raw(ep().conninfo("sslmode=disable gssencmode=disable"));
  EXPECT_EQ(PQstatus(plain.get()), CONNECTION_OK) << PQerrorMessage(plain.get());
}

TEST_P(SessionTest, ListenNotifyAcrossSessions) {
  std::string channel = unique("chan");
  ConnPtr listener = connect(ep().conninfo());
  ConnPtr notifier = connect(ep().conninfo());
  exec(listener.get(), "LISTEN " + channel);
  exec(notifier.get(), "NOTIFY " + channel + ", 'hello, world'");
  exec(notifier.get(), "SELECT pg_notify('" + channel + "', repeat('z', 7000))");
  exec(notifier.get(), "NOTIFY " + channel);
  // The listener is idle: notifications must arrive without it sending anything.
  std::vector<std::pair<std::string, int>> got;
  auto deadline = Clock::now() + milliseconds(10000);
  while (got.size() < 3 && Clock::now() < deadline) {
    pollfd p{PQsocket(listener.get()), POLLIN, 0};
    poll(&p, 1, 100);
    ASSERT_EQ(PQconsumeInput(listener.get()), 1) << PQerrorMessage(listener.get());
    while (PGnotify* n = PQnotifies(listener.get())) {
      EXPECT_EQ(std::string(n->relname), channel);
      got.emplace_back(n->extra, n->be_pid);
      PQfreemem(n);
    }
  }
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].first, "hello, world");
  EXPECT_EQ(got[1].first, std::string(7000, 'z'));
  EXPECT_EQ(got[2].first, "");
  for (auto& g : got) EXPECT_EQ(g.second, PQbackendPID(notifier.get()));
  // A notification raised in the listener's own transaction arrives after its commit.
  exec(listener.get(), "BEGIN; NOTIFY " + channel + ", 'self'; COMMIT");
  PQconsumeInput(listener.get());
  PGnotify* self = PQnotifies(listener.get());
  ASSERT_NE(self, nullptr);
  EXPECT_STREQ(self->extra, "self");
  PQfreemem(self);
}

TEST_P(SessionTest, NoticesDelivered) {
  ConnPtr c = connect(ep().conninfo());
  struct Notice {
    std::string severity, sqlstate, message;
  };
  std::vector<Notice> notices;
  PQsetNoticeReceiver(
      c.get(),
      [](void* arg, const PGresult* r) {
        static_cast<std::vector<Notice>*>(arg)->push_back(
            {PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED),
             PQresultErrorField(r, PG_DIAG_SQLSTATE),
             PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)});
      },
      &notices);
  exec(c.get(),
       "DO $$BEGIN RAISE NOTICE 'hello %', 42; RAISE WARNING 'careful' USING ERRCODE = '01ABC'; "
       "END$$");
  exec(c.get(), "SET client_min_messages = debug1");
  exec(c.get(), "RESET client_min_messages");
  // Notices between rows of a result.
  exec(c.get(),
       "CREATE FUNCTION pg_temp.noisy(i int) RETURNS int LANGUAGE plpgsql AS "
       "$$BEGIN RAISE NOTICE 'row %', i; RETURN i; END$$");
  ResultPtr r = exec(c.get(), "SELECT pg_temp.noisy(g) FROM generate_series(1, 3) g");
  EXPECT_EQ(PQntuples(r.get()), 3);
  ASSERT_GE(notices.size(), 5u);
  EXPECT_EQ(notices[0].severity, "NOTICE");
  EXPECT_EQ(notices[0].sqlstate, "00000");
  EXPECT_EQ(notices[0].message, "hello 42");
  EXPECT_EQ(notices[1].severity, "WARNING");
  EXPECT_EQ(notices[1].sqlstate, "01ABC");
  EXPECT_EQ(notices[1].message, "careful");
  EXPECT_EQ(notices[notices.size() - 1].message, "row 3");
}

TEST_P(SessionTest, ParameterStatusFollowsSet) {
  ConnPtr c = connect(ep().conninfo());
  ConnPtr d = connect(direct().conninfo());
  for (const char* name :
       {"server_version", "server_encoding", "client_encoding", "DateStyle", "integer_datetimes",
        "standard_conforming_strings", "is_superuser", "session_authorization"}) {
    const char* a = PQparameterStatus(c.get(), name);
    const char* b = PQparameterStatus(d.get(), name);
    ASSERT_NE(a, nullptr) << name;
    EXPECT_STREQ(a, b) << name;
  }
  exec(c.get(), "SET application_name = 'it-renamed'");
  EXPECT_STREQ(PQparameterStatus(c.get(), "application_name"), "it-renamed");
  exec(c.get(), "SET TimeZone = 'Pacific/Chatham'");
  EXPECT_STREQ(PQparameterStatus(c.get(), "TimeZone"), "Pacific/Chatham");
  exec(c.get(), "BEGIN; SET LOCAL DateStyle = 'SQL, DMY'");
  EXPECT_STREQ(PQparameterStatus(c.get(), "DateStyle"), "SQL, DMY");
  exec(c.get(), "ROLLBACK");
  EXPECT_STREQ(PQparameterStatus(c.get(), "DateStyle"), "ISO, MDY");
  exec(c.get(), "RESET ALL");
  EXPECT_STREQ(PQparameterStatus(c.get(), "TimeZone"), PQparameterStatus(d.get(), "TimeZone"));
}

TEST_P(SessionTest, CancelSleepingQuery) {
  ConnPtr c = connect(ep().conninfo());
  ASSERT_TRUE(PQsendQuery(c.get(), "SELECT pg_sleep(30)"));
  ASSERT_TRUE(wait_backend_waiting(old_cluster(), PQbackendPID(c.get()), "PgSleep"));
  auto start = Clock::now();
  PGcancel* cancel = PQgetCancel(c.get());
  char err[256] = {0};
  ASSERT_EQ(PQcancel(cancel, err, sizeof err), 1) << err;
  PQfreeCancel(cancel);
  ResultPtr r = get_result(c.get(), milliseconds(10000));
  ASSERT_NE(r, nullptr) << "no answer 10 s after the cancel";
  EXPECT_LT(Clock::now() - start, milliseconds(10000));
  EXPECT_EQ(PQresultStatus(r.get()), PGRES_FATAL_ERROR);
  EXPECT_STREQ(PQresultErrorField(r.get(), PG_DIAG_SQLSTATE), "57014");
  EXPECT_STREQ(PQresultErrorField(r.get(), PG_DIAG_MESSAGE_PRIMARY),
               "canceling statement due to user request");
  EXPECT_EQ(ResultPtr(PQgetResult(c.get())), nullptr);
  EXPECT_EQ(query_value(c.get(), "SELECT 'alive'"), "alive");
}

TEST_P(SessionTest, CancelWithWrongKeyCancelsNothing) {
  ConnPtr victim = connect(ep().conninfo());
  ConnPtr bystander = connect(ep().conninfo());
  RawClient probe = RawClient::connect(ep());
  auto login = probe.login("postgres");
  ASSERT_TRUE(login.ok) << login.failure;
  // The raw login saw the real BackendKeyData: the pid of a backend of the primary.
  EXPECT_TRUE(old_cluster().backend_exists(static_cast<pid_t>(login.backend_pid)));
  ASSERT_TRUE(PQsendQuery(victim.get(), "SELECT pg_sleep(2), 'finished'"));
  int pid = PQbackendPID(victim.get());
  ASSERT_TRUE(wait_backend_waiting(old_cluster(), pid, "PgSleep"));
  // Wrong key for the victim's pid, and a key of another session with the victim's pid.
  for (uint32_t key : {0u, 1u, 0xdeadbeefu, login.backend_key}) {
    RawClient cr = RawClient::connect(ep());
    ASSERT_TRUE(cr.send(cancel_request(static_cast<uint32_t>(pid), key)));
    Outcome o = cr.read_until_close(milliseconds(5000));
    EXPECT_TRUE(o.closed) << "a CancelRequest connection must be closed by the server";
    EXPECT_TRUE(o.messages.empty() && o.raw.empty()) << o.normalized();
  }
  // A cancel for a pid that does not exist.
  RawClient cr = RawClient::connect(ep());
  ASSERT_TRUE(cr.send(cancel_request(0x7ffffff0u, 42)));
  EXPECT_TRUE(cr.read_until_close(milliseconds(5000)).closed);

  ResultPtr r = get_result(victim.get(), milliseconds(15000));
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(PQresultStatus(r.get()), PGRES_TUPLES_OK) << PQerrorMessage(victim.get());
  EXPECT_EQ(ResultPtr(PQgetResult(victim.get())), nullptr);
  // Nothing else was canceled either.
  EXPECT_EQ(query_value(bystander.get(), "SELECT 'ok'"), "ok");
  probe.send(query_message("SELECT 1"));
  Outcome po = probe.read_until_ready(milliseconds(5000));
  EXPECT_EQ(po.normalized(), "T D C Z open");
}

TEST_P(SessionTest, BackendPidMatchesBackendKeyData) {
  for (int i = 0; i < 3; ++i) {
    ConnPtr c = connect(ep().conninfo("application_name=it_pidcheck"));
    int pid = PQbackendPID(c.get());
    EXPECT_GT(pid, 0);
    EXPECT_EQ(query_value(c.get(), "SELECT pg_backend_pid()"), std::to_string(pid));
    EXPECT_EQ(
        old_cluster().query_value("SELECT application_name FROM pg_stat_activity WHERE pid = " +
                                  std::to_string(pid)),
        "it_pidcheck");
  }
  RawClient raw = RawClient::connect(ep());
  auto login = raw.login("postgres");
  ASSERT_TRUE(login.ok) << login.failure;
  ASSERT_TRUE(raw.send(query_message("SELECT pg_backend_pid()")));
  Outcome o = raw.read_until_ready(milliseconds(5000));
  const BackendMessage* row = o.first('D');
  ASSERT_NE(row, nullptr) << o.normalized();
  // DataRow: int16 count, int32 length, value
  EXPECT_EQ(row->body.substr(6), std::to_string(login.backend_pid));
}

TEST_P(SessionTest, StartupParametersReachServer) {
  {
    ConnPtr c = connect(ep().conninfo("application_name=it_app options='-c search_path=foo'"));
    EXPECT_EQ(query_value(c.get(), "SHOW application_name"), "it_app");
    EXPECT_EQ(query_value(c.get(), "SHOW search_path"), "foo");
    EXPECT_EQ(query_value(c.get(), "SELECT current_schema()"), "foo");
    EXPECT_STREQ(PQparameterStatus(c.get(), "application_name"), "it_app");
  }
  {
    ConnPtr c = connect(ep().conninfo("options='-c statement_timeout=1234'"));
    EXPECT_EQ(query_value(c.get(), "SHOW statement_timeout"), "1234ms");
  }
  {
    ConnPtr c =
        connect(ep().conninfo("options='-c statement_timeout=1234 -csearch_path=foo,public -c "
                              "work_mem=5MB' client_encoding=LATIN1"));
    EXPECT_EQ(query_value(c.get(), "SHOW statement_timeout"), "1234ms");
    EXPECT_EQ(query_value(c.get(), "SHOW search_path"), "foo,public");
    EXPECT_EQ(query_value(c.get(), "SHOW work_mem"), "5MB");
    EXPECT_STREQ(PQparameterStatus(c.get(), "client_encoding"), "LATIN1");
    EXPECT_EQ(query_value(c.get(), "SHOW client_encoding"), "LATIN1");
  }
  {
    // Any startup parameter is a GUC for the server, not only the ones libpq knows.
    RawClient raw = RawClient::connect(ep());
    auto login = raw.login(
        "postgres", "", "postgres",
        {{"application_name", "raw_app"}, {"DateStyle", "German"}, {"search_path", "foo"}});
    ASSERT_TRUE(login.ok) << login.failure;
    EXPECT_EQ(login.parameters["application_name"], "raw_app");
    EXPECT_EQ(login.parameters["DateStyle"], "German, DMY");
    ASSERT_TRUE(raw.send(query_message("SHOW search_path")));
    Outcome o = raw.read_until_ready(milliseconds(5000));
    const BackendMessage* row = o.first('D');
    ASSERT_NE(row, nullptr);
    EXPECT_EQ(row->body.substr(6), "foo");
  }
  // A bad value in options is the server's FATAL, as direct.
  ConnPtr bad = connect_raw(ep().conninfo("options='-c statement_timeout=banana'"));
  ConnPtr bad_direct = connect_raw(direct().conninfo("options='-c statement_timeout=banana'"));
  EXPECT_EQ(PQstatus(bad.get()), CONNECTION_BAD);
  EXPECT_EQ(strip_connection_prefix(PQerrorMessage(bad.get())),
            strip_connection_prefix(PQerrorMessage(bad_direct.get())));
}

}  // namespace
}  // namespace pgtandem::it

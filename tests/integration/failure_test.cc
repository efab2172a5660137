// Failures on either side: a client that vanishes mid-transaction, a backend terminated or killed
// mid-result. The client sees what it would see with a direct connection, and pgtandem goes on.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <sstream>

#include "tests/integration/fixture.h"

namespace pgtandem::it {
namespace {

class FailureTest : public ViaTest {
 protected:
  // New sessions work through the endpoint (after a crash the server needs a moment to recover).
  void expect_serving() {
    std::string last;
    bool ok = poll_until(
        [&] {
          ConnPtr c = connect_raw(ep().conninfo());
          if (PQstatus(c.get()) != CONNECTION_OK) {
            last = PQerrorMessage(c.get());
            return false;
          }
          ResultPtr r(PQexec(c.get(), "SELECT 1"));
          return PQresultStatus(r.get()) == PGRES_TUPLES_OK;
        },
        milliseconds(30000), milliseconds(100));
    EXPECT_TRUE(ok) << "no new session through " << ep().name << ": " << last;
  }
};
PGTANDEM_INSTANTIATE_VIA(FailureTest);

ResultPtr next_result(PGconn* c, milliseconds timeout) {
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

TEST_P(FailureTest, ClientDisconnectMidTransactionRollsBack) {
  for (bool reset : {false, true}) {
    std::string table = unique(reset ? "vanish_rst" : "vanish_fin");
    old_cluster().exec("CREATE TABLE " + table + " (v int)");
    RawClient c = RawClient::connect(ep());
    auto login = c.login("postgres");
    ASSERT_TRUE(login.ok) << login.failure;
    ASSERT_TRUE(c.send(query_message("BEGIN; INSERT INTO " + table + " VALUES (1)")));
    Outcome o = c.read_until_ready(milliseconds(5000));
    ASSERT_EQ(o.normalized(), "C C Z open");
    EXPECT_EQ(o.messages.back().body, "T");  // in a transaction
    if (reset) {
      linger l{1, 0};  // close with RST
      setsockopt(c.fd(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    c.close();  // no Terminate message
    pid_t pid = static_cast<pid_t>(login.backend_pid);
    EXPECT_TRUE(poll_until([&] { return !old_cluster().backend_exists(pid); }, milliseconds(10000)))
        << "backend " << pid << " still in pg_stat_activity";
    EXPECT_EQ(old_cluster().query_value("SELECT count(*) FROM " + table), "0");
    EXPECT_EQ(old_cluster().query_value("SELECT count(*) FROM pg_locks WHERE pid = " +
                                        std::to_string(pid)),
              "0");
  }
  expect_serving();
}

// A result stopped by the server while the backend waits in pg_sleep after 2999 rows: the
// outcome (rows received, error fields, connection state) is deterministic.
std::string mid_result_scenario(const Endpoint& e, PgCluster& cluster, int sig,
                                int* rows_out = nullptr) {
  ConnPtr c = connect(e.conninfo());
  int pid = PQbackendPID(c.get());
  if (!PQsendQuery(c.get(),
                   "SELECT g, CASE WHEN g = 3000 THEN pg_sleep(60)::text END FROM "
                   "generate_series(1, 5000) g"))
    return "send failed";
  PQsetSingleRowMode(c.get());
  bool sleeping = poll_until(
      [&] {
        return cluster.query_value("SELECT count(*) FROM pg_stat_activity WHERE pid = " +
                                   std::to_string(pid) + " AND wait_event = 'PgSleep'") == "1";
      },
      milliseconds(10000));
  if (!sleeping) return "backend never reached pg_sleep";
  if (sig == SIGTERM)
    cluster.exec("SELECT pg_terminate_backend(" + std::to_string(pid) + ")");
  else
    cluster.signal_backend(pid, sig);
  int rows = 0;
  std::ostringstream s;
  for (;;) {
    ResultPtr r = next_result(c.get(), milliseconds(15000));
    if (!r) break;
    auto st = PQresultStatus(r.get());
    if (st == PGRES_SINGLE_TUPLE) {
      if (std::string(PQgetvalue(r.get(), 0, 0)) != std::to_string(rows + 1))
        return "row out of order";
      ++rows;
      continue;
    }
    const char* state = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE);
    std::string msg = PQresultErrorMessage(r.get());
    s << PQresStatus(st) << " sqlstate=" << (state ? state : "none")
      << " message=" << msg.substr(0, msg.find('\n')) << "; ";
  }
  if (rows_out) *rows_out = rows;
  s << "rows=" << rows << " connection=" << (PQstatus(c.get()) == CONNECTION_OK ? "ok" : "bad");
  return s.str();
}

TEST_P(FailureTest, BackendTerminatedMidResult) {
  std::string expected = mid_result_scenario(direct(), old_cluster(), SIGTERM);
  EXPECT_EQ(expected,
            "PGRES_FATAL_ERROR sqlstate=57P01 message=FATAL:  terminating connection due to "
            "administrator command; "
            "PGRES_FATAL_ERROR sqlstate=none message=server closed the connection unexpectedly; "
            "rows=2999 connection=bad");
  if (via_proxy()) {
    EXPECT_EQ(mid_result_scenario(ep(), old_cluster(), SIGTERM), expected);
  }
  expect_serving();
}

TEST_P(FailureTest, BackendKilledMidResult) {
  int direct_rows = 0, rows = 0;
  std::string expected = mid_result_scenario(direct(), old_cluster(), SIGKILL, &direct_rows);
  old_cluster().wait_ready();
  EXPECT_NE(
      expected.find(
          "PGRES_FATAL_ERROR sqlstate=none message=server closed the connection unexpectedly"),
      std::string::npos)
      << expected;
  EXPECT_GT(direct_rows, 0);
  EXPECT_LT(direct_rows, 2999);  // the server had not flushed its last buffer
  if (via_proxy()) {
    // The server's last partial buffer may end inside a DataRow: pgtandem passes on whole messages
    // only, so the client sees the same complete rows and then the close.
    EXPECT_EQ(mid_result_scenario(ep(), old_cluster(), SIGKILL, &rows), expected);
    old_cluster().wait_ready();
  }
  expect_serving();
}

TEST_P(FailureTest, BackendTerminatedWhileStreaming) {
  ConnPtr c = connect(ep().conninfo());
  int pid = PQbackendPID(c.get());
  ASSERT_TRUE(
      PQsendQuery(c.get(), "SELECT g, repeat('x', 200) FROM generate_series(1, 2000000) g"));
  PQsetSingleRowMode(c.get());
  long rows = 0;
  bool terminated = false;
  std::string final_status, final_error;
  for (;;) {
    ResultPtr r = next_result(c.get(), milliseconds(30000));
    if (!r) break;
    if (PQresultStatus(r.get()) == PGRES_SINGLE_TUPLE) {
      ++rows;
      ASSERT_EQ(std::string(PQgetvalue(r.get(), 0, 0)), std::to_string(rows));
      ASSERT_EQ(PQgetlength(r.get(), 0, 1), 200);
      if (rows == 20000 && !terminated) {
        old_cluster().exec("SELECT pg_terminate_backend(" + std::to_string(pid) + ")");
        terminated = true;
      }
      continue;
    }
    final_status = result_status_name(r.get());
    final_error = PQresultErrorMessage(r.get());
  }
  EXPECT_TRUE(terminated);
  EXPECT_LT(rows, 2000000);
  EXPECT_EQ(final_status, "PGRES_FATAL_ERROR");
  // Either the server's FATAL (57P01) or the close: never a broken message.
  bool server_error =
      final_error.find("terminating connection due to administrator command") != std::string::npos;
  bool closed = final_error.find("server closed the connection unexpectedly") != std::string::npos;
  EXPECT_TRUE(server_error || closed) << final_error;
  for (const char* bad : {"lost synchronization", "insufficient data", "unexpected response",
                          "invalid message", "do not agree", "out of memory"})
    EXPECT_EQ(final_error.find(bad), std::string::npos) << final_error;
  EXPECT_EQ(PQstatus(c.get()), CONNECTION_BAD);
  std::fprintf(stderr, "[%s] streaming terminate: %ld rows, %s\n", ep().name.c_str(), rows,
               final_error.substr(0, final_error.find('\n')).c_str());
  expect_serving();
}

}  // namespace
}  // namespace pgtandem::it

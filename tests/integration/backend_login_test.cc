// login_backend() against real PostgreSQL servers: pgtandem's own logins for secondary legs
// (trust, cleartext, md5, SCRAM-SHA-256; credentials given directly or from a pgpass file),
// the server's errors as values, startup parameters in effect; and against scripted fake servers
// for what a real one does not do (silence, skipping SCRAM's final step).
#include "proxy/auth/backend_login.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <future>
#include <stdexcept>

#include "config/pgpass.h"
#include "protocol/framing.h"
#include "protocol/messages.h"
#include "tests/integration/fixture.h"

namespace pgtandem::it {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using GenericEndpoint = asio::generic::stream_protocol::endpoint;
using namespace asio::experimental::awaitable_operators;
using proxy::LoginError;
using proxy::LoginParams;
using proxy::LoginResult;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

// Runs `a` on `io` until it completes; throws if it takes longer than `limit`.
template <typename T>
T run_for(asio::io_context& io, asio::awaitable<T> a, milliseconds limit = milliseconds(30000)) {
  io.restart();  // a previous run_for may have run out of work, which stops the io_context
  std::future<T> f = asio::co_spawn(io, std::move(a), asio::use_future);
  auto deadline = Clock::now() + limit;
  while (f.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
    if (Clock::now() > deadline) throw std::runtime_error("coroutine did not finish in time");
    io.run_one_for(milliseconds(20));
  }
  return f.get();
}

proxy::Socket connect_tcp(asio::io_context& io, uint16_t port) {
  proxy::Socket s(io);
  s.connect(GenericEndpoint(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port)));
  return s;
}

struct QueryOutcome {
  std::string error;                // "SQLSTATE: message" of an ErrorResponse, or a failure
  std::vector<std::string> values;  // first column of each DataRow
};

// A simple Query on a logged-in connection; `buffered` holds bytes read before (LoginResult's
// leftover).
asio::awaitable<QueryOutcome> simple_query(proxy::Socket& s, std::string sql,
                                           std::string buffered) {
  QueryOutcome out;
  std::string msg;
  protocol::encode(msg, protocol::Query{sql});
  auto [wec, wn] = co_await asio::async_write(s, asio::buffer(msg), kNoThrow);
  (void)wn;
  if (wec) {
    out.error = "write: " + wec.message();
    co_return out;
  }
  std::string buf = std::move(buffered);
  std::array<char, 4096> chunk;
  for (;;) {
    for (;;) {
      auto h = protocol::decode_header(buf, protocol::Direction::kBackend, protocol::Limits{});
      if (h.status == protocol::Status::kInvalid) {
        out.error = "invalid header";
        co_return out;
      }
      if (h.status == protocol::Status::kNeedMore || buf.size() < h.header.frame_size()) break;
      std::string body = buf.substr(protocol::kHeaderSize, h.header.body_size());
      buf.erase(0, h.header.frame_size());
      if (h.header.type == protocol::backend::kDataRow) {
        protocol::DataRow row;
        protocol::Value v;
        if (protocol::decode(body, row) && row.columns.at(0, v)) out.values.emplace_back(v.data);
      } else if (h.header.type == protocol::backend::kErrorResponse) {
        protocol::ErrorResponse e;
        if (protocol::decode(body, e)) {
          out.error = std::string(e.sqlstate()) + ": " + std::string(e.message());
        }
      } else if (h.header.type == protocol::backend::kReadyForQuery) {
        co_return out;
      }
    }
    auto [ec, n] = co_await s.async_read_some(asio::buffer(chunk), kNoThrow);
    if (ec) {
      out.error = "read: " + ec.message();
      co_return out;
    }
    buf.append(chunk.data(), n);
  }
}

std::string describe(const LoginResult& r) {
  return "ok=" + std::to_string(r.ok) + " error=" + std::to_string(static_cast<int>(r.error)) +
         " sqlstate=" + r.sqlstate + " message=" + r.message + " method=" + r.auth_method;
}

struct User {
  const char* name;
  const char* password;
  const char* method;  // what the server asks for (pg_hba.conf of the harness)
};
const User kPasswordUsers[] = {{kScramUser, kScramPassword, "scram-sha-256"},
                               {kMd5User, kMd5Password, "md5"},
                               {kPwUser, kPwPassword, "cleartext"}};

class BackendLoginTest : public ClusterTest {
 protected:
  // Logs in over TCP to the old cluster and keeps the connection for queries.
  LoginResult login(LoginParams params) {
    socket_ = std::make_unique<proxy::Socket>(connect_tcp(io_, old_cluster().port()));
    return run_for(io_, proxy::login_backend(*socket_, params));
  }
  QueryOutcome query(const std::string& sql, std::string leftover = {}) {
    return run_for(io_, simple_query(*socket_, sql, std::move(leftover)));
  }
  static LoginParams params(const std::string& user, std::optional<std::string> password) {
    LoginParams p;
    p.user = user;
    p.database = "postgres";
    p.password = std::move(password);
    p.timeout = milliseconds(10000);
    return p;
  }

  asio::io_context io_;
  std::unique_ptr<proxy::Socket> socket_;
};

TEST_F(BackendLoginTest, TrustUser) {
  LoginResult r = login(params(kTrustUser, std::nullopt));
  ASSERT_TRUE(r.ok) << describe(r);
  EXPECT_EQ(r.error, LoginError::kNone);
  EXPECT_EQ(r.auth_method, "trust");
  EXPECT_EQ(r.transaction_status, 'I');
  ASSERT_TRUE(r.key.present);
  EXPECT_TRUE(old_cluster().backend_exists(static_cast<pid_t>(r.key.process_id)));
  ASSERT_NE(r.parameter("application_name"), nullptr);
  EXPECT_EQ(*r.parameter("application_name"), "pgtandem-mirror");
  ASSERT_NE(r.parameter("session_authorization"), nullptr);
  EXPECT_EQ(*r.parameter("session_authorization"), kTrustUser);
  ASSERT_NE(r.parameter("server_version"), nullptr);
  EXPECT_EQ(r.parameter("server_version")->rfind("15", 0), 0u);
  QueryOutcome q = query("SELECT pg_backend_pid()", r.leftover);
  EXPECT_EQ(q.error, "");
  EXPECT_EQ(q.values, std::vector<std::string>{std::to_string(r.key.process_id)});
}

TEST_F(BackendLoginTest, PasswordUsersWithGivenPassword) {
  for (const User& u : kPasswordUsers) {
    LoginResult r = login(params(u.name, u.password));
    ASSERT_TRUE(r.ok) << u.name << ": " << describe(r);
    EXPECT_EQ(r.auth_method, u.method) << u.name;
    EXPECT_TRUE(r.key.present) << u.name;
    QueryOutcome q = query("SELECT current_user", r.leftover);
    EXPECT_EQ(q.error, "") << u.name;
    EXPECT_EQ(q.values, std::vector<std::string>{u.name});
  }
}

TEST_F(BackendLoginTest, PasswordUsersFromPgpass) {
  // The first lines must not match (wrong port, database, host); the wildcard line comes last.
  std::string text = R"(# pgtandem's credentials
127.0.0.1:1:postgres:scram_user:wrong
127.0.0.1:PORT:otherdb:scram_user:wrong
db.example:PORT:postgres:scram_user:wrong
127.0.0.1:PORT:postgres:scram_user:scram_pass
127.0.0.1:*:*:md5_user:md5_pass
*:*:*:pw_user:pw_pass
*:*:*:*:wrong
)";
  const std::string port = std::to_string(old_cluster().port());
  for (size_t at; (at = text.find("PORT")) != std::string::npos;) text.replace(at, 4, port);
  config::PgpassLoadResult pg = config::parse_pgpass(text);
  ASSERT_TRUE(pg.ok()) << pg.errors.front().to_string();
  for (const User& u : kPasswordUsers) {
    LoginParams p = params(u.name, std::nullopt);
    p.pgpass = &*pg.pgpass;
    p.pgpass_host = "127.0.0.1";
    p.pgpass_port = old_cluster().port();
    LoginResult r = login(p);
    EXPECT_TRUE(r.ok) << u.name << ": " << describe(r);
    EXPECT_EQ(r.auth_method, u.method) << u.name;
  }
  // A password given directly wins over the file.
  LoginParams p = params(kScramUser, "wrong");
  p.pgpass = &*pg.pgpass;
  p.pgpass_host = "127.0.0.1";
  p.pgpass_port = old_cluster().port();
  EXPECT_EQ(login(p).sqlstate, "28P01");
}

TEST_F(BackendLoginTest, DatabaseDefaultsToUserNameForPgpassAndServer) {
  const std::string db = unique("scram_user_db");
  old_cluster().create_database(db);
  config::PgpassLoadResult pg = config::parse_pgpass("*:*:" + db + ":scram_user:scram_pass\n");
  ASSERT_TRUE(pg.ok());
  LoginParams p = params(kScramUser, std::nullopt);
  p.database = db;
  p.pgpass = &*pg.pgpass;
  p.pgpass_host = "127.0.0.1";
  p.pgpass_port = old_cluster().port();
  LoginResult r = login(p);
  ASSERT_TRUE(r.ok) << describe(r);
  EXPECT_EQ(query("SELECT current_database()", r.leftover).values, std::vector<std::string>{db});
  // Without a database the server uses the user name, and so does the pgpass lookup.
  p.database.clear();
  LoginResult none = login(p);
  EXPECT_EQ(none.error, LoginError::kAuth)
      << "no pgpass line for database scram_user; " << describe(none);
}

TEST_F(BackendLoginTest, WrongPasswordIs28P01) {
  for (const User& u : kPasswordUsers) {
    LoginResult r = login(params(u.name, "wrong-password"));
    EXPECT_FALSE(r.ok) << u.name;
    EXPECT_EQ(r.error, LoginError::kServer) << u.name << ": " << describe(r);
    EXPECT_EQ(r.sqlstate, "28P01") << u.name;
    EXPECT_EQ(r.message, std::string("password authentication failed for user \"") + u.name + "\"");
    EXPECT_EQ(r.auth_method, u.method) << u.name;
  }
}

TEST_F(BackendLoginTest, NoPasswordIsOurAuthError) {
  for (const User& u : kPasswordUsers) {
    LoginResult r = login(params(u.name, std::nullopt));
    EXPECT_FALSE(r.ok) << u.name;
    EXPECT_EQ(r.error, LoginError::kAuth) << u.name << ": " << describe(r);
    EXPECT_EQ(r.sqlstate, "28000") << u.name;
    EXPECT_NE(r.message.find("none is configured"), std::string::npos) << r.message;
  }
}

TEST_F(BackendLoginTest, UnknownDatabaseIs3D000) {
  LoginParams p = params(kTrustUser, std::nullopt);
  p.database = "no_such_db_pgtandem";
  LoginResult r = login(p);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, LoginError::kServer) << describe(r);
  EXPECT_EQ(r.sqlstate, "3D000");
  EXPECT_EQ(r.message, "database \"no_such_db_pgtandem\" does not exist");
  // Also behind a password exchange.
  LoginParams s = params(kScramUser, kScramPassword);
  s.database = "no_such_db_pgtandem";
  EXPECT_EQ(login(s).sqlstate, "3D000");
}

TEST_F(BackendLoginTest, UnknownRoleIs28000) {
  LoginResult r = login(params("no_such_role_pgtandem", std::nullopt));
  EXPECT_EQ(r.error, LoginError::kServer) << describe(r);
  EXPECT_EQ(r.sqlstate, "28000");
}

TEST_F(BackendLoginTest, ExtraParametersAreInEffect) {
  LoginParams p = params(kScramUser, kScramPassword);
  p.extra = {{"search_path", "foo"},
             {"TimeZone", "Pacific/Chatham"},
             {"options", "-c statement_timeout=1234 -c lock_timeout=5s"},
             {"DateStyle", "SQL, DMY"}};
  LoginResult r = login(p);
  ASSERT_TRUE(r.ok) << describe(r);
  ASSERT_NE(r.parameter("TimeZone"), nullptr);
  EXPECT_EQ(*r.parameter("TimeZone"), "Pacific/Chatham");
  ASSERT_NE(r.parameter("DateStyle"), nullptr);
  EXPECT_EQ(*r.parameter("DateStyle"), "SQL, DMY");
  EXPECT_EQ(*r.parameter("application_name"), "pgtandem-mirror");

  QueryOutcome tz = query("SHOW TimeZone", r.leftover);
  EXPECT_EQ(tz.error, "");
  EXPECT_EQ(tz.values, std::vector<std::string>{"Pacific/Chatham"});
  EXPECT_EQ(query("SHOW search_path").values, std::vector<std::string>{"foo"});
  EXPECT_EQ(query("SHOW statement_timeout").values, std::vector<std::string>{"1234ms"});
  EXPECT_EQ(query("SHOW lock_timeout").values, std::vector<std::string>{"5s"});
}

TEST_F(BackendLoginTest, ReplayedApplicationNameReplacesOurs) {
  LoginParams p = params(kTrustUser, std::nullopt);
  p.extra = {{"application_name", "client-app"}};
  LoginResult r = login(p);
  ASSERT_TRUE(r.ok) << describe(r);
  EXPECT_EQ(*r.parameter("application_name"), "client-app");
  EXPECT_EQ(query("SHOW application_name", r.leftover).values,
            std::vector<std::string>{"client-app"});
}

TEST_F(BackendLoginTest, BadStartupParameterIsTheServersError) {
  LoginParams p = params(kTrustUser, std::nullopt);
  p.extra = {{"TimeZone", "Not/AZone"}};
  LoginResult r = login(p);
  EXPECT_EQ(r.error, LoginError::kServer) << describe(r);
  EXPECT_EQ(r.sqlstate, "22023");
}

TEST_F(BackendLoginTest, ParamsThatCannotBeSentWriteNothing) {
  for (auto extra :
       {std::vector<std::pair<std::string, std::string>>{{"user", "x"}},
        std::vector<std::pair<std::string, std::string>>{{"database", "x"}},
        std::vector<std::pair<std::string, std::string>>{{"", "x"}},
        std::vector<std::pair<std::string, std::string>>{{"a", std::string("b\0c", 3)}},
        std::vector<std::pair<std::string, std::string>>{{"options", std::string(10000, 'x')}}}) {
    LoginParams p = params(kTrustUser, std::nullopt);
    p.extra = extra;
    LoginResult r = login(p);
    EXPECT_EQ(r.error, LoginError::kBadParams) << describe(r);
    EXPECT_EQ(r.sqlstate, "22023");
  }
}

TEST_F(BackendLoginTest, ScramOverUnixSocket) {
  proxy::Socket s(io_);
  s.connect(GenericEndpoint(asio::local::stream_protocol::endpoint(
      old_cluster().socket_dir() + "/.s.PGSQL." + std::to_string(old_cluster().port()))));
  LoginResult r = run_for(io_, proxy::login_backend(s, params(kScramUser, kScramPassword)));
  ASSERT_TRUE(r.ok) << describe(r);
  EXPECT_EQ(r.auth_method, "scram-sha-256");
}

TEST_F(BackendLoginTest, NewClusterToo) {
  proxy::Socket s = connect_tcp(io_, new_cluster().port());
  LoginResult r = run_for(io_, proxy::login_backend(s, params(kMd5User, kMd5Password)));
  ASSERT_TRUE(r.ok) << describe(r);
  EXPECT_TRUE(new_cluster().backend_exists(static_cast<pid_t>(r.key.process_id)));
}

// ---------------------------------------------------------------------------------------------
// Scripted fake servers

// Accepts one connection; for each entry of `replies`, reads what the client sends, then writes the
// entry. Then reads until the client goes away. Never sends anything unless told to.
asio::awaitable<void> fake_server(tcp::acceptor& acceptor, std::vector<std::string> replies) {
  auto [aec, peer] = co_await acceptor.async_accept(kNoThrow);
  if (aec) co_return;
  std::array<char, 4096> chunk;
  for (const std::string& reply : replies) {
    auto [rec, n] = co_await peer.async_read_some(asio::buffer(chunk), kNoThrow);
    (void)n;
    if (rec) co_return;
    auto [wec, wn] = co_await asio::async_write(peer, asio::buffer(reply), kNoThrow);
    (void)wn;
    if (wec) co_return;
  }
  for (;;) {
    auto [rec, n] = co_await peer.async_read_some(asio::buffer(chunk), kNoThrow);
    (void)n;
    if (rec) co_return;
  }
}

std::string auth_message(int32_t code, std::string_view data = {}) {
  std::string out;
  protocol::encode(out, protocol::Authentication{code, data});
  return out;
}

class FakeServerLogin : public ::testing::Test {
 protected:
  LoginResult login_against(std::vector<std::string> replies, milliseconds timeout,
                            std::optional<std::string> password = "pw") {
    tcp::acceptor acceptor(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    asio::co_spawn(io_, fake_server(acceptor, std::move(replies)), asio::detached);
    proxy::Socket s = connect_tcp(io_, acceptor.local_endpoint().port());
    LoginParams p;
    p.user = "u";
    p.password = std::move(password);
    p.timeout = timeout;
    return run_for(io_, proxy::login_backend(s, p));
  }
  asio::io_context io_;
};

TEST_F(FakeServerLogin, SilentServerTimesOut) {
  auto start = Clock::now();
  LoginResult r = login_against({}, milliseconds(300));
  auto took = Clock::now() - start;
  EXPECT_EQ(r.error, LoginError::kTimeout) << describe(r);
  EXPECT_EQ(r.sqlstate, "08006");
  EXPECT_GE(took, milliseconds(250));
  EXPECT_LT(took, milliseconds(5000));
}

TEST_F(FakeServerLogin, ServerClosing) {
  // The server answers the startup packet with half a message, then closes.
  tcp::acceptor acceptor(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  auto server = [&]() -> asio::awaitable<void> {
    auto [aec, peer] = co_await acceptor.async_accept(kNoThrow);
    if (aec) co_return;
    std::array<char, 4096> chunk;
    co_await peer.async_read_some(asio::buffer(chunk), kNoThrow);
    co_await asio::async_write(peer, asio::buffer(std::string("R\0\0", 3)), kNoThrow);
    peer.close();
  };
  asio::co_spawn(io_, server(), asio::detached);
  proxy::Socket s = connect_tcp(io_, acceptor.local_endpoint().port());
  LoginParams p;
  p.user = "u";
  LoginResult r = run_for(io_, proxy::login_backend(s, p));
  EXPECT_EQ(r.error, LoginError::kIo) << describe(r);
  EXPECT_NE(r.message.find("closed"), std::string::npos) << r.message;
}

TEST_F(FakeServerLogin, AuthenticationOkWithoutScramFinalIsRefused) {
  // SASL, then AuthenticationOk right after client-first: no proof from the server.
  std::string sasl = auth_message(protocol::kAuthSasl, std::string_view("SCRAM-SHA-256\0", 14));
  std::string ok_then_ready = auth_message(protocol::kAuthOk);
  protocol::encode(ok_then_ready, protocol::ReadyForQuery{'I'});
  LoginResult r = login_against({sasl, ok_then_ready}, milliseconds(5000));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, LoginError::kAuth) << describe(r);
  EXPECT_NE(r.message.find("before the SCRAM exchange completed"), std::string::npos);
}

TEST_F(FakeServerLogin, ReadyForQueryWithoutAuthenticationIsRefused) {
  std::string ready;
  protocol::encode(ready, protocol::ReadyForQuery{'I'});
  LoginResult r = login_against({ready}, milliseconds(5000));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, LoginError::kProtocol) << describe(r);
}

TEST_F(FakeServerLogin, UnsupportedMethod) {
  LoginResult r = login_against({auth_message(protocol::kAuthGss)}, milliseconds(5000));
  EXPECT_EQ(r.error, LoginError::kAuth) << describe(r);
  EXPECT_NE(r.message.find("GSSAPI"), std::string::npos) << r.message;
}

TEST_F(FakeServerLogin, GarbageIsAProtocolError) {
  LoginResult r = login_against({std::string("Q\0\0\0\x04", 5)}, milliseconds(5000));
  EXPECT_EQ(r.error, LoginError::kProtocol) << describe(r);
  EXPECT_EQ(r.sqlstate, "08P01");
}

TEST_F(FakeServerLogin, EverythingInOneSegmentAndBytesAfterReadyForQuery) {
  std::string all = auth_message(protocol::kAuthOk);
  protocol::encode(all, protocol::ParameterStatus{"TimeZone", "UTC"});
  protocol::encode(all, protocol::ParameterStatus{"TimeZone", "Europe/Paris"});
  protocol::encode(all, protocol::BackendKeyData{1234, -5});
  protocol::encode(all, protocol::ReadyForQuery{'I'});
  all += std::string("N\0\0\0\x05\0", 6);  // a notice the caller must not lose
  LoginResult r = login_against({all}, milliseconds(5000), std::nullopt);
  ASSERT_TRUE(r.ok) << describe(r);
  ASSERT_EQ(r.parameters.size(), 1u);
  EXPECT_EQ(*r.parameter("TimeZone"), "Europe/Paris");
  EXPECT_TRUE(r.key.present);
  EXPECT_EQ(r.key.process_id, 1234);
  EXPECT_EQ(r.key.secret_key, -5);
  EXPECT_EQ(r.leftover, std::string("N\0\0\0\x05\0", 6));
}

}  // namespace
}  // namespace pgtandem::it

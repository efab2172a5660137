// Authentication is relayed to the primary: SCRAM-SHA-256, md5 and cleartext users, right and
// wrong passwords, unknown database and role; errors are the server's own.
#include "tests/integration/fixture.h"

namespace pgtandem::it {
namespace {

class AuthTest : public ViaTest {};
PGTANDEM_INSTANTIATE_VIA(AuthTest);

struct User {
  const char* name;
  const char* password;
  const char* method;  // what the server asks for
};
const User kUsers[] = {{kScramUser, kScramPassword, "scram-sha-256"},
                       {kMd5User, kMd5Password, "md5"},
                       {kPwUser, kPwPassword, "cleartext"}};

TEST_P(AuthTest, LibpqRightPassword) {
  for (const User& u : kUsers) {
    ConnPtr c =
        connect_raw(ep().conninfo(std::string("password=") + u.password, "postgres", u.name));
    ASSERT_EQ(PQstatus(c.get()), CONNECTION_OK) << u.name << ": " << PQerrorMessage(c.get());
    EXPECT_EQ(query_value(c.get(), "SELECT current_user"), u.name);
    EXPECT_EQ(query_value(c.get(), "SELECT pg_backend_pid()"),
              std::to_string(PQbackendPID(c.get())));
    // libpq reports which methods it went through; SCRAM must have been used end to end.
    if (std::string(u.method) == "scram-sha-256") {
      EXPECT_EQ(PQconnectionUsedPassword(c.get()), 1);
    }
  }
}

TEST_P(AuthTest, RawRightPasswordUsesServerMethod) {
  for (const User& u : kUsers) {
    RawClient c = RawClient::connect(ep());
    auto r = c.login(u.name, u.password);
    EXPECT_TRUE(r.ok) << u.name << ": " << r.failure << (r.error ? r.error->summary() : "");
    EXPECT_EQ(r.auth_method, u.method) << u.name;
    EXPECT_TRUE(old_cluster().backend_exists(static_cast<pid_t>(r.backend_pid))) << u.name;
  }
}

TEST_P(AuthTest, WrongPasswordIsServersError) {
  for (const User& u : kUsers) {
    RawClient d = RawClient::connect(direct());
    auto expected = d.login(u.name, "wrong-password");
    ASSERT_TRUE(expected.error) << u.name << " direct: " << expected.failure;
    EXPECT_EQ(expected.error->sqlstate(), "28P01");
    EXPECT_EQ(expected.error->severity(), "FATAL");
    EXPECT_EQ(expected.error->message(),
              std::string("password authentication failed for user \"") + u.name + "\"");

    RawClient c = RawClient::connect(ep());
    auto actual = c.login(u.name, "wrong-password");
    ASSERT_TRUE(actual.error) << u.name << ": " << actual.failure;
    EXPECT_EQ(actual.auth_method, expected.auth_method) << u.name;
    EXPECT_EQ(actual.error->summary(), expected.error->summary()) << u.name;
    EXPECT_EQ(actual.error->get('S'), expected.error->get('S')) << u.name;
    EXPECT_TRUE(c.wait_closed(milliseconds(5000))) << u.name << ": not closed after the FATAL";

    ConnPtr lp = connect_raw(ep().conninfo("password=wrong-password", "postgres", u.name));
    ConnPtr lpd = connect_raw(direct().conninfo("password=wrong-password", "postgres", u.name));
    EXPECT_EQ(PQstatus(lp.get()), CONNECTION_BAD);
    EXPECT_EQ(strip_connection_prefix(PQerrorMessage(lp.get())),
              strip_connection_prefix(PQerrorMessage(lpd.get())));
  }
}

TEST_P(AuthTest, EmptyPasswordMessage) {
  // An empty PasswordMessage for a cleartext user: the server's answer, whatever it is.
  auto run = [](const Endpoint& e) {
    RawClient c = RawClient::connect(e);
    c.send(startup_packet({{"user", kPwUser}, {"database", "postgres"}}));
    auto auth = c.read_message(milliseconds(5000));
    if (!auth || auth->type != 'R') return std::string("no auth request");
    c.send(frontend_message('p', std::string(1, '\0')));
    return c.read_until_close(milliseconds(5000)).normalized();
  };
  std::string expected = run(direct());
  EXPECT_NE(expected.find("28P01"), std::string::npos) << expected;
  EXPECT_EQ(run(ep()), expected);
}

TEST_P(AuthTest, UnknownDatabaseAndRole) {
  struct Case {
    std::string user, db, sqlstate;
  };
  for (const Case& k :
       {Case{"postgres", "no_such_db", "3D000"}, Case{"no_such_role", "postgres", "28000"},
        Case{kScramUser, "no_such_db", "28P01"}}) {
    RawClient d = RawClient::connect(direct());
    auto expected = d.login(k.user, "x", k.db);
    ASSERT_TRUE(expected.error) << k.user << "@" << k.db;
    if (k.user != kScramUser) {
      EXPECT_EQ(expected.error->sqlstate(), k.sqlstate);
    }
    RawClient c = RawClient::connect(ep());
    auto actual = c.login(k.user, "x", k.db);
    ASSERT_TRUE(actual.error) << k.user << "@" << k.db << ": " << actual.failure;
    EXPECT_EQ(actual.error->summary(), expected.error->summary());
  }
  ConnPtr lp = connect_raw(ep().conninfo("", "no_such_db"));
  ConnPtr lpd = connect_raw(direct().conninfo("", "no_such_db"));
  EXPECT_EQ(strip_connection_prefix(PQerrorMessage(lp.get())),
            strip_connection_prefix(PQerrorMessage(lpd.get())));
  EXPECT_EQ(strip_connection_prefix(PQerrorMessage(lpd.get())),
            "FATAL:  database \"no_such_db\" does not exist");
}

TEST_P(AuthTest, AbandonedAuthenticationDoesNotLeak) {
  // The client gets a SCRAM challenge and goes away: its backend must go away too.
  // Backends in authentication are not in pg_stat_activity; their process title says it.
  auto in_auth = [&] {
    return find_processes("postgres: scram_user postgres", old_cluster().postmaster_pid()).size();
  };
  for (int i = 0; i < 5; ++i) {
    RawClient c = RawClient::connect(ep());
    c.send(startup_packet({{"user", kScramUser}, {"database", "postgres"}}));
    auto m = c.read_message(milliseconds(5000));
    ASSERT_TRUE(m && m->type == 'R');
    EXPECT_GE(in_auth(), 1u);
  }
  EXPECT_TRUE(poll_until([&] { return in_auth() == 0; }, milliseconds(10000)))
      << in_auth() << " backends still waiting for a SCRAM answer from clients that left";
  ConnPtr c =
      connect_raw(ep().conninfo(std::string("password=") + kScramPassword, "postgres", kScramUser));
  EXPECT_EQ(PQstatus(c.get()), CONNECTION_OK) << PQerrorMessage(c.get());
}

}  // namespace
}  // namespace pgtandem::it

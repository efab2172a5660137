// [auth] mode = "file" (issue 6): pgtandem authenticates clients itself against a PgBouncer-style
// userlist (a SCRAM verifier copied from pg_authid, an md5 hash, a plain password), then logs in to
// the primary with its own credentials file; the targets require scram-sha-256 (scram_user) and
// md5 (md5_user) in pg_hba.conf, so pgtandem's own login is a real password login too.
#include <sys/stat.h>

#include <csignal>

#include "tests/integration/fixture.h"

namespace pgtandem::it {
namespace {

class FileAuthTest : public ProxyTest {
 protected:
  void SetUp() override {
    ProxyTest::SetUp();
    dir_ = std::make_unique<TempDir>("pgtandem-fileauth");
    journal_ = dir_->file("mirror.journal");
  }

  // What PostgreSQL stored for the role's password (SCRAM verifier or md5 hash).
  std::string rolpassword(const std::string& role) {
    return old_cluster().query_value("SELECT rolpassword FROM pg_authid WHERE rolname = '" + role +
                                     "'");
  }

  // A SCRAM verifier computed by the real server for `password` (via a throwaway role).
  std::string server_verifier(const std::string& password) {
    const std::string role = unique("verifier");
    old_cluster().exec("SET password_encryption = 'scram-sha-256'; CREATE ROLE " + role +
                       " PASSWORD '" + password + "'");
    std::string v = rolpassword(role);
    old_cluster().exec("DROP ROLE " + role);
    return v;
  }

  std::string write_userlist(const std::string& text, mode_t mode = 0600) {
    const std::string path = dir_->file("userlist.txt");
    write_file(path, text);
    ::chmod(path.c_str(), mode);
    return path;
  }

  // pgtandem's own passwords for both targets (the pw_user has none: its plain password in the
  // userlist is used).
  std::string write_credentials(bool with_md5 = true) {
    const std::string path = dir_->file("credentials");
    std::string text;
    for (uint16_t port : {old_cluster().port(), new_cluster().port()}) {
      text +=
          "127.0.0.1:" + std::to_string(port) + ":*:" + kScramUser + ":" + kScramPassword + "\n";
      if (with_md5) {
        text += "127.0.0.1:" + std::to_string(port) + ":*:" + kMd5User + ":" + kMd5Password + "\n";
      }
    }
    write_file(path, text);
    ::chmod(path.c_str(), 0600);
    return path;
  }

  std::string default_userlist() {
    return "; users pgtandem authenticates\n\"" + std::string(kScramUser) + "\" \"" +
           rolpassword(kScramUser) + "\"\n\"" + kMd5User + "\" \"" + rolpassword(kMd5User) +
           "\"\n\"" + kPwUser + "\" \"" + kPwPassword + "\"\n";
  }

  ProxyOptions file_options(const std::string& userlist, const std::string& creds,
                            const std::string& method = "scram-sha-256", bool mirror = false) {
    ProxyOptions o = Env::get().default_proxy_options();
    if (mirror) o.section_lines[""].push_back("mirror_writes = true");
    o.extra_toml = "[auth]\nmode = \"file\"\nfile = \"" + userlist + "\"\nmethod = \"" + method +
                   "\"\n\n[mirror]\ncredentials_file = \"" + creds + "\"\njournal_path = \"" +
                   journal_ + "\"\n";
    return o;
  }

  std::string libpq_error(ProxyProcess& p, const std::string& user, const std::string& password,
                          const std::string& db = "postgres") {
    ConnPtr c = connect_raw(p.endpoint().conninfo("password=" + password, db, user));
    EXPECT_EQ(PQstatus(c.get()), CONNECTION_BAD) << user;
    return strip_connection_prefix(PQerrorMessage(c.get()));
  }

  double auth_count(ProxyProcess& p, const std::string& method, const std::string& outcome) {
    return p.metrics().sum("pgtandem_client_auth_total",
                           {{"method", method}, {"outcome", outcome}});
  }

  std::unique_ptr<TempDir> dir_;
  std::string journal_;
};

TEST_F(FileAuthTest, VerifierIsWhatPostgresStores) {
  const std::string v = rolpassword(kScramUser);
  EXPECT_EQ(v.rfind("SCRAM-SHA-256$4096:", 0), 0u) << v;
  EXPECT_EQ(rolpassword(kMd5User).rfind("md5", 0), 0u);
}

TEST_F(FileAuthTest, RightPasswordLogsInWithScramAndMd5) {
  ProxyProcess& p =
      start_proxy(file_options(write_userlist(default_userlist()), write_credentials()));
  struct Case {
    const char* user;
    const char* password;
    const char* method;
  };
  for (const Case& k : {Case{kScramUser, kScramPassword, "scram-sha-256"},
                        Case{kPwUser, kPwPassword, "scram-sha-256"}}) {
    RawClient c = RawClient::connect(p.endpoint());
    auto r = c.login(k.user, k.password);
    ASSERT_TRUE(r.ok) << k.user << ": " << r.failure << (r.error ? r.error->summary() : "");
    EXPECT_EQ(r.auth_method, k.method) << k.user;
    // The client sees the primary's real key: the backend exists on old.
    EXPECT_TRUE(old_cluster().backend_exists(static_cast<pid_t>(r.backend_pid))) << k.user;
    EXPECT_FALSE(r.parameters["server_version"].empty());
  }
  // An md5 hash can only do md5: with method = scram-sha-256 md5_user is refused like a wrong
  // password (PostgreSQL does the same for a role without a SCRAM secret).
  EXPECT_EQ(libpq_error(p, kMd5User, kMd5Password),
            "FATAL:  password authentication failed for user \"md5_user\"");

  for (const Case& k : {Case{kScramUser, kScramPassword, ""}, Case{kPwUser, kPwPassword, ""}}) {
    ConnPtr c = connect_raw(
        p.endpoint().conninfo(std::string("password=") + k.password, "postgres", k.user));
    ASSERT_EQ(PQstatus(c.get()), CONNECTION_OK) << k.user << ": " << PQerrorMessage(c.get());
    EXPECT_EQ(query_value(c.get(), "SELECT current_user"), k.user);
    EXPECT_EQ(query_value(c.get(), "SELECT pg_backend_pid()"),
              std::to_string(PQbackendPID(c.get())));
    EXPECT_EQ(PQconnectionUsedPassword(c.get()), 1);
  }
  // psql too.
  ProcessResult psql = run_process(
      {pg_tool("psql"),
       p.endpoint().conninfo(std::string("password=") + kScramPassword, "postgres", kScramUser),
       "-Atc", "SELECT current_user || ' ' || 40 + 2"});
  EXPECT_TRUE(psql.ok()) << psql.describe();
  EXPECT_EQ(psql.out, std::string(kScramUser) + " 42\n");

  // md5 method: the md5 hash and the plain password answer MD5; the SCRAM verifier still SCRAM.
  ProxyProcess& m =
      start_proxy(file_options(write_userlist(default_userlist()), write_credentials(), "md5"));
  for (const Case& k : {Case{kMd5User, kMd5Password, "md5"}, Case{kPwUser, kPwPassword, "md5"},
                        Case{kScramUser, kScramPassword, "scram-sha-256"}}) {
    RawClient c = RawClient::connect(m.endpoint());
    auto lr = c.login(k.user, k.password);
    ASSERT_TRUE(lr.ok) << k.user << ": " << lr.failure << (lr.error ? lr.error->summary() : "");
    EXPECT_EQ(lr.auth_method, k.method) << k.user;
    ConnPtr lc = connect_raw(
        m.endpoint().conninfo(std::string("password=") + k.password, "postgres", k.user));
    ASSERT_EQ(PQstatus(lc.get()), CONNECTION_OK) << k.user << ": " << PQerrorMessage(lc.get());
    EXPECT_EQ(query_value(lc.get(), "SELECT current_user"), k.user);
  }
  EXPECT_GE(auth_count(m, "md5", "ok"), 4);
  EXPECT_GE(auth_count(m, "scram-sha-256", "ok"), 2);
  EXPECT_GE(auth_count(p, "scram-sha-256", "ok"), 5);
}

TEST_F(FileAuthTest, WrongPasswordAndUnknownUserGetTheServersError) {
  ProxyProcess& p =
      start_proxy(file_options(write_userlist(default_userlist()), write_credentials()));
  // What the server itself says for a wrong SCRAM password.
  RawClient d = RawClient::connect(old_cluster().endpoint());
  auto expected = d.login(kScramUser, "wrong");
  ASSERT_TRUE(expected.error);
  for (const std::string& user : {std::string(kScramUser), std::string("no_such_user")}) {
    RawClient c = RawClient::connect(p.endpoint());
    auto r = c.login(user, "wrong");
    ASSERT_TRUE(r.error) << user << ": " << r.failure;
    EXPECT_EQ(r.auth_method, "scram-sha-256") << user;  // the unknown user gets a full exchange
    EXPECT_EQ(r.error->sqlstate(), "28P01") << user;
    EXPECT_EQ(r.error->severity(), "FATAL");
    EXPECT_EQ(r.error->message(), "password authentication failed for user \"" + user + "\"");
    EXPECT_TRUE(c.wait_closed(milliseconds(5000))) << user;
    if (user == kScramUser) {
      EXPECT_EQ(r.error->summary(), expected.error->summary());
    }
    EXPECT_EQ(libpq_error(p, user, "wrong"),
              "FATAL:  password authentication failed for user \"" + user + "\"");
  }
  // The right password for an unknown user name is still refused (no pgpass fallback).
  EXPECT_EQ(libpq_error(p, "no_such_user", kScramPassword),
            "FATAL:  password authentication failed for user \"no_such_user\"");
  EXPECT_GE(auth_count(p, "scram-sha-256", "failed"), 2);
  EXPECT_GE(auth_count(p, "scram-sha-256", "unknown_user"), 3);

  ProxyProcess& m =
      start_proxy(file_options(write_userlist(default_userlist()), write_credentials(), "md5"));
  for (const std::string& user : {std::string(kMd5User), std::string("no_such_user")}) {
    RawClient c = RawClient::connect(m.endpoint());
    auto r = c.login(user, "wrong");
    ASSERT_TRUE(r.error) << user;
    EXPECT_EQ(r.auth_method, "md5") << user;
    EXPECT_EQ(r.error->summary(),
              "FATAL 28P01: password authentication failed for user \"" + user + "\"");
  }
  EXPECT_EQ(auth_count(m, "md5", "failed"), 1);
  EXPECT_EQ(auth_count(m, "md5", "unknown_user"), 1);
}

TEST_F(FileAuthTest, UnknownUserLooksLikeAKnownOne) {
  ProxyProcess& p =
      start_proxy(file_options(write_userlist(default_userlist()), write_credentials()));
  // The server-first-message's salt and iteration count: stable per user, for unknown users too
  // (a changing salt would tell that the user does not exist).
  auto server_first = [&](const std::string& user) {
    RawClient c = RawClient::connect(p.endpoint());
    c.send(startup_packet({{"user", user}, {"database", "postgres"}}));
    auto sasl = c.read_message(milliseconds(5000));
    if (!sasl || sasl->type != 'R' || sasl->body.substr(0, 4) != be32(10)) return std::string("?");
    const std::string first = "n,,n=,r=abcdefghijklmnopqrstuvwx";
    c.send(frontend_message('p', std::string("SCRAM-SHA-256\0", 14) + be32(first.size()) + first));
    auto cont = c.read_message(milliseconds(5000));
    if (!cont || cont->type != 'R' || cont->body.substr(0, 4) != be32(11)) return std::string("?");
    const std::string text = cont->body.substr(4);
    return text.substr(text.find(",s="));  // drop the nonce
  };
  const std::string unknown = server_first("no_such_user");
  EXPECT_EQ(unknown.find(",s="), 0u) << unknown;
  EXPECT_NE(unknown.find(",i=4096"), std::string::npos) << unknown;
  EXPECT_EQ(server_first("no_such_user"), unknown);
  EXPECT_NE(server_first("another_unknown_user"), unknown);
  // A known user gets the salt of its verifier.
  const std::string v = rolpassword(kScramUser);
  const std::string salt = v.substr(v.find(':') + 1, v.find('$', v.find(':')) - v.find(':') - 1);
  EXPECT_EQ(server_first(kScramUser), ",s=" + salt + ",i=4096");
}

TEST_F(FileAuthTest, MissingCredentialsEntryIsAClearError) {
  // md5_user has no entry in pgtandem's credentials file, and an md5 hash is no password.
  const std::string creds = write_credentials(/*with_md5=*/false);
  ProxyProcess& p = start_proxy(file_options(write_userlist(default_userlist()), creds, "md5"));
  RawClient c = RawClient::connect(p.endpoint());
  auto r = c.login(kMd5User, kMd5Password);
  ASSERT_TRUE(r.error) << r.failure;
  EXPECT_EQ(r.error->sqlstate(), "28P01");
  EXPECT_EQ(r.error->message(),
            "pgtandem has no password to log in to target \"old\" as user \"md5_user\"");
  EXPECT_NE(r.error->get('D').find(creds), std::string::npos) << r.error->get('D');
  const std::string err = libpq_error(p, kMd5User, kMd5Password);
  EXPECT_NE(err.find("pgtandem has no password"), std::string::npos) << err;
  EXPECT_NE(err.find(creds), std::string::npos) << err;
  EXPECT_TRUE(poll_until(
      [&] { return p.log_text().find("no password for the primary") != std::string::npos; },
      milliseconds(5000)))
      << tail(p.log_text());
  EXPECT_GE(auth_count(p, "md5", "error"), 2);
}

TEST_F(FileAuthTest, SessionIsUnchangedMirrorIncluded) {
  const std::string db = unique("fileauth");
  for (PgCluster* cl : {&old_cluster(), &new_cluster()}) {
    cl->create_database(db);
    cl->exec(std::string("CREATE TABLE t (n int); GRANT ALL ON t TO ") + kScramUser, db);
  }
  ProxyProcess& p = start_proxy(file_options(
      write_userlist(default_userlist()), write_credentials(), "scram-sha-256", /*mirror=*/true));
  {
    ConnPtr c =
        connect(p.endpoint().conninfo(std::string("password=") + kScramPassword, db, kScramUser));
    exec(c.get(), "INSERT INTO t VALUES (1), (2)");
    exec(c.get(), "BEGIN");
    exec(c.get(), "UPDATE t SET n = n * 10");
    exec(c.get(), "COMMIT");
    EXPECT_EQ(query_value(c.get(), "SELECT sum(n) FROM t"), "30");
    // Extended protocol and a cancel with the real key work as in relay mode.
    ResultPtr res(PQexecParams(c.get(), "SELECT $1::int + 1", 1, nullptr,
                               std::vector<const char*>{"41"}.data(), nullptr, nullptr, 0));
    ASSERT_EQ(PQresultStatus(res.get()), PGRES_TUPLES_OK);
    EXPECT_EQ(std::string(PQgetvalue(res.get(), 0, 0)), "42");
  }
  EXPECT_TRUE(poll_until(
      [&] { return new_cluster().query_value("SELECT coalesce(sum(n), 0) FROM t", db) == "30"; },
      milliseconds(20000)))
      << "mirrored writes did not reach new; log:\n"
      << tail(p.log_text());
  for (PgCluster* cl : {&old_cluster(), &new_cluster()}) {
    cl->exec("DROP DATABASE IF EXISTS " + db + " WITH (FORCE)");
  }
}

TEST_F(FileAuthTest, ReloadedUserlistLetsANewPasswordIn) {
  const std::string userlist = write_userlist(default_userlist());
  ProxyProcess& p = start_proxy(file_options(userlist, write_credentials()));
  ConnPtr old_session = connect(
      p.endpoint().conninfo(std::string("password=") + kScramPassword, "postgres", kScramUser));
  // The new password only pgtandem knows (the target keeps scram_pass, in the credentials file).
  const std::string rotated = server_verifier("rotated-pass");
  write_userlist("\"" + std::string(kScramUser) + "\" \"" + rotated + "\"");
  p.send_signal(SIGHUP);
  EXPECT_TRUE(poll_until(
      [&] {
        ConnPtr c =
            connect_raw(p.endpoint().conninfo("password=rotated-pass", "postgres", kScramUser));
        return PQstatus(c.get()) == CONNECTION_OK;
      },
      milliseconds(10000)))
      << tail(p.log_text());
  EXPECT_EQ(libpq_error(p, kScramUser, kScramPassword),
            "FATAL:  password authentication failed for user \"scram_user\"");
  // Logged-in sessions are not touched.
  EXPECT_EQ(query_value(old_session.get(), "SELECT 1"), "1");

  // A broken userlist on reload changes nothing (the running one stays) and is logged.
  write_userlist("\"scram_user\" \"x\" trailing\n");
  p.send_signal(SIGHUP);
  EXPECT_TRUE(
      poll_until([&] { return p.log_text().find("userlist rejected") != std::string::npos; },
                 milliseconds(10000)))
      << tail(p.log_text());
  ConnPtr c = connect_raw(p.endpoint().conninfo("password=rotated-pass", "postgres", kScramUser));
  EXPECT_EQ(PQstatus(c.get()), CONNECTION_OK) << PQerrorMessage(c.get());
}

TEST_F(FileAuthTest, CheckConfigAndStartRefuseABadUserlist) {
  const std::string bin = pgtandem_binary();
  ProxyProcess probe(
      file_options(write_userlist("\"a\" \"x\"\n\"b\" unquoted\n"), write_credentials()));
  probe.reserve_ports();
  const std::string toml = dir_->file("check.toml");
  write_file(toml, probe.render_config());
  RunOptions quick;
  quick.timeout = milliseconds(20000);
  auto r = run_process({bin, "--check-config", toml}, quick);
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.err.find(dir_->file("userlist.txt") + ":2:5: expected a field in double quotes"),
            std::string::npos)
      << r.describe();
  // Group-readable: refused like a password file.
  write_userlist(default_userlist(), 0640);
  r = run_process({bin, "--check-config", toml}, quick);
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.err.find("group or world access"), std::string::npos) << r.describe();
  r = run_process({bin, "--config", toml}, quick);
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE((r.out + r.err).find("cannot use auth.file"), std::string::npos) << r.describe();
  // Valid again.
  write_userlist(default_userlist());
  r = run_process({bin, "--check-config", toml}, quick);
  EXPECT_EQ(r.exit_code, 0) << r.describe();
}

TEST_F(FileAuthTest, MalformedSaslInputNeverHurtsTheProxy) {
  ProxyProcess& p =
      start_proxy(file_options(write_userlist(default_userlist()), write_credentials()));
  const std::vector<std::string> bad = {
      frontend_message('p', std::string("SCRAM-SHA-256\0", 14) + be32(0xffffffff)),
      frontend_message('p', std::string("SCRAM-SHA-256\0", 14) + be32(100) + "n,,"),
      frontend_message('p', std::string("SCRAM-SHA-256\0", 14) + be32(5) + "p,,ab"),
      frontend_message('p', std::string("BOGUS\0", 6) + be32(3) + "n,,"),
      frontend_message('Q', std::string("SELECT 1\0", 9)),
      std::string("p") + be32(0x7fffffff),
      std::string("p") + be32(2),
      frontend_message('p', ""),
  };
  for (const std::string& b : bad) {
    RawClient c = RawClient::connect(p.endpoint());
    c.send(startup_packet({{"user", kScramUser}, {"database", "postgres"}}));
    auto m = c.read_message(milliseconds(5000));
    ASSERT_TRUE(m && m->type == 'R') << escape_bytes(b);
    c.send(b);
    Outcome o = c.read_until_close(milliseconds(5000));
    EXPECT_TRUE(o.closed) << escape_bytes(b) << ": " << o.normalized();
  }
  ASSERT_TRUE(p.alive()) << tail(p.log_text());
  ConnPtr c = connect_raw(
      p.endpoint().conninfo(std::string("password=") + kScramPassword, "postgres", kScramUser));
  EXPECT_EQ(PQstatus(c.get()), CONNECTION_OK) << PQerrorMessage(c.get());
}

}  // namespace
}  // namespace pgtandem::it

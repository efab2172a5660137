// TLS on both legs (issue 6): a throwaway CA made with the openssl CLI; two PostgreSQL servers with
// ssl = on whose pg_hba.conf has only `hostssl ... scram-sha-256` for TCP, so they require TLS;
// pgtandem terminating clients' TLS ([tls]) and opening TLS to the targets (sslmode).
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>

#include "tests/integration/fixture.h"

namespace pgtandem::it {
namespace {

void openssl(const std::vector<std::string>& args, const std::string& cwd) {
  std::vector<std::string> argv = {"openssl"};
  argv.insert(argv.end(), args.begin(), args.end());
  RunOptions ro;
  ro.cwd = cwd;
  ro.timeout = milliseconds(30000);
  ProcessResult r = run_process(argv, ro);
  if (!r.ok()) throw std::runtime_error("openssl " + args.front() + " failed: " + r.describe());
}

void give_to_postgres(const std::string& path, mode_t mode) {
  if (running_as_root()) {
    const passwd* pw = ::getpwnam("postgres");
    if (pw == nullptr || ::chown(path.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      throw std::runtime_error("cannot chown " + path + " to postgres");
    }
  }
  ::chmod(path.c_str(), mode);
}

// A CA, a certificate for pgtandem (two, for the reload test), one for the servers, and a CA that
// signed none of them.
struct Pki {
  std::unique_ptr<TempDir> dir;
  std::string path(const std::string& name) const { return dir->file(name); }

  void make_ca(const std::string& name, const std::string& cn) {
    openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", name + ".key", "-out", name + ".crt", "-days", "2", "-subj", "/CN=" + cn},
            dir->path());
  }
  void make_cert(const std::string& ca, const std::string& name, const std::string& cn,
                 const std::string& serial, const std::string& san) {
    write_file(path(name + ".ext"), "subjectAltName = " + san + "\n");
    openssl({"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn},
            dir->path());
    openssl({"x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
             "-set_serial", serial, "-days", "2", "-out", name + ".crt", "-extfile", name + ".ext"},
            dir->path());
  }

  void init() {
    dir = std::make_unique<TempDir>("pgtandem-it-pki");
    make_ca("ca", "pgtandem-test-ca");
    make_ca("other-ca", "some-other-ca");
    make_cert("ca", "proxy1", "pgtandem-proxy-one", "1001", "IP:127.0.0.1,DNS:localhost");
    make_cert("ca", "proxy2", "pgtandem-proxy-two", "1002", "IP:127.0.0.1,DNS:localhost");
    make_cert("ca", "pg", "pgtandem-test-postgres", "2001", "IP:127.0.0.1,DNS:localhost");
    give_to_postgres(path("pg.key"), 0600);
    give_to_postgres(path("pg.crt"), 0644);
    ::chmod(dir->path().c_str(), 0755);
  }
};

// A server that accepts TCP clients only over TLS, with SCRAM-SHA-256 passwords.
std::unique_ptr<PgCluster> make_tls_cluster(const std::string& name, const Pki& pki) {
  auto c = std::make_unique<PgCluster>(name);
  c->init();
  c->stop();
  std::string conf = read_file(c->data_dir() + "/postgresql.conf");
  conf += "ssl = on\nssl_cert_file = '" + pki.path("pg.crt") + "'\nssl_key_file = '" +
          pki.path("pg.key") + "'\n";
  write_file(c->data_dir() + "/postgresql.conf", conf);
  write_file(c->data_dir() + "/pg_hba.conf",
             "local all scram_user scram-sha-256\n"
             "local all all trust\n"
             "hostssl all all 127.0.0.1/32 scram-sha-256\n");
  c->start();
  c->exec("CREATE TABLE tls_t (id int PRIMARY KEY, v text); GRANT ALL ON tls_t TO scram_user");
  return c;
}

class TlsTest : public ProxyTest {
 protected:
  static void SetUpTestSuite() {
    try {
      pki_ = new Pki;
      pki_->init();
      old_ = make_tls_cluster("tls-old", *pki_).release();
      new_ = make_tls_cluster("tls-new", *pki_).release();
    } catch (const std::exception& e) {
      setup_error_ = e.what();
    }
  }
  static void TearDownTestSuite() {
    delete old_;
    delete new_;
    delete pki_;
    old_ = new_ = nullptr;
    pki_ = nullptr;
  }
  void SetUp() override {
    ProxyTest::SetUp();
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
  }

  // pgtandem in front of the TLS servers; `tls_mode` "" leaves [tls] out.
  ProxyOptions tls_options(const std::string& tls_mode, const std::string& target_mode,
                           const std::string& target_ca = "ca.crt") {
    ProxyOptions o = Env::get().default_proxy_options();
    o.old_port = old_->port();
    o.new_port = new_->port();
    for (const char* t : {"targets.old", "targets.new"}) {
      o.section_lines[t].push_back("sslmode = \"" + target_mode + "\"");
      o.section_lines[t].push_back("sslrootcert = \"" + pki_->path(target_ca) + "\"");
    }
    if (!tls_mode.empty()) {
      o.extra_toml = "[tls]\nmode = \"" + tls_mode + "\"\ncert_file = \"" + cert_path_ +
                     "\"\nkey_file = \"" + key_path_ + "\"\n";
    }
    return o;
  }

  std::string client_tls(const std::string& sslmode, const std::string& ca = "ca.crt") {
    return "sslmode=" + sslmode + " sslrootcert=" + pki_->path(ca) +
           " channel_binding=disable password=" + kScramPassword;
  }

  void SetUpCertificates() {
    cert_dir_ = std::make_unique<TempDir>("pgtandem-it-proxycert");
    cert_path_ = cert_dir_->file("server.crt");
    key_path_ = cert_dir_->file("server.key");
    write_file(cert_path_, read_file(pki_->path("proxy1.crt")));
    write_file(key_path_, read_file(pki_->path("proxy1.key")));
    ::chmod(key_path_.c_str(), 0600);
  }

  // The subject pgtandem's certificate shows to a new connection (openssl s_client).
  std::string served_certificate(uint16_t port) {
    RunOptions ro;
    ro.timeout = milliseconds(15000);
    ProcessResult r = run_process({"openssl", "s_client", "-starttls", "postgres", "-connect",
                                   "127.0.0.1:" + std::to_string(port), "-CAfile",
                                   pki_->path("ca.crt")},
                                  ro);
    return r.out + r.err;
  }

  static Pki* pki_;
  static PgCluster* old_;
  static PgCluster* new_;
  static std::string setup_error_;
  std::unique_ptr<TempDir> cert_dir_;
  std::string cert_path_;
  std::string key_path_;
};

Pki* TlsTest::pki_ = nullptr;
PgCluster* TlsTest::old_ = nullptr;
PgCluster* TlsTest::new_ = nullptr;
std::string TlsTest::setup_error_;

TEST_F(TlsTest, VerifyFullClientAndTargetLegsAreEncryptedWithScram) {
  SetUpCertificates();
  ProxyProcess& p = start_proxy(tls_options("require", "verify-full"));
  ConnPtr c = connect_raw(p.endpoint().conninfo(client_tls("verify-full"), "postgres", kScramUser));
  ASSERT_EQ(PQstatus(c.get()), CONNECTION_OK) << PQerrorMessage(c.get()) << tail(p.log_text());
  EXPECT_EQ(PQsslInUse(c.get()), 1);
  EXPECT_EQ(PQconnectionUsedPassword(c.get()), 1);
  EXPECT_EQ(query_value(c.get(), "SELECT current_user"), kScramUser);
  // The server sees pgtandem's connection, and it is TLS.
  EXPECT_EQ(query_value(c.get(), "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"), "t");
  EXPECT_EQ(query_value(c.get(), "SELECT pg_backend_pid()"), std::to_string(PQbackendPID(c.get())));
  // A large result crosses both TLS legs intact.
  EXPECT_EQ(query_value(c.get(), "SELECT sum(length(repeat('x', g))) FROM generate_series(1, 3000) g"),
            "4501500");
  EXPECT_EQ(query_value(c.get(), "SELECT length(string_agg(repeat('y', 1000), '')) FROM "
                                 "generate_series(1, 2000)"),
            "2000000");
}

TEST_F(TlsTest, PlainClientScramOverTlsTarget) {
  SetUpCertificates();
  ProxyProcess& p = start_proxy(tls_options("prefer", "require"));
  // The client speaks in clear to pgtandem (allowed by prefer), pgtandem TLS to the server.
  ConnPtr c = connect_raw(p.endpoint().conninfo(std::string("sslmode=disable password=") +
                                                    kScramPassword,
                                                "postgres", kScramUser));
  ASSERT_EQ(PQstatus(c.get()), CONNECTION_OK) << PQerrorMessage(c.get());
  EXPECT_EQ(PQsslInUse(c.get()), 0);
  EXPECT_EQ(query_value(c.get(), "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"), "t");
  // A TLS client leg: SCRAM-SHA-256-PLUS is not offered, so channel_binding=require fails in the
  // client, and libpq's default (prefer) sends the "y" flag, which the server, having offered
  // -PLUS on its own TLS connection, refuses as a downgrade (docs/configuration.md, [tls]).
  ConnPtr b = connect_raw(p.endpoint().conninfo(
      std::string("sslmode=verify-full sslrootcert=") + pki_->path("ca.crt") +
          " password=" + kScramPassword,
      "postgres", kScramUser));
  EXPECT_EQ(PQstatus(b.get()), CONNECTION_BAD);
  EXPECT_NE(std::string(PQerrorMessage(b.get())).find("SCRAM channel binding negotiation error"),
            std::string::npos)
      << PQerrorMessage(b.get());
  ConnPtr d = connect_raw(p.endpoint().conninfo(
      std::string("sslmode=verify-full sslrootcert=") + pki_->path("ca.crt") +
          " channel_binding=require password=" + kScramPassword,
      "postgres", kScramUser));
  EXPECT_EQ(PQstatus(d.get()), CONNECTION_BAD);
  EXPECT_NE(std::string(PQerrorMessage(d.get())).find("channel binding"), std::string::npos)
      << PQerrorMessage(d.get());
}

TEST_F(TlsTest, RequireModeRefusesPlaintextClient) {
  SetUpCertificates();
  ProxyProcess& p = start_proxy(tls_options("require", "verify-full"));
  ConnPtr c = connect_raw(p.endpoint().conninfo(std::string("sslmode=disable password=") +
                                                    kScramPassword,
                                                "postgres", kScramUser));
  ASSERT_EQ(PQstatus(c.get()), CONNECTION_BAD);
  EXPECT_NE(std::string(PQerrorMessage(c.get()))
                .find("FATAL:  no pg_hba.conf entry for host \"127.0.0.1\", user \"scram_user\", "
                      "database \"postgres\", no encryption"),
            std::string::npos)
      << PQerrorMessage(c.get());
  // Raw: the same FATAL with SQLSTATE 28000, then close.
  RawClient r = RawClient::connect(p.endpoint());
  auto login = r.login(kScramUser, kScramPassword);
  ASSERT_TRUE(login.error) << login.failure;
  EXPECT_EQ(login.error->sqlstate(), "28000");
  // sslmode=prefer (libpq's default) gets TLS and works.
  ConnPtr ok = connect_raw(p.endpoint().conninfo(std::string("sslmode=prefer channel_binding=disable password=") +
                                                     kScramPassword,
                                                 "postgres", kScramUser));
  ASSERT_EQ(PQstatus(ok.get()), CONNECTION_OK) << PQerrorMessage(ok.get());
  EXPECT_EQ(PQsslInUse(ok.get()), 1);
}

TEST_F(TlsTest, ClientWithWrongCaFailsVerification) {
  SetUpCertificates();
  ProxyProcess& p = start_proxy(tls_options("require", "verify-full"));
  ConnPtr c = connect_raw(
      p.endpoint().conninfo(client_tls("verify-full", "other-ca.crt"), "postgres", kScramUser));
  ASSERT_EQ(PQstatus(c.get()), CONNECTION_BAD);
  EXPECT_NE(std::string(PQerrorMessage(c.get())).find("certificate verify failed"),
            std::string::npos)
      << PQerrorMessage(c.get());
  // pgtandem is fine.
  ConnPtr ok = connect_raw(p.endpoint().conninfo(client_tls("verify-full"), "postgres", kScramUser));
  EXPECT_EQ(PQstatus(ok.get()), CONNECTION_OK) << PQerrorMessage(ok.get());
}

TEST_F(TlsTest, TargetVerifyFullWithWrongRootCertIsAClearError) {
  SetUpCertificates();
  ProxyProcess& p = start_proxy(tls_options("allow", "verify-full", "other-ca.crt"));
  ConnPtr c = connect_raw(p.endpoint().conninfo(client_tls("verify-full"), "postgres", kScramUser));
  ASSERT_EQ(PQstatus(c.get()), CONNECTION_BAD);
  const std::string error = PQerrorMessage(c.get());
  EXPECT_NE(error.find("pgtandem: target \"old\""), std::string::npos) << error;
  EXPECT_NE(error.find("certificate verify failed"), std::string::npos) << error;
  EXPECT_TRUE(p.alive());
  // A target server without TLS under sslmode=require: refused with a reason too (the shared
  // clusters have ssl = off).
  ProxyOptions o = Env::get().default_proxy_options();
  o.section_lines["targets.old"].push_back("sslmode = \"require\"");
  ProxyProcess& q = start_proxy(o);
  ConnPtr d = connect_raw(q.endpoint().conninfo());
  ASSERT_EQ(PQstatus(d.get()), CONNECTION_BAD);
  EXPECT_NE(std::string(PQerrorMessage(d.get())).find("does not support SSL"), std::string::npos)
      << PQerrorMessage(d.get());
  // ... and sslmode=prefer (the default) goes on in clear text with it.
  ProxyProcess& r = start_proxy(Env::get().default_proxy_options());
  ConnPtr e = connect_raw(r.endpoint().conninfo());
  EXPECT_EQ(PQstatus(e.get()), CONNECTION_OK) << PQerrorMessage(e.get());
}

TEST_F(TlsTest, MirrorLinkAppliesWritesOverTls) {
  SetUpCertificates();
  ProxyOptions o = tls_options("allow", "verify-full");
  o.section_lines[""].push_back("mirror_writes = true");
  const std::string creds = cert_dir_->file("credentials");
  write_file(creds, "127.0.0.1:" + std::to_string(new_->port()) + ":*:" + kScramUser + ":" +
                        kScramPassword + "\n");
  ::chmod(creds.c_str(), 0600);
  o.extra_toml += "[mirror]\ncredentials_file = \"" + creds + "\"\njournal_path = \"" +
                  cert_dir_->file("journal") + "\"\n";
  ProxyProcess& p = start_proxy(o);
  ConnPtr c = connect_raw(p.endpoint().conninfo(client_tls("verify-full"), "postgres", kScramUser));
  ASSERT_EQ(PQstatus(c.get()), CONNECTION_OK) << PQerrorMessage(c.get());
  const std::string id = std::to_string(::getpid() % 100000);
  exec(c.get(), "INSERT INTO tls_t VALUES (" + id + ", 'over tls') ON CONFLICT (id) DO UPDATE SET v = 'over tls'");
  std::string got;
  EXPECT_TRUE(poll_until(
      [&] {
        got = new_->query_value("SELECT coalesce((SELECT v FROM tls_t WHERE id = " + id + "), '')");
        return got == "over tls";
      },
      milliseconds(10000)))
      << got << "\n" << tail(p.log_text());
  // The mirror's connection to new is TLS as well.
  EXPECT_EQ(new_->query_value("SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING "
                              "(pid) WHERE a.usename = 'scram_user' AND s.ssl"),
            "1");
  new_->exec("DELETE FROM tls_t");
  old_->exec("DELETE FROM tls_t");
}

TEST_F(TlsTest, CertificateReloadOnSighupKeepsSessions) {
  SetUpCertificates();
  ProxyProcess& p = start_proxy(tls_options("require", "verify-full"));
  ConnPtr s1 = connect_raw(p.endpoint().conninfo(client_tls("verify-full"), "postgres", kScramUser));
  ASSERT_EQ(PQstatus(s1.get()), CONNECTION_OK) << PQerrorMessage(s1.get());
  std::string before = served_certificate(p.port());
  EXPECT_NE(before.find("pgtandem-proxy-one"), std::string::npos) << before;

  write_file(cert_path_, read_file(pki_->path("proxy2.crt")));
  write_file(key_path_, read_file(pki_->path("proxy2.key")));
  p.send_signal(SIGHUP);
  ASSERT_TRUE(poll_until([&] { return p.log_text().find("TLS certificates reloaded") != std::string::npos; },
                         milliseconds(10000)))
      << tail(p.log_text());
  std::string after = served_certificate(p.port());
  EXPECT_NE(after.find("pgtandem-proxy-two"), std::string::npos) << after;
  EXPECT_EQ(after.find("pgtandem-proxy-one"), std::string::npos) << after;
  // The established session goes on, on its old context.
  EXPECT_EQ(query_value(s1.get(), "SELECT 41 + 1"), "42");
  ConnPtr s2 = connect_raw(p.endpoint().conninfo(client_tls("verify-full"), "postgres", kScramUser));
  EXPECT_EQ(PQstatus(s2.get()), CONNECTION_OK) << PQerrorMessage(s2.get());

  // A key that does not match: the reload keeps the certificate in use.
  write_file(key_path_, read_file(pki_->path("proxy1.key")));
  p.send_signal(SIGHUP);
  ASSERT_TRUE(poll_until([&] { return p.log_text().find("TLS certificates not reloaded") != std::string::npos; },
                         milliseconds(10000)))
      << tail(p.log_text());
  after = served_certificate(p.port());
  EXPECT_NE(after.find("pgtandem-proxy-two"), std::string::npos) << after;
  EXPECT_EQ(query_value(s1.get(), "SELECT 1"), "1");
}

TEST_F(TlsTest, GarbageAroundTheHandshakeIsRejected) {
  SetUpCertificates();
  ProxyProcess& p = start_proxy(tls_options("allow", "verify-full"));
  HealthySession healthy(p.endpoint().conninfo(client_tls("verify-full"), "postgres", kScramUser));
  healthy.start();
  // Bytes right behind the SSLRequest, before the answer: refused as the server refuses them.
  {
    RawClient r = RawClient::connect(p.endpoint());
    r.send(ssl_request() + startup_packet({{"user", kScramUser}, {"database", "postgres"}}));
    auto answer = r.read_bytes(1, milliseconds(5000));
    ASSERT_TRUE(answer);
    EXPECT_EQ(*answer, "S");
    Outcome o = r.read_until_close(milliseconds(5000));
    EXPECT_TRUE(o.closed);
    const BackendMessage* e = o.first('E');
    ASSERT_NE(e, nullptr) << o.normalized();
    EXPECT_EQ(ErrorFields::parse(e->body).message(), "received unencrypted data after SSL request");
    EXPECT_EQ(ErrorFields::parse(e->body).sqlstate(), "08P01");
  }
  // Garbage instead of a ClientHello: closed.
  {
    RawClient r = RawClient::connect(p.endpoint());
    r.send(ssl_request());
    auto answer = r.read_bytes(1, milliseconds(5000));
    ASSERT_TRUE(answer);
    EXPECT_EQ(*answer, "S");
    r.send(std::string(300, 'G') + startup_packet({{"user", kScramUser}}));
    EXPECT_TRUE(r.wait_closed(milliseconds(5000)));
  }
  EXPECT_TRUE(healthy.wait_progress(20)) << healthy.first_error();
  healthy.stop();
  EXPECT_EQ(healthy.errors(), 0) << healthy.first_error();
  EXPECT_TRUE(p.alive());
}

TEST_F(TlsTest, SilentHandshakeEndsAtTheStartupTimeout) {
  SetUpCertificates();
  ProxyOptions o = tls_options("allow", "verify-full");
  o.startup_timeout_ms = 700;
  ProxyProcess& p = start_proxy(o);
  RawClient r = RawClient::connect(p.endpoint());
  r.send(ssl_request());
  auto answer = r.read_bytes(1, milliseconds(5000));
  ASSERT_TRUE(answer);
  EXPECT_EQ(*answer, "S");
  const auto start = Clock::now();
  // No ClientHello: the handshake waits, bounded by the startup timeout.
  EXPECT_TRUE(r.wait_closed(milliseconds(5000)));
  const auto waited = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  EXPECT_GE(waited.count(), 500);
  EXPECT_LT(waited.count(), 3000);
  // The cancelled handshake may close the socket before the session counts the timeout: wait
  // for the count (a flake under load when read at once).
  double rejected = 0;
  poll_until(
      [&] {
        rejected =
            p.metrics().sum("pgtandem_rejected_connections_total", {{"reason", "startup_timeout"}});
        return rejected >= 1;
      },
      milliseconds(5000), milliseconds(50));
  EXPECT_EQ(rejected, 1);
}

}  // namespace
}  // namespace pgtandem::it

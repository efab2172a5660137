// Running pgtandem in production (issue 6): the admin endpoints (/readyz, /status, POST /reload,
// POST /breaker/reset and their bearer token), graceful shutdown on SIGTERM (in-flight
// transactions complete, idle sessions get FATAL 57P01, mirrored writes are kept), fast shutdown on
// SIGINT, `[log] statements`, and the `pgtandem status` / `pgtandem reload` commands.
//
// The machine is small and shared: every wait polls with a generous deadline; nothing asserts on
// how fast something happened, only on what happened.
#include <sys/wait.h>

#include <csignal>
#include <future>
#include <regex>
#include <set>
#include <sstream>

#include "tests/integration/fixture.h"

namespace pgtandem::it {
namespace {

constexpr milliseconds kDeadline{30000};
constexpr const char* kToken = "it-admin-token-0123456789";

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

int readyz(const ProxyProcess& p) {
  try {
    return http_get(p.admin_port(), "/readyz").status;
  } catch (const std::exception&) {
    return -1;
  }
}

HttpResponse post(const ProxyProcess& p, const std::string& path, const std::string& token) {
  std::vector<std::string> headers;
  if (!token.empty()) headers.push_back("Authorization: Bearer " + token);
  return http_request(p.admin_port(), "POST", path, headers);
}

// Exit code of a process that exited; -1 if it was killed by a signal.
int exit_code(const ProxyProcess& p) {
  const int status = p.raw_exit_status();
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class AdminTest : public ProxyTest {
 protected:
  ProxyOptions options(bool token = true) {
    ProxyOptions o = Env::get().default_proxy_options();
    if (token) o.section_lines["admin"].push_back(std::string("token = \"") + kToken + "\"");
    return o;
  }
  static std::string admin_address(const ProxyProcess& p) {
    return "127.0.0.1:" + std::to_string(p.admin_port());
  }
};

TEST_F(AdminTest, StatusDescribesTheRunningProxy) {
  ProxyProcess& p = start_proxy(options());
  ConnPtr c = connect(p.endpoint().conninfo());
  EXPECT_EQ(query_value(c.get(), "SELECT 41 + 1"), "42");

  ASSERT_TRUE(poll_until([&] { return readyz(p) == 200; }, kDeadline)) << p.log_text();
  const HttpResponse r = http_get(p.admin_port(), "/status");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.headers.at("content-type"), "application/json");
  const std::string& s = r.body;
  EXPECT_TRUE(contains(s, "\"version\":\"")) << s;
  EXPECT_TRUE(contains(s, "\"draining\":false")) << s;
  EXPECT_TRUE(contains(s, "\"primary\":\"old\"")) << s;
  EXPECT_TRUE(contains(s, "\"address\":\"127.0.0.1:" + std::to_string(old_cluster().port()) + "\""))
      << s;
  EXPECT_TRUE(contains(s, "\"name\":\"old\",\"address\"")) << s;
  EXPECT_TRUE(std::regex_search(s, std::regex("\"name\":\"old\"[^}]*\"health\":\"up\""))) << s;
  EXPECT_TRUE(contains(s, "\"breakers\":{\"old\":\"closed\",\"new\":\"closed\"}")) << s;
  EXPECT_TRUE(contains(s, "\"rules\":[")) << s;
  EXPECT_TRUE(contains(s, "\"mirror\":{\"enabled\":false")) << s;
  EXPECT_TRUE(contains(s, "\"shadow\":{\"mismatches_total\":")) << s;
  EXPECT_TRUE(contains(s, "\"last_reload\":{")) << s;
  EXPECT_TRUE(contains(s, "\"outcome\":\"applied\"")) << s;
  EXPECT_TRUE(contains(s, "\"clients\":1")) << s;

  // The CLI renders it.
  ProcessResult st = run_process({pgtandem_binary(), "status", "--admin", admin_address(p)});
  ASSERT_EQ(st.exit_code, 0) << st.describe();
  EXPECT_TRUE(contains(st.out, "primary:  old")) << st.out;
  EXPECT_TRUE(contains(st.out, "127.0.0.1:" + std::to_string(new_cluster().port()))) << st.out;
  EXPECT_TRUE(contains(st.out, "breaker closed")) << st.out;
  EXPECT_TRUE(contains(st.out, "reload:   last applied")) << st.out;
  // The address from the config's [admin] section.
  st = run_process({pgtandem_binary(), "status", "--config", p.config_path()});
  ASSERT_EQ(st.exit_code, 0) << st.describe();
  EXPECT_TRUE(contains(st.out, "primary:  old")) << st.out;
  // Usage errors and an unreachable admin endpoint.
  EXPECT_EQ(run_process({pgtandem_binary(), "status", "--bogus"}).exit_code, 2);
  EXPECT_EQ(run_process({pgtandem_binary(), "status", "--admin"}).exit_code, 2);
  EXPECT_EQ(
      run_process({pgtandem_binary(), "status", "--admin",
                   "127.0.0.1:" + std::to_string(free_tcp_port())})
          .exit_code,
      1);
}

TEST_F(AdminTest, TokenIsEnforcedOnPostEndpoints) {
  ProxyProcess& p = start_proxy(options());
  HttpResponse r = post(p, "/reload", "");
  EXPECT_EQ(r.status, 401) << r.body;
  EXPECT_TRUE(contains(r.headers["www-authenticate"], "Bearer")) << r.body;
  r = post(p, "/reload", "wrong-token");
  EXPECT_EQ(r.status, 401) << r.body;
  r = post(p, "/breaker/reset", "");
  EXPECT_EQ(r.status, 401) << r.body;
  r = post(p, "/reload", kToken);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(contains(r.body, "\"outcome\":\"unchanged\"")) << r.body;
  r = post(p, "/breaker/reset?target=new", kToken);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(contains(r.body, "\"new\":\"closed\"")) << r.body;
  r = post(p, "/breaker/reset?target=nope", kToken);
  EXPECT_EQ(r.status, 400) << r.body;
  r = http_get(p.admin_port(), "/reload");
  EXPECT_EQ(r.status, 405) << r.body;
  // The refused attempts never reloaded anything.
  EXPECT_EQ(p.metrics().sum("pgtandem_config_reloads_total", {{"outcome", "unchanged"}}), 1);
}

TEST_F(AdminTest, TokenFromFile) {
  TempDir dir("pgtandem-it-admin");
  write_file(dir.file("token"), std::string("\n  ") + kToken + "  \n");
  ProxyOptions o = options(false);
  o.section_lines["admin"].push_back("token_file = \"" + dir.file("token") + "\"");
  ProxyProcess& p = start_proxy(o);
  EXPECT_EQ(post(p, "/reload", "").status, 401);
  EXPECT_EQ(post(p, "/reload", kToken).status, 200);
  // `pgtandem reload` takes the token from the config's token_file.
  ProcessResult rr = run_process({pgtandem_binary(), "reload", "--config", p.config_path()});
  EXPECT_EQ(rr.exit_code, 0) << rr.describe();
  EXPECT_TRUE(contains(rr.out, "reload: unchanged")) << rr.describe();
}

TEST_F(AdminTest, NoTokenConfiguredMeansForbidden) {
  ProxyProcess& p = start_proxy(options(false));
  HttpResponse r = post(p, "/reload", "");
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_TRUE(contains(r.body, "token")) << r.body;
  r = post(p, "/breaker/reset", kToken);
  EXPECT_EQ(r.status, 403) << r.body;
  ProcessResult rr =
      run_process({pgtandem_binary(), "reload", "--admin", admin_address(p), "--token", kToken});
  EXPECT_EQ(rr.exit_code, 1) << rr.describe();
  EXPECT_TRUE(contains(rr.err, "403")) << rr.describe();
}

TEST_F(AdminTest, InvalidConfigIsRejectedAndReported) {
  ProxyProcess& p = start_proxy(options());
  ConnPtr c = connect(p.endpoint().conninfo());
  const std::string good = p.config_text();

  // SIGHUP with an invalid file: still serving, /status reports the error with its line.
  write_file(p.config_path(), good + "\n[shutdown]\ndrain_timeout_ms = \"soon\"\n");
  p.send_signal(SIGHUP);
  ASSERT_TRUE(poll_until(
      [&] { return contains(http_get(p.admin_port(), "/status").body, "\"outcome\":\"rejected\""); },
      kDeadline))
      << p.log_text();
  std::string status = http_get(p.admin_port(), "/status").body;
  EXPECT_TRUE(contains(status, "\"source\":\"sighup\"")) << status;
  EXPECT_TRUE(std::regex_search(status, std::regex("pgtandem\\.toml:\\d+:\\d+: [^\"]*drain_timeout_ms")))
      << status;
  EXPECT_EQ(query_value(c.get(), "SELECT 'still serving'"), "still serving");
  EXPECT_EQ(readyz(p), 200);

  // POST /reload answers rejected with the errors.
  HttpResponse r = post(p, "/reload", kToken);
  EXPECT_EQ(r.status, 422) << r.body;
  EXPECT_TRUE(contains(r.body, "\"outcome\":\"rejected\"")) << r.body;
  EXPECT_TRUE(contains(r.body, "drain_timeout_ms")) << r.body;

  // So does `pgtandem reload` (exit 1, errors on stderr).
  ProcessResult rr =
      run_process({pgtandem_binary(), "reload", "--admin", admin_address(p), "--token", kToken});
  EXPECT_EQ(rr.exit_code, 1) << rr.describe();
  EXPECT_TRUE(contains(rr.err, "reload: rejected")) << rr.describe();
  EXPECT_TRUE(contains(rr.err, "drain_timeout_ms")) << rr.describe();
  ProcessResult st = run_process({pgtandem_binary(), "status", "--admin", admin_address(p)});
  EXPECT_EQ(st.exit_code, 0) << st.describe();
  EXPECT_TRUE(contains(st.out, "last rejected")) << st.out;
  EXPECT_TRUE(contains(st.out, "drain_timeout_ms")) << st.out;

  // A valid change: applied, through the CLI; the token from the config itself.
  // (pgtandem's own file watch applies the same file 150 ms after the write: on a loaded machine
  // it can beat the CLI's process start, and the CLI then finds it unchanged. Either way the
  // change is applied once, with the same diff.)
  write_file(p.config_path(), good + "\n[log]\nlevel = \"warn\"\n");
  rr = run_process({pgtandem_binary(), "reload", "--config", p.config_path()});
  EXPECT_EQ(rr.exit_code, 0) << rr.describe();
  status = http_get(p.admin_port(), "/status").body;
  EXPECT_TRUE(contains(status, "\"generation\":2")) << status;
  if (contains(rr.out, "reload: unchanged")) {
    EXPECT_TRUE(contains(p.log_text(), "source=file_watch outcome=applied generation=2"))
        << p.log_text();
    EXPECT_TRUE(contains(p.log_text(), "log.level: info -> warn")) << p.log_text();
  } else {
    EXPECT_TRUE(contains(rr.out, "reload: applied")) << rr.describe();
    EXPECT_TRUE(contains(rr.out, "log.level: info -> warn")) << rr.describe();
    EXPECT_TRUE(contains(status, "\"outcome\":\"applied\"")) << status;
  }
  EXPECT_EQ(query_value(c.get(), "SELECT 'after'"), "after");
}

TEST_F(AdminTest, ReadyzFollowsThePrimary) {
  ProxyProcess& p = start_proxy(options());
  ASSERT_TRUE(poll_until([&] { return readyz(p) == 200; }, kDeadline)) << p.log_text();
  EXPECT_EQ(http_get(p.admin_port(), "/healthz").status, 200);

  old_cluster().stop();
  const bool down = poll_until([&] { return readyz(p) == 503; }, kDeadline);
  const HttpResponse r = http_get(p.admin_port(), "/readyz");
  const std::string status = http_get(p.admin_port(), "/status").body;
  const int healthz = http_get(p.admin_port(), "/healthz").status;
  old_cluster().start();
  ASSERT_TRUE(down) << p.log_text();
  EXPECT_TRUE(contains(r.body, "primary old")) << r.body;
  EXPECT_TRUE(std::regex_search(status, std::regex("\"name\":\"old\"[^}]*\"health\":\"down\"")))
      << status;
  EXPECT_EQ(healthz, 200);  // alive, just not ready
  EXPECT_TRUE(poll_until([&] { return readyz(p) == 200; }, kDeadline)) << p.log_text();
}

TEST_F(AdminTest, StatementLogIsOffByDefaultAndOneLinePerRequestWhenOn) {
  ProxyProcess& quiet = start_proxy(options());
  {
    ConnPtr c = connect(quiet.endpoint().conninfo());
    query_value(c.get(), "SELECT 'quiet_marker_1'");
  }
  ProxyOptions o = options();
  o.extra_toml = "[log]\nstatements = true\n";
  ProxyProcess& loud = start_proxy(o);
  {
    ConnPtr c = connect(loud.endpoint().conninfo());
    query_value(c.get(), "SELECT 'loud_marker_1'");
    query_value(c.get(), "SELECT '" + std::string(3000, 'x') + "'");
    ResultPtr r(PQexecParams(c.get(), "SELECT 'loud_marker_2' || $1::text", 1, nullptr,
                             std::vector<const char*>{"a"}.data(), nullptr, nullptr, 0));
    ASSERT_EQ(PQresultStatus(r.get()), PGRES_TUPLES_OK);
  }
  EXPECT_TRUE(poll_until([&] { return contains(loud.log_text(), "loud_marker_2"); }, kDeadline));
  const std::string log = loud.log_text();
  std::istringstream in(log);
  int marker_lines = 0;
  for (std::string line; std::getline(in, line);) {
    if (contains(line, "loud_marker_1")) {
      ++marker_lines;
      EXPECT_TRUE(contains(line, "level=info")) << line;
      EXPECT_TRUE(contains(line, "session=")) << line;
      EXPECT_TRUE(contains(line, "target=old")) << line;
    }
    if (contains(line, "xxxxxxxxxx")) {
      EXPECT_LT(line.size(), 1300u) << "statement cut at 1 KB";
      EXPECT_TRUE(contains(line, "truncated=true")) << line;
    }
  }
  EXPECT_EQ(marker_lines, 1) << log;
  EXPECT_FALSE(contains(quiet.log_text(), "quiet_marker_1")) << quiet.log_text();
}

TEST_F(AdminTest, BreakerResetClosesAnOpenBreaker) {
  const std::string table = unique("only_on_old");
  old_cluster().exec("CREATE TABLE " + table + " AS SELECT 1 AS v");
  ProxyOptions o = options();
  // Every read goes to new, where the table is missing: each one fails there (and falls back to
  // old), until the breaker opens; a long cool-down keeps it open.
  o.extra_toml =
      "[[routes]]\npercent = 100\n[breaker]\nmin_requests = 5\nerror_rate = 0.5\n"
      "cooldown_ms = 3600000\n";
  ProxyProcess& p = start_proxy(o);
  {
    ConnPtr c = connect(p.endpoint().conninfo());
    for (int i = 0; i < 20; ++i) EXPECT_EQ(query_value(c.get(), "SELECT v FROM " + table), "1");
  }
  const std::string before = http_get(p.admin_port(), "/status").body;
  old_cluster().exec("DROP TABLE " + table);
  ASSERT_TRUE(contains(before, "\"breakers\":{\"old\":\"closed\",\"new\":\"open\"}")) << before;
  ProcessResult st = run_process({pgtandem_binary(), "status", "--admin", admin_address(p)});
  EXPECT_TRUE(contains(st.out, "breaker open")) << st.out;

  EXPECT_EQ(post(p, "/breaker/reset?target=new", "").status, 401);
  const HttpResponse r = post(p, "/breaker/reset?target=new", kToken);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(contains(r.body, "\"reset\":1")) << r.body;
  EXPECT_TRUE(contains(r.body, "\"new\":\"closed\"")) << r.body;
  const std::string after = http_get(p.admin_port(), "/status").body;
  EXPECT_TRUE(contains(after, "\"breakers\":{\"old\":\"closed\",\"new\":\"closed\"}")) << after;
  EXPECT_EQ(p.metrics().sum("pgtandem_breaker_state", {{"target", "new"}}), 0);
  EXPECT_TRUE(contains(p.log_text(), "circuit breakers reset by the operator")) << p.log_text();
}

// --- Shutdown ---------------------------------------------------------------------------------

class ShutdownTest : public AdminTest {
 protected:
  void SetUp() override {
    AdminTest::SetUp();
    dir_ = std::make_unique<TempDir>("pgtandem-it-shutdown");
    table_ = unique("drain");
    for (PgCluster* c : {&old_cluster(), &new_cluster()}) {
      c->exec("CREATE TABLE " + table_ + " (id serial PRIMARY KEY, who text, n int)");
    }
  }
  void TearDown() override {
    for (PgCluster* c : {&old_cluster(), &new_cluster()}) {
      try {
        c->exec("DROP TABLE IF EXISTS " + table_);
      } catch (const std::exception&) {
      }
    }
    AdminTest::TearDown();
  }
  ProxyOptions mirror_options(uint32_t drain_timeout_ms) {
    ProxyOptions o = options();
    o.section_lines[""].push_back("mirror_writes = true");
    o.extra_toml = "[mirror]\njournal_path = \"" + dir_->file("journal") +
                   "\"\n[shutdown]\ndrain_timeout_ms = " + std::to_string(drain_timeout_ms) + "\n";
    return o;
  }
  std::string count(PgCluster& c) { return c.query_value("SELECT count(*) FROM " + table_); }
  static bool wait_exit(ProxyProcess& p, milliseconds timeout) {
    return poll_until([&] { return !p.alive(); }, timeout, milliseconds(50));
  }

  std::unique_ptr<TempDir> dir_;
  std::string table_;
};

TEST_F(ShutdownTest, SigtermLetsTransactionsFinishAndClosesIdleSessions) {
  ProxyProcess& p = start_proxy(mirror_options(60000));
  ConnPtr idle = connect(p.endpoint().conninfo());
  ConnPtr busy = connect(p.endpoint().conninfo());
  EXPECT_EQ(query_value(idle.get(), "SELECT 1"), "1");
  exec(busy.get(), "BEGIN");
  exec(busy.get(), "INSERT INTO " + table_ + " (who, n) VALUES ('busy', 1)");
  ASSERT_TRUE(poll_until([&] { return readyz(p) == 200; }, kDeadline));

  p.send_signal(SIGTERM);
  // Draining: not ready, no new connections, the idle session is closed with 57P01.
  ASSERT_TRUE(poll_until([&] { return readyz(p) == 503; }, kDeadline)) << p.log_text();
  ASSERT_TRUE(poll_until([&] { return !tcp_port_listening(p.port()); }, kDeadline));
  ConnPtr late = connect_raw(p.endpoint().conninfo("connect_timeout=5"));
  EXPECT_NE(PQstatus(late.get()), CONNECTION_OK);
  ASSERT_TRUE(poll_until(
      [&] {
        return p.metrics().sum("pgtandem_drain_sessions_closed_total") >= 1;
      },
      kDeadline))
      << p.log_text();
  {
    ResultPtr r(PQexec(idle.get(), "SELECT 2"));
    EXPECT_NE(PQresultStatus(r.get()), PGRES_TUPLES_OK);
    const std::string err = PQerrorMessage(idle.get());
    EXPECT_TRUE(contains(err, "terminating connection due to administrator command")) << err;
  }
  EXPECT_TRUE(contains(http_get(p.admin_port(), "/status").body, "\"draining\":true"));

  // The transaction in flight goes on and commits; then its session is closed too.
  exec(busy.get(), "INSERT INTO " + table_ + " (who, n) VALUES ('busy', 2)");
  {
    ResultPtr r(PQexec(busy.get(), "COMMIT"));
    EXPECT_EQ(PQresultStatus(r.get()), PGRES_COMMAND_OK) << PQerrorMessage(busy.get());
  }
  ASSERT_TRUE(wait_exit(p, kDeadline)) << p.log_text();
  EXPECT_EQ(exit_code(p), 0) << p.exit_description();
  {
    ResultPtr r(PQexec(busy.get(), "SELECT 3"));
    EXPECT_NE(PQresultStatus(r.get()), PGRES_TUPLES_OK);
  }
  EXPECT_EQ(count(old_cluster()), "2");
  // The mirror applied the committed transaction before pgtandem exited.
  EXPECT_EQ(count(new_cluster()), "2") << p.log_text();
  EXPECT_TRUE(contains(p.log_text(), "drain finished")) << p.log_text();
}

TEST_F(ShutdownTest, SigtermDuringPgbenchAbortsNoTransactionMidway) {
  ProxyProcess& p = start_proxy(mirror_options(60000));
  const std::string script = dir_->file("bench.sql");
  write_file(script, "BEGIN;\nINSERT INTO " + table_ +
                         " (who, n) VALUES ('bench', 0);\nSELECT pg_sleep(0.005);\n"
                         "UPDATE " + table_ + " SET n = n + 1 WHERE id = lastval();\nCOMMIT;\n");
  std::chrono::steady_clock::time_point started = Clock::now();
  auto bench = std::async(std::launch::async, [&] {
    return run_pgbench(p.endpoint(), {"-n", "-c", "4", "-T", "60", "-f", script}, "postgres",
                       milliseconds(180000));
  });
  // Let transactions flow first.
  ASSERT_TRUE(poll_until([&] { return std::stol(count(old_cluster())) >= 20; }, milliseconds(60000)));
  p.send_signal(SIGTERM);
  ProcessResult r = bench.get();
  ASSERT_TRUE(wait_exit(p, kDeadline)) << p.log_text();
  EXPECT_EQ(exit_code(p), 0) << p.exit_description();
  EXPECT_LT(Clock::now() - started, std::chrono::seconds(150));

  // Every client that was cut off was cut off before a transaction began (command 0, BEGIN),
  // never inside one.
  const std::string all = r.out + r.err;
  if (std::getenv("PGTANDEM_IT_VERBOSE") != nullptr) std::fprintf(stderr, "pgbench:\n%s\n", all.c_str());
  std::regex aborted("aborted in command (\\d+)");
  int aborts = 0;
  for (std::sregex_iterator it(all.begin(), all.end(), aborted), end; it != end; ++it) {
    ++aborts;
    EXPECT_EQ((*it)[1].str(), "0") << all;
  }
  EXPECT_GE(aborts, 1) << all;
  // (The message is the 57P01 FATAL, or a reset when the client's next BEGIN was already on its
  // way when the connection closed, as with the server itself.)
  // Every committed transaction is on old, and on new too (the mirror drained before the exit)
  // or in the journal.
  const std::string on_old = count(old_cluster());
  const std::string on_new = count(new_cluster());
  if (on_old != on_new) {
    EXPECT_TRUE(contains(read_file(dir_->file("journal")), table_))
        << "old " << on_old << " new " << on_new << "\n"
        << p.log_text();
  }
  // Each transaction inserted a row and updated it once: no half transaction on old.
  EXPECT_EQ(old_cluster().query_value("SELECT count(*) FROM " + table_ + " WHERE n < 1"), "0");
}

TEST_F(ShutdownTest, SigintIsFast) {
  ProxyProcess& p = start_proxy(mirror_options(60000));
  ConnPtr busy = connect(p.endpoint().conninfo());
  exec(busy.get(), "BEGIN");
  exec(busy.get(), "INSERT INTO " + table_ + " (who, n) VALUES ('sigint', 1)");
  p.send_signal(SIGINT);
  ASSERT_TRUE(wait_exit(p, kDeadline)) << p.log_text();
  EXPECT_EQ(exit_code(p), 0) << p.exit_description();
  ResultPtr r(PQexec(busy.get(), "COMMIT"));
  EXPECT_NE(PQresultStatus(r.get()), PGRES_COMMAND_OK);
  // The uncommitted transaction was rolled back by the server.
  EXPECT_TRUE(poll_until([&] { return count(old_cluster()) == "0"; }, kDeadline));
}

TEST_F(ShutdownTest, SecondSigtermIsFast) {
  ProxyProcess& p = start_proxy(mirror_options(600000));
  ConnPtr busy = connect(p.endpoint().conninfo());
  exec(busy.get(), "BEGIN");
  p.send_signal(SIGTERM);
  ASSERT_TRUE(poll_until([&] { return readyz(p) == 503; }, kDeadline)) << p.log_text();
  EXPECT_TRUE(p.alive());  // the transaction holds the drain
  p.send_signal(SIGTERM);
  ASSERT_TRUE(wait_exit(p, kDeadline)) << p.log_text();
  EXPECT_EQ(exit_code(p), 0) << p.exit_description();
}

TEST_F(ShutdownTest, DrainTimeoutEndsTheWait) {
  ProxyProcess& p = start_proxy(mirror_options(1500));
  ConnPtr busy = connect(p.endpoint().conninfo());
  exec(busy.get(), "BEGIN");
  p.send_signal(SIGTERM);
  ASSERT_TRUE(wait_exit(p, kDeadline)) << p.log_text();
  EXPECT_EQ(exit_code(p), 0) << p.exit_description();
  EXPECT_TRUE(contains(p.log_text(), "sessions_left=1")) << p.log_text();
}

}  // namespace
}  // namespace pgtandem::it

// Hot reload of the config file (issue 4): SIGHUP and the file watch (including a Kubernetes
// ConfigMap-style symlink swap), invalid files rejected with line and column while the running
// config keeps serving, unchanged files ignored, the audit log, and sessions that stay connected
// across reloads.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <regex>
#include <sstream>

#include "tests/integration/fixture.h"

namespace pgtandem::it {
namespace {

constexpr milliseconds kDeadline{15000};

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(line);
  return out;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// 1-based number of the first line of `text` that contains `needle`; 0 if none.
int line_of(const std::string& text, const std::string& needle) {
  std::istringstream in(text);
  int n = 0;
  for (std::string line; std::getline(in, line);) {
    ++n;
    if (contains(line, needle)) return n;
  }
  return 0;
}

class ReloadTest : public ProxyTest {
 protected:
  void SetUp() override {
    ProxyTest::SetUp();
    dir_ = std::make_unique<TempDir>("pgtandem-it-reload");
    audit_ = dir_->file("audit.log");
  }

  ProxyOptions options() {
    ProxyOptions o = Env::get().default_proxy_options();
    o.extra_args = {"--audit-log", audit_};
    return o;
  }

  static double reloads(const ProxyProcess& p, const std::string& outcome) {
    return p.metrics().sum("pgtandem_config_reloads_total", {{"outcome", outcome}});
  }

  static std::string config_hash(const ProxyProcess& p) {
    const Metrics m = p.metrics();
    for (const auto& s : m.samples())
      if (s.name == "pgtandem_config_info" && s.value == 1) return s.labels.at("hash");
    return "";
  }

  static double generation(const ProxyProcess& p) {
    return p.metrics().sum("pgtandem_config_generation");
  }

  // Waits until pgtandem_config_reloads_total{outcome} reaches `count`.
  static bool wait_reloads(const ProxyProcess& p, const std::string& outcome, double count) {
    return poll_until([&] { return reloads(p, outcome) >= count; }, kDeadline, milliseconds(25));
  }

  std::vector<std::string> audit() const {
    if (access(audit_.c_str(), F_OK) != 0) return {};
    return split_lines(read_file(audit_));
  }

  static void touch(const std::string& path) {
    // Both times, as touch(1): inotify reports IN_ATTRIB.
    ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), nullptr, 0), 0) << strerror(errno);
  }

  static void expect_serving(ProxyProcess& p) {
    ConnPtr c = connect(p.endpoint().conninfo());
    EXPECT_EQ(query_value(c.get(), "SELECT 40 + 2"), "42");
  }

  std::unique_ptr<TempDir> dir_;
  std::string audit_;
};

TEST_F(ReloadTest, SighupAppliesAValidChange) {
  ProxyProcess& p = start_proxy(options());
  ConnPtr session = connect(p.endpoint().conninfo());
  ASSERT_EQ(query_value(session.get(), "SELECT 1"), "1");
  const std::string hash1 = config_hash(p);
  ASSERT_EQ(hash1.size(), 16u) << p.metrics().text();
  EXPECT_EQ(generation(p), 1);
  auto entries = audit();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_TRUE(contains(entries[0], "\"source\":\"startup\"")) << entries[0];
  EXPECT_TRUE(contains(entries[0], "\"hash_after\":\"" + hash1 + "\"")) << entries[0];

  p.options().extra_toml =
      "[breaker]\nerror_rate = 0.3\n\n[[routes]]\nname = \"canary\"\ntarget = \"primary\"\n";
  p.write_config();
  p.send_signal(SIGHUP);
  ASSERT_TRUE(wait_reloads(p, "applied", 1)) << tail(p.log_text());
  EXPECT_EQ(reloads(p, "applied"), 1);
  EXPECT_EQ(reloads(p, "invalid"), 0);
  const std::string hash2 = config_hash(p);
  EXPECT_EQ(hash2.size(), 16u);
  EXPECT_NE(hash2, hash1);
  EXPECT_EQ(generation(p), 2);
  // The old hash's series is gone: exactly one config_info.
  int infos = 0;
  const Metrics m = p.metrics();
  for (const auto& s : m.samples()) infos += s.name == "pgtandem_config_info";
  EXPECT_EQ(infos, 1);

  entries = audit();
  ASSERT_EQ(entries.size(), 2u) << read_file(audit_);
  const std::string& e = entries[1];
  EXPECT_TRUE(contains(e, "\"source\":\"sighup\"")) << e;
  EXPECT_TRUE(contains(e, "\"outcome\":\"applied\"")) << e;
  EXPECT_TRUE(contains(e, "\"hash_before\":\"" + hash1 + "\",\"hash_after\":\"" + hash2 + "\""))
      << e;
  EXPECT_TRUE(contains(e, "\"generation\":2")) << e;
  EXPECT_TRUE(contains(e, "breaker.error_rate: 0.2 -> 0.3")) << e;
  EXPECT_TRUE(contains(e, "routes: added \\\"canary\\\"")) << e;
  EXPECT_TRUE(
      std::regex_search(e, std::regex(R"("time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")")))
      << e;
  EXPECT_TRUE(contains(p.log_text(), "msg=\"config applied\" source=sighup"));

  // The session opened before the reload goes on.
  EXPECT_EQ(query_value(session.get(), "SELECT 2"), "2");
  expect_serving(p);
}

TEST_F(ReloadTest, InvalidFilesAreRejectedAndTheRunningConfigStays) {
  ProxyProcess& p = start_proxy(options());
  ConnPtr session = connect(p.endpoint().conninfo());
  ASSERT_EQ(query_value(session.get(), "SELECT 1"), "1");
  const std::string hash1 = config_hash(p);

  // A TOML syntax error.
  p.options().extra_toml = "[routes\nname = \"x\"\n";
  p.write_config();
  const int syntax_line = line_of(p.config_text(), "[routes");
  ASSERT_GT(syntax_line, 0);
  p.send_signal(SIGHUP);
  ASSERT_TRUE(wait_reloads(p, "invalid", 1)) << tail(p.log_text());

  // A value out of range, in a rule.
  p.options().extra_toml = "[[routes]]\nname = \"canary\"\npercent = 150\n";
  p.write_config();
  const int percent_line = line_of(p.config_text(), "percent = 150");
  ASSERT_GT(percent_line, 0);
  p.send_signal(SIGHUP);
  ASSERT_TRUE(wait_reloads(p, "invalid", 2)) << tail(p.log_text());

  // A value of an existing key.
  p.options().extra_toml = "[log]\nlevel = \"loud\"\n";
  p.write_config();
  const int level_line = line_of(p.config_text(), "level = \"loud\"");
  p.send_signal(SIGHUP);
  ASSERT_TRUE(wait_reloads(p, "invalid", 3)) << tail(p.log_text());

  EXPECT_EQ(reloads(p, "applied"), 0);
  EXPECT_EQ(config_hash(p), hash1);
  EXPECT_EQ(generation(p), 1);

  // Each error is logged with file:line:column.
  const std::string log = p.log_text();
  const std::string file = p.config_path();
  EXPECT_TRUE(std::regex_search(log, std::regex("msg=\"config error\".*error=\"" + file + ":" +
                                                std::to_string(syntax_line) + ":[0-9]+: ")))
      << tail(log);
  EXPECT_TRUE(std::regex_search(
      log,
      std::regex("error=\"" + file + ":" + std::to_string(percent_line) + ":[0-9]+: [^\"]*150")))
      << tail(log);
  EXPECT_TRUE(std::regex_search(
      log,
      std::regex("error=\"" + file + ":" + std::to_string(level_line) + ":[0-9]+: [^\"]*loud")))
      << tail(log);

  // The audit log has each rejection with its errors and the running generation.
  auto entries = audit();
  ASSERT_EQ(entries.size(), 4u) << read_file(audit_);
  for (size_t i = 1; i < entries.size(); ++i) {
    EXPECT_TRUE(contains(entries[i], "\"outcome\":\"invalid\"")) << entries[i];
    EXPECT_TRUE(contains(entries[i], "\"generation\":1")) << entries[i];
    EXPECT_TRUE(contains(entries[i], "\"hash_before\":\"" + hash1 + "\"")) << entries[i];
    EXPECT_TRUE(contains(entries[i], "\"errors\":[\"" + file + ":")) << entries[i];
  }
  EXPECT_TRUE(contains(entries[2], file + ":" + std::to_string(percent_line) + ":")) << entries[2];

  // Still serving with the old config: the open session and a new one.
  EXPECT_EQ(query_value(session.get(), "SELECT 3"), "3");
  expect_serving(p);

  // Fixing the file applies it.
  p.options().extra_toml = "[[routes]]\nname = \"canary\"\npercent = 0\n";
  p.write_config();
  p.send_signal(SIGHUP);
  ASSERT_TRUE(wait_reloads(p, "applied", 1)) << tail(p.log_text());
  EXPECT_TRUE(contains(audit().back(), "routes: added \\\"canary\\\"")) << audit().back();
  EXPECT_EQ(query_value(session.get(), "SELECT 4"), "4");
}

TEST_F(ReloadTest, FileChangeReloadsWithoutSighup) {
  ProxyProcess& p = start_proxy(options());
  p.options().extra_toml = "[breaker]\nmin_requests = 7\n";
  p.write_config();  // write-then-rename, as editors do
  ASSERT_TRUE(wait_reloads(p, "applied", 1)) << tail(p.log_text());
  auto entries = audit();
  ASSERT_EQ(entries.size(), 2u) << read_file(audit_);
  EXPECT_TRUE(contains(entries[1], "\"source\":\"file_watch\"")) << entries[1];
  EXPECT_TRUE(contains(entries[1], "breaker.min_requests: 20 -> 7")) << entries[1];
}

// Kubernetes mounts a ConfigMap key as <dir>/pgtandem.toml -> ..data/pgtandem.toml with
// ..data -> ..<timestamp>/; an update writes a new timestamped directory, points ..data_tmp at it,
// renames it over ..data and removes the old directory.
TEST_F(ReloadTest, ConfigMapSymlinkSwapReloadsWithoutSighup) {
  namespace fs = std::filesystem;
  const std::string mount = dir_->file("configmap");
  fs::create_directory(mount);
  ProxyOptions o = options();
  o.config_file = mount + "/pgtandem.toml";
  auto p = std::make_unique<ProxyProcess>(o);
  p->reserve_ports();
  const std::string v1 = mount + "/..2026_11_20_10_00_00.000000001";
  fs::create_directory(v1);
  write_file(v1 + "/pgtandem.toml", p->render_config());
  fs::create_directory_symlink(fs::path(v1).filename(), mount + "/..data");
  fs::create_symlink("..data/pgtandem.toml", mount + "/pgtandem.toml");
  p->start();
  ConnPtr session = connect(p->endpoint().conninfo());
  ASSERT_EQ(query_value(session.get(), "SELECT 1"), "1");
  const std::string hash1 = config_hash(*p);

  p->options().extra_toml = "[breaker]\nerror_rate = 0.4\n";
  const std::string v2 = mount + "/..2026_11_20_10_05_00.000000002";
  fs::create_directory(v2);
  write_file(v2 + "/pgtandem.toml", p->render_config());
  fs::create_directory_symlink(fs::path(v2).filename(), mount + "/..data_tmp");
  fs::rename(mount + "/..data_tmp", mount + "/..data");
  fs::remove_all(v1);

  EXPECT_TRUE(wait_reloads(*p, "applied", 1)) << tail(p->log_text());
  EXPECT_NE(config_hash(*p), hash1);
  auto entries = audit();
  ASSERT_EQ(entries.size(), 2u) << read_file(audit_);
  EXPECT_TRUE(contains(entries[1], "\"source\":\"file_watch\"")) << entries[1];
  EXPECT_TRUE(contains(entries[1], "breaker.error_rate: 0.2 -> 0.4")) << entries[1];
  EXPECT_EQ(query_value(session.get(), "SELECT 2"), "2");
  expect_serving(*p);
  if (HasFailure()) dump_proxy_log(*p, "configmap");
  EXPECT_TRUE(p->stop());
}

TEST_F(ReloadTest, TouchWithoutChangeIsUnchanged) {
  ProxyProcess& p = start_proxy(options());
  const std::string hash1 = config_hash(p);
  touch(p.config_path());
  ASSERT_TRUE(wait_reloads(p, "unchanged", 1)) << tail(p.log_text());
  // SIGHUP with the same bytes: unchanged too.
  p.send_signal(SIGHUP);
  ASSERT_TRUE(wait_reloads(p, "unchanged", 2)) << tail(p.log_text());
  std::this_thread::sleep_for(milliseconds(400));  // anything else it might do, it has done
  EXPECT_EQ(reloads(p, "applied"), 0);
  EXPECT_EQ(reloads(p, "invalid"), 0);
  EXPECT_EQ(reloads(p, "unchanged"), 2);
  EXPECT_EQ(config_hash(p), hash1);
  EXPECT_EQ(generation(p), 1);
  EXPECT_EQ(audit().size(), 1u) << read_file(audit_);  // the startup entry only
}

TEST_F(ReloadTest, SessionsStayConnectedAcrossReloads) {
  ProxyProcess& p = start_proxy(options());
  HealthySession healthy(p.endpoint().conninfo());
  healthy.start();
  ASSERT_TRUE(healthy.wait_progress(5)) << healthy.first_error();
  ConnPtr in_tx = connect(p.endpoint().conninfo());
  exec(in_tx.get(), "BEGIN");
  ASSERT_EQ(query_value(in_tx.get(), "SELECT 1"), "1");
  const std::string pid = query_value(in_tx.get(), "SELECT pg_backend_pid()");

  for (int i = 1; i <= 3; ++i) {
    p.options().extra_toml = "[[routes]]\nname = \"canary\"\npercent = " + std::to_string(i) + "\n";
    p.write_config();
    p.send_signal(SIGHUP);
    ASSERT_TRUE(wait_reloads(p, "applied", i)) << tail(p.log_text());
    ASSERT_TRUE(healthy.wait_progress(5)) << healthy.first_error();
    // Inside the transaction that was open at the reload: same backend, still going.
    EXPECT_EQ(query_value(in_tx.get(), "SELECT pg_backend_pid()"), pid);
  }
  exec(in_tx.get(), "COMMIT");
  EXPECT_EQ(query_value(in_tx.get(), "SELECT 5"), "5");
  healthy.stop();
  EXPECT_EQ(healthy.errors(), 0) << healthy.first_error();
  EXPECT_EQ(generation(p), 4);
  EXPECT_TRUE(contains(audit().back(), "routes[canary].percent: 2 -> 3")) << audit().back();
}

}  // namespace
}  // namespace pgtandem::it

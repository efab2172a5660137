// Config reload without a server: the Reloader against files in a temp dir (SIGHUP-style reloads,
// the inotify watch with rename and ConfigMap-style symlink swaps), the audit line format, and the
// metrics it keeps.
#include "proxy/control/reload.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "proxy/telemetry/log.h"
#include "proxy/telemetry/metrics.h"

namespace pgtandem::proxy {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "pgtandem-reload-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data()) != nullptr ? tmpl : std::string();
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// As touch(1) does: both times, which is what makes inotify report IN_ATTRIB (mtime alone is
// IN_MODIFY).
void touch(const std::string& path) {
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), nullptr, 0), 0);
}

void write(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

// Write-then-rename, as editors and the integration harness do.
void replace(const std::string& path, const std::string& text) {
  write(path + ".tmp", text);
  fs::rename(path + ".tmp", path);
}

std::vector<std::string> lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::string config_text(int percent, const std::string& extra = "") {
  return "primary = \"old\"\n[targets.old]\nport = 5432\n[targets.new]\nport = 5433\n" + extra +
         "\n[[routes]]\nname = \"canary\"\npercent = " + std::to_string(percent) + "\n";
}

// A value in the Prometheus text, "" if absent.
std::string sample(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(series + " ", 0) == 0) return line.substr(series.size() + 1);
  }
  return "";
}

class ReloaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    for (const char* name : {"old", "new"}) {
      TargetEndpoint t;
      t.name = name;
      state_.targets.push_back(t);
    }
    state_.metrics = &metrics_;
    metrics_.add_worker(&stats_);
  }

  // Loads `path` as main.cc does and publishes generation 1.
  void start(const std::string& path, std::chrono::milliseconds debounce = 50ms) {
    auto loaded = config::load_file(path);
    ASSERT_TRUE(loaded.ok()) << (loaded.errors.empty() ? "" : loaded.errors[0].to_string());
    Reloader::Options o;
    o.config_path = path;
    o.audit_log_path = audit_;
    o.debounce = debounce;
    reloader_ = std::make_unique<Reloader>(io_, state_, o);
    std::string error;
    ASSERT_TRUE(reloader_->publish_initial(
        std::make_shared<const config::Config>(std::move(*loaded.config)), loaded.source_hash,
        &error))
        << error;
  }

  uint64_t generation() const { return state_.snapshot_generation.load(); }

  // Runs the io_context until the generation reaches `g` or `timeout` passes.
  bool run_until_generation(uint64_t g, std::chrono::milliseconds timeout = 3000ms) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (generation() < g && std::chrono::steady_clock::now() < until) {
      io_.restart();
      io_.run_for(20ms);
    }
    return generation() >= g;
  }

  void run_for(std::chrono::milliseconds d) {
    io_.restart();
    io_.run_for(d);
  }

  TempDir dir_;
  std::string audit_ = dir_.file("audit.log");
  boost::asio::io_context io_{1};
  ServerState state_;
  Metrics metrics_{{"old", "new"}};
  WorkerStats stats_;
  std::unique_ptr<Reloader> reloader_;
};

TEST(AuditJson, Format) {
  AuditEntry e;
  e.time = std::chrono::system_clock::time_point(std::chrono::milliseconds(1700000000123));
  e.source = ReloadSource::kSighup;
  e.outcome = ConfigReloadOutcome::kApplied;
  e.config_path = "/etc/pgtandem/pgtandem.toml";
  e.hash_before = "0123456789abcdef";
  e.hash_after = "fedcba9876543210";
  e.generation = 2;
  e.changes = {"routes[canary].percent: 5 -> 10", "routes: added \"x\""};
  e.restart_required = {};
  EXPECT_EQ(audit_json(e),
            "{\"time\":\"2023-11-14T22:13:20.123Z\",\"source\":\"sighup\",\"outcome\":\"applied\","
            "\"config\":\"/etc/pgtandem/pgtandem.toml\",\"hash_before\":\"0123456789abcdef\","
            "\"hash_after\":\"fedcba9876543210\",\"generation\":2,"
            "\"changes\":[\"routes[canary].percent: 5 -> 10\",\"routes: added \\\"x\\\"\"],"
            "\"restart_required\":[],\"errors\":[]}");
}

TEST(AuditJson, EscapesControlCharacters) {
  AuditEntry e;
  e.outcome = ConfigReloadOutcome::kInvalid;
  e.source = ReloadSource::kFileWatch;
  e.errors = {"a.toml:1:2: bad\tvalue\n\x01"};
  const std::string j = audit_json(e);
  EXPECT_NE(j.find("\"outcome\":\"invalid\""), std::string::npos);
  EXPECT_NE(j.find("\"source\":\"file_watch\""), std::string::npos);
  EXPECT_NE(j.find("\"errors\":[\"a.toml:1:2: bad\\tvalue\\n\\u0001\"]"), std::string::npos) << j;
}

TEST_F(ReloaderTest, StartupPublishesGenerationOneAndAudits) {
  const std::string path = dir_.file("pgtandem.toml");
  write(path, config_text(5));
  start(path);
  EXPECT_EQ(generation(), 1u);
  auto snap = state_.snapshot.load();
  ASSERT_TRUE(snap);
  EXPECT_EQ(snap->generation, 1u);
  EXPECT_EQ(snap->primary, 0u);
  EXPECT_EQ(snap->hash, config::config_hash(config_text(5)));
  ASSERT_TRUE(snap->rules);
  EXPECT_EQ(snap->rules->size(), 1u);
  auto audit = lines(audit_);
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_NE(audit[0].find("\"source\":\"startup\""), std::string::npos) << audit[0];
  EXPECT_NE(audit[0].find("\"generation\":1"), std::string::npos) << audit[0];
  const std::string m = metrics_.serialize();
  EXPECT_EQ(sample(m, "pgtandem_config_generation"), "1");
  EXPECT_EQ(sample(m, "pgtandem_config_info{hash=\"" + snap->hash + "\"}"), "1");
}

TEST_F(ReloaderTest, AppliedInvalidUnchanged) {
  const std::string path = dir_.file("pgtandem.toml");
  write(path, config_text(5));
  start(path);
  const std::string hash1 = state_.snapshot.load()->hash;

  replace(path, config_text(10, "[breaker]\nerror_rate = 0.3\n[log]\nlevel = \"warn\"\n"));
  EXPECT_EQ(reloader_->reload(ReloadSource::kSighup), ConfigReloadOutcome::kApplied);
  EXPECT_EQ(generation(), 2u);
  auto snap = state_.snapshot.load();
  EXPECT_EQ(snap->generation, 2u);
  EXPECT_EQ(snap->config->routes.at(0).percent, 10);
  EXPECT_EQ(snap->config->breaker.error_rate, 0.3);
  EXPECT_FALSE(log::enabled(log::Level::kInfo));  // applied at once
  log::configure(log::Level::kInfo, log::Format::kLogfmt);
  const std::string hash2 = snap->hash;
  EXPECT_NE(hash1, hash2);

  // Invalid: a value out of range, and a syntax error. Nothing changes.
  replace(path, config_text(150));
  EXPECT_EQ(reloader_->reload(ReloadSource::kSighup), ConfigReloadOutcome::kInvalid);
  replace(path, "primary = \n");
  EXPECT_EQ(reloader_->reload(ReloadSource::kSighup), ConfigReloadOutcome::kInvalid);
  EXPECT_EQ(generation(), 2u);
  EXPECT_EQ(state_.snapshot.load(), snap);

  // Back to the running bytes: unchanged, no audit entry.
  replace(path, config_text(10, "[breaker]\nerror_rate = 0.3\n[log]\nlevel = \"warn\"\n"));
  EXPECT_EQ(reloader_->reload(ReloadSource::kSighup), ConfigReloadOutcome::kUnchanged);
  EXPECT_EQ(generation(), 2u);

  auto audit = lines(audit_);
  ASSERT_EQ(audit.size(), 4u);  // startup, applied, invalid, invalid
  EXPECT_NE(audit[1].find("\"outcome\":\"applied\""), std::string::npos) << audit[1];
  EXPECT_NE(audit[1].find("\"hash_before\":\"" + hash1 + "\",\"hash_after\":\"" + hash2 + "\""),
            std::string::npos)
      << audit[1];
  EXPECT_NE(audit[1].find("routes[canary].percent: 5 -> 10"), std::string::npos) << audit[1];
  EXPECT_NE(audit[1].find("breaker.error_rate: 0.2 -> 0.3"), std::string::npos) << audit[1];
  EXPECT_NE(audit[2].find("\"outcome\":\"invalid\""), std::string::npos) << audit[2];
  EXPECT_NE(audit[2].find("\"generation\":2"), std::string::npos) << audit[2];
  EXPECT_NE(audit[2].find(path + ":"), std::string::npos) << audit[2];
  EXPECT_NE(audit[2].find("150"), std::string::npos) << audit[2];
  EXPECT_NE(audit[3].find(path + ":1:"), std::string::npos) << audit[3];

  const std::string m = metrics_.serialize();
  EXPECT_EQ(sample(m, "pgtandem_config_reloads_total{outcome=\"applied\"}"), "1");
  EXPECT_EQ(sample(m, "pgtandem_config_reloads_total{outcome=\"invalid\"}"), "2");
  EXPECT_EQ(sample(m, "pgtandem_config_reloads_total{outcome=\"unchanged\"}"), "1");
  EXPECT_EQ(sample(m, "pgtandem_config_generation"), "2");
  EXPECT_EQ(sample(m, "pgtandem_config_info{hash=\"" + hash2 + "\"}"), "1");
  EXPECT_EQ(sample(m, "pgtandem_config_info{hash=\"" + hash1 + "\"}"), "");
}

TEST_F(ReloaderTest, RestartOnlyChangesAreAppliedAndRecorded) {
  const std::string path = dir_.file("pgtandem.toml");
  write(path, config_text(5));
  start(path);
  replace(path, "workers = 3\n" + config_text(5));
  EXPECT_EQ(reloader_->reload(ReloadSource::kSighup), ConfigReloadOutcome::kApplied);
  auto audit = lines(audit_);
  ASSERT_EQ(audit.size(), 2u);
  EXPECT_NE(audit[1].find("\"changes\":[\"workers: 0 -> 3 (restart required)\"]"),
            std::string::npos)
      << audit[1];
  EXPECT_NE(audit[1].find("\"restart_required\":[\"workers\"]"), std::string::npos) << audit[1];
}

TEST_F(ReloaderTest, PrimaryFlipResolvesTheTargetIndex) {
  const std::string path = dir_.file("pgtandem.toml");
  write(path, config_text(5));
  start(path);
  std::string text = config_text(5);
  text.replace(text.find("\"old\""), 5, "\"new\"");
  replace(path, text);
  EXPECT_EQ(reloader_->reload(ReloadSource::kSighup), ConfigReloadOutcome::kApplied);
  EXPECT_EQ(state_.snapshot.load()->primary, 1u);
  EXPECT_NE(lines(audit_).back().find("primary: old -> new"), std::string::npos);
}

TEST_F(ReloaderTest, WatchSeesRenameAndTouch) {
  const std::string path = dir_.file("pgtandem.toml");
  write(path, config_text(5));
  start(path);
  std::string error;
  ASSERT_TRUE(reloader_->watch(&error)) << error;

  replace(path, config_text(7));
  ASSERT_TRUE(run_until_generation(2));
  EXPECT_EQ(state_.snapshot.load()->config->routes.at(0).percent, 7);
  EXPECT_NE(lines(audit_).back().find("\"source\":\"file_watch\""), std::string::npos);

  // In-place write (close_write).
  write(path, config_text(8));
  ASSERT_TRUE(run_until_generation(3));

  // A touch: re-read, unchanged, no audit entry.
  const size_t entries = lines(audit_).size();
  touch(path);
  run_for(400ms);
  EXPECT_EQ(generation(), 3u);
  EXPECT_EQ(lines(audit_).size(), entries);
  EXPECT_EQ(sample(metrics_.serialize(), "pgtandem_config_reloads_total{outcome=\"unchanged\"}"),
            "1");

  // Other files in the directory are none of its business.
  write(dir_.file("unrelated.txt"), "x");
  run_for(300ms);
  EXPECT_EQ(sample(metrics_.serialize(), "pgtandem_config_reloads_total{outcome=\"unchanged\"}"),
            "1");
}

TEST_F(ReloaderTest, BurstsAreDebounced) {
  const std::string path = dir_.file("pgtandem.toml");
  write(path, config_text(5));
  start(path, 200ms);
  std::string error;
  ASSERT_TRUE(reloader_->watch(&error)) << error;
  for (int p = 10; p <= 14; ++p) replace(path, config_text(p));
  ASSERT_TRUE(run_until_generation(2));
  run_for(400ms);
  EXPECT_EQ(generation(), 2u);
  EXPECT_EQ(state_.snapshot.load()->config->routes.at(0).percent, 14);
}

// Kubernetes mounts a ConfigMap key as <dir>/pgtandem.toml -> ..data/pgtandem.toml, with
// ..data -> ..<timestamp>; an update writes a new timestamped directory, points ..data_tmp at it,
// renames ..data_tmp over ..data and deletes the old directory.
TEST_F(ReloaderTest, ConfigMapSymlinkSwap) {
  const std::string mount = dir_.file("config");
  fs::create_directory(mount);
  fs::create_directory(mount + "/..2026_11_01_00_00_00.1");
  write(mount + "/..2026_11_01_00_00_00.1/pgtandem.toml", config_text(5));
  fs::create_directory_symlink("..2026_11_01_00_00_00.1", mount + "/..data");
  fs::create_symlink("..data/pgtandem.toml", mount + "/pgtandem.toml");
  start(mount + "/pgtandem.toml");
  std::string error;
  ASSERT_TRUE(reloader_->watch(&error)) << error;

  fs::create_directory(mount + "/..2026_11_01_00_01_00.2");
  write(mount + "/..2026_11_01_00_01_00.2/pgtandem.toml", config_text(20));
  fs::create_directory_symlink("..2026_11_01_00_01_00.2", mount + "/..data_tmp");
  fs::rename(mount + "/..data_tmp", mount + "/..data");
  fs::remove_all(mount + "/..2026_11_01_00_00_00.1");
  ASSERT_TRUE(run_until_generation(2));
  EXPECT_EQ(state_.snapshot.load()->config->routes.at(0).percent, 20);
  EXPECT_NE(lines(audit_).back().find("routes[canary].percent: 5 -> 20"), std::string::npos);
}

// A symlink to a file in another directory: edits there are seen too.
TEST_F(ReloaderTest, SymlinkToAnotherDirectory) {
  fs::create_directory(dir_.file("real"));
  fs::create_directory(dir_.file("etc"));
  write(dir_.file("real/pgtandem.toml"), config_text(5));
  fs::create_symlink(dir_.file("real/pgtandem.toml"), dir_.file("etc/pgtandem.toml"));
  start(dir_.file("etc/pgtandem.toml"));
  std::string error;
  ASSERT_TRUE(reloader_->watch(&error)) << error;
  replace(dir_.file("real/pgtandem.toml"), config_text(30));
  ASSERT_TRUE(run_until_generation(2));
  EXPECT_EQ(state_.snapshot.load()->config->routes.at(0).percent, 30);
}

TEST_F(ReloaderTest, RepeatedInvalidFileFromTheWatchIsReportedOnce) {
  const std::string path = dir_.file("pgtandem.toml");
  write(path, config_text(5));
  start(path);
  std::string error;
  ASSERT_TRUE(reloader_->watch(&error)) << error;
  replace(path, "primary = \n");
  run_for(400ms);
  touch(path);
  run_for(400ms);
  EXPECT_EQ(sample(metrics_.serialize(), "pgtandem_config_reloads_total{outcome=\"invalid\"}"),
            "1");
  // SIGHUP always answers.
  EXPECT_EQ(reloader_->reload(ReloadSource::kSighup), ConfigReloadOutcome::kInvalid);
  EXPECT_EQ(sample(metrics_.serialize(), "pgtandem_config_reloads_total{outcome=\"invalid\"}"),
            "2");
  EXPECT_EQ(generation(), 1u);
}

TEST_F(ReloaderTest, AuditLogThatCannotBeWrittenFailsStartup) {
  const std::string path = dir_.file("pgtandem.toml");
  write(path, config_text(5));
  auto loaded = config::load_file(path);
  ASSERT_TRUE(loaded.ok());
  Reloader::Options o;
  o.config_path = path;
  o.audit_log_path = dir_.file("no/such/dir/audit.log");
  Reloader r(io_, state_, o);
  std::string error;
  EXPECT_FALSE(r.publish_initial(std::make_shared<const config::Config>(*loaded.config),
                                 loaded.source_hash, &error));
  EXPECT_NE(error.find("audit"), std::string::npos) << error;
}

TEST_F(ReloaderTest, PrepareCanRejectAConfig) {
  const std::string path = dir_.file("pgtandem.toml");
  write(path, config_text(5));
  auto loaded = config::load_file(path);
  ASSERT_TRUE(loaded.ok());
  Reloader::Options o;
  o.config_path = path;
  o.prepare = [](const config::Config& c, std::string* why) {
    if (!c.mirror_writes) return true;
    *why = "cannot open mirror journal x: denied";
    return false;
  };
  Reloader r(io_, state_, o);
  std::string error;
  ASSERT_TRUE(r.publish_initial(std::make_shared<const config::Config>(*loaded.config),
                                loaded.source_hash, &error));
  replace(path, "mirror_writes = true\n" + config_text(5));
  EXPECT_EQ(r.reload(ReloadSource::kSighup), ConfigReloadOutcome::kInvalid);
  EXPECT_EQ(generation(), 1u);
}

}  // namespace
}  // namespace pgtandem::proxy

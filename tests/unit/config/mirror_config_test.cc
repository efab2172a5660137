// The [mirror] and [classifier] sections and the mirror_writes switch.
#include <gtest/gtest.h>

#include <string>

#include "config/config.h"
#include "tests/unit/config/test_support.h"

namespace pgtandem::config {
namespace {

constexpr const char* kTargets = testing::kTwoTargets;

TEST(MirrorConfig, DefaultsAreOffAndJournalOnOverflow) {
  auto r = load_string(kTargets);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r.config->mirror_writes);
  EXPECT_EQ(r.config->mirror.overflow, "journal");
  EXPECT_EQ(r.config->mirror.journal_fsync, "interval");
  EXPECT_EQ(r.config->mirror.session_queue_bytes, 8u << 20);
  EXPECT_TRUE(r.config->classifier.unknown_function_is_write);
  EXPECT_EQ(r.config->secondary_target().name, "new");
  // Issue 15: state in the packaging convention's directory, never the cwd; a bounded journal.
  EXPECT_EQ(r.config->state_dir, "/var/lib/pgtandem");
  EXPECT_EQ(r.config->mirror.journal_path, "/var/lib/pgtandem/mirror.journal");
  EXPECT_EQ(r.config->mirror.journal_max_bytes, uint64_t{1} << 30);
  EXPECT_EQ(r.config->mirror.journal_full, "stop");
  EXPECT_EQ(r.config->mirror.journal_full_timeout_ms, 30000u);
}

TEST(MirrorConfig, JournalPathResolvesAgainstStateDir) {
  auto r = load_string(std::string("state_dir = \"/srv/pgt/\"\n[mirror]\njournal_path = "
                                   "\"j/m.journal\"\njournal_max_bytes = 1048576\n"
                                   "journal_full = \"block\"\njournal_full_timeout_ms = 250\n") +
                       kTargets);
  ASSERT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors[0].to_string());
  EXPECT_EQ(r.config->state_dir, "/srv/pgt/");
  EXPECT_EQ(r.config->mirror.journal_path, "/srv/pgt/j/m.journal");
  EXPECT_EQ(r.config->mirror.journal_max_bytes, 1048576u);
  EXPECT_EQ(r.config->mirror.journal_full, "block");
  EXPECT_EQ(r.config->mirror.journal_full_timeout_ms, 250u);
  auto only_dir = load_string(std::string("state_dir = \"/srv/pgt\"\n") + kTargets);
  ASSERT_TRUE(only_dir.ok());
  EXPECT_EQ(only_dir.config->mirror.journal_path, "/srv/pgt/mirror.journal");
  EXPECT_EQ(resolve_state_path("/", "x"), "/x");
  EXPECT_EQ(resolve_state_path("/a", "/abs/j"), "/abs/j");
}

TEST(MirrorConfig, StateDirMustBeAbsoluteAndLimitsValid) {
  auto r = load_string(std::string("state_dir = \"state\"\n[mirror]\njournal_full = \"drop\"\n"
                                   "journal_max_bytes = 10\n") + kTargets, "t.toml");
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 3u);
  EXPECT_EQ(r.errors[0].to_string(),
            "t.toml:1:13: state_dir must be an absolute path (pgtandem never keeps state in the "
            "working directory), got 'state'");
  EXPECT_EQ(r.errors[1].to_string().rfind("t.toml:3:16: mirror.journal_full must be one of 'stop', 'block'", 0), 0u)
      << r.errors[1].to_string();
  EXPECT_EQ(r.errors[2].to_string().rfind("t.toml:4:21: mirror.journal_max_bytes must be in", 0), 0u)
      << r.errors[2].to_string();
}

TEST(MirrorConfig, FullSection) {
  auto r = load_string(std::string(R"(mirror_writes = true
primary = "new"
[mirror]
credentials_file = "/etc/pgtandem/pgpass"
session_queue_bytes = 1048576
global_queue_bytes = 67108864
overflow = "block"
journal_path = "/var/lib/pgtandem/j.log"
journal_fsync = "always"
journal_fsync_interval_ms = 50
reconnect_interval_ms = 250
apply_timeout_ms = 1500
link_threads = 2
link_nice = 19
[classifier]
read_only_functions = ["my_pure_fn", "app.lookup"]
writing_functions = ["audit.log_event"]
unknown_function_is_write = false
)") + kTargets);
  ASSERT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors[0].to_string());
  const Config& c = *r.config;
  EXPECT_TRUE(c.mirror_writes);
  EXPECT_EQ(c.secondary_target().name, "old");
  EXPECT_EQ(c.mirror.credentials_file, "/etc/pgtandem/pgpass");
  EXPECT_EQ(c.mirror.session_queue_bytes, 1048576u);
  EXPECT_EQ(c.mirror.global_queue_bytes, 67108864u);
  EXPECT_EQ(c.mirror.overflow, "block");
  EXPECT_EQ(c.mirror.journal_path, "/var/lib/pgtandem/j.log");
  EXPECT_EQ(c.mirror.journal_fsync, "always");
  EXPECT_EQ(c.mirror.journal_fsync_interval_ms, 50u);
  EXPECT_EQ(c.mirror.reconnect_interval_ms, 250u);
  EXPECT_EQ(c.mirror.apply_timeout_ms, 1500u);
  EXPECT_EQ(c.mirror.link_threads, 2u);
  EXPECT_EQ(c.mirror.link_nice, 19u);
  ASSERT_EQ(c.classifier.read_only_functions.size(), 2u);
  EXPECT_EQ(c.classifier.read_only_functions[1], "app.lookup");
  ASSERT_EQ(c.classifier.writing_functions.size(), 1u);
  EXPECT_FALSE(c.classifier.unknown_function_is_write);
}

TEST(MirrorConfig, ErrorsCarryLineAndColumn) {
  auto r = load_string(std::string(R"(mirror_writes = "yes"
[mirror]
overflow = "drop"
journal_fsync = "sometimes"
session_queue_bytes = 10
bogus = 1
[classifier]
read_only_functions = "f"
writing_functions = ["", 3]
)") + kTargets, "t.toml");
  ASSERT_FALSE(r.ok());
  std::vector<std::string> got;
  for (const auto& e : r.errors) got.push_back(e.to_string());
  ASSERT_EQ(got.size(), 8u) << ::testing::PrintToString(got);
  EXPECT_EQ(got[0], "t.toml:1:17: mirror_writes must be a boolean, got string");
  EXPECT_EQ(got[1].rfind("t.toml:3:12: mirror.overflow must be one of 'journal', 'block'", 0), 0u)
      << got[1];
  EXPECT_EQ(got[2].rfind("t.toml:4:17: mirror.journal_fsync must be one of", 0), 0u) << got[2];
  EXPECT_EQ(got[3].rfind("t.toml:5:23: mirror.session_queue_bytes must be in", 0), 0u) << got[3];
  EXPECT_EQ(got[4], "t.toml:6:1: unknown key 'bogus' in [mirror]");
  EXPECT_EQ(got[5].rfind("t.toml:8:23: classifier.read_only_functions must be an array", 0), 0u)
      << got[5];
  EXPECT_EQ(got[6], "t.toml:9:22: classifier.writing_functions elements must not be empty");
  EXPECT_EQ(got[7].rfind("t.toml:9:26: classifier.writing_functions element must be a string", 0),
            0u)
      << got[7];
}

TEST(MirrorConfig, LinkThreadsDefaultAndRange) {
  auto d = load_string(std::string("mirror_writes = true\n") + kTargets);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d.config->mirror.link_threads, 1u);  // one thread of their own, at nice 10
  EXPECT_EQ(d.config->mirror.link_nice, 10u);
  auto r = load_string(std::string("[mirror]\nlink_threads = 65\nlink_nice = 20\n") + kTargets,
                       "t.toml");
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 2u);
  EXPECT_EQ(r.errors[0].to_string().rfind("t.toml:2:16: mirror.link_threads must be in", 0), 0u)
      << r.errors[0].to_string();
  EXPECT_EQ(r.errors[1].to_string().rfind("t.toml:3:13: mirror.link_nice must be in", 0), 0u)
      << r.errors[1].to_string();
}

}  // namespace
}  // namespace pgtandem::config

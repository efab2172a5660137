// The [auth] section: who authenticates clients.
#include <gtest/gtest.h>

#include <string>

#include "config/config.h"
#include "tests/unit/config/test_support.h"

namespace pgtandem::config {
namespace {

constexpr const char* kTargets = testing::kTwoTargets;

TEST(AuthConfig, DefaultIsRelay) {
  auto r = load_string(kTargets);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.config->auth.mode, "relay");
  EXPECT_FALSE(r.config->auth.file_mode());
  EXPECT_EQ(r.config->auth.method, "scram-sha-256");
  EXPECT_EQ(r.config->auth.file, "");
}

TEST(AuthConfig, FileMode) {
  auto r = load_string(std::string(R"([auth]
mode = "file"
file = "/etc/pgtandem/userlist.txt"
method = "md5"
)") + kTargets);
  ASSERT_TRUE(r.ok()) << r.errors.front().to_string();
  EXPECT_TRUE(r.config->auth.file_mode());
  EXPECT_EQ(r.config->auth.file, "/etc/pgtandem/userlist.txt");
  EXPECT_EQ(r.config->auth.method, "md5");
}

TEST(AuthConfig, ErrorsCarryLineAndColumn) {
  auto r = load_string(std::string(R"([auth]
mode = "ldap"
method = "password"
file = ""
bogus = 1
)") + kTargets,
                       "t.toml");
  ASSERT_FALSE(r.ok());
  std::vector<std::string> got;
  for (const auto& e : r.errors) got.push_back(e.to_string());
  ASSERT_EQ(got.size(), 4u) << ::testing::PrintToString(got);
  EXPECT_EQ(got[0], "t.toml:2:8: auth.mode must be one of 'relay', 'file', got 'ldap'");
  EXPECT_EQ(got[1],
            "t.toml:3:10: auth.method must be one of 'scram-sha-256', 'md5', got 'password'");
  EXPECT_EQ(got[2], "t.toml:4:8: auth.file must not be empty");
  EXPECT_EQ(got[3], "t.toml:5:1: unknown key 'bogus' in [auth]");
}

TEST(AuthConfig, FileModeNeedsAFile) {
  auto r = load_string(std::string("[auth]\nmode = \"file\"\n") + kTargets, "t.toml");
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].to_string().rfind("t.toml:2:8: auth.mode = \"file\" needs auth.file", 0),
            0u)
      << r.errors[0].to_string();
  r = load_string(std::string("[auth]\nmode = 3\n") + kTargets, "t.toml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.errors[0].to_string(), "t.toml:2:8: auth.mode must be a string, got integer");
}

}  // namespace
}  // namespace pgtandem::config

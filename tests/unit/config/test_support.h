// What the config unit tests share: the smallest valid [targets], and a temporary file fixture for
// the secret files (password file, userlist) with a chosen mode.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

namespace pgtandem::config::testing {

inline constexpr const char* kTwoTargets = R"(
[targets.old]
host = "127.0.0.1"
port = 5432
[targets.new]
host = "127.0.0.1"
port = 5433
)";

class SecretFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pgtandem-secret-XXXXXX";
    int fd = mkstemp(tmpl);
    ASSERT_GE(fd, 0);
    close(fd);
    path_ = tmpl;
  }
  void TearDown() override { std::remove(path_.c_str()); }
  void write(const std::string& text, mode_t mode) {
    std::ofstream(path_, std::ios::binary | std::ios::trunc) << text;
    ASSERT_EQ(chmod(path_.c_str(), mode), 0);
  }
  std::string path_;
};

}  // namespace pgtandem::config::testing

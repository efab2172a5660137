// The [cutover] section (issue 14): the control connection and the default gates.
#include <gtest/gtest.h>

#include <string>

#include "config/config.h"
#include "tests/unit/config/test_support.h"

namespace pgtandem::config {
namespace {

LoadResult load(const std::string &text) { return load_string(text + testing::kTwoTargets, "c.toml"); }

TEST(CutoverConfig, Defaults) {
  auto r = load("");
  ASSERT_TRUE(r.ok());
  const Cutover &c = r.config->cutover;
  EXPECT_EQ(c.control_user, "") << "falls back to the environment and [classifier]";
  EXPECT_EQ(c.control_database, "postgres");
  EXPECT_EQ(c.pause_timeout_ms, 5000u);
  EXPECT_EQ(c.max_mirror_lag, 1000u);
  EXPECT_EQ(c.max_queue_bytes, 16u << 20);
  EXPECT_EQ(c.max_shadow_mismatches, 0u);
  EXPECT_EQ(c.shadow_window_s, 300u);
  EXPECT_EQ(c.verify_max_age_s, 0u) << "the verify gate is off unless asked";
}

TEST(CutoverConfig, FullSection) {
  auto r = load(R"([cutover]
control_user = "pgtandem"
control_database = "orders"
pause_timeout_ms = 2500
max_mirror_lag = 20000
max_queue_bytes = 1048576
max_shadow_mismatches = 3
shadow_window_s = 60
verify_max_age_s = 3600
)");
  ASSERT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors[0].to_string());
  const Cutover &c = r.config->cutover;
  EXPECT_EQ(c.control_user, "pgtandem");
  EXPECT_EQ(c.control_database, "orders");
  EXPECT_EQ(c.pause_timeout_ms, 2500u);
  EXPECT_EQ(c.max_mirror_lag, 20000u);
  EXPECT_EQ(c.max_queue_bytes, 1048576u);
  EXPECT_EQ(c.max_shadow_mismatches, 3u);
  EXPECT_EQ(c.shadow_window_s, 60u);
  EXPECT_EQ(c.verify_max_age_s, 3600u);
}

TEST(CutoverConfig, BadValuesAreErrorsWithTheirPlace) {
  auto r = load("[cutover]\npause_timeout_ms = 10\ncontrol_user = \"\"\nmax_lag = 5\n");
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 3u);
  EXPECT_EQ(r.errors[0].line, 2u);
  EXPECT_NE(r.errors[0].message.find("cutover.pause_timeout_ms"), std::string::npos)
      << r.errors[0].message;
  EXPECT_NE(r.errors[1].message.find("cutover.control_user must not be empty"), std::string::npos)
      << r.errors[1].message;
  EXPECT_NE(r.errors[2].message.find("max_lag"), std::string::npos) << r.errors[2].message;
}

}  // namespace
}  // namespace pgtandem::config

// The [shadow] section (issue 5).
#include <gtest/gtest.h>

#include <string>

#include "config/config.h"

namespace pgtandem::config {
namespace {

constexpr const char *kTargets = R"(
[targets.old]
host = "127.0.0.1"
port = 5432
[targets.new]
host = "127.0.0.1"
port = 5433
)";

LoadResult load(const std::string &shadow) { return load_string(shadow + kTargets, "s.toml"); }

TEST(ShadowConfig, DefaultsAreOff) {
  auto r = load("");
  ASSERT_TRUE(r.ok());
  const Shadow &s = r.config->shadow;
  EXPECT_EQ(s.sample_rate, 0);
  EXPECT_EQ(s.max_per_second, 0);
  EXPECT_EQ(s.statement_timeout_ms, 5000u);
  EXPECT_EQ(s.mismatch_log, "");
  EXPECT_FALSE(s.redact_values);
  EXPECT_TRUE(s.ignore_columns.empty());
  EXPECT_FALSE(s.float_significant_digits.has_value());
  EXPECT_EQ(s.recheck_delay_ms, 0u) << "no recheck unless asked";
}

TEST(ShadowConfig, FullSection) {
  auto r = load(R"([shadow]
sample_rate = 0.25
max_per_second = 50
statement_timeout_ms = 1500
mismatch_log = "/var/log/pgtandem/shadow.jsonl"
redact_values = true
ignore_columns = ["updated_at", "version"]
float_significant_digits = 12
recheck_delay_ms = 2000
)");
  ASSERT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors[0].to_string());
  const Shadow &s = r.config->shadow;
  EXPECT_DOUBLE_EQ(s.sample_rate, 0.25);
  EXPECT_DOUBLE_EQ(s.max_per_second, 50);
  EXPECT_EQ(s.statement_timeout_ms, 1500u);
  EXPECT_EQ(s.mismatch_log, "/var/log/pgtandem/shadow.jsonl");
  EXPECT_TRUE(s.redact_values);
  ASSERT_EQ(s.ignore_columns.size(), 2u);
  EXPECT_EQ(s.ignore_columns[1], "version");
  ASSERT_TRUE(s.float_significant_digits.has_value());
  EXPECT_EQ(*s.float_significant_digits, 12);
  EXPECT_EQ(s.recheck_delay_ms, 2000u);
}

TEST(ShadowConfig, IntegerRateIsANumber) {
  auto r = load("[shadow]\nsample_rate = 1\n");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.config->shadow.sample_rate, 1);
}

void expect_error(const std::string &text, uint32_t line, uint32_t column,
                  const std::string &fragment) {
  auto r = load(text);
  ASSERT_FALSE(r.ok()) << text;
  ASSERT_EQ(r.errors.size(), 1u) << r.errors[0].to_string();
  EXPECT_EQ(r.errors[0].line, line) << r.errors[0].to_string();
  EXPECT_EQ(r.errors[0].column, column) << r.errors[0].to_string();
  EXPECT_NE(r.errors[0].message.find(fragment), std::string::npos) << r.errors[0].to_string();
}

TEST(ShadowConfig, ComparisonOptions) {
  auto r = load("[shadow]\nfloat_tolerance = 0.001\nignore_column_order = true\n");
  ASSERT_TRUE(r.ok()) << r.errors[0].to_string();
  EXPECT_DOUBLE_EQ(r.config->shadow.float_tolerance.value(), 0.001);
  EXPECT_TRUE(r.config->shadow.ignore_column_order);
  expect_error("[shadow]\nfloat_tolerance = 0\n", 2, 19, "shadow.float_tolerance must be greater than 0");
  expect_error("[shadow]\nfloat_tolerance = -1.5\n", 2, 19, "greater than 0");
  expect_error("[shadow]\nignore_column_order = 1\n", 2, 23, "shadow.ignore_column_order");
}

TEST(ShadowConfig, PerRuleComparisonOptions) {
  auto r = load(R"([[routes]]
name = "reports"
target = "primary"
shadow_ignore_columns = ["generated_at"]
shadow_float_significant_digits = 6
shadow_float_tolerance = 0.5
shadow_ignore_column_order = true

[[routes]]
name = "plain"
target = "primary"
)");
  ASSERT_TRUE(r.ok()) << r.errors[0].to_string();
  const auto &a = r.config->routes[0];
  ASSERT_TRUE(a.shadow_ignore_columns.has_value());
  EXPECT_EQ(a.shadow_ignore_columns->at(0), "generated_at");
  EXPECT_EQ(a.shadow_float_significant_digits.value(), 6);
  EXPECT_DOUBLE_EQ(a.shadow_float_tolerance.value(), 0.5);
  EXPECT_EQ(a.shadow_ignore_column_order.value(), true);
  const auto &b = r.config->routes[1];
  EXPECT_FALSE(b.shadow_ignore_columns.has_value()) << "unset: the [shadow] value applies";
  EXPECT_FALSE(b.shadow_float_significant_digits.has_value());
  EXPECT_FALSE(b.shadow_float_tolerance.has_value());
  EXPECT_FALSE(b.shadow_ignore_column_order.has_value());
  auto bad = load("[[routes]]\ntarget = \"primary\"\nshadow_float_significant_digits = 18\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.errors[0].message.find("shadow_float_significant_digits"), std::string::npos)
      << bad.errors[0].to_string();
}

TEST(ShadowConfig, RecheckDelayMustBeANonNegativeInteger) {
  expect_error("[shadow]\nrecheck_delay_ms = -1\n", 2, 20, "shadow.recheck_delay_ms");
  expect_error("[shadow]\nrecheck_delay_ms = \"1s\"\n", 2, 20, "shadow.recheck_delay_ms");
}

TEST(ShadowConfig, RateOutOfRange) {
  expect_error("[shadow]\nsample_rate = 1.5\n", 2, 15, "shadow.sample_rate must be in 0..1");
  expect_error("[shadow]\nsample_rate = -0.1\n", 2, 15, "shadow.sample_rate must be in 0..1");
  expect_error("[shadow]\nsample_rate = nan\n", 2, 15, "shadow.sample_rate");
}

TEST(ShadowConfig, WrongTypes) {
  expect_error("[shadow]\nsample_rate = \"all\"\n", 2, 15, "must be a number");
  expect_error("[shadow]\nredact_values = 1\n", 2, 17, "must be a boolean");
  expect_error("[shadow]\nmismatch_log = 3\n", 2, 16, "must be a string");
  expect_error("[shadow]\nignore_columns = \"a\"\n", 2, 18, "an array of strings");
  expect_error("[shadow]\nignore_columns = [\"a\", 2]\n", 2, 24, "element must be a string");
  expect_error("[shadow]\nignore_columns = [\"\"]\n", 2, 19, "must not be empty");
  expect_error("shadow = 1\n", 1, 10, "shadow must be a table");
}

TEST(ShadowConfig, LimitsOutOfRange) {
  expect_error("[shadow]\nmax_per_second = -1\n", 2, 18, "shadow.max_per_second must be in");
  expect_error("[shadow]\nstatement_timeout_ms = 0\n", 2, 24,
               "shadow.statement_timeout_ms must be in 1..");
  expect_error("[shadow]\nfloat_significant_digits = 0\n", 2, 28, "must be in 1..17");
  expect_error("[shadow]\nfloat_significant_digits = 18\n", 2, 28, "must be in 1..17");
  expect_error("[shadow]\nfloat_significant_digits = 6.5\n", 2, 28, "must be an integer");
}

TEST(ShadowConfig, UnknownKey) {
  expect_error("[shadow]\nsample = 0.1\n", 2, 1, "unknown key 'sample' in [shadow]");
}

TEST(ShadowConfig, RuleRateCoexists) {
  auto r = load(R"([shadow]
sample_rate = 0.01
[[routes]]
name = "r"
target = "primary"
shadow_sample_rate = 1
)");
  ASSERT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors[0].to_string());
  EXPECT_DOUBLE_EQ(r.config->shadow.sample_rate, 0.01);
  ASSERT_EQ(r.config->routes.size(), 1u);
  EXPECT_EQ(r.config->routes[0].shadow_sample_rate, 1.0);
}

}  // namespace
}  // namespace pgtandem::config

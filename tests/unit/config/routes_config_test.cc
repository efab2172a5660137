// The [routing], [[routes]] and [breaker] sections (read routing, issue 4).
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "config/config.h"

namespace pgtandem::config {
namespace {

// Lines 1-4 of every file below; the section under test starts on line 5.
constexpr const char* kTargets = R"([targets.old]
port = 5432
[targets.new]
port = 5433
)";

LoadResult load(const std::string& body) { return load_string(kTargets + body, "r.toml"); }
// For top-level keys, which must come before the first table header: the body starts on line 1.
LoadResult load_top(const std::string& body) { return load_string(body + kTargets, "r.toml"); }

std::vector<std::string> messages(const LoadResult& r) {
  std::vector<std::string> out;
  for (const auto& e : r.errors) out.push_back(e.to_string());
  return out;
}

// Asserts exactly one error, "r.toml:line:column: message".
void expect_error(const LoadResult& r, const std::string& want) {
  EXPECT_FALSE(r.ok()) << want;
  EXPECT_EQ(messages(r), std::vector<std::string>{want});
}
void expect_error(const std::string& body, const std::string& want) {
  expect_error(load(body), want);
}

const std::vector<std::string>* find_tag(const RouteMatch& m, const std::string& name) {
  for (const auto& [key, values] : m.tags)
    if (key == name) return &values;
  return nullptr;
}

TEST(RoutesConfig, DefaultsWithoutTheSections) {
  const auto r = load("");
  ASSERT_TRUE(r.ok()) << messages(r).front();
  const Config& c = *r.config;
  EXPECT_EQ(c.routing.hash_seed, "pgtandem");
  EXPECT_TRUE(c.routing.read_your_writes);
  EXPECT_TRUE(c.routing.fallback_to_primary);
  EXPECT_TRUE(c.routes.empty());
  EXPECT_TRUE(c.breaker.enabled);
  EXPECT_EQ(c.breaker.window_ms, 30000u);
  EXPECT_EQ(c.breaker.min_requests, 20u);
  EXPECT_DOUBLE_EQ(c.breaker.error_rate, 0.2);
  EXPECT_DOUBLE_EQ(c.breaker.mismatch_rate, 0.05);
  EXPECT_EQ(c.breaker.cooldown_ms, 30000u);
  EXPECT_EQ(c.breaker.half_open_requests, 5u);
}

TEST(RoutesConfig, FullRule) {
  const auto r = load(R"([routing]
hash_seed = "s1"
read_your_writes = false
fallback_to_primary = false

[[routes]]
name = "canary-tenants"
users = ["app"]
databases = ["shop"]
application_names = ["web"]
client_cidrs = ["10.0.0.0/8", "::1/128", "192.168.1.7"]
tables = ["accounts", "public.orders"]
fingerprints = ["a0b1c2d3e4f50617"]
tags = { tenant = ["42", "43"], route = "canary" }
percent = 25
hash_key = "user"
shadow_sample_rate = 0.01

[breaker]
enabled = false
window_ms = 1000
min_requests = 1
error_rate = 0.5
mismatch_rate = 1
cooldown_ms = 86400000
half_open_requests = 1
)");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(messages(r));
  const Config& c = *r.config;
  EXPECT_EQ(c.routing.hash_seed, "s1");
  EXPECT_FALSE(c.routing.read_your_writes);
  EXPECT_FALSE(c.routing.fallback_to_primary);

  ASSERT_EQ(c.routes.size(), 1u);
  const Route& route = c.routes[0];
  EXPECT_EQ(route.name, "canary-tenants");
  EXPECT_EQ(route.line, 10u);
  EXPECT_EQ(route.match.users, std::vector<std::string>{"app"});
  EXPECT_EQ(route.match.databases, std::vector<std::string>{"shop"});
  EXPECT_EQ(route.match.application_names, std::vector<std::string>{"web"});
  EXPECT_EQ(route.match.client_cidrs,
            (std::vector<std::string>{"10.0.0.0/8", "::1/128", "192.168.1.7"}));
  EXPECT_EQ(route.match.tables, (std::vector<std::string>{"accounts", "public.orders"}));
  EXPECT_EQ(route.match.fingerprints, std::vector<std::string>{"a0b1c2d3e4f50617"});
  ASSERT_EQ(route.match.tags.size(), 2u);
  const auto* tenant = find_tag(route.match, "tenant");
  const auto* tag_route = find_tag(route.match, "route");
  ASSERT_NE(tenant, nullptr);
  ASSERT_NE(tag_route, nullptr);
  EXPECT_EQ(*tenant, (std::vector<std::string>{"42", "43"}));
  EXPECT_EQ(*tag_route, std::vector<std::string>{"canary"});
  EXPECT_EQ(route.target, "");
  ASSERT_TRUE(route.percent.has_value());
  EXPECT_DOUBLE_EQ(*route.percent, 25);
  EXPECT_EQ(route.hash_key, "user");
  ASSERT_TRUE(route.shadow_sample_rate.has_value());
  EXPECT_DOUBLE_EQ(*route.shadow_sample_rate, 0.01);

  EXPECT_FALSE(c.breaker.enabled);
  EXPECT_EQ(c.breaker.window_ms, 1000u);
  EXPECT_EQ(c.breaker.min_requests, 1u);
  EXPECT_DOUBLE_EQ(c.breaker.error_rate, 0.5);
  EXPECT_DOUBLE_EQ(c.breaker.mismatch_rate, 1.0);
  EXPECT_EQ(c.breaker.cooldown_ms, 86400000u);
  EXPECT_EQ(c.breaker.half_open_requests, 1u);
}

TEST(RoutesConfig, SingleStringsAreOneEntryLists) {
  const auto r = load(R"([[routes]]
users = "app"
databases = "shop"
application_names = "web"
client_cidrs = "10.0.0.0/8"
tables = "accounts"
fingerprints = "a0b1c2d3e4f50617"
tags = { tenant = "42" }
target = "new"
)");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(messages(r));
  const RouteMatch& m = r.config->routes[0].match;
  EXPECT_EQ(m.users, std::vector<std::string>{"app"});
  EXPECT_EQ(m.databases, std::vector<std::string>{"shop"});
  EXPECT_EQ(m.application_names, std::vector<std::string>{"web"});
  EXPECT_EQ(m.client_cidrs, std::vector<std::string>{"10.0.0.0/8"});
  EXPECT_EQ(m.tables, std::vector<std::string>{"accounts"});
  EXPECT_EQ(m.fingerprints, std::vector<std::string>{"a0b1c2d3e4f50617"});
  ASSERT_EQ(m.tags.size(), 1u);
  EXPECT_EQ(m.tags[0].first, "tenant");
  EXPECT_EQ(m.tags[0].second, std::vector<std::string>{"42"});
}

TEST(RoutesConfig, CatchAllDefaultNamesTargetsAndLines) {
  const auto r = load(R"([[routes]]
target = "old"

[[routes]]
name = "second"
target = "new"
[[routes]]
target = "primary"
)");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(messages(r));
  const auto& routes = r.config->routes;
  ASSERT_EQ(routes.size(), 3u);
  EXPECT_EQ(routes[0].name, "route-1");
  EXPECT_EQ(routes[0].target, "old");
  EXPECT_EQ(routes[0].line, 5u);
  EXPECT_FALSE(routes[0].percent.has_value());
  EXPECT_EQ(routes[0].hash_key, "session");
  EXPECT_FALSE(routes[0].shadow_sample_rate.has_value());
  // No match keys: matches everything.
  const RouteMatch& m = routes[0].match;
  EXPECT_TRUE(m.users.empty() && m.databases.empty() && m.application_names.empty() &&
              m.client_cidrs.empty() && m.tables.empty() && m.fingerprints.empty() &&
              m.tags.empty());
  EXPECT_EQ(routes[1].name, "second");
  EXPECT_EQ(routes[1].target, "new");
  EXPECT_EQ(routes[1].line, 8u);
  EXPECT_EQ(routes[2].name, "route-3");
  EXPECT_EQ(routes[2].target, "primary");
  EXPECT_EQ(routes[2].line, 11u);
}

TEST(RoutesConfig, InlineArrayOfTables) {
  const auto r = load_top(R"(routes = [
  { name = "a", target = "new" },
  { percent = 5 },
]
)");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(messages(r));
  ASSERT_EQ(r.config->routes.size(), 2u);
  EXPECT_EQ(r.config->routes[0].name, "a");
  EXPECT_EQ(r.config->routes[0].line, 2u);
  EXPECT_EQ(r.config->routes[1].name, "route-2");
  EXPECT_EQ(r.config->routes[1].line, 3u);
}

TEST(RoutesConfig, PercentIntegerOrFloatWithBounds) {
  for (const auto& [text, want] : std::vector<std::pair<std::string, double>>{
           {"0", 0}, {"100", 100}, {"2.5", 2.5}, {"0.0", 0}, {"100.0", 100}, {"5", 5}}) {
    const auto r = load("[[routes]]\npercent = " + text + "\n");
    ASSERT_TRUE(r.ok()) << text << ": " << ::testing::PrintToString(messages(r));
    ASSERT_TRUE(r.config->routes[0].percent.has_value());
    EXPECT_DOUBLE_EQ(*r.config->routes[0].percent, want) << text;
    EXPECT_EQ(r.config->routes[0].target, "");
  }
}

TEST(RoutesConfig, ShadowSampleRateBounds) {
  for (const auto& [text, want] : std::vector<std::pair<std::string, double>>{
           {"0", 0}, {"1", 1}, {"0.0", 0}, {"1.0", 1}, {"0.25", 0.25}}) {
    const auto r = load("[[routes]]\ntarget = \"new\"\nshadow_sample_rate = " + text + "\n");
    ASSERT_TRUE(r.ok()) << text << ": " << ::testing::PrintToString(messages(r));
    EXPECT_DOUBLE_EQ(r.config->routes[0].shadow_sample_rate.value(), want) << text;
  }
}

TEST(RoutesConfig, HashKeys) {
  for (const std::string key :
       {"session", "user", "application_name", "client_address", "tag:tenant", "tag:x"}) {
    const auto r = load("[[routes]]\npercent = 1\nhash_key = \"" + key + "\"\n");
    ASSERT_TRUE(r.ok()) << key << ": " << ::testing::PrintToString(messages(r));
    EXPECT_EQ(r.config->routes[0].hash_key, key);
  }
  // With a target, hash_key has no use but is accepted (flipping percent -> target keeps it).
  EXPECT_TRUE(load("[[routes]]\ntarget = \"new\"\nhash_key = \"user\"\n").ok());
}

TEST(RoutesConfig, AcceptedCidrs) {
  const auto r = load(R"([[routes]]
client_cidrs = ["0.0.0.0/0", "::/0", "10.0.0.0/8", "10.1.2.3/32", "10.1.2.3", "::1",
                "::1/128", "fe80::/10", "2001:db8::/32", "::ffff:10.0.0.0/104"]
target = "new"
)");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(messages(r));
  EXPECT_EQ(r.config->routes[0].match.client_cidrs.size(), 10u);
  EXPECT_EQ(r.config->routes[0].match.client_cidrs[3], "10.1.2.3/32");
}

TEST(RoutesConfig, FingerprintsAreLowercased) {
  const auto r = load(R"([[routes]]
fingerprints = ["A0B1C2D3E4F50617", "0123456789abcdef"]
target = "new"
)");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(messages(r));
  EXPECT_EQ(r.config->routes[0].match.fingerprints,
            (std::vector<std::string>{"a0b1c2d3e4f50617", "0123456789abcdef"}));
}

TEST(RoutesConfig, TagsAsSubTable) {
  const auto r = load(R"([[routes]]
target = "new"
[routes.tags]
tenant = ["42"]
region = "eu"
)");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(messages(r));
  const RouteMatch& m = r.config->routes[0].match;
  ASSERT_EQ(m.tags.size(), 2u);
  ASSERT_NE(find_tag(m, "region"), nullptr);
  EXPECT_EQ(*find_tag(m, "region"), std::vector<std::string>{"eu"});
}

TEST(RoutesConfig, BreakerRangeEnds) {
  const auto r = load(R"([breaker]
window_ms = 86400000
min_requests = 1000000
error_rate = 1
mismatch_rate = 0.001
cooldown_ms = 1
half_open_requests = 1000000
)");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(messages(r));
  EXPECT_EQ(r.config->breaker.window_ms, 86400000u);
  EXPECT_EQ(r.config->breaker.min_requests, 1000000u);
  EXPECT_DOUBLE_EQ(r.config->breaker.error_rate, 1.0);
  EXPECT_DOUBLE_EQ(r.config->breaker.mismatch_rate, 0.001);
  EXPECT_EQ(r.config->breaker.cooldown_ms, 1u);
  EXPECT_EQ(r.config->breaker.half_open_requests, 1000000u);
}

TEST(RoutesConfigErrors, UnknownKeys) {
  expect_error("[routing]\nhash_sed = \"x\"\n", "r.toml:6:1: unknown key 'hash_sed' in [routing]");
  expect_error("[[routes]]\ntarget = \"new\"\nuser = \"app\"\n",
               "r.toml:7:1: unknown key 'user' in routes[1]");
  expect_error("[[routes]]\ntarget = \"new\"\n[[routes]]\ntarget = \"new\"\n  match = 1\n",
               "r.toml:9:3: unknown key 'match' in routes[2]");
  expect_error("[breaker]\nwindow = 5\n", "r.toml:6:1: unknown key 'window' in [breaker]");
}

TEST(RoutesConfigErrors, WrongTypesInRouting) {
  expect_error(load_top("routing = 1\n"), "r.toml:1:11: routing must be a table, got integer");
  expect_error("[routing]\nhash_seed = 1\n",
               "r.toml:6:13: routing.hash_seed must be a string, got integer");
  expect_error("[routing]\nread_your_writes = \"yes\"\n",
               "r.toml:6:20: routing.read_your_writes must be a boolean, got string");
  expect_error("[routing]\nfallback_to_primary = 1\n",
               "r.toml:6:23: routing.fallback_to_primary must be a boolean, got integer");
}

TEST(RoutesConfigErrors, RoutesMustBeAnArrayOfTables) {
  expect_error(load_top("routes = 3\n"),
               "r.toml:1:10: routes must be an array of tables ([[routes]]), got integer");
  expect_error("[routes]\ntarget = \"new\"\n",
               "r.toml:5:1: routes must be an array of tables ([[routes]]), got table");
  expect_error(load_top("routes = [{ target = \"new\" }, \"x\"]\n"),
               "r.toml:1:31: routes[2] must be a table, got string");
}

TEST(RoutesConfigErrors, WrongTypesInARoute) {
  const auto r = load(R"([[routes]]
name = 1
users = 3
databases = [1]
application_names = true
client_cidrs = { a = 1 }
tables = 1.5
fingerprints = [["a0b1c2d3e4f50617"]]
tags = "tenant=42"
percent = "5"
hash_key = 2
shadow_sample_rate = "often"
[[routes]]
target = 1
tags = { tenant = 42 }
)");
  const std::vector<std::string> want = {
      "r.toml:6:8: routes[1].name must be a string, got integer",
      "r.toml:7:9: routes[1].users must be a string or an array of strings, got integer",
      "r.toml:8:14: routes[1].databases element must be a string, got integer",
      "r.toml:9:21: routes[1].application_names must be a string or an array of strings, got "
      "boolean",
      "r.toml:10:16: routes[1].client_cidrs must be a string or an array of strings, got table",
      "r.toml:11:10: routes[1].tables must be a string or an array of strings, got float",
      "r.toml:12:17: routes[1].fingerprints element must be a string, got array",
      "r.toml:13:8: routes[1].tags must be a table, got string",
      "r.toml:14:11: routes[1].percent must be a number, got string",
      "r.toml:15:12: routes[1].hash_key must be a string, got integer",
      "r.toml:16:22: routes[1].shadow_sample_rate must be a number, got string",
      "r.toml:18:10: routes[2].target must be a string, got integer",
      "r.toml:19:19: routes[2].tags.tenant must be a string or an array of strings, got integer",
  };
  EXPECT_EQ(messages(r), want);
}

TEST(RoutesConfigErrors, PercentOutOfRange) {
  expect_error("[[routes]]\npercent = 101\n",
               "r.toml:6:11: routes[1].percent must be in 0..100, got 101");
  expect_error("[[routes]]\npercent = -1\n",
               "r.toml:6:11: routes[1].percent must be in 0..100, got -1");
  expect_error("[[routes]]\npercent = 100.5\n",
               "r.toml:6:11: routes[1].percent must be in 0..100, got 100.5");
  expect_error("[[routes]]\npercent = -0.01\n",
               "r.toml:6:11: routes[1].percent must be in 0..100, got -0.01");
  expect_error("[[routes]]\npercent = nan\n",
               "r.toml:6:11: routes[1].percent must be in 0..100, got nan");
  expect_error("[[routes]]\npercent = inf\n",
               "r.toml:6:11: routes[1].percent must be in 0..100, got inf");
}

TEST(RoutesConfigErrors, ExactlyOneAction) {
  // Both: the later of the two values is the offending one.
  expect_error("[[routes]]\ntarget = \"new\"\npercent = 5\n",
               "r.toml:7:11: routes[1] sets both target and percent: a rule has one action");
  expect_error("[[routes]]\npercent = 5\ntarget = \"new\"\n",
               "r.toml:7:10: routes[1] sets both target and percent: a rule has one action");
  // Neither: the rule's header.
  expect_error("[[routes]]\nname = \"x\"\n",
               "r.toml:5:1: routes[1] has no action: set target ('old', 'new' or 'primary') or "
               "percent (0..100)");
  expect_error("[[routes]]\ntarget = \"new\"\n[[routes]]\nusers = \"app\"\n",
               "r.toml:7:1: routes[2] has no action: set target ('old', 'new' or 'primary') or "
               "percent (0..100)");
  expect_error(load_top("routes = [{}]\n"),
               "r.toml:1:11: routes[1] has no action: set target ('old', 'new' or 'primary') or "
               "percent (0..100)");
  // A bad value is reported once, not also as a missing action.
  expect_error("[[routes]]\npercent = 500\n",
               "r.toml:6:11: routes[1].percent must be in 0..100, got 500");
}

TEST(RoutesConfigErrors, UnknownTarget) {
  expect_error("[[routes]]\ntarget = \"mid\"\n",
               "r.toml:6:10: routes[1].target must be one of 'old', 'new', 'primary', got 'mid'");
  expect_error("[[routes]]\ntarget = \"NEW\"\n",
               "r.toml:6:10: routes[1].target must be one of 'old', 'new', 'primary', got 'NEW'");
}

TEST(RoutesConfigErrors, BadHashKey) {
  expect_error("[[routes]]\npercent = 5\nhash_key = \"ip\"\n",
               "r.toml:7:12: routes[1].hash_key must be one of 'session', 'user', "
               "'application_name', 'client_address', 'tag:<name>', got 'ip'");
  expect_error("[[routes]]\npercent = 5\nhash_key = \"tag\"\n",
               "r.toml:7:12: routes[1].hash_key must be one of 'session', 'user', "
               "'application_name', 'client_address', 'tag:<name>', got 'tag'");
  expect_error("[[routes]]\npercent = 5\nhash_key = \"tag:\"\n",
               "r.toml:7:12: routes[1].hash_key 'tag:' needs a tag name, e.g. 'tag:tenant'");
}

TEST(RoutesConfigErrors, DuplicateNames) {
  expect_error(R"([[routes]]
name = "a"
target = "new"
[[routes]]
name = "a"
target = "old"
)",
               "r.toml:9:8: duplicate route name 'a': the route at line 5 has it too");
  // An explicit name equal to an earlier rule's default name.
  expect_error(R"([[routes]]
target = "new"
[[routes]]
name = "route-1"
target = "old"
)",
               "r.toml:8:8: duplicate route name 'route-1': the route at line 5 has it as default "
               "name");
  // A default name equal to an earlier rule's explicit name: points at the unnamed rule.
  expect_error(R"([[routes]]
name = "route-2"
target = "new"
[[routes]]
target = "old"
)",
               "r.toml:8:1: this route's default name 'route-2' is already used by the route at "
               "line 5: give one of them another name");
}

TEST(RoutesConfigErrors, BadNames) {
  expect_error("[[routes]]\nname = \"\"\ntarget = \"new\"\n",
               "r.toml:6:8: routes[1].name must not be empty");
  expect_error("[[routes]]\nname = \"a\\nb\"\ntarget = \"new\"\n",
               "r.toml:6:8: routes[1].name must not contain control characters");
}

TEST(RoutesConfigErrors, MalformedCidrs) {
  const auto r = load(R"([[routes]]
target = "new"
client_cidrs = [
  "10.0.0.0/33",
  "::/129",
  "10.0.0.256/8",
  "1.2.3",
  "example.com",
  "10.0.0.0/",
  "10.0.0.0/-1",
  "10.0.0.0/8x",
  "10.0.0.0/0008",
  "10.1.0.0/8",
  "fe80::1/10",
  "[::1]/128",
  "/8",
  " 10.0.0.0/8",
]
)");
  const std::string p = "routes[1].client_cidrs entry ";
  const std::vector<std::string> want = {
      "r.toml:8:3: " + p + "'10.0.0.0/33': prefix length 33 is out of range 0..32 for IPv4",
      "r.toml:9:3: " + p + "'::/129': prefix length 129 is out of range 0..128 for IPv6",
      "r.toml:10:3: " + p + "'10.0.0.256/8': '10.0.0.256' is not an IPv4 or IPv6 address",
      "r.toml:11:3: " + p + "'1.2.3': not an IPv4 or IPv6 address or network",
      "r.toml:12:3: " + p + "'example.com': not an IPv4 or IPv6 address or network",
      "r.toml:13:3: " + p + "'10.0.0.0/': prefix length '' is not a number",
      "r.toml:14:3: " + p + "'10.0.0.0/-1': prefix length '-1' is not a number",
      "r.toml:15:3: " + p + "'10.0.0.0/8x': prefix length '8x' is not a number",
      "r.toml:16:3: " + p + "'10.0.0.0/0008': prefix length '0008' is not a number",
      "r.toml:17:3: " + p +
          "'10.1.0.0/8': address has bits set beyond the /8 prefix (the network is 10.0.0.0/8)",
      "r.toml:18:3: " + p +
          "'fe80::1/10': address has bits set beyond the /10 prefix (the network is fe80::/10)",
      "r.toml:19:3: " + p + "'[::1]/128': '[::1]' is not an IPv4 or IPv6 address",
      "r.toml:20:3: " + p + "'/8': '' is not an IPv4 or IPv6 address",
      "r.toml:21:3: " + p + "' 10.0.0.0/8': ' 10.0.0.0' is not an IPv4 or IPv6 address",
  };
  EXPECT_EQ(messages(r), want);
}

TEST(RoutesConfigErrors, MalformedFingerprints) {
  const auto r = load(R"([[routes]]
target = "new"
fingerprints = ["a0b1c2d3e4f5061", "a0b1c2d3e4f506170", "g0b1c2d3e4f50617", "0xb1c2d3e4f50617"]
)");
  const std::string tail = ": must be 16 hex digits (as pg_query_fingerprint gives them)";
  const std::vector<std::string> want = {
      "r.toml:7:17: routes[1].fingerprints entry 'a0b1c2d3e4f5061'" + tail,
      "r.toml:7:36: routes[1].fingerprints entry 'a0b1c2d3e4f506170'" + tail,
      "r.toml:7:57: routes[1].fingerprints entry 'g0b1c2d3e4f50617'" + tail,
      "r.toml:7:77: routes[1].fingerprints entry '0xb1c2d3e4f50617'" + tail,
  };
  EXPECT_EQ(messages(r), want);
}

TEST(RoutesConfigErrors, MalformedTables) {
  const auto r = load(R"([[routes]]
target = "new"
tables = ["db.public.t", ".t", "public.", "my table", "ok"]
)");
  const std::vector<std::string> want = {
      "r.toml:7:11: routes[1].tables entry 'db.public.t': must be \"name\" or \"schema.name\"",
      "r.toml:7:26: routes[1].tables entry '.t': has an empty schema or table name",
      "r.toml:7:32: routes[1].tables entry 'public.': has an empty schema or table name",
      "r.toml:7:43: routes[1].tables entry 'my table': must not contain whitespace",
  };
  EXPECT_EQ(messages(r), want);
}

TEST(RoutesConfigErrors, EmptyStringsAndEmptyLists) {
  const auto r = load(R"([[routes]]
target = "new"
users = ["app", ""]
databases = ""
application_names = []
client_cidrs = [""]
tables = [""]
fingerprints = [""]
tags = { tenant = ["42", ""], route = [], "" = "x" }
[[routes]]
target = "new"
tags = {}
)");
  const std::vector<std::string> want = {
      "r.toml:7:17: routes[1].users entries must not be empty",
      "r.toml:8:13: routes[1].databases entries must not be empty",
      "r.toml:9:21: routes[1].application_names must not be empty (leave the key out to match "
      "any value)",
      "r.toml:10:17: routes[1].client_cidrs entries must not be empty",
      "r.toml:11:11: routes[1].tables entries must not be empty",
      "r.toml:12:17: routes[1].fingerprints entries must not be empty",
      "r.toml:13:26: routes[1].tags.tenant entries must not be empty",
      "r.toml:13:39: routes[1].tags.route must not be empty (leave the key out to match any "
      "value)",
      "r.toml:13:43: routes[1].tags tag names must not be empty",
      "r.toml:16:8: routes[2].tags must not be empty (leave the key out to match any tags)",
  };
  EXPECT_EQ(messages(r), want);
}

TEST(RoutesConfigErrors, ShadowSampleRateOutOfRange) {
  expect_error("[[routes]]\ntarget = \"new\"\nshadow_sample_rate = 1.01\n",
               "r.toml:7:22: routes[1].shadow_sample_rate must be in 0..1, got 1.01");
  expect_error("[[routes]]\ntarget = \"new\"\nshadow_sample_rate = -0.5\n",
               "r.toml:7:22: routes[1].shadow_sample_rate must be in 0..1, got -0.5");
  expect_error("[[routes]]\ntarget = \"new\"\nshadow_sample_rate = 2\n",
               "r.toml:7:22: routes[1].shadow_sample_rate must be in 0..1, got 2");
}

TEST(RoutesConfigErrors, BreakerValues) {
  const auto r = load(R"([breaker]
enabled = "yes"
window_ms = 0
min_requests = 0
error_rate = 1.5
mismatch_rate = -0.1
cooldown_ms = 86400001
half_open_requests = 0
)");
  const std::vector<std::string> want = {
      "r.toml:6:11: breaker.enabled must be a boolean, got string",
      "r.toml:7:13: breaker.window_ms must be in 1..86400000, got 0",
      "r.toml:8:16: breaker.min_requests must be in 1..1000000, got 0",
      "r.toml:9:14: breaker.error_rate must be in 0..1, got 1.5",
      "r.toml:10:17: breaker.mismatch_rate must be in 0..1, got -0.1",
      "r.toml:11:15: breaker.cooldown_ms must be in 1..86400000, got 86400001",
      "r.toml:12:22: breaker.half_open_requests must be in 1..1000000, got 0",
  };
  EXPECT_EQ(messages(r), want);

  expect_error("[breaker]\nwindow_ms = 86400001\n",
               "r.toml:6:13: breaker.window_ms must be in 1..86400000, got 86400001");
  expect_error("[breaker]\ncooldown_ms = 0\n",
               "r.toml:6:15: breaker.cooldown_ms must be in 1..86400000, got 0");
  expect_error("[breaker]\nwindow_ms = 1.5\n",
               "r.toml:6:13: breaker.window_ms must be an integer, got float");
  expect_error("[breaker]\nerror_rate = \"20%\"\n",
               "r.toml:6:14: breaker.error_rate must be a number, got string");
  expect_error(load_top("breaker = []\n"), "r.toml:1:11: breaker must be a table, got array");
}

TEST(RoutesConfigErrors, BreakerRateOfZeroWouldAlwaysOpen) {
  const std::string tail =
      " must be above 0: the breaker opens when the rate reaches it, so 0 would open it with no "
      "failure at all";
  expect_error("[breaker]\nerror_rate = 0\n", "r.toml:6:14: breaker.error_rate" + tail);
  expect_error("[breaker]\nmismatch_rate = 0.0\n", "r.toml:6:17: breaker.mismatch_rate" + tail);
}

TEST(RoutesConfigErrors, AllReportedAtOnceInFileOrder) {
  const auto r = load(R"([routing]
hash_seed = 7
[[routes]]
name = "a"
percent = 150
hash_key = "tag:"
[[routes]]
name = "a"
client_cidrs = "10.0.0.0/40"
[breaker]
half_open_requests = 0
)");
  const std::vector<std::string> want = {
      "r.toml:6:13: routing.hash_seed must be a string, got integer",
      "r.toml:9:11: routes[1].percent must be in 0..100, got 150",
      "r.toml:10:12: routes[1].hash_key 'tag:' needs a tag name, e.g. 'tag:tenant'",
      "r.toml:11:1: routes[2] has no action: set target ('old', 'new' or 'primary') or percent "
      "(0..100)",
      "r.toml:12:8: duplicate route name 'a': the route at line 7 has it too",
      "r.toml:13:16: routes[2].client_cidrs entry '10.0.0.0/40': prefix length 40 is out of range "
      "0..32 for IPv4",
      "r.toml:15:22: breaker.half_open_requests must be in 1..1000000, got 0",
  };
  EXPECT_EQ(messages(r), want);
}

std::string read_example() {
  std::ifstream in(PGTANDEM_TEST_DATA_DIR "/../../../../examples/pgtandem.toml");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// config_test.cc (ExampleFileIsValid) checks that the file as shipped loads; these check what it
// shows for routing, including the commented-out rules.
TEST(RoutesConfigExample, ShippedFileHasDefaultsAndNoRules) {
  const std::string text = read_example();
  ASSERT_FALSE(text.empty());
  const auto r = load_string(text, "pgtandem.toml");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(messages(r));
  const Config defaults;
  EXPECT_TRUE(r.config->routes.empty());
  EXPECT_EQ(r.config->routing.hash_seed, defaults.routing.hash_seed);
  EXPECT_EQ(r.config->routing.read_your_writes, defaults.routing.read_your_writes);
  EXPECT_EQ(r.config->routing.fallback_to_primary, defaults.routing.fallback_to_primary);
  EXPECT_EQ(r.config->breaker.enabled, defaults.breaker.enabled);
  EXPECT_EQ(r.config->breaker.window_ms, defaults.breaker.window_ms);
  EXPECT_EQ(r.config->breaker.min_requests, defaults.breaker.min_requests);
  EXPECT_DOUBLE_EQ(r.config->breaker.error_rate, defaults.breaker.error_rate);
  EXPECT_DOUBLE_EQ(r.config->breaker.mismatch_rate, defaults.breaker.mismatch_rate);
  EXPECT_EQ(r.config->breaker.cooldown_ms, defaults.breaker.cooldown_ms);
  EXPECT_EQ(r.config->breaker.half_open_requests, defaults.breaker.half_open_requests);
}

TEST(RoutesConfigExample, CommentedRulesAreValidWhenUncommented) {
  // From the first "# [[routes]]" to the next uncommented line, uncomment "# [[routes]]" and
  // "# key = value" lines; the prose around them stays a comment.
  const std::regex toml_line(R"(^# (\[\[routes\]\]|[a-z_]+ = .*)$)");
  std::istringstream in(read_example());
  std::string out;
  std::string line;
  bool in_block = false;
  int uncommented = 0;
  while (std::getline(in, line)) {
    if (line == "# [[routes]]") in_block = true;
    if (in_block && (line.empty() || line[0] != '#')) in_block = false;
    if (in_block && std::regex_match(line, toml_line)) {
      line = line.substr(2);
      ++uncommented;
    }
    out += line + "\n";
  }
  ASSERT_GT(uncommented, 10);
  const auto r = load_string(out, "pgtandem.toml (uncommented)");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(messages(r));
  const auto& routes = r.config->routes;
  ASSERT_EQ(routes.size(), 4u);
  EXPECT_EQ(routes[0].name, "canary-5pct");
  EXPECT_DOUBLE_EQ(routes[0].percent.value(), 5);
  EXPECT_EQ(routes[0].hash_key, "user");
  EXPECT_EQ(routes[0].match.users.size(), 2u);
  EXPECT_DOUBLE_EQ(routes[0].shadow_sample_rate.value(), 0.01);
  EXPECT_EQ(routes[1].name, "tenants-on-new");
  ASSERT_EQ(routes[1].match.tags.size(), 1u);
  EXPECT_EQ(routes[1].match.tags[0].second, (std::vector<std::string>{"42", "43"}));
  EXPECT_EQ(routes[1].target, "new");
  EXPECT_EQ(routes[2].name, "reports");
  EXPECT_EQ(routes[2].match.client_cidrs.size(), 3u);
  EXPECT_EQ(routes[3].name, "pinned");
  EXPECT_EQ(routes[3].target, "primary");
  for (const auto& route : routes) EXPECT_GT(route.line, 0u);
}

// The documented examples in docs/configuration.md load as written.
TEST(RoutesConfigExample, DocumentedExamplesAreValid) {
  std::ifstream in(PGTANDEM_TEST_DATA_DIR "/../../../../docs/configuration.md");
  std::stringstream text;
  text << in.rdbuf();
  const std::string doc = text.str();
  const size_t section = doc.find("## `[[routes]]`");
  ASSERT_NE(section, std::string::npos);
  const size_t begin = doc.find("```toml\n", section);
  ASSERT_NE(begin, std::string::npos);
  const size_t end = doc.find("```\n", begin + 8);
  ASSERT_NE(end, std::string::npos);
  const std::string example = doc.substr(begin + 8, end - begin - 8);
  const auto r = load_string(std::string(kTargets) + example, "configuration.md");
  ASSERT_TRUE(r.ok()) << ::testing::PrintToString(messages(r));
  EXPECT_EQ(r.config->routes.size(), 5u);
  EXPECT_EQ(r.config->routes[0].hash_key, "user");
  EXPECT_DOUBLE_EQ(r.config->routes[0].percent.value(), 5);
}

}  // namespace
}  // namespace pgtandem::config

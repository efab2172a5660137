// describe_changes(): what a reload changed, in the words of the audit log.
#include "proxy/control/config_diff.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pgtandem::proxy {
namespace {

using Lines = std::vector<std::string>;

constexpr const char* kTargets = R"(
[targets.old]
host = "10.0.0.5"

[targets.new]
host = "10.0.0.6"
)";

config::Config parse(const std::string& toml) {
  auto r = config::load_string(toml, "test.toml");
  if (!r.ok()) {
    std::string all;
    for (const auto& e : r.errors) all += e.to_string() + "\n";
    ADD_FAILURE() << "config does not load:\n" << all << toml;
    return {};
  }
  return *r.config;
}

config::Config with(const std::string& top, const std::string& tables = "") {
  return parse(top + "\n" + kTargets + "\n" + tables);
}

TEST(DescribeChanges, SameConfigHasNoChanges) {
  const auto c = with("primary = \"old\"", "[[routes]]\nname = \"canary\"\npercent = 5\n");
  EXPECT_EQ(describe_changes(c, c), Lines{});
  EXPECT_TRUE(diff_configs(c, c).empty());
}

TEST(DescribeChanges, PrimaryFlip) {
  EXPECT_EQ(describe_changes(with("primary = \"old\""), with("primary = \"new\"")),
            Lines{"primary: old -> new"});
}

TEST(DescribeChanges, RoutePercent) {
  const auto before = with("", "[[routes]]\nname = \"canary\"\npercent = 5\n");
  const auto after = with("", "[[routes]]\nname = \"canary\"\npercent = 10\n");
  EXPECT_EQ(describe_changes(before, after), Lines{"routes[canary].percent: 5 -> 10"});
  auto changes = diff_configs(before, after);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].key, "routes[canary].percent");
  EXPECT_FALSE(changes[0].restart_required);
}

TEST(DescribeChanges, FractionalValuesAreShortest) {
  const auto before = with("", "[breaker]\nerror_rate = 0.2\n");
  const auto after = with("", "[breaker]\nerror_rate = 0.3\n");
  EXPECT_EQ(describe_changes(before, after), Lines{"breaker.error_rate: 0.2 -> 0.3"});
  const auto p1 = with("", "[[routes]]\nname = \"c\"\npercent = 2.5\n");
  const auto p2 = with("", "[[routes]]\nname = \"c\"\npercent = 12.75\n");
  EXPECT_EQ(describe_changes(p1, p2), Lines{"routes[c].percent: 2.5 -> 12.75"});
}

TEST(DescribeChanges, RoutesAddedRemovedAndReordered) {
  const auto before = with("",
                           "[[routes]]\nname = \"a\"\ntarget = \"new\"\n"
                           "[[routes]]\nname = \"b\"\npercent = 1\n"
                           "[[routes]]\nname = \"gone\"\npercent = 1\n");
  const auto after = with("",
                          "[[routes]]\nname = \"b\"\npercent = 1\n"
                          "[[routes]]\nname = \"x\"\npercent = 3\n"
                          "[[routes]]\nname = \"a\"\ntarget = \"new\"\n");
  EXPECT_EQ(describe_changes(before, after),
            (Lines{"routes: removed \"gone\"", "routes: added \"x\"",
                   "routes: order \"a\", \"b\" -> \"b\", \"a\""}));
}

TEST(DescribeChanges, AddingARuleAtTheEndIsNotAReorder) {
  const auto before = with("", "[[routes]]\nname = \"a\"\ntarget = \"new\"\n");
  const auto after = with("",
                          "[[routes]]\nname = \"a\"\ntarget = \"new\"\n"
                          "[[routes]]\nname = \"b\"\npercent = 1\n");
  EXPECT_EQ(describe_changes(before, after), Lines{"routes: added \"b\""});
  EXPECT_EQ(describe_changes(after, before), Lines{"routes: removed \"b\""});
}

TEST(DescribeChanges, RouteActionSwitchAndMatchLists) {
  const auto before = with("",
                           "[[routes]]\nname = \"seg\"\nusers = [\"app\"]\ntarget = \"new\"\n"
                           "tags = { tenant = [\"1\"] }\n");
  const auto after =
      with("",
           "[[routes]]\nname = \"seg\"\nusers = [\"app\", \"report er\"]\n"
           "percent = 50\nhash_key = \"user\"\ntags = { tenant = [\"1\", \"2\"] }\n");
  EXPECT_EQ(describe_changes(before, after),
            (Lines{"routes[seg].users: [\"app\"] -> [\"app\", \"report er\"]",
                   "routes[seg].tags: {tenant = [\"1\"]} -> {tenant = [\"1\", \"2\"]}",
                   "routes[seg].target: new -> (unset)", "routes[seg].percent: (unset) -> 50",
                   "routes[seg].hash_key: session -> user"}));
}

TEST(DescribeChanges, MovingARuleInTheFileIsNotAChange) {
  const auto before = with("", "[[routes]]\nname = \"a\"\npercent = 1\n");
  const auto after = with("", "\n\n\n# moved down\n[[routes]]\nname = \"a\"\npercent = 1\n");
  EXPECT_EQ(describe_changes(before, after), Lines{});
}

TEST(DescribeChanges, RuleNamesThatNeedQuoting) {
  const auto before = with("", "[[routes]]\nname = \"two words\"\npercent = 1\n");
  const auto after = with("", "[[routes]]\nname = \"two words\"\npercent = 2\n");
  EXPECT_EQ(describe_changes(before, after), Lines{"routes[\"two words\"].percent: 1 -> 2"});
}

TEST(DescribeChanges, RestartOnlySettingsAreMarked) {
  const auto before = with("workers = 2");
  const auto after =
      parse(std::string("workers = 4\n[listen]\naddresses = [\"127.0.0.1:7000\"]\n") +
            "[targets.old]\nhost = \"10.0.0.5\"\nport = 5433\n"
            "[targets.new]\nhost = \"10.0.0.6\"\n"
            "[limits]\nmax_client_connections = 5\n"
            "[admin]\nlisten = \"127.0.0.1:9999\"\n"
            "[mirror]\njournal_path = \"/tmp/j\"\noverflow = \"block\"\n"
            "[log]\nlevel = \"debug\"\n");
  EXPECT_EQ(
      describe_changes(before, after),
      (Lines{"workers: 2 -> 4 (restart required)",
             "listen.addresses: [\"127.0.0.1:6432\"] -> [\"127.0.0.1:7000\"] (restart required)",
             "targets.old.port: 5432 -> 5433 (restart required)",
             "limits.max_client_connections: 10000 -> 5 (restart required)",
             "admin.listen: 127.0.0.1:9930 -> 127.0.0.1:9999 (restart required)",
             "mirror.overflow: journal -> block",
             "mirror.journal_path: /var/lib/pgtandem/mirror.journal -> /tmp/j (restart required)",
             "log.level: info -> debug"}));
  std::vector<std::string> restart;
  for (const auto& c : diff_configs(before, after))
    if (c.restart_required) restart.push_back(c.key);
  EXPECT_EQ(restart,
            (Lines{"workers", "listen.addresses", "targets.old.port",
                   "limits.max_client_connections", "admin.listen", "mirror.journal_path"}));
}

TEST(DescribeChanges, EmptyStringsAndBooleans) {
  const auto before = with("mirror_writes = false");
  const auto after = with("mirror_writes = true", "[classifier]\ncatalog_user = \"pgtandem\"\n");
  EXPECT_EQ(describe_changes(before, after),
            (Lines{"mirror_writes: false -> true",
                   "classifier.catalog_user: \"\" -> pgtandem (restart required)"}));
}

TEST(DescribeChanges, RoutingSection) {
  const auto before = with("");
  const auto after = with("", "[routing]\nhash_seed = \"s2\"\nread_your_writes = false\n");
  EXPECT_EQ(describe_changes(before, after), (Lines{"routing.hash_seed: pgtandem -> s2",
                                                    "routing.read_your_writes: true -> false"}));
}

}  // namespace
}  // namespace pgtandem::proxy

namespace pgtandem::proxy {
namespace {

TEST(DescribeChanges, AuthModeNeedsARestartFileAndMethodDoNot) {
  const auto before = with("", "[auth]\nmode = \"file\"\nfile = \"/a\"\n");
  const auto after = with("", "[auth]\nmode = \"relay\"\nfile = \"/b\"\nmethod = \"md5\"\n");
  EXPECT_EQ(describe_changes(before, after),
            (Lines{"auth.mode: file -> relay (restart required)", "auth.file: /a -> /b",
                   "auth.method: scram-sha-256 -> md5"}));
}

}  // namespace
}  // namespace pgtandem::proxy

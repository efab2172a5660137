#include "config/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

namespace pgtandem::config {
namespace {

// The two targets every valid file needs, for tests about other sections.
constexpr const char* kTargets = R"(
[targets.old]
port = 5432
[targets.new]
port = 5433
)";

struct Where {
  uint32_t line;
  uint32_t column;
};

// Asserts exactly one error, at the given place, whose message contains `fragment`.
void expect_one_error(const LoadResult& r, Where where, const std::string& fragment) {
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 1u) << r.errors.front().to_string();
  const Error& e = r.errors.front();
  EXPECT_EQ(e.line, where.line) << e.to_string();
  EXPECT_EQ(e.column, where.column) << e.to_string();
  EXPECT_NE(e.message.find(fragment), std::string::npos) << e.to_string();
}

TEST(ConfigLoad, ValidFullFile) {
  const auto r = load_string(R"(primary = "new"
workers = 4
[listen]
addresses = ["0.0.0.0:6432", "[::1]:6433", "*:6434", "localhost:6435"]
unix_socket_dir = "/var/run/pgtandem"
[targets.old]
host = "db-old.internal"
port = 5432
unix_socket_dir = "/var/run/postgresql"
[targets.new]
host = "10.0.0.7"
port = 6543
[limits]
max_message_size = 65536
startup_timeout_ms = 2000
connect_timeout_ms = 300
max_unauthenticated = 50
max_client_connections = 500
[admin]
listen = "0.0.0.0:9100"
[log]
level = "debug"
format = "json"
)");
  ASSERT_TRUE(r.ok()) << r.errors.front().to_string();
  const Config& c = *r.config;
  EXPECT_EQ(c.primary, "new");
  EXPECT_EQ(c.workers, 4u);
  ASSERT_EQ(c.listen.size(), 4u);
  EXPECT_EQ(c.listen[0].host, "0.0.0.0");
  EXPECT_EQ(c.listen[0].port, 6432);
  EXPECT_EQ(c.listen[1].host, "::1");
  EXPECT_EQ(c.listen[1].port, 6433);
  EXPECT_EQ(c.listen[2].host, "*");
  EXPECT_EQ(c.listen[2].port, 6434);
  EXPECT_EQ(c.listen[3].host, "localhost");
  EXPECT_EQ(c.unix_socket_dir, "/var/run/pgtandem");
  ASSERT_EQ(c.targets.size(), 2u);
  const Target* old_target = c.find_target("old");
  const Target* new_target = c.find_target("new");
  ASSERT_NE(old_target, nullptr);
  ASSERT_NE(new_target, nullptr);
  EXPECT_EQ(old_target->host, "db-old.internal");
  EXPECT_EQ(old_target->port, 5432);
  EXPECT_EQ(old_target->unix_socket_dir, "/var/run/postgresql");
  EXPECT_EQ(new_target->host, "10.0.0.7");
  EXPECT_EQ(new_target->port, 6543);
  EXPECT_EQ(new_target->unix_socket_dir, "");
  EXPECT_EQ(&c.primary_target(), new_target);
  EXPECT_EQ(c.limits.max_message_size, 65536u);
  EXPECT_EQ(c.limits.startup_timeout_ms, 2000u);
  EXPECT_EQ(c.limits.connect_timeout_ms, 300u);
  EXPECT_EQ(c.limits.max_unauthenticated, 50u);
  EXPECT_EQ(c.limits.max_client_connections, 500u);
  EXPECT_EQ(c.admin.listen_host, "0.0.0.0");
  EXPECT_EQ(c.admin.listen_port, 9100);
  EXPECT_TRUE(c.admin.enabled());
  EXPECT_EQ(c.log.level, "debug");
  EXPECT_EQ(c.log.format, "json");
  EXPECT_EQ(r.source_hash.size(), 16u);
}

TEST(ConfigLoad, DefaultsWhenOnlyTargetsAreGiven) {
  const auto r = load_string("[targets.old]\n[targets.new]\nport = 5433\n");
  ASSERT_TRUE(r.ok()) << r.errors.front().to_string();
  const Config& c = *r.config;
  EXPECT_EQ(c.primary, "old");
  EXPECT_EQ(c.workers, 0u);
  EXPECT_EQ(c.io_backend, "auto");
  ASSERT_EQ(c.listen.size(), 1u);
  EXPECT_EQ(c.listen[0].host, "127.0.0.1");
  EXPECT_EQ(c.listen[0].port, 6432);
  EXPECT_EQ(c.unix_socket_dir, "");
  ASSERT_EQ(c.targets.size(), 2u);
  EXPECT_EQ(c.targets[0].name, "old");
  EXPECT_EQ(c.targets[0].host, "127.0.0.1");
  EXPECT_EQ(c.targets[0].port, 5432);
  EXPECT_EQ(c.targets[1].name, "new");
  EXPECT_EQ(c.targets[1].port, 5433);
  EXPECT_EQ(c.primary_target().name, "old");
  EXPECT_EQ(c.limits.max_message_size, 1073741822u);
  EXPECT_EQ(c.limits.startup_timeout_ms, 10000u);
  EXPECT_EQ(c.limits.connect_timeout_ms, 5000u);
  EXPECT_EQ(c.limits.max_unauthenticated, 1000u);
  EXPECT_EQ(c.limits.max_client_connections, 10000u);
  EXPECT_EQ(c.admin.listen_host, "127.0.0.1");
  EXPECT_EQ(c.admin.listen_port, 9930);
  EXPECT_EQ(c.log.level, "info");
  EXPECT_EQ(c.log.format, "logfmt");
}

TEST(ConfigLoad, SyntaxErrorReportsTomlLineAndColumn) {
  const auto r = load_string("workers = 1\n[limits\nmax_message_size = 2048\n", "bad.toml");
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].file, "bad.toml");
  EXPECT_EQ(r.errors[0].line, 2u);
  EXPECT_GT(r.errors[0].column, 1u);
  EXPECT_EQ(r.errors[0].to_string().rfind("bad.toml:2:", 0), 0u) << r.errors[0].to_string();
}

TEST(ConfigLoad, SyntaxErrorValueWithoutType) {
  expect_one_error(load_string("workers = 1\nprimary = old\n"), {2, 11}, "parsing");
}

TEST(ConfigLoad, DuplicateKeyIsASyntaxError) {
  expect_one_error(load_string("workers = 1\nworkers = 2\n"), {2, 11}, "redefine");
}

TEST(ConfigLoad, UnknownKeyAtTopLevel) {
  expect_one_error(load_string(std::string("worker = 2\n") + kTargets), {1, 1},
                   "unknown key 'worker' at top level");
}

TEST(ConfigLoad, UnknownKeyInSection) {
  expect_one_error(
      load_string(std::string("[limits]\nstartup_timeout_ms = 5\n  max_msg_size = 9\n") + kTargets),
      {3, 3}, "unknown key 'max_msg_size' in [limits]");
}

TEST(ConfigLoad, UnknownKeyInTarget) {
  expect_one_error(load_string("[targets.old]\nhots = \"x\"\n[targets.new]\nport = 1\n"), {2, 1},
                   "unknown key 'hots' in [targets.old]");
}

TEST(ConfigLoad, UnknownTargetName) {
  expect_one_error(load_string(std::string(kTargets) + "[targets.mid]\nport = 7\n"), {6, 10},
                   "unknown key 'mid' in [targets]");
}

TEST(ConfigLoad, UnknownNestedTableAndInlineKey) {
  const auto r = load_string(std::string("[limits.extra]\nx = 1\n[log]\nlevel = \"info\"\n") +
                             "colour = { a = 1 }\n" + kTargets);
  ASSERT_EQ(r.errors.size(), 2u);
  EXPECT_EQ(r.errors[0].line, 1u);
  EXPECT_EQ(r.errors[0].column, 9u);
  EXPECT_EQ(r.errors[0].message, "unknown key 'extra' in [limits]");
  EXPECT_EQ(r.errors[1].line, 5u);
  EXPECT_EQ(r.errors[1].column, 1u);
  EXPECT_EQ(r.errors[1].message, "unknown key 'colour' in [log]");
}

TEST(ConfigLoad, WrongTypeReportsValuePosition) {
  expect_one_error(load_string("[targets.old]\nport = \"5432\"\n[targets.new]\nport = 5433\n"),
                   {2, 8}, "targets.old.port must be an integer, got string");
}

TEST(ConfigLoad, FloatIsNotAnInteger) {
  expect_one_error(load_string(std::string("workers = 2.0\n") + kTargets), {1, 11},
                   "workers must be an integer, got float");
}

TEST(ConfigLoad, SectionOfWrongType) {
  expect_one_error(load_string(std::string("limits = 3\n") + kTargets), {1, 10},
                   "limits must be a table, got integer");
}

TEST(ConfigLoad, PortOutOfRange) {
  expect_one_error(load_string("[targets.old]\nport = 70000\n[targets.new]\nport = 5433\n"), {2, 8},
                   "targets.old.port must be in 1..65535, got 70000");
  expect_one_error(load_string("[targets.old]\nport = 0\n[targets.new]\nport = 5433\n"), {2, 8},
                   "targets.old.port must be in 1..65535, got 0");
}

TEST(ConfigLoad, WorkersOutOfRange) {
  expect_one_error(load_string(std::string("workers = 1025\n") + kTargets), {1, 11},
                   "workers must be in 0..1024, got 1025");
  expect_one_error(load_string(std::string("workers = -1\n") + kTargets), {1, 11},
                   "workers must be in 0..1024, got -1");
}

TEST(ConfigLoad, LimitsOutOfRange) {
  expect_one_error(load_string(std::string("[limits]\nmax_message_size = 1023\n") + kTargets),
                   {2, 20}, "limits.max_message_size must be in 1024..1073741822, got 1023");
  expect_one_error(load_string(std::string("[limits]\nmax_message_size = 1073741823\n") + kTargets),
                   {2, 20}, "got 1073741823");
  expect_one_error(load_string(std::string("[limits]\nstartup_timeout_ms = 0\n") + kTargets),
                   {2, 22}, "limits.startup_timeout_ms must be in 1..");
  expect_one_error(load_string(std::string("[limits]\nconnect_timeout_ms = -5\n") + kTargets),
                   {2, 22}, "limits.connect_timeout_ms must be in 1..");
  expect_one_error(load_string(std::string("[limits]\nmax_client_connections = 0\n") + kTargets),
                   {2, 26}, "limits.max_client_connections must be in 1..");
}

TEST(ConfigLoad, BadListenAddresses) {
  const auto r = load_string(std::string(R"([listen]
addresses = [
  "127.0.0.1",
  "::1:6432",
  "example.com:6432",
  "127.0.0.1:0",
  "127.0.0.1:65536",
  "[::1:6432",
  "[::g]:6432",
  ":6432",
  "127.0.0.1:64x",
  7,
  "127.0.0.1:6432",
  "127.0.0.1:6432",
]
)") + kTargets);
  ASSERT_FALSE(r.ok());
  const std::vector<std::string> fragments = {
      "listen address '127.0.0.1': missing port",
      "IPv6 addresses must be in brackets",
      "host 'example.com' must be a numeric IPv4 address",
      "port 0 is out of range 1..65535",
      "port 65536 is out of range",
      "missing ']'",
      "'::g' is not a valid IPv6 address",
      "missing host",
      "port '64x' is not a number",
      "listen.addresses element must be a string, got integer",
      "duplicate listen address '127.0.0.1:6432'",
  };
  const std::vector<uint32_t> lines = {3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14};
  ASSERT_EQ(r.errors.size(), fragments.size());
  for (size_t i = 0; i < fragments.size(); ++i) {
    EXPECT_EQ(r.errors[i].line, lines[i]) << r.errors[i].to_string();
    EXPECT_EQ(r.errors[i].column, 3u) << r.errors[i].to_string();
    EXPECT_NE(r.errors[i].message.find(fragments[i]), std::string::npos) << r.errors[i].to_string();
  }
}

TEST(ConfigLoad, EmptyListenAddresses) {
  expect_one_error(load_string(std::string("[listen]\naddresses = []\n") + kTargets), {2, 13},
                   "listen.addresses must not be empty");
}

TEST(ConfigLoad, Ipv6Addresses) {
  const auto r = load_string(std::string(R"([listen]
addresses = ["[::]:6432", "[2001:db8::1]:7000", "[::ffff:127.0.0.1]:7001"]
[admin]
listen = "[::1]:9930"
[targets.old]
host = "::1"
[targets.new]
host = "fe80::2"
)"));
  ASSERT_TRUE(r.ok()) << r.errors.front().to_string();
  const Config& c = *r.config;
  ASSERT_EQ(c.listen.size(), 3u);
  EXPECT_EQ(c.listen[0].host, "::");
  EXPECT_EQ(c.listen[0].port, 6432);
  EXPECT_EQ(c.listen[1].host, "2001:db8::1");
  EXPECT_EQ(c.listen[1].port, 7000);
  EXPECT_EQ(c.listen[2].host, "::ffff:127.0.0.1");
  EXPECT_EQ(c.admin.listen_host, "::1");
  EXPECT_EQ(c.admin.listen_port, 9930);
  EXPECT_EQ(c.targets[0].host, "::1");
  EXPECT_EQ(c.targets[1].host, "fe80::2");
  EXPECT_EQ(format_host_port(c.listen[1].host, c.listen[1].port), "[2001:db8::1]:7000");
  EXPECT_EQ(format_host_port("10.1.2.3", 5), "10.1.2.3:5");
}

TEST(ConfigLoad, BadTargetHost) {
  expect_one_error(load_string("[targets.old]\nhost = \"db old\"\n[targets.new]\nport = 5433\n"),
                   {2, 8}, "targets.old.host 'db old' is not an IP address");
  expect_one_error(load_string("[targets.old]\nhost = \"[::1]\"\n[targets.new]\nport = 5433\n"),
                   {2, 8}, "targets.old.host '[::1]'");
  expect_one_error(load_string("[targets.old]\nhost = \"\"\n[targets.new]\nport = 5433\n"), {2, 8},
                   "targets.old.host ''");
}

TEST(ConfigLoad, MissingTarget) {
  expect_one_error(load_string("[targets.old]\nport = 5432\n"), {1, 1},
                   "missing [targets.new]: both targets 'old' and 'new' are required");
  expect_one_error(load_string("[targets.new]\nport = 5432\n"), {1, 1}, "missing [targets.old]");
}

TEST(ConfigLoad, MissingAllTargetsHasNoPlace) {
  const auto r = load_string("workers = 1\n", "cfg.toml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].line, 0u);
  EXPECT_EQ(r.errors[0].column, 0u);
  EXPECT_EQ(r.errors[0].to_string(),
            "cfg.toml: missing [targets.old] and [targets.new]: both targets are required");
}

TEST(ConfigLoad, TargetOfWrongType) {
  expect_one_error(load_string("[targets]\nold = 1\n[targets.new]\nport = 5433\n"), {2, 7},
                   "targets.old must be a table, got integer");
}

TEST(ConfigLoad, PrimaryMustNameATarget) {
  expect_one_error(load_string(std::string("primary = \"middle\"\n") + kTargets), {1, 11},
                   "primary must name a target ('old' or 'new'), got 'middle'");
  expect_one_error(load_string(std::string("primary = 1\n") + kTargets), {1, 11},
                   "primary must be a string, got integer");
}

TEST(ConfigLoad, SameServerForBothTargetsIsRejected) {
  expect_one_error(load_string("[targets.old]\nhost = \"10.0.0.1\"\n[targets.new]\n"
                               "host = \"10.0.0.1\"\n"),
                   {3, 1}, "targets 'old' and 'new' are the same server (10.0.0.1:5432)");
  expect_one_error(load_string("[targets.old]\nunix_socket_dir = \"/run/pg\"\n[targets.new]\n"
                               "unix_socket_dir = \"/run/pg\"\nhost = \"10.9.9.9\"\n"),
                   {3, 1}, "(/run/pg/.s.PGSQL.5432)");
  // Same port on different hosts, or on different socket directories, is fine.
  EXPECT_TRUE(load_string("[targets.old]\nhost = \"10.0.0.1\"\n[targets.new]\n"
                          "host = \"10.0.0.2\"\n")
                  .ok());
  EXPECT_TRUE(load_string("[targets.old]\nunix_socket_dir = \"/run/a\"\n[targets.new]\n"
                          "unix_socket_dir = \"/run/b\"\n")
                  .ok());
}

TEST(ConfigLoad, UnixSocketDirChecks) {
  expect_one_error(load_string(std::string("[listen]\nunix_socket_dir = \"run/pg\"\n") + kTargets),
                   {2, 19}, "listen.unix_socket_dir must be an absolute path");
  const std::string long_dir = "/" + std::string(100, 'd');
  expect_one_error(load_string("[targets.old]\nunix_socket_dir = \"" + long_dir +
                               "\"\n[targets.new]\nport = 5433\n"),
                   {2, 19}, "targets.old.unix_socket_dir is too long");
}

TEST(ConfigLoad, AdminListen) {
  auto r = load_string(std::string("[admin]\nlisten = \"\"\n") + kTargets);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r.config->admin.enabled());
  r = load_string(std::string("[admin]\nlisten = \"127.0.0.1:0\"\n") + kTargets);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r.config->admin.enabled());
  expect_one_error(load_string(std::string("[admin]\nlisten = \"9930\"\n") + kTargets), {2, 10},
                   "admin.listen '9930': missing port");
  expect_one_error(load_string(std::string("[admin]\nlisten = \"127.0.0.1:6432\"\n") + kTargets),
                   {2, 10}, "admin.listen 127.0.0.1:6432 is also in listen.addresses");
  expect_one_error(load_string(std::string("[admin]\nport = 9930\n") + kTargets), {2, 1},
                   "unknown key 'port' in [admin]");
}

TEST(ConfigLoad, LogEnums) {
  expect_one_error(load_string(std::string("[log]\nlevel = \"verbose\"\n") + kTargets), {2, 9},
                   "log.level must be one of 'debug', 'info', 'warn', 'error', got 'verbose'");
  expect_one_error(load_string(std::string("[log]\nformat = \"text\"\n") + kTargets), {2, 10},
                   "log.format must be one of 'logfmt', 'json', got 'text'");
}

TEST(ConfigLoad, AllErrorsAreReportedInFileOrder) {
  const auto r = load_string(R"(primary = "both"
workers = "many"
[listen]
addresses = ["1.2.3.4"]
[targets.old]
port = 99999
[limits]
connect_timeout_ms = 0
bogus = true
[log]
level = "loud"
)",
                             "multi.toml");
  ASSERT_FALSE(r.ok());
  std::vector<std::string> got;
  for (const auto& e : r.errors) got.push_back(e.to_string());
  const std::vector<std::string> want = {
      "multi.toml:1:11: primary must name a target ('old' or 'new'), got 'both'",
      "multi.toml:2:11: workers must be an integer, got string",
      "multi.toml:4:14: listen address '1.2.3.4': missing port (expected \"host:port\")",
      "multi.toml:5:1: missing [targets.new]: both targets 'old' and 'new' are required",
      "multi.toml:6:8: targets.old.port must be in 1..65535, got 99999",
      "multi.toml:8:22: limits.connect_timeout_ms must be in 1..86400000, got 0",
      "multi.toml:9:1: unknown key 'bogus' in [limits]",
      "multi.toml:11:9: log.level must be one of 'debug', 'info', 'warn', 'error', got 'loud'",
  };
  EXPECT_EQ(got, want);
}

TEST(ConfigLoad, EmptyFile) {
  const auto r = load_string("");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_NE(r.errors[0].message.find("missing [targets.old]"), std::string::npos);
}

TEST(ConfigLoadFile, MissingFile) {
  const auto r = load_file("/nonexistent/pgtandem.toml");
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].line, 0u);
  EXPECT_EQ(r.errors[0].to_string(),
            "/nonexistent/pgtandem.toml: cannot open file: No such file or directory");
  EXPECT_EQ(r.source_hash, "");
}

TEST(ConfigLoadFile, DirectoryIsAnError) {
  const auto r = load_file("/tmp");
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].line, 0u);
}

TEST(ConfigLoadFile, ReadsAndHashesAFile) {
  char path[] = "/tmp/pgtandem_config_test_XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  const std::string text = "[targets.old]\n[targets.new]\nport = 1\nbad = 2\n";
  std::ofstream(path) << text;
  const auto r = load_file(path);
  std::remove(path);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].to_string(),
            std::string(path) + ":4:1: unknown key 'bad' in [targets.new]");
  EXPECT_EQ(r.source_hash, config_hash(text));
}

TEST(ConfigLoadFile, ExampleFileIsValid) {
  const std::string path = PGTANDEM_TEST_DATA_DIR "/../../../../examples/pgtandem.toml";
  const auto r = load_file(path);
  ASSERT_TRUE(r.ok()) << r.errors.front().to_string();
  EXPECT_EQ(r.config->primary, "old");
  EXPECT_EQ(r.config->targets[1].port, 5433);
}

TEST(ConfigLoadFile, DataFiles) {
  const auto minimal = load_file(PGTANDEM_TEST_DATA_DIR "/minimal.toml");
  EXPECT_TRUE(minimal.ok()) << minimal.errors.front().to_string();
  const auto invalid = load_file(PGTANDEM_TEST_DATA_DIR "/invalid.toml");
  ASSERT_EQ(invalid.errors.size(), 3u);
  EXPECT_EQ(invalid.errors[0].line, 4u);
  EXPECT_EQ(invalid.errors[0].column, 14u);
  EXPECT_EQ(invalid.errors[1].line, 8u);
  EXPECT_EQ(invalid.errors[1].column, 8u);
  EXPECT_EQ(invalid.errors[2].line, 10u);
  EXPECT_EQ(invalid.errors[2].column, 9u);
}

TEST(ConfigHash, Fnv1a64) {
  EXPECT_EQ(config_hash(""), "cbf29ce484222325");
  EXPECT_EQ(config_hash("a"), "af63dc4c8601ec8c");
  EXPECT_EQ(config_hash("foobar"), "85944171f73967e8");
  EXPECT_NE(config_hash("workers = 1\n"), config_hash("workers = 2\n"));
}

}  // namespace
}  // namespace pgtandem::config

namespace pgtandem::config {
namespace {

constexpr const char* kIssue6Targets = R"(
[targets.old]
port = 5432
[targets.new]
port = 5433
)";

LoadResult load6(const std::string& head) { return load_string(head + kIssue6Targets, "p.toml"); }

TEST(Issue6Config, Defaults) {
  auto r = load6("");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.config->admin.token, "");
  EXPECT_EQ(r.config->admin.token_file, "");
  EXPECT_EQ(r.config->shutdown.drain_timeout_ms, 30000u);
  EXPECT_FALSE(r.config->log.statements);
}

TEST(Issue6Config, AllKeys) {
  auto r = load6("[admin]\nlisten = \"127.0.0.1:9931\"\ntoken = \"abc123\"\n"
                 "[shutdown]\ndrain_timeout_ms = 5000\n[log]\nstatements = true\n");
  ASSERT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors[0].to_string());
  EXPECT_EQ(r.config->admin.token, "abc123");
  EXPECT_EQ(r.config->shutdown.drain_timeout_ms, 5000u);
  EXPECT_TRUE(r.config->log.statements);
  r = load6("[admin]\ntoken_file = \"/etc/pgtandem/admin-token\"\n");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.config->admin.token_file, "/etc/pgtandem/admin-token");
}

TEST(Issue6Config, Errors) {
  auto r = load6("[admin]\ntoken = \"a\"\ntoken_file = \"/x\"\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.errors[0].to_string(),
            "p.toml:3:14: admin.token and admin.token_file are both set; use one");
  r = load6("[admin]\ntoken = \"\"\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.errors[0].line, 2u);
  r = load6("[admin]\ntoken = \"a b\"\n");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.errors[0].message.find("whitespace"), std::string::npos);
  r = load6("[admin]\ntoken = 5\n");
  ASSERT_FALSE(r.ok());
  r = load6("[shutdown]\ndrain_timeout_ms = -1\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.errors[0].line, 2u);
  EXPECT_EQ(r.errors[0].column, 20u);
  r = load6("[shutdown]\ndrain_timeout_ms = 3600001\n");
  ASSERT_FALSE(r.ok());
  r = load6("[shutdown]\ngrace = 1\n");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.errors[0].message.find("[shutdown]"), std::string::npos);
  r = load6("[log]\nstatements = \"yes\"\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.errors[0].line, 2u);
}

}  // namespace
}  // namespace pgtandem::config

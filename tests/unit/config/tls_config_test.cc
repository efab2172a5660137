// [tls] and the targets' sslmode keys (issue 6).
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
host = "db.example.com"
port = 5433
)";

LoadResult load(const std::string &text) { return load_string(text + kTargets, "t.toml"); }

std::string first_error(const LoadResult &r) {
  return r.errors.empty() ? std::string() : r.errors.front().to_string();
}

TEST(TlsConfig, DefaultsAreClientTlsOffAndTargetsPrefer) {
  auto r = load("");
  ASSERT_TRUE(r.ok()) << first_error(r);
  const Tls &t = r.config->tls;
  EXPECT_EQ(t.mode, "disable");
  EXPECT_FALSE(t.enabled());
  EXPECT_EQ(t.min_version, "1.2");
  EXPECT_TRUE(t.cert_file.empty());
  for (const auto &target : r.config->targets) {
    EXPECT_EQ(target.sslmode, "prefer");
    EXPECT_TRUE(target.sslrootcert.empty());
  }
}

TEST(TlsConfig, FullSection) {
  auto r = load(R"(
[tls]
mode = "require"
cert_file = "/etc/pgtandem/server.crt"
key_file = "/etc/pgtandem/server.key"
ca_file = "/etc/pgtandem/clients-ca.crt"
min_version = "1.3"
)");
  ASSERT_TRUE(r.ok()) << first_error(r);
  const Tls &t = r.config->tls;
  EXPECT_EQ(t.mode, "require");
  EXPECT_TRUE(t.enabled());
  EXPECT_EQ(t.cert_file, "/etc/pgtandem/server.crt");
  EXPECT_EQ(t.key_file, "/etc/pgtandem/server.key");
  EXPECT_EQ(t.ca_file, "/etc/pgtandem/clients-ca.crt");
  EXPECT_EQ(t.min_version, "1.3");
}

TEST(TlsConfig, EveryModeIsAccepted) {
  for (const char *mode : {"disable", "allow", "prefer", "require"}) {
    auto r = load(std::string("[tls]\nmode = \"") + mode +
                  "\"\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\n");
    ASSERT_TRUE(r.ok()) << mode << ": " << first_error(r);
    EXPECT_EQ(r.config->tls.mode, mode);
  }
}

TEST(TlsConfig, BadValuesAreErrorsWithPlace) {
  auto r = load("[tls]\nmode = \"verify-full\"\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(first_error(r),
            "t.toml:2:8: tls.mode must be one of 'disable', 'allow', 'prefer', 'require', got "
            "'verify-full'");

  r = load("[tls]\nmin_version = \"1.1\"\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(first_error(r), "t.toml:2:15: tls.min_version must be one of '1.2', '1.3', got '1.1'");

  r = load("[tls]\ncertfile = \"x\"\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(first_error(r), "t.toml:2:1: unknown key 'certfile' in [tls]");

  r = load("[tls]\ncert_file = \"\"\n");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(first_error(r).find("tls.cert_file must not be empty"), std::string::npos);

  r = load("[tls]\nmode = 1\n");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(first_error(r).find("tls.mode must be"), std::string::npos);
}

TEST(TlsConfig, EnabledModeNeedsCertificateAndKey) {
  auto r = load("[tls]\nmode = \"prefer\"\ncert_file = \"c.pem\"\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(first_error(r), "t.toml:2:8: tls.mode 'prefer' needs tls.cert_file and tls.key_file");
  // disable needs nothing, and files may be given ahead of turning it on.
  r = load("[tls]\nmode = \"disable\"\ncert_file = \"c.pem\"\n");
  EXPECT_TRUE(r.ok()) << first_error(r);
}

TEST(TlsConfig, TargetSslKeys) {
  auto r = load_string(R"(
[targets.old]
host = "127.0.0.1"
sslmode = "verify-full"
sslrootcert = "/etc/pgtandem/ca.crt"
sslcert = "/etc/pgtandem/client.crt"
sslkey = "/etc/pgtandem/client.key"
[targets.new]
host = "127.0.0.2"
sslmode = "disable"
)",
                       "t.toml");
  ASSERT_TRUE(r.ok()) << first_error(r);
  const Target &old_target = r.config->targets[0];
  EXPECT_EQ(old_target.sslmode, "verify-full");
  EXPECT_EQ(old_target.sslrootcert, "/etc/pgtandem/ca.crt");
  EXPECT_EQ(old_target.sslcert, "/etc/pgtandem/client.crt");
  EXPECT_EQ(old_target.sslkey, "/etc/pgtandem/client.key");
  EXPECT_EQ(r.config->targets[1].sslmode, "disable");
}

TEST(TlsConfig, TargetSslModeValidation) {
  auto bad = [](const std::string &old_keys) {
    auto r = load_string("[targets.old]\nhost = \"127.0.0.1\"\n" + old_keys +
                             "[targets.new]\nhost = \"127.0.0.2\"\n",
                         "t.toml");
    EXPECT_FALSE(r.ok()) << old_keys;
    return first_error(r);
  };
  EXPECT_EQ(bad("sslmode = \"allow\"\n"),
            "t.toml:3:11: targets.old.sslmode must be one of 'disable', 'prefer', 'require', "
            "'verify-ca', 'verify-full', got 'allow'");
  EXPECT_EQ(bad("sslmode = \"verify-ca\"\n"),
            "t.toml:3:11: targets.old.sslmode 'verify-ca' needs targets.old.sslrootcert (the CA file)");
  EXPECT_NE(bad("sslmode = \"verify-full\"\n").find("needs targets.old.sslrootcert"),
            std::string::npos);
  EXPECT_NE(bad("sslcert = \"c.pem\"\n").find("targets.old.sslcert and targets.old.sslkey go together"),
            std::string::npos);
  EXPECT_NE(bad("sslkey = \"k.pem\"\n").find("go together"), std::string::npos);
  EXPECT_NE(bad("unix_socket_dir = \"/tmp\"\nsslmode = \"require\"\n")
                .find("cannot be used with unix_socket_dir"),
            std::string::npos);
  EXPECT_NE(bad("sslrootcert = \"\"\n").find("must not be empty"), std::string::npos);
  // prefer and disable are fine over a Unix socket: no TLS is tried there.
  auto r = load_string(
      "[targets.old]\nunix_socket_dir = \"/tmp\"\nsslmode = \"prefer\"\n[targets.new]\nhost = "
      "\"127.0.0.2\"\n",
      "t.toml");
  EXPECT_TRUE(r.ok()) << first_error(r);
}

}  // namespace
}  // namespace pgtandem::config

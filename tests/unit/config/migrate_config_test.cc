// The [migrate] section (issue 13): the migration commands' settings.
#include <gtest/gtest.h>

#include <string>

#include "config/config.h"
#include "tests/unit/config/test_support.h"

namespace pgtandem::config {
namespace {

LoadResult load(const std::string &text) { return load_string(text + testing::kTwoTargets, "c.toml"); }

TEST(MigrateConfig, Defaults) {
  auto r = load("");
  ASSERT_TRUE(r.ok());
  const Migrate &m = r.config->migrate;
  EXPECT_EQ(m.user, "");
  EXPECT_EQ(m.dbname, "");
  EXPECT_EQ(m.jobs, 2u);
  EXPECT_EQ(m.chunk_rows, 10000u);
  EXPECT_EQ(m.chunk_memory, uint64_t{64} << 20);
  EXPECT_EQ(m.max_rate, 0u);
  EXPECT_EQ(m.commit_grace_ms, 50u);
  EXPECT_EQ(m.watermark_timeout_ms, 60000u);
  EXPECT_EQ(m.recheck_delay_ms, 1000u);
  EXPECT_TRUE(m.admins.empty());
  EXPECT_TRUE(m.use_admin_token);
  EXPECT_EQ(m.state_dir, "/var/lib/pgtandem") << "the proxy's state_dir, never the working directory";
}

TEST(MigrateConfig, StateDirFollowsTheTopLevelOne) {
  auto r = load("state_dir = \"/srv/pgt\"\n");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.config->migrate.state_dir, "/srv/pgt");
  r = load("state_dir = \"/srv/pgt/\"\n[migrate]\nstate_dir = \"migrate\"\n");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.config->migrate.state_dir, "/srv/pgt/migrate") << "relative: under state_dir";
  r = load("state_dir = \"/srv/pgt\"\n[migrate]\nstate_dir = \"/data/m\"\n");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.config->migrate.state_dir, "/data/m") << "absolute: as given";
}

TEST(MigrateConfig, FullSection) {
  auto r = load(R"([migrate]
user = "migrator"
dbname = "orders"
jobs = 8
chunk_rows = 50000
chunk_memory = 1048576
max_rate = 20000
commit_grace_ms = 20
watermark_timeout_ms = 5000
recheck_delay_ms = 0
admins = ["10.0.0.1:9930", "[::1]:9931", "pgtandem-2.internal:9930"]
use_admin_token = false
)");
  ASSERT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors[0].to_string());
  const Migrate &m = r.config->migrate;
  EXPECT_EQ(m.user, "migrator");
  EXPECT_EQ(m.dbname, "orders");
  EXPECT_EQ(m.jobs, 8u);
  EXPECT_EQ(m.chunk_rows, 50000u);
  EXPECT_EQ(m.chunk_memory, 1048576u);
  EXPECT_EQ(m.max_rate, 20000u);
  EXPECT_EQ(m.commit_grace_ms, 20u);
  EXPECT_EQ(m.watermark_timeout_ms, 5000u);
  EXPECT_EQ(m.recheck_delay_ms, 0u);
  ASSERT_EQ(m.admins.size(), 3u);
  EXPECT_EQ(m.admins[1], "[::1]:9931");
  EXPECT_FALSE(m.use_admin_token);
}

TEST(MigrateConfig, BadValuesAreErrorsWithTheirPlace) {
  auto r = load(
      "[migrate]\njobs = 0\nadmins = [\"localhost\", \"::1:9930\", \"h:70000\"]\nchunk_rows = 0\n"
      "user = \"\"\ncolour = \"blue\"\n");
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 7u);
  EXPECT_EQ(r.errors[0].line, 2u);
  EXPECT_NE(r.errors[0].message.find("migrate.jobs"), std::string::npos) << r.errors[0].message;
  EXPECT_NE(r.errors[1].message.find("expected HOST:PORT"), std::string::npos) << r.errors[1].message;
  EXPECT_NE(r.errors[2].message.find("brackets"), std::string::npos) << r.errors[2].message;
  EXPECT_NE(r.errors[3].message.find("1..65535"), std::string::npos) << r.errors[3].message;
  EXPECT_NE(r.errors[4].message.find("migrate.chunk_rows"), std::string::npos) << r.errors[4].message;
  EXPECT_NE(r.errors[5].message.find("migrate.user must not be empty"), std::string::npos)
      << r.errors[5].message;
  EXPECT_NE(r.errors[6].message.find("colour"), std::string::npos) << r.errors[6].message;
}

}  // namespace
}  // namespace pgtandem::config

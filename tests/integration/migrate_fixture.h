// The fixture of the migration commands' integration tests (issue 13): two databases per test,
// a mirroring pgtandem with a token (the commands POST their progress), the commands run as child
// processes with their own state directory, and the mirror's watermark.
#pragma once

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/integration/fixture.h"
#include "tests/integration/harness/harness.h"

namespace pgtandem::it {

class MigrateTest : public ProxyTest {
 protected:
  void SetUp() override {
    ProxyTest::SetUp();
    if (HasFatalFailure()) return;
    dir_ = std::make_unique<TempDir>("pgtandem-migrate-it");
  }

  void TearDown() override {
    restart_new_if_stopped();
    ProxyTest::TearDown();
    drop_databases(databases_);
  }

  std::string make_db(const std::string& base) {
    std::string db = unique("migrate_" + base);
    old_cluster().create_database(db);
    new_cluster().create_database(db);
    databases_.push_back(db);
    return db;
  }

  // A config for the commands alone (no pgtandem running): the two clusters, admin off.
  std::string plain_config() {
    const std::string path = dir_->file("commands.toml");
    write_file(path, "primary = \"old\"\n[listen]\naddresses = [\"127.0.0.1:" + std::to_string(free_tcp_port()) +
                         "\"]\n[targets.old]\nhost = \"127.0.0.1\"\nport = " + std::to_string(old_cluster().port()) +
                         "\n[targets.new]\nhost = \"127.0.0.1\"\nport = " + std::to_string(new_cluster().port()) +
                         "\n[admin]\nlisten = \"127.0.0.1:0\"\n");
    return path;
  }

  ProxyProcess& start_mirror_proxy() {
    ProxyOptions o = Env::get().default_proxy_options();
    o.section_lines[""].push_back("mirror_writes = true");
    o.section_lines["admin"].push_back("token = \"migrate-it-token\"");  // the commands POST progress
    o.extra_toml = "[mirror]\njournal_path = \"" + dir_->file("mirror.journal") + "\"\n";
    return start_proxy(o);
  }

  ProcessResult command(const std::string& cmd, const std::string& config, const std::string& db,
                        std::vector<std::string> extra = {}, milliseconds timeout = milliseconds(120000)) {
    std::vector<std::string> argv = {pgtandem_binary(), cmd, "--config", config, "--user", "postgres",
                                     "--dbname", db, "--state-dir", dir_->file("state-" + db)};
    argv.insert(argv.end(), extra.begin(), extra.end());
    RunOptions ro;
    ro.timeout = timeout;
    return run_process(argv, ro);
  }

  void copy_schema(const std::string& db) {
    auto dump = run_process({pg_tool("pg_dump"), "--schema-only", "-h", "127.0.0.1", "-p",
                             std::to_string(old_cluster().port()), "-U", "postgres", db});
    ASSERT_TRUE(dump.ok()) << dump.describe();
    RunOptions ro;
    ro.stdin_data = dump.out;
    auto load = run_process({pg_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
                             std::to_string(new_cluster().port()), "-U", "postgres", "-d", db},
                            ro);
    ASSERT_TRUE(load.ok()) << load.describe();
  }

  // Until the mirror has applied everything pushed so far (pending 0 twice in a row).
  void wait_mirror(ProxyProcess& p) {
    int zero = 0;
    ASSERT_TRUE(poll_until(
        [&] {
          auto r = http_get(p.admin_port(), "/mirror/watermark");
          zero = r.body.find("\"pending\":0}") != std::string::npos ? zero + 1 : 0;
          return zero >= 3;
        },
        milliseconds(60000), milliseconds(200)));
  }

  std::string count(const PgCluster& c, const std::string& db, const std::string& table) {
    return c.query_value("SELECT count(*) FROM " + table, db);
  }

  // Writers inside the chunks being copied (below); returns verify's exit code.
  int writers_scenario(const std::string& name, const std::vector<std::string>& flags);
  // A mirrored write held in flight while a chunk is copied (below); returns verify's exit code.
  int held_write_scenario(const std::string& name, bool barrier, bool* finished_while_held);

  std::unique_ptr<TempDir> dir_;
  std::vector<std::string> databases_;
  std::string last_report_;
  Metrics metrics_;      // held_write_scenario: pgtandem's /metrics and /status after verify
  std::string status_;
};

}  // namespace pgtandem::it

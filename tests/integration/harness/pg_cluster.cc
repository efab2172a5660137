#include "tests/integration/harness/pg_cluster.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "tests/integration/harness/internal.h"

namespace pgtandem::it {

// ---------------------------------------------------------------------------------------------
// PgCluster

PgCluster::PgCluster(std::string name) : name_(std::move(name)) {}

PgCluster::~PgCluster() {
  try {
    if (postmaster_.alive() && !postmaster_.signal_and_wait(SIGQUIT, milliseconds(10000)))
      postmaster_.kill_and_reap();
  } catch (...) {
  }
}

void PgCluster::init() {
  if (access(pg_tool("initdb").c_str(), X_OK) != 0)
    fail("PostgreSQL binaries not found in " + pg_bindir() + " (set PGTANDEM_PG_BINDIR)");
  dir_ = std::make_unique<TempDir>("pgtandem-it-" + name_);
  uid_t uid;
  gid_t gid;
  bool drop = drop_privileges(true, &uid, &gid);
  if (mkdir(socket_dir().c_str(), 0700) != 0) fail(errno_text("mkdir " + socket_dir()));
  if (drop && chown(socket_dir().c_str(), uid, gid) != 0) fail(errno_text("chown"));
  RunOptions ro;
  ro.as_postgres = true;
  ro.cwd = dir_->path();
  ro.timeout = milliseconds(120000);
  ro.env = {"LC_ALL=C", "LANG=C"};
  auto r = run_process({pg_tool("initdb"), "-D", data_dir(), "-U", "postgres", "--auth=trust",
                        "--no-sync", "-E", "UTF8", "--locale=C", "--no-instructions"},
                       ro);
  if (!r.ok()) fail("initdb failed for " + name_ + ": " + r.describe());
  port_ = free_tcp_port();
  std::string conf = read_file(data_dir() + "/postgresql.conf");
  conf +=
      "\n# pgtandem integration tests\n"
      "listen_addresses = '127.0.0.1'\n"
      "port = " +
      std::to_string(port_) +
      "\n"
      "unix_socket_directories = '" +
      socket_dir() +
      "'\n"
      "max_connections = 100\n"
      "shared_buffers = 16MB\n"
      "fsync = off\n"
      "synchronous_commit = off\n"
      "full_page_writes = off\n"
      "max_wal_size = 512MB\n"
      "log_min_messages = warning\n"
      "log_connections = off\n"
      "log_line_prefix = '%m [%p] %q%u@%d '\n"
      "lc_messages = 'C'\n"
      "dynamic_shared_memory_type = posix\n";
  write_file(data_dir() + "/postgresql.conf", conf);
  std::string hba =
      "# TYPE DATABASE USER ADDRESS METHOD\n"
      "local all scram_user scram-sha-256\n"
      "local all md5_user md5\n"
      "local all pw_user password\n"
      "local all all trust\n"
      "local replication all trust\n"
      "host all scram_user 127.0.0.1/32 scram-sha-256\n"
      "host all md5_user 127.0.0.1/32 md5\n"
      "host all pw_user 127.0.0.1/32 password\n"
      "host all all 127.0.0.1/32 trust\n"
      "host replication all 127.0.0.1/32 trust\n";
  write_file(data_dir() + "/pg_hba.conf", hba);
  start();
  exec(std::string("SET password_encryption = 'scram-sha-256';") + "CREATE ROLE " + kScramUser +
       " LOGIN PASSWORD '" + kScramPassword + "';" + "CREATE ROLE " + kPwUser +
       " LOGIN PASSWORD '" + kPwPassword + "';" + "SET password_encryption = 'md5';" +
       "CREATE ROLE " + kMd5User + " LOGIN PASSWORD '" + kMd5Password + "';" + "CREATE ROLE " +
       kTrustUser + " LOGIN;" + "CREATE SCHEMA foo;");
}

void PgCluster::start() {
  auto deadline = Clock::now() + milliseconds(60000);
  for (;;) {
    size_t log_before = read_file(log_file()).size();
    postmaster_.spawn({pg_tool("postgres"), "-D", data_dir()}, log_file(), /*as_postgres=*/true);
    std::string ping = conninfo() + " connect_timeout=2";
    bool up = poll_until([&] { return !postmaster_.alive() || PQping(ping.c_str()) == PQPING_OK; },
                         milliseconds(remaining_ms(deadline)), milliseconds(20));
    if (up && postmaster_.alive()) return;
    std::string log = read_file(log_file()).substr(log_before);
    if (postmaster_.alive()) {
      postmaster_.kill_and_reap();
      fail("postgres (" + name_ + ") did not accept connections in time; log:\n" + tail(log));
    }
    // After a SIGKILL of the postmaster, orphaned backends hold the old shared memory for a
    // moment: retry until they are gone.
    bool retry = log.find("shared memory block") != std::string::npos ||
                 log.find("lock file") != std::string::npos ||
                 log.find("already in use") != std::string::npos;
    if (!retry || remaining_ms(deadline) == 0)
      fail("postgres (" + name_ + ") " + postmaster_.exit_description() + "; log:\n" + tail(log));
    std::this_thread::sleep_for(milliseconds(200));
  }
}

void PgCluster::stop() {
  if (!postmaster_.alive()) return;
  if (postmaster_.signal_and_wait(SIGINT, milliseconds(30000))) return;
  if (postmaster_.signal_and_wait(SIGQUIT, milliseconds(10000))) return;
  postmaster_.kill_and_reap();
}

void PgCluster::kill_postmaster() { postmaster_.kill_and_reap(); }

bool PgCluster::running() { return postmaster_.alive(); }

void PgCluster::wait_ready(milliseconds timeout) {
  std::string ping = conninfo() + " connect_timeout=2";
  if (!poll_until([&] { return PQping(ping.c_str()) == PQPING_OK; }, timeout, milliseconds(50)))
    fail("cluster " + name_ + " not ready; log:\n" + tail(read_file(log_file())));
}

Endpoint PgCluster::endpoint() const {
  Endpoint e;
  e.name = "direct";
  e.host = host();
  e.port = port_;
  return e;
}

std::string PgCluster::conninfo(const std::string& dbname, const std::string& user) const {
  return "host=" + socket_dir() + " port=" + std::to_string(port_) + " dbname=" + dbname +
         " user=" + user + " connect_timeout=10";
}

ResultPtr PgCluster::exec(const std::string& sql, const std::string& dbname) const {
  ConnPtr c = it::connect(conninfo(dbname));
  return it::exec(c.get(), sql);
}

std::string PgCluster::query_value(const std::string& sql, const std::string& dbname) const {
  ConnPtr c = it::connect(conninfo(dbname));
  return it::query_value(c.get(), sql);
}

void PgCluster::create_database(const std::string& dbname) const {
  exec("CREATE DATABASE " + dbname);
}

void PgCluster::signal_backend(pid_t backend_pid, int sig) const {
  // A backend killed with SIGKILL makes the postmaster end every session and reinitialize;
  // until that cycle is over, a ping can still succeed and the next connection then meets
  // "the database system is in recovery mode". Wait for the cycle's log line, then for readiness.
  auto restarts = [this] {
    const std::string log = read_file(log_file());
    size_t n = 0;
    for (size_t pos = 0; (pos = log.find("all server processes terminated; reinitializing", pos)) !=
                         std::string::npos;
         ++pos) {
      ++n;
    }
    return n;
  };
  const size_t before = sig == SIGKILL ? restarts() : 0;
  if (::kill(backend_pid, sig) != 0)
    fail(errno_text("kill backend " + std::to_string(backend_pid)));
  if (sig != SIGKILL) return;
  if (!poll_until([&] { return restarts() > before; }, milliseconds(60000), milliseconds(50)))
    fail("cluster " + name_ + " did not reinitialize after a backend was killed");
  const std::string ping = conninfo() + " connect_timeout=2";
  if (!poll_until([&] { return PQping(ping.c_str()) == PQPING_OK; }, milliseconds(60000),
                  milliseconds(50)))
    fail("cluster " + name_ + " not ready after crash restart");
}

bool PgCluster::backend_exists(pid_t backend_pid) const {
  return query_value("SELECT count(*) FROM pg_stat_activity WHERE pid = " +
                     std::to_string(backend_pid)) != "0";
}

}  // namespace pgtandem::it

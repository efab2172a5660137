// Integration-test harness: a PostgreSQL 15 cluster on an ephemeral port (initdb, pg_ctl-style
// start and stop; as the unprivileged `postgres` user when running as root).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "tests/integration/harness/libpq_client.h"
#include "tests/integration/harness/processes.h"

namespace pgtandem::it {

// ---------------------------------------------------------------------------------------------
// PostgreSQL cluster

inline constexpr const char* kScramUser = "scram_user";
inline constexpr const char* kScramPassword = "scram_pass";
inline constexpr const char* kMd5User = "md5_user";
inline constexpr const char* kMd5Password = "md5_pass";
inline constexpr const char* kPwUser = "pw_user";
inline constexpr const char* kPwPassword = "pw_pass";
inline constexpr const char* kTrustUser = "trust_user";

class PgCluster {
 public:
  explicit PgCluster(std::string name);
  ~PgCluster();
  PgCluster(const PgCluster&) = delete;
  PgCluster& operator=(const PgCluster&) = delete;

  // initdb, configuration, start, roles. Called once.
  void init();
  void start();            // start the postmaster and wait until it accepts connections
  void stop();             // fast shutdown (SIGINT), waits
  void kill_postmaster();  // SIGKILL the postmaster; backends die on their own
  bool running();
  pid_t postmaster_pid() const { return postmaster_.pid(); }

  const std::string& name() const { return name_; }
  uint16_t port() const { return port_; }
  std::string host() const { return "127.0.0.1"; }
  std::string socket_dir() const { return dir_->file("sock"); }
  std::string data_dir() const { return dir_->file("data"); }
  std::string log_file() const { return dir_->file("postgres.log"); }
  Endpoint endpoint() const;
  std::string conninfo(const std::string& dbname = "postgres",
                       const std::string& user = "postgres") const;  // over the Unix socket

  // Superuser SQL over a fresh connection (throws on error).
  ResultPtr exec(const std::string& sql, const std::string& dbname = "postgres") const;
  std::string query_value(const std::string& sql, const std::string& dbname = "postgres") const;
  void create_database(const std::string& dbname) const;
  // Signal a backend from outside (SIGKILL of a backend makes the postmaster reinitialize: wait
  // with wait_ready() afterwards).
  void signal_backend(pid_t backend_pid, int sig) const;
  void wait_ready(milliseconds timeout = milliseconds(60000));
  bool backend_exists(pid_t backend_pid) const;  // in pg_stat_activity

 private:
  std::string name_;
  std::unique_ptr<TempDir> dir_;
  uint16_t port_ = 0;
  ChildProcess postmaster_;
};

}  // namespace pgtandem::it

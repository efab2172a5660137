// Integration-test harness: the pgtandem binary as a child process, with the config it writes.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tests/integration/harness/http.h"
#include "tests/integration/harness/libpq_client.h"
#include "tests/integration/harness/processes.h"

namespace pgtandem::it {

// ---------------------------------------------------------------------------------------------
// pgtandem process

struct ProxyOptions {
  std::string primary = "old";
  uint16_t old_port = 0;
  uint16_t new_port = 0;
  uint32_t workers = 2;
  bool unix_socket = false;  // also listen on a Unix socket in the proxy's temp dir
  bool admin = true;
  std::optional<uint32_t> startup_timeout_ms;
  std::optional<uint32_t> max_unauthenticated;
  std::optional<uint32_t> max_client_connections;
  // Extra "key = value" lines inside the tables the harness writes ("" is the top level; also
  // "listen", "targets.old", "targets.new", "limits", "admin"): TOML forbids reopening a table.
  std::map<std::string, std::vector<std::string>> section_lines;
  std::string extra_toml;  // appended verbatim after everything (new tables)
  // Extra command-line arguments after `--config FILE` (e.g. {"--audit-log", path}).
  std::vector<std::string> extra_args;
  // When set, pgtandem is started with `--config config_file` (which the test prepares, e.g. a
  // ConfigMap-style symlink, with render_config()) instead of the file write_config() writes.
  std::string config_file;
};

class ProxyProcess {
 public:
  explicit ProxyProcess(ProxyOptions options);
  ~ProxyProcess();
  ProxyProcess(const ProxyProcess&) = delete;
  ProxyProcess& operator=(const ProxyProcess&) = delete;

  void start();  // write config, spawn, wait until listening (throws)
  // For reload tests: change options(), write_config(), then send_signal(SIGHUP). Ports stay.
  ProxyOptions& options() { return options_; }
  void write_config();
  // The TOML write_config() writes, for tests that put it somewhere else (config_file).
  std::string render_config() const;
  // Picks the listen and admin ports now (start() keeps them), so render_config() is final.
  void reserve_ports();
  void send_signal(int sig);
  bool stop(milliseconds timeout = milliseconds(10000));  // SIGTERM then SIGKILL; true if clean
  void kill();                                            // SIGKILL
  bool alive() { return child_.alive(); }
  bool stopped_by_test() const { return stopped_; }
  std::string exit_description() const { return child_.exit_description(); }
  int raw_exit_status() const { return child_.raw_status(); }  // waitpid status once exited

  pid_t pid() const { return child_.pid(); }
  uint16_t port() const { return port_; }
  uint16_t admin_port() const { return admin_port_; }
  std::string unix_socket_dir() const { return options_.unix_socket ? dir_.file("sock") : ""; }
  Endpoint endpoint() const;
  std::string config_path() const { return dir_.file("pgtandem.toml"); }
  std::string log_path() const { return dir_.file("pgtandem.log"); }
  std::string log_text() const { return read_file(log_path()); }
  std::string config_text() const;
  Metrics metrics() const;  // GET /metrics (throws unless 200)

 private:
  void wait_listening();
  ProxyOptions options_;
  TempDir dir_;
  uint16_t port_ = 0;
  uint16_t admin_port_ = 0;
  bool stopped_ = false;
  ChildProcess child_;
};

}  // namespace pgtandem::it

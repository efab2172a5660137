// The proxy server: workers, listeners, admin endpoint, signals. No Asio in this header.
#pragma once

#include <memory>
#include <string>

#include "config/config.h"

namespace pgtandem::proxy {

struct ServerOptions {
  std::string config_path;     // the --config file: SIGHUP and changes to it reload it
  std::string config_hash;     // config::LoadResult::source_hash of the config passed in
  std::string audit_log_path;  // --audit-log: every applied/rejected config as a JSON line
};

class Server {
 public:
  explicit Server(config::Config config, ServerOptions options = {});
  ~Server();
  // Binds listeners and starts workers and the admin endpoint; false (with *error) on failure.
  bool start(std::string* error);
  // Blocks until SIGTERM/SIGINT, then stops everything. SIGHUP reloads the config file, as does
  // a change of it; both are handled on this (the calling) thread, never on a worker.
  int run_until_signal();
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgtandem::proxy

// The proxy server: workers, listeners, admin endpoint, signals. No Asio in this header.
#pragma once

#include <memory>
#include <string>

#include "config/config.h"

namespace pgtandem::proxy {

class Server {
 public:
  explicit Server(config::Config config);
  ~Server();
  // Binds listeners and starts workers and the admin endpoint; false (with *error) on failure.
  bool start(std::string* error);
  // Blocks until SIGTERM/SIGINT, then stops everything.
  int run_until_signal();
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgtandem::proxy

// Integration-test harness: the per-binary environment (two clusters and a shared pgtandem).
#pragma once

#include <memory>
#include <string>

#include "tests/integration/harness/pg_cluster.h"
#include "tests/integration/harness/proxy_process.h"

namespace pgtandem::it {

// ---------------------------------------------------------------------------------------------
// The per-binary environment: two clusters ("old", "new") and a shared pgtandem in front of them
// (primary = old), started lazily so a missing binary fails only the tests that need it.

class Env {
 public:
  static Env& get();
  PgCluster& old_cluster() { return *old_; }
  PgCluster& new_cluster() { return *new_; }
  // The shared proxy; (re)started if it is not running. Throws if it cannot start.
  ProxyProcess& proxy();
  // The shared proxy if one was started (running or not), without starting it.
  ProxyProcess* current_proxy() { return proxy_.get(); }
  // True if the shared proxy is running; if it died, returns false and fills `why`.
  bool check_proxy_alive(std::string* why);
  ProxyOptions default_proxy_options() const;

  void set_up();
  void tear_down();

 private:
  std::unique_ptr<PgCluster> old_;
  std::unique_ptr<PgCluster> new_;
  std::unique_ptr<ProxyProcess> proxy_;
  std::string proxy_start_error_;
};

}  // namespace pgtandem::it

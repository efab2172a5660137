#include "tests/integration/harness/env.h"

#include <memory>
#include <string>

#include "tests/integration/harness/internal.h"

namespace pgtandem::it {

// ---------------------------------------------------------------------------------------------
// Env

Env& Env::get() {
  static Env env;
  return env;
}

void Env::set_up() {
  Reaper::get();  // fork it before any thread exists
  old_ = std::make_unique<PgCluster>("old");
  new_ = std::make_unique<PgCluster>("new");
  std::string new_error;
  std::thread t([&] {
    try {
      new_->init();
    } catch (const std::exception& e) {
      new_error = e.what();
    }
  });
  std::string old_error;
  try {
    old_->init();
  } catch (const std::exception& e) {
    old_error = e.what();
  }
  t.join();
  if (!old_error.empty()) fail(old_error);
  if (!new_error.empty()) fail(new_error);
}

void Env::tear_down() {
  proxy_.reset();
  if (old_) old_->stop();
  if (new_) new_->stop();
  old_.reset();
  new_.reset();
}

ProxyOptions Env::default_proxy_options() const {
  ProxyOptions o;
  o.old_port = old_->port();
  o.new_port = new_->port();
  return o;
}

ProxyProcess& Env::proxy() {
  if (!old_ || !new_)
    fail("the clusters were not started (see the environment set-up error above)");
  if (proxy_ && proxy_->alive()) return *proxy_;
  proxy_.reset();
  auto p = std::make_unique<ProxyProcess>(default_proxy_options());
  p->start();
  proxy_ = std::move(p);
  return *proxy_;
}

bool Env::check_proxy_alive(std::string* why) {
  if (!proxy_) return true;
  if (proxy_->alive()) return true;
  if (why)
    *why =
        "the shared pgtandem " + proxy_->exit_description() + "; log:\n" + tail(proxy_->log_text());
  return false;
}

}  // namespace pgtandem::it

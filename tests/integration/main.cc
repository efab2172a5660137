// Integration test runner: the two PostgreSQL clusters are started once for the whole binary.
#include <gtest/gtest.h>

#include <cstdio>

#include "tests/integration/fixture.h"
#include "tests/integration/harness/harness.h"

namespace pgtandem::it {
namespace {

class ClusterEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    try {
      Env::get().set_up();
    } catch (const std::exception& e) {
      // Every test then fails in its own SetUp with this message (never a skip).
      setup_error_ = e.what();
      std::fprintf(stderr, "[harness] environment set-up failed: %s\n", e.what());
    }
  }
  void TearDown() override { Env::get().tear_down(); }
  static std::string setup_error_;
};
std::string ClusterEnvironment::setup_error_;

}  // namespace

std::string environment_setup_error() { return ClusterEnvironment::setup_error_; }

// ---------------------------------------------------------------------------------------------
// Fixtures

std::string ClusterTest::unique(const std::string& base) {
  static std::atomic<int> counter{0};
  return base + "_" + std::to_string(++counter);
}

void ClusterTest::SetUp() {
  std::string err = environment_setup_error();
  ASSERT_TRUE(err.empty()) << "test environment failed: " << err;
  for (PgCluster* c : {&old_cluster(), &new_cluster()}) {
    if (!c->running()) {
      // A previous test failed with the server stopped: bring it back so tests stay independent.
      std::fprintf(stderr, "[harness] restarting cluster %s\n", c->name().c_str());
      ASSERT_NO_THROW(c->start()) << c->name();
    }
    ASSERT_NO_THROW(c->wait_ready()) << c->name();
  }
}

void ClusterTest::TearDown() {
  for (PgCluster* c : {&old_cluster(), &new_cluster()}) {
    if (!c->running()) ADD_FAILURE() << "this test left cluster " << c->name() << " stopped";
  }
  if (HasFailure()) {
    for (PgCluster* c : {&old_cluster(), &new_cluster()}) {
      std::string log = read_file(c->log_file());
      std::fprintf(stderr, "[harness] %s server log (%s), tail:\n%s\n", c->name().c_str(),
                   c->log_file().c_str(), tail(log, 1500).c_str());
    }
  }
}

void ClusterTest::dump_proxy_log(ProxyProcess& p, const char* label) {
  std::fprintf(stderr, "[harness] %s pgtandem log (%s), tail:\n%s\n", label, p.log_path().c_str(),
               tail(p.log_text(), 3000).c_str());
}

void ViaTest::SetUp() {
  ClusterTest::SetUp();
  if (HasFatalFailure()) return;
  if (GetParam() == Via::kDirect) {
    ep_ = old_cluster().endpoint();
    return;
  }
  try {
    ep_ = Env::get().proxy().endpoint();
  } catch (const std::exception& e) {
    FAIL() << "cannot start pgtandem: " << e.what();
  }
}

void ViaTest::TearDown() {
  if (via_proxy()) {
    std::string why;
    if (!Env::get().check_proxy_alive(&why)) {
      ADD_FAILURE() << "pgtandem died during this test: " << why;
    } else if (HasFailure() && Env::get().current_proxy()) {
      dump_proxy_log(*Env::get().current_proxy(), "shared");
    }
  }
  ClusterTest::TearDown();
}

ProxyProcess& ProxyTest::start_proxy(ProxyOptions options) {
  Env& env = Env::get();
  if (options.old_port == 0) options.old_port = env.old_cluster().port();
  if (options.new_port == 0) options.new_port = env.new_cluster().port();
  proxies_.push_back(std::make_unique<ProxyProcess>(std::move(options)));
  proxies_.back()->start();
  return *proxies_.back();
}

void ProxyTest::TearDown() {
  for (auto& p : proxies_) {
    if (!p->alive() && !p->stopped_by_test()) {
      ADD_FAILURE() << "a pgtandem started by this test " << p->exit_description();
      dump_proxy_log(*p, "dedicated");
    } else if (HasFailure()) {
      dump_proxy_log(*p, "dedicated");
    }
  }
  proxies_.clear();
  ClusterTest::TearDown();
}

void ProxyTest::restart_new_if_stopped() {
  PgCluster& n = Env::get().new_cluster();
  if (n.running()) return;
  try {
    n.start();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "cannot restart new: " << e.what();
  }
}

void ProxyTest::drop_databases(const std::vector<std::string>& dbs) {
  Env& env = Env::get();
  for (const auto& db : dbs) {
    for (PgCluster* c : {&env.old_cluster(), &env.new_cluster()}) {
      try {
        if (c->running()) c->exec("DROP DATABASE IF EXISTS " + db + " WITH (FORCE)");
      } catch (const std::exception&) {
      }
    }
  }
}

}  // namespace pgtandem::it

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new pgtandem::it::ClusterEnvironment);
  return RUN_ALL_TESTS();
}

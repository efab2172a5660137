#include "proxy/net/target_breakers.h"

#include <string>

#include "proxy/telemetry/log.h"
#include "proxy/worker.h"

namespace pgtandem::proxy {

policy::CircuitBreaker& TargetBreakers::get(size_t target, const config::Breaker& config,
                                       uint64_t generation) {
  auto& b = breakers_[target];
  if (!b) {
    b = std::make_unique<policy::CircuitBreaker>(config);
    generation_[target] = generation;
  } else if (generation_[target] != generation) {
    b->reconfigure(config);  // a reload: keep state and counts, new thresholds
    generation_[target] = generation;
  }
  return *b;
}

void TargetBreakers::report(ServerState& state, size_t target) {
  auto& b = *breakers_[target];
  for (const auto& t : b.take_transitions()) {
    // An audit event: the operator's dashboard turns on these.
    log::warn("circuit breaker", {{"target", state.targets[target].name},
                                  {"from", std::string(policy::to_string(t.from))},
                                  {"to", std::string(policy::to_string(t.to))},
                                  {"reason", t.reason}});
    if (t.to == policy::CircuitBreaker::State::kOpen) state.metrics->breaker_trip(target);
  }
  state.metrics->set_breaker_state(target, static_cast<BreakerState>(static_cast<int>(b.state())));
}

bool TargetBreakers::allow(ServerState& state, size_t target, const config::Breaker& config,
                     uint64_t generation, TimePoint now) {
  std::lock_guard lock(mu_);
  bool ok = get(target, config, generation).allow(now);
  report(state, target);
  return ok;
}

void TargetBreakers::record(ServerState& state, size_t target, bool ok, TimePoint now) {
  std::lock_guard lock(mu_);
  auto& b = breakers_[target];
  if (!b) return;
  if (ok) {
    b->on_success(now);
  } else {
    b->on_failure(now);
  }
  report(state, target);
}

void TargetBreakers::record_shadow(ServerState& state, size_t target, bool mismatch, TimePoint now) {
  std::lock_guard lock(mu_);
  auto& b = breakers_[target];
  if (!b) return;
  b->on_shadow(mismatch, now);
  report(state, target);
}

int TargetBreakers::reset(ServerState& state, size_t target, TimePoint now) {
  std::lock_guard lock(mu_);
  int reopened = 0;
  for (size_t t = 0; t < kMaxTargets && t < state.targets.size(); ++t) {
    if (target < kMaxTargets && t != target) continue;
    if (!breakers_[t]) continue;
    if (breakers_[t]->reset(now)) ++reopened;
    report(state, t);
  }
  return reopened;
}

int TargetBreakers::state_code(size_t target) const {
  std::lock_guard lock(mu_);
  return breakers_[target] ? static_cast<int>(breakers_[target]->state()) : 0;
}

}  // namespace pgtandem::proxy

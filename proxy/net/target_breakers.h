// The circuit breakers of the targets reads are routed to (issue 4), shared by all workers. Touched
// once per routed read (a lock, never per message); a reload's [breaker] is applied on the next use.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

#include "config/config.h"
#include "proxy/telemetry/stats.h"
#include "policy/route/breaker.h"

namespace pgtandem::proxy {

struct ServerState;

class TargetBreakers {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  // May a read go to `target` now? `config`: the caller's snapshot's [breaker] and its generation.
  bool allow(ServerState& state, size_t target, const config::Breaker& config, uint64_t generation,
             TimePoint now);
  void record(ServerState& state, size_t target, bool ok, TimePoint now);
  void record_shadow(ServerState& state, size_t target, bool mismatch, TimePoint now);
  // 0 closed, 1 open, 2 half-open (for metrics and /status).
  int state_code(size_t target) const;
  // Closes `target`'s breaker (all of them if target >= kMaxTargets); the number that were not
  // closed. Logged and exported like any transition.
  int reset(ServerState& state, size_t target, TimePoint now);

 private:
  policy::CircuitBreaker& get(size_t target, const config::Breaker& config, uint64_t generation);
  void report(ServerState& state, size_t target);

  mutable std::mutex mu_;
  std::unique_ptr<policy::CircuitBreaker> breakers_[kMaxTargets];
  uint64_t generation_[kMaxTargets] = {};
};

}  // namespace pgtandem::proxy

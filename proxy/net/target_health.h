// What pgtandem knows about each target's health (ServerState::health): indexed by target id.
#pragma once

#include <atomic>
#include <cstdint>

#include "proxy/net/target_breakers.h"
#include "proxy/telemetry/stats.h"

namespace pgtandem::proxy {

struct TargetHealth {
  // A target found down is not tried again by every session until this time (steady clock, ns).
  std::atomic<int64_t> down_until[kMaxTargets] = {};
  // For /readyz and /status, from the admin's periodic TCP connect check: -1 not checked yet,
  // 0 unreachable, 1 reachable.
  std::atomic<int> reachable[kMaxTargets] = {-1, -1};
  TargetBreakers breakers;  // per routed-to target (issue 4)
};

}  // namespace pgtandem::proxy

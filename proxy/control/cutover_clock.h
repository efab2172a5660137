// Time helpers and intervals shared by the cutover's coordinator (cutover.cc) and agent
// (cutover_agent.cc). Internal to proxy/control/.
#pragma once

#include <chrono>
#include <cstdint>
#include <thread>

namespace pgtandem::proxy::cutover_detail {

using SteadyClock = std::chrono::steady_clock;

inline int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

inline int64_t ms_since(SteadyClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - t).count();
}

inline void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

inline constexpr int64_t kLiveMs = 3000;        // a replica with an older heartbeat is not live
inline constexpr int kHeartbeatMs = 1000;
inline constexpr int kAgentPollMs = 100;
inline constexpr int64_t kOrphanPauseMs = 60000;  // a pause nobody ends: the agent aborts it

}  // namespace pgtandem::proxy::cutover_detail

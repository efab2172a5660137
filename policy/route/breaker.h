// Circuit breaker for a non-primary target (issue 4): pure, time injected, not thread-safe (the
// proxy wraps it in a lock; it is touched once per routed read, not per message).
//
// closed --(failures/requests >= error_rate, or mismatches/shadows >= mismatch_rate, over the
//           sliding window, with at least min_requests in it)--> open
// open   --(cooldown_ms elapsed)--> half_open: allow() admits up to half_open_requests trial reads
//           at a time
// half_open --(half_open_requests successes)--> closed (window cleared)
// half_open --(any failure or mismatch)--> open again (cool-down restarts)
// A trial read whose outcome is never reported (the client went away) is presumed lost once
// cooldown_ms passed since the latest admission, so half-open cannot wedge with no room left.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "config/config.h"

namespace pgtandem::policy {

class CircuitBreaker {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  enum class State : uint8_t { kClosed, kOpen, kHalfOpen };

  struct Transition {
    State from;
    State to;
    // "error rate 0.35 >= 0.20 over 40 reads in 30000 ms", "cool-down of 30000 ms over", ...
    std::string reason;
    TimePoint at;
  };

  explicit CircuitBreaker(const config::Breaker& config);

  // May a read be routed to the target now? Moves open -> half_open when the cool-down is over.
  // In half-open, admits at most half_open_requests reads whose outcome is still pending.
  // Disabled breaker: always true.
  bool allow(TimePoint now);
  // The outcome of a routed read that allow() admitted.
  void on_success(TimePoint now);
  void on_failure(TimePoint now);
  // A shadow read's comparison (issue 5).
  void on_shadow(bool mismatch, TimePoint now);

  State state() const { return state_; }
  uint64_t trips() const { return trips_; }
  // Transitions since the last call, oldest first (for the audit log and metrics).
  std::vector<Transition> take_transitions();
  // A reload changed [breaker]: keep state and counts, apply the new thresholds.
  void reconfigure(const config::Breaker& config);
  // An operator's reset (admin POST /breaker/reset): closed, with an empty window. False if it
  // was closed already (the window is cleared anyway).
  bool reset(TimePoint now);

 private:
  // ... (implementation detail: a ring of time buckets over window_ms)
  struct Bucket {
    int64_t start_ms = 0;
    uint32_t requests = 0;
    uint32_t failures = 0;
    uint32_t shadows = 0;
    uint32_t mismatches = 0;
  };
  static constexpr size_t kBuckets = 10;
  struct Totals {
    uint64_t requests = 0, failures = 0, shadows = 0, mismatches = 0;
  };
  // Moves the ring to `now` (time never runs backwards here) and returns the current bucket.
  Bucket& advance(TimePoint now);
  Totals totals() const;
  void trip(TimePoint now, std::string reason);
  void check(TimePoint now);
  void move_to(State to, TimePoint now, std::string reason);
  void clear_window();
  static int64_t bucket_width(const config::Breaker& config);

  config::Breaker config_;
  State state_ = State::kClosed;
  int64_t width_ms_ = 1;  // window_ms / kBuckets, rounded up
  int64_t now_ms_ = 0;    // the latest time seen
  bool seen_time_ = false;
  Bucket buckets_[kBuckets];
  TimePoint opened_at_{};
  TimePoint last_trial_at_{};  // the latest read admitted in half-open
  uint32_t half_open_inflight_ = 0;
  uint32_t half_open_successes_ = 0;
  uint64_t trips_ = 0;
  std::vector<Transition> transitions_;
};

std::string_view to_string(CircuitBreaker::State s);

}  // namespace pgtandem::policy

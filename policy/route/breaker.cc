#include "policy/route/breaker.h"

#include <algorithm>
#include <charconv>
#include <utility>

namespace pgtandem::policy {
namespace {

int64_t to_ms(CircuitBreaker::TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

int64_t floor_div(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

// Locale-independent, two decimals: "0.35".
std::string format_rate(double v) {
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::fixed, 2);
  return ec == std::errc() ? std::string(buf, end) : std::string("?");
}

std::string rate_reason(std::string_view what, uint64_t hits, uint64_t total, double limit,
                        std::string_view unit, uint32_t window_ms) {
  std::string r(what);
  r += " rate ";
  r += format_rate(static_cast<double>(hits) / static_cast<double>(total));
  r += " >= ";
  r += format_rate(limit);
  r += " over ";
  r += std::to_string(total);
  r += ' ';
  r += unit;
  r += " in ";
  r += std::to_string(window_ms);
  r += " ms";
  return r;
}

uint32_t trial_reads(const config::Breaker& c) {
  return std::max<uint32_t>(1, c.half_open_requests);
}

}  // namespace

std::string_view to_string(CircuitBreaker::State s) {
  switch (s) {
    case CircuitBreaker::State::kClosed:
      return "closed";
    case CircuitBreaker::State::kOpen:
      return "open";
    case CircuitBreaker::State::kHalfOpen:
      return "half_open";
  }
  return "unknown";
}

int64_t CircuitBreaker::bucket_width(const config::Breaker& config) {
  const int64_t width = (static_cast<int64_t>(config.window_ms) + kBuckets - 1) / kBuckets;
  return std::max<int64_t>(1, width);
}

CircuitBreaker::CircuitBreaker(const config::Breaker& config)
    : config_(config), width_ms_(bucket_width(config)) {}

CircuitBreaker::Bucket& CircuitBreaker::advance(TimePoint now) {
  const int64_t ms = to_ms(now);
  // Outcomes can be reported slightly out of order by different threads: never move back.
  if (!seen_time_ || ms > now_ms_) now_ms_ = ms;
  seen_time_ = true;
  const int64_t slot = floor_div(now_ms_, width_ms_);
  const int64_t index = slot - floor_div(slot, kBuckets) * static_cast<int64_t>(kBuckets);
  Bucket& b = buckets_[index];
  if (b.start_ms != slot * width_ms_) b = Bucket{slot * width_ms_};
  return b;
}

CircuitBreaker::Totals CircuitBreaker::totals() const {
  const int64_t current = floor_div(now_ms_, width_ms_) * width_ms_;
  const int64_t oldest = current - static_cast<int64_t>(kBuckets - 1) * width_ms_;
  Totals t;
  for (const Bucket& b : buckets_) {
    if (b.start_ms < oldest || b.start_ms > current) continue;
    t.requests += b.requests;
    t.failures += b.failures;
    t.shadows += b.shadows;
    t.mismatches += b.mismatches;
  }
  return t;
}

void CircuitBreaker::clear_window() {
  for (Bucket& b : buckets_) b = Bucket{};
}

bool CircuitBreaker::reset(TimePoint now) {
  clear_window();
  half_open_inflight_ = 0;
  half_open_successes_ = 0;
  if (state_ == State::kClosed) return false;
  move_to(State::kClosed, now, "reset by the operator");
  return true;
}

void CircuitBreaker::move_to(State to, TimePoint now, std::string reason) {
  transitions_.push_back(Transition{state_, to, std::move(reason), now});
  state_ = to;
}

void CircuitBreaker::trip(TimePoint now, std::string reason) {
  move_to(State::kOpen, now, std::move(reason));
  opened_at_ = now;
  half_open_inflight_ = 0;
  half_open_successes_ = 0;
  ++trips_;
}

void CircuitBreaker::check(TimePoint now) {
  const Totals t = totals();
  // A rate needs a floor of traffic: 1 failure out of 2 reads is noise, not an outage. And a
  // rate of 0 means "any failure", not "always".
  if (t.requests > 0 && t.requests >= config_.min_requests && t.failures > 0 &&
      static_cast<double>(t.failures) >= config_.error_rate * static_cast<double>(t.requests)) {
    trip(now, rate_reason("error", t.failures, t.requests, config_.error_rate, "reads",
                          config_.window_ms));
    return;
  }
  if (t.shadows > 0 && t.shadows >= config_.min_requests && t.mismatches > 0 &&
      static_cast<double>(t.mismatches) >= config_.mismatch_rate * static_cast<double>(t.shadows)) {
    trip(now, rate_reason("mismatch", t.mismatches, t.shadows, config_.mismatch_rate,
                          "shadow reads", config_.window_ms));
  }
}

bool CircuitBreaker::allow(TimePoint now) {
  if (!config_.enabled) return true;
  switch (state_) {
    case State::kClosed:
      return true;
    case State::kOpen:
      if (now - opened_at_ < std::chrono::milliseconds(config_.cooldown_ms)) return false;
      // Cool-down over: let a few trial reads find out whether the target is back.
      move_to(State::kHalfOpen, now,
              "cool-down of " + std::to_string(config_.cooldown_ms) + " ms over");
      half_open_inflight_ = 0;
      half_open_successes_ = 0;
      [[fallthrough]];
    case State::kHalfOpen:
      if (half_open_inflight_ >= trial_reads(config_)) {
        if (now - last_trial_at_ < std::chrono::milliseconds(config_.cooldown_ms)) return false;
        half_open_inflight_ = 0;  // outcomes that never came: the trial reads were lost
      }
      ++half_open_inflight_;
      last_trial_at_ = now;
      return true;
  }
  return false;
}

void CircuitBreaker::on_success(TimePoint now) {
  if (!config_.enabled) return;
  switch (state_) {
    case State::kClosed: {
      Bucket& b = advance(now);
      ++b.requests;
      check(now);
      return;
    }
    case State::kHalfOpen:
      if (half_open_inflight_ > 0) --half_open_inflight_;
      if (++half_open_successes_ >= trial_reads(config_)) {
        move_to(State::kClosed, now,
                std::to_string(half_open_successes_) + " trial reads succeeded");
        half_open_inflight_ = 0;
        half_open_successes_ = 0;
        // Start from a clean window: the failures that tripped it are what the trial disproved.
        clear_window();
      }
      return;
    case State::kOpen:
      return;  // a read admitted before the trip: the window is cleared on closing anyway
  }
}

void CircuitBreaker::on_failure(TimePoint now) {
  if (!config_.enabled) return;
  switch (state_) {
    case State::kClosed: {
      Bucket& b = advance(now);
      ++b.requests;
      ++b.failures;
      check(now);
      return;
    }
    case State::kHalfOpen:
      trip(now, "trial read failed");
      return;
    case State::kOpen:
      return;
  }
}

void CircuitBreaker::on_shadow(bool mismatch, TimePoint now) {
  if (!config_.enabled) return;
  switch (state_) {
    case State::kClosed: {
      Bucket& b = advance(now);
      ++b.shadows;
      if (mismatch) ++b.mismatches;
      check(now);
      return;
    }
    case State::kHalfOpen:
      if (mismatch) trip(now, "shadow mismatch during trial");
      return;
    case State::kOpen:
      return;
  }
}

std::vector<CircuitBreaker::Transition> CircuitBreaker::take_transitions() {
  std::vector<Transition> out;
  out.swap(transitions_);
  return out;
}

void CircuitBreaker::reconfigure(const config::Breaker& config) {
  const TimePoint latest{std::chrono::milliseconds(now_ms_)};
  const int64_t width = bucket_width(config);
  if (width != width_ms_) {
    // Re-file what the window holds under the new bucket width, each bucket at its start time.
    Bucket old[kBuckets];
    std::copy(std::begin(buckets_), std::end(buckets_), std::begin(old));
    const int64_t current = floor_div(now_ms_, width_ms_) * width_ms_;
    const int64_t oldest = current - static_cast<int64_t>(kBuckets - 1) * width_ms_;
    clear_window();
    width_ms_ = width;
    const int64_t new_slot = floor_div(now_ms_, width_ms_);
    for (const Bucket& b : old) {
      if (b.start_ms < oldest || b.start_ms > current) continue;
      if (b.requests == 0 && b.shadows == 0) continue;
      const int64_t slot = floor_div(b.start_ms, width_ms_);
      if (new_slot - slot >= static_cast<int64_t>(kBuckets)) continue;  // outside the new window
      const int64_t index = slot - floor_div(slot, kBuckets) * static_cast<int64_t>(kBuckets);
      Bucket& nb = buckets_[index];
      if (nb.start_ms != slot * width_ms_) nb = Bucket{slot * width_ms_};
      nb.requests += b.requests;
      nb.failures += b.failures;
      nb.shadows += b.shadows;
      nb.mismatches += b.mismatches;
    }
  }
  config_ = config;
  if (!config_.enabled) {
    // Disabled: every read may go; nothing is counted, so nothing stale judges a later enable.
    if (state_ != State::kClosed) move_to(State::kClosed, latest, "breaker disabled");
    half_open_inflight_ = 0;
    half_open_successes_ = 0;
    clear_window();
  }
}

}  // namespace pgtandem::policy

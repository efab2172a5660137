#include "policy/route/breaker.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace pgtandem::policy {
namespace {

using State = CircuitBreaker::State;
using std::chrono::milliseconds;

CircuitBreaker::TimePoint at(int64_t ms) {
  // An arbitrary origin, as steady_clock's is.
  return CircuitBreaker::TimePoint{} + std::chrono::hours(1000) + milliseconds(ms);
}

config::Breaker test_config() {
  config::Breaker c;
  c.enabled = true;
  c.window_ms = 10000;
  c.min_requests = 10;
  c.error_rate = 0.5;
  c.mismatch_rate = 0.2;
  c.cooldown_ms = 5000;
  c.half_open_requests = 3;
  return c;
}

void outcomes(CircuitBreaker& b, int successes, int failures, int64_t ms) {
  for (int i = 0; i < successes; ++i) b.on_success(at(ms));
  for (int i = 0; i < failures; ++i) b.on_failure(at(ms));
}

// Trips a fresh breaker at `ms` (10 failures).
void trip(CircuitBreaker& b, int64_t ms) {
  outcomes(b, 0, 10, ms);
  ASSERT_EQ(b.state(), State::kOpen);
}

TEST(Breaker, StartsClosedAndAllows) {
  CircuitBreaker b(test_config());
  EXPECT_EQ(b.state(), State::kClosed);
  EXPECT_TRUE(b.allow(at(0)));
  EXPECT_EQ(b.trips(), 0u);
  EXPECT_TRUE(b.take_transitions().empty());
}

TEST(Breaker, NeedsMinRequests) {
  CircuitBreaker b(test_config());
  outcomes(b, 0, 9, 0);  // 100% failures, but only 9 reads
  EXPECT_EQ(b.state(), State::kClosed);
  EXPECT_TRUE(b.allow(at(1)));
  b.on_failure(at(1));
  EXPECT_EQ(b.state(), State::kOpen);
  EXPECT_FALSE(b.allow(at(2)));
  EXPECT_EQ(b.trips(), 1u);
}

TEST(Breaker, TripsExactlyAtThreshold) {
  CircuitBreaker below(test_config());
  outcomes(below, 6, 4, 0);  // 0.4 < 0.5
  EXPECT_EQ(below.state(), State::kClosed);

  CircuitBreaker b(test_config());
  outcomes(b, 5, 4, 0);
  EXPECT_EQ(b.state(), State::kClosed);
  b.on_failure(at(0));  // 5 of 10 = 0.5 >= 0.5
  EXPECT_EQ(b.state(), State::kOpen);
  const std::vector<CircuitBreaker::Transition> t = b.take_transitions();
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].from, State::kClosed);
  EXPECT_EQ(t[0].to, State::kOpen);
  EXPECT_EQ(t[0].reason, "error rate 0.50 >= 0.50 over 10 reads in 10000 ms");
  EXPECT_EQ(t[0].at, at(0));
}

TEST(Breaker, SuccessesReachingMinRequestsCanTrip) {
  CircuitBreaker b(test_config());
  outcomes(b, 0, 9, 0);
  b.on_success(at(0));  // 9 of 10 failed: judged as soon as there are 10
  EXPECT_EQ(b.state(), State::kOpen);
}

TEST(Breaker, WindowSlidesAndForgetsOldFailures) {
  // Same counts, once inside the window and once with the failures aged out.
  CircuitBreaker inside(test_config());
  outcomes(inside, 0, 5, 0);
  outcomes(inside, 5, 0, 8000);
  EXPECT_EQ(inside.state(), State::kOpen);

  CircuitBreaker slid(test_config());
  outcomes(slid, 0, 5, 0);
  outcomes(slid, 5, 0, 10500);  // the bucket of t=0 has left the 10 s window
  EXPECT_EQ(slid.state(), State::kClosed);
  outcomes(slid, 0, 4, 10600);  // 4 of 9 in the window: too few reads still
  EXPECT_EQ(slid.state(), State::kClosed);
  slid.on_failure(at(10700));  // 5 of 10
  EXPECT_EQ(slid.state(), State::kOpen);
}

TEST(Breaker, SparseFailuresNeverAccumulate) {
  // One failed read every 1.5 s: 66 failures in total, but never 10 reads in one 10 s window.
  CircuitBreaker b(test_config());
  for (int64_t t = 0; t < 100000; t += 1500) {
    ASSERT_TRUE(b.allow(at(t)));
    b.on_failure(at(t));
  }
  EXPECT_EQ(b.state(), State::kClosed);
  // Faster, and the window fills up.
  for (int64_t t = 100000; t < 110000 && b.state() == State::kClosed; t += 900) b.on_failure(at(t));
  EXPECT_EQ(b.state(), State::kOpen);
}

TEST(Breaker, CooldownThenHalfOpen) {
  CircuitBreaker b(test_config());
  trip(b, 1000);
  b.take_transitions();
  EXPECT_FALSE(b.allow(at(1000)));
  EXPECT_FALSE(b.allow(at(5999)));
  EXPECT_EQ(b.state(), State::kOpen);
  EXPECT_TRUE(b.allow(at(6000)));
  EXPECT_EQ(b.state(), State::kHalfOpen);
  const std::vector<CircuitBreaker::Transition> t = b.take_transitions();
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].from, State::kOpen);
  EXPECT_EQ(t[0].to, State::kHalfOpen);
  EXPECT_EQ(t[0].reason, "cool-down of 5000 ms over");
  EXPECT_EQ(t[0].at, at(6000));
}

TEST(Breaker, HalfOpenAdmitsAtMostN) {
  CircuitBreaker b(test_config());
  trip(b, 0);
  EXPECT_TRUE(b.allow(at(5000)));
  EXPECT_TRUE(b.allow(at(5000)));
  EXPECT_TRUE(b.allow(at(5001)));
  EXPECT_FALSE(b.allow(at(5002)));  // three pending trial reads
  EXPECT_FALSE(b.allow(at(9000)));
  b.on_success(at(9001));  // one came back: room for one more
  EXPECT_EQ(b.state(), State::kHalfOpen);
  EXPECT_TRUE(b.allow(at(9002)));
  EXPECT_FALSE(b.allow(at(9003)));
}

TEST(Breaker, LostTrialReadsDoNotWedgeHalfOpen) {
  CircuitBreaker b(test_config());
  trip(b, 0);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(b.allow(at(5000)));
  // No outcome is ever reported for them.
  EXPECT_FALSE(b.allow(at(9999)));
  EXPECT_TRUE(b.allow(at(10000)));  // a cool-down after the latest admission
  EXPECT_TRUE(b.allow(at(10000)));
  EXPECT_TRUE(b.allow(at(10001)));
  EXPECT_FALSE(b.allow(at(10002)));
  EXPECT_EQ(b.state(), State::kHalfOpen);
  outcomes(b, 3, 0, 10100);
  EXPECT_EQ(b.state(), State::kClosed);
}

TEST(Breaker, HalfOpenSuccessesClose) {
  CircuitBreaker b(test_config());
  trip(b, 0);
  b.take_transitions();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(b.allow(at(5000)));
  b.on_success(at(5100));
  b.on_success(at(5200));
  EXPECT_EQ(b.state(), State::kHalfOpen);
  b.on_success(at(5300));
  EXPECT_EQ(b.state(), State::kClosed);
  EXPECT_TRUE(b.allow(at(5400)));
  const std::vector<CircuitBreaker::Transition> t = b.take_transitions();
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[1].from, State::kHalfOpen);
  EXPECT_EQ(t[1].to, State::kClosed);
  EXPECT_EQ(t[1].reason, "3 trial reads succeeded");
  EXPECT_EQ(t[1].at, at(5300));
  // The window was cleared: the 10 failures that tripped it no longer count.
  outcomes(b, 0, 9, 5500);
  EXPECT_EQ(b.state(), State::kClosed);
  EXPECT_EQ(b.trips(), 1u);
}

TEST(Breaker, HalfOpenFailureReopens) {
  CircuitBreaker b(test_config());
  trip(b, 0);
  ASSERT_TRUE(b.allow(at(5000)));
  ASSERT_TRUE(b.allow(at(5000)));
  b.on_success(at(5100));
  b.on_failure(at(5200));
  EXPECT_EQ(b.state(), State::kOpen);
  EXPECT_EQ(b.trips(), 2u);
  // The cool-down restarts from the reopening.
  EXPECT_FALSE(b.allow(at(10199)));
  EXPECT_TRUE(b.allow(at(10200)));
  EXPECT_EQ(b.state(), State::kHalfOpen);
  const std::vector<CircuitBreaker::Transition> t = b.take_transitions();
  ASSERT_EQ(t.size(), 4u);
  EXPECT_EQ(t[2].from, State::kHalfOpen);
  EXPECT_EQ(t[2].to, State::kOpen);
  EXPECT_EQ(t[2].reason, "trial read failed");
  EXPECT_EQ(t[3].to, State::kHalfOpen);
}

TEST(Breaker, MismatchRateTrips) {
  CircuitBreaker below(test_config());
  for (int i = 0; i < 10; ++i) below.on_shadow(i == 0, at(0));  // 0.1 < 0.2
  EXPECT_EQ(below.state(), State::kClosed);

  CircuitBreaker few(test_config());
  for (int i = 0; i < 9; ++i) few.on_shadow(true, at(0));  // under min_requests
  EXPECT_EQ(few.state(), State::kClosed);

  CircuitBreaker b(test_config());
  for (int i = 0; i < 9; ++i) b.on_shadow(i < 1, at(0));
  EXPECT_EQ(b.state(), State::kClosed);
  b.on_shadow(true, at(0));  // 2 of 10 = 0.2
  EXPECT_EQ(b.state(), State::kOpen);
  const std::vector<CircuitBreaker::Transition> t = b.take_transitions();
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].reason, "mismatch rate 0.20 >= 0.20 over 10 shadow reads in 10000 ms");
  // Shadow reads are not routed reads: they do not count towards the error rate.
  CircuitBreaker mixed(test_config());
  for (int i = 0; i < 20; ++i) mixed.on_shadow(false, at(0));
  outcomes(mixed, 0, 9, 0);
  EXPECT_EQ(mixed.state(), State::kClosed);
}

TEST(Breaker, ShadowMismatchInHalfOpenReopens) {
  CircuitBreaker b(test_config());
  trip(b, 0);
  ASSERT_TRUE(b.allow(at(5000)));
  b.on_shadow(false, at(5001));
  EXPECT_EQ(b.state(), State::kHalfOpen);
  b.on_shadow(true, at(5002));
  EXPECT_EQ(b.state(), State::kOpen);
  EXPECT_EQ(b.trips(), 2u);
}

TEST(Breaker, OutcomesWhileOpenAreIgnored) {
  CircuitBreaker b(test_config());
  trip(b, 0);
  outcomes(b, 100, 100, 100);
  for (int i = 0; i < 50; ++i) b.on_shadow(true, at(100));
  EXPECT_EQ(b.state(), State::kOpen);
  EXPECT_EQ(b.trips(), 1u);
  EXPECT_TRUE(b.allow(at(5000)));
}

TEST(Breaker, DisabledNeverTrips) {
  config::Breaker c = test_config();
  c.enabled = false;
  CircuitBreaker b(c);
  for (int i = 0; i < 1000; ++i) {
    EXPECT_TRUE(b.allow(at(i)));
    b.on_failure(at(i));
    b.on_shadow(true, at(i));
  }
  EXPECT_EQ(b.state(), State::kClosed);
  EXPECT_EQ(b.trips(), 0u);
  EXPECT_TRUE(b.take_transitions().empty());
}

TEST(Breaker, ZeroRateMeansAnyFailure) {
  config::Breaker c = test_config();
  c.error_rate = 0;
  c.min_requests = 5;
  CircuitBreaker b(c);
  outcomes(b, 50, 0, 0);  // successes alone never trip
  EXPECT_EQ(b.state(), State::kClosed);
  b.on_failure(at(1));
  EXPECT_EQ(b.state(), State::kOpen);
}

TEST(Breaker, ZeroHalfOpenRequestsStillTries) {
  config::Breaker c = test_config();
  c.half_open_requests = 0;
  CircuitBreaker b(c);
  trip(b, 0);
  EXPECT_TRUE(b.allow(at(5000)));
  EXPECT_FALSE(b.allow(at(5000)));
  b.on_success(at(5001));
  EXPECT_EQ(b.state(), State::kClosed);
}

TEST(Breaker, ReconfigureKeepsStateAndCounts) {
  CircuitBreaker b(test_config());
  outcomes(b, 0, 8, 0);
  EXPECT_EQ(b.state(), State::kClosed);
  config::Breaker lower = test_config();
  lower.min_requests = 9;
  b.reconfigure(lower);
  EXPECT_EQ(b.state(), State::kClosed);
  b.on_failure(at(1));  // the 8 earlier failures still count
  EXPECT_EQ(b.state(), State::kOpen);

  // Open stays open; the new cool-down applies.
  config::Breaker longer = lower;
  longer.cooldown_ms = 20000;
  b.reconfigure(longer);
  EXPECT_EQ(b.state(), State::kOpen);
  EXPECT_FALSE(b.allow(at(10000)));
  EXPECT_TRUE(b.allow(at(20001)));
  EXPECT_EQ(b.state(), State::kHalfOpen);
}

TEST(Breaker, ReconfigureWindowKeepsRecentCounts) {
  CircuitBreaker b(test_config());
  outcomes(b, 0, 3, 0);
  outcomes(b, 0, 5, 9000);
  config::Breaker wider = test_config();
  wider.window_ms = 60000;
  b.reconfigure(wider);
  outcomes(b, 0, 2, 9500);  // 10 failures in the (now 60 s) window
  EXPECT_EQ(b.state(), State::kOpen);
  auto t = b.take_transitions();
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].reason, "error rate 1.00 >= 0.50 over 10 reads in 60000 ms");

  CircuitBreaker n(test_config());
  outcomes(n, 0, 3, 0);
  outcomes(n, 0, 5, 9000);
  config::Breaker narrower = test_config();
  narrower.window_ms = 2000;
  n.reconfigure(narrower);
  outcomes(n, 0, 2, 9500);  // the failures at t=0 are outside a 2 s window: 7
  EXPECT_EQ(n.state(), State::kClosed);
  outcomes(n, 0, 3, 9600);
  EXPECT_EQ(n.state(), State::kOpen);
}

TEST(Breaker, ReconfigureDisableCloses) {
  CircuitBreaker b(test_config());
  trip(b, 0);
  b.take_transitions();
  config::Breaker off = test_config();
  off.enabled = false;
  b.reconfigure(off);
  EXPECT_EQ(b.state(), State::kClosed);
  EXPECT_TRUE(b.allow(at(1)));
  const std::vector<CircuitBreaker::Transition> t = b.take_transitions();
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].from, State::kOpen);
  EXPECT_EQ(t[0].to, State::kClosed);
  EXPECT_EQ(t[0].reason, "breaker disabled");
  // Enabled again: starts from an empty window.
  b.reconfigure(test_config());
  outcomes(b, 0, 9, 2);
  EXPECT_EQ(b.state(), State::kClosed);
  b.on_failure(at(3));
  EXPECT_EQ(b.state(), State::kOpen);
}

TEST(Breaker, TransitionsAreTakenOnce) {
  CircuitBreaker b(test_config());
  trip(b, 0);
  ASSERT_TRUE(b.allow(at(5000)));
  EXPECT_EQ(b.take_transitions().size(), 2u);
  EXPECT_TRUE(b.take_transitions().empty());
}

TEST(Breaker, TimeRunningBackwardsIsHarmless) {
  CircuitBreaker b(test_config());
  outcomes(b, 0, 5, 50000);
  outcomes(b, 0, 4, 100);  // reported late: filed under the latest time
  EXPECT_EQ(b.state(), State::kClosed);
  b.on_failure(at(49000));
  EXPECT_EQ(b.state(), State::kOpen);
}

TEST(Breaker, ToString) {
  EXPECT_EQ(to_string(State::kClosed), "closed");
  EXPECT_EQ(to_string(State::kOpen), "open");
  EXPECT_EQ(to_string(State::kHalfOpen), "half_open");
}

}  // namespace
}  // namespace pgtandem::policy

namespace pgtandem::policy {
namespace {

TEST(Breaker, ResetClosesAndForgetsTheWindow) {
  CircuitBreaker b(test_config());
  trip(b, 0);
  b.take_transitions();
  EXPECT_FALSE(b.allow(at(100)));
  EXPECT_TRUE(b.reset(at(200)));
  EXPECT_EQ(b.state(), State::kClosed);
  auto t = b.take_transitions();
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].from, State::kOpen);
  EXPECT_EQ(t[0].to, State::kClosed);
  EXPECT_EQ(t[0].reason, "reset by the operator");
  EXPECT_TRUE(b.allow(at(300)));
  // The failures before the reset no longer count: 9 more do not reach min_requests' judgment.
  outcomes(b, 0, 9, 400);
  EXPECT_EQ(b.state(), State::kClosed);
  // Closed already: nothing to report.
  EXPECT_FALSE(b.reset(at(500)));
  EXPECT_TRUE(b.take_transitions().empty());
}

}  // namespace
}  // namespace pgtandem::policy

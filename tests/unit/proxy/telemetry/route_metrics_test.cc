// The routing metrics sessions call: route decisions per rule name across reloads (per-worker
// counters, banks per generation), fallbacks, breaker state and trips, secondary connects.
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "proxy/telemetry/metrics.h"

namespace pgtandem::proxy {
namespace {

// The value of one series in the Prometheus text; "" if absent.
std::string sample(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(series + " ", 0) == 0) return line.substr(series.size() + 1);
  }
  return "";
}

std::string decisions(const Metrics& m, const std::string& rule, const std::string& target) {
  return sample(m.serialize(),
                "pgtandem_route_decisions_total{rule=\"" + rule + "\",target=\"" + target + "\"}");
}

constexpr size_t kOld = 0;
constexpr size_t kNew = 1;

TEST(RouteMetrics, DecisionsByRuleAndTarget) {
  Metrics m({"old", "new"});
  WorkerStats w0, w1;
  m.add_worker(&w0);
  m.add_worker(&w1);
  m.set_route_rules(1, {"canary", "tenants"});
  EXPECT_EQ(decisions(m, "default", "old"), "0");  // present before any decision
  EXPECT_EQ(decisions(m, "canary", "new"), "0");
  for (int i = 0; i < 3; ++i) m.route_decision(0, 1, 0, kNew);
  m.route_decision(1, 1, 0, kNew);
  m.route_decision(1, 1, 0, kOld);
  m.route_decision(0, 1, 1, kNew);
  m.route_decision(0, 1, -1, kOld);
  EXPECT_EQ(decisions(m, "canary", "new"), "4");
  EXPECT_EQ(decisions(m, "canary", "old"), "1");
  EXPECT_EQ(decisions(m, "tenants", "new"), "1");
  EXPECT_EQ(decisions(m, "default", "old"), "1");
  // Out-of-range arguments are ignored, never a crash.
  m.route_decision(7, 1, 0, kNew);
  m.route_decision(0, 1, 0, 9);
  EXPECT_EQ(decisions(m, "canary", "new"), "4");
}

TEST(RouteMetrics, CountsFollowRuleNamesAcrossReloads) {
  Metrics m({"old", "new"});
  WorkerStats w;
  m.add_worker(&w);
  m.set_route_rules(1, {"a", "b"});
  m.route_decision(0, 1, 0, kNew);  // a
  m.route_decision(0, 1, 1, kNew);  // b
  m.route_decision(0, 1, 1, kNew);  // b
  // Reload 2 swaps the order: index 0 is now b.
  m.set_route_rules(2, {"b", "a", "c"});
  m.route_decision(0, 2, 0, kNew);  // b
  m.route_decision(0, 2, 2, kNew);  // c
  // A session still on generation 1 (mid-transaction at the reload) counts by its own names.
  m.route_decision(0, 1, 0, kNew);  // a
  EXPECT_EQ(decisions(m, "a", "new"), "2");
  EXPECT_EQ(decisions(m, "b", "new"), "3");
  EXPECT_EQ(decisions(m, "c", "new"), "1");
  // Rules that went away keep their totals (counters never go back); new generations reuse the
  // banks without losing counts.
  for (uint64_t g = 3; g <= 10; ++g) {
    m.set_route_rules(g, {"c"});
    m.route_decision(0, g, 0, kOld);
  }
  EXPECT_EQ(decisions(m, "a", "new"), "2");
  EXPECT_EQ(decisions(m, "b", "new"), "3");
  EXPECT_EQ(decisions(m, "c", "new"), "1");
  EXPECT_EQ(decisions(m, "c", "old"), "8");
}

TEST(RouteMetrics, RulesBeyondTheLimitAreOther) {
  Metrics m({"old", "new"});
  WorkerStats w;
  m.add_worker(&w);
  std::vector<std::string> names;
  for (size_t i = 0; i < kMaxRouteRules + 10; ++i) names.push_back("r" + std::to_string(i));
  m.set_route_rules(1, names);
  m.route_decision(0, 1, static_cast<int>(kMaxRouteRules) - 1, kNew);
  m.route_decision(0, 1, static_cast<int>(kMaxRouteRules), kNew);
  m.route_decision(0, 1, static_cast<int>(kMaxRouteRules) + 5, kNew);
  EXPECT_EQ(decisions(m, "r" + std::to_string(kMaxRouteRules - 1), "new"), "1");
  EXPECT_EQ(decisions(m, "other", "new"), "2");
}

TEST(RouteMetrics, WorkersCountConcurrently) {
  Metrics m({"old", "new"});
  WorkerStats w[2];
  m.add_worker(&w[0]);
  m.add_worker(&w[1]);
  m.set_route_rules(1, {"a"});
  std::vector<std::thread> threads;
  for (size_t i = 0; i < 2; ++i) {
    threads.emplace_back([&m, i] {
      for (int n = 0; n < 100000; ++n) m.route_decision(i, 1, 0, kNew);
    });
  }
  std::thread scraper([&m] {
    for (int n = 0; n < 20; ++n) (void)m.serialize();
  });
  for (auto& t : threads) t.join();
  scraper.join();
  EXPECT_EQ(decisions(m, "a", "new"), "200000");
}

TEST(RouteMetrics, FallbacksBreakerAndSecondaryConnects) {
  Metrics m({"old", "new"});
  m.route_fallback(kNew, RouteFallbackReason::kConnect);
  m.route_fallback(kNew, RouteFallbackReason::kError);
  m.route_fallback(kNew, RouteFallbackReason::kError);
  m.route_fallback(kNew, RouteFallbackReason::kUnavailable);
  m.set_breaker_state(kNew, BreakerState::kOpen);
  m.breaker_trip(kNew);
  m.route_secondary_connect(kNew, SecondaryConnectOutcome::kOk);
  m.route_secondary_connect(kNew, SecondaryConnectOutcome::kLoginFailed);
  m.route_secondary_connect(kOld, SecondaryConnectOutcome::kTimeout);
  m.route_secondary_connect(kOld, SecondaryConnectOutcome::kConnectFailed);
  m.route_fallback(5, RouteFallbackReason::kError);  // ignored
  const std::string t = m.serialize();
  EXPECT_EQ(sample(t, "pgtandem_route_fallbacks_total{reason=\"connect\",target=\"new\"}"), "1");
  EXPECT_EQ(sample(t, "pgtandem_route_fallbacks_total{reason=\"error\",target=\"new\"}"), "2");
  EXPECT_EQ(sample(t, "pgtandem_route_fallbacks_total{reason=\"unavailable\",target=\"new\"}"),
            "1");
  EXPECT_EQ(sample(t, "pgtandem_route_fallbacks_total{reason=\"error\",target=\"old\"}"), "0");
  EXPECT_EQ(sample(t, "pgtandem_breaker_state{target=\"new\"}"), "1");
  EXPECT_EQ(sample(t, "pgtandem_breaker_state{target=\"old\"}"), "0");
  EXPECT_EQ(sample(t, "pgtandem_breaker_trips_total{target=\"new\"}"), "1");
  EXPECT_EQ(sample(t, "pgtandem_route_secondary_connects_total{outcome=\"ok\",target=\"new\"}"),
            "1");
  EXPECT_EQ(
      sample(t, "pgtandem_route_secondary_connects_total{outcome=\"login_failed\",target=\"new\"}"),
      "1");
  EXPECT_EQ(
      sample(t, "pgtandem_route_secondary_connects_total{outcome=\"timeout\",target=\"old\"}"),
      "1");
  EXPECT_EQ(sample(t,
                   "pgtandem_route_secondary_connects_total{outcome=\"connect_failed\","
                   "target=\"old\"}"),
            "1");
  m.set_breaker_state(kNew, BreakerState::kHalfOpen);
  EXPECT_EQ(sample(m.serialize(), "pgtandem_breaker_state{target=\"new\"}"), "2");
}

}  // namespace
}  // namespace pgtandem::proxy

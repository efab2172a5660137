// Read-routing decision cost: what a session pays per read once it knows its SessionRoutes.
// A session whose rules cannot depend on the statement pays a copy of the fixed decision; a tag
// rule pays a scan of the statement's comments (and the tag hash); a table rule pays libpg_query.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <string_view>

#include "policy/route/route_rules.h"

namespace {

using pgtandem::policy::hash_point;
using pgtandem::policy::RouteDecision;
using pgtandem::policy::RuleSet;
using pgtandem::policy::SessionInfo;
using pgtandem::policy::StatementInfo;

constexpr std::string_view kSelect = "SELECT abalance FROM pgbench_accounts WHERE aid = 52633;";
constexpr std::string_view kTagged =
    "SELECT abalance FROM pgbench_accounts WHERE aid = 52633 "
    "/* controller='index',db_driver='pgx',tenant='42',route='canary' */";

pgtandem::config::Config make_config() {
  pgtandem::config::Config c;
  // Rules for other users and databases, then a tag rule, then a 25% canary on the session.
  for (int i = 0; i < 4; ++i) {
    pgtandem::config::Route r;
    r.name = "other-" + std::to_string(i);
    r.match.users = {"reporting-" + std::to_string(i)};
    r.target = "new";
    c.routes.push_back(r);
  }
  pgtandem::config::Route canary;
  canary.name = "canary";
  canary.percent = 25;
  c.routes.push_back(canary);
  return c;
}

pgtandem::config::Config make_tag_config() {
  pgtandem::config::Config c = make_config();
  pgtandem::config::Route tenant;
  tenant.name = "tenants";
  tenant.match.tags = {{"route", {"canary"}}};
  tenant.percent = 50;
  tenant.hash_key = "tag:tenant";
  c.routes.insert(c.routes.begin() + 4, tenant);
  return c;
}

SessionInfo make_session() {
  SessionInfo s;
  s.user = "app";
  s.database = "bench";
  s.application_name = "pgbench";
  s.client = pgtandem::policy::IpAddress::parse("10.1.2.3");
  s.client_address = "10.1.2.3";
  s.session_key = 0x123456789abcdefull;
  return s;
}

// The whole per-read path the session runs: build StatementInfo only when needed, then decide.
RouteDecision per_read(const RuleSet::SessionRoutes& routes, std::string_view sql) {
  if (!routes.depends_on_statement()) return routes.fixed();
  StatementInfo info(sql);
  return routes.decide(info);
}

void BM_DecideFixedSession(benchmark::State& state) {
  const auto set = RuleSet::compile(make_config());
  const SessionInfo session = make_session();
  const RuleSet::SessionRoutes routes = set->for_session(session);
  if (routes.depends_on_statement()) state.SkipWithError("expected a fixed decision");
  for (auto _ : state) {
    RouteDecision d = per_read(routes, kSelect);
    benchmark::DoNotOptimize(d);
  }
}
BENCHMARK(BM_DecideFixedSession);

// decide() itself on a fixed session (what a caller that always builds StatementInfo pays).
void BM_DecideFixedSessionViaDecide(benchmark::State& state) {
  const auto set = RuleSet::compile(make_config());
  const SessionInfo session = make_session();
  const RuleSet::SessionRoutes routes = set->for_session(session);
  for (auto _ : state) {
    StatementInfo info(kSelect);
    RouteDecision d = routes.decide(info);
    benchmark::DoNotOptimize(d);
  }
}
BENCHMARK(BM_DecideFixedSessionViaDecide);

void BM_DecideTagRuleTagged(benchmark::State& state) {
  const auto set = RuleSet::compile(make_tag_config());
  const SessionInfo session = make_session();
  const RuleSet::SessionRoutes routes = set->for_session(session);
  for (auto _ : state) {
    RouteDecision d = per_read(routes, kTagged);
    benchmark::DoNotOptimize(d);
  }
}
BENCHMARK(BM_DecideTagRuleTagged);

// The same rule set on a statement without comments: the tag scan stops at a find("/*").
void BM_DecideTagRuleUntagged(benchmark::State& state) {
  const auto set = RuleSet::compile(make_tag_config());
  const SessionInfo session = make_session();
  const RuleSet::SessionRoutes routes = set->for_session(session);
  for (auto _ : state) {
    RouteDecision d = per_read(routes, kSelect);
    benchmark::DoNotOptimize(d);
  }
}
BENCHMARK(BM_DecideTagRuleUntagged);

void BM_DecideTableRule(benchmark::State& state) {
  pgtandem::config::Config c = make_config();
  pgtandem::config::Route accounts;
  accounts.name = "accounts";
  accounts.match.tables = {"pgbench_accounts"};
  accounts.target = "new";
  c.routes.insert(c.routes.begin(), accounts);
  const auto set = RuleSet::compile(c);
  const SessionInfo session = make_session();
  const RuleSet::SessionRoutes routes = set->for_session(session);
  for (auto _ : state) {
    RouteDecision d = per_read(routes, kSelect);
    benchmark::DoNotOptimize(d);
  }
}
BENCHMARK(BM_DecideTableRule);

void BM_ForSession(benchmark::State& state) {
  const auto set = RuleSet::compile(make_tag_config());
  const SessionInfo session = make_session();
  for (auto _ : state) {
    RuleSet::SessionRoutes routes = set->for_session(session);
    benchmark::DoNotOptimize(routes);
  }
}
BENCHMARK(BM_ForSession);

void BM_HashPoint(benchmark::State& state) {
  for (auto _ : state) {
    uint32_t p = hash_point("pgtandem", "81985529216486895");
    benchmark::DoNotOptimize(p);
  }
}
BENCHMARK(BM_HashPoint);

}  // namespace

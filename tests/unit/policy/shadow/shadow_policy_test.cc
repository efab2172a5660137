#include "policy/shadow/shadow_policy.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <string>

namespace pgtandem::policy {
namespace {

using R = NondeterministicReason;

R reason(std::string_view sql) { return analyze_read(sql, classify(sql, {})).nondeterministic; }

TEST(ShadowPolicy, TopLevelOrderBy) {
  EXPECT_TRUE(has_top_level_order_by("SELECT a FROM t ORDER BY a"));
  EXPECT_TRUE(has_top_level_order_by("select a from t order by a desc limit 5;"));
  EXPECT_TRUE(has_top_level_order_by("SELECT a FROM t\nORDER\n  BY a"));
  EXPECT_TRUE(has_top_level_order_by("SELECT a FROM t /* c */ ORDER -- x\n BY a"));
  EXPECT_FALSE(has_top_level_order_by("SELECT a FROM t"));
  EXPECT_FALSE(has_top_level_order_by(""));
  EXPECT_FALSE(has_top_level_order_by(";"));
  EXPECT_FALSE(has_top_level_order_by("SELECT a FROM t ORDER"));
  // Set operations: the final ORDER BY orders the whole result.
  EXPECT_TRUE(has_top_level_order_by("SELECT a FROM t UNION SELECT a FROM u ORDER BY 1"));
  // A statement wholly in parentheses is its inside.
  EXPECT_TRUE(has_top_level_order_by("(SELECT a FROM t ORDER BY a)"));
  EXPECT_TRUE(has_top_level_order_by("((SELECT a FROM t ORDER BY a));"));
  EXPECT_TRUE(has_top_level_order_by("(SELECT a FROM t) ORDER BY a"));
  EXPECT_FALSE(has_top_level_order_by("(SELECT a FROM t ORDER BY a) UNION (SELECT a FROM u)"));
  EXPECT_FALSE(has_top_level_order_by("((SELECT a FROM t ORDER BY a) UNION (SELECT a FROM u))"));
}

TEST(ShadowPolicy, OrderByBelowTheTopLevelDoesNotCount) {
  EXPECT_FALSE(has_top_level_order_by("SELECT * FROM (SELECT a FROM t ORDER BY a) s"));
  EXPECT_FALSE(has_top_level_order_by("WITH c AS (SELECT a FROM t ORDER BY a) SELECT * FROM c"));
  EXPECT_FALSE(has_top_level_order_by("SELECT row_number() OVER (ORDER BY a) FROM t"));
  EXPECT_FALSE(has_top_level_order_by("SELECT string_agg(a, ',' ORDER BY a) FROM t"));
  EXPECT_FALSE(has_top_level_order_by("SELECT a FROM t WINDOW w AS (ORDER BY a)"));
  EXPECT_FALSE(
      has_top_level_order_by("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY a) FROM t"));
}

TEST(ShadowPolicy, OrderByInStringsCommentsAndNamesDoesNotCount) {
  EXPECT_FALSE(has_top_level_order_by("SELECT 'ORDER BY a' FROM t"));
  EXPECT_FALSE(has_top_level_order_by("SELECT E'x\\' ORDER BY a' FROM t"));
  EXPECT_FALSE(has_top_level_order_by("SELECT $q$ ORDER BY a $q$ FROM t"));
  EXPECT_FALSE(has_top_level_order_by("SELECT a FROM t -- ORDER BY a"));
  EXPECT_FALSE(has_top_level_order_by("SELECT a FROM t /* ORDER BY /* nested */ a */"));
  EXPECT_FALSE(has_top_level_order_by("SELECT \"order\" FROM t GROUP BY \"order\""));
  EXPECT_FALSE(has_top_level_order_by("SELECT a AS \"ORDER BY\" FROM t"));
  // An unterminated string: the scanner rejects it, nothing after counts.
  EXPECT_FALSE(has_top_level_order_by("SELECT 'x FROM t ORDER BY a"));
  // With standard_conforming_strings off, \' does not end the literal.
  EXPECT_FALSE(has_top_level_order_by("SELECT 'a\\' ORDER BY a' FROM t", false));
  EXPECT_TRUE(has_top_level_order_by("SELECT 'a\\' FROM t ORDER BY a", true));
}

TEST(ShadowPolicy, EveryStatementMustBeOrdered) {
  EXPECT_TRUE(has_top_level_order_by("SELECT a FROM t ORDER BY a; SELECT b FROM u ORDER BY b;"));
  EXPECT_FALSE(has_top_level_order_by("SELECT a FROM t ORDER BY a; SELECT b FROM u"));
  EXPECT_FALSE(has_top_level_order_by("SELECT b FROM u; SELECT a FROM t ORDER BY a"));
  EXPECT_TRUE(has_top_level_order_by(";; SELECT a FROM t ORDER BY a;;"));
}

TEST(ShadowPolicy, LimitWithoutOrderByIsNondeterministic) {
  EXPECT_TRUE(is_nondeterministic_read("SELECT a FROM t LIMIT 10"));
  EXPECT_TRUE(is_nondeterministic_read("SELECT a FROM t LIMIT $1"));
  EXPECT_TRUE(is_nondeterministic_read("SELECT a FROM t LIMIT (SELECT 3)"));
  EXPECT_TRUE(is_nondeterministic_read("SELECT a FROM t OFFSET 5"));
  EXPECT_FALSE(is_nondeterministic_read("SELECT a FROM t ORDER BY a LIMIT 10"));
  EXPECT_FALSE(is_nondeterministic_read("SELECT a FROM t ORDER BY a LIMIT 10 OFFSET 20"));
  EXPECT_FALSE(is_nondeterministic_read("SELECT a FROM t LIMIT ALL"));
  EXPECT_FALSE(is_nondeterministic_read("SELECT a FROM t"));
  EXPECT_FALSE(is_nondeterministic_read("SELECT a FROM t WHERE b = 'LIMIT 1'"));
  EXPECT_FALSE(is_nondeterministic_read("SELECT a FROM t -- LIMIT 1"));
  EXPECT_FALSE(is_nondeterministic_read("SELECT \"limit\" FROM t"));
  // Per scope: the subquery's LIMIT has no ORDER BY of its own.
  EXPECT_TRUE(is_nondeterministic_read("SELECT * FROM (SELECT a FROM t LIMIT 5) s ORDER BY a"));
  EXPECT_TRUE(is_nondeterministic_read("SELECT * FROM t WHERE a IN (SELECT b FROM u LIMIT 1)"));
  EXPECT_FALSE(is_nondeterministic_read("SELECT * FROM (SELECT a FROM t ORDER BY a LIMIT 5) s"));
  EXPECT_TRUE(is_nondeterministic_read(
      "SELECT * FROM (SELECT a FROM t ORDER BY a) s JOIN (SELECT b FROM u LIMIT 2) v ON true"));
  // An ORDER BY in a window or an aggregate does not order the rows the LIMIT takes.
  EXPECT_TRUE(is_nondeterministic_read("SELECT row_number() OVER (ORDER BY a) FROM t LIMIT 3"));
  EXPECT_EQ(reason("SELECT a FROM t LIMIT 10"), R::kLimitWithoutOrderBy);
  // Per statement.
  EXPECT_TRUE(is_nondeterministic_read("SELECT a FROM t ORDER BY a; SELECT a FROM t LIMIT 1"));
  EXPECT_FALSE(is_nondeterministic_read("SELECT a FROM t ORDER BY a; SELECT a FROM t"));
}

TEST(ShadowPolicy, FetchFirstWithoutOrderByIsNondeterministic) {
  EXPECT_TRUE(is_nondeterministic_read("SELECT a FROM t FETCH FIRST 5 ROWS ONLY"));
  EXPECT_TRUE(is_nondeterministic_read("SELECT a FROM t FETCH NEXT ROW ONLY"));
  EXPECT_TRUE(is_nondeterministic_read("SELECT a FROM t OFFSET 2 ROWS FETCH FIRST 5 ROWS ONLY"));
  EXPECT_FALSE(is_nondeterministic_read("SELECT a FROM t ORDER BY a FETCH FIRST 5 ROWS ONLY"));
  EXPECT_EQ(reason("SELECT a FROM t FETCH FIRST 5 ROWS WITH TIES"), R::kLimitWithoutOrderBy);
}

TEST(ShadowPolicy, TableSampleIsNondeterministic) {
  EXPECT_TRUE(is_nondeterministic_read("SELECT * FROM t TABLESAMPLE SYSTEM (10)"));
  // Even REPEATABLE: the same seed samples the physical layout, which differs between servers.
  EXPECT_TRUE(is_nondeterministic_read(
      "SELECT * FROM t TABLESAMPLE BERNOULLI (5) REPEATABLE (42) ORDER BY a"));
  EXPECT_EQ(reason("SELECT * FROM t TABLESAMPLE SYSTEM (10)"), R::kTableSample);
  EXPECT_FALSE(is_nondeterministic_read("SELECT 'TABLESAMPLE' FROM t"));
}

TEST(ShadowPolicy, VolatileFunctionsAreNondeterministic) {
  EXPECT_TRUE(is_nondeterministic_read("SELECT random()"));
  EXPECT_TRUE(is_nondeterministic_read("SELECT a FROM t ORDER BY random()"));
  EXPECT_TRUE(is_nondeterministic_read("SELECT now(), a FROM t ORDER BY a"));
  EXPECT_TRUE(is_nondeterministic_read("SELECT gen_random_uuid()"));
  EXPECT_TRUE(is_nondeterministic_read("SELECT clock_timestamp()"));
  EXPECT_EQ(reason("SELECT random() FROM t"), R::kVolatileFunction);
  EXPECT_FALSE(is_nondeterministic_read("SELECT 'random()' FROM t"));
  EXPECT_FALSE(is_nondeterministic_read("SELECT lower(a) FROM t ORDER BY a"));
  // The proxy's cached classification is what decides.
  Classification c;
  c.kind = StatementKind::kRead;
  EXPECT_EQ(analyze_read("SELECT f(a) FROM t", c).nondeterministic, R::kNone);
  c.nondeterministic = true;
  EXPECT_EQ(analyze_read("SELECT f(a) FROM t", c).nondeterministic, R::kVolatileFunction);
}

TEST(ShadowPolicy, DistinctOnWithoutOrderByIsNondeterministic) {
  EXPECT_EQ(reason("SELECT DISTINCT ON (a) a, b FROM t"), R::kDistinctOnWithoutOrderBy);
  EXPECT_EQ(reason("SELECT DISTINCT ON (a) a, b FROM t ORDER BY a, b"), R::kNone);
  EXPECT_EQ(reason("SELECT DISTINCT a, b FROM t"), R::kNone);
  EXPECT_EQ(reason("SELECT a FROM t WHERE a IS DISTINCT FROM b"), R::kNone);
}

TEST(ShadowPolicy, AnalyzeReadReportsBoth) {
  const ReadShape s = analyze_read("SELECT a FROM t ORDER BY a LIMIT 3", classify("SELECT 1", {}));
  EXPECT_TRUE(s.top_level_order_by);
  EXPECT_EQ(s.nondeterministic, R::kNone);
  EXPECT_EQ(to_string(R::kLimitWithoutOrderBy), "limit_without_order_by");
  EXPECT_EQ(to_string(R::kTableSample), "tablesample");
  // Deep nesting: LIMIT past the tracked depth counts as nondeterministic.
  std::string deep = "SELECT ";
  for (int i = 0; i < 70; ++i) deep += "(SELECT ";
  deep += "a FROM t ORDER BY a LIMIT 1";
  for (int i = 0; i < 70; ++i) deep += ")";
  EXPECT_EQ(reason(deep), R::kLimitWithoutOrderBy);
  std::string shallow = "SELECT ";
  for (int i = 0; i < 10; ++i) shallow += "(SELECT ";
  shallow += "a FROM t ORDER BY a LIMIT 1";
  for (int i = 0; i < 10; ++i) shallow += ")";
  EXPECT_EQ(reason(shallow), R::kNone);
}

TEST(ShadowSampler, SampleIsDeterministicAndMonotone) {
  EXPECT_FALSE(sample("seed", 1, 0));
  EXPECT_FALSE(sample("seed", 1, -1));
  EXPECT_FALSE(sample("seed", 1, std::numeric_limits<double>::quiet_NaN()));
  EXPECT_TRUE(sample("seed", 1, 1));
  EXPECT_TRUE(sample("seed", 1, 2));
  int at_10 = 0;
  int at_1 = 0;
  int differs_by_seed = 0;
  constexpr int kKeys = 100000;
  for (uint64_t key = 0; key < kKeys; ++key) {
    const bool s1 = sample("seed", key, 0.01);
    const bool s10 = sample("seed", key, 0.10);
    EXPECT_EQ(s10, sample("seed", key, 0.10));
    if (s1) {
      EXPECT_TRUE(s10) << key;  // raising the rate only adds keys
    }
    at_1 += s1;
    at_10 += s10;
    differs_by_seed += s10 != sample("other", key, 0.10);
  }
  EXPECT_NEAR(at_1, kKeys / 100, kKeys / 1000);
  EXPECT_NEAR(at_10, kKeys / 10, kKeys / 100);
  EXPECT_GT(differs_by_seed, kKeys / 10);
}

using TimePoint = TokenBucket::TimePoint;
TimePoint at_ms(int64_t ms) {
  return TimePoint{} + std::chrono::hours(1000) + std::chrono::milliseconds(ms);
}

TEST(ShadowSampler, TokenBucketLimitsTheRate) {
  TokenBucket b(10, 3);  // 10/s, bursts of 3
  EXPECT_TRUE(b.try_take(at_ms(0)));
  EXPECT_TRUE(b.try_take(at_ms(0)));
  EXPECT_TRUE(b.try_take(at_ms(0)));
  EXPECT_FALSE(b.try_take(at_ms(0)));
  EXPECT_FALSE(b.try_take(at_ms(50)));  // half a token
  EXPECT_TRUE(b.try_take(at_ms(100)));  // one
  EXPECT_FALSE(b.try_take(at_ms(100)));
  EXPECT_FALSE(b.try_take(at_ms(10)));              // time went backwards: nothing added
  EXPECT_NEAR(b.tokens(at_ms(10'000)), 3.0, 1e-9);  // capped at the burst
  int admitted = 0;
  for (int ms = 10'000; ms < 20'000; ms += 10) admitted += b.try_take(at_ms(ms));
  EXPECT_NEAR(admitted, 3 + 100, 2);

  TokenBucket none(0, 5);
  EXPECT_FALSE(none.try_take(at_ms(0)));
  TokenBucket tiny(1, 0);  // burst below 1 is 1
  EXPECT_TRUE(tiny.try_take(at_ms(0)));
  EXPECT_FALSE(tiny.try_take(at_ms(500)));
  EXPECT_TRUE(tiny.try_take(at_ms(1000)));
}

TEST(ShadowSampler, DecideCombinesHashAndLimit) {
  using O = ShadowSampler::Outcome;
  ShadowSampler unlimited("seed");
  for (uint64_t key = 0; key < 1000; ++key) {
    EXPECT_EQ(unlimited.decide(key, 0.3, at_ms(0)) == O::kSampled, sample("seed", key, 0.3));
  }
  ShadowSampler limited("seed", ShadowSampler::RateLimit{1, 2});
  int sampled = 0;
  int dropped = 0;
  for (uint64_t key = 0; key < 100; ++key) {
    switch (limited.decide(key, 1.0, at_ms(0))) {
      case O::kSampled:
        ++sampled;
        break;
      case O::kRateLimited:
        ++dropped;
        break;
      case O::kNotSampled:
        ADD_FAILURE();
    }
  }
  EXPECT_EQ(sampled, 2);
  EXPECT_EQ(dropped, 98);
  EXPECT_EQ(limited.decide(7, 0.0, at_ms(5000)), O::kNotSampled);
  EXPECT_EQ(limited.decide(7, 1.0, at_ms(5000)), O::kSampled);
}

}  // namespace
}  // namespace pgtandem::policy

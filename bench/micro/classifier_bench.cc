// Statement classification cost: what the session pays per simple Query or Parse before deciding
// where a statement goes. The lexer path must stay in the tens to hundreds of nanoseconds; the
// parser path (libpg_query) is tens of microseconds and is what the cache keeps off the hot path.
#include <benchmark/benchmark.h>

#include <string>
#include <string_view>

#include "policy/sql/classifier.h"
#include "policy/sql/classifier_cache.h"
#include "policy/sql/classifier_parser.h"

namespace {

using pgtandem::policy::ClassificationCache;
using pgtandem::policy::ClassifierOptions;
using pgtandem::policy::classify;
using pgtandem::policy::classify_cached;
using pgtandem::policy::classify_with_parser;

// pgbench -S and the TPC-B script's first statement, as pgbench -M simple sends them.
constexpr std::string_view kSelectOnly = "SELECT abalance FROM pgbench_accounts WHERE aid = 52633;";
constexpr std::string_view kTpcbUpdate =
    "UPDATE pgbench_accounts SET abalance = abalance + -3070 WHERE aid = 52633;";
constexpr std::string_view kTpcbInsert =
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) "
    "VALUES (7, 1, 52633, -3070, CURRENT_TIMESTAMP);";
// FOR UPDATE: the lexer hands it to libpg_query.
constexpr std::string_view kNeedsParser =
    "SELECT abalance FROM pgbench_accounts WHERE aid = 52633 FOR UPDATE;";

// A reporting query of about 2 KB: CTEs, joins, aggregates, CASE, window functions, comments.
std::string analytic_query() {
  std::string q =
      "/* report: revenue by region */\n"
      "WITH recent_orders AS (\n"
      "  SELECT o.id, o.customer_id, o.region_id, o.created_at, o.total_cents, o.status\n"
      "  FROM orders o\n"
      "  WHERE o.created_at >= date_trunc('month', $1::timestamptz) - interval '3 months'\n"
      "    AND o.status IN ('paid', 'shipped', 'delivered')\n"
      "), customer_stats AS (\n"
      "  SELECT c.id AS customer_id, c.segment, count(*) AS orders,\n"
      "         sum(r.total_cents) AS revenue_cents,\n"
      "         avg(r.total_cents)::numeric(12,2) AS avg_order_cents,\n"
      "         max(r.created_at) AS last_order_at\n"
      "  FROM customers c JOIN recent_orders r ON r.customer_id = c.id\n"
      "  WHERE c.deleted_at IS NULL AND lower(c.email) NOT LIKE '%@example.com'\n"
      "  GROUP BY c.id, c.segment\n"
      ")\n"
      "SELECT g.name AS region, cs.segment,\n"
      "       count(DISTINCT cs.customer_id) AS customers,\n"
      "       sum(cs.orders) AS orders,\n"
      "       round(sum(cs.revenue_cents) / 100.0, 2) AS revenue,\n"
      "       round(avg(cs.avg_order_cents) / 100.0, 2) AS avg_order,\n"
      "       percentile_cont(0.5) WITHIN GROUP (ORDER BY cs.revenue_cents) AS median_revenue,\n"
      "       sum(CASE WHEN cs.last_order_at > $2::timestamptz - interval '30 days'\n"
      "                THEN 1 ELSE 0 END) AS active_30d,\n"
      "       rank() OVER (PARTITION BY cs.segment ORDER BY sum(cs.revenue_cents) DESC) AS rnk,\n"
      "       coalesce(string_agg(DISTINCT t.label, ', ' ORDER BY t.label), '') AS tags\n"
      "FROM customer_stats cs\n"
      "JOIN recent_orders r ON r.customer_id = cs.customer_id\n"
      "JOIN regions g ON g.id = r.region_id\n"
      "LEFT JOIN customer_tags ct ON ct.customer_id = cs.customer_id\n"
      "LEFT JOIN tags t ON t.id = ct.tag_id AND t.kind = 'segment'\n"
      "WHERE g.active AND cs.revenue_cents > 0\n"
      "GROUP BY g.name, cs.segment\n"
      "HAVING count(DISTINCT cs.customer_id) >= $3\n"
      "ORDER BY revenue DESC, region, cs.segment\n"
      "LIMIT 100;\n";
  while (q.size() < 2048) q += "-- padding to a 2 KB statement, as ORMs and BI tools send them\n";
  return q;
}

void BM_SelectOnly(benchmark::State& state) {
  const ClassifierOptions opts;
  for (auto _ : state) benchmark::DoNotOptimize(classify(kSelectOnly, opts));
}
BENCHMARK(BM_SelectOnly);

void BM_TpcbUpdate(benchmark::State& state) {
  const ClassifierOptions opts;
  for (auto _ : state) benchmark::DoNotOptimize(classify(kTpcbUpdate, opts));
}
BENCHMARK(BM_TpcbUpdate);

void BM_TpcbInsert(benchmark::State& state) {
  const ClassifierOptions opts;
  for (auto _ : state) benchmark::DoNotOptimize(classify(kTpcbInsert, opts));
}
BENCHMARK(BM_TpcbInsert);

void BM_Analytic2KB(benchmark::State& state) {
  const ClassifierOptions opts;
  const std::string q = analytic_query();
  for (auto _ : state) benchmark::DoNotOptimize(classify(q, opts));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * q.size()));
}
BENCHMARK(BM_Analytic2KB);

void BM_NeedsParser(benchmark::State& state) {
  const ClassifierOptions opts;
  for (auto _ : state) benchmark::DoNotOptimize(classify(kNeedsParser, opts));
}
BENCHMARK(BM_NeedsParser);

void BM_Analytic2KBParserOnly(benchmark::State& state) {
  const ClassifierOptions opts;
  const std::string q = analytic_query();
  for (auto _ : state) benchmark::DoNotOptimize(classify_with_parser(q, opts));
}
BENCHMARK(BM_Analytic2KBParserOnly);

void BM_CacheHitSelectOnly(benchmark::State& state) {
  const ClassifierOptions opts;
  ClassificationCache cache;
  classify_cached(kSelectOnly, opts, &cache);
  for (auto _ : state) benchmark::DoNotOptimize(classify_cached(kSelectOnly, opts, &cache));
}
BENCHMARK(BM_CacheHitSelectOnly);

void BM_CacheHitNeedsParser(benchmark::State& state) {
  const ClassifierOptions opts;
  ClassificationCache cache;
  classify_cached(kNeedsParser, opts, &cache);
  for (auto _ : state) benchmark::DoNotOptimize(classify_cached(kNeedsParser, opts, &cache));
}
BENCHMARK(BM_CacheHitNeedsParser);

void BM_CacheHitAnalytic2KB(benchmark::State& state) {
  const ClassifierOptions opts;
  ClassificationCache cache;
  const std::string q = analytic_query();
  classify_cached(q, opts, &cache);
  for (auto _ : state) benchmark::DoNotOptimize(classify_cached(q, opts, &cache));
}
BENCHMARK(BM_CacheHitAnalytic2KB);

}  // namespace

// Shadow-read comparison cost: what digesting one side's result costs per DataRow (a 10-column
// row: integers, text, a timestamp, a numeric, a boolean, a NULL), per option, and what a whole
// one-row query costs once RowDescription, CommandComplete and compare() are counted. Also the
// per-statement noise checks and the sample decision.
#include <benchmark/benchmark.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/framing.h"
#include "protocol/messages.h"
#include "policy/sql/classifier.h"
#include "policy/shadow/result_digest.h"
#include "policy/shadow/shadow_policy.h"

namespace {

using pgtandem::protocol::ColumnDescription;
using pgtandem::protocol::Value;
using pgtandem::policy::compare;
using pgtandem::policy::Comparison;
using pgtandem::policy::DigestOptions;
using pgtandem::policy::ResultDigest;

std::string body_of(const std::string& message) {
  return message.substr(pgtandem::protocol::kHeaderSize);
}

std::string row_description(bool binary_ints) {
  struct C {
    const char* name;
    uint32_t oid;
  };
  const C cols[] = {{"id", 23},           {"account_id", 20}, {"email", 25},  {"name", 1043},
                    {"created_at", 1184}, {"balance", 1700},  {"score", 701}, {"active", 16},
                    {"note", 25},         {"country", 1043}};
  std::vector<ColumnDescription> cds;
  for (const C& c : cols) {
    ColumnDescription cd;
    cd.name = c.name;
    cd.type_oid = c.oid;
    cd.type_size = -1;
    cd.type_modifier = -1;
    cd.format = binary_ints && (c.oid == 23 || c.oid == 20) ? 1 : 0;
    cds.push_back(cd);
  }
  std::string out;
  pgtandem::protocol::encode_row_description(out, cds);
  return body_of(out);
}

// ~120-byte rows, all distinct.
std::vector<std::string> data_rows(size_t n) {
  std::vector<std::string> rows;
  for (size_t i = 0; i < n; ++i) {
    const std::string id = std::to_string(100000 + i);
    const std::string account = std::to_string(9000000000ull + i * 7);
    const std::string email = "user" + std::to_string(i) + "@example.com";
    const std::string name = "Customer " + std::to_string(i % 997);
    const std::string created = "2026-11-0" + std::to_string(1 + i % 9) + " 12:34:56.789+00";
    const std::string balance = std::to_string(i % 100000) + ".25";
    const std::string score = std::to_string(0.001 * static_cast<double>(i));
    const Value values[] = {Value::of(id),    Value::of(account), Value::of(email),
                            Value::of(name),  Value::of(created), Value::of(balance),
                            Value::of(score), Value::of("t"),     Value::null(),
                            Value::of("DE")};
    std::string out;
    pgtandem::protocol::encode_data_row(out, values);
    rows.push_back(body_of(out));
  }
  return rows;
}

constexpr size_t kRowsPerQuery = 1000;

// One side of a 1000-row result, repeated: per-query work (reset, RowDescription, first-row
// rendering, sample insertions) is included, amortised over its rows.
void digest_rows(benchmark::State& state, const DigestOptions& options, bool ordered) {
  const std::string rd = row_description(false);
  const std::vector<std::string> rows = data_rows(kRowsPerQuery);
  ResultDigest d(&options, ordered);
  size_t bytes = 0;
  for (const auto& r : rows) bytes += r.size();
  for (auto _ : state) {
    d.reset(ordered);
    d.on_row_description(rd);
    for (const auto& r : rows) d.on_data_row(r);
    benchmark::DoNotOptimize(d.rows_digest());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kRowsPerQuery));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
  state.counters["ns_per_row"] = benchmark::Counter(
      static_cast<double>(state.iterations() * kRowsPerQuery),
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert, benchmark::Counter::kIs1000);
}

void BM_DataRowMultiset(benchmark::State& state) {
  DigestOptions o;
  digest_rows(state, o, false);
}
BENCHMARK(BM_DataRowMultiset);

void BM_DataRowOrdered(benchmark::State& state) {
  DigestOptions o;
  digest_rows(state, o, true);
}
BENCHMARK(BM_DataRowOrdered);

void BM_DataRowNoSample(benchmark::State& state) {
  DigestOptions o;
  o.sample_rows = 0;
  digest_rows(state, o, false);
}
BENCHMARK(BM_DataRowNoSample);

void BM_DataRowIgnoreColumn(benchmark::State& state) {
  DigestOptions o;
  o.ignore_columns = {"created_at"};
  digest_rows(state, o, false);
}
BENCHMARK(BM_DataRowIgnoreColumn);

void BM_DataRowIgnoreColumnOrder(benchmark::State& state) {
  DigestOptions o;
  o.ignore_column_order = true;
  digest_rows(state, o, false);
}
BENCHMARK(BM_DataRowIgnoreColumnOrder);

// Two float/numeric columns per row canonicalised (from_chars + to_chars).
void BM_DataRowFloatDigits(benchmark::State& state) {
  DigestOptions o;
  o.float_significant_digits = 6;
  digest_rows(state, o, false);
}
BENCHMARK(BM_DataRowFloatDigits);

void BM_DataRowFloatAbsolute(benchmark::State& state) {
  DigestOptions o;
  o.float_absolute_tolerance = 0.01;
  digest_rows(state, o, false);
}
BENCHMARK(BM_DataRowFloatAbsolute);

// A one-row read end to end on both sides: RowDescription, DataRow, CommandComplete, compare().
void BM_OneRowQueryBothSides(benchmark::State& state) {
  DigestOptions o;
  const std::string rd = row_description(false);
  const std::vector<std::string> rows = data_rows(1);
  std::string cc_message;
  pgtandem::protocol::encode(cc_message, pgtandem::protocol::CommandComplete{"SELECT 1"});
  const std::string cc = body_of(cc_message);
  ResultDigest p(&o);
  ResultDigest s(&o);
  for (auto _ : state) {
    for (ResultDigest* d : {&p, &s}) {
      d->reset(false);
      d->on_row_description(rd);
      d->on_data_row(rows[0]);
      d->on_command_complete(cc);
    }
    Comparison c = compare(p, s);
    benchmark::DoNotOptimize(c);
  }
}
BENCHMARK(BM_OneRowQueryBothSides);

constexpr std::string_view kRead =
    "SELECT a.id, a.email, o.total FROM accounts a JOIN orders o ON o.account_id = a.id "
    "WHERE a.country = 'DE' AND o.created_at > '2026-01-01' ORDER BY o.total DESC LIMIT 50";

void BM_AnalyzeRead(benchmark::State& state) {
  const pgtandem::policy::Classification c =
      pgtandem::policy::classify(kRead, pgtandem::policy::ClassifierOptions{});
  for (auto _ : state) {
    auto shape = pgtandem::policy::analyze_read(kRead, c);
    benchmark::DoNotOptimize(shape);
  }
}
BENCHMARK(BM_AnalyzeRead);

void BM_AnalyzeReadPgbench(benchmark::State& state) {
  constexpr std::string_view kSelect = "SELECT abalance FROM pgbench_accounts WHERE aid = 52633;";
  const pgtandem::policy::Classification c =
      pgtandem::policy::classify(kSelect, pgtandem::policy::ClassifierOptions{});
  for (auto _ : state) {
    auto shape = pgtandem::policy::analyze_read(kSelect, c);
    benchmark::DoNotOptimize(shape);
  }
}
BENCHMARK(BM_AnalyzeReadPgbench);

void BM_SamplerDecide(benchmark::State& state) {
  pgtandem::policy::ShadowSampler sampler("pgtandem",
                                           pgtandem::policy::ShadowSampler::RateLimit{1e9, 1e9});
  const auto now = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  uint64_t key = 0;
  for (auto _ : state) {
    auto o = sampler.decide(++key, 0.05, now);
    benchmark::DoNotOptimize(o);
  }
}
BENCHMARK(BM_SamplerDecide);

}  // namespace

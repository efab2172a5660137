#include "policy/shadow/result_digest.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "protocol/messages.h"
#include "tests/support/messages.h"

// Counts allocations to check that digesting a DataRow allocates nothing after warm-up. Not with
// sanitizers, which bring their own operator new.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define PGTANDEM_COUNT_ALLOCATIONS 0
#else
#define PGTANDEM_COUNT_ALLOCATIONS 1
#endif

#if PGTANDEM_COUNT_ALLOCATIONS
namespace {
std::atomic<uint64_t> g_allocations{0};
}  // namespace
void* operator new(size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
// The replacement new above allocates with malloc: free is its matching release.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop
#endif

namespace pgtandem::policy {
namespace {

using protocol::ColumnDescription;
using protocol::Value;

constexpr uint32_t kInt4 = 23;
constexpr uint32_t kText = 25;
constexpr uint32_t kVarchar = 1043;
constexpr uint32_t kFloat4 = 700;
constexpr uint32_t kFloat8 = 701;
constexpr uint32_t kNumeric = 1700;

using test::body_of;

struct Col {
  std::string name;
  uint32_t oid = kText;
  int16_t format = 0;
};

std::string row_description(const std::vector<Col>& cols) {
  std::vector<ColumnDescription> cds;
  for (const Col& c : cols) {
    ColumnDescription cd;
    cd.name = c.name;
    cd.type_oid = c.oid;
    cd.type_size = -1;
    cd.type_modifier = -1;
    cd.format = c.format;
    cds.push_back(cd);
  }
  return body_of(test::row_description(cds));
}

// nullopt is NULL.
using Cell = std::optional<std::string>;
std::string data_row(const std::vector<Cell>& cells) { return body_of(test::data_row_of(cells)); }

std::string command_complete(std::string_view tag) {
  return body_of(test::command_complete(tag));
}

// Fields S, V, C, M.
std::string error_response(std::string_view sqlstate, std::string_view message) {
  return body_of(test::error_response(sqlstate, message));
}

using Rows = std::vector<std::vector<Cell>>;

void feed(ResultDigest& d, const std::vector<Col>& cols, const Rows& rows,
          std::optional<std::string> tag = std::nullopt) {
  d.on_row_description(row_description(cols));
  for (const auto& r : rows) d.on_data_row(data_row(r));
  d.on_command_complete(command_complete(tag ? *tag : "SELECT " + std::to_string(rows.size())));
}

const std::vector<Col> kTwoText = {{"id", kInt4}, {"name", kText}};

Comparison run(const DigestOptions& o, const std::vector<Col>& pc, const Rows& pr,
               const std::vector<Col>& sc, const Rows& sr, bool ordered = false) {
  ResultDigest p(&o, ordered);
  ResultDigest s(&o, ordered);
  feed(p, pc, pr);
  feed(s, sc, sr);
  return compare(p, s);
}
Comparison run(const DigestOptions& o, const Rows& pr, const Rows& sr, bool ordered = false) {
  return run(o, kTwoText, pr, kTwoText, sr, ordered);
}

const Rows kABC = {{"1", "a"}, {"2", "b"}, {"3", "c"}};

TEST(ResultDigest, IdenticalResultsMatch) {
  DigestOptions o;
  const Comparison c = run(o, kABC, kABC);
  EXPECT_EQ(c.kind, MismatchKind::kNone);
  EXPECT_TRUE(c.detail.empty());
  EXPECT_EQ(c.evidence, RowEvidence::kNone);
}

TEST(ResultDigest, AccessorsDescribeTheResult) {
  DigestOptions o;
  ResultDigest d(&o);
  feed(d, kTwoText, kABC);
  EXPECT_TRUE(d.complete());
  EXPECT_FALSE(d.failed());
  EXPECT_EQ(d.row_count(), 3u);
  EXPECT_EQ(d.command_tag(), "SELECT 3");
  EXPECT_EQ(d.column_count(), 2u);
  EXPECT_EQ(d.columns_rendered(), "id:23, name:25");
  EXPECT_EQ(d.first_row(), "(id='1', name='a')");
  EXPECT_EQ(d.malformed_messages(), 0u);
  EXPECT_EQ(to_hex(Digest128{0x0123456789abcdefull, 0xfedcba9876543210ull}),
            "0123456789abcdeffedcba9876543210");
}

TEST(ResultDigest, MultisetIgnoresRowOrder) {
  DigestOptions o;
  const Rows reversed = {{"3", "c"}, {"2", "b"}, {"1", "a"}};
  EXPECT_EQ(run(o, kABC, reversed).kind, MismatchKind::kNone);
}

TEST(ResultDigest, DuplicatesCount) {
  DigestOptions o;
  // A row twice vs once.
  const Comparison once = run(o, {{"1", "a"}, {"1", "a"}}, {{"1", "a"}});
  EXPECT_EQ(once.kind, MismatchKind::kRowCount);
  EXPECT_EQ(once.evidence, RowEvidence::kOnlyPrimary);
  EXPECT_EQ(once.primary_row, "(id='1', name='a')");
  // {a,a,b} vs {a,b,b}: same count, and XOR of row hashes would call them equal.
  const Rows aab = {{"1", "a"}, {"1", "a"}, {"2", "b"}};
  const Rows abb = {{"1", "a"}, {"2", "b"}, {"2", "b"}};
  const Comparison c = run(o, aab, abb);
  EXPECT_EQ(c.kind, MismatchKind::kRows);
  // The first in hash order of the two: one 'a' too many on the primary or one 'b' on the shadow.
  if (c.evidence == RowEvidence::kOnlyPrimary) {
    EXPECT_EQ(c.primary_row, "(id='1', name='a')");
  } else {
    EXPECT_EQ(c.evidence, RowEvidence::kOnlyShadow);
    EXPECT_EQ(c.shadow_row, "(id='2', name='b')");
  }
  // {a,a} vs {b,b} differ too (XOR would give 0 for both).
  EXPECT_EQ(run(o, {{"1", "a"}, {"1", "a"}}, {{"2", "b"}, {"2", "b"}}).kind, MismatchKind::kRows);
}

TEST(ResultDigest, NullDiffersFromEmptyString) {
  DigestOptions o;
  const Comparison c = run(o, {{"1", std::nullopt}}, {{"1", ""}});
  EXPECT_EQ(c.kind, MismatchKind::kRows);
  EXPECT_EQ(c.evidence == RowEvidence::kOnlyPrimary ? c.primary_row : c.shadow_row,
            c.evidence == RowEvidence::kOnlyPrimary ? "(id='1', name=NULL)" : "(id='1', name='')");
  // Value boundaries count: ('ab', '') vs ('a', 'b').
  EXPECT_EQ(run(o, {{"ab", ""}}, {{"a", "b"}}).kind, MismatchKind::kRows);
  EXPECT_EQ(run(o, {{std::nullopt, std::nullopt}}, {{std::nullopt, std::nullopt}}).kind,
            MismatchKind::kNone);
}

TEST(ResultDigest, TextAndBinaryFormatsHashDistinctly) {
  DigestOptions o;
  const std::vector<Col> text = {{"id", kInt4, 0}};
  const std::vector<Col> binary = {{"id", kInt4, 1}};
  // Same bytes, different format: the columns compare equal (names and types), the rows do not.
  const Comparison c = run(o, text, {{"1234"}}, binary, {{"1234"}});
  EXPECT_EQ(c.kind, MismatchKind::kRows);
  EXPECT_EQ(
      run(o, binary, {{std::string("\0\0\x04\xd2", 4)}}, binary, {{std::string("\0\0\x04\xd2", 4)}})
          .kind,
      MismatchKind::kNone);
  ResultDigest d(&o);
  feed(d, binary, {{std::string("\0\x01\xff", 3)}});
  EXPECT_EQ(d.first_row(), "(id=\\x0001ff)");
}

TEST(ResultDigest, IgnoredColumnsAreLeftOut) {
  DigestOptions o;
  o.ignore_columns = {"updated_at"};
  const std::vector<Col> cols = {{"id", kInt4}, {"updated_at", kText}};
  const Comparison c = run(o, cols, {{"1", "2024-01-01"}}, cols, {{"1", "2025-06-30"}});
  EXPECT_EQ(c.kind, MismatchKind::kNone);
  // Even when only one side has the column.
  EXPECT_EQ(run(o, cols, {{"1", "x"}}, {{"id", kInt4}}, {{"1"}}).kind, MismatchKind::kNone);
  // The other columns still count.
  EXPECT_EQ(run(o, cols, {{"1", "x"}}, cols, {{"2", "x"}}).kind, MismatchKind::kRows);
  ResultDigest d(&o);
  feed(d, cols, {{"1", "x"}});
  EXPECT_EQ(d.first_row(), "(id='1')");
  EXPECT_EQ(d.columns_rendered(), "id:23");

  DigestOptions plain;
  EXPECT_EQ(run(plain, cols, {{"1", "2024-01-01"}}, cols, {{"1", "2025-06-30"}}).kind,
            MismatchKind::kRows);
}

TEST(ResultDigest, FloatSignificantDigits) {
  DigestOptions o;
  o.float_significant_digits = 6;
  for (uint32_t oid : {kFloat4, kFloat8, kNumeric}) {
    SCOPED_TRACE(oid);
    const std::vector<Col> cols = {{"x", oid}};
    EXPECT_EQ(run(o, cols, {{"1.0000001"}}, cols, {{"1.0000002"}}).kind, MismatchKind::kNone);
    EXPECT_EQ(run(o, cols, {{"1.5"}}, cols, {{"1.50"}}).kind, MismatchKind::kNone);
    EXPECT_EQ(run(o, cols, {{"123456.7"}}, cols, {{"123457"}}).kind, MismatchKind::kNone);
    EXPECT_EQ(run(o, cols, {{"0"}}, cols, {{"-0"}}).kind, MismatchKind::kNone);
    EXPECT_EQ(run(o, cols, {{"1.1"}}, cols, {{"1.2"}}).kind, MismatchKind::kRows);
    EXPECT_EQ(run(o, cols, {{"1e-300"}}, cols, {{"1.0000001e-300"}}).kind, MismatchKind::kNone);
    EXPECT_EQ(run(o, cols, {{"NaN"}}, cols, {{"NaN"}}).kind, MismatchKind::kNone);
    EXPECT_EQ(run(o, cols, {{"Infinity"}}, cols, {{"-Infinity"}}).kind, MismatchKind::kRows);
    EXPECT_EQ(run(o, cols, {{"NaN"}}, cols, {{"Infinity"}}).kind, MismatchKind::kRows);
    EXPECT_EQ(run(o, cols, {{std::nullopt}}, cols, {{"0"}}).kind, MismatchKind::kRows);
  }
  // Not a float column: bytes as they are.
  const std::vector<Col> text = {{"x", kText}};
  EXPECT_EQ(run(o, text, {{"1.5"}}, text, {{"1.50"}}).kind, MismatchKind::kRows);
  // Without the option, float text compares as bytes.
  DigestOptions plain;
  const std::vector<Col> f8 = {{"x", kFloat8}};
  EXPECT_EQ(run(plain, f8, {{"1.0000001"}}, f8, {{"1.0000002"}}).kind, MismatchKind::kRows);
  // numeric beyond the double range: bytes.
  const std::vector<Col> num = {{"x", kNumeric}};
  const std::string huge = "1" + std::string(400, '0');
  EXPECT_EQ(run(o, num, {{huge}}, num, {{huge}}).kind, MismatchKind::kNone);
  EXPECT_EQ(run(o, num, {{huge}}, num, {{huge + ".0"}}).kind, MismatchKind::kRows);
}

TEST(ResultDigest, FloatToleranceStraddlingABoundaryStillDiffers) {
  // The documented limit: 1.2344999 and 1.2345001 are 2e-7 apart but round to 1.234 and 1.235.
  DigestOptions o;
  o.float_significant_digits = 4;
  const std::vector<Col> cols = {{"x", kFloat8}};
  EXPECT_EQ(run(o, cols, {{"1.2344999"}}, cols, {{"1.2345001"}}).kind, MismatchKind::kRows);
  EXPECT_EQ(run(o, cols, {{"1.2344999"}}, cols, {{"1.2340001"}}).kind, MismatchKind::kNone);
}

TEST(ResultDigest, FloatAbsoluteTolerance) {
  DigestOptions o;
  o.float_absolute_tolerance = 0.01;
  o.float_significant_digits = 2;  // the absolute tolerance wins
  const std::vector<Col> cols = {{"x", kNumeric}};
  EXPECT_EQ(run(o, cols, {{"1000.001"}}, cols, {{"1000.004"}}).kind, MismatchKind::kNone);
  EXPECT_EQ(run(o, cols, {{"1000.001"}}, cols, {{"1000.02"}}).kind, MismatchKind::kRows);
  EXPECT_EQ(run(o, cols, {{"-0.001"}}, cols, {{"0.001"}}).kind, MismatchKind::kNone);
  EXPECT_EQ(run(o, cols, {{"1e300"}}, cols, {{"1e300"}}).kind, MismatchKind::kNone);
}

std::string be_float8(double x) {
  uint64_t u;
  std::memcpy(&u, &x, 8);
  u = __builtin_bswap64(u);
  return std::string(reinterpret_cast<const char*>(&u), 8);
}
std::string be_float4(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  u = __builtin_bswap32(u);
  return std::string(reinterpret_cast<const char*>(&u), 4);
}

TEST(ResultDigest, FloatToleranceInBinaryFormat) {
  DigestOptions o;
  o.float_significant_digits = 9;
  const std::vector<Col> f8 = {{"x", kFloat8, 1}};
  EXPECT_EQ(run(o, f8, {{be_float8(0.1 + 0.2)}}, f8, {{be_float8(0.3)}}).kind, MismatchKind::kNone);
  EXPECT_EQ(run(o, f8, {{be_float8(0.3)}}, f8, {{be_float8(0.31)}}).kind, MismatchKind::kRows);
  const std::vector<Col> f4 = {{"x", kFloat4, 1}};
  EXPECT_EQ(run(o, f4, {{be_float4(1.1f)}}, f4, {{be_float4(1.1f)}}).kind, MismatchKind::kNone);
  // Binary numeric is not decoded: bytes.
  const std::vector<Col> num = {{"x", kNumeric, 1}};
  EXPECT_EQ(run(o, num, {{"\x01\x02"}}, num, {{"\x01\x03"}}).kind, MismatchKind::kRows);
  DigestOptions plain;
  EXPECT_EQ(run(plain, f8, {{be_float8(0.1 + 0.2)}}, f8, {{be_float8(0.3)}}).kind,
            MismatchKind::kRows);
}

TEST(ResultDigest, ColumnOrderIrrelevantOption) {
  DigestOptions o;
  o.ignore_column_order = true;
  const std::vector<Col> ab = {{"a", kInt4}, {"b", kText}, {"c", kText}};
  const std::vector<Col> ba = {{"c", kText}, {"b", kText}, {"a", kInt4}};
  EXPECT_EQ(run(o, ab, {{"1", "x", "y"}}, ba, {{"y", "x", "1"}}).kind, MismatchKind::kNone);
  EXPECT_EQ(run(o, ab, {{"1", "x", "y"}}, ba, {{"x", "y", "1"}}).kind, MismatchKind::kRows);
  // Types still count, as a set.
  const std::vector<Col> ba_varchar = {{"c", kText}, {"b", kVarchar}, {"a", kInt4}};
  EXPECT_EQ(run(o, ab, {{"1", "x", "y"}}, ba_varchar, {{"y", "x", "1"}}).kind,
            MismatchKind::kColumns);
  // Both sides render in name order.
  ResultDigest d(&o);
  feed(d, ba, {{"y", "x", "1"}});
  EXPECT_EQ(d.first_row(), "(a='1', b='x', c='y')");
  // With ignored columns too.
  o.ignore_columns = {"b"};
  EXPECT_EQ(run(o, ab, {{"1", "x", "y"}}, ba, {{"y", "zzz", "1"}}).kind, MismatchKind::kNone);

  DigestOptions plain;
  EXPECT_EQ(run(plain, ab, {{"1", "x", "y"}}, ba, {{"y", "x", "1"}}).kind, MismatchKind::kColumns);
}

TEST(ResultDigest, OrderedDigestDetectsReordering) {
  DigestOptions o;
  const Rows swapped = {{"1", "a"}, {"3", "c"}, {"2", "b"}};
  const Comparison c = run(o, kABC, swapped, /*ordered=*/true);
  EXPECT_EQ(c.kind, MismatchKind::kRowOrder);
  EXPECT_EQ(c.evidence, RowEvidence::kAtPosition);
  EXPECT_EQ(c.row_index, 1u);
  EXPECT_EQ(c.primary_row, "(id='2', name='b')");
  EXPECT_EQ(c.shadow_row, "(id='3', name='c')");
  EXPECT_NE(c.detail.find("different order"), std::string::npos) << c.detail;
  EXPECT_EQ(run(o, kABC, swapped, /*ordered=*/false).kind, MismatchKind::kNone);
  EXPECT_EQ(run(o, kABC, kABC, /*ordered=*/true).kind, MismatchKind::kNone);
  // Different rows in an ordered result are kRows, with the position.
  const Rows changed = {{"1", "a"}, {"2", "B"}, {"3", "c"}};
  const Comparison r = run(o, kABC, changed, true);
  EXPECT_EQ(r.kind, MismatchKind::kRows);
  EXPECT_EQ(r.row_index, 1u);
  EXPECT_EQ(r.shadow_row, "(id='2', name='B')");
  // A missing last row: the position where the shorter side ended.
  const Comparison m = run(o, kABC, {{"1", "a"}, {"2", "b"}}, true);
  EXPECT_EQ(m.kind, MismatchKind::kRowCount);
  EXPECT_EQ(m.evidence, RowEvidence::kAtPosition);
  EXPECT_EQ(m.row_index, 2u);
  EXPECT_EQ(m.primary_row, "(id='3', name='c')");
  EXPECT_EQ(m.shadow_row, "");
}

TEST(ResultDigest, ErrorMismatches) {
  DigestOptions o;
  ResultDigest ok(&o);
  feed(ok, kTwoText, kABC);
  ResultDigest failed(&o);
  failed.on_error(error_response("42P01", "relation \"t\" does not exist"));
  EXPECT_TRUE(failed.failed());
  EXPECT_TRUE(failed.complete());
  EXPECT_EQ(failed.sqlstate(), "42P01");

  Comparison c = compare(failed, ok);
  EXPECT_EQ(c.kind, MismatchKind::kError);
  EXPECT_EQ(c.detail,
            "primary failed with 42P01 (relation \"t\" does not exist), shadow succeeded");
  EXPECT_EQ(c.evidence, RowEvidence::kFirstRows);
  EXPECT_EQ(c.shadow_row, "(id='1', name='a')");
  EXPECT_EQ(compare(ok, failed).kind, MismatchKind::kError);

  // Both failed alike: a match, whatever rows came before the error.
  ResultDigest failed_too(&o);
  failed_too.on_row_description(row_description(kTwoText));
  failed_too.on_data_row(data_row({"9", "z"}));
  failed_too.on_error(error_response("42P01", "other words"));
  EXPECT_EQ(compare(failed, failed_too).kind, MismatchKind::kNone);

  ResultDigest other(&o);
  other.on_error(error_response("57014", "canceling statement due to statement timeout"));
  c = compare(failed, other);
  EXPECT_EQ(c.kind, MismatchKind::kError);
  EXPECT_NE(c.detail.find("SQLSTATE 42P01 on primary, 57014 on shadow"), std::string::npos)
      << c.detail;
}

TEST(ResultDigest, ColumnMismatches) {
  DigestOptions o;
  const std::vector<Col> renamed = {{"id", kInt4}, {"title", kText}};
  Comparison c = run(o, kTwoText, kABC, renamed, kABC);
  EXPECT_EQ(c.kind, MismatchKind::kColumns);
  EXPECT_EQ(c.detail, "columns differ: primary (id:23, name:25) vs shadow (id:23, title:25)");
  EXPECT_EQ(c.evidence, RowEvidence::kFirstRows);

  const std::vector<Col> retyped = {{"id", kInt4}, {"name", kVarchar}};
  EXPECT_EQ(run(o, kTwoText, kABC, retyped, kABC).kind, MismatchKind::kColumns);
  const std::vector<Col> fewer = {{"id", kInt4}};
  EXPECT_EQ(run(o, kTwoText, kABC, fewer, {{"1"}, {"2"}, {"3"}}).kind, MismatchKind::kColumns);

  // User-defined types (OID >= 16384) have per-cluster OIDs: equal unless asked.
  const std::vector<Col> enum_old = {{"mood", 16390}};
  const std::vector<Col> enum_new = {{"mood", 24601}};
  EXPECT_EQ(run(o, enum_old, {{"happy"}}, enum_new, {{"happy"}}).kind, MismatchKind::kNone);
  EXPECT_EQ(run(o, enum_old, {{"happy"}}, {{"mood", kText}}, {{"happy"}}).kind,
            MismatchKind::kColumns);
  DigestOptions strict;
  strict.compare_user_type_oids = true;
  EXPECT_EQ(run(strict, enum_old, {{"happy"}}, enum_new, {{"happy"}}).kind, MismatchKind::kColumns);
}

TEST(ResultDigest, RowCountAndRowsAndTagMismatches) {
  DigestOptions o;
  Comparison c = run(o, kABC, {{"1", "a"}, {"2", "b"}});
  EXPECT_EQ(c.kind, MismatchKind::kRowCount);
  EXPECT_EQ(c.detail, "row count 3 on primary, 2 on shadow");
  EXPECT_EQ(c.evidence, RowEvidence::kOnlyPrimary);
  EXPECT_EQ(c.primary_row, "(id='3', name='c')");
  EXPECT_EQ(c.shadow_row, "");

  c = run(o, kABC, {{"1", "a"}, {"2", "b"}, {"3", "C"}});
  EXPECT_EQ(c.kind, MismatchKind::kRows);
  EXPECT_EQ(c.detail.rfind("rows differ (3 rows): digest ", 0), 0u) << c.detail;
  EXPECT_TRUE(c.evidence == RowEvidence::kOnlyPrimary || c.evidence == RowEvidence::kOnlyShadow);
  if (c.evidence == RowEvidence::kOnlyPrimary) {
    EXPECT_EQ(c.primary_row, "(id='3', name='c')");
  } else {
    EXPECT_EQ(c.shadow_row, "(id='3', name='C')");
  }

  ResultDigest p(&o);
  ResultDigest s(&o);
  feed(p, kTwoText, kABC, "SELECT 3");
  feed(s, kTwoText, kABC, "FETCH 3");
  c = compare(p, s);
  EXPECT_EQ(c.kind, MismatchKind::kCommandTag);
  EXPECT_EQ(c.detail, "command tag 'SELECT 3' on primary, 'FETCH 3' on shadow");
  // A side without a CommandComplete (not complete) has an empty tag.
  ResultDigest unfinished(&o);
  unfinished.on_row_description(row_description(kTwoText));
  for (const auto& r : kABC) unfinished.on_data_row(data_row(r));
  EXPECT_FALSE(unfinished.complete());
  EXPECT_EQ(compare(p, unfinished).kind, MismatchKind::kCommandTag);

  EXPECT_EQ(to_string(MismatchKind::kRowOrder), "row_order");
  EXPECT_EQ(to_string(MismatchKind::kCommandTag), "command_tag");
}

Rows numbered(int n, int changed = -1) {
  Rows rows;
  for (int i = 0; i < n; ++i) {
    rows.push_back({std::to_string(i), i == changed ? "changed" : "row " + std::to_string(i)});
  }
  return rows;
}

TEST(ResultDigest, SmallResultsAlwaysReportTheDifferingRow) {
  DigestOptions o;  // 32 rows sampled
  for (int changed = 0; changed < 32; ++changed) {
    const Comparison c = run(o, numbered(32), numbered(32, changed));
    ASSERT_EQ(c.kind, MismatchKind::kRows);
    const std::string id = "(id='" + std::to_string(changed) + "', ";
    if (c.evidence == RowEvidence::kOnlyPrimary) {
      EXPECT_EQ(c.primary_row, id + "name='row " + std::to_string(changed) + "')");
    } else {
      ASSERT_EQ(c.evidence, RowEvidence::kOnlyShadow);
      EXPECT_EQ(c.shadow_row, id + "name='changed')");
    }
  }
}

TEST(ResultDigest, LargeResultsReportOnlyGenuinelyDifferingRows) {
  // 2000 rows in a different arrival order on each side, 50 of them changed on the shadow: the
  // bottom-k samples see the same part of the multiset, so whatever row is reported really differs
  // (and with 50 differing rows among 2000 and k = 32, one is found with probability ~55%).
  DigestOptions o;
  Rows primary = numbered(2000);
  Rows shadow = primary;
  for (int i = 0; i < 2000; i += 40) shadow[i][1] = "changed " + std::to_string(i);
  std::reverse(shadow.begin(), shadow.end());
  int found = 0;
  for (int round = 0; round < 20; ++round) {
    // Rotate which rows changed, so that different samples are exercised.
    Rows p = primary;
    Rows s = shadow;
    for (auto& r : p) *r[1] += "/" + std::to_string(round);
    for (auto& r : s) *r[1] += "/" + std::to_string(round);
    const Comparison c = run(o, p, s);
    ASSERT_EQ(c.kind, MismatchKind::kRows);
    if (c.evidence == RowEvidence::kOnlyShadow) {
      EXPECT_NE(c.shadow_row.find("changed"), std::string::npos) << c.shadow_row;
      ++found;
    } else if (c.evidence == RowEvidence::kOnlyPrimary) {
      // A primary row whose id is a multiple of 40: the one that changed.
      const size_t q = c.primary_row.find('\'');
      const int id = std::stoi(c.primary_row.substr(q + 1));
      EXPECT_EQ(id % 40, 0) << c.primary_row;
      ++found;
    } else {
      EXPECT_EQ(c.evidence, RowEvidence::kFirstRows);
    }
  }
  EXPECT_GT(found, 0);
  // Equal multisets in different arrival orders never look different.
  Rows reversed = primary;
  std::reverse(reversed.begin(), reversed.end());
  EXPECT_EQ(run(o, primary, reversed).kind, MismatchKind::kNone);
}

TEST(ResultDigest, BottomKSampleIsIndependentOfArrivalOrder) {
  DigestOptions o;
  o.sample_rows = 8;
  ResultDigest forward(&o);
  ResultDigest backward(&o);
  Rows rows = numbered(500);
  feed(forward, kTwoText, rows);
  std::reverse(rows.begin(), rows.end());
  feed(backward, kTwoText, rows);
  ASSERT_EQ(forward.sample().size(), 8u);
  EXPECT_FALSE(forward.sample_complete());
  EXPECT_EQ(forward.sample_bound(), backward.sample_bound());
  std::vector<std::string> a;
  std::vector<std::string> b;
  for (const auto& r : forward.sample()) a.push_back(forward.render(r));
  for (const auto& r : backward.sample()) b.push_back(backward.render(r));
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  EXPECT_EQ(a, b);
}

TEST(ResultDigest, NoSampleStillCompares) {
  DigestOptions o;
  o.sample_rows = 0;
  const Comparison c = run(o, kABC, {{"1", "a"}, {"2", "b"}, {"3", "C"}});
  EXPECT_EQ(c.kind, MismatchKind::kRows);
  EXPECT_EQ(c.evidence, RowEvidence::kFirstRows);
  EXPECT_EQ(c.primary_row, "(id='1', name='a')");
  EXPECT_EQ(c.shadow_row, "(id='1', name='a')");
}

TEST(ResultDigest, RenderingIsBounded) {
  DigestOptions o;
  o.max_rendered_row = 32;
  ResultDigest d(&o);
  // A 40-byte DataRow: kept cut at 32 bytes, rendered with quotes doubled, "..." where it stops,
  // within the budget.
  feed(d, kTwoText, {{"1", "it's " + std::string(24, 'x')}});
  const std::string first = d.first_row();
  EXPECT_EQ(first, "(id='1', name='it''s xxxxxxxx...");
  EXPECT_LE(first.size(), 32u);

  // The rendering (longer than the row: names, quotes) is cut at a UTF-8 boundary.
  o.max_rendered_row = 40;
  const std::vector<Col> long_name = {{"a_rather_long_column_name", kText}};
  ResultDigest e(&o);
  feed(e, long_name, {{std::string(8, 'x') + "\xc3\xa9\xc3\xa9"}});
  EXPECT_EQ(e.first_row(), "(a_rather_long_column_name='" + std::string(8, 'x') + "...");

  // A row cut before a column: what is kept ends there.
  o.max_rendered_row = 1024;
  ResultDigest f(&o);
  feed(f, kTwoText, {{std::string(2000, 'y'), "z"}});
  const std::string big = f.first_row();
  EXPECT_LE(big.size(), 1024u);
  EXPECT_EQ(big.substr(0, 10), "(id='yyyyy");
  EXPECT_EQ(big.substr(big.size() - 4), "y...");
}

TEST(ResultDigest, SampledRowsRenderOnDemand) {
  DigestOptions o;
  o.sample_rows = 2;
  ResultDigest ordered(&o, true);
  feed(ordered, kTwoText, kABC);
  ASSERT_EQ(ordered.sample().size(), 2u);
  EXPECT_EQ(ordered.render(ordered.sample()[0]), "(id='1', name='a')");
  EXPECT_EQ(ordered.render(ordered.sample()[1]), "(id='2', name='b')");
  EXPECT_EQ(ordered.sample()[1].index, 1u);
}

TEST(ResultDigest, RowsWithoutRowDescription) {
  // Extended protocol without Describe: no names or formats; values hash in wire order as text.
  DigestOptions o;
  ResultDigest p(&o);
  ResultDigest s(&o);
  for (ResultDigest* d : {&p, &s}) {
    d->on_data_row(data_row({"1", std::nullopt}));
    d->on_data_row(data_row({"2", "b"}));
    d->on_command_complete(command_complete("SELECT 2"));
  }
  EXPECT_EQ(compare(p, s).kind, MismatchKind::kNone);
  EXPECT_EQ(p.first_row(), "('1', NULL)");
  EXPECT_FALSE(p.has_row_description());
  s.reset(false);
  s.on_data_row(data_row({"1", ""}));
  s.on_data_row(data_row({"2", "b"}));
  s.on_command_complete(command_complete("SELECT 2"));
  EXPECT_EQ(compare(p, s).kind, MismatchKind::kRows);
}

TEST(ResultDigest, MalformedBodiesAreCountedNotFatal) {
  DigestOptions o;
  ResultDigest d(&o);
  d.on_row_description("\x00");
  d.on_row_description(row_description(kTwoText));
  d.on_data_row(
      std::string("\x00\x02\x00\x00\x00\x05"
                  "ab",
                  8));                                        // value runs past the end
  d.on_data_row(std::string("\x00\x01\xff\xff\xff\xfe", 6));  // length -2
  d.on_data_row(data_row({"1"}));                             // 1 value for 2 columns
  d.on_data_row(std::string("\x00", 1));
  d.on_data_row(data_row({"1", "a"}) + "junk");
  d.on_error(std::string("Cxx", 3));
  EXPECT_EQ(d.malformed_messages(), 7u);
  EXPECT_EQ(d.row_count(), 5u);
  EXPECT_TRUE(d.failed());
  EXPECT_EQ(d.first_row(), "(malformed DataRow)");
  ResultDigest e(&o);
  e.on_data_row(
      std::string("\x00\x02\x00\x00\x00\x05"
                  "ab",
                  8));
  EXPECT_EQ(e.malformed_messages(), 1u);
}

TEST(ResultDigest, RandomBodiesNeverCrash) {
  // Mutated and random bodies through every entry point, rendered through compare().
  std::mt19937_64 rng(5);
  DigestOptions o;
  o.ignore_column_order = true;
  o.float_significant_digits = 3;
  o.sample_rows = 4;
  o.max_rendered_row = 24;
  const std::string rd = row_description({{"b", kFloat8}, {"a", kText}});
  const std::string row = data_row({"1.5", "x"});
  for (int round = 0; round < 2000; ++round) {
    ResultDigest p(&o, round % 2 == 0);
    ResultDigest s(&o, round % 2 == 0);
    for (ResultDigest* d : {&p, &s}) {
      std::string r = rd;
      if (rng() % 3 == 0) r[rng() % r.size()] = static_cast<char>(rng());
      d->on_row_description(r);
      for (int i = 0; i < 8; ++i) {
        std::string body = row;
        const int mode = static_cast<int>(rng() % 4);
        if (mode == 1) body[rng() % body.size()] = static_cast<char>(rng());
        if (mode == 2) body.resize(rng() % body.size());
        if (mode == 3) {
          body.assign(rng() % 40, '\0');
          for (char& c : body) c = static_cast<char>(rng());
        }
        d->on_data_row(body);
      }
      std::string e = error_response("XX000", "m");
      e[rng() % e.size()] = static_cast<char>(rng());
      if (rng() % 2) d->on_error(e);
    }
    const Comparison c = compare(p, s);
    EXPECT_LE(c.primary_row.size(), 24u);
    EXPECT_LE(c.shadow_row.size(), 24u);
    (void)p.first_row();
    (void)p.columns_rendered();
  }
}

TEST(ResultDigest, ResetStartsOver) {
  DigestOptions o;
  ResultDigest p(&o);
  ResultDigest s(&o);
  feed(p, kTwoText, kABC);
  feed(s, kTwoText, {{"1", "x"}});
  EXPECT_NE(compare(p, s).kind, MismatchKind::kNone);
  s.reset(false);
  feed(s, kTwoText, kABC);
  EXPECT_EQ(compare(p, s).kind, MismatchKind::kNone);
  p.reset(true);
  EXPECT_TRUE(p.ordered());
  EXPECT_EQ(p.row_count(), 0u);
  EXPECT_EQ(p.sample().size(), 0u);
  EXPECT_EQ(p.first_row(), "");
  EXPECT_FALSE(p.complete());
}

TEST(ResultDigest, DigestingRowsAllocatesNothingAfterWarmUp) {
#if !PGTANDEM_COUNT_ALLOCATIONS
  GTEST_SKIP() << "allocation counting is off under sanitizers";
#else
  for (bool ordered : {false, true}) {
    for (bool reorder : {false, true}) {
      SCOPED_TRACE(testing::Message() << "ordered " << ordered << " reorder " << reorder);
      DigestOptions o;
      o.ignore_column_order = reorder;
      o.ignore_columns = {"skip"};
      o.float_significant_digits = 6;
      const std::vector<Col> cols = {{"id", kInt4}, {"skip", kText}, {"f", kFloat8}, {"b", kText}};
      std::vector<std::string> rows;
      for (int i = 0; i < 300; ++i) {
        rows.push_back(data_row({std::to_string(i), "s", std::to_string(i * 0.5),
                                 "row " + std::string(static_cast<size_t>(i % 50), 'y')}));
      }
      const std::string rd = row_description(cols);
      const std::string cc = command_complete("SELECT 300");
      ResultDigest d(&o, ordered);
      const auto query = [&] {
        d.reset(ordered);
        d.on_row_description(rd);
        for (const auto& r : rows) d.on_data_row(r);
        d.on_command_complete(cc);
      };
      query();  // warm-up: sample strings, scratch vectors
      const uint64_t before = g_allocations.load();
      query();
      EXPECT_EQ(g_allocations.load() - before, 0u);
    }
  }
#endif
}

}  // namespace
}  // namespace pgtandem::policy

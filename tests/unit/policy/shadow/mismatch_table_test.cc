#include "policy/shadow/mismatch_table.h"

#include <gtest/gtest.h>

#include <string>

namespace pgtandem::policy {
namespace {

TEST(MismatchTable, CountsByFingerprintAndKindHighestFirst) {
  MismatchTable t(10);
  EXPECT_EQ(t.record("aaaa", MismatchKind::kRows, "SELECT * FROM t WHERE id = $1", "rows: x",
                     "r1", "new", 1000),
            "aaaa");
  t.record("bbbb", MismatchKind::kColumns, "SELECT b", "columns", "default", "new", 2000);
  t.record("bbbb", MismatchKind::kRowCount, "SELECT b", "row_count: 3 vs 2", "default", "new",
           3000);
  const auto top = t.top(10);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].fingerprint, "bbbb");
  EXPECT_EQ(top[0].count, 2u);
  EXPECT_EQ(top[0].by_kind[static_cast<size_t>(MismatchKind::kColumns)], 1u);
  EXPECT_EQ(top[0].by_kind[static_cast<size_t>(MismatchKind::kRowCount)], 1u);
  EXPECT_EQ(top[0].first_seen_ms, 2000);
  EXPECT_EQ(top[0].last_seen_ms, 3000);
  EXPECT_EQ(top[0].example, "row_count: 3 vs 2") << "the last mismatch's detail";
  EXPECT_EQ(top[1].fingerprint, "aaaa");
  EXPECT_EQ(top[1].rule, "r1");
  EXPECT_EQ(t.total(), 3u);
  EXPECT_EQ(t.top(1).size(), 1u);
}

TEST(MismatchTable, BoundedLabelSetFullTableCountsAsOther) {
  MismatchTable t(2);
  EXPECT_EQ(t.record("a", MismatchKind::kRows, "q", "", "", "", 1), "a");
  EXPECT_EQ(t.record("b", MismatchKind::kRows, "q", "", "", "", 2), "b");
  EXPECT_EQ(t.record("c", MismatchKind::kRows, "q", "", "", "", 3), "other");
  EXPECT_EQ(t.record("d", MismatchKind::kRows, "q", "", "", "", 4), "other");
  EXPECT_EQ(t.record("a", MismatchKind::kRows, "q", "", "", "", 5), "a") << "known keep theirs";
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.other(), 2u);
  EXPECT_EQ(t.total(), 5u);
}

TEST(MismatchTable, UnparsedStatementsShareOneEntry) {
  MismatchTable t(5);
  EXPECT_EQ(t.record("", MismatchKind::kError, "garbage", "", "", "", 1), "unparsed");
  EXPECT_EQ(t.record("", MismatchKind::kError, "more garbage", "", "", "", 2), "unparsed");
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.top(5)[0].count, 2u);
}

TEST(MismatchTable, RechecksAndLongTextsAreBounded) {
  MismatchTable t(5);
  const std::string longq(5000, 'x');
  t.record("f", MismatchKind::kRows, longq, std::string(3000, 'y'), "", "", 1);
  t.record_recheck("f", true);
  t.record_recheck("f", false);
  t.record_recheck("f", false);
  t.record_recheck("unknown", true);  // no entry: ignored
  const auto e = t.top(1)[0];
  EXPECT_EQ(e.persistent, 1u);
  EXPECT_EQ(e.transient, 2u);
  EXPECT_LE(e.query.size(), 520u);
  EXPECT_LE(e.example.size(), 520u);
  // UTF-8 is cut at a character boundary.
  std::string utf8;
  for (int i = 0; i < 400; ++i) utf8 += "\xc3\xa9";  // é
  t.record("g", MismatchKind::kRows, utf8, "", "", "", 2);
  for (const auto &x : t.top(5)) {
    if (x.fingerprint != "g") continue;
    const std::string body = x.query.substr(0, x.query.size() - 3);
    EXPECT_EQ(body.size() % 2, 0u);
    EXPECT_EQ(x.query.substr(x.query.size() - 3), "...");
  }
  t.clear();
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.total(), 0u);
}

}  // namespace
}  // namespace pgtandem::policy

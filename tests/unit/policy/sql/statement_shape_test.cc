// statement_shape: texts that differ only in their numbers share a shape, and texts that share a
// shape are classified alike (the claim the classification cache rests on).
#include "policy/sql/statement_shape.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "policy/sql/classifier.h"
#include "policy/sql/classifier_cache.h"
#include "tests/support/sql_numbers.h"
#include "tests/unit/policy/sql/classifier_table.h"

namespace pgtandem::policy {
namespace {

using test::with_numbers;

std::string shape(std::string_view sql, bool scs = true) {
  std::string out;
  return statement_shape(sql, scs, &out) ? out : "(none)";
}

TEST(StatementShape, NumbersBecomeOneZero) {
  EXPECT_EQ(shape("UPDATE pgbench_accounts SET abalance = abalance + -3201 WHERE aid = 81234;"),
            "UPDATE pgbench_accounts SET abalance = abalance + -0 WHERE aid = 0;");
  EXPECT_EQ(shape("SELECT 1.5, 2e10, 3.25E-4, 7., .5"), "SELECT 0.0, 0.0, 0.0, 0., .0");
  EXPECT_EQ(shape("select 1"), "select 0");
  EXPECT_EQ(shape("SELECT 42"), shape("SELECT 2147483647"));
  EXPECT_EQ(shape("SELECT 00000000000000000042"), "SELECT 0");
  // Past 32 bits an integer is another kind of token to the server (varchar(2147483648) does not
  // parse, varchar(20) does).
  EXPECT_EQ(shape("SELECT 2147483648"), "SELECT 0.0");
  EXPECT_EQ(shape("SELECT 9999999999999999999999"), "SELECT 0.0");
  // Kept byte for byte: words with digits, parameters, literals, quoted names, comments, case.
  EXPECT_EQ(shape("SELECT t1.c2, $1, '12', \"a1\", x'0F' FROM t1 -- 99\nWHERE a = 3 /* 4 /* 5 */ */"),
            "SELECT t1.c2, $1, '12', \"a1\", x'0F' FROM t1 -- 99\nWHERE a = 0 /* 4 /* 5 */ */");
  EXPECT_EQ(shape("SELECT 'it''s 1', \"a\"\"2\""), "SELECT 'it''s 1', \"a\"\"2\"");
  EXPECT_EQ(shape("SELECT a$1 FROM t"), "SELECT a$1 FROM t");
  EXPECT_EQ(shape("SELECT 1abc"), "SELECT 0abc");
  EXPECT_EQ(shape(""), "");
}

TEST(StatementShape, NoShapeWhereTheWalkCouldReadOtherwise) {
  EXPECT_EQ(shape("EXPLAIN (ANALYZE 1) DELETE FROM t"), "(none)");
  EXPECT_EQ(shape("explain analyze select 1"), "(none)");
  EXPECT_EQ(shape("SELECT 1; ExPlAiN (ANALYZE 0) DELETE FROM t"), "(none)");
  EXPECT_EQ(shape("SELECT 1", false), "(none)");        // standard_conforming_strings off
  EXPECT_EQ(shape("SELECT E'\\'', 1"), "(none)");      // a backslash
  EXPECT_EQ(shape("SELECT $$ 1 $$"), "(none)");         // a dollar quote
  EXPECT_EQ(shape("SELECT $a$ 1 $a$"), "(none)");
  EXPECT_EQ(shape("SELECT '1"), "(none)");              // unterminated
  EXPECT_EQ(shape("SELECT \"1"), "(none)");
  EXPECT_EQ(shape("SELECT 1 /* 2"), "(none)");
  EXPECT_EQ(shape(std::string_view("SELECT 1\0", 9)), "(none)");
  // (A word that only contains "explain" is another word.)
  EXPECT_EQ(shape("SELECT explain_log FROM t WHERE id = 3"),
            "SELECT explain_log FROM t WHERE id = 0");
}

// Why EXPLAIN has no shape: the value of an option decides whether the statement runs.
TEST(StatementShape, ExplainIsTheExceptionNumbersDecide) {
  const ClassifierOptions opts;
  EXPECT_EQ(classify("EXPLAIN (ANALYZE 1) DELETE FROM t", opts).kind, StatementKind::kWrite);
  EXPECT_EQ(classify("EXPLAIN (ANALYZE 0) DELETE FROM t", opts).kind, StatementKind::kRead);
}

// Why an integer and a fraction are two shapes: the grammar takes only integers in places, and a
// text that does not parse is classified otherwise (found by fuzz_statement_shape).
TEST(StatementShape, IntegersAndOtherNumbersAreTwoShapes) {
  const ClassifierOptions opts;
  const std::string_view a = "SELECT f(1), CAST(b AS varchar(20)) FROM t";
  const std::string_view b = "SELECT f(1), CAST(b AS varchar(0.5)) FROM t";
  const std::string_view c = "SELECT f(1), CAST(b AS varchar(2147483648)) FROM t";
  EXPECT_NE(classify(a, opts), classify(b, opts));
  EXPECT_NE(shape(a), shape(b));
  EXPECT_EQ(shape(b), shape(c));
  EXPECT_EQ(classify(b, opts), classify(c, opts));
  EXPECT_EQ(shape(a), shape("SELECT f(7), CAST(b AS varchar(30)) FROM t"));
}

// The claim: two texts of one shape are classified alike. Every statement of the classifier's
// table (and each with a byte changed), its numbers replaced by others: where the shapes agree,
// so must the classifications, flags and all.
TEST(StatementShape, TextsOfOneShapeAreClassifiedAlike) {
  const ClassifierOptions opts;
  size_t compared = 0;
  auto check = [&](std::string_view sql) {
    std::string base;
    if (!statement_shape(sql, true, &base)) return;
    const Classification c = classify(sql, opts);
    for (std::string_view number : {"0", "1", "7", "2.5", "123456789012345", "1e3"}) {
      const std::string other = with_numbers(sql, number);
      if (other == sql) continue;
      std::string other_shape;
      if (!statement_shape(other, true, &other_shape) || other_shape != base) continue;
      ++compared;
      ASSERT_EQ(classify(other, opts), c) << "\n  " << sql << "\n  " << other;
    }
  };
  for (const table::Row& row : table::kRows) check(row.sql);
  const size_t from_table = compared;
  std::mt19937_64 rng(11);
  constexpr std::string_view kBytes = "'\";$()-*/ \n0123456789.eE+";
  for (const table::Row& row : table::kRows) {
    for (int i = 0; i < 20; ++i) {
      std::string sql(row.sql);
      const size_t at = rng() % (sql.size() + 1);
      const char byte = kBytes[rng() % kBytes.size()];
      if (rng() % 2 == 0 || at == sql.size()) {
        sql.insert(sql.begin() + static_cast<long>(at), byte);
      } else {
        sql[at] = byte;
      }
      check(sql);
    }
  }
  EXPECT_GT(from_table, 100u);  // the table has numbers enough for the claim to be tested
  EXPECT_GT(compared, from_table + 1000);
}

// statement_shape() skips 16 bytes at a time to the next byte that matters; it must give what the
// bytewise walk gives, shape and refusal, for every text: the classifier's table, every prefix and
// suffix of it (the 16-byte steps end everywhere), and random texts of the bytes that start or end
// something, at every length up to 70 (words with digits and `$` in them, numbers ending where a
// word or parameter begins, `explain` and near misses, quotes, comments, backslashes, NULs).
TEST(StatementShape, TheFastWalkEqualsTheBytewiseOne) {
  size_t compared = 0;
  auto check = [&](std::string_view sql) {
    for (bool scs : {true, false}) {
      std::string fast = "garbage";
      std::string bytewise = "other garbage";
      const bool a = statement_shape(sql, scs, &fast);
      const bool b = detail::statement_shape_bytewise(sql, scs, &bytewise);
      ASSERT_EQ(a, b) << sql;
      if (a) {
        ASSERT_EQ(fast, bytewise) << sql;
      }
      ++compared;
    }
  };
  for (const table::Row& row : table::kRows) {
    const std::string_view sql(row.sql);
    for (size_t k = 0; k <= sql.size(); ++k) {
      check(sql.substr(0, k));
      check(sql.substr(k));
    }
  }
  std::mt19937_64 rng(20261207);
  const std::vector<std::string> pieces = {
      "a", "b", "x", "X", "e", "E", "_", "$", "0", "1", "9", ".", "+", "-", "--", "/", "/*", "*/",
      "*", "'", "\"", "''", " ", "\n", ";", "(", ")", "\\", std::string(1, '\0'), "\xc3\xa9",
      "explain", "EXPLAIN", "eXplain", "xplain", "explai", "explains", "1e5", "2.5", "$1", "t1",
      "a$1", "12345678901", "0x1F", "max", "exists"};
  std::string sql;
  for (int i = 0; i < 200000; ++i) {
    sql.clear();
    const size_t parts = rng() % 24;
    for (size_t k = 0; k < parts && sql.size() < 70; ++k) sql += pieces[rng() % pieces.size()];
    check(sql);
  }
  EXPECT_GT(compared, 400000u);
}

// In the cache: texts that differ only in their numbers share one entry.
TEST(StatementShape, TheCacheHoldsOneEntryPerShape) {
  ClassificationCache cache;
  const ClassifierOptions opts;
  const Classification first = classify_cached("UPDATE t SET v = v + 5 WHERE id = 1", opts, &cache);
  EXPECT_EQ(first.kind, StatementKind::kWrite);
  classify_cached("UPDATE t SET v = v + 7 WHERE id = 2", opts, &cache);  // admitted: seen twice
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(classify_cached("UPDATE t SET v = v + 9 WHERE id = 3", opts, &cache), first);
  EXPECT_EQ(cache.hits(), 1u);
  EXPECT_NE(cache.find("UPDATE t SET v = v + 11 WHERE id = 12", opts), nullptr);
  // Another shape is another entry: a word, a string or a parameter is not a number.
  EXPECT_EQ(cache.find("UPDATE t SET v = v + 9 WHERE id = '3'", opts), nullptr);
  EXPECT_EQ(cache.find("UPDATE t2 SET v = v + 9 WHERE id = 3", opts), nullptr);
  EXPECT_EQ(cache.find("UPDATE t SET v = v + $1 WHERE id = 3", opts), nullptr);
}

}  // namespace
}  // namespace pgtandem::policy

// Random and mutated input: nothing crashes, every token stays inside its input, and whatever the
// classifier calls a read is never a write to the parser. Fixed seeds.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "classifier_table.h"
#include "policy/sql/classifier.h"
#include "policy/sql/classifier_cache.h"
#include "policy/sql/classifier_parser.h"
#include "policy/sql/lexer.h"

namespace pgtandem::policy {
namespace {

bool within(std::string_view inner, std::string_view outer) {
  return inner.data() >= outer.data() && inner.data() + inner.size() <= outer.data() + outer.size();
}

void check_lexer(std::string_view sql, bool scs) {
  Lexer lexer(sql, scs);
  size_t last_end = 0;
  for (size_t n = 0; n <= sql.size() + 1; ++n) {
    const Token t = lexer.next();
    if (t.kind == TokenKind::kEnd) return;
    ASSERT_TRUE(within(t.text, sql));
    const size_t begin = static_cast<size_t>(t.text.data() - sql.data());
    ASSERT_GE(begin, last_end);
    last_end = begin + t.text.size();
    if (t.kind != TokenKind::kError) {
      ASSERT_FALSE(t.text.empty());
    }
  }
  FAIL() << "lexer did not finish";
}

// Fragments that exercise every lexer state and every classifier branch.
constexpr std::string_view kFragments[] = {
    "SELECT ",
    "select ",
    "INSERT INTO t ",
    "UPDATE t SET a = 1 ",
    "DELETE FROM t ",
    "WITH x AS (",
    "(",
    ")",
    ",",
    ";",
    " ",
    "\n",
    "--",
    "/*",
    "*/",
    "'",
    "''",
    "E'",
    "\\",
    "\\'",
    "\"",
    "\"\"",
    "U&'",
    "U&\"",
    "$$",
    "$a$",
    "$1",
    "$",
    "nextval(",
    "lower(",
    "f(",
    "pg_catalog.",
    ".",
    "FOR UPDATE",
    "FOR SHARE",
    "INTO ",
    "TEMP ",
    "DEFAULT ",
    "VALUES (1)",
    "TABLE t ",
    "EXPLAIN ",
    "ANALYZE ",
    "COPY ",
    "FROM ",
    "STDIN ",
    "BEGIN ",
    "COMMIT ",
    "SET ",
    "LOCAL ",
    "PREPARE p AS ",
    "EXECUTE p ",
    "DECLARE c CURSOR WITH HOLD FOR ",
    "now()",
    "CURRENT_TIMESTAMP",
    "1",
    "1.5e3",
    "::int",
    "a",
    "\"x\"",
    "pg_advisory_lock(1)",
    "set_config('a','b',false)",
    "CREATE ",
    "LISTEN c",
    "x",
    "\x80",
    "\xff",
    "=",
    "<>",
    "||",
};

std::string random_sql(std::mt19937_64& rng) {
  std::string sql;
  const int parts = static_cast<int>(rng() % 12);
  for (int i = 0; i < parts; ++i) {
    if (rng() % 8 == 0) {
      sql.push_back(static_cast<char>(rng() % 256));
    } else {
      sql += kFragments[rng() % std::size(kFragments)];
    }
  }
  return sql;
}

TEST(ClassifierRandom, NeverCrashesAndReadsAreReadsToTheParser) {
  std::mt19937_64 rng(20261121);
  const ClassifierOptions opts;
  ClassificationCache cache;
  int reads = 0;
  int checked = 0;
  for (int round = 0; round < 30000; ++round) {
    const std::string sql = random_sql(rng);
    check_lexer(sql, true);
    check_lexer(sql, false);
    const Classification c = classify(sql, opts);
    ASSERT_EQ(classify_cached(sql, opts, &cache), c) << sql;
    ClassifierOptions off = opts;
    off.standard_conforming_strings = false;
    classify(sql, off);
    if (c.kind != StatementKind::kRead) continue;
    ++reads;
    // Every read either parses as a read or does not parse at all (the server rejects it too).
    // Text with NUL or an unterminated literal never comes back as a read.
    const StatementKind parsed = classify_with_parser(sql, opts).kind;
    if (parsed != StatementKind::kUnknown) {
      ++checked;
      ASSERT_EQ(parsed, StatementKind::kRead) << sql;
    }
  }
  EXPECT_GT(reads, 1000);
  EXPECT_GT(checked, 500);
}

TEST(ClassifierRandom, MutatedTableStatements) {
  // Insert, delete or replace one byte of every table statement, many times.
  std::mt19937_64 rng(7);
  const ClassifierOptions opts;
  constexpr std::string_view kBytes = "'\";$()-*/\\ \nEeU&x01";
  for (const table::Row& row : table::kRows) {
    for (int i = 0; i < 40; ++i) {
      std::string sql(row.sql);
      const size_t at = sql.empty() ? 0 : rng() % (sql.size() + 1);
      const char byte = kBytes[rng() % kBytes.size()];
      switch (rng() % 3) {
        case 0:
          sql.insert(sql.begin() + static_cast<long>(at), byte);
          break;
        case 1:
          if (at < sql.size()) sql.erase(at, 1);
          break;
        default:
          if (at < sql.size()) sql[at] = byte;
          break;
      }
      check_lexer(sql, true);
      const Classification c = classify(sql, opts);
      if (c.kind != StatementKind::kRead) continue;
      const StatementKind parsed = classify_with_parser(sql, opts).kind;
      ASSERT_TRUE(parsed == StatementKind::kRead || parsed == StatementKind::kUnknown) << sql;
    }
  }
}

}  // namespace
}  // namespace pgtandem::policy

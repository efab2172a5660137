// libpg_query as the oracle: no statement the classifier calls a read is a write in the parse tree.
// Two oracles: the classifier's own tree walk (classify_with_parser), and an independent, crude
// look at libpg_query's JSON for the node types and function names that mean "writes".
#include <gtest/gtest.h>
#include <pg_query.h>

#include <string>
#include <string_view>

#include "classifier_table.h"
#include "policy/sql/classifier.h"
#include "policy/sql/classifier_parser.h"

namespace pgtandem::policy {
namespace {

using table::kRows;
using table::Row;

struct Tree {
  bool ok = false;
  std::string json;
};

Tree parse(std::string_view sql) {
  const std::string text(sql);
  PgQueryParseResult r = pg_query_parse(text.c_str());
  Tree t;
  t.ok = r.error == nullptr;
  if (t.ok) t.json = r.parse_tree;
  pg_query_free_parse_result(r);
  return t;
}

// What in the JSON would make the statement a write, or "" if nothing does.
std::string write_evidence(const std::string& json) {
  for (std::string_view node :
       {"\"InsertStmt\"", "\"UpdateStmt\"", "\"DeleteStmt\"", "\"MergeStmt\"", "\"LockingClause\"",
        "\"intoClause\"", "\"relpersistence\":\"t\"", "\"DoStmt\"", "\"CallStmt\""}) {
    if (json.find(node) != std::string::npos) return std::string(node);
  }
  // Function names: every "funcname" list; its last String is the function.
  for (size_t at = json.find("\"funcname\":["); at != std::string::npos;
       at = json.find("\"funcname\":[", at + 1)) {
    const size_t end = json.find(']', at);
    const size_t last = json.rfind("\"sval\":\"", end);
    const size_t begin = last + 8;
    const std::string name = json.substr(begin, json.find('"', begin) - begin);
    for (std::string_view writer :
         {"nextval", "setval", "currval", "lo_create", "lo_import", "lo_unlink", "lowrite",
          "lo_put", "pg_notify", "set_config", "txid_current", "pg_terminate_backend"}) {
      if (name == writer || name.rfind("pg_advisory", 0) == 0 ||
          name.rfind("pg_try_advisory", 0) == 0) {
        return "call to " + name;
      }
    }
  }
  return "";
}

TEST(ClassifierAgreement, EveryReadInTheTableIsAReadToTheParser) {
  const ClassifierOptions opts;
  int reads = 0;
  for (const Row& row : kRows) {
    const Classification c = classify(row.sql, opts);
    if (c.kind != StatementKind::kRead) continue;
    ++reads;
    SCOPED_TRACE(row.sql);
    const Tree tree = parse(row.sql);
    if (!tree.ok) {
      // A syntax error: the server rejects the whole query string, nothing runs anywhere.
      EXPECT_EQ(classify_with_parser(row.sql, opts).kind, StatementKind::kUnknown);
      continue;
    }
    EXPECT_EQ(classify_with_parser(row.sql, opts).kind, StatementKind::kRead);
    // EXPLAIN without ANALYZE holds the explained statement unexecuted: only the walk judges it.
    if (tree.json.find("\"ExplainStmt\"") == std::string::npos) {
      EXPECT_EQ(write_evidence(tree.json), "");
    }
  }
  EXPECT_GE(reads, 100);
}

TEST(ClassifierAgreement, LexerAndParserAgreeOnKindForLexerDecidedRows) {
  // Where the lexer alone decides, the tree walk reaches the same kind and flags (a syntax error
  // the lexer does not notice is the one allowed difference).
  const ClassifierOptions opts;
  for (const Row& row : kRows) {
    const Classification lexed = classify(row.sql, opts);
    if (lexed.used_parser || lexed.kind == StatementKind::kUnknown) continue;
    if (!parse(row.sql).ok) continue;
    const Classification parsed = classify_with_parser(row.sql, opts);
    SCOPED_TRACE(row.sql);
    EXPECT_EQ(parsed.kind, lexed.kind);
    EXPECT_EQ(parsed.txn, lexed.txn);
    EXPECT_EQ(parsed.session, lexed.session);
    EXPECT_EQ(parsed.nondeterministic, lexed.nondeterministic);
    EXPECT_EQ(parsed.may_use_defaults, lexed.may_use_defaults);
    EXPECT_EQ(parsed.pins_session, lexed.pins_session);
    EXPECT_EQ(parsed.primary_only, lexed.primary_only);
    EXPECT_EQ(parsed.primary_only_mixed, lexed.primary_only_mixed);
    EXPECT_EQ(parsed.statement_count, lexed.statement_count);
  }
}

TEST(ClassifierAgreement, ParserAloneCatchesEveryWriteInTheTable) {
  const ClassifierOptions opts;
  for (const Row& row : kRows) {
    if (row.kind != StatementKind::kWrite) continue;
    const StatementKind k = classify_with_parser(row.sql, opts).kind;
    EXPECT_TRUE(k == StatementKind::kWrite || k == StatementKind::kUnknown) << row.sql;
  }
}

}  // namespace
}  // namespace pgtandem::policy

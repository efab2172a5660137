// Every statement of the table (classifier_table.h) gets its expected kind, flags, transaction
// and session operation, from the path the table says decides it.
#include "classifier_table.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "policy/sql/classifier.h"

namespace pgtandem::policy {
namespace {

using table::kD;
using table::kM;
using table::kN;
using table::kO;
using table::kP;
using table::kRows;
using table::kX;
using table::Path;
using table::Row;

std::string describe(const Classification& c) {
  std::string s(to_string(c.kind));
  if (c.nondeterministic) s += " nondeterministic";
  if (c.may_use_defaults) s += " may_use_defaults";
  if (c.pins_session) s += " pins_session";
  if (c.multi_statement) s += " multi_statement";
  if (c.primary_only) s += " primary_only";
  if (c.primary_only_mixed) s += " primary_only_mixed";
  if (c.used_parser) s += " used_parser";
  if (c.txn != TxnControl::kNone) s += " txn=" + std::string(to_string(c.txn));
  if (c.session != SessionOp::kNone) s += " session=" + std::string(to_string(c.session));
  return s;
}

TEST(ClassifierTable, HasAtLeast250DistinctStatements) {
  std::set<std::string_view> seen;
  for (const Row& row : kRows) {
    EXPECT_TRUE(seen.insert(row.sql).second) << "duplicate: " << row.sql;
  }
  EXPECT_GE(seen.size(), 250u);
}

TEST(ClassifierTable, EveryRow) {
  const ClassifierOptions opts;
  for (const Row& row : kRows) {
    const Classification c = classify(row.sql, opts);
    SCOPED_TRACE(testing::Message() << "sql: " << row.sql << "\n  got: " << describe(c));
    EXPECT_EQ(c.kind, row.kind);
    EXPECT_EQ(c.nondeterministic, (row.flags & kN) != 0);
    EXPECT_EQ(c.may_use_defaults, (row.flags & kD) != 0);
    EXPECT_EQ(c.pins_session, (row.flags & kP) != 0);
    EXPECT_EQ(c.multi_statement, (row.flags & kM) != 0);
    EXPECT_EQ(c.primary_only, (row.flags & kO) != 0);
    EXPECT_EQ(c.primary_only_mixed, (row.flags & kX) != 0);
    EXPECT_EQ(c.txn, row.txn);
    EXPECT_EQ(c.session, row.session);
    if (row.path == Path::kLexer) {
      EXPECT_FALSE(c.used_parser);
    } else if (row.path == Path::kParser) {
      EXPECT_TRUE(c.used_parser);
    }
  }
}

TEST(ClassifierTable, PrimaryOnlyIsNeverRoutableAsARead) {
  // Routing keeps writes on the primary: a primary-only statement must be one, whatever the
  // configured function lists say.
  FunctionLists lists;
  lists.read_only.add("pg_cancel_backend");
  lists.read_only.add("pg_catalog.pg_reload_conf");
  ClassifierOptions opts;
  opts.functions = &lists;
  opts.unknown_function_is_write = false;
  for (std::string_view sql : {"SELECT pg_cancel_backend(42)", "SELECT pg_reload_conf()",
                               "SELECT pg_catalog.pg_cancel_backend(42)"}) {
    const Classification c = classify(sql, opts);
    EXPECT_EQ(c.kind, StatementKind::kWrite) << sql;
    EXPECT_TRUE(c.primary_only) << sql;
    EXPECT_FALSE(c.pins_session) << sql;
  }
  for (const Row& row : kRows) {
    if ((row.flags & kO) == 0 || row.session == SessionOp::kPrepare) continue;
    EXPECT_GE(classify(row.sql, ClassifierOptions{}).kind, StatementKind::kWrite) << row.sql;
  }
}

TEST(ClassifierTable, PrimaryOnlyFunctionOids) {
  EXPECT_TRUE(is_primary_only_function_oid(2096));   // pg_terminate_backend
  EXPECT_TRUE(is_primary_only_function_oid(2171));   // pg_cancel_backend
  EXPECT_TRUE(is_primary_only_function_oid(2621));   // pg_reload_conf
  EXPECT_FALSE(is_primary_only_function_oid(955));   // lowrite
  EXPECT_FALSE(is_primary_only_function_oid(2026));  // pg_backend_pid
}

TEST(ClassifierTable, NothingIsEverClassifiedMoreLeniently) {
  // The invariant the whole table serves, spelled out: no row expected to change data (or of
  // unknown effect) comes back as a read.
  const ClassifierOptions opts;
  for (const Row& row : kRows) {
    if (row.kind == StatementKind::kRead) continue;
    EXPECT_NE(classify(row.sql, opts).kind, StatementKind::kRead) << row.sql;
  }
}

TEST(ClassifierTable, StatementCounts) {
  const ClassifierOptions opts;
  EXPECT_EQ(classify("", opts).statement_count, 0);
  EXPECT_EQ(classify(" ;; -- x", opts).statement_count, 0);
  EXPECT_EQ(classify("SELECT 1", opts).statement_count, 1);
  EXPECT_EQ(classify("SELECT 1;;SELECT 2;", opts).statement_count, 2);
  EXPECT_EQ(classify("BEGIN; UPDATE t SET a = 1; COMMIT", opts).statement_count, 3);
  // A rule's parenthesised actions are one statement, as the server's grammar says.
  EXPECT_EQ(classify("CREATE RULE r AS ON INSERT TO t DO ALSO (DELETE FROM a; DELETE FROM b)", opts)
                .statement_count,
            1);
}

TEST(ClassifierTable, PreparedBodyKind) {
  const ClassifierOptions opts;
  EXPECT_EQ(classify("PREPARE p AS SELECT 1", opts).prepared_kind, StatementKind::kRead);
  EXPECT_EQ(classify("PREPARE p (int) AS DELETE FROM t WHERE a = $1", opts).prepared_kind,
            StatementKind::kWrite);
  EXPECT_EQ(classify("PREPARE p AS SELECT * FROM t FOR UPDATE", opts).prepared_kind,
            StatementKind::kWrite);
  EXPECT_EQ(classify("PREPARE p AS WITH x AS (DELETE FROM t) SELECT 1", opts).prepared_kind,
            StatementKind::kWrite);
  EXPECT_EQ(classify("prepare q as values (1)", opts).prepared_kind, StatementKind::kRead);
}

// Long statements: the lexer's cost is linear and nothing is missed at the far end.
TEST(ClassifierTable, VeryLongStatements) {
  const ClassifierOptions opts;
  std::string select = "SELECT ";
  for (int i = 0; i < 20000; ++i) select += "c" + std::to_string(i) + ", ";
  select += "1 FROM t WHERE a = 'x'";
  Classification c = classify(select, opts);
  EXPECT_EQ(c.kind, StatementKind::kRead);
  EXPECT_FALSE(c.used_parser);

  EXPECT_EQ(classify(select + "; DELETE FROM t", opts).kind, StatementKind::kWrite);
  EXPECT_EQ(classify(select + " FOR UPDATE", opts).kind, StatementKind::kWrite);
  EXPECT_EQ(classify(select + " AND b = nextval('s')", opts).kind, StatementKind::kWrite);

  std::string comment = "SELECT 1 /*";
  for (int i = 0; i < 10000; ++i) comment += " /* DELETE FROM t */";
  EXPECT_EQ(classify(comment + " */", opts).kind, StatementKind::kRead);
  EXPECT_EQ(classify(comment, opts).kind, StatementKind::kUnknown);

  std::string many;
  for (int i = 0; i < 5000; ++i) many += "SELECT " + std::to_string(i) + ";";
  c = classify(many, opts);
  EXPECT_EQ(c.kind, StatementKind::kRead);
  EXPECT_EQ(c.statement_count, 5000);
  c = classify(many + "UPDATE t SET a = 1", opts);
  EXPECT_EQ(c.kind, StatementKind::kWrite);

  std::string parens(5000, '(');
  EXPECT_NE(classify(parens + "SELECT nextval('s')" + std::string(5000, ')'), opts).kind,
            StatementKind::kRead);
}

TEST(ClassifierTable, EmbeddedNulEndsNothing) {
  // The server stops at the first NUL; text after it must not be trusted either way.
  const ClassifierOptions opts;
  const std::string sql("SELECT 1\0; DELETE FROM t", 24);
  EXPECT_EQ(classify(sql, opts).kind, StatementKind::kUnknown);
  const std::string in_string("SELECT '\0'", 10);
  EXPECT_EQ(classify(in_string, opts).kind, StatementKind::kUnknown);
}

}  // namespace
}  // namespace pgtandem::policy

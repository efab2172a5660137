// What the classifier learns from outside: the catalog from pg_proc, the configured function
// lists, the session's prepared statements and its standard_conforming_strings.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <vector>

#include "policy/sql/classifier.h"

namespace pgtandem::policy {
namespace {

TEST(VolatilityCatalog, MostVolatileOverloadWins) {
  VolatilityCatalog catalog;
  catalog.add("public", "f", Volatility::kImmutable);
  catalog.add("public", "f", Volatility::kVolatile);
  catalog.add("other", "g", Volatility::kStable);
  catalog.add("public", "g", Volatility::kImmutable);
  EXPECT_EQ(catalog.find("public", "f"), Volatility::kVolatile);
  EXPECT_EQ(catalog.find("", "g"), Volatility::kStable);
  EXPECT_EQ(catalog.find("public", "g"), Volatility::kImmutable);
  EXPECT_EQ(catalog.find("nowhere", "g"), std::nullopt);
  EXPECT_EQ(catalog.find("", "h"), std::nullopt);
  EXPECT_EQ(VolatilityCatalog::from_provolatile('s'), Volatility::kStable);
  EXPECT_EQ(VolatilityCatalog::from_provolatile('x'), std::nullopt);
}

class WithCatalog : public ::testing::Test {
 protected:
  void SetUp() override {
    catalog_.add("public", "my_stable", Volatility::kStable);
    catalog_.add("public", "my_volatile", Volatility::kVolatile);
    catalog_.add("pg_catalog", "lower", Volatility::kImmutable);
    catalog_.add("pg_catalog", "random", Volatility::kVolatile);
    catalog_.add("pg_catalog", "nextval", Volatility::kVolatile);
    catalog_.add("pg_catalog", "pg_is_in_recovery", Volatility::kVolatile);
    opts_.catalog = &catalog_;
    opts_.functions = &lists_;
  }
  StatementKind kind(std::string_view sql) { return classify(sql, opts_).kind; }

  VolatilityCatalog catalog_;
  FunctionLists lists_;
  ClassifierOptions opts_;
};

TEST_F(WithCatalog, StableAndImmutableFunctionsAreReads) {
  const Classification c = classify("SELECT my_stable(1), lower('x')", opts_);
  EXPECT_EQ(c.kind, StatementKind::kRead);
  EXPECT_FALSE(c.used_parser);
  EXPECT_EQ(kind("SELECT public.my_stable(1)"), StatementKind::kRead);
  EXPECT_EQ(kind("SELECT other.my_stable(1)"), StatementKind::kWrite);
}

TEST_F(WithCatalog, VolatileFunctionsAreWrites) {
  const Classification c = classify("SELECT my_volatile()", opts_);
  EXPECT_EQ(c.kind, StatementKind::kWrite);
  EXPECT_TRUE(c.nondeterministic);
  EXPECT_TRUE(c.used_parser);
  EXPECT_EQ(kind("SELECT * FROM t WHERE a = public.my_volatile()"), StatementKind::kWrite);
  const Classification insert = classify("INSERT INTO t (a) VALUES (my_volatile())", opts_);
  EXPECT_EQ(insert.kind, StatementKind::kWrite);
  EXPECT_TRUE(insert.nondeterministic);
}

TEST_F(WithCatalog, BuiltinKnowledgeOverridesVolatility) {
  // random() is VOLATILE but writes nothing; nextval() is VOLATILE and writes.
  const Classification r = classify("SELECT random()", opts_);
  EXPECT_EQ(r.kind, StatementKind::kRead);
  EXPECT_TRUE(r.nondeterministic);
  EXPECT_EQ(kind("SELECT pg_is_in_recovery()"), StatementKind::kRead);
  EXPECT_EQ(kind("SELECT nextval('s')"), StatementKind::kWrite);
}

TEST_F(WithCatalog, UnknownFunctionsFollowTheDefault) {
  EXPECT_EQ(kind("SELECT not_in_catalog()"), StatementKind::kWrite);
  opts_.unknown_function_is_write = false;
  EXPECT_EQ(kind("SELECT not_in_catalog()"), StatementKind::kRead);
  EXPECT_EQ(kind("SELECT my_volatile()"), StatementKind::kWrite);
  EXPECT_EQ(kind("SELECT nextval('s')"), StatementKind::kWrite);
}

TEST_F(WithCatalog, ConfiguredLists) {
  lists_.read_only.add("my_volatile");
  lists_.writing.add("audit.log_it");
  lists_.writing.add("touch");
  lists_.read_only.add("nextval");  // cannot whitelist a built-in writer
  lists_.read_only.add("reporting.summary");
  EXPECT_EQ(kind("SELECT my_volatile()"), StatementKind::kRead);
  EXPECT_EQ(kind("SELECT log_it()"), StatementKind::kWrite);
  EXPECT_EQ(kind("SELECT audit.log_it()"), StatementKind::kWrite);
  EXPECT_EQ(kind("SELECT my_stable(touch())"), StatementKind::kWrite);
  EXPECT_EQ(kind("SELECT lower('x')"), StatementKind::kRead);
  EXPECT_EQ(kind("SELECT nextval('s')"), StatementKind::kWrite);
  EXPECT_EQ(kind("SELECT reporting.summary()"), StatementKind::kRead);
  EXPECT_EQ(kind("SELECT summary()"), StatementKind::kWrite);  // search_path could reach another
}

TEST(FunctionSet, ExactAndAnySchema) {
  const FunctionSet set(std::vector<std::string>{"a", "s.b"});
  EXPECT_TRUE(set.contains("", "a"));
  EXPECT_TRUE(set.contains("x", "a"));
  EXPECT_TRUE(set.contains("s", "b"));
  EXPECT_FALSE(set.contains("", "b"));
  EXPECT_FALSE(set.contains("t", "b"));
  EXPECT_TRUE(set.contains_any_schema("b"));
  EXPECT_FALSE(set.contains_any_schema("c"));
}

TEST(PreparedStatements, ExecuteUsesTheRegistry) {
  const ClassifierOptions plain;
  PreparedStatements prepared;
  prepared.add("del", classify("PREPARE del AS DELETE FROM t WHERE id = $1", plain));
  prepared.add("sel", classify("SELECT * FROM t WHERE id = $1", plain));  // protocol Parse
  prepared.add("ins", classify("INSERT INTO t VALUES (nextval('s'))", plain));
  ClassifierOptions opts;
  opts.prepared = &prepared;

  Classification c = classify("EXECUTE del(1)", opts);
  EXPECT_EQ(c.kind, StatementKind::kWrite);
  EXPECT_EQ(c.session, SessionOp::kExecute);
  EXPECT_TRUE(c.uses_session_prepared);

  c = classify("execute SEL(1)", opts);
  EXPECT_EQ(c.kind, StatementKind::kRead);
  EXPECT_EQ(classify("EXECUTE sel(nextval('s'))", opts).kind, StatementKind::kWrite);

  c = classify("EXECUTE ins", opts);
  EXPECT_EQ(c.kind, StatementKind::kWrite);
  EXPECT_TRUE(c.nondeterministic);
  EXPECT_TRUE(c.may_use_defaults);

  EXPECT_EQ(classify("EXECUTE \"SEL\"", opts).kind, StatementKind::kUnknown);
  EXPECT_EQ(classify("EXPLAIN ANALYZE EXECUTE sel(1)", opts).kind, StatementKind::kRead);
  EXPECT_EQ(classify("EXPLAIN ANALYZE EXECUTE del(1)", opts).kind, StatementKind::kWrite);
  prepared.remove("sel");
  EXPECT_EQ(classify("EXECUTE sel(1)", opts).kind, StatementKind::kUnknown);
  prepared.clear();
  EXPECT_EQ(prepared.size(), 0u);
}

// find() remembers what it found (a memo of 16 slots, by a hash of the name): against a plain map
// under random adds, removes, clears, copies and moves, with more names than slots, it answers
// the same every time (a memo kept across an erase would answer for a statement that is gone).
TEST(PreparedStatements, FindAgreesWithAPlainMapUnderRandomChanges) {
  const unsigned seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  std::vector<std::string> names;
  for (int i = 0; i < 40; ++i) names.push_back("P" + std::to_string(i % 7) + "_" + std::to_string(i));
  names.push_back("");
  names.push_back(std::string(63, 'x'));
  PreparedStatements prepared;
  std::map<std::string, StatementKind> reference;
  const StatementKind kinds[] = {StatementKind::kRead, StatementKind::kWrite,
                                 StatementKind::kSessionState, StatementKind::kUnknown};
  for (int step = 0; step < 20000; ++step) {
    const std::string& name = names[rng() % names.size()];
    const unsigned op = rng() % 100;
    if (op < 20) {
      Classification c;
      c.kind = kinds[rng() % 4];
      prepared.add(name, c);
      reference[name] = c.kind;
    } else if (op < 30) {
      prepared.remove(name);
      reference.erase(name);
    } else if (op == 30) {
      prepared.clear();
      reference.clear();
    } else if (op == 31) {
      PreparedStatements copy = prepared;  // the copy answers alone once the original is gone
      prepared = PreparedStatements();
      prepared = copy;
    } else if (op == 32) {
      PreparedStatements moved = std::move(prepared);
      prepared = std::move(moved);
    } else {
      const Classification* found = prepared.find(name);
      const auto it = reference.find(name);
      ASSERT_EQ(found != nullptr, it != reference.end()) << "step " << step << " " << name;
      if (found != nullptr) {
        ASSERT_EQ(found->kind, it->second) << "step " << step << " " << name;
      }
    }
  }
  EXPECT_EQ(prepared.size(), reference.size());
}

TEST(PreparedStatements, Names) {
  EXPECT_EQ(prepared_statement_name("PREPARE Foo AS SELECT 1"), "foo");
  EXPECT_EQ(prepared_statement_name("prepare \"Foo\" (int) AS SELECT $1"), "Foo");
  EXPECT_EQ(prepared_statement_name("EXECUTE foo(1)"), "foo");
  EXPECT_EQ(prepared_statement_name("DEALLOCATE foo"), "foo");
  EXPECT_EQ(prepared_statement_name("DEALLOCATE PREPARE foo"), "foo");
  EXPECT_EQ(prepared_statement_name("DEALLOCATE ALL"), std::nullopt);
  EXPECT_EQ(prepared_statement_name("PREPARE TRANSACTION 'x'"), std::nullopt);
  EXPECT_EQ(prepared_statement_name("PREPARE transaction AS SELECT 1"), "transaction");
  EXPECT_EQ(prepared_statement_name("SELECT 1"), std::nullopt);
  EXPECT_EQ(prepared_statement_name(""), std::nullopt);
}

TEST(StandardConformingStrings, OffChangesWhereLiteralsEnd) {
  // With the setting off, '\'' is one quote and the DELETE is a statement of its own; with it on,
  // the DELETE is inside a literal.
  const std::string_view sql = R"(SELECT '\''; DELETE FROM t; --')";
  ClassifierOptions on;
  ClassifierOptions off;
  off.standard_conforming_strings = false;
  EXPECT_EQ(classify(sql, on).kind, StatementKind::kRead);
  EXPECT_EQ(classify(sql, off).kind, StatementKind::kWrite);
  // The other way round.
  const std::string_view sql2 = R"(SELECT 'a\'; DELETE FROM t; --')";
  EXPECT_EQ(classify(sql2, on).kind, StatementKind::kWrite);
  EXPECT_EQ(classify(sql2, off).kind, StatementKind::kRead);
  // libpg_query only knows the setting on: a literal with a backslash cannot go to it.
  const Classification c = classify(R"(SELECT 'x\'', f())", off);
  EXPECT_EQ(c.kind, StatementKind::kUnknown);
  EXPECT_EQ(classify("SELECT 'x', nextval('s')", off).kind, StatementKind::kWrite);
  EXPECT_EQ(classify("SELECT 'x', lower('y')", off).kind, StatementKind::kRead);
}

}  // namespace
}  // namespace pgtandem::policy

#include "policy/sql/classifier_cache.h"

#include <gtest/gtest.h>

#include <string>

namespace pgtandem::policy {
namespace {

TEST(ClassificationCache, HitReturnsWhatClassifySays) {
  ClassificationCache cache;
  const ClassifierOptions opts;
  const std::string_view sql = "SELECT nextval('s')";
  const Classification first = classify_cached(sql, opts, &cache);
  EXPECT_EQ(cache.misses(), 1u);
  EXPECT_EQ(cache.size(), 0u);  // seen once: not cached yet (the doorkeeper)
  EXPECT_EQ(classify_cached(sql, opts, &cache), first);
  EXPECT_EQ(cache.misses(), 2u);
  EXPECT_EQ(cache.hits(), 0u);
  const Classification second = classify_cached(sql, opts, &cache);
  EXPECT_EQ(cache.hits(), 1u);
  EXPECT_EQ(first, second);
  EXPECT_EQ(second, classify(sql, opts));
  EXPECT_TRUE(second.used_parser);  // what decided it, even when it comes from the cache
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.bytes(), sql.size());
}

TEST(ClassificationCache, TextMustMatchExactly) {
  ClassificationCache cache;
  const ClassifierOptions opts;
  classify_cached("SELECT 1", opts, &cache);
  classify_cached("SELECT 1", opts, &cache);
  EXPECT_EQ(cache.find("SELECT 1 ", opts), nullptr);
  EXPECT_EQ(cache.find("select 1", opts), nullptr);
  EXPECT_NE(cache.find("SELECT 1", opts), nullptr);
}

TEST(ClassificationCache, SessionDependentResultsAreNotCached) {
  ClassificationCache cache;
  PreparedStatements prepared;
  ClassifierOptions opts;
  opts.prepared = &prepared;
  EXPECT_EQ(classify_cached("EXECUTE p", opts, &cache).kind, StatementKind::kUnknown);
  EXPECT_EQ(cache.size(), 0u);
  prepared.add("p", classify("SELECT 1", opts));
  EXPECT_EQ(classify_cached("EXECUTE p", opts, &cache).kind, StatementKind::kRead);
  EXPECT_EQ(classify_cached("SELECT 1; EXECUTE p", opts, &cache).kind, StatementKind::kRead);
  EXPECT_EQ(cache.size(), 0u);
}

TEST(ClassificationCache, GenerationChangeDropsEverything) {
  ClassificationCache cache;
  VolatilityCatalog catalog;
  ClassifierOptions opts;
  opts.catalog = &catalog;
  EXPECT_EQ(classify_cached("SELECT f()", opts, &cache).kind, StatementKind::kWrite);
  EXPECT_EQ(classify_cached("SELECT f()", opts, &cache).kind, StatementKind::kWrite);
  ASSERT_NE(cache.find("SELECT f()", opts), nullptr);
  catalog.add("public", "f", Volatility::kStable);
  opts.generation = 1;
  EXPECT_EQ(cache.find("SELECT f()", opts), nullptr);
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(classify_cached("SELECT f()", opts, &cache).kind, StatementKind::kRead);
}

TEST(ClassificationCache, StandardConformingStringsIsPartOfTheKey) {
  ClassificationCache cache;
  ClassifierOptions on;
  ClassifierOptions off;
  off.standard_conforming_strings = false;
  const std::string_view sql = R"(SELECT '\''; DELETE FROM t; --')";
  EXPECT_EQ(classify_cached(sql, on, &cache).kind, StatementKind::kRead);
  EXPECT_EQ(classify_cached(sql, off, &cache).kind, StatementKind::kWrite);
  EXPECT_EQ(classify_cached(sql, on, &cache).kind, StatementKind::kRead);
  EXPECT_EQ(classify_cached(sql, off, &cache).kind, StatementKind::kWrite);
  EXPECT_EQ(cache.size(), 2u);
}

TEST(ClassificationCache, BoundedByEntriesAndBytes) {
  ClassificationCache::Limits limits;
  limits.max_entries = 8;
  limits.max_bytes = 200;
  limits.max_statement_bytes = 100;
  ClassificationCache cache(limits);
  const ClassifierOptions opts;
  for (int i = 0; i < 100; ++i) {
    // (Distinct names: texts that differ only in a number share one entry, statement_shape.h.)
    classify_cached("SELECT c" + std::to_string(i), opts, &cache);
    classify_cached("SELECT c" + std::to_string(i), opts, &cache);  // admitted at the second
    EXPECT_LE(cache.size(), 8u);
    EXPECT_LE(cache.bytes(), 200u);
  }
  EXPECT_GT(cache.evictions(), 0u);
  const std::string big = "SELECT '" + std::string(120, 'x') + "'";
  classify_cached(big, opts, &cache);
  classify_cached(big, opts, &cache);
  EXPECT_EQ(cache.find(big, opts), nullptr);  // longer than max_statement_bytes
  for (int i = 0; i < 20; ++i) {
    classify_cached("SELECT '" + std::string(60, 'a' + i % 26) + "'", opts, &cache);
    classify_cached("SELECT '" + std::string(60, 'a' + i % 26) + "'", opts, &cache);
    EXPECT_LE(cache.bytes(), 200u);
  }
}

TEST(ClassificationCache, RecentlyUsedEntriesSurvive) {
  ClassificationCache::Limits limits;
  limits.max_entries = 4;
  ClassificationCache cache(limits);
  const ClassifierOptions opts;
  classify_cached("SELECT c0", opts, &cache);
  classify_cached("SELECT c0", opts, &cache);
  for (int i = 1; i < 50; ++i) {
    ASSERT_NE(cache.find("SELECT c0", opts), nullptr) << i;  // referenced: second chance
    classify_cached("SELECT c" + std::to_string(i), opts, &cache);
    classify_cached("SELECT c" + std::to_string(i), opts, &cache);
  }
}

TEST(ClassificationCache, TextsSeenOnceAreNotCachedNorEvictAnything) {
  ClassificationCache::Limits limits;
  limits.max_entries = 4;
  ClassificationCache cache(limits);
  const ClassifierOptions opts;
  for (int i = 0; i < 4; ++i) {
    classify_cached("SELECT c" + std::to_string(i), opts, &cache);
    classify_cached("SELECT c" + std::to_string(i), opts, &cache);
  }
  ASSERT_EQ(cache.size(), 4u);
  // A run of statements each of its own shape (a name of its own; a text that differs from
  // another only in its numbers shares its shape, statement_shape.h): each is classified, none is
  // copied into the cache, and the entries in it stay.
  for (int i = 100; i < 10100; ++i) {
    const std::string sql = "UPDATE t SET v = v + 1 WHERE k" + std::to_string(i) + " = 7";
    EXPECT_EQ(classify_cached(sql, opts, &cache).kind, StatementKind::kWrite);
  }
  EXPECT_EQ(cache.evictions(), 0u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_NE(cache.find("SELECT c" + std::to_string(i), opts), nullptr) << i;
  }
  // The same text twice in a row is cached at once, even right after the run.
  classify_cached("UPDATE t SET v = 0", opts, &cache);
  classify_cached("UPDATE t SET v = 0", opts, &cache);
  EXPECT_NE(cache.find("UPDATE t SET v = 0", opts), nullptr);
}

TEST(ClassificationCache, ClearEmpties) {
  ClassificationCache cache;
  const ClassifierOptions opts;
  classify_cached("SELECT 1", opts, &cache);
  classify_cached("SELECT 1", opts, &cache);
  ASSERT_EQ(cache.size(), 1u);
  cache.clear();
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.bytes(), 0u);
  EXPECT_EQ(cache.find("SELECT 1", opts), nullptr);
}

}  // namespace
}  // namespace pgtandem::policy

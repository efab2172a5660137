// policy/migrate: SQL generation with odd identifiers, chunk planning, schema comparison, key
// choice and copy order, checkpoint and report round trips, COPY text decoding, progress lines.
#include <gtest/gtest.h>

#include <algorithm>

#include "policy/migrate/json.h"
#include "policy/migrate/schema.h"
#include "policy/migrate/sql.h"
#include "policy/migrate/state.h"

namespace pgtandem::policy::migrate {
namespace {

TableSql odd_table() {
  TableSql t;
  t.schema = "My Schema";
  t.name = "we\"ird";
  t.columns = {"a", "b c", "Sel\"ect"};
  t.key = {"a", "b c"};
  t.key_types = {"integer", "text"};
  return t;
}

TEST(MigrateSql, QuotesIdentifiersAndLiterals) {
  EXPECT_EQ(quote_ident("we\"ird"), "\"we\"\"ird\"");
  EXPECT_EQ(quote_literal("it's \\ x"), "'it''s \\ x'");
  EXPECT_EQ(qualified_name("My Schema", "t"), "\"My Schema\".\"t\"");
}

TEST(MigrateSql, CompositeKeyRangeIsARowComparison) {
  TableSql t = odd_table();
  KeyRange r{Key{"1", "x'y"}, Key{"5", "z"}};
  EXPECT_EQ(range_predicate(t, r),
            "(\"a\", \"b c\") > ('1'::integer, 'x''y'::text) AND (\"a\", \"b c\") <= "
            "('5'::integer, 'z'::text)");
  EXPECT_EQ(range_predicate(t, {}), "true");
  EXPECT_EQ(copy_chunk_out_sql(t, {Key{"1", "a"}, std::nullopt}, 1000),
            "COPY (SELECT \"a\", \"b c\", \"Sel\"\"ect\" FROM \"My Schema\".\"we\"\"ird\" WHERE "
            "(\"a\", \"b c\") > ('1'::integer, 'a'::text) ORDER BY \"a\", \"b c\" LIMIT 1000 FOR "
            "SHARE) TO STDOUT");
}

TEST(MigrateSql, UpsertUpdatesNonKeyColumnsAndDeletesOnlyAbsentKeys) {
  TableSql t = odd_table();
  EXPECT_EQ(upsert_from_staging_sql(t, "s1"),
            "INSERT INTO \"My Schema\".\"we\"\"ird\" (\"a\", \"b c\", \"Sel\"\"ect\") OVERRIDING "
            "SYSTEM VALUE SELECT \"a\", \"b c\", \"Sel\"\"ect\" FROM \"s1\" ON CONFLICT (\"a\", "
            "\"b c\") DO UPDATE SET \"Sel\"\"ect\" = EXCLUDED.\"Sel\"\"ect\"");
  TableSql keys_only = t;
  keys_only.columns = {"a", "b c"};
  EXPECT_NE(upsert_from_staging_sql(keys_only, "s").find("DO NOTHING"), std::string::npos);
  std::string del = delete_absent_sql(t, {{"1", "x"}, {"2", "y"}}, "s1");
  EXPECT_EQ(del,
            "DELETE FROM \"My Schema\".\"we\"\"ird\" AS d WHERE (d.\"a\", d.\"b c\") IN "
            "(('1'::integer, 'x'::text), ('2'::integer, 'y'::text)) AND NOT EXISTS (SELECT 1 FROM "
            "\"s1\" AS s WHERE s.\"a\" = d.\"a\" AND s.\"b c\" = d.\"b c\")");
  EXPECT_EQ(keys_predicate(t, {}), "false");
}

TEST(MigrateSql, HashQueries) {
  TableSql t = odd_table();
  const std::string h = chunk_hash_sql(t, {std::nullopt, Key{"9", "q"}});
  EXPECT_NE(h.find("sum(hashtextextended(ROW(h.\"a\", h.\"b c\", h.\"Sel\"\"ect\")::text, 0))"), std::string::npos) << h;
  EXPECT_NE(row_hashes_sql(t, {}).find("md5(ROW(h.\"a\", h.\"b c\", h.\"Sel\"\"ect\")::text)"), std::string::npos);
  EXPECT_NE(h.find("<= ('9'::integer, 'q'::text)"), std::string::npos);
  EXPECT_EQ(boundaries_sql(t, 100),
            "SELECT \"a\", \"b c\" FROM (SELECT \"a\", \"b c\", row_number() OVER (ORDER BY \"a\", "
            "\"b c\") AS pgtandem_rn FROM \"My Schema\".\"we\"\"ird\") AS b WHERE pgtandem_rn % 100 "
            "= 0 ORDER BY pgtandem_rn");
  EXPECT_NE(boundaries_sql(t, {Key{"1", "a"}, std::nullopt}, 10)
                .find("FROM \"My Schema\".\"we\"\"ird\" WHERE (\"a\", \"b c\") > ('1'::integer, 'a'::text))"),
            std::string::npos);
}

TEST(MigrateSql, DecodesCopyText) {
  auto f = decode_copy_line("1\t\\N\ta\\tb\\\\c\\nd\t\t\\101\\x41\n");
  ASSERT_EQ(f.size(), 5u);
  EXPECT_EQ(*f[0], "1");
  EXPECT_FALSE(f[1].has_value());
  EXPECT_EQ(*f[2], "a\tb\\c\nd");
  EXPECT_EQ(*f[3], "");
  EXPECT_EQ(*f[4], "AA");
}

TEST(MigratePlan, RangesFromBoundariesCoverEverything) {
  auto r = ranges_from_boundaries({{"10"}, {"20"}});
  ASSERT_EQ(r.size(), 3u);
  EXPECT_FALSE(r[0].lo);
  EXPECT_EQ(*r[0].hi, Key{"10"});
  EXPECT_EQ(*r[1].lo, Key{"10"});
  EXPECT_EQ(*r[1].hi, Key{"20"});
  EXPECT_EQ(*r[2].lo, Key{"20"});
  EXPECT_FALSE(r[2].hi);
  EXPECT_EQ(ranges_from_boundaries({}).size(), 1u);

  std::vector<Key> b;
  for (int i = 1; i <= 9; ++i) b.push_back({std::to_string(i)});
  auto s = split_ranges(b, 2);  // 10 ranges -> 2 parts
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(*s[0].hi, Key{"5"});
  EXPECT_EQ(*s[1].lo, Key{"5"});
  EXPECT_EQ(split_ranges(b, 1).size(), 1u);
  EXPECT_EQ(split_ranges({}, 4).size(), 1u);
  EXPECT_LE(split_ranges(b, 4).size(), 4u);
}

Table table(std::string name, std::vector<Column> cols, std::vector<std::string> pk = {}) {
  Table t;
  t.schema = "public";
  t.name = std::move(name);
  t.columns = std::move(cols);
  t.primary_key = std::move(pk);
  return t;
}

TEST(MigrateSchema, KeyChoice) {
  Table t = table("t", {{"a", "integer", true}, {"b", "text", false}, {"c", "text", true}}, {"a"});
  EXPECT_EQ(choose_key(t).columns, std::vector<std::string>{"a"});
  t.primary_key.clear();
  t.unique_keys = {{"b"}, {"c"}};  // b is nullable: not usable
  EXPECT_EQ(choose_key(t).columns, std::vector<std::string>{"c"});
  t.unique_keys = {{"b"}};
  EXPECT_FALSE(choose_key(t).usable());
}

TEST(MigrateSchema, ComparisonNamesEveryDifference) {
  Schema o, n;
  o.tables.push_back(table("a", {{"id", "integer", true}, {"v", "text", false}}, {"id"}));
  n.tables.push_back(table("a", {{"v", "text", false}, {"id", "bigint", true}}, {"id"}));
  o.tables.push_back(table("only_old", {{"x", "integer", false}}));
  n.tables.push_back(table("only_new", {{"x", "integer", false}}));
  o.sequences.push_back({"public", "s", "bigint"});
  o.extensions = {{"pgcrypto", "1.3"}};
  n.extensions = {{"pgcrypto", "1.2"}};
  auto d = compare_schemas(o, n);
  std::string all;
  for (const auto& s : d) all += s + "\n";
  EXPECT_NE(all.find("table public.a: column id is integer on old, bigint on new"), std::string::npos) << all;
  EXPECT_NE(all.find("table public.only_old exists on old, not on new"), std::string::npos) << all;
  EXPECT_NE(all.find("table public.only_new exists on new, not on old"), std::string::npos) << all;
  EXPECT_NE(all.find("sequence public.s exists on old, not on new"), std::string::npos) << all;
  EXPECT_NE(all.find("extension pgcrypto is version 1.3 on old, 1.2 on new"), std::string::npos) << all;
  EXPECT_EQ(d.size(), 5u) << all;  // column order alone is no difference
  EXPECT_EQ(compare_schemas(o, n, {"integer->bigint"}).size(), 4u);
  EXPECT_TRUE(compare_schemas(o, o).empty());
}

TEST(MigrateSchema, CopyOrderPutsParentsFirst) {
  Table child = table("child", {});
  child.references = {"public.parent", "public.child"};  // self-reference too
  Table parent = table("parent", {});
  parent.references = {"public.grand"};
  Table grand = table("grand", {});
  Table a = table("a", {});
  a.references = {"public.b"};
  Table b = table("b", {});
  b.references = {"public.a"};  // a cycle: broken, both still placed once
  auto order = copy_order({&child, &parent, &grand, &a, &b});
  std::vector<std::string> names;
  for (auto* t : order) names.push_back(t->name);
  ASSERT_EQ(names.size(), 5u);
  auto pos = [&](const std::string& n) { return std::find(names.begin(), names.end(), n) - names.begin(); };
  EXPECT_LT(pos("grand"), pos("parent"));
  EXPECT_LT(pos("parent"), pos("child"));
  EXPECT_EQ(canonical_columns(table("t", {{"z", "", 0}, {"a", "", 0}})), (std::vector<std::string>{"a", "z"}));
}

TEST(MigrateState, CheckpointRoundTrip) {
  Checkpoint c;
  c.table = "My Schema.we\"ird";
  c.key = {"a", "b c"};
  c.ranges.push_back({{std::nullopt, Key{"5", "x\ty"}}, Key{"3", "é\n"}, 300, false});
  c.ranges.push_back({{Key{"5", "x\ty"}, std::nullopt}, std::nullopt, 0, true});
  std::string text = encode_checkpoint(c);
  std::string error;
  auto d = decode_checkpoint(text, &error);
  ASSERT_TRUE(d) << error;
  EXPECT_EQ(encode_checkpoint(*d), text);
  EXPECT_EQ(d->rows(), 300);
  EXPECT_FALSE(d->done());
  EXPECT_EQ(*d->ranges[0].last, (Key{"3", "é\n"}));
  EXPECT_FALSE(decode_checkpoint("{\"format\":\"x\"}", &error));
  EXPECT_FALSE(decode_checkpoint(text.substr(0, text.size() / 2), &error));
}

TEST(MigrateState, ReportRoundTrip) {
  Report r;
  r.tables_checked = 3;
  r.rows_checked = 1000;
  TableReport t;
  t.table = "public.t";
  t.key = {"id"};
  t.rows = {{{"1"}, DiffKind::kMissingOnNew}, {{"2"}, DiffKind::kExtraOnNew}, {{"3"}, DiffKind::kChanged}};
  r.tables.push_back(t);
  TableReport k;
  k.table = "public.nokey";
  k.whole_table_differs = true;
  r.tables.push_back(k);
  r.sequences.push_back({"public.s", 42, std::nullopt});
  std::string text = encode_report(r);
  std::string error;
  auto d = decode_report(text, &error);
  ASSERT_TRUE(d) << error;
  EXPECT_EQ(encode_report(*d), text);
  EXPECT_FALSE(d->identical());
  EXPECT_EQ(d->tables[0].rows[1].kind, DiffKind::kExtraOnNew);
  EXPECT_TRUE(d->tables[1].whole_table_differs);
  EXPECT_EQ(*d->sequences[0].old_value, 42);
  EXPECT_TRUE(Report{}.identical());
}

TEST(MigrateState, Progress) {
  EXPECT_EQ(format_count(1234567), "1,234,567");
  EXPECT_EQ(format_count(12), "12");
  EXPECT_EQ(format_duration(75), "1:15");
  EXPECT_EQ(format_duration(3700), "1:01:40");
  EXPECT_EQ(format_progress("public.t", 500, 1000, 2000000, 2.0),
            "public.t  500 / 1,000 rows  1.0 MB/s  ETA 0:02");
  EXPECT_EQ(format_progress("t", 5, -1, 0, 1.0), "t  5 rows  0.0 MB/s");
}

TEST(MigrateJson, ParsesAndPrints) {
  auto j = Json::parse(R"( {"a": [1, -2.5, "x\u00e9\"", true, null], "b": {}} )");
  ASSERT_TRUE(j);
  EXPECT_EQ(j->dump(), "{\"a\":[1,-2.5,\"xé\\\"\",true,null],\"b\":{}}");
  EXPECT_FALSE(Json::parse("{\"a\":}"));
  EXPECT_FALSE(Json::parse("[1,2"));
  EXPECT_FALSE(Json::parse("1 2"));
}

}  // namespace
}  // namespace pgtandem::policy::migrate

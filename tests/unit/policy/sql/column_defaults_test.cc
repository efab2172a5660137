// Column defaults learned from the primary's catalog: an INSERT (or COPY FROM, or SET col =
// DEFAULT) that leaves a serial, identity or otherwise volatile column to its default writes
// different data on the mirror, so it is nondeterministic. The lexer decides the common INSERTs
// itself and agrees with the tree walk on every row.
#include "policy/sql/column_defaults.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "policy/sql/classifier.h"
#include "policy/sql/classifier_parser.h"

namespace pgtandem::policy {
namespace {

TEST(ColumnDefaults, TablesBySchemaAndByName) {
  ColumnDefaults d;
  EXPECT_TRUE(d.empty());
  d.add("public", "t", "id");
  d.add("public", "t", "created_at");
  d.add("public", "t", "id");
  d.add("audit", "t", "event_id");
  d.add("s2", "items", "item_id");
  EXPECT_EQ(d.size(), 4u);
  const ColumnDefaults::Columns* t = d.find("public", "t");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->size(), 2u);
  EXPECT_GE(t->index_of("id"), 0);
  EXPECT_GE(t->index_of("created_at"), 0);
  EXPECT_LT(t->index_of("event_id"), 0);
  // Unqualified: every schema's table of that name.
  const ColumnDefaults::Columns* any = d.find("", "t");
  ASSERT_NE(any, nullptr);
  EXPECT_EQ(any->size(), 3u);
  EXPECT_GE(any->index_of("event_id"), 0);
  EXPECT_EQ(d.find("other", "t"), nullptr);
  EXPECT_EQ(d.find("public", "items"), nullptr);
  EXPECT_NE(d.find("", "items"), nullptr);
  EXPECT_EQ(d.find("", "T"), nullptr);  // names are as the server stores them
}

TEST(ColumnDefaults, WhichDefaultsDifferBetweenServers) {
  VolatilityCatalog catalog;
  catalog.add("public", "my_volatile", Volatility::kVolatile);
  catalog.add("public", "my_immutable", Volatility::kImmutable);
  ClassifierOptions opts;
  opts.catalog = &catalog;
  // As pg_get_expr() prints them (checked against PostgreSQL 15).
  for (std::string_view e :
       {"nextval('t1_id_seq'::regclass)", "nextval('\"Mixed Case_Id_seq\"'::regclass)",
        "(nextval('s'::regclass))::integer", "now()", "CURRENT_TIMESTAMP", "CURRENT_DATE",
        "LOCALTIME", "clock_timestamp()", "gen_random_uuid()", "random()",
        "(random() * (10)::double precision)", "uuid_generate_v4()", "my_volatile()",
        "not_in_catalog()", "txid_current()"}) {
    EXPECT_TRUE(default_is_nondeterministic(e, opts)) << e;
  }
  for (std::string_view e : {"0", "false", "'x'::character varying", "'{}'::jsonb",
                             "'{}'::integer[]", "''::text", "(0)::numeric(10,2)", "CURRENT_USER",
                             "lower('X'::text)", "my_immutable()", "'2026-01-01'::date"}) {
    EXPECT_FALSE(default_is_nondeterministic(e, opts)) << e;
  }
  // Not an expression at all: flagged rather than trusted.
  EXPECT_TRUE(default_is_nondeterministic("1; DELETE FROM t", opts));
  EXPECT_TRUE(default_is_nondeterministic("'unterminated", opts));
}

enum class Path : uint8_t { kAny, kLexer, kParser };
constexpr Path L = Path::kLexer;
constexpr Path P = Path::kParser;
constexpr Path A = Path::kAny;
constexpr StatementKind W = StatementKind::kWrite;
constexpr StatementKind R = StatementKind::kRead;
constexpr StatementKind S = StatementKind::kSessionState;
constexpr uint8_t kN = 1;  // nondeterministic
constexpr uint8_t kD = 2;  // may_use_defaults

struct Row {
  std::string_view sql;
  StatementKind kind;
  uint8_t flags;
  Path path;
};

// With the catalog below: t1.id serial, orders.id identity and orders.created_at now(), s2.items
// item_id, "Mixed Case"."Id" bigserial; u, other.t1 and public.items are plain.
// clang-format off
constexpr Row kRows[] = {
    // Column lists: the lexer decides.
    {"INSERT INTO t1 (name) VALUES ('x')", W, kN, L},
    {"INSERT INTO t1 (id, name) VALUES (1, 'x')", W, 0, L},
    {"INSERT INTO t1 (name, id) VALUES ('x', 1)", W, 0, L},
    {"insert into T1 (ID, Name) values (1, 'x')", W, 0, L},
    {"INSERT INTO \"T1\" (name) VALUES ('x')", W, 0, L},
    {"INSERT INTO t1 (\"ID\", name) VALUES (1, 'x')", W, kN, L},
    {"INSERT INTO t1 (\"id\", name) VALUES (1, 'x')", W, 0, L},
    {"INSERT INTO public.t1 (name) VALUES ('x')", W, kN, L},
    {"INSERT INTO other.t1 (name) VALUES ('x')", W, 0, L},
    {"INSERT INTO app.public.t1 (name) VALUES ('x')", W, kN, L},
    {"INSERT INTO t1 AS x (name) VALUES ('x')", W, kN, L},
    {"INSERT INTO t1 AS x (id, name) VALUES (1, 'x')", W, 0, L},
    {"INSERT INTO /* c */ t1 -- c\n (name) VALUES ('x')", W, kN, L},
    {"INSERT INTO t1 (name) VALUES ('a'), ('b'), ('c')", W, kN, L},
    {"INSERT INTO t1 (id, name) VALUES (1, 'a'), (2, 'b')", W, 0, L},
    {"INSERT INTO t1 (name) SELECT name FROM u", W, kN, L},
    {"INSERT INTO t1 (id, name) SELECT id, name FROM u", W, 0, L},
    {"INSERT INTO t1 (id.f, name) VALUES (1, 'x')", W, 0, L},
    {"INSERT INTO t1 (id[1], name) VALUES (1, 'x')", W, 0, L},
    {"INSERT INTO t1 (name) VALUES ($1) RETURNING id", W, kN, L},
    {"INSERT INTO t1 (id, name) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET name = excluded.name",
     W, 0, L},
    {"INSERT INTO t1 (name) VALUES ('x'); INSERT INTO t1 (id, name) VALUES (2, 'y')", W, kN, L},
    {"INSERT INTO orders (id, customer) VALUES (1, 2)", W, kN, L},
    {"INSERT INTO orders (customer, created_at) VALUES (2, '2026-01-01')", W, kN, L},
    {"INSERT INTO orders (id, created_at, customer) VALUES (1, '2026-01-01', 2)", W, 0, L},
    {"INSERT INTO orders (customer, created_at, id) VALUES (2, '2026-01-01', 1)", W, 0, L},
    {"INSERT INTO orders (id, created_at, customer) VALUES (1, now(), 2)", W, kN, L},
    {"INSERT INTO items (name) VALUES ('x')", W, kN, L},
    {"INSERT INTO s2.items (name) VALUES ('x')", W, kN, L},
    {"INSERT INTO public.items (name) VALUES ('x')", W, 0, L},
    {"INSERT INTO s2.items (item_id, name) VALUES (7, 'x')", W, 0, L},
    {"INSERT INTO \"Mixed Case\" (v) VALUES ('x')", W, kN, L},
    {"INSERT INTO \"Mixed Case\" (\"Id\", v) VALUES (1, 'x')", W, 0, L},
    {"INSERT INTO u (name) VALUES ('x')", W, 0, L},
    {"INSERT INTO u VALUES (1, 'x')", W, kD, L},
    // No column list: the values fill the table's columns in order, which is not known.
    {"INSERT INTO t1 VALUES (1, 'x')", W, kN | kD, L},
    {"INSERT INTO t1 SELECT * FROM u", W, kN | kD, L},
    {"INSERT INTO t1 (SELECT * FROM u)", W, kN | kD, L},
    {"INSERT INTO t1 ((SELECT * FROM u))", W, kN | kD, L},
    // DEFAULT and OVERRIDING: the tree says which column.
    {"INSERT INTO t1 DEFAULT VALUES", W, kN | kD, P},
    {"INSERT INTO t1 (id, name) VALUES (DEFAULT, 'x')", W, kN | kD, P},
    {"INSERT INTO t1 (id, name) VALUES (1, 'a'), (DEFAULT, 'b')", W, kN | kD, P},
    {"INSERT INTO t1 (id, name) VALUES (1, DEFAULT)", W, kD, P},
    {"INSERT INTO t1 (name, id) VALUES (DEFAULT, 1)", W, kD, P},
    {"INSERT INTO t1 (id, name) OVERRIDING USER VALUE VALUES (1, 'x')", W, kN, P},
    {"INSERT INTO t1 (id, name) OVERRIDING SYSTEM VALUE VALUES (1, 'x')", W, 0, P},
    {"INSERT INTO t1 (id, name) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET id = DEFAULT",
     W, kN | kD, P},
    {"INSERT INTO t1 (id, name) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET name = DEFAULT",
     W, kD, P},
    {"INSERT INTO u (a) VALUES (DEFAULT)", W, kD, L},
    // Elsewhere in a statement.
    {"WITH x AS (INSERT INTO t1 (name) VALUES ('a') RETURNING id) SELECT id FROM x", W, kN, P},
    {"WITH x AS (SELECT 1) INSERT INTO t1 (id, name) SELECT 1, 'x' FROM x", W, 0, P},
    {"EXPLAIN ANALYZE INSERT INTO t1 (name) VALUES ('x')", W, kN, P},
    {"EXPLAIN INSERT INTO t1 (name) VALUES ('x')", R, 0, L},
    {"PREPARE ins (text) AS INSERT INTO t1 (name) VALUES ($1)", S, kN, L},
    {"CREATE RULE r AS ON INSERT TO u DO ALSO INSERT INTO t1 (name) VALUES (NEW.name)", W, 0, A},
    // COPY FROM with a column list.
    {"COPY t1 (name) FROM STDIN", W, kN, P},
    {"COPY t1 (id, name) FROM STDIN WITH (FORMAT csv)", W, 0, P},
    {"COPY t1 FROM STDIN", W, 0, P},
    {"COPY orders (id, customer) FROM STDIN", W, kN, P},
    {"COPY t1 (name) TO STDOUT", R, 0, P},
    // SET column = DEFAULT.
    {"UPDATE t1 SET id = DEFAULT WHERE name = 'x'", W, kN | kD, P},
    {"UPDATE ONLY public.t1 SET id = DEFAULT", W, kN | kD, P},
    {"UPDATE t1 SET name = DEFAULT WHERE id = 1", W, kD, P},
    {"UPDATE t1 SET (id, name) = (DEFAULT, 'x')", W, kN | kD, P},
    {"UPDATE t1 SET (name, id) = (DEFAULT, 1)", W, kD, P},
    {"UPDATE t1 SET name = 'x' WHERE id = 1", W, 0, L},
    {"UPDATE u SET a = DEFAULT", W, kD, L},
    // MERGE into a table with flagged columns: the tree decides.
    {"MERGE INTO t1 USING s ON t1.id = s.id WHEN NOT MATCHED THEN INSERT (name) VALUES (s.name)",
     W, kN, P},
    {"MERGE INTO t1 USING s ON t1.id = s.id WHEN NOT MATCHED THEN INSERT (id, name) "
     "VALUES (s.id, s.name)", W, 0, P},
    {"MERGE INTO t1 USING s ON t1.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.name)",
     W, kN | kD, P},
    {"MERGE INTO t1 USING s ON t1.id = s.id WHEN MATCHED THEN UPDATE SET id = DEFAULT", W,
     kN | kD, P},
    {"MERGE INTO u USING s ON u.id = s.id WHEN NOT MATCHED THEN INSERT (name) VALUES (s.name)", W,
     0, L},
};
// clang-format on

class WithColumnDefaults : public ::testing::Test {
 protected:
  void SetUp() override {
    catalog_.add("pg_catalog", "lower", Volatility::kImmutable);
    ColumnDefaults& d = catalog_.mutable_column_defaults();
    d.add("public", "t1", "id");
    d.add("public", "orders", "id");
    d.add("public", "orders", "created_at");
    d.add("s2", "items", "item_id");
    d.add("public", "Mixed Case", "Id");
    opts_.catalog = &catalog_;
  }
  VolatilityCatalog catalog_;
  ClassifierOptions opts_;
};

std::string describe(const Classification& c) {
  std::string s(to_string(c.kind));
  if (c.nondeterministic) s += " nondeterministic";
  if (c.may_use_defaults) s += " may_use_defaults";
  if (c.used_parser) s += " used_parser";
  return s;
}

TEST_F(WithColumnDefaults, EveryRow) {
  for (const Row& row : kRows) {
    const Classification c = classify(row.sql, opts_);
    SCOPED_TRACE(testing::Message() << "sql: " << row.sql << "\n  got: " << describe(c));
    EXPECT_EQ(c.kind, row.kind);
    EXPECT_EQ(c.nondeterministic, (row.flags & kN) != 0);
    EXPECT_EQ(c.may_use_defaults, (row.flags & kD) != 0);
    if (row.path == Path::kLexer) {
      EXPECT_FALSE(c.used_parser);
    } else if (row.path == Path::kParser) {
      EXPECT_TRUE(c.used_parser);
    }
  }
}

TEST_F(WithColumnDefaults, LexerAndParserAgree) {
  for (const Row& row : kRows) {
    const Classification lexed = classify(row.sql, opts_);
    const Classification parsed = classify_with_parser(row.sql, opts_);
    SCOPED_TRACE(row.sql);
    EXPECT_EQ(parsed.kind, lexed.kind);
    EXPECT_EQ(parsed.nondeterministic, lexed.nondeterministic);
    EXPECT_EQ(parsed.may_use_defaults, lexed.may_use_defaults);
  }
}

TEST_F(WithColumnDefaults, WithoutTheCatalogNothingChanges) {
  const ClassifierOptions plain;
  EXPECT_FALSE(classify("INSERT INTO t1 (name) VALUES ('x')", plain).nondeterministic);
  EXPECT_FALSE(classify("COPY t1 (name) FROM STDIN", plain).nondeterministic);
  VolatilityCatalog functions_only;
  functions_only.add("pg_catalog", "lower", Volatility::kImmutable);
  ClassifierOptions opts;
  opts.catalog = &functions_only;
  const Classification c = classify("INSERT INTO t1 (name) VALUES ('x')", opts);
  EXPECT_FALSE(c.nondeterministic);
  EXPECT_FALSE(c.used_parser);
}

TEST_F(WithColumnDefaults, LongColumnListsAndManyFlaggedColumns) {
  std::string all = "INSERT INTO wide (";
  std::string values = ") VALUES (";
  ColumnDefaults& d = catalog_.mutable_column_defaults();
  for (int i = 0; i < 70; ++i) {
    d.add("public", "wide", "c" + std::to_string(i));
    all += (i ? ", c" : "c") + std::to_string(i);
    values += i ? ", 1" : "1";
  }
  // More than 64 flagged columns: the lexer gives up matching and flags; still no parse.
  Classification c = classify(all + values + ")", opts_);
  EXPECT_TRUE(c.nondeterministic);
  EXPECT_FALSE(c.used_parser);
  // The tree walk matches any number.
  EXPECT_FALSE(classify_with_parser(all + values + ")", opts_).nondeterministic);

  std::string many = "INSERT INTO t1 (";
  for (int i = 0; i < 500; ++i) many += "c" + std::to_string(i) + ", ";
  c = classify(many + "id) SELECT * FROM u", opts_);
  EXPECT_FALSE(c.nondeterministic);
  EXPECT_FALSE(c.used_parser);
  c = classify(many + "name) SELECT * FROM u", opts_);
  EXPECT_TRUE(c.nondeterministic);
}

TEST_F(WithColumnDefaults, PreparedInsertCarriesTheFlagToExecute) {
  PreparedStatements prepared;
  prepared.add("ins", classify("PREPARE ins (text) AS INSERT INTO t1 (name) VALUES ($1)", opts_));
  opts_.prepared = &prepared;
  EXPECT_TRUE(classify("EXECUTE ins('x')", opts_).nondeterministic);
}

}  // namespace
}  // namespace pgtandem::policy

// The schema model of the migration commands (issue 13) and what is computed from it without a
// server: the comparison of old's and new's schemas (preflight), each table's key (backfill,
// verify, repair) and the order tables are copied in (parents before children, by foreign key).
// Pure: the runner (proxy/migrate/) fills these structs from catalog rows.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pgtandem::policy::migrate {

struct Column {
  std::string name;
  std::string type;  // format_type(atttypid, atttypmod): "integer", "character varying(20)", ...
  bool not_null = false;
};

struct Table {
  std::string schema;
  std::string name;
  std::vector<Column> columns;  // in the table's own order (attnum); generated columns left out
  std::vector<std::string> primary_key;               // columns, in index order; empty: none
  std::vector<std::vector<std::string>> unique_keys;  // unique, non-partial, plain-column indexes
  std::vector<std::string> references;  // "schema.table" of every table a foreign key points to
  int64_t estimated_rows = 0;           // pg_class.reltuples (planning only)
  bool partitioned = false;  // a partitioned table: its rows are its partitions' (COPY TO needs a query)

  std::string qualified() const { return schema + "." + name; }
  const Column* column(const std::string& n) const;
};

struct Sequence {
  std::string schema;
  std::string name;
  std::string type;  // data type ("bigint")
  std::string qualified() const { return schema + "." + name; }
};

struct Schema {
  std::vector<Table> tables;
  std::vector<Sequence> sequences;
  std::vector<std::pair<std::string, std::string>> extensions;  // name, version
  const Table* table(const std::string& qualified) const;
};

// The key the commands use for a table: the primary key, else the first unique index whose
// columns are all NOT NULL (a NULL never equals anything, so it cannot identify a row), else none.
struct KeyChoice {
  std::vector<std::string> columns;  // empty: no usable key
  std::string source;                // "primary key", "unique index (a, b)", "none"
  bool usable() const { return !columns.empty(); }
};
KeyChoice choose_key(const Table& table);

// Every difference between the two schemas that the commands care about, one sentence each,
// naming the object ("table public.t: column c is integer on old, bigint on new"). Column order
// may differ (columns are matched by name); types may not, unless `allowed_casts` lists
// "old_type->new_type".
std::vector<std::string> compare_schemas(const Schema& old_schema, const Schema& new_schema,
                                         const std::vector<std::string>& allowed_casts = {});

// Tables in an order where a table comes after every table it references (cycles and
// self-references are broken by name order; tables outside `tables` are ignored).
std::vector<const Table*> copy_order(const std::vector<const Table*>& tables);

// The columns of `table` in the commands' canonical order: by name (so that old and new hash and
// copy the same text even when their column order differs).
std::vector<std::string> canonical_columns(const Table& table);

}  // namespace pgtandem::policy::migrate

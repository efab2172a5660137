// The SQL text the migration commands send (issue 13). Pure: every identifier quoted, every value
// a quoted literal cast to its column's type (COPY (query) takes no parameters, and the same text
// serves the pipelined hash queries).
//
// Chunks are key ranges: (lo, hi], lo exclusive and hi inclusive, either end open. On a composite
// key the bounds are row comparisons, `("a", "b") > ('1'::integer, 'x'::text)`, which follow the
// key's index order, so a chunk is a contiguous piece of the index.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgtandem::policy::migrate {

using Key = std::vector<std::string>;  // text values of the key columns (never NULL)

struct KeyRange {
  std::optional<Key> lo;  // exclusive; nullopt: from the start
  std::optional<Key> hi;  // inclusive; nullopt: to the end
};

// What the generators need to know about a table.
struct TableSql {
  std::string schema;
  std::string name;
  std::vector<std::string> columns;    // canonical order (by name)
  std::vector<std::string> key;        // empty: no usable key
  std::vector<std::string> key_types;  // format_type of each key column
};

std::string quote_ident(std::string_view name);
std::string quote_literal(std::string_view value);  // standard_conforming_strings = on
std::string qualified_name(std::string_view schema, std::string_view name);

// Every session of the commands sets these first: the text of every built-in type is then the
// same on both servers (floats exact, dates ISO, UTC, bytea hex).
std::string session_settings_sql();

// `("a", "b") > ('1'::integer, 'x'::text) AND ("a", "b") <= (...)`; "true" for an open range.
std::string range_predicate(const TableSql& t, const KeyRange& range);
// `("a", "b") IN (('1'::integer, 'x'::text), ...)` (`alias.` before each column when given).
std::string keys_predicate(const TableSql& t, const std::vector<Key>& keys,
                           std::string_view alias = "");
std::string column_list(const std::vector<std::string>& columns, std::string_view alias = "");
std::string key_order(const TableSql& t);  // `"a", "b"`

// Backfill: the next chunk after `range.lo` (up to range.hi), in key order, at most `limit` rows,
// locked FOR SHARE on the primary (updates and deletes of those rows wait for the commit).
std::string copy_chunk_out_sql(const TableSql& t, const KeyRange& range, int64_t limit);
// Repair: the rows with these keys (the table is locked SHARE by then).
std::string copy_keys_out_sql(const TableSql& t, const std::vector<Key>& keys);
// Keyless tables: every row.
std::string copy_all_out_sql(const TableSql& t);

// The staging table on new (temporary, per connection), filled by COPY and upserted from.
std::string staging_name(size_t index);
std::string create_staging_sql(const TableSql& t, std::string_view staging);
std::string copy_in_sql(std::string_view staging, const TableSql& t);
std::string copy_into_table_sql(const TableSql& t);  // keyless: COPY straight into the table
std::string upsert_from_staging_sql(const TableSql& t, std::string_view staging);
// Repair: delete the listed keys that the staging table (the primary's rows) does not hold.
std::string delete_absent_sql(const TableSql& t, const std::vector<Key>& keys,
                              std::string_view staging);

// Verify: count and order-independent sum of 64-bit row hashes for a range. The chunk-level hash
// is hashtextextended(row text, 0), summed as bigint (an int128 accumulator: no numeric
// arithmetic per row); 2.6x cheaper than md5 in SQL (bench/README.md). The row-level hash of the
// drill-down (row_hash_expr) stays md5: portable, and what the report's rows are decided by.
std::string row_hash_expr(const TableSql& t, std::string_view alias = "");
std::string chunk_hash_expr(const TableSql& t, std::string_view alias = "");
std::string chunk_hash_sql(const TableSql& t, const KeyRange& range);
// Verify's drill-down: key columns then md5 of each row, for a range or for listed keys.
std::string row_hashes_sql(const TableSql& t, const KeyRange& range);
std::string row_hashes_for_keys_sql(const TableSql& t, const std::vector<Key>& keys);
// Every `step`-th key in key order: the chunk boundaries.
std::string boundaries_sql(const TableSql& t, int64_t step);
// The same within a range (verify's sub-ranges of a differing chunk).
std::string boundaries_sql(const TableSql& t, const KeyRange& range, int64_t step);

// COPY text format (the default of COPY ... TO STDOUT): one line -> fields (nullopt for \N).
std::vector<std::optional<std::string>> decode_copy_line(std::string_view line);

}  // namespace pgtandem::policy::migrate

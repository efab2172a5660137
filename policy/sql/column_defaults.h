// Columns whose default the mirror computes differently from the primary: identity columns, and
// defaults that call nextval() (serial), now(), random(), gen_random_uuid(), clock_timestamp(), a
// VOLATILE function ... The mirror runs its own sequence and its own clock, so an INSERT that
// leaves such a column to its default writes different data there. Learned from the primary's
// catalog (proxy/control/catalog_loader.cc) together with function volatility; the classifier reads it
// through VolatilityCatalog::column_defaults().
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace pgtandem::policy {

struct ClassifierOptions;

class ColumnDefaults {
 public:
  // The flagged columns of one table, or of every same-named table (for an unqualified name).
  class Columns {
   public:
    // The column's index in this set, or -1.
    int index_of(std::string_view column) const;
    size_t size() const { return names_.size(); }
    std::string_view name(size_t i) const { return names_[i]; }

   private:
    friend class ColumnDefaults;
    void add(std::string_view column);
    std::vector<std::string> names_;
  };

  // Names as the server stores them (pg_namespace.nspname, pg_class.relname, pg_attribute.attname).
  void add(std::string_view schema, std::string_view table, std::string_view column);
  // nullptr when no column of that table is flagged (or the table is unknown). An empty schema
  // (an unqualified name in the statement) matches the table in any schema: the classifier does
  // not follow search_path.
  const Columns* find(std::string_view schema, std::string_view table) const;
  // False when no flagged table has a name of this size starting with this byte: a cheap answer
  // for the many tables without flagged columns.
  bool maybe(size_t table_size, char first_byte) const {
    return table_size > 0 &&
           (first_bytes_[std::min<size_t>(table_size, 63)] & first_byte_bit(first_byte)) != 0;
  }
  size_t size() const { return columns_; }  // flagged columns
  bool empty() const { return columns_ == 0; }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Table {
    Columns any_schema;
    std::vector<std::pair<std::string, Columns>> by_schema;  // usually one
  };
  // Most INSERTs name a table without flagged columns: a known table of that length and first
  // byte must exist before the name is hashed.
  static uint64_t first_byte_bit(char c) {
    return uint64_t{1} << (static_cast<unsigned char>(c) & 63);
  }
  std::unordered_map<std::string, Table, Hash, std::equal_to<>> tables_;
  std::array<uint64_t, 64> first_bytes_{};  // by length (63 and up share the last)
  size_t columns_ = 0;
};

// Whether a column default, as pg_get_expr() prints it ("nextval('t_id_seq'::regclass)", "now()",
// "CURRENT_TIMESTAMP", "'x'::text"), gives another value on another server: it is classified as
// the expression of a SELECT with `opts` (function lists, volatility, unknown functions), and
// anything but a deterministic read counts.
bool default_is_nondeterministic(std::string_view expression, const ClassifierOptions& opts);

}  // namespace pgtandem::policy

#include "policy/migrate/sql.h"

#include <cctype>

namespace pgtandem::policy::migrate {

std::string quote_ident(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::string quote_literal(std::string_view value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'') out += '\'';
    out += c;
  }
  out += '\'';
  return out;
}

std::string qualified_name(std::string_view schema, std::string_view name) {
  return quote_ident(schema) + "." + quote_ident(name);
}

std::string session_settings_sql() {
  return "SET extra_float_digits = 3; SET DateStyle = ISO; SET IntervalStyle = postgres; "
         "SET TimeZone = 'UTC'; SET bytea_output = hex; SET standard_conforming_strings = on; "
         "SET client_encoding = 'UTF8'; SET statement_timeout = 0; "
         "SET client_min_messages = warning";
}

std::string column_list(const std::vector<std::string>& columns, std::string_view alias) {
  std::string out;
  for (size_t i = 0; i < columns.size(); ++i) {
    if (i) out += ", ";
    if (!alias.empty()) {
      out += alias;
      out += '.';
    }
    out += quote_ident(columns[i]);
  }
  return out;
}

std::string key_order(const TableSql& t) { return column_list(t.key); }

namespace {

std::string key_tuple(const TableSql& t, const Key& key) {
  std::string out = "(";
  for (size_t i = 0; i < t.key.size(); ++i) {
    if (i) out += ", ";
    out += quote_literal(i < key.size() ? key[i] : std::string());
    out += "::";
    out += i < t.key_types.size() ? t.key_types[i] : std::string("text");
  }
  out += ")";
  return out;
}

std::string from(const TableSql& t) { return qualified_name(t.schema, t.name); }

}  // namespace

std::string range_predicate(const TableSql& t, const KeyRange& range) {
  const std::string cols = "(" + key_order(t) + ")";
  std::string out;
  if (range.lo) out = cols + " > " + key_tuple(t, *range.lo);
  if (range.hi) {
    if (!out.empty()) out += " AND ";
    out += cols + " <= " + key_tuple(t, *range.hi);
  }
  return out.empty() ? "true" : out;
}

std::string keys_predicate(const TableSql& t, const std::vector<Key>& keys, std::string_view alias) {
  if (keys.empty()) return "false";
  std::string out = "(" + column_list(t.key, alias) + ") IN (";
  for (size_t i = 0; i < keys.size(); ++i) {
    if (i) out += ", ";
    out += key_tuple(t, keys[i]);
  }
  out += ")";
  return out;
}

std::string copy_chunk_out_sql(const TableSql& t, const KeyRange& range, int64_t limit) {
  return "COPY (SELECT " + column_list(t.columns) + " FROM " + from(t) + " WHERE " +
         range_predicate(t, range) + " ORDER BY " + key_order(t) + " LIMIT " +
         std::to_string(limit) + " FOR SHARE) TO STDOUT";
}

std::string copy_keys_out_sql(const TableSql& t, const std::vector<Key>& keys) {
  return "COPY (SELECT " + column_list(t.columns) + " FROM " + from(t) + " WHERE " +
         keys_predicate(t, keys) + ") TO STDOUT";
}

std::string copy_all_out_sql(const TableSql& t) {
  return "COPY (SELECT " + column_list(t.columns) + " FROM " + from(t) + ") TO STDOUT";
}

std::string staging_name(size_t index) { return "pgtandem_stage_" + std::to_string(index); }

std::string create_staging_sql(const TableSql& t, std::string_view staging) {
  return "CREATE TEMP TABLE IF NOT EXISTS " + quote_ident(staging) + " AS SELECT " +
         column_list(t.columns) + " FROM " + from(t) + " WITH NO DATA; TRUNCATE " +
         quote_ident(staging);
}

std::string copy_in_sql(std::string_view staging, const TableSql& t) {
  return "COPY " + quote_ident(staging) + " (" + column_list(t.columns) + ") FROM STDIN";
}

std::string copy_into_table_sql(const TableSql& t) {
  return "COPY " + from(t) + " (" + column_list(t.columns) + ") FROM STDIN";
}

std::string upsert_from_staging_sql(const TableSql& t, std::string_view staging) {
  std::string out = "INSERT INTO " + from(t) + " (" + column_list(t.columns) +
                    ") OVERRIDING SYSTEM VALUE SELECT " + column_list(t.columns) + " FROM " +
                    quote_ident(staging) + " ON CONFLICT (" + key_order(t) + ") ";
  std::string sets;
  for (const auto& c : t.columns) {
    bool is_key = false;
    for (const auto& k : t.key) is_key = is_key || k == c;
    if (is_key) continue;
    if (!sets.empty()) sets += ", ";
    sets += quote_ident(c) + " = EXCLUDED." + quote_ident(c);
  }
  out += sets.empty() ? "DO NOTHING" : "DO UPDATE SET " + sets;
  return out;
}

std::string delete_absent_sql(const TableSql& t, const std::vector<Key>& keys,
                              std::string_view staging) {
  std::string match;
  for (size_t i = 0; i < t.key.size(); ++i) {
    if (i) match += " AND ";
    match += "s." + quote_ident(t.key[i]) + " = d." + quote_ident(t.key[i]);
  }
  return "DELETE FROM " + from(t) + " AS d WHERE " + keys_predicate(t, keys, "d") +
         " AND NOT EXISTS (SELECT 1 FROM " + quote_ident(staging) + " AS s WHERE " + match + ")";
}

std::string row_hash_expr(const TableSql& t, std::string_view alias) {
  return "md5(ROW(" + column_list(t.columns, alias) + ")::text)";
}

std::string chunk_hash_expr(const TableSql& t, std::string_view alias) {
  return "hashtextextended(ROW(" + column_list(t.columns, alias) + ")::text, 0)";
}

std::string chunk_hash_sql(const TableSql& t, const KeyRange& range) {
  return "SELECT count(*), coalesce(sum(" + chunk_hash_expr(t, "h") + "), 0) FROM " + from(t) +
         " AS h WHERE " + range_predicate(t, range);
}

std::string row_hashes_sql(const TableSql& t, const KeyRange& range) {
  return "SELECT " + column_list(t.key, "h") + ", " + row_hash_expr(t, "h") + " FROM " + from(t) +
         " AS h WHERE " + range_predicate(t, range);
}

std::string row_hashes_for_keys_sql(const TableSql& t, const std::vector<Key>& keys) {
  return "SELECT " + column_list(t.key, "h") + ", " + row_hash_expr(t, "h") + " FROM " + from(t) +
         " AS h WHERE " + keys_predicate(t, keys, "h");
}

std::string boundaries_sql(const TableSql& t, int64_t step) { return boundaries_sql(t, KeyRange{}, step); }

std::string boundaries_sql(const TableSql& t, const KeyRange& range, int64_t step) {
  const std::string where = range.lo || range.hi ? " WHERE " + range_predicate(t, range) : "";
  return "SELECT " + key_order(t) + " FROM (SELECT " + key_order(t) +
         ", row_number() OVER (ORDER BY " + key_order(t) + ") AS pgtandem_rn FROM " + from(t) +
         where + ") AS b WHERE pgtandem_rn % " + std::to_string(step < 1 ? 1 : step) +
         " = 0 ORDER BY pgtandem_rn";
}

std::vector<std::optional<std::string>> decode_copy_line(std::string_view line) {
  std::vector<std::optional<std::string>> fields;
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  size_t start = 0;
  for (;;) {
    size_t end = line.find('\t', start);
    std::string_view raw = line.substr(start, end == std::string_view::npos ? line.size() - start
                                                                            : end - start);
    if (raw == "\\N") {
      fields.emplace_back(std::nullopt);
    } else {
      std::string v;
      v.reserve(raw.size());
      for (size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] != '\\' || i + 1 >= raw.size()) {
          v += raw[i];
          continue;
        }
        const char e = raw[++i];
        switch (e) {
          case 'b': v += '\b'; break;
          case 'f': v += '\f'; break;
          case 'n': v += '\n'; break;
          case 'r': v += '\r'; break;
          case 't': v += '\t'; break;
          case 'v': v += '\v'; break;
          case 'x': {
            int val = 0, n = 0;
            while (n < 2 && i + 1 < raw.size() && std::isxdigit(static_cast<unsigned char>(raw[i + 1]))) {
              const char h = raw[++i];
              val = val * 16 + (h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
              ++n;
            }
            v += static_cast<char>(val);
            break;
          }
          default:
            if (e >= '0' && e <= '7') {
              int val = e - '0', n = 1;
              while (n < 3 && i + 1 < raw.size() && raw[i + 1] >= '0' && raw[i + 1] <= '7') {
                val = val * 8 + (raw[++i] - '0');
                ++n;
              }
              v += static_cast<char>(val);
            } else {
              v += e;
            }
        }
      }
      fields.emplace_back(std::move(v));
    }
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return fields;
}

}  // namespace pgtandem::policy::migrate

#include "policy/sql/column_defaults.h"

#include <algorithm>

#include "policy/sql/classifier.h"

namespace pgtandem::policy {

int ColumnDefaults::Columns::index_of(std::string_view column) const {
  for (size_t i = 0; i < names_.size(); ++i) {
    if (names_[i] == column) return static_cast<int>(i);
  }
  return -1;
}

void ColumnDefaults::Columns::add(std::string_view column) {
  if (index_of(column) < 0) names_.emplace_back(column);
}

void ColumnDefaults::add(std::string_view schema, std::string_view table, std::string_view column) {
  if (table.empty()) return;
  auto it = tables_.find(table);
  if (it == tables_.end()) it = tables_.emplace(std::string(table), Table{}).first;
  first_bytes_[std::min<size_t>(table.size(), 63)] |= first_byte_bit(table[0]);
  Table& t = it->second;
  auto s = std::find_if(t.by_schema.begin(), t.by_schema.end(),
                        [&](const auto& entry) { return entry.first == schema; });
  if (s == t.by_schema.end()) {
    t.by_schema.emplace_back(std::string(schema), Columns{});
    s = t.by_schema.end() - 1;
  }
  const size_t before = s->second.size();
  s->second.add(column);
  t.any_schema.add(column);
  columns_ += s->second.size() - before;
}

const ColumnDefaults::Columns* ColumnDefaults::find(std::string_view schema,
                                                    std::string_view table) const {
  if (table.empty() || !maybe(table.size(), table[0])) return nullptr;
  auto it = tables_.find(table);
  if (it == tables_.end()) return nullptr;
  if (schema.empty()) return &it->second.any_schema;
  for (const auto& [name, columns] : it->second.by_schema) {
    if (name == schema) return &columns;
  }
  return nullptr;
}

bool default_is_nondeterministic(std::string_view expression, const ClassifierOptions& opts) {
  // Serial columns, the most common case: pg_get_expr() prints "nextval('t_id_seq'::regclass)",
  // which the lexer would hand to the parser (about 15 us) only to confirm it.
  if (expression.starts_with("nextval(")) return true;
  // A default cannot hold a subquery, so "SELECT <expression>" is one statement unless the text is
  // not the expression it claims to be; then it is flagged too.
  std::string sql = "SELECT ";
  sql.append(expression);
  ClassifierOptions o = opts;
  o.prepared = nullptr;
  const Classification c = classify(sql, o);
  return c.kind != StatementKind::kRead || c.nondeterministic || c.statement_count != 1;
}

}  // namespace pgtandem::policy

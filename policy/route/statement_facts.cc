// What routing rules ask of a statement's parse tree: the tables it references and its
// fingerprint. Both go through libpg_query (tens of microseconds), so StatementInfo computes them
// only when a rule needs them.
#include <pg_query.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "policy/sql/classifier_json.h"
#include "policy/route/route_rules.h"

namespace pgtandem::policy {
namespace {

using internal::JsonTree;
using Type = JsonTree::Type;
constexpr uint32_t kNone = JsonTree::kNone;

class TableCollector {
 public:
  explicit TableCollector(const JsonTree& tree) : t_(tree) {}

  void visit(uint32_t v, bool statement_target) {
    const Type type = t_.type(v);
    if (type == Type::kArray) {
      for (uint32_t c = t_.at(v).first_child; c != kNone; c = t_.at(c).next) visit(c, false);
      return;
    }
    if (type != Type::kObject) return;
    // A RangeVar, either wrapped ({"RangeVar": {...}}, reached through the wrapper) or bare as
    // a typed field ("relation": {...}).
    if (t_.type(t_.get(v, "relname")) == Type::kString) {
      range_var(v, statement_target);
      return;
    }
    const size_t mark = ctes_.size();
    const uint32_t with = t_.get(v, "withClause");
    if (t_.type(with) == Type::kObject) with_clause(with);
    for (uint32_t c = t_.at(v).first_child; c != kNone; c = t_.at(c).next) {
      const std::string_view key = t_.at(c).key;
      if (key == "withClause") continue;
      // The target of INSERT/UPDATE/DELETE/MERGE (and COPY, DDL) is always a table, never a CTE.
      visit(c, key == "relation");
    }
    ctes_.resize(mark);
  }

  std::vector<std::string> take() { return std::move(tables_); }

 private:
  // CTE names are in scope for the statement that carries the WITH; within the WITH, a CTE sees
  // the ones before it, or all of them when RECURSIVE.
  void with_clause(uint32_t with) {
    const bool recursive = t_.is_true(t_.get(with, "recursive"));
    const uint32_t ctes = t_.get(with, "ctes");
    if (t_.type(ctes) != Type::kArray) return;
    if (recursive) {
      for (uint32_t c = t_.at(ctes).first_child; c != kNone; c = t_.at(c).next) {
        ctes_.push_back(t_.string(t_.get(t_.get(c, "CommonTableExpr"), "ctename")));
      }
    }
    for (uint32_t c = t_.at(ctes).first_child; c != kNone; c = t_.at(c).next) {
      const uint32_t cte = t_.get(c, "CommonTableExpr");
      visit(t_.get(cte, "ctequery"), false);
      if (!recursive) ctes_.push_back(t_.string(t_.get(cte, "ctename")));
    }
  }

  void range_var(uint32_t v, bool statement_target) {
    const std::string catalog = t_.string(t_.get(v, "catalogname"));
    const std::string schema = t_.string(t_.get(v, "schemaname"));
    const std::string rel = t_.string(t_.get(v, "relname"));
    if (rel.empty()) return;
    if (catalog.empty() && schema.empty() && !statement_target &&
        std::find(ctes_.begin(), ctes_.end(), rel) != ctes_.end()) {
      return;
    }
    std::string name;
    if (!catalog.empty()) name.append(catalog).push_back('.');
    if (!schema.empty()) name.append(schema).push_back('.');
    name.append(rel);
    if (std::find(tables_.begin(), tables_.end(), name) == tables_.end()) {
      tables_.push_back(std::move(name));
    }
  }

  const JsonTree& t_;
  std::vector<std::string> ctes_;
  std::vector<std::string> tables_;
};

}  // namespace

std::vector<std::string> referenced_tables(std::string_view sql) {
  // The server reads the query string up to its first NUL; libpg_query needs one at the end.
  if (sql.find('\0') != std::string_view::npos) return {};
  const std::string text(sql);
  PgQueryParseResult result = pg_query_parse(text.c_str());
  std::vector<std::string> tables;
  if (result.error == nullptr && result.parse_tree != nullptr) {
    JsonTree tree;
    if (tree.parse(result.parse_tree)) {
      TableCollector collector(tree);
      collector.visit(tree.get(0, "stmts"), false);
      tables = collector.take();
    }
  }
  pg_query_free_parse_result(result);
  return tables;
}

std::string statement_fingerprint(std::string_view sql) {
  if (sql.find('\0') != std::string_view::npos) return {};
  const std::string text(sql);
  PgQueryFingerprintResult result = pg_query_fingerprint(text.c_str());
  std::string fingerprint;
  if (result.error == nullptr && result.fingerprint_str != nullptr) {
    fingerprint = result.fingerprint_str;
  }
  pg_query_free_fingerprint_result(result);
  return fingerprint;
}

std::string normalize_statement(std::string_view sql) {
  if (sql.find('\0') != std::string_view::npos) return std::string(sql.substr(0, sql.find('\0')));
  const std::string text(sql);
  PgQueryNormalizeResult result = pg_query_normalize(text.c_str());
  std::string normalized =
      result.error == nullptr && result.normalized_query != nullptr ? result.normalized_query : text;
  pg_query_free_normalize_result(result);
  return normalized;
}

}  // namespace pgtandem::policy

// The parser path: libpg_query's JSON parse tree, walked for what makes a statement a write.
// Nested writes (data-modifying CTEs, rule actions), row locks, SELECT INTO, function calls and
// DEFAULTs are found wherever they sit in the tree.
#include "policy/sql/classifier_parser.h"

#include <pg_query.h>

#include <algorithm>
#include <string>
#include <vector>

#include "policy/sql/classifier_internal.h"
#include "policy/sql/classifier_json.h"

namespace pgtandem::policy {
namespace {

using internal::Facts;
using internal::FunctionEffect;
using internal::JsonTree;
using internal::single;
using Type = JsonTree::Type;

constexpr uint32_t kNone = JsonTree::kNone;
constexpr int kCursorOptHold = 0x0020;  // CURSOR_OPT_HOLD in nodes/parsenodes.h

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool is_false_word(std::string s) {
  for (char& c : s) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  // parse_bool() accepts unique prefixes of "false", "no", "off" and "0".
  static constexpr std::string_view kFalse[] = {"f", "fa", "fal", "fals", "false",
                                                "n", "no", "of",  "off",  "0"};
  return std::find(std::begin(kFalse), std::end(kFalse), s) != std::end(kFalse);
}

class TreeWalker {
 public:
  TreeWalker(const JsonTree& tree, const ClassifierOptions& opts) : t_(tree), opts_(opts) {}

  // A statement given as its wrapper object {"SelectStmt": {...}}.
  Classification statement(uint32_t wrapper);

 private:
  void visit(uint32_t v, Facts* f);
  void visit_node(std::string_view type, uint32_t body, Facts* f);
  void function_call(uint32_t body, Facts* f);
  // Column defaults (column_defaults.h) of the table a RangeVar-like object names, or nullptr.
  const ColumnDefaults::Columns* flagged(uint32_t relation) const;
  bool insert_uses_flagged_defaults(uint32_t body) const;
  bool merge_uses_flagged_defaults(uint32_t body) const;
  bool copy_uses_flagged_defaults(uint32_t body) const;
  // Inserted columns (a list of ResTarget) and value rows (lists of expressions): is a flagged
  // column left out, or given DEFAULT?
  bool leaves_flagged_defaults(const ColumnDefaults::Columns& columns, uint32_t targets,
                               const std::vector<uint32_t>& rows) const;
  // SET column = DEFAULT for a flagged column (UPDATE, ON CONFLICT DO UPDATE, MERGE).
  bool sets_flagged_default(const ColumnDefaults::Columns& columns, uint32_t targets) const;
  Classification statement(std::string_view type, uint32_t body);
  Classification transaction(uint32_t body);
  Classification variable_set(uint32_t body);
  Classification explain(uint32_t body);
  Classification copy(uint32_t body);
  Classification execute(uint32_t body);
  bool explain_analyzes(uint32_t options) const;

  // The string value of object `i`'s member `key`, or "".
  std::string str(uint32_t i, std::string_view key) const { return t_.string(t_.get(i, key)); }
  // {"String": {"sval": "x"}} -> "x"
  std::string string_node(uint32_t wrapper) const { return str(t_.get(wrapper, "String"), "sval"); }

  const JsonTree& t_;
  const ClassifierOptions& opts_;
};

void TreeWalker::visit(uint32_t v, Facts* f) {
  const Type type = t_.type(v);
  if (type != Type::kObject && type != Type::kArray) return;
  for (uint32_t c = t_.at(v).first_child; c != kNone; c = t_.at(c).next) {
    const std::string_view key = t_.at(c).key;
    if (type == Type::kObject && !key.empty() && key[0] >= 'A' && key[0] <= 'Z' &&
        t_.type(c) == Type::kObject) {
      visit_node(key, c, f);
    } else if (key == "intoClause") {
      f->write = true;  // SELECT ... INTO creates a table
      visit(c, f);
    } else if (key == "relpersistence") {
      if (t_.string(c) == "t") f->pins_session = true;
    } else if (key == "schemaname") {
      if (t_.string(c).rfind("pg_temp", 0) == 0) f->pins_session = true;
    } else {
      visit(c, f);
    }
  }
}

void TreeWalker::visit_node(std::string_view type, uint32_t body, Facts* f) {
  if (type == "FuncCall") {
    function_call(body, f);
  } else if (type == "SQLValueFunction") {
    const std::string op = str(body, "op");
    if (op.rfind("SVFOP_CURRENT_DATE", 0) == 0 || op.rfind("SVFOP_CURRENT_TIME", 0) == 0 ||
        op.rfind("SVFOP_LOCALTIME", 0) == 0) {
      f->nondeterministic = true;
    }
  } else if (type == "SetToDefault") {
    f->may_use_defaults = true;
  } else if (type == "InsertStmt") {
    f->write = true;
    if (t_.get(body, "cols") == kNone) f->may_use_defaults = true;
    if (insert_uses_flagged_defaults(body)) f->volatile_defaults = true;
  } else if (type == "UpdateStmt") {
    f->write = true;
    const ColumnDefaults::Columns* columns = flagged(t_.get(body, "relation"));
    if (columns != nullptr && sets_flagged_default(*columns, t_.get(body, "targetList"))) {
      f->volatile_defaults = true;
    }
  } else if (type == "MergeStmt") {
    f->write = true;
    if (merge_uses_flagged_defaults(body)) f->volatile_defaults = true;
  } else if (type == "MergeWhenClause") {
    if (str(body, "commandType") == "CMD_INSERT" && t_.get(body, "targetList") == kNone) {
      f->may_use_defaults = true;
    }
  } else if (type == "LockingClause") {
    f->write = true;  // FOR UPDATE / NO KEY UPDATE / SHARE / KEY SHARE lock rows
  } else if (type != "SelectStmt" && ends_with(type, "Stmt")) {
    f->write = true;  // UPDATE, DELETE, MERGE, and statements nested in rules or function bodies
  }
  visit(body, f);
}

void TreeWalker::function_call(uint32_t body, Facts* f) {
  std::vector<std::string> parts;
  const uint32_t names = t_.get(body, "funcname");
  if (t_.type(names) == Type::kArray) {
    for (uint32_t c = t_.at(names).first_child; c != kNone; c = t_.at(c).next) {
      parts.push_back(string_node(c));
    }
  }
  if (parts.empty()) {
    f->apply(opts_.unknown_function_is_write ? FunctionEffect::kWriteNondeterministic
                                             : FunctionEffect::kRead);
    return;
  }
  const std::string& name = parts.back();
  const std::string schema = parts.size() >= 2 ? parts[parts.size() - 2] : std::string();
  const FunctionEffect effect = internal::function_effect(schema, name, opts_);
  if (effect != FunctionEffect::kSetConfig) {
    f->apply(effect);
    return;
  }
  // set_config(name, value, is_local): only a constant true is transaction-scoped.
  bool local = false;
  const uint32_t args = t_.get(body, "args");
  uint32_t third = t_.type(args) == Type::kArray ? t_.at(args).first_child : kNone;
  for (int i = 0; i < 2 && third != kNone; ++i) third = t_.at(third).next;
  const uint32_t constant = t_.get(third, "A_Const");
  if (constant != kNone) {
    const uint32_t boolval = t_.get(constant, "boolval");
    const uint32_t sval = t_.get(constant, "sval");
    if (boolval != kNone) local = t_.is_true(t_.get(boolval, "boolval"));
    if (sval != kNone) local = !is_false_word(str(sval, "sval"));
  }
  if (f->session == SessionOp::kNone || f->session == SessionOp::kSetLocal) {
    f->session = local ? SessionOp::kSetLocal : SessionOp::kSet;
  }
}

const ColumnDefaults::Columns* TreeWalker::flagged(uint32_t relation) const {
  if (opts_.catalog == nullptr || t_.type(relation) != Type::kObject) return nullptr;
  const ColumnDefaults& defaults = opts_.catalog->column_defaults();
  if (defaults.empty()) return nullptr;
  return defaults.find(str(relation, "schemaname"), str(relation, "relname"));
}

bool TreeWalker::leaves_flagged_defaults(const ColumnDefaults::Columns& columns, uint32_t targets,
                                         const std::vector<uint32_t>& rows) const {
  // Without a column list the values fill the table's columns in order, which is not known here.
  if (t_.type(targets) != Type::kArray) return true;
  std::vector<int> position(columns.size(), -1);
  int at = 0;
  for (uint32_t c = t_.at(targets).first_child; c != kNone; c = t_.at(c).next, ++at) {
    const int k = columns.index_of(str(t_.get(c, "ResTarget"), "name"));
    if (k >= 0 && position[k] < 0) position[k] = at;
  }
  for (const int p : position) {
    if (p < 0) return true;
  }
  for (const uint32_t row : rows) {
    if (t_.type(row) != Type::kArray) continue;
    int i = 0;
    for (uint32_t v = t_.at(row).first_child; v != kNone; v = t_.at(v).next, ++i) {
      if (t_.get(v, "SetToDefault") == kNone) continue;
      if (std::find(position.begin(), position.end(), i) != position.end()) return true;
    }
  }
  return false;
}

bool TreeWalker::sets_flagged_default(const ColumnDefaults::Columns& columns,
                                      uint32_t targets) const {
  if (t_.type(targets) != Type::kArray) return false;
  for (uint32_t c = t_.at(targets).first_child; c != kNone; c = t_.at(c).next) {
    const uint32_t target = t_.get(c, "ResTarget");
    if (columns.index_of(str(target, "name")) < 0) continue;
    uint32_t value = t_.get(target, "val");
    // SET (a, b) = (DEFAULT, 1): this column's value is the colno-th of the row.
    if (const uint32_t multi = t_.get(value, "MultiAssignRef"); multi != kNone) {
      const uint32_t args = t_.get(t_.get(t_.get(multi, "source"), "RowExpr"), "args");
      const std::string_view colno = t_.number(t_.get(multi, "colno"));
      int n = 0;
      for (char d : colno) n = (d >= '0' && d <= '9') ? n * 10 + (d - '0') : n;
      value = t_.type(args) == Type::kArray ? t_.at(args).first_child : kNone;
      for (int i = 1; i < n && value != kNone; ++i) value = t_.at(value).next;
    }
    if (t_.get(value, "SetToDefault") != kNone) return true;
  }
  return false;
}

bool TreeWalker::insert_uses_flagged_defaults(uint32_t body) const {
  const ColumnDefaults::Columns* columns = flagged(t_.get(body, "relation"));
  if (columns == nullptr) return false;
  // The supplied values of identity columns are ignored; conservatively, of every flagged column.
  if (str(body, "override") == "OVERRIDING_USER_VALUE") return true;
  std::vector<uint32_t> rows;
  const uint32_t values = t_.get(t_.get(t_.get(body, "selectStmt"), "SelectStmt"), "valuesLists");
  if (t_.type(values) == Type::kArray) {
    for (uint32_t r = t_.at(values).first_child; r != kNone; r = t_.at(r).next) {
      rows.push_back(t_.get(t_.get(r, "List"), "items"));
    }
  }
  if (leaves_flagged_defaults(*columns, t_.get(body, "cols"), rows)) return true;
  const uint32_t conflict = t_.get(body, "onConflictClause");
  return sets_flagged_default(*columns, t_.get(conflict, "targetList"));
}

bool TreeWalker::merge_uses_flagged_defaults(uint32_t body) const {
  const ColumnDefaults::Columns* columns = flagged(t_.get(body, "relation"));
  if (columns == nullptr) return false;
  const uint32_t clauses = t_.get(body, "mergeWhenClauses");
  if (t_.type(clauses) != Type::kArray) return false;
  for (uint32_t c = t_.at(clauses).first_child; c != kNone; c = t_.at(c).next) {
    const uint32_t clause = t_.get(c, "MergeWhenClause");
    const std::string command = str(clause, "commandType");
    if (command == "CMD_INSERT") {
      if (str(clause, "override") == "OVERRIDING_USER_VALUE") return true;
      if (leaves_flagged_defaults(*columns, t_.get(clause, "targetList"),
                                  {t_.get(clause, "values")})) {
        return true;
      }
    } else if (command == "CMD_UPDATE") {
      if (sets_flagged_default(*columns, t_.get(clause, "targetList"))) return true;
    }
  }
  return false;
}

bool TreeWalker::copy_uses_flagged_defaults(uint32_t body) const {
  const ColumnDefaults::Columns* columns = flagged(t_.get(body, "relation"));
  if (columns == nullptr) return false;
  // Without a column list COPY FROM gives every column (but generated ones) a value.
  const uint32_t list = t_.get(body, "attlist");
  if (t_.type(list) != Type::kArray) return false;
  std::vector<bool> listed(columns->size(), false);
  for (uint32_t c = t_.at(list).first_child; c != kNone; c = t_.at(c).next) {
    const int k = columns->index_of(string_node(c));
    if (k >= 0) listed[k] = true;
  }
  return std::find(listed.begin(), listed.end(), false) != listed.end();
}

Classification TreeWalker::statement(uint32_t wrapper) {
  if (t_.type(wrapper) != Type::kObject) return single(StatementKind::kUnknown);
  const uint32_t body = t_.at(wrapper).first_child;
  if (body == kNone || t_.type(body) != Type::kObject) return single(StatementKind::kUnknown);
  return statement(t_.at(body).key, body);
}

Classification TreeWalker::transaction(uint32_t body) {
  const std::string kind = str(body, "kind");
  const bool chain = t_.is_true(t_.get(body, "chain"));
  Classification c = single(StatementKind::kTransactionControl);
  if (kind == "TRANS_STMT_BEGIN" || kind == "TRANS_STMT_START") {
    c.txn = TxnControl::kBegin;
    const uint32_t options = t_.get(body, "options");
    if (t_.type(options) == Type::kArray) {
      for (uint32_t o = t_.at(options).first_child; o != kNone; o = t_.at(o).next) {
        const uint32_t def = t_.get(o, "DefElem");
        if (str(def, "defname") != "transaction_read_only") continue;
        const uint32_t ival = t_.get(t_.get(t_.get(def, "arg"), "A_Const"), "ival");
        c.txn = t_.number(t_.get(ival, "ival")) == "1" ? TxnControl::kBeginReadOnly
                                                       : TxnControl::kBegin;
      }
    }
  } else if (kind == "TRANS_STMT_COMMIT") {
    c.txn = chain ? TxnControl::kCommitAndChain : TxnControl::kCommit;
  } else if (kind == "TRANS_STMT_ROLLBACK") {
    c.txn = chain ? TxnControl::kRollbackAndChain : TxnControl::kRollback;
  } else if (kind == "TRANS_STMT_SAVEPOINT") {
    c.txn = TxnControl::kSavepoint;
  } else if (kind == "TRANS_STMT_RELEASE") {
    c.txn = TxnControl::kRelease;
  } else if (kind == "TRANS_STMT_ROLLBACK_TO") {
    c.txn = TxnControl::kRollbackTo;
  } else if (kind == "TRANS_STMT_PREPARE") {
    c.txn = TxnControl::kPrepareTransaction;
  } else if (kind == "TRANS_STMT_COMMIT_PREPARED") {
    c.txn = TxnControl::kCommitPrepared;
  } else if (kind == "TRANS_STMT_ROLLBACK_PREPARED") {
    c.txn = TxnControl::kRollbackPrepared;
  } else {
    c.kind = StatementKind::kUnknown;
  }
  return c;
}

Classification TreeWalker::variable_set(uint32_t body) {
  const std::string kind = str(body, "kind");
  Classification c = single(StatementKind::kSessionState);
  if (kind == "VAR_RESET") {
    c.session = SessionOp::kReset;
  } else if (kind == "VAR_RESET_ALL") {
    c.session = SessionOp::kResetAll;
  } else if (kind == "VAR_SET_MULTI") {
    // SET TRANSACTION ... / SET SESSION CHARACTERISTICS AS TRANSACTION ...
    c.session = str(body, "name").rfind("TRANSACTION", 0) == 0 ? SessionOp::kSetTransaction
                                                               : SessionOp::kSet;
  } else {
    c.session = t_.is_true(t_.get(body, "is_local")) ? SessionOp::kSetLocal : SessionOp::kSet;
  }
  return c;
}

bool TreeWalker::explain_analyzes(uint32_t options) const {
  if (t_.type(options) != Type::kArray) return false;
  bool analyze = false;
  for (uint32_t o = t_.at(options).first_child; o != kNone; o = t_.at(o).next) {
    const uint32_t def = t_.get(o, "DefElem");
    if (str(def, "defname") != "analyze") continue;
    const uint32_t arg = t_.get(def, "arg");
    // No argument means true; only an argument the server reads as false turns it off.
    analyze = true;
    if (arg == kNone) continue;
    const uint32_t integer = t_.get(arg, "Integer");
    const uint32_t string = t_.get(arg, "String");
    const uint32_t boolean = t_.get(arg, "Boolean");
    if (integer != kNone) {
      const std::string_view n = t_.number(t_.get(integer, "ival"));
      analyze = !(n.empty() || n == "0");
    } else if (string != kNone) {
      analyze = !is_false_word(str(string, "sval"));
    } else if (boolean != kNone) {
      analyze = t_.is_true(t_.get(boolean, "boolval"));
    }
  }
  return analyze;
}

Classification TreeWalker::explain(uint32_t body) {
  if (!explain_analyzes(t_.get(body, "options"))) return single(StatementKind::kRead);
  return statement(t_.get(body, "query"));  // EXPLAIN ANALYZE runs the statement
}

Classification TreeWalker::copy(uint32_t body) {
  Facts f;
  visit(body, &f);
  // FROM loads rows; TO PROGRAM runs a command and TO 'file' writes on the server: primary only.
  const bool from = t_.is_true(t_.get(body, "is_from"));
  if (from || t_.is_true(t_.get(body, "is_program")) || t_.get(body, "filename") != kNone) {
    if (from && copy_uses_flagged_defaults(body)) f.volatile_defaults = true;
    Classification c = single(StatementKind::kWrite);
    f.flags_into(&c);
    c.primary_only_mixed = c.primary_only;
    return c;
  }
  const uint32_t query = t_.get(body, "query");
  if (query != kNone) return statement(query);
  Classification c = single(f.query_kind());
  f.flags_into(&c);
  return c;
}

Classification TreeWalker::execute(uint32_t body) {
  Classification c = single(StatementKind::kUnknown);
  if (opts_.prepared != nullptr) {
    if (const Classification* known = opts_.prepared->find(str(body, "name"))) c = *known;
  }
  Facts f;
  visit(t_.get(body, "params"), &f);
  if (f.primary_only) {
    c.primary_only_mixed = internal::needs_mirror_besides_primary_only(c) || f.write;
    c.primary_only = true;
  }
  if (f.write || f.primary_only) c.kind = std::max(c.kind, StatementKind::kWrite);
  c.nondeterministic = c.nondeterministic || f.nondeterministic;
  c.pins_session = c.pins_session || f.pins_session;
  c.session = SessionOp::kExecute;
  c.uses_session_prepared = true;
  c.statement_count = 1;
  c.multi_statement = false;
  return c;
}

Classification TreeWalker::statement(std::string_view type, uint32_t body) {
  Classification c;
  if (type == "SelectStmt" || type == "InsertStmt" || type == "UpdateStmt" ||
      type == "DeleteStmt" || type == "MergeStmt") {
    Facts f;
    visit_node(type, body, &f);
    c = single(f.query_kind());
    f.flags_into(&c);
  } else if (type == "TransactionStmt") {
    c = transaction(body);
  } else if (type == "VariableSetStmt") {
    c = variable_set(body);
  } else if (type == "ConstraintsSetStmt") {
    c = single(StatementKind::kSessionState);
    c.session = SessionOp::kSetLocal;
  } else if (type == "VariableShowStmt") {
    c = single(StatementKind::kRead);
    c.session = SessionOp::kShow;
  } else if (type == "DiscardStmt") {
    const std::string target = str(body, "target");
    c = single(StatementKind::kSessionState);
    c.session = target == "DISCARD_ALL"         ? SessionOp::kDiscardAll
                : target == "DISCARD_PLANS"     ? SessionOp::kDiscardPlans
                : target == "DISCARD_SEQUENCES" ? SessionOp::kDiscardSequences
                                                : SessionOp::kDiscardTemp;
  } else if (type == "PrepareStmt") {
    const Classification inner = statement(t_.get(body, "query"));
    c = inner;
    c.kind = StatementKind::kSessionState;
    c.session = SessionOp::kPrepare;
    c.prepared_kind = inner.kind;
  } else if (type == "ExecuteStmt") {
    c = execute(body);
  } else if (type == "DeallocateStmt") {
    c = single(StatementKind::kSessionState);
    c.session = t_.get(body, "name") != kNone ? SessionOp::kDeallocate : SessionOp::kDeallocateAll;
  } else if (type == "ListenStmt") {
    c = single(StatementKind::kSessionState);
    c.session = SessionOp::kListen;
    c.pins_session = true;
  } else if (type == "UnlistenStmt") {
    c = single(StatementKind::kSessionState);
    c.session = SessionOp::kUnlisten;
  } else if (type == "LoadStmt") {
    c = single(StatementKind::kSessionState);
    c.session = SessionOp::kLoad;
  } else if (type == "ExplainStmt") {
    c = explain(body);
  } else if (type == "CopyStmt") {
    c = copy(body);
  } else if (type == "DeclareCursorStmt") {
    c = statement(t_.get(body, "query"));
    c.session = SessionOp::kCursor;
    const std::string_view options = t_.number(t_.get(body, "options"));
    int bits = 0;
    for (char d : options) bits = (d >= '0' && d <= '9') ? bits * 10 + (d - '0') : bits;
    if (bits & kCursorOptHold) c.pins_session = true;  // the cursor outlives the transaction
  } else if (type == "FetchStmt" || type == "ClosePortalStmt") {
    c = single(StatementKind::kRead);
    c.session = SessionOp::kCursor;
  } else if (type == "DoStmt" || type == "CallStmt") {
    c = single(StatementKind::kWrite);
    c.nondeterministic = true;  // a procedure body is opaque
    if (type == "DoStmt") {
      // A DO body that names pg_terminate_backend() may well call it: keep it off the mirror.
      const uint32_t args = t_.get(body, "args");
      for (uint32_t a = t_.type(args) == Type::kArray ? t_.at(args).first_child : kNone; a != kNone;
           a = t_.at(a).next) {
        const uint32_t def = t_.get(a, "DefElem");
        if (str(def, "defname") == "as" &&
            internal::mentions_primary_only(string_node(t_.get(def, "arg")))) {
          c.primary_only = true;
        }
      }
    } else {
      Facts f;
      visit(t_.get(t_.get(body, "funccall"), "args"), &f);
      c.primary_only = f.primary_only;
    }
    c.primary_only_mixed = c.primary_only;  // what else the body or procedure does is unknown
  } else {
    // DDL, NOTIFY, LOCK, VACUUM, GRANT ...: writes. The walk still finds temporary objects and
    // nondeterministic expressions (CREATE TABLE AS SELECT random()).
    Facts f;
    visit(body, &f);
    // Not run now: a DEFAULT in CREATE TABLE or an INSERT in a rule's action.
    f.session = SessionOp::kNone;
    f.may_use_defaults = false;
    f.volatile_defaults = false;
    // Definitions store a primary-only call for later: the mirror needs the object all the same.
    if (type == "ViewStmt" || type == "RuleStmt" || type == "CreateFunctionStmt" ||
        type == "CreateTrigStmt" || type == "CreatePolicyStmt" || type == "AlterPolicyStmt" ||
        type == "CreateStmt" || type == "CreateDomainStmt") {
      f.primary_only = false;
    }
    c = single(StatementKind::kWrite);
    f.flags_into(&c);
    c.primary_only_mixed = c.primary_only;
  }
  c.used_parser = true;
  return c;
}

}  // namespace

Classification classify_with_parser(std::string_view sql, const ClassifierOptions& opts) {
  Classification unknown = single(StatementKind::kUnknown);
  unknown.used_parser = true;
  // The server reads the query string up to its first NUL; libpg_query needs one at the end.
  if (sql.find('\0') != std::string_view::npos) return unknown;
  const std::string text(sql);
  PgQueryParseResult result = pg_query_parse(text.c_str());
  if (result.error != nullptr || result.parse_tree == nullptr) {
    pg_query_free_parse_result(result);
    return unknown;
  }
  internal::JsonTree tree;
  const bool ok = tree.parse(result.parse_tree);
  Classification total;
  total.kind = StatementKind::kRead;
  total.used_parser = true;
  if (ok) {
    TreeWalker walker(tree, opts);
    const uint32_t stmts = tree.get(0, "stmts");
    if (tree.type(stmts) == Type::kArray) {
      for (uint32_t s = tree.at(stmts).first_child; s != kNone; s = tree.at(s).next) {
        internal::merge(&total, walker.statement(tree.get(s, "stmt")));
      }
    }
  }
  pg_query_free_parse_result(result);
  return ok ? total : unknown;
}

}  // namespace pgtandem::policy

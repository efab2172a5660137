// Statement classification: is the text of a simple Query or of a Parse a read, a write,
// transaction control or session state, and which parts of it matter to mirroring and routing.
//
// A fast lexer (lexer.h) decides the common cases; whatever it is not sure about goes to
// libpg_query (classifier_parser.h). The rule both follow: never call a write a read. Unknown
// counts as write. Pure: no I/O, no clock, no global mutable state; everything that changes
// (function lists, the catalog learned from the primary, the session's prepared statements, the
// cache in classifier_cache.h) is passed in.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "policy/sql/column_defaults.h"

namespace pgtandem::policy {

// Ordered by how much of the session it affects; combining statements keeps the larger.
enum class StatementKind : uint8_t {
  kRead,
  kTransactionControl,
  kSessionState,
  kWrite,
  kUnknown,  // could not be classified (syntax error, unterminated literal): treat as a write
};

// END is COMMIT and ABORT is ROLLBACK to the server (same parse tree); START TRANSACTION is BEGIN.
enum class TxnControl : uint8_t {
  kNone,
  kBegin,
  kBeginReadOnly,
  kCommit,
  kCommitAndChain,  // a new transaction starts at once
  kRollback,
  kRollbackAndChain,
  kSavepoint,
  kRelease,
  kRollbackTo,
  kPrepareTransaction,
  kCommitPrepared,
  kRollbackPrepared,
};

enum class SessionOp : uint8_t {
  kNone,
  kSet,       // SET [SESSION] x, SET ROLE, set_config(x, v, false), SET SESSION CHARACTERISTICS
  kSetLocal,  // SET LOCAL x, set_config(x, v, true), SET CONSTRAINTS: until transaction end
  kSetTransaction,  // SET TRANSACTION ...: this transaction's characteristics
  kReset,
  kResetAll,
  kDiscardAll,
  kDiscardPlans,
  kDiscardSequences,
  kDiscardTemp,
  kPrepare,  // SQL PREPARE; the prepared body is described by prepared_kind and the flags
  kExecute,  // SQL EXECUTE
  kDeallocate,
  kDeallocateAll,
  kListen,
  kUnlisten,
  kLoad,
  kShow,    // kind is kRead
  kCursor,  // DECLARE (kind of its query), FETCH, MOVE, CLOSE (kRead)
};

// The flags are one bit each so that a Classification fits in 8 bytes and is returned in a
// register: assembling a larger one byte by byte for the return cost store-forwarding stalls,
// about 25 ns of a 220 ns classification.
struct Classification {
  StatementKind kind = StatementKind::kUnknown;
  TxnControl txn = TxnControl::kNone;    // the last one, for several statements
  SessionOp session = SessionOp::kNone;  // the last one; may be set on a write too (set_config)
  // For session == kPrepare: what executing the prepared statement does. The flags below describe
  // the prepared body too (preparing runs nothing), except in a text of several statements.
  StatementKind prepared_kind = StatementKind::kUnknown;
  // now()/CURRENT_TIMESTAMP/clock_timestamp()/random()/gen_random_uuid()/nextval()/volatile
  // functions: the same statement gives different data on another target.
  bool nondeterministic : 1 = false;
  // INSERT without a column list, DEFAULT VALUES or DEFAULT: serial/identity defaults may run.
  // With the catalog's column defaults (column_defaults.h), an INSERT, COPY FROM or SET that
  // leaves a serial, identity or volatile-default column of a known table to its default is
  // nondeterministic too, column list or not.
  bool may_use_defaults : 1 = false;
  // Calls a function that acts on the server it runs on: pg_terminate_backend(pid),
  // pg_cancel_backend(pid), pg_reload_conf(), pg_switch_wal(), replication slots ... On the mirror
  // the pid means another backend, or nothing. Never mirrored; kind is kWrite at least, so
  // routing keeps it on the primary.
  bool primary_only : 1 = false;
  // With primary_only: the same text also writes, changes session state or controls a transaction,
  // all of which the mirror then misses.
  bool primary_only_mixed : 1 = false;
  // Temporary tables, advisory locks, LISTEN, DECLARE ... WITH HOLD: stay on the primary.
  bool pins_session : 1 = false;
  bool multi_statement : 1 = false;
  bool used_parser : 1 = false;
  // The result came from the session's prepared statements (EXECUTE): never cached.
  bool uses_session_prepared : 1 = false;
  uint16_t statement_count = 0;  // 0 for an empty query; saturates

  bool operator==(const Classification&) const = default;
};
static_assert(sizeof(Classification) <= 8);

std::string_view to_string(StatementKind kind);
std::string_view to_string(TxnControl txn);
std::string_view to_string(SessionOp op);

struct TransparentStringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// Function names from configuration, as the server stores them (unquoted names are lowercase):
// "name" means that function in any schema, "schema.name" only in that schema.
class FunctionSet {
 public:
  FunctionSet() = default;
  explicit FunctionSet(const std::vector<std::string>& names);
  void add(std::string_view name);
  // Exactly listed: "name", or "schema.name" for a qualified call.
  bool contains(std::string_view schema, std::string_view name) const;
  // Listed under any schema (the call's search_path may reach it).
  bool contains_any_schema(std::string_view name) const;
  bool empty() const { return exact_.empty(); }

 private:
  std::unordered_set<std::string, TransparentStringHash, std::equal_to<>> exact_;
  std::unordered_set<std::string, TransparentStringHash, std::equal_to<>> names_;
};

struct FunctionLists {
  FunctionSet read_only;  // never writes, even if the catalog says VOLATILE
  FunctionSet writing;    // always a write
};

enum class Volatility : uint8_t { kImmutable, kStable, kVolatile };

// What the classifier learns from the primary's catalog: function volatility from pg_proc, and the
// columns whose defaults differ between servers (column_defaults.h). Overloads and same-named
// functions in other schemas merge to the most volatile: the classifier does not resolve argument
// types or search_path.
class VolatilityCatalog {
 public:
  // pg_proc.provolatile: 'i', 's' or 'v'.
  static std::optional<Volatility> from_provolatile(char c);
  void add(std::string_view schema, std::string_view name, Volatility v);
  // Unqualified names look across all schemas.
  std::optional<Volatility> find(std::string_view schema, std::string_view name) const;
  size_t size() const { return by_qualified_name_.size(); }  // functions
  bool empty() const { return by_qualified_name_.empty(); }

  const ColumnDefaults& column_defaults() const { return column_defaults_; }
  ColumnDefaults& mutable_column_defaults() { return column_defaults_; }

 private:
  std::unordered_map<std::string, Volatility, TransparentStringHash, std::equal_to<>> by_name_;
  std::unordered_map<std::string, Volatility, TransparentStringHash, std::equal_to<>>
      by_qualified_name_;
  ColumnDefaults column_defaults_;
};

// A session's prepared statements by name. SQL PREPARE and protocol Parse share one namespace in
// the server, so one registry serves both; the proxy updates it when the primary accepted the
// PREPARE/Parse, DEALLOCATE/Close or DISCARD ALL.
class PreparedStatements {
 public:
  PreparedStatements() = default;
  // (The memo points into by_name_: never copied along.)
  PreparedStatements(const PreparedStatements& other) : by_name_(other.by_name_) {}
  PreparedStatements& operator=(const PreparedStatements& other) {
    by_name_ = other.by_name_;
    memo_.fill({});
    return *this;
  }
  PreparedStatements(PreparedStatements&& other) noexcept : by_name_(std::move(other.by_name_)) {
    other.memo_.fill({});
  }
  PreparedStatements& operator=(PreparedStatements&& other) noexcept {
    by_name_ = std::move(other.by_name_);
    memo_.fill({});
    other.memo_.fill({});
    return *this;
  }

  // For SQL PREPARE pass its classification: the body's kind is taken from prepared_kind.
  void add(std::string_view name, const Classification& c);
  void remove(std::string_view name) {
    if (auto it = by_name_.find(name); it != by_name_.end()) {
      memo_.fill({});
      by_name_.erase(it);
    }
  }
  void clear() {
    memo_.fill({});
    by_name_.clear();
  }
  const Classification* find(std::string_view name) const;
  size_t size() const { return by_name_.size(); }

 private:
  std::unordered_map<std::string, Classification, TransparentStringHash, std::equal_to<>> by_name_;
  // The statements found last, by a cheap hash of the name: a session binds the same few names
  // over and over (every Bind is looked up, by the capture and by read routing), and the map's
  // lookup costs several times this. Entries point into by_name_ (its nodes stay put when it
  // grows); erasing clears the memo.
  struct Memo {
    const std::string* name = nullptr;
    const Classification* classification = nullptr;
  };
  mutable std::array<Memo, 16> memo_{};
};

struct ClassifierOptions {
  const FunctionLists* functions = nullptr;      // optional
  const VolatilityCatalog* catalog = nullptr;    // optional until loaded from the primary
  const PreparedStatements* prepared = nullptr;  // the session's, for EXECUTE; optional
  // A call to a function that neither the lists, the catalog nor the built-in tables know.
  bool unknown_function_is_write = true;
  // The session's setting (ParameterStatus): changes where '...' literals end.
  bool standard_conforming_strings = true;
  // Bump whenever functions, catalog or unknown_function_is_write change: caches drop entries
  // classified under another generation.
  uint64_t generation = 0;
};

// Classify the text of a simple Query (one or more statements) or of a Parse.
Classification classify(std::string_view sql, const ClassifierOptions& opts);

// A fast-path FunctionCall (protocol message 'F') names its function by OID: true for the built-in
// primary-only functions (pg_terminate_backend() ...), whose OIDs are fixed in every release.
bool is_primary_only_function_oid(uint32_t oid);

// The statement name a PREPARE, EXECUTE or DEALLOCATE refers to, as the server stores it
// (so the proxy can keep PreparedStatements); nullopt for other statements and DEALLOCATE ALL.
std::optional<std::string> prepared_statement_name(std::string_view sql,
                                                   bool standard_conforming_strings = true);

}  // namespace pgtandem::policy

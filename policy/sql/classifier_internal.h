// Pieces shared by the lexer path (classifier.cc) and the parser path (classifier_parser.cc).
// Not part of the routing API.
#pragma once

#include <string_view>

#include "policy/sql/classifier.h"

namespace pgtandem::policy::internal {

// What calling a function does, as far as routing cares.
enum class FunctionEffect : uint8_t {
  kRead,
  kReadNondeterministic,   // random(), now(), clock_timestamp(), gen_random_uuid() ...
  kWrite,                  // setval(), lo_unlink(), pg_notify(), writing list ...
  kWriteNondeterministic,  // nextval(), VOLATILE in the catalog, unknown (by default)
  kAdvisoryLock,           // pg_advisory_lock() family: a write that pins the session
  kSetConfig,              // set_config(): session state
  kPrimaryOnly,            // pg_terminate_backend(), pg_reload_conf() ...: acts on this server
};

// `schema` is empty for an unqualified call. Both are as the server stores them (lowercase unless
// quoted). Order: built-in primary-only functions, writing list, built-in writers and
// nondeterministic functions, read-only list, catalog, built-in read-only functions, then
// opts.unknown_function_is_write.
FunctionEffect function_effect(std::string_view schema, std::string_view name,
                               const ClassifierOptions& opts);

// Whether `text` (a DO block's body) names a built-in primary-only function anywhere, called or
// not: the body is not parsed, so any mention counts.
bool mentions_primary_only(std::string_view text);

// The facts a scan or a tree walk collects before they become a Classification.
struct Facts {
  bool write = false;
  bool nondeterministic = false;
  bool may_use_defaults = false;
  // An INSERT, UPDATE or COPY FROM leaves a column with a volatile or identity default to it.
  bool volatile_defaults = false;
  bool pins_session = false;
  bool primary_only = false;
  SessionOp session = SessionOp::kNone;

  void apply(FunctionEffect effect) {
    switch (effect) {
      case FunctionEffect::kRead:
        break;
      case FunctionEffect::kReadNondeterministic:
        nondeterministic = true;
        break;
      case FunctionEffect::kWrite:
        write = true;
        break;
      case FunctionEffect::kWriteNondeterministic:
        write = true;
        nondeterministic = true;
        break;
      case FunctionEffect::kAdvisoryLock:
        write = true;
        pins_session = true;
        break;
      case FunctionEffect::kSetConfig:
        if (session == SessionOp::kNone) session = SessionOp::kSet;
        break;
      case FunctionEffect::kPrimaryOnly:
        primary_only = true;
        break;
    }
  }

  // Copy the flags into `c`; kind and the rest are the caller's. primary_only_mixed says whether
  // the query also writes or changes session state; a caller whose statement writes by itself
  // (DML, DDL, COPY FROM) sets it whenever primary_only is set.
  void flags_into(Classification* c) const {
    c->nondeterministic = c->nondeterministic || nondeterministic || volatile_defaults;
    c->may_use_defaults = c->may_use_defaults || may_use_defaults;
    c->pins_session = c->pins_session || pins_session;
    if (primary_only) {
      c->primary_only = true;
      c->primary_only_mixed = c->primary_only_mixed || write || session != SessionOp::kNone;
    }
    if (session != SessionOp::kNone) c->session = session;
  }

  // A query's kind from what it does: writes win (a primary-only call counts as one: it must stay
  // on the primary), then session state, else a read.
  StatementKind query_kind() const {
    if (write || primary_only) return StatementKind::kWrite;
    if (session != SessionOp::kNone) return StatementKind::kSessionState;
    return StatementKind::kRead;
  }
};

// Whether the mirror would need `c` for anything but its primary-only calls: a write, session
// state, transaction control, or a PREPARE (whose flags describe the body it prepares).
inline bool needs_mirror_besides_primary_only(const Classification& c) {
  if (c.session == SessionOp::kPrepare) return true;
  return c.primary_only ? c.primary_only_mixed : c.kind != StatementKind::kRead;
}

// A single statement's classification with statement_count 1.
inline Classification single(StatementKind kind) {
  Classification c;
  c.kind = kind;
  c.statement_count = 1;
  return c;
}

// Combine `next` (one or more statements, in order) into `total`.
void merge(Classification* total, const Classification& next);

}  // namespace pgtandem::policy::internal

// Pieces shared by the lexer path (classifier.cc) and the parser path (classifier_parser.cc).
// Not part of the routing API.
#pragma once

#include <string_view>

#include "routing/classifier.h"

namespace pgtandem::routing::internal {

// What calling a function does, as far as routing cares.
enum class FunctionEffect : uint8_t {
  kRead,
  kReadNondeterministic,   // random(), now(), clock_timestamp(), gen_random_uuid() ...
  kWrite,                  // setval(), lo_unlink(), pg_notify(), writing list ...
  kWriteNondeterministic,  // nextval(), VOLATILE in the catalog, unknown (by default)
  kAdvisoryLock,           // pg_advisory_lock() family: a write that pins the session
  kSetConfig,              // set_config(): session state
};

// `schema` is empty for an unqualified call. Both are as the server stores them (lowercase unless
// quoted). Order: writing list, built-in writers and nondeterministic functions, read-only list,
// catalog, built-in read-only functions, then opts.unknown_function_is_write.
FunctionEffect function_effect(std::string_view schema, std::string_view name,
                               const ClassifierOptions& opts);

// The facts a scan or a tree walk collects before they become a Classification.
struct Facts {
  bool write = false;
  bool nondeterministic = false;
  bool may_use_defaults = false;
  bool pins_session = false;
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
    }
  }

  // Copy the flags into `c`; kind and the rest are the caller's.
  void flags_into(Classification* c) const {
    c->nondeterministic = c->nondeterministic || nondeterministic;
    c->may_use_defaults = c->may_use_defaults || may_use_defaults;
    c->pins_session = c->pins_session || pins_session;
    if (session != SessionOp::kNone) c->session = session;
  }

  // A query's kind from what it does: writes win, then session state, else a read.
  StatementKind query_kind() const {
    if (write) return StatementKind::kWrite;
    if (session != SessionOp::kNone) return StatementKind::kSessionState;
    return StatementKind::kRead;
  }
};

// A single statement's classification with statement_count 1.
inline Classification single(StatementKind kind) {
  Classification c;
  c.kind = kind;
  c.statement_count = 1;
  return c;
}

// Combine `next` (one or more statements, in order) into `total`.
void merge(Classification* total, const Classification& next);

}  // namespace pgtandem::routing::internal

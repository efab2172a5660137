// The slow path of statement classification: parse with libpg_query (the PostgreSQL 15 grammar)
// and walk the tree. About 15 us per statement, so the lexer path and the cache keep it off the
// hot path.
#pragma once

#include <string_view>

#include "policy/sql/classifier.h"

namespace pgtandem::policy {

// Classify `sql` (one or more statements) from its parse tree alone. A syntax error is kUnknown.
// used_parser is set. Also the oracle the tests hold the lexer path to.
Classification classify_with_parser(std::string_view sql, const ClassifierOptions& opts);

}  // namespace pgtandem::policy

// Which tables a mirror divergence is about, for the backfill-pending attribution (issue 13;
// docs/migration.md, "Divergences from rows not backfilled yet"). Pure.
//
// The classifier does not keep a statement's tables (its Classification is 8 bytes, returned in a
// register; the INSERT target the lexer looks up for column defaults is not kept), and the hot
// path must not parse more. A divergence is rare, and only counted apart while a backfill has
// tables left: only then are the unit's statements parsed (libpg_query, ~15 us each), on the
// divergence path.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace pgtandem::policy::migrate {

// The SQL texts of a mirror unit's frontend messages: each simple Query's text and each Parse's
// query (at most `max` of them). Statements executed through a statement prepared in an earlier
// unit have no text here.
std::vector<std::string_view> unit_statements(std::string_view frontend_bytes, size_t max = 32);

// The tables those statements reference ("name" or "schema.name", as written): empty when none
// could be named (the caller then attributes globally).
std::vector<std::string> unit_tables(std::string_view frontend_bytes);

}  // namespace pgtandem::policy::migrate

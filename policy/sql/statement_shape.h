// A statement's shape: its text with every numeric constant written as `0` (an integer that fits in
// 32 bits) or `0.0` (any other number: the server's scanner tells the two apart), so that the
// classification cache (classifier_cache.h) holds one entry for the texts a client sends with its
// own values each time (pgbench -M simple, ORMs that inline numbers, hand-written SQL): they then
// cost a walk over the bytes and a hash instead of a lexer pass.
//
// Numbers never decide a classification, with one exception the shape refuses: EXPLAIN, whose
// options (ANALYZE 0 / ANALYZE 1) decide whether the statement runs. Everything else is kept byte
// for byte: words (with any digits in them), quoted identifiers, string literals, parameters ($1),
// comments, spacing, case. tests/unit/policy/sql/statement_shape_test.cc checks the claim on every
// statement of the classifier's table, with its numbers replaced.
//
// No shape (false: the cache keys on the text itself) when the walk could read the text
// differently from the server's scanner: standard_conforming_strings off, a backslash anywhere, a
// dollar quote, an unterminated literal or comment, a NUL byte.
#pragma once

#include <string>
#include <string_view>

namespace pgtandem::policy {

// Writes the shape of `sql` to `out` (cleared first; its capacity is reused); false when there is
// none (see above). A text without numbers is its own shape.
bool statement_shape(std::string_view sql, bool standard_conforming_strings, std::string* out);

namespace detail {
// The same, byte by byte: what statement_shape() must equal for every text (it skips 16 bytes at a
// time to the next byte that can start a number, a quote, a comment or a parameter, and calls this
// one for a text that may hold the word EXPLAIN). Tests and the fuzz target compare the two.
bool statement_shape_bytewise(std::string_view sql, bool standard_conforming_strings,
                              std::string* out);
}  // namespace detail

}  // namespace pgtandem::policy

// Test support: a statement with its numbers replaced, as the server's scanner finds them (the
// lexer's kNumber tokens): what the statement-shape checks compare (statement_shape_test.cc and
// fuzz_statement_shape.cc). Header-only: the fuzz targets and the unit tests both include it.
#pragma once

#include <string>
#include <string_view>

#include "policy/sql/lexer.h"

namespace pgtandem::test {

// `sql` with every number the lexer finds replaced by `number`.
inline std::string with_numbers(std::string_view sql, std::string_view number) {
  policy::Lexer lexer(sql);
  std::string out;
  size_t copied = 0;
  for (policy::Token t = lexer.next();
       t.kind != policy::TokenKind::kEnd && t.kind != policy::TokenKind::kError; t = lexer.next()) {
    if (t.kind != policy::TokenKind::kNumber) continue;
    const size_t at = static_cast<size_t>(t.text.data() - sql.data());
    out.append(sql.substr(copied, at - copied));
    out.append(number);
    copied = at + t.text.size();
  }
  out.append(sql.substr(copied));
  return out;
}

}  // namespace pgtandem::test

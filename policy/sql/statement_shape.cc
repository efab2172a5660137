#include "policy/sql/statement_shape.h"

#include <array>
#include <cstdint>

#include "policy/sql/lexer.h"

namespace pgtandem::policy {

namespace {

// What each byte starts or continues: one table load per byte. The low bits say what starts at
// the byte (the switch below); kContinuesWord whether it continues a bare word (scan.l's
// ident_cont: letters, digits, `_`, `$`, bytes >= 0x80).
enum : uint8_t {
  kPlain = 0,   // kept, nothing to decide
  kDigit = 1,   // a number starts here (outside a word)
  kWord = 2,    // a bare word starts here: read whole, digits and `$` included
  kQuote = 3,   // ' or "
  kDash = 4,    // - (a comment if another follows)
  kSlash = 5,   // / (a comment if * follows)
  kDollar = 6,  // $ (a parameter if a digit follows)
  kRefuse = 7,  // a backslash or a NUL: no shape
  kStarts = 7,  // the mask of the above
  kContinuesWord = 8,
};

constexpr std::array<uint8_t, 256> make_classes() {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    if (c >= '0' && c <= '9') {
      t[c] = kDigit | kContinuesWord;
    } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80) {
      t[c] = kWord | kContinuesWord;
    }
  }
  t['\''] = kQuote;
  t['"'] = kQuote;
  t['-'] = kDash;
  t['/'] = kSlash;
  t['$'] = kDollar | kContinuesWord;
  t['\\'] = kRefuse;
  t[0] = kRefuse;
  return t;
}
constexpr std::array<uint8_t, 256> kClass = make_classes();

uint8_t starts(char c) { return kClass[static_cast<unsigned char>(c)] & kStarts; }
bool is_digit(char c) { return starts(c) == kDigit; }
bool continues_word(char c) { return (kClass[static_cast<unsigned char>(c)] & kContinuesWord) != 0; }

}  // namespace

bool statement_shape(std::string_view sql, bool standard_conforming_strings, std::string* out) {
  out->clear();
  if (!standard_conforming_strings) return false;
  const char* const p = sql.data();
  const size_t n = sql.size();
  size_t kept = 0;  // sql[kept, i) is still to be copied: runs go to `out` whole, at a number
  size_t i = 0;
  while (i < n) {
    switch (starts(p[i])) {
      case kPlain:
        ++i;
        while (i < n && starts(p[i]) == kPlain) ++i;
        break;
      case kRefuse:
        return false;
      case kQuote: {
        // A string literal or quoted identifier, kept whole: a doubled quote stays inside.
        const char q = p[i];
        size_t j = i + 1;
        for (;;) {
          if (j >= n || starts(p[j]) == kRefuse) return false;
          if (p[j] == q) {
            if (j + 1 < n && p[j + 1] == q) {
              j += 2;
              continue;
            }
            break;
          }
          ++j;
        }
        i = j + 1;
        break;
      }
      case kDash:
        if (i + 1 < n && p[i + 1] == '-') {
          // A comment to the end of the line, kept.
          size_t j = i + 2;
          while (j < n && p[j] != '\n') {
            if (starts(p[j]) == kRefuse) return false;
            ++j;
          }
          i = j;
        } else {
          ++i;
        }
        break;
      case kSlash:
        if (i + 1 < n && p[i + 1] == '*') {
          // A comment, nested as the server nests them, kept.
          size_t j = i + 2;
          int depth = 1;
          while (depth > 0) {
            if (j + 1 >= n || starts(p[j]) == kRefuse) return false;  // (unterminated)
            if (p[j] == '/' && p[j + 1] == '*') {
              ++depth;
              j += 2;
            } else if (p[j] == '*' && p[j + 1] == '/') {
              --depth;
              j += 2;
            } else {
              ++j;
            }
          }
          i = j;
        } else {
          ++i;
        }
        break;
      case kDollar:
        // A parameter ($1) is kept; any other `$` outside a word starts a dollar quote.
        if (i + 1 >= n || !is_digit(p[i + 1])) return false;
        i += 2;
        while (i < n && is_digit(p[i])) ++i;
        break;
      case kWord: {
        size_t j = i + 1;
        while (j < n && continues_word(p[j])) ++j;
        // (The length first: no call for the other words.)
        if (j - i == 7 && is_word(Token{TokenKind::kWord, sql.substr(i, 7)}, "explain")) {
          return false;
        }
        i = j;
        break;
      }
      case kDigit: {
        // A numeric constant (not inside a word: words are read whole above). An integer that
        // fits in 32 bits becomes `0`, any other number (a fraction, an exponent, a larger
        // integer) `0.0`: the server's scanner makes them two kinds of token (ICONST, FCONST),
        // and its grammar takes only the first in places (varchar(20), FETCH 5), so a text with
        // the other would not parse.
        size_t j = i;
        uint64_t value = 0;
        while (j < n && is_digit(p[j])) {
          if (value <= 0x7fffffff) value = value * 10 + static_cast<uint64_t>(p[j] - '0');
          ++j;
        }
        bool integer = value <= 0x7fffffff;
        if (j + 1 < n && p[j] == '.' && is_digit(p[j + 1])) {
          integer = false;
          j += 2;
          while (j < n && is_digit(p[j])) ++j;
        }
        if (j < n && (p[j] == 'e' || p[j] == 'E')) {
          size_t k = j + 1;
          if (k < n && (p[k] == '+' || p[k] == '-')) ++k;
          if (k < n && is_digit(p[k])) {
            while (k < n && is_digit(p[k])) ++k;
            j = k;
            integer = false;
          }
        }
        if (out->empty()) out->reserve(n);
        out->append(p + kept, i - kept);
        out->append(integer ? std::string_view("0") : std::string_view("0.0"));
        kept = i = j;
        break;
      }
    }
  }
  out->append(p + kept, n - kept);
  return true;
}

}  // namespace pgtandem::policy

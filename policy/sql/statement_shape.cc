#include "policy/sql/statement_shape.h"

#if defined(__SSE2__)
#include <emmintrin.h>  // every x86-64
#endif

#include <array>
#include <cstdint>
#include <cstring>

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

// What both walks read alike. Each returns the index just past what starts at p[i], or kNone when
// the text has no shape.
constexpr size_t kNone = static_cast<size_t>(-1);

// A string literal or quoted identifier (p[i] is its quote), kept whole: a doubled quote stays
// inside.
size_t past_quoted(const char* p, size_t i, size_t n) {
  const char q = p[i];
  size_t j = i + 1;
  for (;;) {
    if (j >= n || starts(p[j]) == kRefuse) return kNone;
    if (p[j] == q) {
      if (j + 1 < n && p[j + 1] == q) {
        j += 2;
        continue;
      }
      return j + 1;
    }
    ++j;
  }
}

// p[i] is `-`: a comment to the end of the line if another follows, kept.
size_t past_dash(const char* p, size_t i, size_t n) {
  if (i + 1 >= n || p[i + 1] != '-') return i + 1;
  size_t j = i + 2;
  while (j < n && p[j] != '\n') {
    if (starts(p[j]) == kRefuse) return kNone;
    ++j;
  }
  return j;
}

// p[i] is `/`: a comment if `*` follows, nested as the server nests them, kept.
size_t past_slash(const char* p, size_t i, size_t n) {
  if (i + 1 >= n || p[i + 1] != '*') return i + 1;
  size_t j = i + 2;
  int depth = 1;
  while (depth > 0) {
    if (j + 1 >= n || starts(p[j]) == kRefuse) return kNone;  // (unterminated)
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
  return j;
}

// p[i] is `$` outside a word: a parameter ($1) is kept; anything else starts a dollar quote.
[[gnu::always_inline]] inline size_t past_parameter(const char* p, size_t i, size_t n) {
  if (i + 1 >= n || !is_digit(p[i + 1])) return kNone;
  i += 2;
  while (i < n && is_digit(p[i])) ++i;
  return i;
}

// A numeric constant starting at the digit p[i] (not inside a word). An integer that fits in 32
// bits becomes `0`, any other number (a fraction, an exponent, a larger integer) `0.0`: the
// server's scanner makes them two kinds of token (ICONST, FCONST), and its grammar takes only the
// first in places (varchar(20), FETCH 5), so a text with the other would not parse.
[[gnu::always_inline]] inline size_t past_number(const char* p, size_t i, size_t n, bool* integer) {
  size_t j = i;
  while (j < n && is_digit(p[j])) ++j;
  // Nine digits or fewer always fit in 32 bits; only a longer run is added up.
  *integer = true;
  if (j - i > 9) {
    uint64_t value = 0;
    for (size_t k = i; k < j && value <= 0x7fffffff; ++k) {
      value = value * 10 + static_cast<uint64_t>(p[k] - '0');
    }
    *integer = value <= 0x7fffffff;
  }
  if (j + 1 < n && p[j] == '.' && is_digit(p[j + 1])) {
    *integer = false;
    j += 2;
    while (j < n && is_digit(p[j])) ++j;
  }
  if (j < n && (p[j] == 'e' || p[j] == 'E')) {
    size_t k = j + 1;
    if (k < n && (p[k] == '+' || p[k] == '-')) ++k;
    if (k < n && is_digit(p[k])) {
      while (k < n && is_digit(p[k])) ++k;
      j = k;
      *integer = false;
    }
  }
  return j;
}

// What starts at p[i] when it is a quote, a dash, a slash or a byte the walk refuses (kind: its
// starts()).
size_t past_other(uint8_t kind, const char* p, size_t i, size_t n) {
  switch (kind) {
    case kQuote:
      return past_quoted(p, i, n);
    case kDash:
      return past_dash(p, i, n);
    case kSlash:
      return past_slash(p, i, n);
    default:
      return kNone;  // kRefuse
  }
}

// A number's replacement.
std::string_view zero(bool integer) { return integer ? "0" : "0.0"; }

}  // namespace

namespace detail {

bool statement_shape_bytewise(std::string_view sql, bool standard_conforming_strings,
                              std::string* out) {
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
      case kQuote:
      case kDash:
      case kSlash:
        i = past_other(starts(p[i]), p, i, n);
        break;
      case kDollar:
        i = past_parameter(p, i, n);
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
        bool integer = true;
        const size_t j = past_number(p, i, n, &integer);
        if (out->empty()) out->reserve(n);
        out->append(p + kept, i - kept);
        out->append(zero(integer));
        kept = i = j;
        break;
      }
    }
    if (i == kNone) return false;
  }
  out->append(p + kept, n - kept);
  return true;
}

}  // namespace detail

namespace {

// Bytes the fast walk stops at: those that start something other than plain text or a word, or
// continue a word with a digit or `$` (whether they do is decided there), and `x` (EXPLAIN).
bool stops(char c) {
  const uint8_t s = starts(c);
  return (s != kPlain && s != kWord) || c == 'x' || c == 'X';
}

// The first byte at or after `i` that stops() the walk, or `n`: 16 bytes at a time where SSE2 is.
size_t next_stop(const char* p, size_t i, size_t n) {
#if defined(__SSE2__)
  const __m128i digit0 = _mm_set1_epi8('0');
  const __m128i nine = _mm_set1_epi8(9);
  const __m128i single = _mm_set1_epi8('\'');
  const __m128i dbl = _mm_set1_epi8('"');
  const __m128i dash = _mm_set1_epi8('-');
  const __m128i slash = _mm_set1_epi8('/');
  const __m128i dollar = _mm_set1_epi8('$');
  const __m128i backslash = _mm_set1_epi8('\\');
  const __m128i nul = _mm_setzero_si128();
  const __m128i lower = _mm_set1_epi8(0x20);
  const __m128i x = _mm_set1_epi8('x');
  for (; i + 16 <= n; i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
    const __m128i d = _mm_sub_epi8(v, digit0);
    __m128i m = _mm_cmpeq_epi8(_mm_min_epu8(d, nine), d);  // '0'..'9'
    m = _mm_or_si128(m, _mm_cmpeq_epi8(v, single));
    m = _mm_or_si128(m, _mm_cmpeq_epi8(v, dbl));
    m = _mm_or_si128(m, _mm_cmpeq_epi8(v, dash));
    m = _mm_or_si128(m, _mm_cmpeq_epi8(v, slash));
    m = _mm_or_si128(m, _mm_cmpeq_epi8(v, dollar));
    m = _mm_or_si128(m, _mm_cmpeq_epi8(v, backslash));
    m = _mm_or_si128(m, _mm_cmpeq_epi8(v, nul));
    m = _mm_or_si128(m, _mm_cmpeq_epi8(_mm_or_si128(v, lower), x));
    const int mask = _mm_movemask_epi8(m);
    if (mask != 0) return i + static_cast<size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
  }
#endif
  while (i < n && !stops(p[i])) ++i;
  return i;
}

}  // namespace

// The bytewise walk (detail::statement_shape_bytewise) visits every byte; most bytes of a
// statement are words and spaces that it only steps over. This one goes from stop to stop and
// does at each what the bytewise walk does there. What it needs to know of the bytes it skipped:
// whether the byte before a digit or `$` continues a word (then the bytewise walk read it as part
// of that word and kept it), unless that byte ended a number or a parameter (`token_end`: there
// the bytewise walk starts afresh). A text that may hold EXPLAIN goes to the bytewise walk whole.
bool statement_shape(std::string_view sql, bool standard_conforming_strings, std::string* out) {
  out->clear();
  if (!standard_conforming_strings) return false;
  const char* const p = sql.data();
  const size_t n = sql.size();
  size_t kept = 0;       // as in the bytewise walk
  size_t token_end = 0;  // where the last number or parameter ended
  // The shape is written in place (it is never longer than the text: every number it replaces
  // has at least the length of its replacement), `written` bytes of it so far; none until the
  // first number, and a text without one is copied whole at the end.
  char* shape = nullptr;
  size_t written = 0;
  size_t i = 0;
  for (;;) {
    i = next_stop(p, i, n);
    if (i >= n) break;
    switch (starts(p[i])) {
      case kPlain:
      case kWord:
        // An `x`: EXPLAIN is decided by the bytewise walk.
        if (i > 0 && i + 6 <= n &&
            is_word(Token{TokenKind::kWord, sql.substr(i - 1, 7)}, "explain")) {
          return detail::statement_shape_bytewise(sql, standard_conforming_strings, out);
        }
        ++i;
        break;
      case kRefuse:
      case kQuote:
      case kDash:
      case kSlash:
        i = past_other(starts(p[i]), p, i, n);
        break;
      case kDollar:
      case kDigit: {
        if (i > 0 && i != token_end && continues_word(p[i - 1])) {
          // Inside a word: kept with the rest of it.
          ++i;
          while (i < n && continues_word(p[i])) ++i;
          break;
        }
        if (p[i] == '$') {
          i = past_parameter(p, i, n);
          token_end = i;
          break;
        }
        bool integer = true;
        const size_t j = past_number(p, i, n, &integer);
        if (shape == nullptr) {
          out->resize(n);
          shape = out->data();
        }
        std::memcpy(shape + written, p + kept, i - kept);
        written += i - kept;
        if (integer) {
          shape[written++] = '0';
        } else {
          std::memcpy(shape + written, "0.0", 3);
          written += 3;
        }
        kept = i = j;
        token_end = j;
        break;
      }
    }
    if (i == kNone) return false;
  }
  if (shape == nullptr) {
    out->assign(p, n);
    return true;
  }
  std::memcpy(shape + written, p + kept, n - kept);
  out->resize(written + n - kept);
  return true;
}

}  // namespace pgtandem::policy

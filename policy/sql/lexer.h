// A fast SQL tokenizer for statement classification: follows PostgreSQL's scanner (scan.l) closely
// enough that a token boundary here is a token boundary there, without building anything.
// Pure and allocation-free: tokens are views into the input.
//
// Skipped: whitespace, `--` comments, nested `/* */` comments. Recognised: bare words (keywords
// and identifiers), quoted identifiers ("a""b", U&"..."), string literals ('..', E'..', B'..',
// X'..', N'..', U&'..'), dollar-quoted strings ($tag$...$tag$), numbers, parameters ($1),
// operators and punctuation. Anything the server's scanner would reject (an unterminated string,
// quoted identifier, dollar quote or comment, a zero-length quoted identifier, a NUL byte, a `$`
// that starts nothing) is a kError token, after which the lexer only returns kEnd.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace pgtandem::policy {

enum class TokenKind : uint8_t {
  kEnd,
  kWord,               // keyword or unquoted identifier (may contain `$` after the first byte)
  kQuotedIdentifier,   // "..."
  kUnicodeIdentifier,  // U&"..." (escapes are decoded by the server, possibly after UESCAPE)
  kString,             // '..', E'..', B'..', X'..', N'..', U&'..'
  kDollarString,       // $tag$...$tag$
  kNumber,
  kParameter,  // $1
  kOperator,   // + - * / < > = ~ ! @ # % ^ & | ` ? and their combinations
  kLeftParen,
  kRightParen,
  kComma,
  kSemicolon,
  kDot,
  kPunctuation,  // [ ] : ::
  kOther,        // a byte the server's scanner has no rule for (it rejects the statement)
  kError,
};

struct Token {
  TokenKind kind = TokenKind::kEnd;
  std::string_view text;  // exactly the source bytes, quotes included
};

class Lexer {
 public:
  // `standard_conforming_strings` is the session's setting: when off, a backslash escapes the
  // next byte inside '...' as it does inside E'...'.
  explicit Lexer(std::string_view sql, bool standard_conforming_strings = true)
      : sql_(sql), standard_conforming_strings_(standard_conforming_strings) {}

  Token next();

  size_t offset() const { return pos_; }
  // A '...' literal (not E'...') contained a backslash. With standard_conforming_strings off such
  // a literal ends somewhere else than a parser with the default setting (libpg_query) thinks.
  bool saw_backslash_in_plain_string() const { return backslash_in_plain_string_; }

 private:
  Token make(TokenKind kind, size_t begin) { return Token{kind, sql_.substr(begin, pos_ - begin)}; }
  Token error(size_t begin);
  bool skip_space_and_comments();  // false on an unterminated comment (which starts at begin)
  Token quoted_string(size_t begin, bool backslash_escapes);
  Token quoted_identifier(size_t begin, TokenKind kind);
  Token dollar(size_t begin);
  Token number(size_t begin);
  Token word(size_t begin);
  Token operator_token(size_t begin);

  std::string_view sql_;
  size_t pos_ = 0;
  size_t comment_begin_ = 0;
  bool standard_conforming_strings_;
  bool backslash_in_plain_string_ = false;
  bool failed_ = false;
};

inline constexpr size_t kMaxIdentifierBytes = 63;  // NAMEDATALEN - 1

// An identifier as the server stores it: bare words lowercased (ASCII only, as for UTF-8
// databases), quotes removed and "" unescaped, truncated to 63 bytes on a UTF-8 boundary.
struct Identifier {
  std::array<char, kMaxIdentifierBytes + 1> data;  // only [0, size) is set: not cleared per use
  size_t size = 0;
  std::string_view view() const { return {data.data(), size}; }
};

// False for tokens that are not identifiers, and for U&"..." identifiers (their escapes are not
// decoded here: callers that need the name must ask the parser).
bool normalize_identifier(const Token& token, Identifier* out);

// True if `token` is the bare word `lower` in any letter case. `lower` must be lowercase.
bool is_word(const Token& token, std::string_view lower);

// True if `token` names `lower` as an identifier: a bare word in any case, or a quoted
// identifier whose content equals `lower` ignoring case (callers use it to be conservative).
bool names(const Token& token, std::string_view lower);

constexpr char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
}

// A fixed map from lowercase strings (keywords, function names) to small values, built at compile
// time and looked up with one hash and, usually, one compare.
template <typename Value, size_t kSlots>
class StaticStringMap {
 public:
  static_assert((kSlots & (kSlots - 1)) == 0, "kSlots must be a power of two");
  struct Entry {
    std::string_view key;
    Value value{};
  };

  template <size_t kCount>
  consteval explicit StaticStringMap(const std::array<Entry, kCount>& entries) {
    static_assert(kCount * 2 <= kSlots, "table too full");
    for (const Entry& e : entries) {
      first_bytes_[e.key.size() & 63] |= first_byte_bit(e.key[0]);
      size_t slot = hash(e.key) & (kSlots - 1);
      while (!slots_[slot].key.empty()) slot = (slot + 1) & (kSlots - 1);
      slots_[slot] = e;
    }
  }

  // `key` must already be lowercase.
  constexpr const Value* find(std::string_view key) const {
    if (!maybe(key)) return nullptr;
    size_t slot = hash(key) & (kSlots - 1);
    while (!slots_[slot].key.empty()) {
      if (slots_[slot].key == key) return &slots_[slot].value;
      slot = (slot + 1) & (kSlots - 1);
    }
    return nullptr;
  }

  // A bare word in any letter case (ASCII).
  const Value* find_word(std::string_view word) const {
    if (!maybe(word)) return nullptr;
    size_t slot = hash(word) & (kSlots - 1);
    while (!slots_[slot].key.empty()) {
      const std::string_view key = slots_[slot].key;
      if (key.size() == word.size()) {
        size_t i = 0;
        while (i < key.size() && key[i] == ascii_lower(word[i])) ++i;
        if (i == key.size()) return &slots_[slot].value;
      }
      slot = (slot + 1) & (kSlots - 1);
    }
    return nullptr;
  }

 private:
  // Most words are not keys: a key of this length starting with this letter must exist.
  static constexpr uint32_t first_byte_bit(char c) {
    const char lower = ascii_lower(c);
    return (lower >= 'a' && lower <= 'z') ? 1u << (lower - 'a') : 1u << 31;
  }
  constexpr bool maybe(std::string_view word) const {
    return !word.empty() && word.size() <= kMaxIdentifierBytes &&
           (first_bytes_[word.size()] & first_byte_bit(word[0])) != 0;
  }

  // Length and five sampled bytes, case-folded: cheap, and enough to spread a few hundred keys
  // (collisions only lengthen a probe; the full compare decides).
  static constexpr size_t hash(std::string_view s) {
    const size_t n = s.size();
    auto at = [&](size_t i) {
      return static_cast<uint64_t>(static_cast<uint8_t>(ascii_lower(s[i])));
    };
    uint64_t h = n;
    h = (h << 8) | at(0);
    h = (h << 8) | at(n - 1);
    h = (h << 8) | at(n / 2);
    h = (h << 8) | at(n > 1 ? 1 : 0);
    h = (h << 8) | at(n > 1 ? n - 2 : 0);
    h *= 0x9E3779B97F4A7C15ull;
    return static_cast<size_t>(h >> 40);
  }

  std::array<Entry, kSlots> slots_{};
  std::array<uint32_t, 64> first_bytes_{};  // by key length: first letters of the keys
};

}  // namespace pgtandem::policy

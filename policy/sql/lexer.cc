#include "policy/sql/lexer.h"

#include <algorithm>
#include <array>
#include <cstring>

namespace pgtandem::policy {
namespace {

enum CharClass : uint8_t {
  kSpace = 1,
  kDigit = 2,
  kIdentStart = 4,  // letters, '_' and every byte >= 0x80
  kIdentCont = 8,   // ident start, digits, '$'
  kOpChar = 16,     // ~ ! @ # ^ & | ` ? + - * / % < > =
};

constexpr std::array<uint8_t, 256> kClasses = [] {
  std::array<uint8_t, 256> t{};
  for (int c : {' ', '\t', '\n', '\r', '\f', '\v'}) t[c] = kSpace;
  for (int c = '0'; c <= '9'; ++c) t[c] = kDigit | kIdentCont;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = kIdentStart | kIdentCont;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = kIdentStart | kIdentCont;
  for (int c = 0x80; c <= 0xff; ++c) t[c] = kIdentStart | kIdentCont;
  t['_'] = kIdentStart | kIdentCont;
  t['$'] = kIdentCont;
  for (char c : std::string_view("~!@#^&|`?+-*/%<>=")) t[static_cast<uint8_t>(c)] = kOpChar;
  return t;
}();

bool has(char c, uint8_t cls) { return (kClasses[static_cast<uint8_t>(c)] & cls) != 0; }
bool is_space(char c) { return has(c, kSpace); }
bool is_digit(char c) { return has(c, kDigit); }
bool is_ident_start(char c) { return has(c, kIdentStart); }
bool is_ident_cont(char c) { return has(c, kIdentCont); }
bool is_dollar_tag_cont(char c) { return c != '$' && has(c, kIdentCont); }
bool is_op_char(char c) { return has(c, kOpChar); }

}  // namespace

Token Lexer::error(size_t begin) {
  failed_ = true;
  Token t{TokenKind::kError, sql_.substr(std::min(begin, sql_.size()))};
  pos_ = sql_.size();
  return t;
}

bool Lexer::skip_space_and_comments() {
  const size_t n = sql_.size();
  while (pos_ < n) {
    const char c = sql_[pos_];
    if (is_space(c)) {
      ++pos_;
    } else if (c == '-' && pos_ + 1 < n && sql_[pos_ + 1] == '-') {
      while (pos_ < n && sql_[pos_] != '\n' && sql_[pos_] != '\r') ++pos_;
    } else if (c == '/' && pos_ + 1 < n && sql_[pos_ + 1] == '*') {
      // Comments nest, unlike in the SQL standard: the server counts /* and */ pairs.
      comment_begin_ = pos_;
      pos_ += 2;
      int depth = 1;
      while (depth > 0) {
        if (pos_ + 1 >= n) return false;
        if (sql_[pos_] == '/' && sql_[pos_ + 1] == '*') {
          ++depth;
          pos_ += 2;
        } else if (sql_[pos_] == '*' && sql_[pos_ + 1] == '/') {
          --depth;
          pos_ += 2;
        } else {
          ++pos_;
        }
      }
    } else {
      return true;
    }
  }
  return true;
}

Token Lexer::quoted_string(size_t begin, bool backslash_escapes) {
  // pos_ is just past the opening quote.
  const size_t n = sql_.size();
  while (pos_ < n) {
    const char c = sql_[pos_];
    if (c == '\'') {
      if (pos_ + 1 < n && sql_[pos_ + 1] == '\'') {
        pos_ += 2;
        continue;
      }
      ++pos_;
      return make(TokenKind::kString, begin);
    }
    if (c == '\\' && backslash_escapes) {
      if (pos_ + 1 < n && sql_[pos_ + 1] == '\0') return error(begin);
      pos_ += 2;
      continue;
    }
    if (c == '\0') return error(begin);
    ++pos_;
  }
  return error(begin);
}

Token Lexer::quoted_identifier(size_t begin, TokenKind kind) {
  // pos_ is just past the opening double quote.
  const size_t n = sql_.size();
  const size_t content = pos_;
  while (pos_ < n) {
    const char c = sql_[pos_];
    if (c == '"') {
      if (pos_ + 1 < n && sql_[pos_ + 1] == '"') {
        pos_ += 2;
        continue;
      }
      if (pos_ == content) return error(begin);  // zero-length delimited identifier
      ++pos_;
      return make(kind, begin);
    }
    if (c == '\0') return error(begin);
    ++pos_;
  }
  return error(begin);
}

Token Lexer::dollar(size_t begin) {
  // sql_[pos_] == '$'.
  const size_t n = sql_.size();
  size_t p = pos_ + 1;
  if (p < n && is_digit(sql_[p])) {
    while (p < n && is_digit(sql_[p])) ++p;
    pos_ = p;
    return make(TokenKind::kParameter, begin);
  }
  if (p < n && is_ident_start(sql_[p])) {
    while (p < n && is_dollar_tag_cont(sql_[p])) ++p;
  }
  if (p >= n || sql_[p] != '$') {
    // "$" followed by no closing "$": the server returns a lone '$', which no rule accepts.
    ++pos_;
    return make(TokenKind::kOther, begin);
  }
  const std::string_view tag = sql_.substr(pos_, p + 1 - pos_);
  const size_t close = sql_.find(tag, p + 1);
  if (close == std::string_view::npos) return error(begin);
  const std::string_view body = sql_.substr(p + 1, close - (p + 1));
  if (body.find('\0') != std::string_view::npos) return error(begin);
  pos_ = close + tag.size();
  return make(TokenKind::kDollarString, begin);
}

Token Lexer::number(size_t begin) {
  const size_t n = sql_.size();
  while (pos_ < n && is_digit(sql_[pos_])) ++pos_;
  // "1..2" is the integer 1 followed by "..": only take the dot if it is not doubled.
  if (pos_ < n && sql_[pos_] == '.' && !(pos_ + 1 < n && sql_[pos_ + 1] == '.')) {
    ++pos_;
    while (pos_ < n && is_digit(sql_[pos_])) ++pos_;
  }
  if (pos_ < n && (sql_[pos_] == 'e' || sql_[pos_] == 'E')) {
    size_t p = pos_ + 1;
    if (p < n && (sql_[p] == '+' || sql_[p] == '-')) ++p;
    if (p < n && is_digit(sql_[p])) {
      while (p < n && is_digit(sql_[p])) ++p;
      pos_ = p;
    }
  }
  return make(TokenKind::kNumber, begin);
}

Token Lexer::word(size_t begin) {
  const size_t n = sql_.size();
  while (pos_ < n && is_ident_cont(sql_[pos_])) ++pos_;
  return make(TokenKind::kWord, begin);
}

Token Lexer::operator_token(size_t begin) {
  const size_t n = sql_.size();
  ++pos_;
  while (pos_ < n && is_op_char(sql_[pos_])) {
    // A comment start ends the operator: "+--x" is "+" then a comment.
    if (pos_ + 1 < n && ((sql_[pos_] == '-' && sql_[pos_ + 1] == '-') ||
                         (sql_[pos_] == '/' && sql_[pos_ + 1] == '*'))) {
      break;
    }
    ++pos_;
  }
  return make(TokenKind::kOperator, begin);
}

Token Lexer::next() {
  if (failed_) return Token{TokenKind::kEnd, {}};
  if (!skip_space_and_comments()) return error(comment_begin_);
  const size_t n = sql_.size();
  if (pos_ >= n) return Token{TokenKind::kEnd, sql_.substr(n)};
  const size_t begin = pos_;
  const char c = sql_[pos_];
  const char c1 = pos_ + 1 < n ? sql_[pos_ + 1] : '\0';
  const char c2 = pos_ + 2 < n ? sql_[pos_ + 2] : '\0';

  // Prefixed literals: the prefix is a single letter directly followed by the quote (a longer
  // word such as "type'x'" is an identifier followed by an ordinary string).
  if ((c == 'e' || c == 'E') && c1 == '\'') {
    pos_ += 2;
    return quoted_string(begin, /*backslash_escapes=*/true);
  }
  if ((c == 'b' || c == 'B' || c == 'x' || c == 'X') && c1 == '\'') {
    // Bit strings have no '' escape: the next quote ends them.
    const size_t close = sql_.find('\'', pos_ + 2);
    if (close == std::string_view::npos) return error(begin);
    if (sql_.substr(pos_, close - pos_).find('\0') != std::string_view::npos) return error(begin);
    pos_ = close + 1;
    return make(TokenKind::kString, begin);
  }
  if ((c == 'u' || c == 'U') && c1 == '&' && (c2 == '\'' || c2 == '"')) {
    pos_ += 3;
    if (c2 == '\'') return quoted_string(begin, /*backslash_escapes=*/false);
    return quoted_identifier(begin, TokenKind::kUnicodeIdentifier);
  }
  if (c == '\'') {
    ++pos_;
    // With standard_conforming_strings off the server scans '...' as it scans E'...'.
    Token t = quoted_string(begin, /*backslash_escapes=*/!standard_conforming_strings_);
    if (t.kind == TokenKind::kString && t.text.find('\\') != std::string_view::npos) {
      backslash_in_plain_string_ = true;
    }
    return t;
  }
  if (c == '"') {
    ++pos_;
    return quoted_identifier(begin, TokenKind::kQuotedIdentifier);
  }
  if (is_ident_start(c)) return word(begin);
  if (is_digit(c) || (c == '.' && is_digit(c1))) return number(begin);
  if (c == '$') return dollar(begin);
  switch (c) {
    case '(':
      ++pos_;
      return make(TokenKind::kLeftParen, begin);
    case ')':
      ++pos_;
      return make(TokenKind::kRightParen, begin);
    case ',':
      ++pos_;
      return make(TokenKind::kComma, begin);
    case ';':
      ++pos_;
      return make(TokenKind::kSemicolon, begin);
    case '.':
      ++pos_;
      return make(TokenKind::kDot, begin);
    case '[':
    case ']':
      ++pos_;
      return make(TokenKind::kPunctuation, begin);
    case ':':
      pos_ += (c1 == ':' || c1 == '=') ? 2 : 1;
      return make(TokenKind::kPunctuation, begin);
    case '\0':
      // The wire protocol's query string ends at the first NUL; text past it is not SQL.
      return error(begin);
    default:
      break;
  }
  if (is_op_char(c)) return operator_token(begin);
  ++pos_;
  return make(TokenKind::kOther, begin);
}

namespace {

// Truncate to at most kMaxIdentifierBytes without splitting a UTF-8 sequence (pg_mbcliplen).
size_t clip_utf8(const char* data, size_t size) {
  if (size <= kMaxIdentifierBytes) return size;
  size_t cut = kMaxIdentifierBytes;
  while (cut > 0 && (static_cast<unsigned char>(data[cut]) & 0xC0) == 0x80) --cut;
  return cut;
}

}  // namespace

bool normalize_identifier(const Token& token, Identifier* out) {
  if (token.kind == TokenKind::kWord && token.text.size() <= kMaxIdentifierBytes) {
    // The common case needs no clipping.
    for (size_t i = 0; i < token.text.size(); ++i) out->data[i] = ascii_lower(token.text[i]);
    out->size = token.text.size();
    return true;
  }
  // Build the whole name first (up to a bound), then clip as the server does.
  char buf[kMaxIdentifierBytes * 4 + 4];
  size_t len = 0;
  if (token.kind == TokenKind::kWord) {
    for (char c : token.text) {
      if (len == sizeof(buf)) break;
      buf[len++] = ascii_lower(c);
    }
  } else if (token.kind == TokenKind::kQuotedIdentifier) {
    const std::string_view body = token.text.substr(1, token.text.size() - 2);
    for (size_t i = 0; i < body.size() && len < sizeof(buf); ++i) {
      buf[len++] = body[i];
      if (body[i] == '"') ++i;  // "" stands for one quote
    }
  } else {
    return false;
  }
  len = clip_utf8(buf, len);
  std::memcpy(out->data.data(), buf, len);
  out->size = len;
  return true;
}

bool is_word(const Token& token, std::string_view lower) {
  if (token.kind != TokenKind::kWord || token.text.size() != lower.size()) return false;
  for (size_t i = 0; i < lower.size(); ++i) {
    if (ascii_lower(token.text[i]) != lower[i]) return false;
  }
  return true;
}

bool names(const Token& token, std::string_view lower) {
  if (token.kind == TokenKind::kWord) return is_word(token, lower);
  if (token.kind != TokenKind::kQuotedIdentifier && token.kind != TokenKind::kUnicodeIdentifier) {
    return false;
  }
  if (token.kind == TokenKind::kUnicodeIdentifier) return true;  // could spell anything
  const std::string_view body = token.text.substr(1, token.text.size() - 2);
  if (body.size() != lower.size()) return false;
  for (size_t i = 0; i < lower.size(); ++i) {
    if (ascii_lower(body[i]) != lower[i]) return false;
  }
  return true;
}

}  // namespace pgtandem::policy

#include "policy/sql/lexer.h"

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

namespace pgtandem::policy {
namespace {

struct Lexed {
  TokenKind kind;
  std::string text;
  bool operator==(const Lexed&) const = default;
};

void PrintTo(const Lexed& l, std::ostream* os) {
  *os << static_cast<int>(l.kind) << ":[" << l.text << "]";
}

std::vector<Lexed> lex(std::string_view sql, bool scs = true) {
  Lexer lexer(sql, scs);
  std::vector<Lexed> out;
  for (;;) {
    const Token t = lexer.next();
    if (t.kind == TokenKind::kEnd) break;
    out.push_back({t.kind, std::string(t.text)});
    if (t.kind == TokenKind::kError) break;
  }
  return out;
}

using K = TokenKind;

TEST(Lexer, WordsNumbersPunctuation) {
  EXPECT_EQ(lex("SELECT a1, b$c FROM t;"), (std::vector<Lexed>{{K::kWord, "SELECT"},
                                                               {K::kWord, "a1"},
                                                               {K::kComma, ","},
                                                               {K::kWord, "b$c"},
                                                               {K::kWord, "FROM"},
                                                               {K::kWord, "t"},
                                                               {K::kSemicolon, ";"}}));
  EXPECT_EQ(lex("1 1.5 .5 1e10 1.5e-3 1..2"), (std::vector<Lexed>{{K::kNumber, "1"},
                                                                  {K::kNumber, "1.5"},
                                                                  {K::kNumber, ".5"},
                                                                  {K::kNumber, "1e10"},
                                                                  {K::kNumber, "1.5e-3"},
                                                                  {K::kNumber, "1"},
                                                                  {K::kDot, "."},
                                                                  {K::kNumber, ".2"}}));
  EXPECT_EQ(lex("a::int[1] $1 $23"), (std::vector<Lexed>{{K::kWord, "a"},
                                                         {K::kPunctuation, "::"},
                                                         {K::kWord, "int"},
                                                         {K::kPunctuation, "["},
                                                         {K::kNumber, "1"},
                                                         {K::kPunctuation, "]"},
                                                         {K::kParameter, "$1"},
                                                         {K::kParameter, "$23"}}));
}

TEST(Lexer, CommentsAreSkippedAndNest) {
  EXPECT_EQ(lex("a -- b\nc"), (std::vector<Lexed>{{K::kWord, "a"}, {K::kWord, "c"}}));
  EXPECT_EQ(lex("a /* b /* c */ d */ e"), (std::vector<Lexed>{{K::kWord, "a"}, {K::kWord, "e"}}));
  EXPECT_EQ(lex("a /**/ b"), (std::vector<Lexed>{{K::kWord, "a"}, {K::kWord, "b"}}));
  EXPECT_EQ(lex("a /* */* b */"),
            (std::vector<Lexed>{
                {K::kWord, "a"}, {K::kOperator, "*"}, {K::kWord, "b"}, {K::kOperator, "*/"}}));
  EXPECT_EQ(lex("a /* b /* c */"),
            (std::vector<Lexed>{{K::kWord, "a"}, {K::kError, "/* b /* c */"}}));
  EXPECT_EQ(lex("-- only"), std::vector<Lexed>{});
  // A comment start ends an operator.
  EXPECT_EQ(lex("1 +-- x\n2"),
            (std::vector<Lexed>{{K::kNumber, "1"}, {K::kOperator, "+"}, {K::kNumber, "2"}}));
  EXPECT_EQ(lex("1 */* x */2"),
            (std::vector<Lexed>{{K::kNumber, "1"}, {K::kOperator, "*"}, {K::kNumber, "2"}}));
}

TEST(Lexer, Strings) {
  EXPECT_EQ(lex("'a''b' x"), (std::vector<Lexed>{{K::kString, "'a''b'"}, {K::kWord, "x"}}));
  EXPECT_EQ(lex(R"('a\' x)"), (std::vector<Lexed>{{K::kString, R"('a\')"}, {K::kWord, "x"}}));
  EXPECT_EQ(lex(R"(E'a\'b' x)"), (std::vector<Lexed>{{K::kString, R"(E'a\'b')"}, {K::kWord, "x"}}));
  EXPECT_EQ(lex(R"(e'\\' x)"), (std::vector<Lexed>{{K::kString, R"(e'\\')"}, {K::kWord, "x"}}));
  EXPECT_EQ(lex(R"(U&'\0041' x)"),
            (std::vector<Lexed>{{K::kString, R"(U&'\0041')"}, {K::kWord, "x"}}));
  EXPECT_EQ(lex("B'10' X'1F'"), (std::vector<Lexed>{{K::kString, "B'10'"}, {K::kString, "X'1F'"}}));
  EXPECT_EQ(lex("b'1''0'"), (std::vector<Lexed>{{K::kString, "b'1'"}, {K::kString, "'0'"}}));
  // Only a one-letter prefix makes a prefixed literal.
  EXPECT_EQ(lex("type'x'"), (std::vector<Lexed>{{K::kWord, "type"}, {K::kString, "'x'"}}));
  EXPECT_EQ(lex("N'x'"), (std::vector<Lexed>{{K::kWord, "N"}, {K::kString, "'x'"}}));
  EXPECT_EQ(lex("'abc"), (std::vector<Lexed>{{K::kError, "'abc"}}));
  EXPECT_EQ(lex(R"(E'abc\')"), (std::vector<Lexed>{{K::kError, R"(E'abc\')"}}));
}

TEST(Lexer, StandardConformingStringsOff) {
  EXPECT_EQ(lex(R"('a\'b' x)", /*scs=*/false),
            (std::vector<Lexed>{{K::kString, R"('a\'b')"}, {K::kWord, "x"}}));
  Lexer on(R"('a\b')", true);
  on.next();
  EXPECT_TRUE(on.saw_backslash_in_plain_string());
  Lexer e(R"(E'a\b')", true);
  e.next();
  EXPECT_FALSE(e.saw_backslash_in_plain_string());
}

TEST(Lexer, QuotedIdentifiers) {
  EXPECT_EQ(lex(R"("a""b" "c")"), (std::vector<Lexed>{{K::kQuotedIdentifier, R"("a""b")"},
                                                      {K::kQuotedIdentifier, R"("c")"}}));
  EXPECT_EQ(lex(R"(U&"d\0061t")"), (std::vector<Lexed>{{K::kUnicodeIdentifier, R"(U&"d\0061t")"}}));
  EXPECT_EQ(lex(R"("")"), (std::vector<Lexed>{{K::kError, R"("")"}}));
  EXPECT_EQ(lex(R"("abc)"), (std::vector<Lexed>{{K::kError, R"("abc)"}}));
}

TEST(Lexer, DollarQuotes) {
  EXPECT_EQ(lex("$$a$b$$ x"), (std::vector<Lexed>{{K::kDollarString, "$$a$b$$"}, {K::kWord, "x"}}));
  EXPECT_EQ(lex("$t$ $$ $t $t$"), (std::vector<Lexed>{{K::kDollarString, "$t$ $$ $t $t$"}}));
  EXPECT_EQ(lex("$a$ $ba$ $a$"), (std::vector<Lexed>{{K::kDollarString, "$a$ $ba$ $a$"}}));
  EXPECT_EQ(lex("$_1$x$_1$"), (std::vector<Lexed>{{K::kDollarString, "$_1$x$_1$"}}));
  EXPECT_EQ(lex("$a$ open"), (std::vector<Lexed>{{K::kError, "$a$ open"}}));
  EXPECT_EQ(lex("$ 1"), (std::vector<Lexed>{{K::kOther, "$"}, {K::kNumber, "1"}}));
  EXPECT_EQ(lex("a$$b"), (std::vector<Lexed>{{K::kWord, "a$$b"}}));
}

TEST(Lexer, OtherBytes) {
  EXPECT_EQ(lex("\\"), (std::vector<Lexed>{{K::kOther, "\\"}}));
  EXPECT_EQ(lex(std::string_view("a\0b", 3)),
            (std::vector<Lexed>{{K::kWord, "a"}, {K::kError, std::string("\0b", 2)}}));
  EXPECT_EQ(lex("ñame"), (std::vector<Lexed>{{K::kWord, "ñame"}}));
}

TEST(Lexer, ErrorIsFinal) {
  Lexer lexer("'x");
  EXPECT_EQ(lexer.next().kind, TokenKind::kError);
  EXPECT_EQ(lexer.next().kind, TokenKind::kEnd);
  EXPECT_EQ(lexer.next().kind, TokenKind::kEnd);
}

std::string normalized(std::string_view sql) {
  Lexer lexer(sql);
  Identifier id;
  if (!normalize_identifier(lexer.next(), &id)) return "<none>";
  return std::string(id.view());
}

TEST(Lexer, NormalizeIdentifier) {
  EXPECT_EQ(normalized("NextVal"), "nextval");
  EXPECT_EQ(normalized("\"NextVal\""), "NextVal");
  EXPECT_EQ(normalized("\"a\"\"b\""), "a\"b");
  EXPECT_EQ(normalized("ÄBC"), "Äbc");  // ASCII only, as for UTF-8 databases
  EXPECT_EQ(normalized(R"(U&"x")"), "<none>");
  EXPECT_EQ(normalized("'x'"), "<none>");
  EXPECT_EQ(normalized(std::string(100, 'a')), std::string(63, 'a'));
  // Truncation does not split a UTF-8 character: 62 ASCII bytes then a 2-byte character.
  EXPECT_EQ(normalized(std::string(62, 'a') + "é"), std::string(62, 'a'));
}

TEST(Lexer, WordHelpers) {
  Lexer lexer("SeLeCt \"analyze\" analyze");
  const Token a = lexer.next();
  const Token b = lexer.next();
  const Token c = lexer.next();
  EXPECT_TRUE(is_word(a, "select"));
  EXPECT_FALSE(is_word(b, "analyze"));
  EXPECT_TRUE(names(b, "analyze"));
  EXPECT_TRUE(names(c, "analyze"));
  EXPECT_FALSE(names(a, "selec"));
}

}  // namespace
}  // namespace pgtandem::policy

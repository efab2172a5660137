#include "config/pgpass.h"

#include "tests/unit/config/test_support.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

namespace pgtandem::config {
namespace {

Pgpass parse_ok(std::string_view text) {
  PgpassLoadResult r = parse_pgpass(text);
  EXPECT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors.front().to_string());
  return r.ok() ? *r.pgpass : Pgpass();
}

// The password `lookup` finds, or "<none>".
std::string password(const Pgpass& p, std::string_view host, uint16_t port, std::string_view db,
                     std::string_view user) {
  const PgpassEntry* e = p.lookup(host, port, db, user);
  return e ? e->password : "<none>";
}

void expect_one_error(std::string_view text, uint32_t line, const std::string& fragment) {
  PgpassLoadResult r = parse_pgpass(text, "creds");
  ASSERT_FALSE(r.ok()) << text;
  ASSERT_EQ(r.errors.size(), 1u) << r.errors.front().to_string();
  EXPECT_EQ(r.errors[0].line, line) << r.errors[0].to_string();
  EXPECT_EQ(r.errors[0].file, "creds");
  EXPECT_NE(r.errors[0].message.find(fragment), std::string::npos) << r.errors[0].to_string();
}

TEST(Pgpass, ParsesFieldsAndLineNumbers) {
  Pgpass p = parse_ok(
      "# pgtandem's credentials\n"
      "\n"
      "db-old.internal:5432:app:mirror:s3cret\n"
      "   \n"
      "*:*:*:*:fallback\n");
  ASSERT_EQ(p.entries().size(), 2u);
  const PgpassEntry& e = p.entries()[0];
  EXPECT_EQ(e.host, "db-old.internal");
  EXPECT_EQ(e.port, "5432");
  EXPECT_EQ(e.database, "app");
  EXPECT_EQ(e.user, "mirror");
  EXPECT_EQ(e.password, "s3cret");
  EXPECT_EQ(e.line, 3u);
  const PgpassEntry& w = p.entries()[1];
  EXPECT_FALSE(w.host);
  EXPECT_FALSE(w.port);
  EXPECT_FALSE(w.database);
  EXPECT_FALSE(w.user);
  EXPECT_EQ(w.password, "fallback");
  EXPECT_EQ(w.line, 5u);
}

TEST(Pgpass, FirstMatchWins) {
  Pgpass p = parse_ok(
      "h1:5432:app:alice:first\n"
      "h1:5432:*:alice:second\n"
      "*:*:*:alice:third\n"
      "*:*:*:*:last\n");
  EXPECT_EQ(password(p, "h1", 5432, "app", "alice"), "first");
  EXPECT_EQ(password(p, "h1", 5432, "other", "alice"), "second");
  EXPECT_EQ(password(p, "h2", 5432, "app", "alice"), "third");
  EXPECT_EQ(password(p, "h1", 5433, "app", "alice"), "third");
  EXPECT_EQ(password(p, "h1", 5432, "app", "bob"), "last");
  EXPECT_EQ(p.lookup("h1", 5432, "app", "alice")->line, 1u);
}

TEST(Pgpass, NoMatch) {
  Pgpass p = parse_ok("h1:5432:app:alice:pw\n");
  EXPECT_EQ(password(p, "h1", 5432, "app", "Alice"), "<none>");  // case-sensitive
  EXPECT_EQ(password(p, "H1", 5432, "app", "alice"), "<none>");
  EXPECT_EQ(password(p, "h1", 15432, "app", "alice"), "<none>");
  EXPECT_EQ(password(p, "h1", 5432, "ap", "alice"), "<none>");
  EXPECT_EQ(password(Pgpass(), "h1", 5432, "app", "alice"), "<none>");
}

TEST(Pgpass, EscapedColonsAndBackslashes) {
  Pgpass p = parse_ok(R"(h\:x:5432:d\\b:u\:1:pa\:ss\\word
\*:*:db:\*:star
h:*:*:u:p\w\d
)");
  ASSERT_EQ(p.entries().size(), 3u);
  EXPECT_EQ(password(p, "h:x", 5432, "d\\b", "u:1"), "pa:ss\\word");
  // `\*` is a literal star, not a wildcard.
  EXPECT_EQ(p.entries()[1].host, "*");
  EXPECT_EQ(p.entries()[1].user, "*");
  EXPECT_EQ(password(p, "*", 1, "db", "*"), "star");
  EXPECT_EQ(password(p, "x", 1, "db", "*"), "<none>");
  // Any escaped character stands for itself (libpq).
  EXPECT_EQ(password(p, "h", 1, "x", "u"), "pwd");
}

TEST(Pgpass, StarIsWildcardOnlyAsAWholeField) {
  Pgpass p = parse_ok("h*:5432:*x:u:pw\nh:5432:db:u:*\n");
  EXPECT_EQ(p.entries()[0].host, "h*");
  EXPECT_EQ(p.entries()[0].database, "*x");
  EXPECT_EQ(password(p, "hx", 5432, "*x", "u"), "<none>");
  EXPECT_EQ(password(p, "h*", 5432, "*x", "u"), "pw");
  // A `*` password is the password "*".
  EXPECT_EQ(password(p, "h", 5432, "db", "u"), "*");
}

TEST(Pgpass, EmptyFieldsAndPassword) {
  Pgpass p = parse_ok("h:5432:db:u:\n:5432:db:u:x\n");
  EXPECT_EQ(password(p, "h", 5432, "db", "u"), "");
  EXPECT_EQ(password(p, "", 5432, "db", "u"), "x");
}

TEST(Pgpass, CrLfAndNoFinalNewline) {
  Pgpass p = parse_ok("h:5432:db:u:one\r\n#c\r\nh:5433:db:u:two");
  EXPECT_EQ(password(p, "h", 5432, "db", "u"), "one");
  EXPECT_EQ(password(p, "h", 5433, "db", "u"), "two");
  EXPECT_EQ(p.entries()[1].line, 3u);
}

TEST(Pgpass, EmptyFile) {
  EXPECT_TRUE(parse_ok("").entries().empty());
  EXPECT_TRUE(parse_ok("\n\n# only comments\n").entries().empty());
}

TEST(Pgpass, TooFewFields) {
  expect_one_error("# c\nh:5432:db:u\n", 2, "found 4 fields");
  expect_one_error("justtext\n", 1, "found 1 field");
  expect_one_error("h\\:5432:db:u:pw\n", 1, "found 4 fields");
}

TEST(Pgpass, UnescapedColonInPassword) {
  expect_one_error("h:5432:db:u:pa:ss\n", 1, "unescaped ':' in the password");
}

TEST(Pgpass, LoneBackslashAtEnd) {
  expect_one_error("h:5432:db:u:pw\\\n", 1, "lone '\\'");
  expect_one_error("h:5432:db:u:pw\\", 1, "lone '\\'");
}

TEST(Pgpass, BadPort) {
  expect_one_error("h:54a2:db:u:pw\n", 1, "port");
  expect_one_error("h:65536:db:u:pw\n", 1, "port");
  expect_one_error("h:0:db:u:pw\n", 1, "port");
  expect_one_error("h:05432:db:u:pw\n", 1, "leading zeros");
  expect_one_error("h::db:u:pw\n", 1, "port");
  EXPECT_TRUE(parse_pgpass("h:65535:db:u:pw\nh:1:db:u:pw\n").ok());
}

TEST(Pgpass, NulByte) { expect_one_error(std::string_view("h:5432:db:u:p\0w\n", 16), 1, "NUL"); }

TEST(Pgpass, EveryErrorIsReportedAndNoEntriesAreKept) {
  PgpassLoadResult r = parse_pgpass("ok:1:d:u:p\nbad\nok:2:d:u:p\nh:x:d:u:p\n", "f");
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 2u);
  EXPECT_EQ(r.errors[0].line, 2u);
  EXPECT_EQ(r.errors[1].line, 4u);
  EXPECT_EQ(r.errors[0].to_string().rfind("f:2:", 0), 0u) << r.errors[0].to_string();
}

class PgpassFile : public testing::SecretFileTest {};

TEST_F(PgpassFile, LoadsAPrivateFile) {
  write("h:5432:db:u:pw\n", 0600);
  PgpassLoadResult r = load_pgpass_file(path_);
  ASSERT_TRUE(r.ok()) << r.errors.front().to_string();
  EXPECT_EQ(password(*r.pgpass, "h", 5432, "db", "u"), "pw");
}

TEST_F(PgpassFile, ErrorsNameTheFile) {
  write("h:5432:db:u\n", 0600);
  PgpassLoadResult r = load_pgpass_file(path_);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].file, path_);
  EXPECT_EQ(r.errors[0].line, 1u);
}

TEST_F(PgpassFile, RefusesGroupOrWorldReadable) {
  write("h:5432:db:u:pw\n", 0640);
  PgpassLoadResult r = load_pgpass_file(path_);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.errors[0].message.find("group or world access"), std::string::npos);
  write("h:5432:db:u:pw\n", 0604);
  EXPECT_FALSE(load_pgpass_file(path_).ok());
  EXPECT_TRUE(load_pgpass_file(path_, /*require_private=*/false).ok());
}

TEST_F(PgpassFile, MissingFileAndDirectory) {
  PgpassLoadResult r = load_pgpass_file(path_ + ".missing");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.errors[0].message.find("cannot read"), std::string::npos) << r.errors[0].message;
  PgpassLoadResult d = load_pgpass_file("/tmp");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.errors[0].message.find("not a regular file"), std::string::npos);
}

}  // namespace
}  // namespace pgtandem::config

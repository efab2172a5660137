#include "config/userlist.h"

#include "protocol/base64.h"
#include "tests/unit/config/test_support.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

namespace pgtandem::config {
namespace {

// RFC 7677's example user: password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, 4096 iterations.
constexpr std::string_view kRfcVerifier =
    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";

Userlist parse_ok(std::string_view text) {
  UserlistLoadResult r = parse_userlist(text);
  EXPECT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors.front().to_string());
  return r.ok() ? *r.userlist : Userlist();
}

void expect_error(std::string_view text, uint32_t line, uint32_t column,
                  const std::string& fragment) {
  UserlistLoadResult r = parse_userlist(text, "users.txt");
  ASSERT_FALSE(r.ok()) << text;
  ASSERT_EQ(r.errors.size(), 1u) << r.errors.front().to_string();
  EXPECT_EQ(r.errors[0].file, "users.txt");
  EXPECT_EQ(r.errors[0].line, line) << r.errors[0].to_string();
  EXPECT_EQ(r.errors[0].column, column) << r.errors[0].to_string();
  EXPECT_NE(r.errors[0].message.find(fragment), std::string::npos) << r.errors[0].to_string();
}

TEST(Userlist, ClassifiesSecretsLikePostgres) {
  Userlist u = parse_ok(std::string("; PgBouncer-style comment\n"
                                    "# another\n"
                                    "\n"
                                    "\"alice\" \"") +
                        std::string(kRfcVerifier) +
                        "\"\n"
                        "\"bob\" \"md5e8a48653851e28c69d0506508fb27fc5\"\r\n"
                        "  \"carol\"\t\"plain secret\"  \n"
                        "\"d\"\"q\" \"md5NOTHEX0000000000000000000000000\"\n");
  ASSERT_EQ(u.size(), 4u);
  const UserEntry* a = u.find("alice");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->kind, SecretKind::kScram);
  EXPECT_EQ(a->scram.iterations, 4096u);
  EXPECT_EQ(a->scram.salt.size(), 16u);
  EXPECT_EQ(a->scram.stored_key.size(), 32u);
  EXPECT_EQ(a->scram.server_key.size(), 32u);
  EXPECT_EQ(a->line, 4u);
  const UserEntry* b = u.find("bob");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->kind, SecretKind::kMd5);
  EXPECT_EQ(b->secret, "md5e8a48653851e28c69d0506508fb27fc5");
  const UserEntry* c = u.find("carol");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->kind, SecretKind::kPlain);
  EXPECT_EQ(c->secret, "plain secret");
  // `""` is a quote; an md5-looking secret that is not 32 lowercase hex digits is a password.
  const UserEntry* d = u.find("d\"q");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->kind, SecretKind::kPlain);
  EXPECT_EQ(u.find("nobody"), nullptr);
  EXPECT_EQ(u.find("Alice"), nullptr);  // case-sensitive, like role names
}

TEST(Userlist, EmptyFileIsValid) {
  EXPECT_EQ(parse_ok("").size(), 0u);
  EXPECT_EQ(parse_ok("\n; nothing\n").size(), 0u);
}

TEST(Userlist, ErrorsHaveLineAndColumn) {
  expect_error("\"a\" \"x\"\nalice secret\n", 2, 1, "expected a field in double quotes");
  expect_error("\"alice\" \"sec\n", 1, 9, "unterminated quoted field");
  expect_error("\"alice\n", 1, 1, "unterminated quoted field");
  expect_error("\"alice\"\n", 1, 8, "secret in double quotes");
  expect_error("\"alice\"x \"y\"\n", 1, 8, "secret in double quotes");
  expect_error("\"alice\" secret\n", 1, 9, "expected a field in double quotes");
  expect_error("\"alice\" \"s\" extra\n", 1, 13, "unexpected text after the secret");
  expect_error("\"\" \"s\"\n", 1, 1, "empty user name");
  expect_error("  \"alice\" \"\"\n", 1, 11, "empty secret");
  expect_error("\"a\" \"x\"\n\"a\" \"y\"\n", 2, 1, "duplicate user \"a\" (first on line 1)");
  expect_error(std::string_view("\"a\" \"x\0\"\n", 9), 1, 7, "NUL byte");
  expect_error("\"a\" \"SCRAM-SHA-256$4096:c2FsdA==$short:short\"\n", 1, 5,
               "malformed SCRAM-SHA-256 verifier");
}

TEST(Userlist, EveryBadLineIsReportedAndNothingLoads) {
  UserlistLoadResult r = parse_userlist("bad\n\"ok\" \"x\"\n\"also bad\n");
  EXPECT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 2u);
  EXPECT_EQ(r.errors[0].line, 1u);
  EXPECT_EQ(r.errors[1].line, 3u);
}

TEST(Userlist, ScramSecretParsing) {
  auto s = parse_scram_secret(kRfcVerifier);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->iterations, 4096u);
  EXPECT_FALSE(
      parse_scram_secret("SCRAM-SHA-256$0:W22ZaJ0SNY7soEsUEjb6gQ==$"
                         "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
                         "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="));
  EXPECT_FALSE(
      parse_scram_secret("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
                         "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="));
  EXPECT_FALSE(
      parse_scram_secret("SCRAM-SHA-256$4096:!!!!$"
                         "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
                         "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="));
  EXPECT_FALSE(
      parse_scram_secret("SCRAM-SHA-256$99999999999:W22ZaJ0SNY7soEsUEjb6gQ==$"
                         "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
                         "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="));
  EXPECT_FALSE(parse_scram_secret("md5abc"));
  EXPECT_TRUE(is_md5_secret("md5e8a48653851e28c69d0506508fb27fc5"));
  EXPECT_FALSE(is_md5_secret("md5E8A48653851E28C69D0506508FB27FC5"));
  EXPECT_FALSE(is_md5_secret("md5e8a48653851e28c69d0506508fb27fc"));
}

TEST(Userlist, Base64IsStrict) {
  EXPECT_EQ(protocol::base64_decode("cGVuY2ls"), "pencil");
  EXPECT_EQ(protocol::base64_decode("YQ=="), "a");
  EXPECT_EQ(protocol::base64_decode("YWI="), "ab");
  EXPECT_FALSE(protocol::base64_decode("YQ"));
  EXPECT_FALSE(protocol::base64_decode("YR=="));  // stray bits
  EXPECT_FALSE(protocol::base64_decode("Y Q=="));
}

class UserlistFile : public testing::SecretFileTest {};

TEST_F(UserlistFile, LoadsAPrivateFile) {
  write("\"alice\" \"pw\"\n", 0600);
  UserlistLoadResult r = load_userlist_file(path_);
  ASSERT_TRUE(r.ok());
  EXPECT_NE(r.userlist->find("alice"), nullptr);
}

TEST_F(UserlistFile, RefusesGroupOrWorldAccess) {
  for (mode_t mode : {0640, 0604, 0660}) {
    write("\"alice\" \"pw\"\n", mode);
    UserlistLoadResult r = load_userlist_file(path_);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.errors[0].message.find("group or world access"), std::string::npos);
    EXPECT_EQ(r.errors[0].file, path_);
  }
  write("\"alice\" \"pw\"\n", 0644);
  EXPECT_TRUE(load_userlist_file(path_, /*require_private=*/false).ok());
}

TEST_F(UserlistFile, MissingFileAndErrorsNameTheFile) {
  UserlistLoadResult r = load_userlist_file(path_ + ".missing");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.errors[0].to_string().find("cannot read userlist"), std::string::npos);
  write("\"alice\"\n", 0600);
  r = load_userlist_file(path_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.errors[0].to_string().rfind(path_ + ":1:8: ", 0), 0u) << r.errors[0].to_string();
}

}  // namespace
}  // namespace pgtandem::config

#include "policy/shadow/shadow_request.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "protocol/framing.h"
#include "protocol/messages.h"
#include "tests/support/messages.h"

namespace pgtandem::policy {
namespace {

using test::close_msg;
using test::describe;
using test::execute;
using test::parse;
using test::sync_msg;

// This file's Bind: one text parameter "42", no result format codes.
std::string bind(std::string_view portal, std::string_view statement) {
  return test::bind_msg(portal, statement, {"42"}, {});
}

// The messages of `bytes` as "type:field|field" strings, for readable comparisons.
std::vector<std::string> render(const std::string &bytes) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos + protocol::kHeaderSize <= bytes.size()) {
    const char type = bytes[pos];
    const uint32_t len = protocol::read_u32(bytes.data() + pos + 1);
    std::string body = bytes.substr(pos + protocol::kHeaderSize, len - 4);
    for (char &c : body) {
      if (c == '\0') c = '|';
      else if (static_cast<unsigned char>(c) < 32) c = '.';
    }
    out.push_back(std::string(1, type) + ":" + body);
    pos += len + 1;
  }
  EXPECT_EQ(pos, bytes.size());
  return out;
}

struct Prepared {
  std::map<std::string, std::string, std::less<>> parses;
  ParseLookup lookup() {
    return [this](std::string_view name) -> const std::string * {
      auto it = parses.find(name);
      return it == parses.end() ? nullptr : &it->second;
    };
  }
};

TEST(ShadowRequest, SimpleQueryAndUnnamedBatchesAreCopiedAsTheyAre) {
  Prepared p;
  std::string out;
  const std::string query = test::query("SELECT 1");
  ASSERT_TRUE(shadow_request(query, p.lookup(), &out));
  EXPECT_EQ(out, query);
  const std::string batch = parse("", "SELECT $1", {23}) + bind("", "") + describe('P', "") +
                            execute("") + sync_msg();
  ASSERT_TRUE(shadow_request(batch, p.lookup(), &out));
  EXPECT_EQ(out, batch);
}

TEST(ShadowRequest, BindOfAPreparedStatementParsesItUnnamedFirst) {
  Prepared p;
  p.parses["P0_1"] = parse("P0_1", "SELECT abalance FROM pgbench_accounts WHERE aid = $1", {23});
  std::string out;
  const std::string batch = bind("", "P0_1") + describe('P', "") + execute("") + sync_msg();
  ASSERT_TRUE(shadow_request(batch, p.lookup(), &out));
  const auto r = render(out);
  ASSERT_EQ(r.size(), 5u);
  EXPECT_EQ(r[0].substr(0, 2), "P:");
  EXPECT_EQ(r[0].substr(0, 3), "P:|") << "the unnamed statement";
  EXPECT_NE(r[0].find("SELECT abalance FROM pgbench_accounts WHERE aid = $1"), std::string::npos);
  EXPECT_EQ(r[1].substr(0, 4), "B:||") << "bound to the unnamed statement";
  EXPECT_NE(r[1].find("42"), std::string::npos) << "parameters kept";
  EXPECT_EQ(r[2], "D:P|");
  EXPECT_EQ(r[3].substr(0, 3), "E:|");
  EXPECT_EQ(r[4], "S:");
}

TEST(ShadowRequest, ParseInTheBatchIsUsedAndNotLookedUp) {
  Prepared p;  // nothing prepared before: pgbench -M prepared's first execution
  std::string out;
  const std::string batch = parse("s1", "SELECT $1::int", {23}) + bind("", "s1") +
                            describe('S', "s1") + execute("") + sync_msg();
  ASSERT_TRUE(shadow_request(batch, p.lookup(), &out));
  const auto r = render(out);
  ASSERT_EQ(r.size(), 5u);
  EXPECT_EQ(r[0].substr(0, 3), "P:|");
  EXPECT_EQ(r[1].substr(0, 4), "B:||");
  EXPECT_EQ(r[2], "D:S|") << "Describe of the statement names the unnamed one; no second Parse";
  EXPECT_EQ(r[3].substr(0, 3), "E:|");
}

TEST(ShadowRequest, TwoStatementsInOneBatchEachParsedBeforeUse) {
  Prepared p;
  p.parses["a"] = parse("a", "SELECT 1");
  p.parses["b"] = parse("b", "SELECT 2");
  std::string out;
  const std::string batch = bind("", "a") + execute("") + bind("", "b") + execute("") +
                            bind("", "a") + execute("") + sync_msg();
  ASSERT_TRUE(shadow_request(batch, p.lookup(), &out));
  const auto r = render(out);
  ASSERT_EQ(r.size(), 10u);
  EXPECT_NE(r[0].find("SELECT 1"), std::string::npos);
  EXPECT_EQ(r[1].substr(0, 4), "B:||");
  EXPECT_NE(r[3].find("SELECT 2"), std::string::npos);
  EXPECT_NE(r[6].find("SELECT 1"), std::string::npos) << "a parsed again after b replaced it";
  EXPECT_EQ(r[9], "S:");
}

TEST(ShadowRequest, RepeatedBindOfTheSameStatementParsesOnce) {
  Prepared p;
  p.parses["a"] = parse("a", "SELECT 1");
  std::string out;
  ASSERT_TRUE(shadow_request(bind("", "a") + execute("") + bind("", "a") + execute("") +
                                 sync_msg(),
                             p.lookup(), &out));
  EXPECT_EQ(render(out).size(), 6u);
}

TEST(ShadowRequest, ClientUnnamedParseAfterANamedOneIsRespected) {
  Prepared p;
  p.parses["a"] = parse("a", "SELECT 1");
  std::string out;
  const std::string batch = bind("", "a") + execute("") + parse("", "SELECT 3") + bind("", "") +
                            execute("") + bind("", "a") + execute("") + sync_msg();
  ASSERT_TRUE(shadow_request(batch, p.lookup(), &out));
  const auto r = render(out);
  ASSERT_EQ(r.size(), 10u);
  EXPECT_NE(r[3].find("SELECT 3"), std::string::npos);
  EXPECT_NE(r[6].find("SELECT 1"), std::string::npos) << "a parsed again: the client replaced it";
}

TEST(ShadowRequest, CloseIsLeftOut) {
  Prepared p;
  std::string out;
  ASSERT_TRUE(shadow_request(close_msg('S', "x") + test::query("SELECT 1"), p.lookup(), &out));
  EXPECT_EQ(out, test::query("SELECT 1"));
}

TEST(ShadowRequest, UnknownStatementOrMalformedBytesGiveNothingToShadow) {
  Prepared p;
  std::string out;
  EXPECT_FALSE(shadow_request(bind("", "missing") + execute("") + sync_msg(), p.lookup(), &out));
  EXPECT_FALSE(shadow_request(describe('S', "missing") + sync_msg(), p.lookup(), &out));
  EXPECT_FALSE(shadow_request(bind("", "missing") + sync_msg(), nullptr, &out));
  std::string truncated = test::query("SELECT 1");
  truncated.pop_back();
  EXPECT_FALSE(shadow_request(truncated, p.lookup(), &out));
  EXPECT_FALSE(shadow_request(std::string("Q\0\0", 3), p.lookup(), &out));
  std::string bad_len = test::query("SELECT 1");
  bad_len[4] = 2;  // length 2 < 4
  EXPECT_FALSE(shadow_request(bad_len, p.lookup(), &out));
  std::string bad_bind = test::frame('B', "no-terminators");
  EXPECT_FALSE(shadow_request(bad_bind, p.lookup(), &out));
  // A lookup answering with a message that is not a Parse.
  p.parses["q"] = test::query("SELECT 1");
  EXPECT_FALSE(shadow_request(bind("", "q") + sync_msg(), p.lookup(), &out));
}

}  // namespace
}  // namespace pgtandem::policy

// TransactionBatch: which mirror units go to the target as one request, and the exact bytes.
#include "policy/mirror/mirror_batch.h"

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/message_types.h"
#include "protocol/messages.h"
#include "tests/support/messages.h"

namespace pgtandem::policy {
namespace {

namespace proto = protocol;
using test::query;
using test::sync_msg;

// Bind (no parameters, no result format codes), Execute, Sync.
std::string bind_execute_sync(std::string_view statement) {
  return test::bind_msg("", statement, {}, {}) + test::execute() + test::sync_msg();
}
// The unit alone as one request, into `out`; false when it must be sent as it is (what the mirror
// link does with a unit that has nothing queued behind it).
bool coalesce_transaction(const MirrorUnit& unit, std::string& out) {
  TransactionBatch batch;
  if (unit.responses < 2 || !batch.add(unit)) return false;
  out = batch.request();
  return true;
}

Outcome ok(std::string tag) { return Outcome{std::move(tag), {}}; }
Outcome error(std::string sqlstate) { return Outcome{{}, std::move(sqlstate)}; }

MirrorUnit simple_unit(std::initializer_list<std::string_view> statements,
                       std::vector<Outcome> outcomes) {
  MirrorUnit u;
  for (auto s : statements) {
    u.bytes += query(s);
    ++u.responses;
  }
  u.primary = std::move(outcomes);
  u.transaction = true;
  return u;
}

// The messages of `bytes`, as (type, whole message).
std::vector<std::pair<char, std::string>> messages(std::string_view bytes) {
  std::vector<std::pair<char, std::string>> out;
  for (size_t pos = 0; pos + 5 <= bytes.size();) {
    const uint32_t len = proto::read_u32(bytes.data() + pos + 1);
    out.emplace_back(bytes[pos], std::string(bytes.substr(pos, 1 + len)));
    pos += 1 + len;
  }
  return out;
}

TEST(MirrorBatch, SimpleTransactionBecomesOneQuery) {
  MirrorUnit u = simple_unit(
      {"BEGIN;", "UPDATE a SET v = v + 1 WHERE id = 1;", "INSERT INTO h VALUES (1) -- trailing",
       "END;"},
      {ok("BEGIN"), ok("UPDATE 1"), ok("INSERT 0 1"), ok("COMMIT")});
  std::string out;
  ASSERT_TRUE(coalesce_transaction(u, out));
  // One Query; the `--` comment ends at the newline, before the separator.
  EXPECT_EQ(out, query("BEGIN;\n;UPDATE a SET v = v + 1 WHERE id = 1;\n;"
                       "INSERT INTO h VALUES (1) -- trailing\n;END;\n;"));
}

TEST(MirrorBatch, StartTransactionAndMultiStatementQueriesToo) {
  MirrorUnit u = simple_unit({"START TRANSACTION; UPDATE a SET v = 1", "COMMIT"},
                             {ok("START TRANSACTION"), ok("UPDATE 3"), ok("COMMIT")});
  std::string out;
  ASSERT_TRUE(coalesce_transaction(u, out));
  EXPECT_EQ(out, query("START TRANSACTION; UPDATE a SET v = 1\n;COMMIT\n;"));
}

TEST(MirrorBatch, ExtendedTransactionKeepsOnlyTheLastSync) {
  MirrorUnit u;
  std::string parse;
  proto::encode_parse(parse, "P0_1", "UPDATE a SET v = v + $1 WHERE id = $2", {});
  u.bytes = bind_execute_sync("P0_0") + parse + bind_execute_sync("P0_1") +
            bind_execute_sync("P0_2");
  u.responses = 3;
  u.primary = {ok("BEGIN"), ok("UPDATE 1"), ok("COMMIT")};
  std::string out;
  ASSERT_TRUE(coalesce_transaction(u, out));
  auto in = messages(u.bytes);
  auto got = messages(out);
  std::vector<std::pair<char, std::string>> want;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i].first != proto::frontend::kSync || i + 1 == in.size()) want.push_back(in[i]);
  }
  EXPECT_EQ(got, want);
  EXPECT_EQ(got.back().first, proto::frontend::kSync);
  EXPECT_EQ(got.size(), in.size() - 2);
}

TEST(MirrorBatch, OutputBufferIsReplaced) {
  MirrorUnit u = simple_unit({"BEGIN", "COMMIT"}, {ok("BEGIN"), ok("COMMIT")});
  std::string out = "left over from the previous unit";
  ASSERT_TRUE(coalesce_transaction(u, out));
  EXPECT_EQ(out, query("BEGIN\n;COMMIT\n;"));
}

TEST(MirrorBatch, LeftAsTheyAre) {
  std::string out;
  struct Case {
    const char* why;
    MirrorUnit unit;
  };
  std::vector<Case> cases;
  // A statement failed on the primary (then ROLLBACK TO SAVEPOINT): it must fail alone on the
  // mirror, and what follows must still run.
  cases.push_back({"error on the primary",
                   simple_unit({"BEGIN", "SAVEPOINT s", "INSERT INTO t VALUES (1)",
                                "ROLLBACK TO s", "COMMIT"},
                               {ok("BEGIN"), ok("SAVEPOINT"), error("23505"), ok("ROLLBACK"),
                                ok("COMMIT")})});
  cases.push_back({"ROLLBACK TO without an error",
                   simple_unit({"BEGIN", "SAVEPOINT s", "ROLLBACK TO s", "COMMIT"},
                               {ok("BEGIN"), ok("SAVEPOINT"), ok("ROLLBACK"), ok("COMMIT")})});
  cases.push_back({"autocommit statement",
                   simple_unit({"INSERT INTO t VALUES (1)"}, {ok("INSERT 0 1")})});
  cases.push_back({"two autocommit statements in one unit",
                   simple_unit({"INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (2)"},
                               {ok("INSERT 0 1"), ok("INSERT 0 1")})});
  cases.push_back({"does not end with COMMIT (COMMIT AND CHAIN released the first part)",
                   simple_unit({"BEGIN", "UPDATE a SET v = 1"}, {ok("BEGIN"), ok("UPDATE 1")})});
  cases.push_back({"a second transaction inside",
                   simple_unit({"BEGIN", "COMMIT", "BEGIN", "COMMIT"},
                               {ok("BEGIN"), ok("COMMIT"), ok("BEGIN"), ok("COMMIT")})});
  cases.push_back({"PREPARE TRANSACTION",
                   simple_unit({"BEGIN", "PREPARE TRANSACTION 'x'", "COMMIT PREPARED 'x'"},
                               {ok("BEGIN"), ok("PREPARE TRANSACTION"), ok("COMMIT")})});
  cases.push_back({"changes how the rest is lexed",
                   simple_unit({"BEGIN", "SET LOCAL standard_conforming_strings = off",
                                "INSERT INTO t VALUES ('a\\'b')", "COMMIT"},
                               {ok("BEGIN"), ok("SET"), ok("INSERT 0 1"), ok("COMMIT")})});
  cases.push_back({"backslash_quote, any case",
                   simple_unit({"BEGIN", "SET LOCAL Backslash_Quote = on", "COMMIT"},
                               {ok("BEGIN"), ok("SET"), ok("COMMIT")})});
  {
    MirrorUnit u = simple_unit({"BEGIN", "COPY t FROM STDIN", "COMMIT"},
                               {ok("BEGIN"), ok("COPY 1"), ok("COMMIT")});
    std::string copy;
    proto::encode(copy, proto::CopyData{"1\n"});
    proto::encode(copy, proto::CopyDone{});
    const auto first_two = query("BEGIN").size() + query("COPY t FROM STDIN").size();
    u.bytes.insert(first_two, copy);
    cases.push_back({"COPY data", std::move(u)});
  }
  {
    MirrorUnit u = simple_unit({"BEGIN"}, {ok("BEGIN"), ok("UPDATE 1"), ok("COMMIT")});
    u.bytes += bind_execute_sync("P0_1") + bind_execute_sync("P0_2");
    u.responses = 3;
    cases.push_back({"simple and extended mixed", std::move(u)});
  }
  {
    MirrorUnit u;
    u.bytes = bind_execute_sync("P0_0") + bind_execute_sync("P0_1");
    u.bytes.resize(u.bytes.size() - sync_msg().size());  // ends with an Execute
    u.responses = 2;
    u.primary = {ok("BEGIN"), ok("COMMIT")};
    cases.push_back({"extended without a final Sync", std::move(u)});
  }
  {
    MirrorUnit u = simple_unit({"BEGIN", "COMMIT"}, {ok("BEGIN"), ok("COMMIT")});
    u.bytes.pop_back();  // truncated message
    cases.push_back({"malformed bytes", std::move(u)});
  }
  {
    MirrorUnit u = simple_unit({"BEGIN", "COMMIT"}, {ok("BEGIN"), ok("COMMIT")});
    u.bytes[u.bytes.size() - 2] = '\0';  // "COMMI\0\0": a NUL inside the text
    cases.push_back({"NUL inside a Query text", std::move(u)});
  }
  for (const auto& c : cases) {
    EXPECT_FALSE(coalesce_transaction(c.unit, out)) << c.why;
  }
}

TEST(MirrorBatch, SeveralTransactionsOfASessionJoinOneRequest) {
  TransactionBatch batch;
  EXPECT_EQ(batch.kind(), TransactionBatch::Kind::kEmpty);
  ASSERT_TRUE(batch.add(simple_unit({"BEGIN", "UPDATE a SET v = 1", "COMMIT"},
                                    {ok("BEGIN"), ok("UPDATE 1"), ok("COMMIT")})));
  ASSERT_TRUE(batch.add(simple_unit({"BEGIN; INSERT INTO h VALUES (2); COMMIT"},
                                    {ok("BEGIN"), ok("INSERT 0 1"), ok("COMMIT")})));
  EXPECT_EQ(batch.units(), 2u);
  EXPECT_EQ(batch.kind(), TransactionBatch::Kind::kSimple);
  EXPECT_EQ(batch.request(), query("BEGIN\n;UPDATE a SET v = 1\n;COMMIT\n;"
                                   "BEGIN; INSERT INTO h VALUES (2); COMMIT\n;"));
  // An extended-protocol transaction does not join simple ones (nor the reverse), nor does a
  // unit that cannot be joined at all; the batch stays as it was.
  MirrorUnit extended;
  extended.bytes = bind_execute_sync("P0_0") + bind_execute_sync("P0_1");
  extended.responses = 2;
  extended.primary = {ok("BEGIN"), ok("COMMIT")};
  const std::string before = batch.request();
  EXPECT_FALSE(batch.add(extended));
  EXPECT_FALSE(batch.add(simple_unit({"SET search_path = x"}, {ok("SET")})));
  EXPECT_EQ(batch.units(), 2u);
  EXPECT_EQ(batch.request(), before);

  batch.clear();
  EXPECT_EQ(batch.units(), 0u);
  ASSERT_TRUE(batch.add(extended));
  ASSERT_TRUE(batch.add(extended));
  EXPECT_EQ(batch.kind(), TransactionBatch::Kind::kExtended);
  // Four Bind/Execute pairs, one Sync.
  auto got = messages(batch.request());
  ASSERT_EQ(got.size(), 9u);
  for (size_t i = 0; i + 1 < got.size(); ++i) EXPECT_NE(got[i].first, proto::frontend::kSync) << i;
  EXPECT_EQ(got.back().first, proto::frontend::kSync);
}

// add() checks and copies in one pass: a unit found unfit after some of its messages were
// appended (a later text changes the lexing, a message of the other protocol, COPY data) leaves
// the batch exactly as it was, empty or not.
TEST(MirrorBatch, AUnitRefusedMidwayLeavesTheBatchAsItWas) {
  const MirrorUnit first = simple_unit({"BEGIN", "UPDATE a SET v = 1", "COMMIT"},
                                       {ok("BEGIN"), ok("UPDATE 1"), ok("COMMIT")});
  MirrorUnit lexing = simple_unit({"BEGIN", "SET standard_conforming_strings = off", "COMMIT"},
                                  {ok("BEGIN"), ok("SET"), ok("COMMIT")});
  MirrorUnit mixed = simple_unit({"BEGIN", "UPDATE a SET v = 2"}, {ok("BEGIN"), ok("UPDATE 1")});
  mixed.bytes += bind_execute_sync("P0_2");
  mixed.primary.push_back(ok("COMMIT"));
  ++mixed.responses;
  MirrorUnit copy = simple_unit({"BEGIN", "COPY a FROM STDIN"}, {ok("BEGIN"), ok("COPY 1")});
  copy.bytes += test::copy_data("1\n") + test::copy_done() + query("COMMIT");
  copy.primary.push_back(ok("COMMIT"));
  ++copy.responses;
  MirrorUnit extended_then_simple;
  extended_then_simple.bytes = bind_execute_sync("P0_0") + query("COMMIT");
  extended_then_simple.responses = 2;
  extended_then_simple.primary = {ok("BEGIN"), ok("COMMIT")};

  for (bool empty : {true, false}) {
    SCOPED_TRACE(empty ? "empty batch" : "one unit in the batch");
    TransactionBatch batch;
    if (!empty) {
      ASSERT_TRUE(batch.add(first));
    }
    const std::string before = batch.request();
    const auto kind = batch.kind();
    for (const MirrorUnit* u : {&lexing, &mixed, &copy, &extended_then_simple}) {
      EXPECT_FALSE(batch.add(*u));
      EXPECT_EQ(batch.request(), before);
      EXPECT_EQ(batch.kind(), kind);
      EXPECT_EQ(batch.units(), empty ? 0u : 1u);
    }
    // And it still takes a unit that fits.
    ASSERT_TRUE(batch.add(first));
    EXPECT_EQ(batch.units(), empty ? 1u : 2u);
    EXPECT_EQ(batch.request(), empty ? query("BEGIN\n;UPDATE a SET v = 1\n;COMMIT\n;")
                                     : query("BEGIN\n;UPDATE a SET v = 1\n;COMMIT\n;"
                                             "BEGIN\n;UPDATE a SET v = 1\n;COMMIT\n;"));
  }
}

}  // namespace
}  // namespace pgtandem::policy

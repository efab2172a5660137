// How the replay engine sends an entry (proxy/mirror/replay_units.h): text only, no connection.
// The lone BEGIN and COMMIT requests a grouped entry drops, the unit's statements without their
// Syncs, the wrap chosen from the primary's answers, and the record that refuses a seq it holds.
#include "proxy/mirror/replay_units.h"

#include <gtest/gtest.h>

#include "protocol/messages.h"

namespace pgtandem::proxy::replay_detail {
namespace {

std::string bind_execute(const std::string& statement) {
  std::string out;
  protocol::encode_bind(out, "", statement, {}, {}, {});
  protocol::encode(out, protocol::Execute{});
  return out;
}
std::string sync() {
  std::string out;
  protocol::encode(out, protocol::Sync{});
  return out;
}
std::string query(const std::string& sql) {
  std::string out;
  protocol::encode(out, protocol::Query{sql});
  return out;
}
std::string parse(const std::string& name, const std::string& sql) {
  std::string out;
  protocol::encode_parse(out, name, sql, {});
  return out;
}

// pgbench -M prepared's TPC-B unit: BEGIN, five statements, END, a Sync each.
struct Tpcb {
  std::string begin = bind_execute("P0_1") + sync();
  std::string middle;
  std::string end = bind_execute("P0_7") + sync();
  Tpcb() {
    for (int i = 2; i <= 6; ++i) middle += bind_execute("P0_" + std::to_string(i)) + sync();
  }
  std::string bytes() const { return begin + middle + end; }
};

TEST(ReplayUnits, LeadingBeginAndTrailingCommitFrameATransactionUnit) {
  const Tpcb t;
  const std::string bytes = t.bytes();
  EXPECT_EQ(leading_begin(bytes), t.begin.size());
  EXPECT_EQ(trailing_commit(bytes), t.begin.size() + t.middle.size());
}

TEST(ReplayUnits, TrailingCommitRefusesARequestThatPreparesOrRunsMore) {
  const Tpcb t;
  // The last request parses a statement: dropping it would drop the Parse.
  EXPECT_EQ(trailing_commit(t.begin + t.middle + parse("P0_7", "END") + t.end), std::string_view::npos);
  // The last request runs two statements.
  EXPECT_EQ(trailing_commit(t.begin + t.middle + bind_execute("P0_6") + t.end),
            std::string_view::npos);
  // No Sync at the end: not a whole request.
  EXPECT_EQ(trailing_commit(t.begin + t.middle + bind_execute("P0_7")), std::string_view::npos);
  // A truncated message.
  const std::string whole = t.bytes();
  EXPECT_EQ(trailing_commit(std::string_view(whole).substr(0, whole.size() - 2)),
            std::string_view::npos);
}

TEST(ReplayUnits, WithoutSyncsKeepsEveryOtherMessageInOrder) {
  const Tpcb t;
  std::string out = "prefix";
  ASSERT_TRUE(without_syncs(t.bytes(), t.begin.size(), &out));
  std::string want = "prefix";
  for (int i = 2; i <= 7; ++i) want += bind_execute("P0_" + std::to_string(i));
  EXPECT_EQ(out, want);
}

TEST(ReplayUnits, WithoutSyncsRefusesASimpleQueryAndLeavesTheOutputAlone) {
  std::string out = "prefix";
  EXPECT_FALSE(without_syncs(bind_execute("a") + sync() + query("SELECT 1"), 0, &out));
  EXPECT_EQ(out, "prefix");
  std::string copy_data;
  protocol::encode(copy_data, protocol::Query{"x"});
  copy_data[0] = 'd';  // CopyData
  EXPECT_FALSE(without_syncs(bind_execute("a") + copy_data, 0, &out));
  EXPECT_EQ(out, "prefix");
}

TEST(ReplayUnits, WrapFollowsThePrimarysAnswers) {
  policy::MirrorUnit u;
  u.primary = {{"BEGIN", ""}, {"UPDATE 1", ""}, {"COMMIT", ""}};
  EXPECT_EQ(wrap_for(u), Wrap::kTransaction);
  u.primary = {{"UPDATE 1", ""}};
  EXPECT_EQ(wrap_for(u), Wrap::kAutocommit);
  u.primary = {{"", "23505"}};
  EXPECT_EQ(wrap_for(u), Wrap::kRecordAfter);  // an error: not wrapped with its record
  u.primary = {{"VACUUM", ""}};
  EXPECT_EQ(wrap_for(u), Wrap::kRecordAfter);  // cannot run in a transaction block
  u.primary = {{"BEGIN", ""}, {"COMMIT", ""}, {"BEGIN", ""}, {"COMMIT", ""}};
  EXPECT_EQ(wrap_for(u), Wrap::kRecordAfter);  // two transactions in one unit
  u.primary = {{"UPDATE 1", ""}};
  u.session_state = true;
  EXPECT_EQ(wrap_for(u), Wrap::kRecordAfter);
}

TEST(ReplayUnits, TheRecordRefusesASeqItHolds) {
  const std::string sql = record_sql("$1", "$2::bigint");
  EXPECT_NE(sql.find("ON CONFLICT (session) DO UPDATE"), std::string::npos) << sql;
  EXPECT_NE(sql.find("CASE WHEN m.seq < EXCLUDED.seq THEN EXCLUDED.seq ELSE"), std::string::npos) << sql;
  EXPECT_TRUE(already_recorded({{"BEGIN", ""}, {"", std::string(kAlreadyRecorded)}}));
  EXPECT_FALSE(already_recorded({{"BEGIN", ""}, {"INSERT 0 1", ""}}));
  EXPECT_FALSE(already_recorded({{"", "23505"}}));
}

}  // namespace
}  // namespace pgtandem::proxy::replay_detail

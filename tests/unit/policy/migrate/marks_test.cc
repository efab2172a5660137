// Which needs-repair marks a clean verify may clear (policy/migrate/marks.h).
#include "policy/migrate/marks.h"

#include <gtest/gtest.h>

#include "policy/migrate/state.h"

namespace pgtandem::policy::migrate {
namespace {

const char* kStatus = R"({"version":"x","mirror":{"state":"mirroring","stopped":false,
  "crash_window":{"from":"2026-12-06T10:00:00.000Z"},"needs_repair":[
  {"kind":"crash_window","target":"new","from":"2026-12-06T10:00:00.000Z","to":"2026-12-06T10:00:02.000Z","detail":"d"},
  {"kind":"journal_full","target":"new","from":"2026-12-06T09:00:00.000Z","to":null,"detail":"d"}]}})";

AdminMarks parsed(const std::string& body) {
  AdminMarks m;
  std::string e;
  EXPECT_TRUE(parse_status_marks(body, &m, &e)) << e;
  return m;
}

TEST(ClearMarks, ParsesStatus) {
  const AdminMarks m = parsed(kStatus);
  ASSERT_TRUE(m.read);
  EXPECT_FALSE(m.stopped);
  ASSERT_EQ(m.marks.size(), 2u);
  EXPECT_EQ(m.marks[0].kind, "crash_window");
  EXPECT_EQ(m.marks[0].to, "2026-12-06T10:00:02.000Z");
  EXPECT_EQ(m.marks[1].to, "") << "null: the journal_full mark has no end";
  AdminMarks none;
  std::string e;
  EXPECT_FALSE(parse_status_marks("{\"version\":1}", &none, &e));
  EXPECT_FALSE(none.read);
}

TEST(ClearMarks, NothingToClear) {
  const AdminMarks empty = parsed(R"({"mirror":{"crash_window":null,"needs_repair":[]}})");
  const ClearPlan p = plan_clear(empty, empty);
  EXPECT_EQ(p.path, "");
  EXPECT_TRUE(p.kept.empty());
}

TEST(ClearMarks, MarksSeenAtTheStartGo) {
  const AdminMarks m = parsed(kStatus);
  const ClearPlan p = plan_clear(m, m);
  EXPECT_EQ(p.path, "/mirror/needs-repair/clear");
  EXPECT_EQ(p.expected, 2u);
  EXPECT_TRUE(p.kept.empty());
  // The POST names exactly these (a mark added after the last read of /status is not in it).
  ASSERT_EQ(p.ids.size(), 2u);
  EXPECT_EQ(p.ids[0], "crash_window|new|2026-12-06T10:00:00.000Z|2026-12-06T10:00:02.000Z");
  EXPECT_EQ(p.ids[1], "journal_full|new|2026-12-06T09:00:00.000Z|");
}

TEST(ClearMarks, AnApplyTimeoutMarkIsLeftToTheOperator) {
  const std::string status = R"({"mirror":{"stopped":false,"crash_window":null,"needs_repair":[
    {"kind":"apply_timeout","target":"new","from":"2026-12-06T10:00:00.000Z","to":null,"detail":"d"}]}})";
  const ClearPlan p = plan_clear(parsed(status), parsed(status));
  EXPECT_EQ(p.path, "");
  EXPECT_TRUE(p.ids.empty());
  ASSERT_EQ(p.kept.size(), 1u);
  EXPECT_NE(p.kept[0].find("hung backend may still commit"), std::string::npos) << p.kept[0];
}

TEST(ClearMarks, AMarkThatAppearedDuringTheVerifyStays) {
  AdminMarks start = parsed(kStatus);
  start.marks.pop_back();  // only the crash window at the start
  const AdminMarks now = parsed(kStatus);
  const ClearPlan p = plan_clear(start, now);
  EXPECT_EQ(p.path, "/mirror/crash-window/clear") << "the crash window may still go, alone";
  EXPECT_EQ(p.expected, 1u);
  ASSERT_EQ(p.ids.size(), 1u);
  EXPECT_EQ(p.ids[0].rfind("crash_window|", 0), 0u) << p.ids[0];
  ASSERT_EQ(p.kept.size(), 1u);
  EXPECT_NE(p.kept[0].find("appeared after the verify started"), std::string::npos) << p.kept[0];

  // A new crash window (pgtandem crashed during the verify): nothing goes.
  AdminMarks start2 = parsed(kStatus);
  start2.marks.erase(start2.marks.begin());
  const ClearPlan p2 = plan_clear(start2, now);
  EXPECT_EQ(p2.path, "");
  EXPECT_EQ(p2.kept.size(), 1u);
}

TEST(ClearMarks, StoppedMirroringKeepsTheJournalMark) {
  AdminMarks start = parsed(kStatus);
  start.stopped = true;
  const ClearPlan p = plan_clear(start, parsed(kStatus));
  EXPECT_EQ(p.path, "/mirror/crash-window/clear");
  ASSERT_EQ(p.kept.size(), 1u);
  EXPECT_NE(p.kept[0].find("stopped by the journal limit"), std::string::npos) << p.kept[0];
  AdminMarks now = parsed(kStatus);
  now.stopped = true;
  EXPECT_EQ(plan_clear(parsed(kStatus), now).kept.size(), 1u);
}

TEST(ClearMarks, UnreadableAtTheStartKeepsEverything) {
  AdminMarks start;
  start.admin = "h:1";
  const ClearPlan p = plan_clear(start, parsed(kStatus));
  EXPECT_EQ(p.path, "");
  EXPECT_EQ(p.kept.size(), 2u);
}

TEST(ClearMarks, TheReportCarriesTheSnapshot) {
  Report r;
  r.all_tables = true;
  AdminMarks m = parsed(kStatus);
  m.admin = "127.0.0.1:9930";
  m.stopped = true;
  r.marks_at_start.push_back(m);
  std::string e;
  auto back = decode_report(encode_report(r), &e);
  ASSERT_TRUE(back) << e;
  EXPECT_TRUE(back->all_tables);
  ASSERT_EQ(back->marks_at_start.size(), 1u);
  EXPECT_EQ(back->marks_at_start[0].admin, "127.0.0.1:9930");
  EXPECT_TRUE(back->marks_at_start[0].read);
  EXPECT_TRUE(back->marks_at_start[0].stopped);
  ASSERT_EQ(back->marks_at_start[0].marks.size(), 2u);
  EXPECT_EQ(back->marks_at_start[0].marks[1].id(), m.marks[1].id());
  // An older report (no snapshot) clears nothing.
  auto old = decode_report(R"({"format":"pgtandem-verify-report/1","tables":[],"sequences":[]})", &e);
  ASSERT_TRUE(old) << e;
  EXPECT_FALSE(old->all_tables);
  EXPECT_TRUE(old->marks_at_start.empty());
}

}  // namespace
}  // namespace pgtandem::policy::migrate

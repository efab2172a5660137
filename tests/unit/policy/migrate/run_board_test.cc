// policy/migrate/run_board: the migration commands' state as a running pgtandem keeps it (issue
// 13): documents accepted and refused, stale runs, the last result kept across a new run,
// Prometheus text, and which divergences a backfill in progress explains.
#include "policy/migrate/divergence.h"
#include "policy/migrate/run_board.h"

#include <gtest/gtest.h>

namespace pgtandem::policy::migrate {
namespace {

std::string doc(const std::string& command, const std::string& state, const std::string& tables,
                const std::string& extra = "") {
  return "{\"command\":\"" + command + "\",\"run\":\"1-2\",\"state\":\"" + state +
         "\",\"rows\":1500,\"chunks\":3,\"bytes\":4096,\"differences\":2,\"repaired\":0" + extra +
         ",\"tables\":[" + tables + "]}";
}

TEST(RunBoard, RefusesMalformedAndUnknownDocuments) {
  RunBoard b;
  std::string why;
  EXPECT_FALSE(b.update("not json", 100, &why));
  EXPECT_FALSE(b.update("[1]", 100, &why));
  EXPECT_FALSE(b.update("{\"command\":\"drop\",\"state\":\"running\"}", 100, &why));
  EXPECT_NE(why.find("backfill, verify or repair"), std::string::npos);
  EXPECT_FALSE(b.update("{\"command\":\"verify\",\"state\":\"weird\"}", 100, &why));
  EXPECT_EQ(b.status_json(100), "{\"backfill\":null,\"verify\":null,\"repair\":null}");
}

TEST(RunBoard, StatusShowsTheLatestRunStaleRunsAndTheLastResult) {
  RunBoard b;
  std::string why;
  ASSERT_TRUE(b.update(doc("verify", "done", "", ",\"exit_code\":1,\"finished_at\":90,\"seconds\":4.5"), 91, &why)) << why;
  ASSERT_TRUE(b.update(doc("verify", "running", ""), 100, &why)) << why;
  std::string s = b.status_json(101);
  EXPECT_NE(s.find("\"state\":\"running\""), std::string::npos) << s;
  // The previous run's result stays until this one ends.
  EXPECT_NE(s.find("\"last_result\":{\"finished_at\":90,\"exit_code\":1,\"seconds\":4.5}"), std::string::npos) << s;
  // Silent for more than 30 s: stopped (killed, or cut off).
  s = b.status_json(100 + RunBoard::kStaleSeconds + 1);
  EXPECT_NE(s.find("\"state\":\"stopped\""), std::string::npos) << s;
  const std::string m = b.prometheus(100 + RunBoard::kStaleSeconds + 1);
  EXPECT_NE(m.find("pgtandem_verify_running 0\n"), std::string::npos) << m;
  EXPECT_NE(m.find("pgtandem_verify_last_run_exit_code 1\n"), std::string::npos) << m;
  EXPECT_NE(m.find("pgtandem_verify_last_run_timestamp_seconds 90\n"), std::string::npos) << m;
  EXPECT_NE(m.find("pgtandem_verify_differences 2\n"), std::string::npos) << m;
  EXPECT_NE(m.find("# TYPE pgtandem_verify_rows gauge\npgtandem_verify_rows 1500\n"), std::string::npos) << m;
  // Commands never seen: zeros, exit code -1.
  EXPECT_NE(m.find("pgtandem_repair_last_run_exit_code -1\n"), std::string::npos) << m;
  EXPECT_NE(m.find("pgtandem_backfill_rows 0\n"), std::string::npos) << m;
}

TEST(RunBoard, PerTableBackfillMetricsWithEscapedLabels) {
  RunBoard b;
  std::string why;
  ASSERT_TRUE(b.update(doc("backfill", "running",
                           "{\"table\":\"public.a\",\"rows\":10,\"done\":true},"
                           "{\"table\":\"s.\\\"q\\\"\",\"rows\":5,\"done\":false}"),
                       100, &why))
      << why;
  const std::string m = b.prometheus(100);
  EXPECT_NE(m.find("pgtandem_backfill_table_rows{table=\"public.a\"} 10\n"), std::string::npos) << m;
  EXPECT_NE(m.find("pgtandem_backfill_table_done{table=\"s.\\\"q\\\"\"} 0\n"), std::string::npos) << m;
  EXPECT_NE(m.find("pgtandem_backfill_running 1\n"), std::string::npos) << m;
}

TEST(RunBoard, BackfillPendingUntilItsTablesAreDone) {
  RunBoard b;
  std::string why;
  EXPECT_FALSE(b.backfill_pending());  // no backfill reported: every divergence is real
  ASSERT_TRUE(b.update(doc("backfill", "running", ""), 100, &why));
  EXPECT_TRUE(b.backfill_pending());  // planning: nothing copied yet
  ASSERT_TRUE(b.update(doc("backfill", "running",
                           "{\"table\":\"public.a\",\"done\":true},{\"table\":\"public.b\",\"done\":false}"),
                       101, &why));
  EXPECT_TRUE(b.backfill_pending());
  EXPECT_TRUE(b.backfill_pending("public.b"));
  EXPECT_TRUE(b.backfill_pending("b"));
  EXPECT_FALSE(b.backfill_pending("public.a"));
  EXPECT_FALSE(b.backfill_pending("other"));  // not copied by this backfill
  // Killed midway (stale) or failed: b's rows are still not all there.
  EXPECT_TRUE(b.backfill_pending());
  ASSERT_TRUE(b.update(doc("backfill", "failed", "{\"table\":\"public.a\",\"done\":true},{\"table\":\"public.b\",\"done\":false}",
                           ",\"exit_code\":1"),
                       102, &why));
  EXPECT_TRUE(b.backfill_pending("public.b"));
  ASSERT_TRUE(b.update(doc("backfill", "done", "{\"table\":\"public.a\",\"done\":true},{\"table\":\"public.b\",\"done\":true}",
                           ",\"exit_code\":0"),
                       103, &why));
  EXPECT_FALSE(b.backfill_pending());
  EXPECT_FALSE(b.backfill_pending("public.b"));
}

std::string message(char type, const std::string& body) {
  const uint32_t len = static_cast<uint32_t>(body.size() + 4);
  std::string m(1, type);
  for (int s = 24; s >= 0; s -= 8) m += static_cast<char>((len >> s) & 0xff);
  return m + body;
}

TEST(RunBoard, DivergenceTablesFromTheUnitsMessages) {
  using namespace std::string_literals;
  // A transaction as pgbench sends it (simple queries), and an extended-protocol statement.
  const std::string unit = message('Q', "BEGIN;"s + '\0') +
                           message('Q', "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 7;"s + '\0') +
                           message('P', "s1\0INSERT INTO public.history (x) VALUES ($1)\0\0\0"s) +
                           message('B', "\0s1\0\0\0\0\0\0\0"s) + message('E', "\0\0\0\0\0"s) + message('S', "") +
                           message('Q', "COMMIT;"s + '\0');
  const auto sqls = unit_statements(unit);
  ASSERT_EQ(sqls.size(), 4u);
  EXPECT_EQ(sqls[2], "INSERT INTO public.history (x) VALUES ($1)");
  const auto tables = unit_tables(unit);
  ASSERT_EQ(tables.size(), 2u);
  EXPECT_EQ(tables[0], "pgbench_accounts");
  EXPECT_EQ(tables[1], "public.history");
  EXPECT_TRUE(unit_tables(message('Q', "COMMIT;"s + '\0')).empty());
  EXPECT_TRUE(unit_tables(unit.substr(0, 12)).empty()) << "a cut message is not read";

  RunBoard b;
  std::string why;
  ASSERT_TRUE(b.update(doc("backfill", "running",
                           "{\"table\":\"public.pgbench_accounts\",\"done\":true},{\"table\":\"public.history\",\"done\":false}"),
                       100, &why));
  EXPECT_TRUE(b.backfill_pending_any(tables)) << "history is not copied yet";
  EXPECT_FALSE(b.backfill_pending_any({"pgbench_accounts"})) << "accounts is: a real divergence";
  EXPECT_TRUE(b.backfill_pending_any({})) << "tables unknown: the global answer";
}

TEST(RunBoard, KeepsAtMostMaxTables) {
  RunBoard b;
  std::string tables;
  for (size_t i = 0; i < RunBoard::kMaxTables + 50; ++i) {
    if (i) tables += ",";
    tables += "{\"table\":\"public.t" + std::to_string(i) + "\",\"done\":false}";
  }
  std::string why;
  ASSERT_TRUE(b.update(doc("backfill", "running", tables, ",\"tables_total\":250,\"tables_done\":0"), 100, &why));
  const std::string m = b.prometheus(100);
  EXPECT_NE(m.find("public.t199\""), std::string::npos);
  EXPECT_EQ(m.find("public.t200\""), std::string::npos);
  // A table cut from the list, while some are unfinished: pending.
  EXPECT_TRUE(b.backfill_pending("public.t240"));
}

}  // namespace
}  // namespace pgtandem::policy::migrate

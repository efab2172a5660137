// The backfill's mirror barrier and the answer drain (issue 13, docs/migration.md "The race"):
// - the drain through the admin API: immediate when no mirrored session waits for an answer,
//   held by one that does, and over once its answer has come;
// - a write whose COMMIT went through on the primary while its request's answer is still held
//   (a multi-statement Query `BEGIN; UPDATE; COMMIT; SELECT hold_old()`, where hold_old() waits
//   on the primary for an advisory lock the test holds): its unit is numbered only at the answer.
//   With no grace the copy of its row lands first and the held unit is applied on top of it
//   again (verify finds the row); with a grace longer than the hold, the barrier waits for the
//   drain, not for the grace, and the copy lands after the unit: identical;
// - an idle backfill never sleeps the grace: every chunk's barrier ends by the drain.
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <atomic>
#include <thread>

#include "tests/integration/migrate_fixture.h"

namespace pgtandem::it {
namespace {

std::string json_field(const std::string& body, const std::string& name) {
  const std::string key = "\"" + name + "\":";
  const size_t at = body.find(key);
  if (at == std::string::npos) return "";
  const size_t from = at + key.size();
  return body.substr(from, body.find_first_of(",}", from) - from);
}

class MigrateBarrierTest : public MigrateTest {
 protected:
  // Returns verify's exit code; *report: what the backfill and verify said, and the row on both sides.
  int answer_in_flight(ProxyProcess& p, const std::string& db, int grace_ms, std::string* report);
};

TEST_F(MigrateBarrierTest, AnswerDrainThroughTheAdminApi) {
  const std::string db = make_db("drain_api");
  old_cluster().exec(
      "CREATE FUNCTION hold_old() RETURNS int LANGUAGE plpgsql AS $$ BEGIN "
      "PERFORM pg_advisory_xact_lock_shared(4343); RETURN 1; END $$",
      db);
  new_cluster().exec("CREATE FUNCTION hold_old() RETURNS int LANGUAGE sql AS 'SELECT 1'", db);
  ProxyProcess& p = start_mirror_proxy();
  ConnPtr idle = connect(p.endpoint().conninfo("", db));
  exec(idle.get(), "SELECT 1");
  // Nobody waits for an answer: drained at once.
  auto first = http_get(p.admin_port(), "/mirror/watermark?drain=start");
  EXPECT_EQ(json_field(first.body, "drained"), "true") << first.body;
  EXPECT_NE(json_field(first.body, "drain"), "0") << first.body;
  // A request held on the primary: the drain started now waits for it.
  ConnPtr gate = connect(old_cluster().conninfo(db));
  exec(gate.get(), "SELECT pg_advisory_lock(4343)");
  ConnPtr held = connect(p.endpoint().conninfo("", db));
  ASSERT_TRUE(PQsendQuery(held.get(), "SELECT hold_old()"));
  ASSERT_TRUE(poll_until(
      [&] {
        return old_cluster().query_value("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'advisory' "
                                          "AND datname = '" + db + "'") == "1";
      },
      milliseconds(10000)));
  auto started = http_get(p.admin_port(), "/mirror/watermark?drain=start");
  const std::string token = json_field(started.body, "drain");
  ASSERT_NE(token, "0") << started.body;
  EXPECT_EQ(json_field(started.body, "drained"), "false") << started.body;
  // Still held a while later (a count, not a timer, keeps it open).
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_EQ(json_field(http_get(p.admin_port(), "/mirror/watermark?drain=" + token).body, "drained"), "false");
  // The next drain cannot start while this one is open (its sessions would be missed).
  EXPECT_EQ(json_field(http_get(p.admin_port(), "/mirror/watermark?drain=start").body, "drain"), "0");
  exec(gate.get(), "SELECT pg_advisory_unlock(4343)");
  while (PGresult* r = PQgetResult(held.get())) PQclear(r);
  EXPECT_TRUE(poll_until(
      [&] {
        return json_field(http_get(p.admin_port(), "/mirror/watermark?drain=" + token).body, "drained") ==
               "true";
      },
      milliseconds(10000)));
  // Without a query, the watermark as before (no drain fields).
  EXPECT_EQ(http_get(p.admin_port(), "/mirror/watermark").body.find("drain"), std::string::npos);
}

TEST_F(MigrateBarrierTest, AnswerInFlightDoubledWithoutTheDrainWaitedForWithIt) {
  std::string report;
  const std::string naive = make_db("drain_naive");
  {
    ProxyProcess& p = start_mirror_proxy();
    EXPECT_EQ(answer_in_flight(p, naive, 0, &report), 1) << report;
    EXPECT_NE(report.find("{\"key\":[\"150\"],\"kind\":\"changed\"}"), std::string::npos) << report;
    EXPECT_NE(report.find("old v=4657 new v=144374"), std::string::npos) << report;  // applied twice
    EXPECT_NE(report.find("after the 0 ms grace"), std::string::npos) << report;
    // The operator sees it: chunks whose barrier ended by the grace (the held answer's chunks).
    EXPECT_GE(p.metrics().sum("pgtandem_backfill_barriers_by_grace"), 1) << report;
    p.stop();
  }
  const std::string drained = make_db("drain_exact");
  ProxyProcess& p = start_mirror_proxy();
  EXPECT_EQ(answer_in_flight(p, drained, 60000, &report), 0) << report;
  EXPECT_NE(report.find("old v=4657 new v=4657"), std::string::npos) << report;
  // Every chunk's barrier ended by the drain, none by the 60 s grace.
  EXPECT_NE(report.find("mirror barrier: 4 chunks after the answers drained, 0 after the 60000 ms grace"),
            std::string::npos)
      << report;
  EXPECT_EQ(p.metrics().sum("pgtandem_backfill_barriers_by_grace"), 0) << report;
  EXPECT_NE(http_get(p.admin_port(), "/status").body.find("\"barriers_drained\":4"), std::string::npos);
}

int MigrateBarrierTest::answer_in_flight(ProxyProcess& p, const std::string& db, int grace_ms,
                                         std::string* report) {
  PgCluster& old_c = old_cluster();
  PgCluster& new_c = new_cluster();
  const char* schema = "CREATE TABLE t (id int PRIMARY KEY, v bigint NOT NULL)";
  old_c.exec(schema, db);
  new_c.exec(schema, db);
  old_c.exec("CREATE FUNCTION hold_old() RETURNS int LANGUAGE plpgsql AS $$ BEGIN "
             "PERFORM pg_advisory_xact_lock_shared(4343); RETURN 1; END $$",
             db);
  new_c.exec("CREATE FUNCTION hold_old() RETURNS int LANGUAGE sql AS 'SELECT 1'", db);
  old_c.exec("INSERT INTO t SELECT g, g FROM generate_series(1, 300) g", db);
  ConnPtr gate = connect(old_c.conninfo(db));
  exec(gate.get(), "SELECT pg_advisory_lock(4343)");
  // The COMMIT in the middle commits on old now; the answer (and the unit's number) waits.
  ConnPtr client = connect(p.endpoint().conninfo("", db));
  EXPECT_TRUE(PQsendQuery(client.get(), "BEGIN; UPDATE t SET v = v * 31 + 7 WHERE id = 150; COMMIT; SELECT hold_old()"));
  EXPECT_TRUE(poll_until(
      [&] {
        return old_c.query_value("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'advisory' AND "
                                 "datname = '" + db + "'") == "1";
      },
      milliseconds(10000)));
  EXPECT_EQ(old_c.query_value("SELECT v FROM t WHERE id = 150", db), "4657");  // 150 * 31 + 7, committed
  std::atomic<bool> done{false};
  ProcessResult bf;
  std::thread runner([&] {
    bf = command("backfill", p.config_path(), db,
                   {"--chunk-rows", "100", "--jobs", "1", "--mode", "chunked", "--commit-grace-ms", std::to_string(grace_ms), "--admin",
                    "127.0.0.1:" + std::to_string(p.admin_port())},
                   milliseconds(120000));
    done = true;
  });
  // With no grace the backfill goes through; with the drain it waits for the held answer.
  poll_until([&] { return done.load(); }, milliseconds(grace_ms == 0 ? 30000 : 2000));
  const bool finished_while_held = done.load();
  exec(gate.get(), "SELECT pg_advisory_unlock(4343)");
  while (PGresult* r = PQgetResult(client.get())) PQclear(r);
  runner.join();
  EXPECT_EQ(bf.exit_code, 0) << bf.describe();
  EXPECT_EQ(finished_while_held, grace_ms == 0);
  wait_mirror(p);
  auto v = command("verify", p.config_path(), db, {"--recheck-delay-ms", "200"});
  *report = bf.out + "\n" + v.out + "\n" + read_file(dir_->file("state-" + db) + "/verify-report.json") +
            "\nold v=" + old_c.query_value("SELECT v FROM t WHERE id = 150", db) +
            " new v=" + new_c.query_value("SELECT v FROM t WHERE id = 150", db);
  return v.exit_code;
}

}  // namespace
}  // namespace pgtandem::it

// The migration commands end to end (issue 13): preflight on matching and mismatching schemas;
// a live backfill into a schema-only `new` under fixed-rate pgbench TPC-B through a mirroring
// pgtandem, then verify (and repair where pgbench_history's bigserial keys differ); a backfill
// SIGKILLed midway and resumed; a table without a key; verify finding rows changed behind
// pgtandem's back and repair fixing them; randomized writers inside the chunks being copied;
// a mirrored write held in flight that a naive copy doubles and the barrier does not;
// every kind of built-in type.
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <atomic>
#include <csignal>
#include <random>
#include <thread>

#include "tests/integration/migrate_fixture.h"

namespace pgtandem::it {

using std::chrono::seconds;

TEST_F(MigrateTest, PreflightMatchingAndMismatchingSchemas) {
  const std::string db = make_db("preflight");
  for (PgCluster* c : {&old_cluster(), &new_cluster()})
    c->exec("CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance int);"
            "CREATE TABLE notes (body text); CREATE SEQUENCE ticket_seq;", db);
  const std::string cfg = plain_config();
  auto ok = command("preflight", cfg, db);
  EXPECT_EQ(ok.exit_code, 0) << ok.describe();
  EXPECT_NE(ok.out.find("\u2713 schemas compatible: 2 tables, 1 sequences"), std::string::npos) << ok.out;
  EXPECT_NE(ok.out.find("without a usable key: public.notes"), std::string::npos) << ok.out;
  EXPECT_NE(ok.out.find("PostgreSQL 15"), std::string::npos) << ok.out;
  EXPECT_NE(ok.out.find("max_connections"), std::string::npos) << ok.out;

  new_cluster().exec("ALTER TABLE accounts ALTER COLUMN balance TYPE bigint; DROP TABLE notes;"
                     "ALTER TABLE accounts ADD COLUMN region text NOT NULL DEFAULT 'eu'; DROP SEQUENCE ticket_seq",
                     db);
  auto bad = command("preflight", cfg, db);
  EXPECT_EQ(bad.exit_code, 1) << bad.describe();
  for (const char* expected : {"\u2717 schemas differ (4)", "table public.accounts: column balance is integer on old, bigint on new",
                               "table public.notes exists on old, not on new",
                               "column region (text, NOT NULL) exists only on new",
                               "sequence public.ticket_seq exists on old, not on new", "preflight failed"})
    EXPECT_NE(bad.out.find(expected), std::string::npos) << expected << "\n" << bad.out;
  auto cast = command("preflight", cfg, db, {"--allow-cast", "integer->bigint"});
  EXPECT_NE(cast.out.find("schemas differ (3)"), std::string::npos) << cast.out;
  // Every run leaves an audit line.
  EXPECT_NE(read_file(dir_->file("state-" + db) + "/audit.log").find("\"command\":\"preflight\""), std::string::npos);
}

// The acceptance scenario at a small scale: old holds pgbench data (with a bigserial key on
// pgbench_history), new the schema only; mirroring on, TPC-B at a fixed rate through pgtandem while
// the backfill runs. Then the tables pgbench updates are identical by key. pgbench_history's keys
// come from each side's own sequence (new's restarted far away so that the mirror's inserts never
// collide with copied rows): verify finds those rows, repair makes them equal.
TEST_F(MigrateTest, LiveBackfillUnderPgbenchThenVerifyAndRepair) {
  const std::string db = make_db("live");
  auto init = run_pgbench(old_cluster().endpoint(), {"-i", "-s", "1", "--foreign-keys", "-q"}, db);
  ASSERT_TRUE(init.ok()) << init.describe();
  old_cluster().exec("ALTER TABLE pgbench_history ADD COLUMN hid bigserial PRIMARY KEY", db);
  copy_schema(db);
  new_cluster().exec("ALTER DATABASE " + db + " SET session_replication_role = replica", "postgres");
  new_cluster().exec("ALTER SEQUENCE pgbench_history_hid_seq RESTART WITH 1000000000", db);
  ProxyProcess& p = start_mirror_proxy();

  auto pre = command("preflight", p.config_path(), db);
  EXPECT_EQ(pre.exit_code, 0) << pre.describe();
  EXPECT_NE(pre.out.find("session_replication_role = replica is set there"), std::string::npos) << pre.out;

  ProcessResult bench;
  std::thread load([&] {
    bench = run_pgbench(p.endpoint(), {"-n", "-c", "4", "-j", "2", "-T", "14", "-R", "60"}, db, milliseconds(90000));
  });
  std::this_thread::sleep_for(seconds(2));
  auto bf = command("backfill", p.config_path(), db,
                    {"--jobs", "2", "--chunk-rows", "5000", "--admin", "127.0.0.1:" + std::to_string(p.admin_port())});
  load.join();
  ASSERT_EQ(bf.exit_code, 0) << bf.describe();
  EXPECT_NE(bf.out.find("backfill complete: 4 tables"), std::string::npos) << bf.out;
  // The default copy: from one snapshot under the mirror fence, the writes meanwhile journaled.
  EXPECT_NE(bf.out.find("snapshot copy: 4 tables from one snapshot"), std::string::npos) << bf.out;
  ASSERT_TRUE(bench.ok()) << bench.describe();
  auto summary = parse_pgbench(bench.out);
  EXPECT_EQ(summary.failed, 0) << bench.out;
  EXPECT_GT(summary.processed, 100) << bench.out;
  wait_mirror(p);

  auto v = command("verify", p.config_path(), db,
                   {"--tables", "pgbench_accounts,pgbench_tellers,pgbench_branches", "--chunk-rows", "10000"});
  EXPECT_EQ(v.exit_code, 0) << v.describe();
  EXPECT_EQ(count(old_cluster(), db, "pgbench_accounts"), count(new_cluster(), db, "pgbench_accounts"));

  auto all = command("verify", p.config_path(), db);
  EXPECT_EQ(all.exit_code, 1) << all.describe();  // history: keys from each side's sequence
  EXPECT_NE(all.out.find("public.pgbench_history"), std::string::npos) << all.out;
  auto rep = command("repair", p.config_path(), db, {"--admin", "127.0.0.1:" + std::to_string(p.admin_port())});
  EXPECT_EQ(rep.exit_code, 0) << rep.describe();
  auto again = command("verify", p.config_path(), db);
  EXPECT_EQ(again.exit_code, 0) << again.describe();
  EXPECT_EQ(count(old_cluster(), db, "pgbench_history"), count(new_cluster(), db, "pgbench_history"));
  const std::string audit = read_file(dir_->file("state-" + db) + "/audit.log");
  for (const char* c : {"preflight", "backfill", "verify", "repair"})
    EXPECT_NE(audit.find(std::string("\"command\":\"") + c + "\""), std::string::npos) << c;
  EXPECT_NE(read_file(dir_->file("state-" + db) + "/backfill-state.json").find("\"rows\":"), std::string::npos);
}

TEST_F(MigrateTest, BackfillKilledMidwayResumes) {
  const std::string db = make_db("resume");
  const char* schema = "CREATE TABLE big (id int, part text, v text, PRIMARY KEY (part, id))";
  old_cluster().exec(schema, db);
  new_cluster().exec(schema, db);
  old_cluster().exec("INSERT INTO big SELECT g, 'p' || (g % 3), md5(g::text) FROM generate_series(1, 30000) g", db);
  old_cluster().exec("ANALYZE big", db);
  const std::string cfg = plain_config();
  const std::string state = dir_->file("state-" + db);
  ChildProcess child;
  child.spawn({pgtandem_binary(), "backfill", "--config", cfg, "--user", "postgres", "--dbname", db, "--state-dir",
               state, "--chunk-rows", "500", "--max-rate", "6000", "--jobs", "2", "--mode", "chunked"},
              dir_->file("backfill1.log"));
  ASSERT_TRUE(poll_until([&] { return std::stol(count(new_cluster(), db, "big")) >= 3000; }, milliseconds(30000)));
  child.kill_and_reap();
  const long copied = std::stol(count(new_cluster(), db, "big"));
  EXPECT_LT(copied, 30000);
  // A row the first run copied changes on old meanwhile: the resumed run must not lose anything.
  auto again = command("backfill", cfg, db, {"--chunk-rows", "2000", "--jobs", "2", "--mode", "chunked"});
  ASSERT_EQ(again.exit_code, 0) << again.describe();
  EXPECT_NE(again.out.find("resuming from"), std::string::npos) << again.out;
  EXPECT_EQ(count(new_cluster(), db, "big"), "30000");
  auto v = command("verify", cfg, db, {"--chunk-rows", "4000"});
  EXPECT_EQ(v.exit_code, 0) << v.describe();

  // new stopped in the middle of a backfill: a clear error naming it, then the same command
  // continues. (The rate cap keeps the run going long enough to stop new under it.)
  old_cluster().exec("INSERT INTO big SELECT g, 'q', 'late' FROM generate_series(1, 5000) g", db);
  const std::vector<std::string> fresh = {"--tables", "big", "--state-dir", dir_->file("fresh"), "--mode", "chunked"};
  std::vector<std::string> slow = fresh;
  slow.insert(slow.end(), {"--chunk-rows", "1000", "--jobs", "1", "--max-rate", "4000"});
  ProcessResult down;
  std::atomic<bool> down_done{false};
  std::thread runner([&] {
    down = command("backfill", cfg, db, slow, milliseconds(90000));
    down_done = true;
  });
  // Stopped once some chunks are on new, while the run still has most of the table to go.
  auto rows_reported = [&] {  // the largest "rows" of the run's state document (0: none yet)
    const std::string doc = read_file(dir_->file("fresh") + "/backfill-state.json");
    long most = 0;
    for (size_t at = doc.find("\"rows\":"); at != std::string::npos; at = doc.find("\"rows\":", at + 1))
      most = std::max(most, std::strtol(doc.c_str() + at + 7, nullptr, 10));
    return most;
  };
  const bool started = poll_until([&] { return rows_reported() >= 2000; }, milliseconds(30000), milliseconds(50));
  EXPECT_TRUE(started);
  EXPECT_FALSE(down_done.load()) << "the capped run finished before new was stopped";
  new_cluster().stop();
  runner.join();
  EXPECT_EQ(down.exit_code, 1) << down.describe();
  EXPECT_NE(down.err.find("new (127.0.0.1:" + std::to_string(new_cluster().port()) + ")"), std::string::npos) << down.err;
  EXPECT_NE(down.err.find("run the same command again to continue"), std::string::npos) << down.err;
  new_cluster().start();
  auto resumed = command("backfill", cfg, db, fresh);
  EXPECT_EQ(resumed.exit_code, 0) << resumed.describe();
  EXPECT_EQ(count(new_cluster(), db, "big"), "35000");
}

TEST_F(MigrateTest, TableWithoutKeyCopiedWholeUnderLock) {
  const std::string db = make_db("nokey");
  const char* schema = "CREATE TABLE log (who text, what text); CREATE TABLE k (id int PRIMARY KEY)";
  old_cluster().exec(schema, db);
  new_cluster().exec(schema, db);
  old_cluster().exec("INSERT INTO log SELECT 'u' || (g % 7), 'dup' FROM generate_series(1, 3000) g", db);
  ProxyProcess& p = start_mirror_proxy();
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    ConnPtr c = connect(p.endpoint().conninfo("", db));
    for (int i = 0; !stop; ++i) {
      exec(c.get(), "INSERT INTO log VALUES ('writer', 'w" + std::to_string(i % 5) + "')");
      std::this_thread::sleep_for(milliseconds(5));
    }
  });
  std::this_thread::sleep_for(milliseconds(300));
  auto bf = command("backfill", p.config_path(), db,
                    {"--admin", "127.0.0.1:" + std::to_string(p.admin_port()), "--mode", "chunked"});
  std::this_thread::sleep_for(milliseconds(300));
  stop = true;
  writer.join();
  ASSERT_EQ(bf.exit_code, 0) << bf.describe();
  wait_mirror(p);
  auto v = command("verify", p.config_path(), db);
  EXPECT_EQ(v.exit_code, 0) << v.describe();
  EXPECT_EQ(count(old_cluster(), db, "log"), count(new_cluster(), db, "log"));
  // A change behind pgtandem's back is found (the table as a whole) and repaired.
  new_cluster().exec("UPDATE log SET what = 'changed' WHERE ctid = (SELECT min(ctid) FROM log)", db);
  auto v2 = command("verify", p.config_path(), db, {"--recheck-delay-ms", "100"});
  EXPECT_EQ(v2.exit_code, 1) << v2.describe();
  EXPECT_NE(v2.out.find("public.log (no key): contents differ"), std::string::npos) << v2.out;
  auto rep = command("repair", p.config_path(), db, {"--admin", "127.0.0.1:" + std::to_string(p.admin_port())});
  EXPECT_EQ(rep.exit_code, 0) << rep.describe();
}

TEST_F(MigrateTest, VerifyFindsChangesBehindPgtandemAndRepairFixesThem) {
  const std::string db = make_db("repair");
  const char* schema =
      "CREATE TABLE \"Odd \"\"Name\" (\"Key\" text, n int, payload text, PRIMARY KEY (\"Key\", n));"
      "CREATE TABLE plain (id bigserial PRIMARY KEY, v int)";
  for (PgCluster* c : {&old_cluster(), &new_cluster()}) {
    c->exec(schema, db);
    c->exec("INSERT INTO \"Odd \"\"Name\" SELECT 'k''' || (g % 10), g, repeat('x', g % 50) FROM generate_series(1, 5000) g;"
            "INSERT INTO plain (v) SELECT g FROM generate_series(1, 2000) g",
            db);
  }
  old_cluster().exec("SELECT setval('plain_id_seq', 5000)", db);
  new_cluster().exec("UPDATE \"Odd \"\"Name\" SET payload = 'tampered' WHERE n = 77;"
                     "DELETE FROM \"Odd \"\"Name\" WHERE n = 4321;"
                     "INSERT INTO \"Odd \"\"Name\" VALUES ('extra', 1, 'only on new');"
                     "UPDATE plain SET v = NULL WHERE id = 1999",
                     db);
  const std::string cfg = plain_config();
  auto v = command("verify", cfg, db, {"--chunk-rows", "700", "--recheck-delay-ms", "100", "--jobs", "2"});
  EXPECT_EQ(v.exit_code, 1) << v.describe();
  const std::string report = read_file(dir_->file("state-" + db) + "/verify-report.json");
  EXPECT_NE(report.find("{\"key\":[\"k'7\",\"77\"],\"kind\":\"changed\"}"), std::string::npos) << report;
  EXPECT_NE(report.find("{\"key\":[\"k'1\",\"4321\"],\"kind\":\"missing_on_new\"}"), std::string::npos) << report;
  EXPECT_NE(report.find("{\"key\":[\"extra\",\"1\"],\"kind\":\"extra_on_new\"}"), std::string::npos) << report;
  EXPECT_NE(report.find("{\"key\":[\"1999\"],\"kind\":\"changed\"}"), std::string::npos) << report;
  EXPECT_NE(report.find("\"sequence\":\"public.plain_id_seq\",\"old\":5000,\"new\":2000"), std::string::npos) << report;
  EXPECT_NE(v.out.find("3 differing rows (1 missing on the other target, 1 only there, 1 changed)"), std::string::npos) << v.out;

  // One chunk of 5,000 rows: found through 1,000-row sub-ranges, the same rows.
  auto big = command("verify", cfg, db, {"--chunk-rows", "100000", "--recheck-delay-ms", "100", "--report", dir_->file("big.json")});
  EXPECT_EQ(big.exit_code, 1) << big.describe();
  EXPECT_NE(big.out.find("3 differing rows (1 missing on the other target, 1 only there, 1 changed)"), std::string::npos) << big.out;
  EXPECT_NE(read_file(dir_->file("big.json")).find("{\"key\":[\"k'7\",\"77\"],\"kind\":\"changed\"}"), std::string::npos);

  auto rep = command("repair", cfg, db);
  EXPECT_EQ(rep.exit_code, 0) << rep.describe();
  auto again = command("verify", cfg, db);
  EXPECT_EQ(again.exit_code, 0) << again.describe();
  EXPECT_EQ(new_cluster().query_value("SELECT last_value FROM plain_id_seq", db), "5000");
  EXPECT_EQ(new_cluster().query_value("SELECT count(*) FROM \"Odd \"\"Name\" WHERE \"Key\" = 'extra'", db), "0");
}

// Writers inside the chunks being copied: each of 4 sessions inserts, updates with a
// non-commutative, non-idempotent formula, and deletes rows of its own (so that no two sessions
// conflict on a row: the mirror's order across sessions is not under test here) while the backfill
// copies 100-row chunks. A copy that does not lock the chunk and wait for the mirror doubles
// updates (applied on the copy and again by the mirror), resurrects deleted rows or loses inserts.
int MigrateTest::writers_scenario(const std::string& name, const std::vector<std::string>& flags) {
  const std::string db = make_db(name);
  const char* schema = "CREATE TABLE t (id int PRIMARY KEY, v bigint NOT NULL, w int NOT NULL)";
  old_cluster().exec(schema, db);
  new_cluster().exec(schema, db);
  old_cluster().exec("INSERT INTO t SELECT g, g, g % 4 FROM generate_series(1, 4000) g", db);
  ProxyProcess& p = start_mirror_proxy();
  std::atomic<bool> stop{false};
  std::atomic<long> ops{0};
  std::vector<std::thread> writers;
  std::vector<std::string> errors(4);
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([&, w] {
      try {
        ConnPtr c = connect(p.endpoint().conninfo("", db));
        std::mt19937 rng(1234 + w);
        int next_insert = 10000 + w;
        while (!stop) {
          const int id = 4 * static_cast<int>(rng() % 1000) + w + (w == 0 ? 4 : 0);  // ids of this writer
          const std::string ids = std::to_string(id);
          switch (rng() % 4) {
            case 0:
            case 1:
              exec(c.get(), "UPDATE t SET v = (v * 31 + " + std::to_string(rng() % 1000) + ") % 1000000007 WHERE id = " + ids);
              break;
            case 2:
              exec(c.get(), "DELETE FROM t WHERE id = " + ids);
              break;
            default:
              exec(c.get(), "BEGIN; INSERT INTO t VALUES (" + std::to_string(next_insert) + ", 1, " + std::to_string(w) +
                                ") ON CONFLICT DO NOTHING; INSERT INTO t VALUES (" + ids + ", 7, " + std::to_string(w) +
                                ") ON CONFLICT (id) DO UPDATE SET v = t.v + 1; COMMIT");
              next_insert = next_insert >= 10400 ? 10000 + w : next_insert + 4;
          }
          ++ops;
          // A pace the mirror keeps up with on a small shared machine: each chunk's barrier waits
          // for the mirror's lag, which unthrottled writers would grow without bound.
          std::this_thread::sleep_for(milliseconds(3));
        }
      } catch (const std::exception& e) {
        errors[w] = e.what();
      }
    });
  }
  std::this_thread::sleep_for(milliseconds(300));
  std::vector<std::string> args = {"--chunk-rows", "100", "--jobs", "2", "--admin",
                                   "127.0.0.1:" + std::to_string(p.admin_port())};
  args.insert(args.end(), flags.begin(), flags.end());
  auto bf = command("backfill", p.config_path(), db, args, milliseconds(60000));
  std::this_thread::sleep_for(milliseconds(500));
  stop = true;
  for (auto& t : writers) t.join();
  for (const auto& e : errors) EXPECT_EQ(e, "");
  EXPECT_EQ(bf.exit_code, 0) << bf.describe();
  if (bf.exit_code != 0) return -1;
  EXPECT_GT(ops.load(), 200);
  wait_mirror(p);
  auto v = command("verify", p.config_path(), db, {"--chunk-rows", "500"});
  last_report_ = v.out + "\n" + read_file(dir_->file("state-" + db) + "/verify-report.json");
  p.stop();  // a later scenario in the same test starts its own pgtandem on the same journal
  return v.exit_code;
}

TEST_F(MigrateTest, RandomizedWritersInsideTheChunkBeingCopied) {
  EXPECT_EQ(writers_scenario("writers", {"--mode", "chunked"}), 0) << last_report_;
}

// The naive copy's race, made deterministic: a mirrored UPDATE is held in flight on `new` while
// a chunk holding its row is copied. The client's transaction is `BEGIN; SELECT hold_gate();
// UPDATE ...; COMMIT`: hold_gate() returns at once on the primary, and on `new` waits on an
// advisory lock the test holds, so the mirror's UPDATE starts (and takes its snapshot) only when
// the test lets it. The primary already committed the update, so the copy contains it:
// - without the barrier (--no-watermark) the copy commits on `new`, then the held update is
//   applied on top of it: `v * 31 + 7` twice on `new`, once on the primary. verify finds the row.
// - with the barrier the chunk waits until the mirror applied the update (the test releases it
//   only after checking that the backfill is still waiting), then overwrites it with the primary's
//   image: identical.
// Returns verify's exit code; *finished_while_held: the backfill finished while the write was held.
int MigrateTest::held_write_scenario(const std::string& name, bool barrier, bool* finished_while_held) {
  const std::string db = make_db(name);
  const char* schema = "CREATE TABLE t (id int PRIMARY KEY, v bigint NOT NULL)";
  old_cluster().exec(schema, db);
  new_cluster().exec(schema, db);
  old_cluster().exec("INSERT INTO t SELECT g, g FROM generate_series(1, 300) g;"
                     "CREATE FUNCTION hold_gate() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$",
                     db);
  new_cluster().exec("CREATE FUNCTION hold_gate() RETURNS int LANGUAGE plpgsql AS $$ BEGIN "
                     "PERFORM pg_advisory_xact_lock_shared(4242); RETURN 1; END $$",
                     db);
  ProxyProcess& p = start_mirror_proxy();
  ConnPtr gate = connect(new_cluster().conninfo(db));
  exec(gate.get(), "SELECT pg_advisory_lock(4242)");
  ConnPtr client = connect(p.endpoint().conninfo("", db));
  exec(client.get(), "BEGIN");
  exec(client.get(), "SELECT hold_gate()");
  exec(client.get(), "UPDATE t SET v = v * 31 + 7 WHERE id = 150");
  exec(client.get(), "COMMIT");  // committed on old: 150 * 31 + 7 = 4657
  // The mirror has taken the unit and waits in hold_gate() on new.
  EXPECT_TRUE(poll_until(
      [&] {
        return new_cluster().query_value(
                   "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND "
                   "wait_event = 'advisory' AND datname = '" + db + "'") == "1";
      },
      milliseconds(10000)));
  std::vector<std::string> args = {"--chunk-rows", "100", "--jobs", "1", "--mode", "chunked", "--admin",
                                   "127.0.0.1:" + std::to_string(p.admin_port())};
  if (!barrier) args.insert(args.end(), {"--no-watermark", "--commit-grace-ms", "0"});
  std::atomic<bool> done{false};
  ProcessResult bf;
  std::thread runner([&] {
    bf = command("backfill", p.config_path(), db, args, milliseconds(60000));
    done = true;
  });
  // Naive: it finishes with the write still held. With the barrier: it cannot finish while held.
  poll_until([&] { return done.load(); }, milliseconds(barrier ? 3000 : 30000));
  *finished_while_held = done.load();
  exec(gate.get(), "SELECT pg_advisory_unlock(4242)");
  runner.join();
  EXPECT_EQ(bf.exit_code, 0) << bf.describe();
  wait_mirror(p);
  auto v = command("verify", p.config_path(), db, {"--recheck-delay-ms", "200"});
  metrics_ = p.metrics();
  status_ = http_get(p.admin_port(), "/status").body;
  last_report_ = v.out + "\n" + read_file(dir_->file("state-" + db) + "/verify-report.json") +
                 "\nold v=" + old_cluster().query_value("SELECT v FROM t WHERE id = 150", db) +
                 " new v=" + new_cluster().query_value("SELECT v FROM t WHERE id = 150", db);
  p.stop();  // the next scenario starts its own pgtandem on the same journal
  return v.exit_code;
}

TEST_F(MigrateTest, HeldMirroredWriteDoubledByANaiveCopyNotWithTheBarrier) {
  bool finished_while_held = false;
  // Without the barrier: the copy lands under the held update, which is then applied again.
  EXPECT_EQ(held_write_scenario("held_naive", false, &finished_while_held), 1) << last_report_;
  EXPECT_TRUE(finished_while_held);
  EXPECT_NE(last_report_.find("{\"key\":[\"150\"],\"kind\":\"changed\"}"), std::string::npos) << last_report_;
  EXPECT_NE(last_report_.find("old v=4657 new v=144374"), std::string::npos) << last_report_;  // (150*31+7)*31+7
  // With it: the chunk waits for the mirror, then copies the primary's image over it.
  EXPECT_EQ(held_write_scenario("held_barrier", true, &finished_while_held), 0) << last_report_;
  EXPECT_FALSE(finished_while_held);
  EXPECT_NE(last_report_.find("old v=4657 new v=4657"), std::string::npos) << last_report_;
  // The held UPDATE reached new before the copy of its row: "UPDATE 0" there, while the backfill
  // (which reports its progress to pgtandem) had not finished the table: counted apart.
  EXPECT_EQ(metrics_.sum("pgtandem_mirror_divergences_backfill_pending_total", {{"kind", "row_count"}}), 1)
      << metrics_.text();
  EXPECT_EQ(metrics_.sum("pgtandem_mirror_divergences_total"), 0) << metrics_.text();
  EXPECT_NE(status_.find("\"mirror_divergences\":{\"real\":0,\"backfill_pending\":1}"), std::string::npos) << status_;
  // The runs as pgtandem saw them: the backfill's 300 rows, verify's result.
  EXPECT_EQ(metrics_.sum("pgtandem_backfill_rows"), 300) << metrics_.text();
  EXPECT_EQ(metrics_.sum("pgtandem_backfill_chunks"), 4) << metrics_.text();  // the 4th finds none
  EXPECT_EQ(metrics_.sum("pgtandem_backfill_last_run_exit_code"), 0) << metrics_.text();
  EXPECT_EQ(metrics_.sum("pgtandem_backfill_table_done", {{"table", "public.t"}}), 1) << metrics_.text();
  EXPECT_EQ(metrics_.sum("pgtandem_verify_rows"), 300) << metrics_.text();
  EXPECT_EQ(metrics_.sum("pgtandem_verify_last_run_exit_code"), 0) << metrics_.text();
  EXPECT_GT(metrics_.sum("pgtandem_verify_last_run_timestamp_seconds"), 1.7e9) << metrics_.text();
  EXPECT_NE(status_.find("\"command\":\"backfill\""), std::string::npos) << status_;
  EXPECT_NE(status_.find("\"state\":\"done\""), std::string::npos) << status_;
}

// The hot-row workload of the issue: 8 sessions overwrite 10 rows non-commutatively through the
// mirror; transactions that overlapped on the primary may reach new in another order. Whatever
// differs, verify names exactly those rows, and after repair old == new.
TEST_F(MigrateTest, HotRowsVerifyFindsEveryDifferenceAndRepairFixesThem) {
  const std::string db = make_db("hot");
  for (PgCluster* c : {&old_cluster(), &new_cluster()})
    c->exec("CREATE TABLE hot (id int PRIMARY KEY, v bigint NOT NULL);"
            "INSERT INTO hot SELECT g, g FROM generate_series(1, 10) g", db);
  ProxyProcess& p = start_mirror_proxy();
  std::atomic<bool> stop{false};
  std::vector<std::thread> sessions;
  std::vector<std::string> errors(8);
  for (int s = 0; s < 8; ++s) {
    sessions.emplace_back([&, s] {
      try {
        ConnPtr c = connect(p.endpoint().conninfo("", db));
        std::mt19937 rng(99 + s);
        while (!stop)
          exec(c.get(), "BEGIN; UPDATE hot SET v = (v * 31 + " + std::to_string(s + 1) +
                            ") % 1000000007 WHERE id = " + std::to_string(1 + rng() % 10) + "; COMMIT");
      } catch (const std::exception& e) {
        errors[s] = e.what();
      }
    });
  }
  std::this_thread::sleep_for(seconds(4));
  stop = true;
  for (auto& t : sessions) t.join();
  for (const auto& e : errors) EXPECT_EQ(e, "");
  wait_mirror(p);
  std::string expected;  // the ids whose rows differ, as the report writes them
  for (int id = 1; id <= 10; ++id) {
    const std::string q = "SELECT v FROM hot WHERE id = " + std::to_string(id);
    if (old_cluster().query_value(q, db) != new_cluster().query_value(q, db))
      expected += "{\"key\":[\"" + std::to_string(id) + "\"],\"kind\":\"changed\"}";
  }
  auto v = command("verify", p.config_path(), db, {"--recheck-delay-ms", "200"});
  EXPECT_EQ(v.exit_code, expected.empty() ? 0 : 1) << v.describe();
  const std::string report = read_file(dir_->file("state-" + db) + "/verify-report.json");
  if (!expected.empty()) {
    // Sorted by key text in the report, as in the loop above (ids 1..9 then 10 sort as text).
    std::string found;
    for (int id = 1; id <= 10; ++id) {
      const std::string entry = "{\"key\":[\"" + std::to_string(id) + "\"],\"kind\":\"changed\"}";
      if (report.find(entry) != std::string::npos) found += entry;
    }
    EXPECT_EQ(found, expected) << report;
    auto rep = command("repair", p.config_path(), db, {"--admin", "127.0.0.1:" + std::to_string(p.admin_port())});
    EXPECT_EQ(rep.exit_code, 0) << rep.describe();
  }
  EXPECT_EQ(old_cluster().query_value("SELECT string_agg(v::text, ',' ORDER BY id) FROM hot", db),
            new_cluster().query_value("SELECT string_agg(v::text, ',' ORDER BY id) FROM hot", db));
}

TEST_F(MigrateTest, EveryKindOfBuiltInType) {
  const std::string db = make_db("types");
  const char* schema =
      "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');"
      "CREATE DOMAIN posint AS int CHECK (VALUE > 0);"
      "CREATE TABLE types (id int PRIMARY KEY, f4 real, f8 double precision, num numeric, b bool, ch char(3),"
      " vc varchar(10), t text, by bytea, d date, ts timestamp, tz timestamptz, tm time, ttz timetz,"
      " iv interval, u uuid, j json, jb jsonb, x xml, pt point, poly polygon, ln line, bx box, ci circle,"
      " ia int[], ta text[], r int4range, tr tstzrange, m mood, dom posint, inet_ inet, cidr_ cidr,"
      " mac macaddr, bits bit(4), vbits varbit, money_ money, tsv tsvector, oid_ oid, big text)";
  old_cluster().exec(schema, db);
  new_cluster().exec(schema, db);
  old_cluster().exec(
      "INSERT INTO types VALUES (1, 'NaN', '-0', 'NaN', true, 'ab', 'x''y', E'tab\\there\\nnewline', '\\x00ff',"
      " '2024-02-29', '2024-01-01 12:34:56.789', '2024-01-01 12:00+05', '23:59:59.999999', '12:00+03',"
      " '1 year 2 mons -3 days 04:05:06', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"b\": 1,  \"a\": [1, 2]}',"
      " '{\"b\": 1, \"a\": null}', '<a x=\"1\">t</a>', '(1.5,-2)', '((0,0),(1,1),(1,0))', '{1,-1,0}',"
      " '((0,0),(2,2))', '<(1,1),5>', '{1,NULL,3}', '{\"a b\",\"c\\\"d\",NULL}', '[1,10)',"
      " '[2024-01-01,2024-02-01)', 'happy', 7, '10.0.0.1/8', '10.0.0.0/8', '08:00:2b:01:02:03', B'1010',"
      " B'101', 12.34, 'the quick brown fox', 42, NULL);"
      "INSERT INTO types (id, f4, f8, num) VALUES (2, '-0', 'Infinity', '-Infinity'), (3, 1.0e-38, 2.2250738585072014e-308, 0.1);"
      "INSERT INTO types (id, big) SELECT 4, string_agg(md5(g::text), '') FROM generate_series(1, 40000) g;"  // TOASTed
      "INSERT INTO types (id, f8) VALUES (5, 0.1::float8 + 0.2::float8)",
      db);
  const std::string cfg = plain_config();
  // Chunks of 2 rows: the one with the 1.28 MB row is larger than --chunk-memory and is streamed
  // through the staging table, the others go straight into the table.
  auto bf = command("backfill", cfg, db, {"--chunk-rows", "2", "--chunk-memory", "100000", "--mode", "chunked"});
  ASSERT_EQ(bf.exit_code, 0) << bf.describe();
  auto v = command("verify", cfg, db);
  EXPECT_EQ(v.exit_code, 0) << v.describe();
  EXPECT_EQ(new_cluster().query_value("SELECT length(big) FROM types WHERE id = 4", db), "1280000");
  EXPECT_EQ(new_cluster().query_value("SELECT f8::text FROM types WHERE id = 1", db), "-0");
  EXPECT_EQ(new_cluster().query_value("SELECT j::text FROM types WHERE id = 1", db), "{\"b\": 1,  \"a\": [1, 2]}");
  // Differences verify must see: -0 vs 0, NaN vs Infinity, a json's spacing, a point, NULL vs ''.
  new_cluster().exec("UPDATE types SET f4 = 0 WHERE id = 2; UPDATE types SET f8 = 'NaN' WHERE id = 2;"
                     "UPDATE types SET j = '{\"b\": 1, \"a\": [1, 2]}', pt = '(1.5,-2.0000001)' WHERE id = 1;"
                     "UPDATE types SET vc = '' WHERE id = 3; UPDATE types SET f8 = 0.30000000000000004 WHERE id = 5",
                     db);
  auto diff = command("verify", cfg, db, {"--recheck-delay-ms", "50"});
  EXPECT_EQ(diff.exit_code, 1) << diff.describe();
  const std::string report = read_file(dir_->file("state-" + db) + "/verify-report.json");
  for (const char* id : {"[\"1\"]", "[\"2\"]", "[\"3\"]"})
    EXPECT_NE(report.find(std::string("{\"key\":") + id + ",\"kind\":\"changed\"}"), std::string::npos) << id << report;
  EXPECT_EQ(report.find("{\"key\":[\"5\"]"), std::string::npos) << "0.1 + 0.2 is 0.30000000000000004" << report;
  auto rep = command("repair", cfg, db);
  EXPECT_EQ(rep.exit_code, 0) << rep.describe();

  // The snapshot copy: text COPY for this table (an enum and a domain: user types), binary COPY
  // for one with the built-in types only (the same type on both sides), split into page ranges.
  const std::string builtin =
      "CREATE TABLE builtin AS SELECT id, f4, f8, num, b, ch, vc, t, by, d, ts, tz, tm, ttz, iv, u, j, jb, x, pt,"
      " poly, ln, bx, ci, ia, ta, r, tr, inet_, cidr_, mac, bits, vbits, money_, tsv, oid_, big FROM types;"
      "ALTER TABLE builtin ADD PRIMARY KEY (id)";
  old_cluster().exec(builtin + ";INSERT INTO builtin (id, f8, vc) SELECT g, g / 7.0, g::text FROM generate_series(10, 30000) g;"
                     "ANALYZE builtin",
                     db);
  new_cluster().exec(builtin, db);
  new_cluster().exec("TRUNCATE types, builtin", db);
  auto snap = command("backfill", cfg, db, {"--mode", "snapshot", "--jobs", "2", "--chunk-rows", "1000",
                                            "--state-dir", dir_->file("types-snapshot")});
  ASSERT_EQ(snap.exit_code, 0) << snap.describe();
  EXPECT_NE(snap.out.find("backfill complete: 2 tables, 30,001 rows"), std::string::npos) << snap.out;
  EXPECT_NE(snap.out.find("snapshot copy: 2 tables from one snapshot (1 in binary COPY)"), std::string::npos) << snap.out;
  auto v2 = command("verify", cfg, db);
  EXPECT_EQ(v2.exit_code, 0) << v2.describe();
  EXPECT_EQ(new_cluster().query_value("SELECT f8::text || ' ' || length(big) FROM builtin WHERE id = 1 OR id = 4 ORDER BY id", db),
            old_cluster().query_value("SELECT f8::text || ' ' || length(big) FROM builtin WHERE id = 1 OR id = 4 ORDER BY id", db));
}

// Issue 13 with issue 15: a clean verify of every table, started after a crash window ended,
// clears the crash-window mark on the running pgtandem (and says so); a verify of some tables
// does not; a repair whose verify-again is clean does, for a mark its report's verify saw.
TEST_F(MigrateTest, CleanVerifyOrRepairClearsTheCrashWindowSeenAtItsStart) {
  const std::string db = make_db("marks");
  for (PgCluster* c : {&old_cluster(), &new_cluster()}) {
    c->exec("CREATE TABLE t (id int PRIMARY KEY, v int); CREATE TABLE u (id int PRIMARY KEY)", db);
    c->exec("INSERT INTO t SELECT g, g FROM generate_series(1, 500) g; INSERT INTO u VALUES (1)", db);
  }
  ProxyOptions o = Env::get().default_proxy_options();
  o.section_lines[""].push_back("mirror_writes = true");
  o.section_lines[""].push_back("state_dir = \"" + dir_->file("proxy-state") + "\"");
  o.section_lines["admin"].push_back("token = \"migrate-it-token\"");
  auto crash = [&] {
    auto doomed = std::make_unique<ProxyProcess>(o);
    doomed->start();
    doomed->kill();  // SIGKILL: the marker stays, the next start records a crash window
  };
  crash();
  auto p = std::make_unique<ProxyProcess>(o);
  p->start();
  auto status = [&] { return http_get(p->admin_port(), "/status").body; };
  ASSERT_NE(status().find("\"crash_window\":{\"from\":\""), std::string::npos) << status();

  auto some = command("verify", p->config_path(), db, {"--tables", "t"});
  EXPECT_EQ(some.exit_code, 0) << some.describe();
  EXPECT_NE(some.out.find("marks not cleared: --tables"), std::string::npos) << some.out;
  EXPECT_NE(status().find("\"crash_window\":{\"from\":\""), std::string::npos) << "only some tables verified";

  auto all = command("verify", p->config_path(), db);
  EXPECT_EQ(all.exit_code, 0) << all.describe();
  EXPECT_NE(all.out.find("the clean verify cleared 1 needs-repair mark(s)"), std::string::npos) << all.out;
  EXPECT_NE(status().find("\"crash_window\":null"), std::string::npos) << status();
  EXPECT_NE(read_file(dir_->file("state-" + db) + "/audit.log").find("\"marks_cleared\":[{"), std::string::npos);

  // Another crash, and a difference: verify finds it (marks stay), repair fixes it and clears.
  p->stop();
  crash();
  p = std::make_unique<ProxyProcess>(o);
  p->start();
  new_cluster().exec("UPDATE t SET v = -1 WHERE id = 42", db);
  auto differs = command("verify", p->config_path(), db, {"--recheck-delay-ms", "0"});
  EXPECT_EQ(differs.exit_code, 1) << differs.describe();
  EXPECT_EQ(differs.out.find("cleared"), std::string::npos) << differs.out;
  EXPECT_NE(status().find("\"crash_window\":{\"from\":\""), std::string::npos) << status();
  auto rep = command("repair", p->config_path(), db, {"--recheck-delay-ms", "0"});
  EXPECT_EQ(rep.exit_code, 0) << rep.describe();
  EXPECT_NE(rep.out.find("the clean verify cleared 1 needs-repair mark(s)"), std::string::npos) << rep.out;
  EXPECT_NE(status().find("\"crash_window\":null"), std::string::npos) << status();
  EXPECT_EQ(new_cluster().query_value("SELECT v FROM t WHERE id = 42", db), "42");
  p->stop();
}

// Serial and identity columns: preflight names each with its risk and remedy; the backfill sets
// the other target's sequences to at least the primary's.
TEST_F(MigrateTest, SerialColumnsNamedByPreflightAndSequencesRaisedByBackfill) {
  const std::string db = make_db("serial");
  const char* schema =
      "CREATE TABLE s (id bigserial PRIMARY KEY, v int);"
      "CREATE TABLE i (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, n serial)";
  for (PgCluster* c : {&old_cluster(), &new_cluster()}) c->exec(schema, db);
  old_cluster().exec("INSERT INTO s (v) SELECT g FROM generate_series(1, 300) g;"
                     "INSERT INTO i DEFAULT VALUES; SELECT setval('s_id_seq', 9000)",
                     db);
  const std::string cfg = plain_config();
  auto pre = command("preflight", cfg, db);
  EXPECT_NE(pre.out.find("serial: public.s.id (serial, sequence public.s_id_seq, part of the key)"), std::string::npos)
      << pre.out;
  EXPECT_NE(pre.out.find("serial: public.i.id (identity always"), std::string::npos) << pre.out;
  EXPECT_NE(pre.out.find("serial: public.i.n (serial"), std::string::npos) << pre.out;
  EXPECT_NE(pre.out.find("Remedy: verify + repair"), std::string::npos) << pre.out;
  auto bf = command("backfill", cfg, db, {"--no-watermark"});
  ASSERT_EQ(bf.exit_code, 0) << bf.describe();
  EXPECT_NE(bf.out.find("sequences: 3 of 3 set to at least the primary's value"), std::string::npos) << bf.out;
  EXPECT_EQ(new_cluster().query_value("SELECT last_value FROM s_id_seq", db), "9000");
  EXPECT_EQ(new_cluster().query_value("SELECT nextval('i_id_seq')", db), "2");
  auto v = command("verify", cfg, db);
  EXPECT_EQ(v.exit_code, 0) << v.describe();
}

}  // namespace pgtandem::it

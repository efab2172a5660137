// The snapshot backfill and the mirror fence (issue 13; docs/migration.md, "Snapshot backfill"):
// - randomized writers through pgtandem while whole tables are copied from one snapshot: exact
//   with the fence, and not without it (the naive cut: mirrored writes land on the emptied table
//   and are lost under the copy);
// - the backfill SIGKILLed while the fence holds: the fence's lease ends, catch-up applies what
//   was journaled, clients never notice, and the same command copies the rest from a new cut;
// - two pgtandem replicas, writers through both: one cut pauses both;
// - the fence's admin API: a pause that is never armed ends by itself.
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <sys/wait.h>

#include <atomic>
#include <csignal>
#include <random>
#include <thread>

#include "tests/integration/migrate_fixture.h"

namespace pgtandem::it {

namespace {

// Writers through one or more pgtandems: non-commutative updates, deletes and upserts of rows
// of their own (writer w owns the ids = w mod 4), until stop.
struct Writers {
  std::atomic<bool> stop{false};
  std::atomic<long> ops{0};
  std::vector<std::thread> threads;
  std::vector<std::string> errors;

  void start(const std::vector<std::string>& conninfos, int rows) {
    errors.resize(4);
    for (int w = 0; w < 4; ++w) {
      threads.emplace_back([this, w, rows, conninfo = conninfos[w % conninfos.size()]] {
        try {
          ConnPtr c = connect(conninfo);
          std::mt19937 rng(977 + w);
          while (!stop) {
            const int id = 4 * static_cast<int>(rng() % (rows / 4)) + w + (w == 0 ? 4 : 0);
            const std::string ids = std::to_string(id);
            switch (rng() % 4) {
              case 0:
              case 1:
                exec(c.get(), "UPDATE t SET v = (v * 31 + " + std::to_string(rng() % 1000) +
                                  ") % 1000000007 WHERE id = " + ids);
                break;
              case 2:
                exec(c.get(), "DELETE FROM t WHERE id = " + ids);
                break;
              default:
                exec(c.get(), "INSERT INTO t VALUES (" + ids + ", 7, " + std::to_string(w) +
                                  ") ON CONFLICT (id) DO UPDATE SET v = t.v * 3 + 1");
            }
            ++ops;
            std::this_thread::sleep_for(milliseconds(2));
          }
        } catch (const std::exception& e) {
          errors[w] = e.what();
        }
      });
    }
  }
  void finish() {
    stop = true;
    for (auto& t : threads) t.join();
    threads.clear();
  }
};

}  // namespace

class MigrateSnapshotTest : public MigrateTest {
 protected:
  // A mirroring pgtandem with a journal of its own (several may run side by side).
  ProxyProcess& start_replica(const std::string& name, bool catchup = true, const std::string& more_toml = "") {
    ProxyOptions o = Env::get().default_proxy_options();
    o.section_lines[""].push_back("mirror_writes = true");
    o.section_lines["admin"].push_back("token = \"migrate-it-token\"");
    o.extra_toml = "[mirror]\njournal_path = \"" + dir_->file(name + ".journal") + "\"\n";
    if (!catchup) o.extra_toml += "catchup = false\n";
    o.extra_toml += more_toml;
    return start_proxy(o);
  }
  static std::string admin(ProxyProcess& p) { return "127.0.0.1:" + std::to_string(p.admin_port()); }
  static HttpResponse fence_request(ProxyProcess& p, const std::string& query, const std::string& token) {
    return http_request(p.admin_port(), "POST", "/mirror/fence?" + query, {"Authorization: Bearer " + token});
  }
  static std::string fence(ProxyProcess& p, const std::string& query) {
    return fence_request(p, query, "migrate-it-token").body;
  }
  // The largest "rows" of a run's state document (0: none yet).
  static long rows_reported(const std::string& path) {
    const std::string doc = read_file(path);
    long most = 0;
    for (size_t at = doc.find("\"rows\":"); at != std::string::npos; at = doc.find("\"rows\":", at + 1))
      most = std::max(most, std::strtol(doc.c_str() + at + 7, nullptr, 10));
    return most;
  }

  std::string table_db(const std::string& name, int rows) {
    const std::string db = make_db(name);
    const char* schema = "CREATE TABLE t (id int PRIMARY KEY, v bigint NOT NULL, w int NOT NULL)";
    old_cluster().exec(schema, db);
    new_cluster().exec(schema, db);
    old_cluster().exec("INSERT INTO t SELECT g, g, g % 4 FROM generate_series(1, " + std::to_string(rows) + ") g;"
                       "ANALYZE t",
                       db);
    return db;
  }

  // Writers during a snapshot backfill (--max-rate stretches the copy over ~1 s of writes);
  // returns verify's exit code. `fenced` false: --no-watermark, the naive cut.
  int snapshot_writers(const std::string& name, bool fenced, ProcessResult* bf) {
    const std::string db = table_db(name, 8000);
    ProxyProcess& p = start_replica(name);
    Writers writers;
    writers.start({p.endpoint().conninfo("", db)}, 8000);
    std::this_thread::sleep_for(milliseconds(300));
    std::vector<std::string> args = {"--mode", "snapshot", "--jobs", "2", "--chunk-rows", "1000",
                                     "--max-rate", "8000", "--admin", admin(p)};
    if (!fenced) args.push_back("--no-watermark");
    *bf = command("backfill", p.config_path(), db, args, milliseconds(60000));
    std::this_thread::sleep_for(milliseconds(300));
    writers.finish();
    for (const auto& e : writers.errors) EXPECT_EQ(e, "");
    EXPECT_GT(writers.ops.load(), 200);
    wait_mirror(p);
    auto v = command("verify", p.config_path(), db, {"--recheck-delay-ms", "200"});
    last_report_ = bf->out + bf->err + "\n" + v.out + "\n" + read_file(dir_->file("state-" + db) + "/verify-report.json");
    // Catch-up recorded what it applied in a table of its own on new: pgtandem's bookkeeping, which
    // the commands leave out (after a cutover, verify compares new's tables against old's).
    if (fenced) {
      EXPECT_NE(new_cluster().query_value("SELECT count(*) FROM pgtandem_mirror_applied", db), "0");
      auto pre = command("preflight", p.config_path(), db);
      EXPECT_EQ(pre.out.find("pgtandem_mirror_applied"), std::string::npos) << pre.out;
      EXPECT_NE(pre.out.find("schemas compatible: 1 tables"), std::string::npos) << pre.out;
    }
    status_ = http_get(p.admin_port(), "/status").body;
    metrics_ = p.metrics();
    p.stop();
    return v.exit_code;
  }
};

TEST_F(MigrateSnapshotTest, RandomizedWritersDuringTheCopyExactWithTheFenceNotWithout) {
  ProcessResult bf;
  EXPECT_EQ(snapshot_writers("snap_fenced", true, &bf), 0) << last_report_;
  EXPECT_EQ(bf.exit_code, 0) << bf.describe();
  EXPECT_NE(bf.out.find("snapshot copy: 1 tables from one snapshot (1 in binary COPY)"), std::string::npos) << bf.out;
  EXPECT_NE(bf.out.find("mirrored writes journaled meanwhile and applied on top"), std::string::npos) << bf.out;
  // Writes went on during the copy: they waited in the journal and catch-up applied them.
  EXPECT_EQ(metrics_.sum("pgtandem_mirror_fences_total"), 1) << metrics_.text();
  EXPECT_EQ(metrics_.sum("pgtandem_mirror_fences_expired_total"), 0) << metrics_.text();
  EXPECT_GT(metrics_.sum("pgtandem_mirror_catchup_applied_total"), 20) << metrics_.text();
  EXPECT_EQ(metrics_.sum("pgtandem_mirror_fence_state", {{"state", "idle"}}), 1) << metrics_.text();
  EXPECT_NE(status_.find("\"fence\":{\"state\":\"idle\""), std::string::npos) << status_;
  // The journal applied on top of the copy met every row as the primary had it: no divergence
  // (the writes before the backfill, on rows new did not hold yet, are counted apart).
  EXPECT_NE(status_.find("\"skipped_already_applied\":0,\"divergences\":0"), std::string::npos) << status_;

  // The naive cut: the same copy with no fence. Mirrored writes reach the emptied table before
  // the copy commits (an UPDATE finds no row), or collide with it: rows differ.
  EXPECT_EQ(snapshot_writers("snap_naive", false, &bf), 1) << last_report_;
}

// Killed while the fence holds: the lease ends it, catch-up applies the journal, the writers
// never notice; the same command takes a new cut and copies what was not confirmed.
TEST_F(MigrateSnapshotTest, KilledWhileFencedTheLeaseEndsItAndTheRunResumes) {
  const std::string db = table_db("snap_kill", 30000);
  ProxyProcess& p = start_replica("snap_kill");
  Writers writers;
  writers.start({p.endpoint().conninfo("", db)}, 30000);
  std::this_thread::sleep_for(milliseconds(300));
  const std::string state = dir_->file("state-" + db);
  ChildProcess child;
  child.spawn({pgtandem_binary(), "backfill", "--config", p.config_path(), "--user", "postgres", "--dbname", db,
               "--state-dir", state, "--mode", "snapshot", "--jobs", "2", "--max-rate", "4000",
               "--fence-lease-ms", "1000", "--admin", admin(p)},
              dir_->file("snap_kill.log"));
  ASSERT_TRUE(poll_until([&] { return fence(p, "action=status").find("\"state\":\"armed\"") != std::string::npos; },
                         milliseconds(30000)))
      << read_file(dir_->file("snap_kill.log"));
  // Some rows streamed (not yet committed: each part is one transaction on new).
  ASSERT_TRUE(poll_until([&] { return rows_reported(state + "/backfill-state.json") >= 2000; },
                         milliseconds(30000), milliseconds(100)));
  child.kill_and_reap();
  // The lease (1 s) ends the fence; catch-up applies the journal and returns to live.
  EXPECT_TRUE(poll_until(
      [&] {
        const std::string s = fence(p, "action=status");
        return s.find("\"state\":\"idle\"") != std::string::npos && s.find("\"catchup\":\"live\"") != std::string::npos;
      },
      milliseconds(30000)));
  EXPECT_EQ(p.metrics().sum("pgtandem_mirror_fences_expired_total"), 1);
  // The killed copy never committed: new holds only what the writers' upserts put there.
  EXPECT_LT(std::stol(count(new_cluster(), db, "t")), 30000 / 4);
  // SIGTERM (or Ctrl-C) releases the fence at once, not after its lease (15 s by default here).
  ChildProcess term;
  term.spawn({pgtandem_binary(), "backfill", "--config", p.config_path(), "--user", "postgres", "--dbname", db,
              "--state-dir", state, "--mode", "snapshot", "--max-rate", "2000", "--admin", admin(p)},
             dir_->file("snap_term.log"));
  ASSERT_TRUE(poll_until([&] { return fence(p, "action=status").find("\"state\":\"armed\"") != std::string::npos; },
                         milliseconds(30000)))
      << read_file(dir_->file("snap_term.log"));
  ASSERT_TRUE(term.signal_and_wait(SIGTERM, milliseconds(10000)));
  EXPECT_TRUE(WIFEXITED(term.raw_status()) && WEXITSTATUS(term.raw_status()) == 1) << term.exit_description();
  EXPECT_NE(read_file(dir_->file("snap_term.log")).find("interrupted"), std::string::npos)
      << read_file(dir_->file("snap_term.log"));
  EXPECT_NE(fence(p, "action=status").find("\"state\":\"idle\""), std::string::npos);
  EXPECT_EQ(p.metrics().sum("pgtandem_mirror_fences_expired_total"), 1);  // released, not expired
  auto again = command("backfill", p.config_path(), db, {"--mode", "snapshot", "--jobs", "2", "--admin", admin(p)});
  EXPECT_EQ(again.exit_code, 0) << again.describe();
  EXPECT_NE(again.out.find("snapshot copy: 1 tables"), std::string::npos) << again.out;
  // Done tables are skipped by a third run (nothing to cut).
  auto third = command("backfill", p.config_path(), db, {"--mode", "snapshot", "--admin", admin(p)});
  EXPECT_EQ(third.exit_code, 0) << third.describe();
  EXPECT_NE(third.out.find("1 tables already copied"), std::string::npos) << third.out;
  writers.finish();
  for (const auto& e : writers.errors) EXPECT_EQ(e, "");
  wait_mirror(p);
  auto v = command("verify", p.config_path(), db, {"--recheck-delay-ms", "200"});
  EXPECT_EQ(v.exit_code, 0) << v.describe();
  EXPECT_EQ(p.metrics().sum("pgtandem_mirror_fences_total"), 3);
}

// Two pgtandems, writers through both: the cut pauses both before the snapshot, and both fences
// hold the writes made through them.
TEST_F(MigrateSnapshotTest, OneCutAcrossTwoReplicas) {
  const std::string db = table_db("snap_two", 8000);
  ProxyProcess& a = start_replica("snap_two_a");
  ProxyProcess& b = start_replica("snap_two_b");
  Writers writers;
  writers.start({a.endpoint().conninfo("", db), b.endpoint().conninfo("", db)}, 8000);
  std::this_thread::sleep_for(milliseconds(300));
  auto bf = command("backfill", a.config_path(), db,
                    {"--mode", "snapshot", "--jobs", "2", "--max-rate", "8000", "--admin", admin(a), "--admin", admin(b)});
  writers.finish();
  EXPECT_EQ(bf.exit_code, 0) << bf.describe();
  for (const auto& e : writers.errors) EXPECT_EQ(e, "");
  wait_mirror(a);
  wait_mirror(b);
  auto v = command("verify", a.config_path(), db, {"--recheck-delay-ms", "200"});
  EXPECT_EQ(v.exit_code, 0) << v.describe();
  EXPECT_EQ(a.metrics().sum("pgtandem_mirror_fences_total"), 1);
  EXPECT_EQ(b.metrics().sum("pgtandem_mirror_fences_total"), 1);
}

// The admin API on its own: a pause that is never armed ends after its lease and traffic goes on;
// an arm with a stale id is refused; a fence needs the token.
TEST_F(MigrateSnapshotTest, FenceApiPauseLeaseEndsAndStaleIdsAreRefused) {
  const std::string db = table_db("snap_api", 10);
  // A control user, so that this pgtandem offers the cutover (refused under the fence, below); its
  // control schema goes at the end, whatever happens (a later test's pgtandem would read it).
  struct DropControl {
    PgCluster* clusters[2];
    ~DropControl() {
      for (PgCluster* c : clusters)
        if (c->running()) c->exec("DROP SCHEMA IF EXISTS pgtandem_control CASCADE");
    }
  } drop_control{{&old_cluster(), &new_cluster()}};
  ProxyProcess& p = start_replica("snap_api", true, "[classifier]\ncatalog_user = \"postgres\"\n");
  ConnPtr c = connect(p.endpoint().conninfo("", db));
  const std::string paused = fence(p, "action=pause&timeout_ms=2000&lease_ms=500");
  ASSERT_NE(paused.find("\"state\":\"paused\""), std::string::npos) << paused;
  const size_t at = paused.find("\"id\":\"") + 6;
  const std::string id = paused.substr(at, paused.find('"', at) - at);
  // A client's statement waits at the gate while paused, and runs once the lease ends.
  const auto start = std::chrono::steady_clock::now();
  exec(c.get(), "UPDATE t SET v = v + 1 WHERE id = 1");
  const auto waited = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GE(waited, 200) << "the statement did not wait at the paused gate";
  EXPECT_NE(fence(p, "action=status").find("\"state\":\"idle\""), std::string::npos);
  const std::string late = fence(p, "action=arm&id=" + id + "&lease_ms=1000");
  EXPECT_NE(late.find("the pause ended"), std::string::npos) << late;
  EXPECT_NE(fence(p, "action=renew&id=nope").find("no fence with this id"), std::string::npos);
  EXPECT_EQ(fence_request(p, "action=pause", "wrong-token").status, 401);
  // Paused, armed, released: the write made while armed reaches new through catch-up.
  const std::string p2 = fence(p, "action=pause&timeout_ms=2000&lease_ms=5000");
  const size_t at2 = p2.find("\"id\":\"") + 6;
  const std::string id2 = p2.substr(at2, p2.find('"', at2) - at2);
  EXPECT_NE(fence(p, "action=arm&id=" + id2 + "&lease_ms=5000").find("\"state\":\"armed\""), std::string::npos);
  exec(c.get(), "UPDATE t SET v = 424242 WHERE id = 2");
  EXPECT_TRUE(poll_until([&] { return fence(p, "action=status").find("\"backlog_entries\":1") != std::string::npos; },
                         milliseconds(10000)));
  EXPECT_EQ(new_cluster().query_value("SELECT count(*) FROM t WHERE v = 424242", db), "0");  // held back
  // No cutover, not even forced, under a fence: it would open the gate and switch the primary.
  const auto cut = http_request(p.admin_port(), "POST", "/cutover?to=new&force=1",
                                {"Authorization: Bearer migrate-it-token"});
  EXPECT_NE(cut.body.find("mirror fence is held"), std::string::npos) << cut.status << " " << cut.body;
  EXPECT_NE(fence(p, "action=release&id=" + id2).find("\"ended\":\"released\""), std::string::npos);
  EXPECT_TRUE(poll_until([&] { return fence(p, "action=status").find("\"catchup\":\"live\"") != std::string::npos; },
                         milliseconds(10000)));
  // new has no rows of t (never backfilled): the UPDATE applied there matched none, as mirrored.
  EXPECT_EQ(p.metrics().sum("pgtandem_mirror_catchup_applied_total"), 1);
}

// A pgtandem without catch-up offers no fence: "auto" copies in chunks instead and says why;
// "snapshot" refuses with the reason, and nothing was paused or emptied.
TEST_F(MigrateSnapshotTest, WithoutCatchupAutoFallsBackToTheChunkedCopy) {
  const std::string db = table_db("snap_nocatchup", 3000);
  ProxyProcess& p = start_replica("snap_nocatchup", false);
  auto snap = command("backfill", p.config_path(), db, {"--mode", "snapshot", "--admin", admin(p)});
  EXPECT_EQ(snap.exit_code, 1) << snap.describe();
  EXPECT_NE(snap.err.find("the mirror fence needs mirror_writes and [mirror] catchup on at start"), std::string::npos)
      << snap.err;
  auto aut = command("backfill", p.config_path(), db, {"--admin", admin(p)});
  EXPECT_EQ(aut.exit_code, 0) << aut.describe();
  EXPECT_NE(aut.out.find("snapshot copy unavailable"), std::string::npos) << aut.out;
  EXPECT_NE(aut.out.find("copying in key-ordered chunks under row locks instead"), std::string::npos) << aut.out;
  EXPECT_NE(aut.out.find("mirror barrier:"), std::string::npos) << aut.out;
  auto v = command("verify", p.config_path(), db);
  EXPECT_EQ(v.exit_code, 0) << v.describe();
}

}  // namespace pgtandem::it

namespace pgtandem::it {

// `new` stopped in the middle of a snapshot copy: a clear error naming it, then the same command
// takes a new snapshot and copies the table (no fence here: nothing mirrors).
TEST_F(MigrateSnapshotTest, NewStoppedDuringTheCopyClearErrorThenResume) {
  const std::string db = table_db("snap_down", 30000);
  const std::string cfg = plain_config();
  const std::string state = dir_->file("state-" + db);
  ProcessResult down;
  std::atomic<bool> done{false};
  std::thread runner([&] {
    down = command("backfill", cfg, db, {"--mode", "snapshot", "--jobs", "1", "--max-rate", "4000"},
                   milliseconds(90000));
    done = true;
  });
  const bool started = poll_until([&] { return rows_reported(state + "/backfill-state.json") >= 4000; },
                                  milliseconds(30000), milliseconds(50));
  EXPECT_TRUE(started);
  EXPECT_FALSE(done.load()) << "the capped run finished before new was stopped";
  new_cluster().stop();
  runner.join();
  EXPECT_EQ(down.exit_code, 1) << down.describe();
  EXPECT_NE(down.err.find("new (127.0.0.1:" + std::to_string(new_cluster().port()) + ")"), std::string::npos)
      << down.err;
  EXPECT_NE(down.err.find("run the same command again to continue"), std::string::npos) << down.err;
  new_cluster().start();
  auto resumed = command("backfill", cfg, db, {"--mode", "snapshot"});
  EXPECT_EQ(resumed.exit_code, 0) << resumed.describe();
  EXPECT_EQ(count(new_cluster(), db, "t"), "30000");
  auto v = command("verify", cfg, db);
  EXPECT_EQ(v.exit_code, 0) << v.describe();
}

}  // namespace pgtandem::it

namespace pgtandem::it {

// The journal's limit counts the file. A fence ends when the file reaches 3/4 of it, the run stops
// with the reason, and nothing is lost: catch-up applies the journal, mirroring goes on (it never
// reached the limit). With the file past half the limit the fence is not offered: `auto` copies
// in chunks instead.
TEST_F(MigrateSnapshotTest, JournalNearItsLimitEndsTheFenceThenAutoCopiesInChunks) {
  const std::string db = table_db("snap_limit", 30000);
  ProxyProcess& p = start_replica("snap_limit", true, "journal_max_bytes = 262144\n");
  std::atomic<bool> stop{false};
  std::atomic<long> writes{0};
  std::string writer_error;
  std::thread writer([&] {  // about 100 writes a second, each a journal entry under the fence
    try {
      ConnPtr c = connect(p.endpoint().conninfo("", db));
      for (int i = 0; !stop; ++i) {
        exec(c.get(), "UPDATE t SET v = (v * 31 + 7) % 1000000007 WHERE id = " + std::to_string(1 + i % 30000));
        ++writes;
        std::this_thread::sleep_for(milliseconds(10));
      }
    } catch (const std::exception& e) {
      writer_error = e.what();
    }
  });
  std::this_thread::sleep_for(milliseconds(300));
  auto bf = command("backfill", p.config_path(), db,
                    {"--mode", "snapshot", "--max-rate", "1500", "--fence-lease-ms", "1000", "--admin", admin(p)},
                    milliseconds(90000));
  EXPECT_EQ(bf.exit_code, 1) << bf.describe();
  EXPECT_NE(bf.err.find("the mirror fence ended before the copy did"), std::string::npos) << bf.err;
  EXPECT_NE(bf.err.find("3/4 of [mirror] journal_max_bytes"), std::string::npos) << bf.err;
  EXPECT_TRUE(poll_until([&] { return fence(p, "action=status").find("\"catchup\":\"live\"") != std::string::npos; },
                         milliseconds(30000)));
  EXPECT_EQ(p.metrics().sum("pgtandem_mirror_fences_expired_total"), 1);
  EXPECT_EQ(p.metrics().sum("pgtandem_mirror_needs_repair"), 0) << "mirroring must not have stopped";
  auto aut = command("backfill", p.config_path(), db, {"--admin", admin(p)});
  EXPECT_EQ(aut.exit_code, 0) << aut.describe();
  EXPECT_NE(aut.out.find("snapshot copy unavailable"), std::string::npos) << aut.out;
  EXPECT_NE(aut.out.find("half of [mirror] journal_max_bytes or more"), std::string::npos) << aut.out;
  stop = true;
  writer.join();
  EXPECT_EQ(writer_error, "");
  wait_mirror(p);
  auto v = command("verify", p.config_path(), db);
  EXPECT_EQ(v.exit_code, 0) << v.describe();
}

}  // namespace pgtandem::it

namespace pgtandem::it {

// A partitioned table (COPY TO reads it only through a query; TRUNCATE takes its partitions), an
// inheritance parent with a child (each table holds its own rows: ONLY for both), and a table
// without a key (the snapshot copies it whole, no lock needed).
TEST_F(MigrateSnapshotTest, PartitionedInheritedAndKeylessTables) {
  const std::string db = make_db("snap_parts");
  const char* schema =
      "CREATE TABLE m (id int, part int, v text, PRIMARY KEY (id, part)) PARTITION BY LIST (part);"
      "CREATE TABLE m1 PARTITION OF m FOR VALUES IN (1); CREATE TABLE m2 PARTITION OF m FOR VALUES IN (2);"
      "CREATE TABLE parent (id int PRIMARY KEY, v text); CREATE TABLE child (extra int) INHERITS (parent);"
      "ALTER TABLE child ADD PRIMARY KEY (id); CREATE TABLE log (who text, what text)";
  old_cluster().exec(schema, db);
  new_cluster().exec(schema, db);
  old_cluster().exec("INSERT INTO m SELECT g, 1 + g % 2, md5(g::text) FROM generate_series(1, 5000) g;"
                     "INSERT INTO parent SELECT g, 'p' FROM generate_series(1, 100) g;"
                     "INSERT INTO child SELECT g, 'c', g FROM generate_series(1001, 1200) g;"
                     "INSERT INTO log SELECT 'u' || (g % 7), 'dup' FROM generate_series(1, 3000) g",
                     db);
  // Stale rows on new the copy must replace, in a partition and in the child.
  new_cluster().exec("INSERT INTO m VALUES (1, 2, 'stale'); INSERT INTO child VALUES (1001, 'stale', 0)", db);
  const std::string cfg = plain_config();
  auto bf = command("backfill", cfg, db, {"--mode", "snapshot"});
  ASSERT_EQ(bf.exit_code, 0) << bf.describe();
  EXPECT_EQ(count(new_cluster(), db, "m"), "5000");
  EXPECT_EQ(count(new_cluster(), db, "m2"), "2500");
  EXPECT_EQ(count(new_cluster(), db, "ONLY parent"), "100");
  EXPECT_EQ(count(new_cluster(), db, "child"), "200");
  EXPECT_EQ(count(new_cluster(), db, "log"), "3000");  // no key: copied whole from the snapshot
  auto v = command("verify", cfg, db);
  EXPECT_EQ(v.exit_code, 0) << v.describe();
}

}  // namespace pgtandem::it

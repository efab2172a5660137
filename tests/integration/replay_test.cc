// `pgtandem replay` (proxy/mirror/replay.h) against a real PostgreSQL server: journal entries built by
// hand (simple Query, extended protocol with binary parameters binding a journaled prepared
// statement, an explicit transaction, session state the write depends on) are applied in order,
// never twice; a statement that fails on the target is a divergence; a target that is down stops
// replay without recording anything past the failed entry.
#include "proxy/mirror/replay.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <thread>

#include "protocol/messages.h"
#include "proxy/mirror/journal.h"
#include "tests/integration/fixture.h"

namespace pgtandem::it {
namespace {

using proxy::FsyncPolicy;
using proxy::Journal;
using proxy::JournalEntry;
using proxy::ReplayOptions;
using proxy::ReplaySummary;
using policy::Outcome;

std::string query_msg(const std::string& sql) {
  std::string out;
  protocol::encode(out, protocol::Query{sql});
  return out;
}

std::string parse_msg(const std::string& name, const std::string& sql,
                      std::vector<uint32_t> types) {
  std::string out;
  protocol::encode_parse(out, name, sql, types);
  return out;
}

// Bind (unnamed portal) + Execute + Sync.
std::string bind_execute_sync(const std::string& statement, std::vector<int16_t> formats,
                              const std::vector<std::string>& params) {
  std::vector<protocol::Value> values;
  for (const auto& p : params) values.push_back(protocol::Value::of(p));
  std::string out;
  protocol::encode_bind(out, "", statement, formats, values, {});
  protocol::encode(out, protocol::Execute{"", 0});
  protocol::encode(out, protocol::Sync{});
  return out;
}

std::string int4_binary(uint32_t v) { return be32(v); }

class ReplayTest : public ClusterTest {
 protected:
  void SetUp() override {
    ClusterTest::SetUp();
    dir_ = std::make_unique<TempDir>("pgtandem-replay");
    journal_path_ = dir_->file("mirror.journal");
    schema_ = unique("replay");
    new_cluster().exec("CREATE SCHEMA " + schema_ + ";" + "CREATE TABLE " + schema_ +
                       ".t (id int PRIMARY KEY, v text, b bytea);" + "CREATE TABLE " + schema_ +
                       ".c (n int);" + "INSERT INTO " + schema_ + ".c VALUES (0);" +
                       "GRANT USAGE ON SCHEMA " + schema_ + " TO " + kScramUser + ";" +
                       "GRANT ALL ON ALL TABLES IN SCHEMA " + schema_ + " TO " + kScramUser);
    // pgtandem's credentials for the target (SCRAM user): the pgpass path of replay's login.
    std::string pgpass = dir_->file("credentials");
    write_file(pgpass, "127.0.0.1:" + std::to_string(new_cluster().port()) +
                           ":postgres:" + kScramUser + ":" + kScramPassword + "\n");
    ::chmod(pgpass.c_str(), 0600);
    cfg_.targets = {{"old", "127.0.0.1", old_cluster().port(), ""},
                    {"new", "127.0.0.1", new_cluster().port(), ""}};
    cfg_.mirror.credentials_file = pgpass;
    cfg_.limits.connect_timeout_ms = 3000;
  }

  void TearDown() override {
    if (HasFailure() || std::getenv("PGTANDEM_IT_SHOW_REPORT") != nullptr)
      std::fprintf(stderr, "last replay report:\n%s", last_report_.c_str());
    new_cluster().exec("SET client_min_messages = warning; DROP SCHEMA IF EXISTS " + schema_ +
                       " CASCADE");
    ClusterTest::TearDown();
  }

  JournalEntry entry(const std::string& session, const std::string& user) {
    JournalEntry e;
    e.target = "new";
    e.reason = "target_unavailable";
    e.detail = "connection refused";
    e.session.id = session;
    e.session.user = user;
    e.session.database = "postgres";
    e.session.params = {{"user", user},
                        {"database", "postgres"},
                        {"application_name", "replay-test"},
                        {"client_encoding", "UTF8"}};
    // The writes name their tables without a schema: they depend on this session state.
    e.session.state = {query_msg("SET search_path = " + schema_)};
    return e;
  }

  JournalEntry simple(const std::string& session, const std::string& user, const std::string& sql,
                      std::vector<Outcome> primary) {
    JournalEntry e = entry(session, user);
    e.unit.bytes = query_msg(sql);
    e.unit.responses = 1;
    e.unit.primary = std::move(primary);
    e.unit.first_sql = sql;
    return e;
  }

  // Binds the named statement "ins" (journaled in `prepared`) with binary int4 and bytea.
  JournalEntry insert_extended(const std::string& session, const std::string& user, uint32_t id,
                               const std::string& v, const std::string& b) {
    JournalEntry e = entry(session, user);
    const std::string sql = "INSERT INTO t (id, v, b) VALUES ($1, $2, $3)";
    e.session.prepared = {{"ins", parse_msg("ins", sql, {23, 25, 17})}};
    e.unit.bytes = bind_execute_sync("ins", {1, 0, 1}, {int4_binary(id), v, b});
    e.unit.responses = 1;
    e.unit.primary = {{"INSERT 0 1", ""}};
    e.unit.binds = {"ins"};
    e.unit.first_sql = sql;
    return e;
  }

  void append(std::vector<JournalEntry> entries) {
    std::string error;
    auto j = Journal::open(journal_path_, FsyncPolicy::kAlways, 100, &error);
    ASSERT_NE(j, nullptr) << error;
    for (auto& e : entries) ASSERT_GT(j->append(std::move(e)), 0u);
  }

  int replay(ReplaySummary* s, const config::Config* cfg = nullptr, ReplayOptions opts = {}) {
    std::ostringstream report;
    int code = proxy::run_replay(cfg ? *cfg : cfg_, journal_path_, opts, report, s);
    last_report_ = report.str();
    return code;
  }

  std::string rows() {
    return new_cluster().query_value(
        "SELECT coalesce(string_agg(id || ':' || v || ':' || coalesce(encode(b, 'hex'), '-'), "
        "',' ORDER BY id), '') FROM " +
        schema_ + ".t");
  }
  std::string counter() { return new_cluster().query_value("SELECT n FROM " + schema_ + ".c"); }

  std::unique_ptr<TempDir> dir_;
  std::string journal_path_;
  std::string schema_;
  config::Config cfg_;
  std::string last_report_;
};

TEST_F(ReplayTest, AppliesInOrderWithSessionStateAndNeverTwice) {
  const std::string bin("\x00\x01\xff'\"\\", 6);
  JournalEntry txn = entry("A", kScramUser);
  txn.unit.bytes = query_msg("BEGIN") + query_msg("UPDATE t SET v = 'uno' WHERE id = 1") +
                   query_msg("UPDATE c SET n = n + 1") + query_msg("COMMIT");
  txn.unit.responses = 4;
  txn.unit.primary = {{"BEGIN", ""}, {"UPDATE 1", ""}, {"UPDATE 1", ""}, {"COMMIT", ""}};
  txn.unit.transaction = true;
  txn.unit.first_sql = "BEGIN";
  append({simple("A", kScramUser, "INSERT INTO t (id, v) VALUES (1, 'one')", {{"INSERT 0 1", ""}}),
          insert_extended("A", kScramUser, 2, "two", bin), std::move(txn),
          // Another session: its own connection, its own copy of "ins".
          insert_extended("B", "postgres", 3, "three", std::string("\x80", 1)),
          // Session A again: "ins" is already prepared on its connection.
          insert_extended("A", kScramUser, 4, "four", "")});

  ReplaySummary s;
  ASSERT_EQ(replay(&s), 0) << last_report_;
  EXPECT_EQ(s.entries_read, 5u);
  EXPECT_EQ(s.applied, 5u);
  EXPECT_EQ(s.already_applied, 0u);
  EXPECT_EQ(s.divergences, 0u);
  EXPECT_EQ(s.last_applied_seq, 5u);
  const std::string want = "1:uno:-,2:two:0001ff27225c,3:three:80,4:four:";
  EXPECT_EQ(rows(), want);
  EXPECT_EQ(counter(), "1");
  EXPECT_NE(read_file(proxy::applied_state_path(journal_path_)).find("seq 5\n"), std::string::npos);

  // Again: everything is skipped as already applied, nothing changes.
  ASSERT_EQ(replay(&s), 0) << last_report_;
  EXPECT_EQ(s.entries_read, 5u);
  EXPECT_EQ(s.applied, 0u);
  EXPECT_EQ(s.already_applied, 5u);
  EXPECT_NE(last_report_.find("skipped (already applied):      5"), std::string::npos)
      << last_report_;
  EXPECT_EQ(rows(), want);
  EXPECT_EQ(counter(), "1");

  // New entries appended later are applied, the old ones still skipped.
  append({simple("C", "postgres", "UPDATE c SET n = n + 10", {{"UPDATE 1", ""}})});
  ASSERT_EQ(replay(&s), 0) << last_report_;
  EXPECT_EQ(s.applied, 1u);
  EXPECT_EQ(s.already_applied, 5u);
  EXPECT_EQ(counter(), "11");
}

TEST_F(ReplayTest, StatementErrorOnTheTargetIsADivergenceAndReplayGoesOn) {
  new_cluster().exec("INSERT INTO " + schema_ + ".t (id, v) VALUES (1, 'already there')");
  append({simple("A", "postgres", "INSERT INTO t (id, v) VALUES (1, 'dup')", {{"INSERT 0 1", ""}}),
          insert_extended("A", "postgres", 2, "two", "x")});
  ReplaySummary s;
  EXPECT_EQ(replay(&s), 2) << last_report_;
  EXPECT_EQ(s.applied, 2u);
  EXPECT_EQ(s.divergences, 1u);
  EXPECT_EQ(s.failures, 0u);
  EXPECT_EQ(s.last_applied_seq, 2u);
  EXPECT_NE(last_report_.find("divergence: seq=1 target=new session=A"), std::string::npos)
      << last_report_;
  EXPECT_NE(last_report_.find("primary=[INSERT 0 1] target=[ERROR 23505]"), std::string::npos)
      << last_report_;
  EXPECT_NE(last_report_.find("divergences:                    1"), std::string::npos)
      << last_report_;
  EXPECT_EQ(rows(), "1:already there:-,2:two:78");

  // Recorded as applied: a second run does not repeat the divergent entry.
  EXPECT_EQ(replay(&s), 0) << last_report_;
  EXPECT_EQ(s.already_applied, 2u);
  EXPECT_EQ(s.divergences, 0u);
}

// Extended-protocol entries go as one request each (one Sync), pipelined: one that fails on the
// target leaves its transaction failed, so the entries sent after it run without effect; they
// are sent again and applied once, in order, and only the failed one is a divergence.
TEST_F(ReplayTest, FailedEntryInAPipelinedBatchLeavesTheNextOnesAppliedOnce) {
  new_cluster().exec("INSERT INTO " + schema_ + ".t (id, v) VALUES (2, 'already there')");
  JournalEntry txn = entry("A", "postgres");
  txn.session.prepared = {{"bump", parse_msg("bump", "UPDATE c SET n = n + $1", {23})}};
  std::string begin_q, commit_q;
  protocol::encode_parse(begin_q, "", "BEGIN", {});
  begin_q += bind_execute_sync("", {}, {});
  protocol::encode_parse(commit_q, "", "COMMIT", {});
  commit_q += bind_execute_sync("", {}, {});
  txn.unit.bytes = begin_q + bind_execute_sync("bump", {1}, {int4_binary(5)}) +
                   bind_execute_sync("bump", {1}, {int4_binary(7)}) + commit_q;
  txn.unit.responses = 4;
  txn.unit.primary = {{"BEGIN", ""}, {"UPDATE 1", ""}, {"UPDATE 1", ""}, {"COMMIT", ""}};
  txn.unit.transaction = true;
  txn.unit.binds = {"bump"};
  txn.unit.first_sql = "BEGIN";
  append({insert_extended("A", "postgres", 1, "one", "a"),
          insert_extended("A", "postgres", 2, "two", "b"),  // 23505 on the target
          insert_extended("A", "postgres", 3, "three", "c"), std::move(txn),
          insert_extended("A", "postgres", 4, "four", "d")});
  ReplaySummary s;
  EXPECT_EQ(replay(&s), 2) << last_report_;
  EXPECT_EQ(s.applied, 5u) << last_report_;
  EXPECT_EQ(s.divergences, 1u) << last_report_;
  EXPECT_EQ(s.failures, 0u) << last_report_;
  EXPECT_NE(last_report_.find("divergence: seq=2 target=new session=A: primary=[INSERT 0 1] "
                              "target=[ERROR 23505]"),
            std::string::npos)
      << last_report_;
  EXPECT_EQ(rows(), "1:one:61,2:already there:-,3:three:63,4:four:64");
  EXPECT_EQ(counter(), "12");
  EXPECT_EQ(replay(&s), 0) << last_report_;
  EXPECT_EQ(s.already_applied, 5u);
  EXPECT_EQ(counter(), "12");
}

// Once a connection has the statements prepared, entries in a row commit as one transaction
// (one BEGIN, one COMMIT, one Sync). A group with an entry that fails on the target rolls back
// as a whole and its entries go again one at a time: the failing one is the only divergence,
// the others are applied once, and a second run finds all recorded.
TEST_F(ReplayTest, GroupedEntriesCommitTogetherAndAFailingOneIsJudgedAlone) {
  new_cluster().exec("INSERT INTO " + schema_ + ".t (id, v) VALUES (6, 'already there')");
  auto ins = [&](uint32_t id) {
    return insert_extended("A", "postgres", id, "v" + std::to_string(id),
                           std::string(1, static_cast<char>('a' + id)));
  };
  // "bump" is not prepared yet when its entry comes: the group before it ends there.
  JournalEntry bump = entry("A", "postgres");
  bump.session.prepared = {{"bump", parse_msg("bump", "UPDATE c SET n = n + $1", {23})}};
  bump.unit.bytes = bind_execute_sync("bump", {1}, {int4_binary(3)});
  bump.unit.responses = 1;
  bump.unit.primary = {{"UPDATE 1", ""}};
  bump.unit.binds = {"bump"};
  bump.unit.first_sql = "UPDATE c SET n = n + $1";
  append({ins(1), ins(2), ins(3), ins(4), std::move(bump), ins(5), ins(6), ins(7)});
  ReplaySummary s;
  EXPECT_EQ(replay(&s), 2) << last_report_;
  EXPECT_EQ(s.applied, 8u) << last_report_;
  EXPECT_EQ(s.divergences, 1u) << last_report_;
  EXPECT_EQ(s.groups, 1u) << last_report_;          // 2, 3, 4
  EXPECT_EQ(s.groups_retried, 1u) << last_report_;  // 5, 6, 7: 6 fails
  EXPECT_NE(last_report_.find("divergence: seq=7 target=new session=A: primary=[INSERT 0 1] "
                              "target=[ERROR 23505]"),
            std::string::npos)
      << last_report_;
  EXPECT_EQ(rows(), "1:v1:62,2:v2:63,3:v3:64,4:v4:65,5:v5:66,6:already there:-,7:v7:68");
  EXPECT_EQ(counter(), "3");
  EXPECT_EQ(replay(&s), 0) << last_report_;
  EXPECT_EQ(s.applied, 0u);
  EXPECT_EQ(s.already_applied, 8u);
  EXPECT_EQ(counter(), "3");
}

TEST_F(ReplayTest, TargetDownStopsWithoutRecordingThePendingEntries) {
  append(
      {simple("A", kScramUser, "INSERT INTO t (id, v) VALUES (1, 'one')", {{"INSERT 0 1", ""}}),
       simple("A", kScramUser, "INSERT INTO t (id, v) VALUES (2, 'two')", {{"INSERT 0 1", ""}})});
  ReplaySummary s;
  ASSERT_EQ(replay(&s), 0) << last_report_;
  EXPECT_EQ(s.last_applied_seq, 2u);

  append(
      {simple("A", kScramUser, "INSERT INTO t (id, v) VALUES (3, 'three')", {{"INSERT 0 1", ""}}),
       simple("B", "postgres", "INSERT INTO t (id, v) VALUES (4, 'four')", {{"INSERT 0 1", ""}})});
  config::Config down = cfg_;
  down.targets[1].port = free_tcp_port();  // nothing listens there
  EXPECT_EQ(replay(&s, &down), 1) << last_report_;
  EXPECT_EQ(s.applied, 0u);
  EXPECT_EQ(s.already_applied, 2u);
  EXPECT_EQ(s.failures, 1u);
  EXPECT_EQ(s.not_attempted, 1u);
  EXPECT_EQ(s.last_applied_seq, 2u);
  EXPECT_NE(last_report_.find("failure: seq=3 target=new session=A: cannot connect"),
            std::string::npos)
      << last_report_;
  const std::string applied = read_file(proxy::applied_state_path(journal_path_));
  EXPECT_NE(applied.find("seq 2\n"), std::string::npos) << applied;
  EXPECT_EQ(rows(), "1:one:-,2:two:-");

  // The target is back: the rest is applied, once.
  ASSERT_EQ(replay(&s), 0) << last_report_;
  EXPECT_EQ(s.applied, 2u);
  EXPECT_EQ(s.already_applied, 2u);
  EXPECT_EQ(rows(), "1:one:-,2:two:-,3:three:-,4:four:-");
}

TEST_F(ReplayTest, EvictedSessionConnectionIsReopenedWithItsState) {
  // One connection at a time: every switch of session closes the other's connection, so each
  // entry runs on a fresh one and needs its session state and prepared statement again.
  append({insert_extended("A", kScramUser, 1, "a1", "1"),
          insert_extended("B", "postgres", 2, "b1", "2"),
          insert_extended("A", kScramUser, 3, "a2", "3"),
          simple("B", "postgres", "INSERT INTO t (id, v) VALUES (4, 'b2')", {{"INSERT 0 1", ""}})});
  ReplayOptions opts;
  opts.max_connections = 1;
  ReplaySummary s;
  ASSERT_EQ(replay(&s, nullptr, opts), 0) << last_report_;
  EXPECT_EQ(s.applied, 4u);
  EXPECT_EQ(rows(), "1:a1:31,2:b1:32,3:a2:33,4:b2:-");
}

TEST_F(ReplayTest, SessionStateFollowsTheEntry) {
  const std::string t = schema_ + ".t";
  const std::string set_path = "SET search_path = " + schema_;
  auto record = [&](uint32_t id, const std::string& setting, std::vector<std::string> state) {
    JournalEntry e = simple("A", "postgres",
                            "INSERT INTO " + t + " (id, v) VALUES (" + std::to_string(id) +
                                ", current_setting('" + setting + "'))",
                            {{"INSERT 0 1", ""}});
    e.session.state.clear();
    for (const auto& sql : state) e.session.state.push_back(query_msg(sql));
    return e;
  };
  append({record(1, "application_name", {set_path}),
          // The state grew: only the new unit runs, on the same connection.
          record(2, "application_name", {set_path, "SET application_name = 'later'"}),
          // A state that does not continue what the connection ran: a fresh connection, whose
          // application_name is the session's startup parameter again.
          record(3, "application_name", {"SET search_path = public"}),
          record(4, "search_path", {"SET search_path = public"})});
  ReplaySummary s;
  ASSERT_EQ(replay(&s), 0) << last_report_;
  EXPECT_EQ(rows(), "1:replay-test:-,2:later:-,3:replay-test:-,4:public:-");
}

TEST_F(ReplayTest, JournaledSessionStateUnitIsNotRunTwice) {
  // As the mirror journals it: a session-state unit that could not be mirrored is an entry of its
  // own, and the session's later entries carry it in their state.
  JournalEntry prepare = simple("A", "postgres",
                                "PREPARE ins_sql (int) AS INSERT INTO t (id, v) "
                                "VALUES ($1, 'prepared')",
                                {{"PREPARE", ""}});
  prepare.unit.session_state = true;
  JournalEntry execute = simple("A", "postgres", "EXECUTE ins_sql(7)", {{"INSERT 0 1", ""}});
  execute.session.state.push_back(prepare.unit.bytes);
  append({std::move(prepare), std::move(execute)});
  ReplaySummary s;
  ASSERT_EQ(replay(&s), 0) << last_report_;
  EXPECT_EQ(s.divergences, 0u);
  EXPECT_EQ(rows(), "7:prepared:-");
}

TEST_F(ReplayTest, UnitLeavingATransactionOpenIsRolledBackAndReported) {
  JournalEntry e = simple("A", "postgres", "BEGIN; INSERT INTO t (id, v) VALUES (1, 'open')",
                          {{"BEGIN", ""}, {"INSERT 0 1", ""}});
  append({std::move(e), simple("A", "postgres", "INSERT INTO t (id, v) VALUES (2, 'after')",
                               {{"INSERT 0 1", ""}})});
  ReplaySummary s;
  EXPECT_EQ(replay(&s), 2) << last_report_;
  EXPECT_EQ(s.divergences, 1u);
  EXPECT_NE(last_report_.find("left a transaction open on the target (status T), rolled back"),
            std::string::npos)
      << last_report_;
  EXPECT_EQ(rows(), "2:after:-");
}

TEST_F(ReplayTest, WrongPasswordIsAFailureNotADivergence) {
  write_file(cfg_.mirror.credentials_file,
             "*:*:*:" + std::string(kScramUser) + ":not-the-password\n");
  ::chmod(cfg_.mirror.credentials_file.c_str(), 0600);
  append(
      {simple("A", kScramUser, "INSERT INTO t (id, v) VALUES (1, 'one')", {{"INSERT 0 1", ""}})});
  ReplaySummary s;
  EXPECT_EQ(replay(&s), 1) << last_report_;
  EXPECT_EQ(s.applied, 0u);
  EXPECT_NE(last_report_.find("cannot log in to target new"), std::string::npos) << last_report_;
  EXPECT_NE(last_report_.find("28P01"), std::string::npos) << last_report_;
  EXPECT_EQ(rows(), "");
}

// A connection dropped with its batch still running on the target (a unit timeout here; a
// SIGKILLed pgtandem in catch-up) leaves a backend that may commit the entry after the next
// connection read the target's record. The next connection's record of the same entry then
// waits for that backend; once it commits, the record refuses (the entry is already applied)
// and the entry is rolled back, not applied a second time. Against a record that only
// overwrites (ON CONFLICT DO UPDATE SET seq = EXCLUDED.seq), the counter ends at 2.
class ReplayRaceTest : public ReplayTest, public ::testing::WithParamInterface<bool> {};

TEST_P(ReplayRaceTest, EntryOfADroppedConnectionCommittedLateIsNotAppliedAgain) {
  const bool extended = GetParam();
  JournalEntry e = entry("A", "postgres");  // may create the target's record table
  if (extended) {
    e.session.prepared = {{"bump", parse_msg("bump", "UPDATE c SET n = n + $1", {23})}};
    e.unit.bytes = bind_execute_sync("bump", {1}, {int4_binary(1)});
    e.unit.binds = {"bump"};
  } else {
    e.unit.bytes = query_msg("UPDATE c SET n = n + 1");
  }
  e.unit.responses = 1;
  e.unit.primary = {{"UPDATE 1", ""}};
  e.unit.first_sql = "UPDATE c SET n = n + 1";
  append({std::move(e)});

  // Hold the counter's row: the entry's UPDATE waits on it.
  ConnPtr holder = connect(new_cluster().conninfo());
  exec(holder.get(), "BEGIN");
  exec(holder.get(), "SELECT n FROM " + schema_ + ".c FOR UPDATE");

  ReplaySummary s1;
  ReplayOptions first;
  first.unit_timeout = std::chrono::milliseconds(300);
  EXPECT_EQ(replay(&s1, nullptr, first), 1) << last_report_;
  EXPECT_EQ(s1.failures, 1u) << last_report_;
  const std::string waiting =
      "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'";
  EXPECT_EQ(new_cluster().query_value(waiting), "1");  // the dropped connection's backend

  // The next run reads the record (nothing committed yet) and sends the entry again.
  ReplaySummary s2;
  int code = -1;
  std::string report;
  std::thread second([&] {
    std::ostringstream r;
    code = proxy::run_replay(cfg_, journal_path_, ReplayOptions{}, r, &s2);
    report = r.str();
  });
  const bool both_wait = poll_until(
      [&] { return new_cluster().query_value(waiting) == "2"; }, std::chrono::milliseconds(20000));
  exec(holder.get(), "COMMIT");  // the first backend's entry commits now
  second.join();
  last_report_ = report;
  ASSERT_TRUE(both_wait) << report;
  EXPECT_EQ(code, 0) << report;
  EXPECT_EQ(s2.applied, 0u) << report;
  EXPECT_EQ(s2.already_applied, 1u) << report;
  EXPECT_EQ(s2.divergences, 0u) << report;
  EXPECT_EQ(counter(), "1") << report;
}

INSTANTIATE_TEST_SUITE_P(Protocols, ReplayRaceTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return std::string(p.param ? "Extended" : "Simple");
                         });

}  // namespace
}  // namespace pgtandem::it

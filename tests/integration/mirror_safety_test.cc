// Issue 15, the mirror's limits and what it may have lost: a journal at its size limit in both
// modes ("stop": mirroring stops, the target is marked as needing verify/repair and the cutover
// gate fails, clients never wait; "block": writes wait at a request boundary, then fail with a
// clear error, and go on once there is room), and the crash window (pgtandem SIGKILLed with writes
// in flight to a stopped `new`: on restart the window is in the log, /status and a metric, and
// the cutover is refused until an operator clears it). Everything lives in a state dir of the
// test's own: nothing is written in the cwd.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <string>
#include <thread>

#include "tests/integration/fixture.h"
#include "tests/integration/harness/harness.h"

namespace pgtandem::it {
namespace {

constexpr const char* kToken = "it-safety-token-0123456789";
constexpr milliseconds kDeadline{60000};
constexpr uint64_t kLimit = 64 * 1024;  // the smallest journal_max_bytes allowed

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// "2026-12-06T08:15:02" (UTC, seconds): comparable as text with /status's timestamps.
std::string utc_seconds(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return buf;
}

long file_size(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return -1;
  return static_cast<long>(st.st_size);
}

class MirrorSafetyTest : public ProxyTest {
 protected:
  void SetUp() override {
    ProxyTest::SetUp();
    if (HasFatalFailure()) return;
    dir_ = std::make_unique<TempDir>("pgtandem-safety-it");
  }
  void TearDown() override {
    restart_new_if_stopped();
    ProxyTest::TearDown();
    for (PgCluster* c : {&old_cluster(), &new_cluster()}) {
      try {
        if (!db_.empty()) c->exec("DROP DATABASE IF EXISTS " + db_ + " WITH (FORCE)");
        c->exec("DROP SCHEMA IF EXISTS pgtandem_control CASCADE");
      } catch (const std::exception&) {
      }
    }
  }

  void make_db(const std::string& base) {
    db_ = unique("safety_" + base);
    for (PgCluster* c : {&old_cluster(), &new_cluster()}) {
      c->create_database(db_);
      c->exec("CREATE TABLE t (id int PRIMARY KEY, payload text)", db_);
    }
  }

  std::string state_dir() const { return dir_->file("state"); }
  std::string journal() const { return state_dir() + "/mirror.journal"; }

  // state_dir set explicitly (a restarted pgtandem finds the same one); journal_path left to its
  // default, <state_dir>/mirror.journal.
  ProxyOptions options(const std::vector<std::string>& mirror_lines) {
    ProxyOptions o = Env::get().default_proxy_options();
    o.section_lines[""].push_back("mirror_writes = true");
    o.section_lines[""].push_back("state_dir = \"" + state_dir() + "\"");
    o.section_lines["admin"].push_back(std::string("token = \"") + kToken + "\"");
    // The cutover's control store logs in as this user.
    o.extra_toml = "[classifier]\ncatalog_user = \"postgres\"\n[mirror]\n";
    for (const auto& l : mirror_lines) o.extra_toml += l + "\n";
    return o;
  }

  HttpResponse post(ProxyProcess& p, const std::string& path) {
    return http_request(p.admin_port(), "POST", path,
                        {std::string("Authorization: Bearer ") + kToken}, "", milliseconds(60000));
  }

  // An autocommit insert of a ~2 KB row: one journal entry of ~3 KB (base64) while new is down.
  static std::string insert_sql(int id) {
    return "INSERT INTO t VALUES (" + std::to_string(id) + ", '" + std::string(2000, 'x') + "')";
  }

  std::unique_ptr<TempDir> dir_;
  std::string db_;
};

TEST_F(MirrorSafetyTest, JournalFullStopModeStopsMirroringAndFailsTheGate) {
  make_db("stop");
  ProxyProcess& p = start_proxy(options({"journal_max_bytes = " + std::to_string(kLimit),
                                         "journal_full = \"stop\""}));
  new_cluster().stop();
  ConnPtr c = connect(p.endpoint().conninfo("", db_));
  // Far past the limit: every write still succeeds on the primary, nobody waits.
  const int kRows = 80;
  for (int i = 1; i <= kRows; ++i) exec(c.get(), insert_sql(i));
  EXPECT_EQ(old_cluster().query_value("SELECT count(*) FROM t", db_), std::to_string(kRows));

  Metrics m;
  ASSERT_TRUE(poll_until([&] {
    m = p.metrics();
    return m.sum("pgtandem_mirror_stopped") == 1 &&
           m.sum("pgtandem_mirror_writes_total", {{"outcome", "journaled"}}) +
                   m.sum("pgtandem_mirror_writes_total", {{"outcome", "stopped"}}) >=
               kRows;
  }, kDeadline)) << m.text() << tail(p.log_text());
  const double journaled = m.sum("pgtandem_mirror_writes_total", {{"outcome", "journaled"}});
  const double stopped = m.sum("pgtandem_mirror_writes_total", {{"outcome", "stopped"}});
  // Never a silent drop: every write is either journaled or counted as not mirrored.
  EXPECT_EQ(journaled + stopped, kRows) << m.text();
  EXPECT_GT(stopped, 0);
  EXPECT_EQ(m.sum("pgtandem_mirror_writes_total", {{"outcome", "failed"}}), 0);
  EXPECT_EQ(m.sum("pgtandem_mirror_not_mirrored_writes"), stopped);
  EXPECT_EQ(m.sum("pgtandem_mirror_journal_limit_bytes"), static_cast<double>(kLimit));
  EXPECT_EQ(m.sum("pgtandem_mirror_needs_repair"), 1);
  // The journal ends at most one entry past the limit.
  const long size = file_size(journal());
  EXPECT_GE(size, static_cast<long>(kLimit));
  EXPECT_LT(size, static_cast<long>(kLimit) + 8192);
  EXPECT_EQ(m.sum("pgtandem_mirror_journal_bytes"), static_cast<double>(size));
  EXPECT_TRUE(contains(p.log_text(), "mirror journal full: mirroring stopped")) << tail(p.log_text());

  const std::string st = http_get(p.admin_port(), "/status").body;
  EXPECT_TRUE(contains(st, "\"state\":\"stopped_journal_full\"")) << st;
  EXPECT_TRUE(contains(st, "\"journal_full\":\"stop\"")) << st;
  EXPECT_TRUE(contains(st, "\"needs_repair\":[{\"kind\":\"journal_full\",\"target\":\"new\"")) << st;
  EXPECT_TRUE(contains(st, "\"state_dir\":\"" + state_dir() + "\"")) << st;

  new_cluster().start();
  HttpResponse r = post(p, "/cutover?to=new");
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_TRUE(contains(r.body, "\"name\":\"needs_repair\",\"result\":\"FAIL\"")) << r.body;
  EXPECT_TRUE(contains(r.body, "journal_full since")) << r.body;

  // Mirroring stays stopped with new back: later writes are counted, not applied.
  exec(c.get(), insert_sql(kRows + 1));
  ASSERT_TRUE(poll_until([&] {
    return p.metrics().sum("pgtandem_mirror_writes_total", {{"outcome", "stopped"}}) > stopped;
  }, kDeadline));
  EXPECT_EQ(new_cluster().query_value("SELECT count(*) FROM t", db_), "0");

  // After verify/repair, the operator clears the mark; it had survived in the state dir.
  r = post(p, "/mirror/needs-repair/clear");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(contains(r.body, "\"cleared\":1,\"remaining\":0")) << r.body;
  EXPECT_EQ(p.metrics().sum("pgtandem_mirror_needs_repair"), 0);
}

TEST_F(MirrorSafetyTest, JournalFullBlockModeMakesWritesWaitThenFailClearly) {
  make_db("block");
  ProxyProcess& p = start_proxy(options({"journal_max_bytes = " + std::to_string(kLimit),
                                         "journal_full = \"block\"",
                                         "journal_full_timeout_ms = 1500"}));
  new_cluster().stop();
  ConnPtr c = connect(p.endpoint().conninfo("", db_));
  int ok_rows = 0;
  std::string error;
  std::string sqlstate;
  auto failed_after = milliseconds(0);
  for (int i = 1; i <= 200 && error.empty(); ++i) {
    const auto start = std::chrono::steady_clock::now();
    ResultPtr r(PQexec(c.get(), insert_sql(i).c_str()));
    if (PQresultStatus(r.get()) == PGRES_COMMAND_OK) {
      ++ok_rows;
      // The journal is written behind the client's back: let it catch up, so the limit is met
      // at a boundary rather than by a queue of in-flight units.
      poll_until([&] { return file_size(journal()) >= 0 &&
                              p.metrics().sum("pgtandem_mirror_queue_bytes") == 0; },
                 milliseconds(5000), milliseconds(5));
      continue;
    }
    failed_after = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - start);
    error = PQerrorMessage(c.get());
    const char* state = r ? PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) : nullptr;
    sqlstate = state ? state : "";
  }
  ASSERT_FALSE(error.empty()) << "200 writes and never blocked; " << tail(p.log_text());
  EXPECT_TRUE(contains(error, "mirror journal is full")) << error;
  EXPECT_TRUE(contains(error, "journal_full = \"block\"")) << error;
  if (!sqlstate.empty()) {
    EXPECT_EQ(sqlstate, "53400");
  }
  EXPECT_GE(failed_after.count(), 1400) << "the write did not wait for room";
  EXPECT_GE(file_size(journal()), static_cast<long>(kLimit));
  // Nothing lost: every write the primary committed is in the journal.
  EXPECT_EQ(old_cluster().query_value("SELECT count(*) FROM t", db_), std::to_string(ok_rows));
  Metrics m = p.metrics();
  EXPECT_EQ(m.sum("pgtandem_mirror_writes_total", {{"outcome", "journaled"}}), ok_rows) << m.text();
  EXPECT_EQ(m.sum("pgtandem_mirror_writes_total", {{"outcome", "stopped"}}), 0);
  EXPECT_EQ(m.sum("pgtandem_mirror_stopped"), 0);
  const std::string st = http_get(p.admin_port(), "/status").body;
  EXPECT_TRUE(contains(st, "\"state\":\"blocking_journal_full\"")) << st;

  // A waiting write goes on as soon as there is room (here: a reload raises the limit).
  ConnPtr c2 = connect(p.endpoint().conninfo("", db_));
  std::atomic<bool> done{false};
  std::string waiting_error;
  std::thread writer([&] {
    ResultPtr r(PQexec(c2.get(), insert_sql(100000).c_str()));
    if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) waiting_error = PQerrorMessage(c2.get());
    done = true;
  });
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_FALSE(done.load()) << "the write did not wait";
  p.options().extra_toml = "[classifier]\ncatalog_user = \"postgres\"\n[mirror]\n"
                           "journal_max_bytes = 1073741824\njournal_full = \"block\"\n"
                           "journal_full_timeout_ms = 1500\n";
  p.write_config();
  HttpResponse reload = post(p, "/reload");
  writer.join();
  EXPECT_EQ(reload.status, 200) << reload.body;
  EXPECT_TRUE(waiting_error.empty()) << waiting_error << tail(p.log_text());
}

TEST_F(MirrorSafetyTest, SigkillLeavesACrashWindowThatGatesTheCutoverUntilCleared) {
  make_db("crash");
  ProxyOptions o = options({});
  auto first = std::make_unique<ProxyProcess>(o);
  first->start();
  const std::string marker = state_dir() + "/mirror.running";
  EXPECT_EQ(file_size(marker), 512);
  new_cluster().stop();
  // Writes in flight while pgtandem dies: a writer that never stops on its own.
  std::atomic<bool> stop{false};
  std::atomic<int> written{0};
  std::thread writer([&] {
    ConnPtr c = connect_raw(first->endpoint().conninfo("", db_));
    for (int i = 1; !stop && PQstatus(c.get()) == CONNECTION_OK; ++i) {
      ResultPtr r(PQexec(c.get(), insert_sql(i).c_str()));
      if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) break;
      ++written;
    }
  });
  ASSERT_TRUE(poll_until([&] { return written.load() >= 20; }, kDeadline));
  const auto killed_at = std::chrono::system_clock::now();
  first->kill();
  stop = true;
  writer.join();
  EXPECT_GE(file_size(marker), 1) << "SIGKILL leaves the marker";
  new_cluster().start();

  ProxyProcess& p = start_proxy(o);
  EXPECT_TRUE(contains(p.log_text(), "unclean stop detected")) << tail(p.log_text());
  std::string st = http_get(p.admin_port(), "/status").body;
  EXPECT_TRUE(contains(st, "\"crash_window\":{\"from\":\"")) << st;
  EXPECT_TRUE(contains(st, "\"unclean_stops\":1")) << st;
  // The window reaches up to the kill (its end is the last sample + 2 s, after the kill).
  const auto pos = st.find("\"crash_window\":{\"from\":\"");
  ASSERT_NE(pos, std::string::npos);
  const std::string to_key = "\"to\":\"";
  const auto to = st.find(to_key, pos);
  ASSERT_NE(to, std::string::npos);
  const std::string window_end = st.substr(to + to_key.size(), 19);
  EXPECT_GE(window_end, utc_seconds(killed_at - std::chrono::seconds(1))) << st;
  EXPECT_GT(p.metrics().sum("pgtandem_mirror_crash_window_seconds"), 0);
  EXPECT_EQ(p.metrics().sum("pgtandem_mirror_needs_repair"), 1);

  HttpResponse r = post(p, "/cutover?to=new");
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_TRUE(contains(r.body, "\"name\":\"needs_repair\",\"result\":\"FAIL\"")) << r.body;
  EXPECT_TRUE(contains(r.body, "crash window")) << r.body;

  // Still there after another (clean) restart: only an operator clears it.
  p.stop();
  ProxyProcess& p2 = start_proxy(o);
  st = http_get(p2.admin_port(), "/status").body;
  EXPECT_TRUE(contains(st, "\"unclean_stops\":1")) << st;
  r = post(p2, "/mirror/crash-window/clear");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(contains(r.body, "\"cleared\":1")) << r.body;
  st = http_get(p2.admin_port(), "/status").body;
  EXPECT_TRUE(contains(st, "\"crash_window\":null")) << st;
  EXPECT_EQ(p2.metrics().sum("pgtandem_mirror_crash_window_seconds"), 0);
  // A clean stop removes the marker: the next start reports nothing.
  p2.stop();
  EXPECT_EQ(file_size(marker), -1);
}

}  // namespace
}  // namespace pgtandem::it

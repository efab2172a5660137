// The fixture of the write-mirroring integration tests (mirror_test.cc: what reaches new, and in
// which order; mirror_failure_test.cc: what happens when new cannot keep up or fails): a
// dedicated pgtandem with `mirror_writes = true` in front of the two clusters, each test with
// fresh databases on both and a journal of its own, and the helpers that wait for the mirror.
//
// Mirroring is asynchronous: the tests never sleep for it. They poll, with generous deadlines,
// either for the metrics to settle (queue empty, outcome counters no longer moving) or for a
// marker row written last in the same session (the mirror applies a session's writes in order,
// so once the marker is on `new`, everything before it was applied or skipped).
#pragma once

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sys/stat.h>

#include <cstdio>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "tests/integration/fixture.h"
#include "tests/integration/harness/harness.h"

namespace pgtandem::it {

using std::chrono::seconds;

constexpr milliseconds kMirrorDeadline{300000};  // the machine is small and shared: be patient

inline std::string be64(uint64_t v) {
  return be32(static_cast<uint32_t>(v >> 32)) + be32(static_cast<uint32_t>(v));
}

// Every row of a query as text, rows separated by '\n', columns by '|' (NULL as "<null>").
inline std::string dump(const PgCluster& c, const std::string& db, const std::string& sql) {
  ConnPtr conn = connect(c.conninfo(db));
  ResultPtr r = exec(conn.get(), sql);
  std::string out;
  for (int row = 0; row < PQntuples(r.get()); ++row) {
    for (int col = 0; col < PQnfields(r.get()); ++col) {
      if (col) out += '|';
      out += PQgetisnull(r.get(), row, col) ? "<null>" : PQgetvalue(r.get(), row, col);
    }
    out += '\n';
  }
  return out;
}

// A COPY ... (FORMAT binary) stream of the rows from..to of a table (int4, text, bytea, int8).
inline std::string copy_binary_rows(int from, int to) {
  std::string s("PGCOPY\n\xff\r\n\0", 11);
  s += be32(0) + be32(0);  // flags, header extension
  for (int i = from; i <= to; ++i) {
    s += be16(4);
    s += be32(4) + be32(static_cast<uint32_t>(i));
    if (i % 9 == 0) {
      s += be32(0xffffffffu);  // NULL
    } else {
      std::string name = "bin \t row " + std::to_string(i) + " \xc3\xbc";
      s += be32(static_cast<uint32_t>(name.size())) + name;
    }
    std::string data;
    for (int k = 0; k < i % 37; ++k) data.push_back(static_cast<char>((i * 13 + k * 7) & 0xff));
    s += be32(static_cast<uint32_t>(data.size())) + data;
    s += be32(8) + be64(static_cast<uint64_t>(static_cast<int64_t>(i) * -1000000007LL));
  }
  s += be16(0xffff);
  return s;
}

struct MirrorCounters {
  double applied = 0, failed = 0, journaled = 0, skipped_rollback = 0;
  double divergences = 0, queue_bytes = 0, nondeterministic = 0, journal_bytes = 0;
  double lag_count = 0, coalesced = 0;
  double done() const { return applied + failed + journaled; }
  std::string describe() const {
    std::ostringstream s;
    s << "applied=" << applied << " failed=" << failed << " journaled=" << journaled
      << " skipped_rollback=" << skipped_rollback << " divergences=" << divergences
      << " queue_bytes=" << queue_bytes << " nondeterministic=" << nondeterministic
      << " journal_bytes=" << journal_bytes << " lag_count=" << lag_count
      << " coalesced=" << coalesced;
    return s.str();
  }
};

inline MirrorCounters counters(const ProxyProcess& p) {
  Metrics m = p.metrics();
  MirrorCounters c;
  const std::string w = "pgtandem_mirror_writes_total";
  c.applied = m.sum(w, {{"outcome", "applied"}});
  c.failed = m.sum(w, {{"outcome", "failed"}});
  c.journaled = m.sum(w, {{"outcome", "journaled"}});
  c.skipped_rollback = m.sum(w, {{"outcome", "skipped_rollback"}});
  c.divergences = m.sum("pgtandem_mirror_divergences_total");
  c.queue_bytes = m.sum("pgtandem_mirror_queue_bytes");
  c.nondeterministic = m.sum("pgtandem_mirror_nondeterministic_writes_total");
  c.journal_bytes = m.sum("pgtandem_mirror_journal_bytes");
  c.lag_count = m.sum("pgtandem_mirror_lag_seconds_count");
  c.coalesced = m.sum("pgtandem_mirror_coalesced_transactions_total");
  return c;
}

// Until the mirror queue is empty and the outcome counters stopped moving (same value for
// `stable_polls` polls in a row, 200 ms apart).
inline bool wait_mirror_idle(const ProxyProcess& p, milliseconds timeout = kMirrorDeadline,
                      int stable_polls = 5, MirrorCounters* last_seen = nullptr) {
  double last = -1;
  int stable = 0;
  bool ok = poll_until(
      [&] {
        MirrorCounters c = counters(p);
        if (last_seen) *last_seen = c;
        if (c.queue_bytes == 0 && c.done() == last) {
          ++stable;
        } else {
          stable = 0;
        }
        last = c.done();
        return stable >= stable_polls;
      },
      timeout, milliseconds(200));
  return ok;
}

// Until `sql` (one value) returns `expected` on the cluster.
inline bool wait_value(const PgCluster& c, const std::string& db, const std::string& sql,
                const std::string& expected, milliseconds timeout = kMirrorDeadline,
                std::string* last = nullptr) {
  std::string seen;
  bool ok = poll_until(
      [&] {
        try {
          seen = c.query_value(sql, db);
        } catch (const std::exception& e) {
          seen = std::string("error: ") + e.what();
        }
        return seen == expected;
      },
      timeout, milliseconds(100));
  if (last) *last = seen;
  return ok;
}

inline long file_size(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return -1;
  return static_cast<long>(st.st_size);
}

// "  applied:        12" in a replay report.
inline long report_number(const std::string& report, const std::string& label) {
  std::regex re("\\n\\s*" + label + ":\\s*([0-9]+)");
  std::smatch m;
  std::string text = "\n" + report;
  if (!std::regex_search(text, m, re)) return -1;
  return std::stol(m[1].str());
}

inline const char* kNondeterministicSetup =
    "CREATE TABLE t (id int PRIMARY KEY, ts timestamptz, r float8, note text);"
    "CREATE TABLE bumps (note text);"
    "CREATE FUNCTION bump() RETURNS int LANGUAGE sql AS "
    "$$ INSERT INTO bumps VALUES ('bumped'); SELECT count(*)::int FROM bumps $$";

class MirrorTest : public ProxyTest {
 protected:
  void SetUp() override {
    ProxyTest::SetUp();
    if (HasFatalFailure()) return;
    dir_ = std::make_unique<TempDir>("pgtandem-mirror-it");
    journal_ = dir_->file("mirror.journal");
  }

  void TearDown() override {
    if (HasFailure() && file_size(journal_) > 0) {
      std::fprintf(stderr, "[mirror] journal %s (%ld bytes), tail:\n%s\n", journal_.c_str(),
                   file_size(journal_), tail(read_file(journal_), 3000).c_str());
    }
    // A failed test must not leave new stopped for the next one.
    if (HasFailure()) restart_new_if_stopped();
    ProxyTest::TearDown();  // stops the proxies (their mirror connections close)
    drop_databases(databases_);
  }

  // A fresh database with the same name on both clusters, `setup` run directly on both.
  std::string make_db(const std::string& base, const std::string& setup = "") {
    std::string db = unique("mirror_" + base);
    old_cluster().create_database(db);
    new_cluster().create_database(db);
    databases_.push_back(db);
    if (!setup.empty()) both(db, setup);
    return db;
  }

  void both(const std::string& db, const std::string& sql) {
    old_cluster().exec(sql, db);
    new_cluster().exec(sql, db);
  }

  ProxyOptions mirror_options(const std::vector<std::string>& mirror_lines = {},
                              const std::string& more_toml = "") {
    ProxyOptions o = Env::get().default_proxy_options();
    o.section_lines[""].push_back("mirror_writes = true");
    std::string toml = "[mirror]\njournal_path = \"" + journal_ + "\"\n";
    // These tests check the journal and `pgtandem replay` themselves: no automatic catch-up
    // (tests/integration/catchup_test.cc covers it) unless a test asks for it.
    bool catchup_given = false;
    for (const auto& l : mirror_lines) catchup_given |= l.rfind("catchup", 0) == 0;
    if (!catchup_given) toml += "catchup = false\n";
    for (const auto& l : mirror_lines) toml += l + "\n";
    toml += more_toml;
    o.extra_toml = toml;
    return o;
  }

  ProxyProcess& start_mirror_proxy(const std::vector<std::string>& mirror_lines = {},
                                   const std::string& more_toml = "") {
    return start_proxy(mirror_options(mirror_lines, more_toml));
  }

  ConnPtr client(ProxyProcess& p, const std::string& db, const std::string& extra = "") {
    return connect(p.endpoint().conninfo(extra, db));
  }

  // The same rows on both clusters (full dump, for small tables).
  void expect_same(const std::string& db, const std::string& sql, const std::string& what) {
    std::string o = dump(old_cluster(), db, sql);
    std::string n = dump(new_cluster(), db, sql);
    EXPECT_EQ(o, n) << what << " differs between old and new: " << describe_difference(o, n);
  }

  // Waits until the last row a session wrote (`marker_sql` returns "1") is on new.
  void wait_marker(const std::string& db, const std::string& marker_sql, ProxyProcess& p) {
    std::string last;
    ASSERT_TRUE(wait_value(new_cluster(), db, marker_sql, "1", kMirrorDeadline, &last))
        << "the marker never reached new (" << last << "); " << counters(p).describe();
  }

  void expect_pgbench_identical(const std::string& db, const std::string& when) {
    auto o = pgbench_state(old_cluster(), db);
    auto n = pgbench_state(new_cluster(), db);
    ASSERT_EQ(o.size(), n.size());
    for (size_t i = 0; i < o.size(); ++i) {
      EXPECT_EQ(o[i].second, n[i].second) << when << ": " << o[i].first << " old vs new";
    }
    // A run that did nothing would compare equal too.
    EXPECT_NE(o.back().second, "0") << when << ": pgbench_history is empty";
  }

  void pgbench_init_both(const std::string& db) {
    for (PgCluster* c : {&old_cluster(), &new_cluster()}) {
      auto r = run_pgbench(c->endpoint(), {"-i", "-s", "1", "-q"}, db, milliseconds(300000));
      ASSERT_TRUE(r.ok()) << "pgbench -i on " << c->name() << ": " << r.describe();
    }
  }

  ProcessResult run_replay(ProxyProcess& p) {
    RunOptions ro;
    ro.timeout = milliseconds(300000);
    return run_process(
        {pgtandem_binary(), "replay", "--config", p.config_path(), "--journal", journal_}, ro);
  }

  // Test 6: nondeterministic writes through `p` into a database set up with
  // kNondeterministicSetup.
  void nondeterministic_scenario(ProxyProcess& p, const std::string& db) {
    MirrorCounters before = counters(p);
    ConnPtr c = client(p, db);
    exec(c.get(), "INSERT INTO t (id, ts, note) VALUES (1, now(), 'now')");
    exec(c.get(), "INSERT INTO t (id, r, note) VALUES (2, random(), 'random')");
    exec(c.get(), "INSERT INTO t (id, ts, note) VALUES (3, clock_timestamp(), 'clock')");
    EXPECT_EQ(query_value(c.get(), "SELECT bump()"), "1");
    {
      ResultPtr r(PQexecParams(c.get(), "SELECT bump()", 0, nullptr, nullptr, nullptr, nullptr, 0));
      EXPECT_EQ(PQresultStatus(r.get()), PGRES_TUPLES_OK) << PQerrorMessage(c.get());
    }
    exec(c.get(), "INSERT INTO t (id, note) VALUES (99, 'marker')");
    wait_marker(db, "SELECT count(*) FROM t WHERE id = 99", p);
    if (HasFatalFailure()) return;
    MirrorCounters after = counters(p);
    EXPECT_GE(after.nondeterministic - before.nondeterministic, 3) << after.describe();
    EXPECT_EQ(old_cluster().query_value("SELECT count(*) FROM bumps", db), "2");
    EXPECT_EQ(new_cluster().query_value("SELECT count(*) FROM bumps", db), "2")
        << "SELECT bump() was not mirrored; " << after.describe();
    expect_same(db, "SELECT id, note, ts IS NULL, r IS NULL FROM t ORDER BY id", "table t");
    EXPECT_EQ(after.divergences, 0) << after.describe();
    EXPECT_EQ(after.journaled + after.failed, 0) << after.describe();
  }

  std::unique_ptr<TempDir> dir_;
  std::string journal_;
  std::vector<std::string> databases_;
};

}  // namespace pgtandem::it

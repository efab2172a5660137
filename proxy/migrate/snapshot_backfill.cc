// The snapshot backfill (snapshot_backfill.h; the argument: docs/migration.md, "Snapshot
// backfill"). One run is one cut:
//   1. every pgtandem pauses at transaction boundaries until its mirror applied everything
//      (POST /mirror/fence?action=pause, in parallel);
//   2. the primary exports a snapshot: it holds exactly the writes the mirrors applied;
//   3. every pgtandem arms its fence (later mirrored writes go to its journal) and resumes;
//   4. the tables are TRUNCATEd on the other target in one statement and COPYed there from the
//      snapshot by --jobs workers (a large table read once, its rows spread over --jobs backends
//      there), with no lock on the primary;
//   5. a table counts as copied (its checkpoint says done) only once a renew of every fence that
//      started after its last COMMIT succeeded: the fence held throughout;
//   6. the fences are released and catch-up applies the journal on top of the copies; the run
//      waits until every mirror is live again.
// A run killed anywhere leaves the primary untouched; the fence's lease ends, catch-up applies
// the journal, and the same command takes a new cut for every table not recorded done.
#include "proxy/migrate/snapshot_backfill.h"

#include <csignal>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

#include "proxy/migrate/fence_client.h"

namespace pgtandem::proxy::migrate {

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kPartAttempts = 3;       // a part whose copy failed (connection lost) is retried

// SIGINT or SIGTERM: the copy stops, the fences are released at once (not left to their lease),
// and the run exits resumable.
std::atomic<bool> g_interrupted{false};
extern "C" void on_interrupt(int) { g_interrupted.store(true); }

struct TableState {
  const pm::Table* table = nullptr;
  pm::TableSql sql;
  std::string path;  // checkpoint
  std::set<std::string> parents;
  int64_t rows = 0;
  bool copied = false;          // its copy committed on the other target (every backend's)
  Clock::time_point committed;  // that COMMIT returned before this
  bool confirmed = false;
  bool todo = false;
  bool binary = false;  // COPY in binary format (binary_ok)
};

// Binary COPY skips the text output and input functions on both servers (8-25% of a COPY's CPU
// here). Only where it cannot change a value: every column's type is the same built-in type on
// both sides (an OID below FirstNormalObjectId: arrays and records name their element types by
// OID, which differ for user types) with binary I/O. Anything else goes as text, which also
// carries the casts preflight approved.
bool binary_ok(PgConn& p, PgConn& n, const pm::TableSql& t, bool* ok, std::string* error) {
  const std::string sql =
      "SELECT a.attname, a.atttypid::int, (ty.typsend <> 0 AND ty.typreceive <> 0) FROM pg_attribute a "
      "JOIN pg_type ty ON ty.oid = a.atttypid WHERE a.attrelid = " +
      pm::quote_literal(pm::qualified_name(t.schema, t.name)) +
      "::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attname";
  Rows a, b;
  if (!p.query(sql, &a, error) || !n.query(sql, &b, error)) return false;
  *ok = a.rows.size() == b.rows.size() && a.rows.size() == t.columns.size();
  for (size_t i = 0; *ok && i < a.rows.size(); ++i)
    *ok = a.rows[i] == b.rows[i] && std::atoll(a.at(i, 1).c_str()) < 16384 && a.at(i, 2) == "t";
  return true;
}

struct Part {
  size_t table = 0;
  size_t fanout = 1;  // backends on the other target the table's rows are spread over
};

class SnapshotBackfill {
 public:
  SnapshotBackfill(const Context& ctx, Progress& progress) : ctx_(ctx), progress_(progress) {}
  SnapshotResult run(const std::vector<const pm::Table*>& tables);

 private:
  SnapshotResult cut(const std::vector<const pm::Table*>& tables);
  bool renew_round();
  void renewer();
  void confirm(Clock::time_point before);
  void confirm_table(TableState& t);
  bool plan_parts(PgConn& p, PgConn& n, std::string* error);
  void worker();
  bool next_part(bool replica, Part* out);
  bool copy_part(PgConn& p, const std::vector<PgConn*>& ns, const Part& part, std::string* error);
  bool throttle(int64_t rows);
  void fail(const std::string& why);

  const Context& ctx_;
  Progress& progress_;
  std::vector<TableState> tables_;
  std::deque<Part> parts_;
  std::mutex mu_;
  std::atomic<bool> abort_{false};
  std::string error_;
  std::string snapshot_;
  // The fences, one per running pgtandem; none when nothing mirrors.
  bool fenced_ = false;
  std::unique_ptr<FenceClient> fence_;
  std::thread renew_thread_;
  std::condition_variable renew_cv_;
  bool renew_stop_ = false;
  std::atomic<int64_t> rows_total_{0};
  Clock::time_point started_ = Clock::now();
};

void SnapshotBackfill::fail(const std::string& why) {
  std::lock_guard lock(mu_);
  if (error_.empty()) error_ = why;
  abort_ = true;
}

// Every fence renewed: true only if each still held (the same fence since it was armed).
bool SnapshotBackfill::renew_round() {
  std::string e;
  if (fence_->renew_all(&e)) return true;
  fail("the mirror fence ended before the copy did (" + e +
       "); tables copied after that are copied again by the next run");
  return false;
}

void SnapshotBackfill::renewer() {
  const auto every = std::chrono::milliseconds(std::max(100, ctx_.opt.fence_lease_ms / 5));
  std::unique_lock lock(mu_);
  while (!renew_stop_) {
    renew_cv_.wait_for(lock, every);
    if (renew_stop_) break;
    lock.unlock();
    const auto round = Clock::now();
    const bool held = renew_round();
    lock.lock();
    if (!held) break;
    confirm(round);
  }
}

// Under mu_: every table whose last COMMIT returned before `before` (a moment every fence was
// held at, or any moment without fences) is copied for good.
void SnapshotBackfill::confirm(Clock::time_point before) {
  for (auto& t : tables_)
    if (t.todo && !t.confirmed && t.copied && t.committed < before)
      confirm_table(t);
}

void SnapshotBackfill::confirm_table(TableState& t) {
  pm::Checkpoint c;
  c.table = t.table->qualified();
  c.key = t.sql.key;
  c.ranges.push_back({pm::KeyRange{}, std::nullopt, t.rows, true});
  std::string e;
  if (!write_file_atomic(t.path, pm::encode_checkpoint(c), &e)) {
    if (error_.empty()) error_ = "checkpoint " + t.path + ": " + e;
    abort_ = true;
    return;
  }
  t.confirmed = true;
  progress_.table_done(c.table);
}

// Every table is read once, by the table path (a sequential scan, as pg_dump; a TID range scan
// per part cost 1.7x as much here: no page-at-a-time visibility). A large table's rows are
// spread over --jobs backends on the other target, where a load spends its CPU.
bool SnapshotBackfill::plan_parts(PgConn& p, PgConn& n, std::string* error) {
  for (size_t i = 0; i < tables_.size(); ++i) {
    TableState& t = tables_[i];
    if (!t.todo) continue;
    if (!binary_ok(p, n, t.sql, &t.binary, error)) return false;
    const bool large = ctx_.opt.jobs > 1 && t.table->estimated_rows > 2 * ctx_.opt.chunk_rows;
    parts_.push_back({i, large ? static_cast<size_t>(ctx_.opt.jobs) : 1});
  }
  return true;
}

// Without session_replication_role = replica on the other target, a table's parts wait until the
// tables it references are copied (their foreign keys are checked).
bool SnapshotBackfill::next_part(bool replica, Part* out) {
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (abort_ || parts_.empty()) return false;
      for (size_t i = 0; i < parts_.size(); ++i) {
        const TableState& t = tables_[parts_[i].table];
        bool ready = true;
        for (const auto& other : tables_)
          if (!replica && other.todo && t.parents.count(other.table->qualified()) &&
              !other.copied)
            ready = false;
        if (!ready) continue;
        *out = parts_[i];
        parts_.erase(parts_.begin() + static_cast<long>(i));
        return true;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

bool SnapshotBackfill::throttle(int64_t rows) {
  if (g_interrupted.load()) fail("interrupted");
  wait_for_rate_cap(rows_total_ += rows, ctx_.opt.max_rate, started_, abort_, 200);
  return !abort_;
}

bool SnapshotBackfill::copy_part(PgConn& p, const std::vector<PgConn*>& ns, const Part& part,
                                 std::string* error) {
  TableState& t = tables_[part.table];
  const std::string name = t.table->qualified();
  const std::string format = t.binary ? " WITH (FORMAT binary)" : "";
  // A partitioned table has no rows of its own: COPY TO reads it only through a query.
  const std::string table = pm::qualified_name(t.sql.schema, t.sql.name);
  const std::string cols = pm::column_list(t.sql.columns);
  const std::string out = (t.table->partitioned ? "COPY (SELECT " + cols + " FROM " + table + ")"
                                                : "COPY " + table + " (" + cols + ")") +
                          " TO STDOUT" + format;
  const std::string in = pm::copy_into_table_sql(t.sql) + format;
  std::string e, ignored;
  auto rollback = [&] {
    for (PgConn* n : ns)
      if (n->ok()) n->exec("ROLLBACK", &ignored);
  };
  for (PgConn* n : ns) {
    if (!n->exec("BEGIN", &e)) {
      *error = e;
      rollback();
      return false;
    }
  }
  int64_t rows = 0, bytes = 0;
  auto tick = [&](int64_t r, int64_t b, std::string* why) {
    progress_.add(name, r, b, 0);
    if (!throttle(r)) {
      *why = "stopped";
      return false;
    }
    return true;
  };
  bool ok = p.copy_fanout_to(ns, out, in, t.binary, tick, &rows, &bytes, error);
  // The backends' transactions commit one after the other; a failure before the last leaves the
  // table unconfirmed (the next cut empties it and copies it again).
  for (size_t i = 0; ok && i < ns.size(); ++i) ok = ns[i]->exec("COMMIT", error);
  if (!ok) {
    rollback();
    progress_.add(name, -rows, -bytes, 0);  // counted again by the retry or the next run
    return false;
  }
  std::lock_guard lock(mu_);
  progress_.add(name, 0, 0, 1);
  t.rows += rows;
  t.copied = true;
  t.committed = Clock::now();
  if (!fenced_) confirm_table(t);  // no fence: committed is copied
  return true;
}

void SnapshotBackfill::worker() {
  std::unique_ptr<PgConn> p;
  std::vector<std::unique_ptr<PgConn>> ns;
  bool replica = true;
  auto open_new = [&](std::string* e) {
    auto n = PgConn::open(ctx_.secondary, e);
    if (!n) return false;
    std::string ignored;
    replica = n->exec("SET session_replication_role = replica", &ignored) && replica;
    ns.push_back(std::move(n));
    return true;
  };
  auto connect = [&](std::string* e) {
    ns.clear();
    replica = true;
    p = PgConn::open(ctx_.primary, e);
    if (!p || !p->exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT " +
                           pm::quote_literal(snapshot_),
                       e))
      return false;
    return open_new(e);
  };
  std::string e;
  bool connected = connect(&e);
  Part part;
  while (next_part(connected && replica, &part)) {
    bool ok = false;
    for (int attempt = 1; attempt <= kPartAttempts && !abort_; ++attempt) {
      bool healthy = connected && p->ok();
      for (const auto& n : ns) healthy = healthy && n->ok();
      if (!healthy) connected = connect(&e);
      while (connected && ns.size() < part.fanout) connected = open_new(&e);
      std::vector<PgConn*> dests;
      for (size_t i = 0; connected && i < part.fanout; ++i) dests.push_back(ns[i].get());
      if (connected && copy_part(*p, dests, part, &e)) {
        ok = true;
        break;
      }
      if (abort_) break;
      if (attempt < kPartAttempts) {
        std::fprintf(stderr, "pgtandem backfill: %s: %s; retrying in %d s\n",
                     tables_[part.table].table->qualified().c_str(), e.c_str(), attempt);
        std::this_thread::sleep_for(std::chrono::seconds(attempt));
      }
    }
    if (!ok) {
      fail(tables_[part.table].table->qualified() + ": " + e);
      return;
    }
  }
}

SnapshotResult SnapshotBackfill::run(const std::vector<const pm::Table*>& tables) {
  SnapshotResult res = cut(tables);
  for (const auto& t : tables_)
    if (!t.todo || t.confirmed) res.rows += t.rows;
  return res;
}

SnapshotResult SnapshotBackfill::cut(const std::vector<const pm::Table*>& tables) {
  SnapshotResult res;
  // Which tables this cut copies: those not recorded done, and any done table that references
  // one of them (TRUNCATE takes a referenced table only with its referencing ones).
  std::set<std::string> selected;
  for (const pm::Table* t : tables) selected.insert(t->qualified());
  for (const pm::Table* t : tables) {
    TableState s;
    s.table = t;
    s.sql = table_sql(*t);
    s.path = checkpoint_path(ctx_.opt, t->qualified());
    for (const auto& r : t->references)
      if (r != t->qualified() && selected.count(r)) s.parents.insert(r);
    std::string text;
    std::optional<pm::Checkpoint> c;
    if (read_whole_file(s.path, &text)) c = pm::decode_checkpoint(text);
    s.todo = !(c && c->key == s.sql.key && c->done());
    if (!s.todo) s.rows = c->rows();
    tables_.push_back(std::move(s));
  }
  for (bool changed = true; changed;) {
    changed = false;
    for (auto& t : tables_)
      for (const auto& other : tables_)
        if (!t.todo && other.todo && t.parents.count(other.table->qualified())) {
          t.todo = true;
          changed = true;
        }
  }
  int64_t resumed = 0;
  std::vector<std::string> todo_names;
  for (auto& t : tables_) {
    progress_.table_started(t.table->qualified(), t.table->estimated_rows);
    if (t.todo) {
      // ONLY: an inheritance parent's COPY holds its own rows, not its children's (they are tables
      // of their own); a partitioned table is emptied with its partitions.
      todo_names.push_back((t.table->partitioned ? "" : "ONLY ") + pm::qualified_name(t.sql.schema, t.sql.name));
      continue;
    }
    resumed += t.rows;
    if (t.rows > 0) progress_.add(t.table->qualified(), t.rows, 0, 0);
    progress_.table_done(t.table->qualified());
  }
  if (resumed > 0)
    std::printf("resuming from %s/backfill: %zu tables already copied (%s rows)\n", state_dir(ctx_.opt).c_str(),
                tables_.size() - todo_names.size(), pm::format_count(resumed).c_str());
  if (todo_names.empty()) {
    res.ok = true;
    return res;
  }

  // The cut.
  fenced_ = ctx_.mirror_writes && !ctx_.opt.no_watermark;
  if (fenced_) {
    fence_ = std::make_unique<FenceClient>(ctx_, ctx_.opt.admins);
    if (ctx_.admin_token.empty()) {
      res.unavailable = true;
      res.why = "the mirror fence is a POST to pgtandem's admin API, which needs [admin] token or token_file";
      return res;
    }
  }
  std::string e;
  auto snap_conn = PgConn::open(ctx_.primary, &e);
  auto new_conn = PgConn::open(ctx_.secondary, &e);
  if (!snap_conn || !new_conn) {
    res.why = e;
    return res;
  }
  if (fenced_ && !fence_->pause_all(&res.pause_ms, &res.unavailable, &res.why)) return res;
  Rows snap;
  if (!snap_conn->exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", &e) ||
      !snap_conn->query("SELECT pg_export_snapshot()", &snap, &e) || snap.rows.empty()) {
    if (fence_) fence_->release_all();
    res.why = "exporting a snapshot on the primary: " + e;
    return res;
  }
  snapshot_ = snap.at(0, 0);
  if (fenced_ && !fence_->arm_all(&e)) {
    fence_->release_all();
    res.why = e;
    return res;
  }
  if (fenced_) {
    std::printf("snapshot %s taken with every mirror applied (pause %.0f ms at most); mirrored writes "
                "are journaled until the copy ends\n",
                snapshot_.c_str(), res.pause_ms);
    std::fflush(stdout);
    renew_thread_ = std::thread([this] { renewer(); });
  }
  auto finish = [&](bool copied) {
    if (renew_thread_.joinable()) {
      {
        std::lock_guard lock(mu_);
        renew_stop_ = true;
      }
      renew_cv_.notify_all();
      renew_thread_.join();
    }
    if (copied && fenced_) {
      // The last tables: confirmed by one more renew after their COMMITs.
      const auto round = Clock::now();
      if (renew_round()) {
        std::lock_guard lock(mu_);
        confirm(round);
      }
    }
    if (fence_) fence_->release_all();
    std::string ignored;
    snap_conn->exec("ROLLBACK", &ignored);
  };

  // Every table of the cut emptied on the other target, in one statement (foreign keys among
  // them allow that). What it held came from mirrored writes up to the cut, which the snapshot
  // holds too. Its checkpoints go first: a chunked run must not trust ranges emptied here.
  for (const auto& t : tables_)
    if (t.todo) std::remove(t.path.c_str());
  std::string ignored;
  new_conn->exec("SET session_replication_role = replica", &ignored);
  std::string list;
  for (const auto& n : todo_names) list += (list.empty() ? "" : ", ") + n;
  if (!new_conn->exec("SET lock_timeout = '30s'", &e) || !new_conn->exec("TRUNCATE " + list, &e)) {
    finish(false);
    res.why = "emptying the tables on the other target: " + e +
              (e.find("foreign key") != std::string::npos
                   ? " (name the referencing tables in --tables too, or use --mode chunked)"
                   : "");
    return res;
  }
  if (!plan_parts(*snap_conn, *new_conn, &e)) {
    finish(false);
    res.why = e;
    return res;
  }
  std::vector<std::thread> threads;
  const size_t n = std::min<size_t>(static_cast<size_t>(ctx_.opt.jobs), std::max<size_t>(1, parts_.size()));
  for (size_t i = 0; i < n; ++i) threads.emplace_back([this] { worker(); });
  for (auto& t : threads) t.join();
  finish(error_.empty());
  for (const auto& t : tables_) {
    if (!t.todo || !t.confirmed) continue;
    res.rows_this_run += t.rows;
    res.tables_this_run++;
    res.tables_binary += t.binary ? 1 : 0;
  }
  bool all = true;
  for (const auto& t : tables_) all = all && (!t.todo || t.confirmed);
  if (!error_.empty() || !all) {
    res.why = error_.empty() ? "the fence could not confirm every table" : error_;
    return res;
  }
  if (fenced_ && !fence_->wait_caught_up(&res.journal_entries, &res.why)) return res;
  res.ok = true;
  return res;
}

}  // namespace

SnapshotResult snapshot_backfill(const Context& ctx, const std::vector<const pm::Table*>& tables,
                                 Progress& progress) {
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  struct sigaction old_int {}, old_term {};
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  SnapshotBackfill b(ctx, progress);
  SnapshotResult r = b.run(tables);
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  return r;
}

}  // namespace pgtandem::proxy::migrate

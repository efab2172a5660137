// pgtandem backfill --config FILE [--tables ...] [--jobs N] [--max-rate ROWS/S] [--chunk-rows N]
// [--chunk-memory BYTES] [--mode auto|snapshot|chunked] [--fence-lease-ms MS]
// [--state-dir DIR] [--admin HOST:PORT]... (issue 13).
//
// Copies every table from the primary to the other target while clients keep writing through
// pgtandem. By default from one snapshot under the mirror fence (snapshot_backfill.h); where a
// pgtandem does not offer the fence, or with --mode chunked, as below. Each table is split into key ranges (one per job for a large table), each range is
// copied in key-ordered chunks of --chunk-rows, each chunk under the invariant of
// docs/migration.md (copy_chunk: rows locked FOR SHARE on the primary, COPY streamed into a
// staging table, the mirror barrier, the upsert, then the locks released). After each chunk the
// table's checkpoint (<state-dir>/backfill/<table>.json) records the range's last key, so that
// the same command continues after a kill or an outage. A table without a usable key is copied
// whole under a SHARE lock.
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <set>
#include <thread>

#include "policy/migrate/state.h"
#include "proxy/migrate/commands.h"
#include "proxy/migrate/chunk_copy.h"
#include "proxy/migrate/common.h"
#include "proxy/migrate/snapshot_backfill.h"

namespace pgtandem::proxy::migrate {

namespace {

using Clock = std::chrono::steady_clock;
// Read the next chunk while this one is written (a second primary connection per job).
// Not with --max-rate: the cap, not the grace, then sets the pace, and in two A/B runs the
// overlap's client p99 under TPC-B was worse (bench/README.md). PGTANDEM_BACKFILL_NO_OVERLAP=1
// turns it off (the A/B; one chunk at a time).
bool overlap_enabled(int64_t max_rate) {
  const char* off = std::getenv("PGTANDEM_BACKFILL_NO_OVERLAP");
  return max_rate == 0 && (off == nullptr || off[0] == '\0' || off[0] == '0');
}
constexpr int kAttempts = 4;  // per chunk, with 1, 2, 4 s pauses: then the command stops

struct TableJob {
  const pm::Table* table = nullptr;
  pm::TableSql sql;
  size_t index = 0;  // staging table number
  std::string path;  // checkpoint file
  pm::Checkpoint checkpoint;
  std::set<std::string> parents;  // selected tables it references
  int running = 0;                 // ranges being copied now
};

struct Item {
  size_t table = 0, range = 0;
};

class Backfill {
 public:
  explicit Backfill(Context ctx) : ctx_(std::move(ctx)), barrier_(ctx_) {}
  int run();

 private:
  bool run_chunked(PgConn& p, const std::vector<const pm::Table*>& tables, int64_t* rows);
  bool plan(PgConn& p, const std::vector<const pm::Table*>& tables, std::string* error);
  void worker();
  bool next_item(bool replica, Item* out);
  bool copy_range(ConnPair& pair, const Item& item, std::string* error);
  bool copy_range_overlapped(ConnPair& pair, const Item& item, std::string* error);
  // A chunk of `item` written: its checkpoint, progress and the rate cap.
  // `throttle`: also wait for --max-rate (false: the caller did, before it locked anything).
  bool record(const Item& item, const ChunkResult& result, std::string* error, bool throttle = true);
  bool save(TableJob& job, std::string* error);
  void throttle(int64_t rows);

  Context ctx_;
  MirrorBarrier barrier_;
  std::vector<TableJob> jobs_;
  std::vector<Item> items_;
  std::mutex mu_;
  std::atomic<bool> abort_{false};
  std::string error_;
  std::unique_ptr<Progress> progress_;
  std::atomic<int64_t> rows_total_{0};
  Clock::time_point started_ = Clock::now();
};

bool Backfill::plan(PgConn& p, const std::vector<const pm::Table*>& tables, std::string* error) {
  const auto order = pm::copy_order(tables);
  std::set<std::string> selected;
  for (const pm::Table* t : order) selected.insert(t->qualified());
  jobs_.reserve(order.size());
  for (const pm::Table* t : order) {
    TableJob job;
    job.table = t;
    job.sql = table_sql(*t);
    job.index = jobs_.size();
    job.path = checkpoint_path(ctx_.opt, t->qualified());
    for (const auto& r : t->references)
      if (r != t->qualified() && selected.count(r)) job.parents.insert(r);
    std::string text, why;
    if (read_whole_file(job.path, &text)) {
      auto c = pm::decode_checkpoint(text, &why);
      if (!c) {
        *error = "checkpoint " + job.path + " is unreadable (" + why + "); delete it to copy " +
                 t->qualified() + " again";
        return false;
      }
      if (c->key != job.sql.key) {
        *error = "checkpoint " + job.path + " was written for another key of " + t->qualified() +
                 "; delete it to copy the table again";
        return false;
      }
      job.checkpoint = std::move(*c);
    } else {
      job.checkpoint.table = t->qualified();
      job.checkpoint.key = job.sql.key;
      std::vector<pm::KeyRange> ranges = {pm::KeyRange{}};
      const int64_t parts = ctx_.opt.jobs;
      if (!job.sql.key.empty() && parts > 1 && t->estimated_rows > 2 * ctx_.opt.chunk_rows) {
        const int64_t step = std::max<int64_t>(ctx_.opt.chunk_rows, (t->estimated_rows + parts - 1) / parts);
        Rows b;
        if (!p.query(pm::boundaries_sql(job.sql, step), &b, error)) return false;
        std::vector<pm::Key> bounds;
        for (const auto& row : b.rows) {
          pm::Key k;
          for (const auto& v : row) k.push_back(v.value_or(""));
          bounds.push_back(std::move(k));
        }
        ranges = pm::ranges_from_boundaries(bounds);
      }
      for (auto& r : ranges) job.checkpoint.ranges.push_back({std::move(r), std::nullopt, 0, false});
      if (!save(job, error)) return false;
    }
    jobs_.push_back(std::move(job));
  }
  for (size_t i = 0; i < jobs_.size(); ++i)
    for (size_t r = 0; r < jobs_[i].checkpoint.ranges.size(); ++r)
      if (!jobs_[i].checkpoint.ranges[r].done) items_.push_back({i, r});
  return true;
}

bool Backfill::save(TableJob& job, std::string* error) {
  return write_file_atomic(job.path, pm::encode_checkpoint(job.checkpoint), error);
}

// The next range to copy; without session_replication_role = replica on the other target, a
// table's ranges wait until the tables it references are done (parents before children).
bool Backfill::next_item(bool replica, Item* out) {
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (abort_ || items_.empty()) return false;
      for (size_t i = 0; i < items_.size(); ++i) {
        const TableJob& job = jobs_[items_[i].table];
        bool ready = true;
        if (!replica) {
          for (const auto& j : jobs_) {
            if (job.parents.count(j.table->qualified()) && (!j.checkpoint.done() || j.running > 0))
              ready = false;
          }
        }
        if (!ready) continue;
        *out = items_[i];
        items_.erase(items_.begin() + static_cast<long>(i));
        jobs_[out->table].running++;
        return true;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

void Backfill::throttle(int64_t rows) {
  wait_for_rate_cap(rows_total_ += rows, ctx_.opt.max_rate, started_, abort_, 1000);
}

bool Backfill::record(const Item& item, const ChunkResult& result, std::string* error, bool throttle_now) {
  TableJob& job = jobs_[item.table];
  {
    std::lock_guard lock(mu_);
    auto& r = job.checkpoint.ranges[item.range];
    r.rows += result.rows;
    if (result.last_key) r.last = result.last_key;
    r.done = job.sql.key.empty() || result.rows < ctx_.opt.chunk_rows;
    if (!save(job, error)) return false;
  }
  progress_->add(job.table->qualified(), result.rows, result.bytes);
  if (throttle_now) throttle(result.rows);
  return true;
}

// Chunk k+1 is read (and its rows locked) on one primary connection while chunk k is written on
// the other target by a second thread, with the other primary connection's transaction (chunk
// k's locks) committed at its end: the barrier's grace and new's write overlap the next read.
// Writes stay one at a time and in key order (one connection to new; the checkpoint only moves
// forward). docs/migration.md, "Overlapped chunks".
bool Backfill::copy_range_overlapped(ConnPair& pair, const Item& item, std::string* error) {
  TableJob& job = jobs_[item.table];
  const pm::TableSql& t = job.sql;
  pm::RangeProgress rp;
  {
    std::lock_guard lock(mu_);
    rp = job.checkpoint.ranges[item.range];
  }
  if (rp.done) return true;
  struct Slot {
    PgConn* primary = nullptr;
    ChunkCopy what;
    ChunkRead read;
    ChunkResult result;
    std::thread writer;
    bool active = false, ok = false;
    std::string error;
  };
  Slot slots[2];
  slots[0].primary = pair.primary.get();
  slots[1].primary = pair.primary2.get();
  bool ok = true;
  // Waits for a slot's write and records it.
  auto finish = [&](Slot& s) {
    if (!s.active) return true;
    s.writer.join();
    s.active = false;
    if (!s.ok) {
      if (ok) *error = s.error;
      return false;
    }
    rows_total_ += s.result.rows - s.read.rows;  // a streamed chunk's rest
    return record(item, s.result, error, false);
  };
  std::optional<pm::Key> from = rp.last ? rp.last : rp.range.lo;
  bool done = false;
  for (size_t k = 0; ok && !done && !abort_; ++k) {
    Slot& cur = slots[k % 2];
    Slot& prev = slots[(k + 1) % 2];
    cur.what = ChunkCopy{};
    const pm::KeyRange range{from, rp.range.hi};
    cur.what.copy_out_sql = pm::copy_chunk_out_sql(t, range, ctx_.opt.chunk_rows);
    cur.what.range = range;
    cur.what.max_buffer = static_cast<size_t>(ctx_.opt.chunk_memory);
    // --max-rate waits here, before this chunk's rows are locked (never while holding them; the
    // write in flight holds only its own chunk's locks and goes on meanwhile).
    throttle(0);
    if (!read_chunk(*cur.primary, cur.what, &cur.read, error)) {
      ok = false;
      break;
    }
    if (!finish(prev)) {  // the previous chunk is committed before this one is written
      std::string ignored;
      cur.primary->exec("ROLLBACK", &ignored);
      ok = false;
      break;
    }
    rows_total_ += cur.read.rows;  // counted for --max-rate when read (streamed rest: when written)
    cur.active = true;
    cur.writer = std::thread([&, s = &cur] {
      s->ok = write_chunk(*s->primary, *pair.secondary, barrier_, t, job.index, s->what, s->read, &s->result,
                          &s->error);
    });
    if (cur.read.complete) {
      from = last_key_read(t, cur.read);
      done = cur.read.rows < ctx_.opt.chunk_rows || !from;
    } else {
      // Larger than --chunk-memory: its last key is known once streamed.
      ok = finish(cur);
      from = cur.result.last_key;
      done = cur.result.rows < ctx_.opt.chunk_rows || !from;
    }
  }
  for (Slot& s : slots)
    if (!finish(s)) ok = false;
  return ok;
}

bool Backfill::copy_range(ConnPair& pair, const Item& item, std::string* error) {
  TableJob& job = jobs_[item.table];
  const pm::TableSql& t = job.sql;
  if (!t.key.empty() && pair.primary2) return copy_range_overlapped(pair, item, error);
  for (;;) {
    pm::RangeProgress rp;
    {
      std::lock_guard lock(mu_);
      rp = job.checkpoint.ranges[item.range];
    }
    if (rp.done) return true;
    ChunkCopy what;
    if (t.key.empty()) {
      what.lock_sql = "LOCK TABLE " + pm::qualified_name(t.schema, t.name) + " IN SHARE MODE";
      what.copy_out_sql = pm::copy_all_out_sql(t);
      what.whole_table = true;
    } else {
      pm::KeyRange from{rp.last ? rp.last : rp.range.lo, rp.range.hi};
      what.copy_out_sql = pm::copy_chunk_out_sql(t, from, ctx_.opt.chunk_rows);
      what.range = from;
      what.max_buffer = static_cast<size_t>(ctx_.opt.chunk_memory);
    }
    ChunkResult result;
    if (!copy_chunk(pair, barrier_, t, job.index, what, &result, error)) return false;
    if (!record(item, result, error)) return false;
    if (abort_) return true;
  }
}

void Backfill::worker() {
  ConnPair pair;
  std::string e;
  bool connected = open_pair(ctx_, &pair, &e, overlap_enabled(ctx_.opt.max_rate));
  bool replica = connected && pair.replica_role;
  Item item;
  while (next_item(replica, &item)) {
    const std::string name = jobs_[item.table].table->qualified();
    bool ok = false;
    for (int attempt = 1; attempt <= kAttempts && !abort_; ++attempt) {
      if (!connected || !pair.primary->ok() || !pair.secondary->ok()) {
        connected = open_pair(ctx_, &pair, &e, overlap_enabled(ctx_.opt.max_rate));
        if (connected) replica = pair.replica_role;
      }
      if (connected && copy_range(pair, item, &e)) {
        ok = true;
        break;
      }
      if (attempt < kAttempts) {
        std::fprintf(stderr, "pgtandem backfill: %s: %s; retrying in %d s\n", name.c_str(), e.c_str(), 1 << (attempt - 1));
        std::this_thread::sleep_for(std::chrono::seconds(1 << (attempt - 1)));
      }
    }
    std::lock_guard lock(mu_);
    jobs_[item.table].running--;
    if (!ok) {
      if (error_.empty()) error_ = name + ": " + e;
      abort_ = true;
      return;
    }
    if (jobs_[item.table].checkpoint.done() && jobs_[item.table].running == 0) progress_->table_done(name);
  }
}

// The chunked copy: plan (checkpoints), the barrier's first watermark, the workers.
bool Backfill::run_chunked(PgConn& p, const std::vector<const pm::Table*>& tables, int64_t* rows) {
  std::string error;
  if (!plan(p, tables, &error)) {
    std::fprintf(stderr, "pgtandem backfill: %s\n", error.c_str());
    audit(ctx_.opt, "backfill", 1, pm::Json::object().set("error", pm::Json::string(error)));
    return false;
  }
  if (barrier_.enabled()) {
    Watermark w;
    for (const auto& a : barrier_.admins()) {
      if (!fetch_watermark(a, &w, &error)) {
        std::fprintf(stderr, "pgtandem backfill: %s\n", error.c_str());
        audit(ctx_.opt, "backfill", 1, pm::Json::object().set("error", pm::Json::string(error)));
        return false;
      }
    }
  }
  progress_ = std::make_unique<Progress>("backfill", state_dir(ctx_.opt) + "/backfill-state.json", &ctx_);
  progress_->set_barrier(&barrier_);
  int64_t resumed_rows = 0;
  for (auto& job : jobs_) {
    progress_->table_started(job.table->qualified(), job.table->estimated_rows);
    const int64_t done_rows = job.checkpoint.rows();
    resumed_rows += done_rows;
    if (done_rows > 0) progress_->add(job.table->qualified(), done_rows, 0, 0);
    if (job.checkpoint.done()) progress_->table_done(job.table->qualified());
  }
  if (resumed_rows > 0)
    std::printf("resuming from %s/backfill: %s rows already copied\n", state_dir(ctx_.opt).c_str(),
                pm::format_count(resumed_rows).c_str());
  progress_->start();
  std::vector<std::thread> threads;
  const size_t n = std::min<size_t>(ctx_.opt.jobs, std::max<size_t>(1, items_.size()));
  for (size_t i = 0; i < n; ++i) threads.emplace_back([this] { worker(); });
  for (auto& t : threads) t.join();
  for (const auto& job : jobs_) *rows += job.checkpoint.rows();
  return true;
}

int Backfill::run() {
  std::string error;
  auto p = PgConn::open(ctx_.primary, &error);
  pm::Schema schema;
  std::vector<const pm::Table*> tables;
  if (!p || !fetch_schema(*p, &schema, &error) || !select_tables(schema, ctx_.opt.tables, &tables, &error)) {
    std::fprintf(stderr, "pgtandem backfill: %s\n", error.c_str());
    audit(ctx_.opt, "backfill", 1, pm::Json::object().set("error", pm::Json::string(error)));
    return 1;
  }
  if (ctx_.mirror_writes && !barrier_.enabled() && !ctx_.opt.no_watermark) {
    error = "mirror_writes is on but no pgtandem admin endpoint is known: give --admin HOST:PORT for every running pgtandem (or --no-watermark with writes stopped)";
    std::fprintf(stderr, "pgtandem backfill: %s\n", error.c_str());
    return 1;
  }
  // The snapshot copy first (auto, snapshot); the chunked copy where the fence is not offered.
  std::string mode = ctx_.opt.mode;
  int64_t rows = 0;
  SnapshotResult snap;
  if (mode != "chunked") {
    progress_ = std::make_unique<Progress>("backfill", state_dir(ctx_.opt) + "/backfill-state.json", &ctx_);
    progress_->start();
    snap = snapshot_backfill(ctx_, pm::copy_order(tables), *progress_);
    if (snap.unavailable && mode == "auto") {
      std::printf("snapshot copy unavailable (%s): copying in key-ordered chunks under row locks instead\n",
                  snap.why.c_str());
      progress_->stop();
      progress_.reset();
      mode = "chunked";
    } else {
      mode = "snapshot";
      if (!snap.ok) error_ = snap.why;
      rows_total_ = snap.rows_this_run;
      rows = snap.rows;
    }
  }
  if (mode == "chunked" && !run_chunked(*p, tables, &rows)) return 1;
  p.reset();

  // Serial and identity columns: mirrored INSERTs draw from the other target's own sequences, and
  // the copy does not call nextval there; at the end every sequence is set to at least the
  // primary's value (docs/migration.md, "Serial and identity columns").
  int sequences_raised = 0;
  if (error_.empty()) {
    ConnPair pair;
    std::string e;
    bool ok = open_pair(ctx_, &pair, &e);
    for (size_t i = 0; ok && i < schema.sequences.size(); ++i) {
      bool raised = false;
      ok = raise_sequence(pair, schema.sequences[i], &raised, &e);
      sequences_raised += raised ? 1 : 0;
    }
    if (!ok) error_ = "setting the other target's sequences: " + e;
    else if (!schema.sequences.empty())
      std::printf("sequences: %d of %zu set to at least the primary's value on %s\n", sequences_raised,
                  schema.sequences.size(), ctx_.secondary_name.c_str());
  }
  const double secs = std::chrono::duration<double>(Clock::now() - started_).count();
  const int code = error_.empty() ? 0 : 1;
  progress_->finish(code, error_);
  if (code == 0) {
    std::printf("backfill complete: %zu tables, %s rows (%s this run) in %.1f s\n", tables.size(),
                pm::format_count(rows).c_str(), pm::format_count(rows_total_.load()).c_str(), secs);
    if (mode == "snapshot" && snap.tables_this_run > 0)
      std::printf("snapshot copy: %lld tables from one snapshot (%lld in binary COPY), traffic paused %.0f ms "
                  "at most, %lld mirrored writes journaled meanwhile and applied on top\n",
                  static_cast<long long>(snap.tables_this_run), static_cast<long long>(snap.tables_binary),
                  snap.pause_ms, static_cast<long long>(snap.journal_entries));
    if (mode == "chunked" && barrier_.enabled())
      std::printf("mirror barrier: %lld chunks after the answers drained, %lld after the %d ms grace\n",
                  static_cast<long long>(barrier_.drained()), static_cast<long long>(barrier_.by_grace()),
                  ctx_.opt.commit_grace_ms);
  } else {
    std::fprintf(stderr,
                 "pgtandem backfill: stopped: %s\nprogress is saved in %s/backfill: run the same "
                 "command again to continue\n",
                 error_.c_str(), state_dir(ctx_.opt).c_str());
  }
  audit(ctx_.opt, "backfill", code,
        pm::Json::object()
            .set("mode", pm::Json::string(mode))
            .set("tables", pm::Json::integer(static_cast<int64_t>(tables.size())))
            .set("rows", pm::Json::integer(rows))
            .set("rows_this_run", pm::Json::integer(rows_total_.load()))
            .set("sequences_raised", pm::Json::integer(sequences_raised))
            .set("seconds", pm::Json::number(secs))
            .set("error", pm::Json::string(error_)));
  return code;
}

}  // namespace

int backfill_main(int argc, char** argv) {
  Options opt;
  std::string error;
  if (!parse_options(argc, argv,
                     {"--config", "--user", "--dbname", "--tables", "--jobs", "--max-rate", "--chunk-rows", "--chunk-memory", "--state-dir",
                      "--admin", "--no-watermark", "--commit-grace-ms", "--watermark-timeout-ms", "--mode", "--fence-lease-ms"},
                     &opt, &error)) {
    std::fprintf(stderr, "pgtandem backfill: %s\n", error.c_str());
    return 2;
  }
  Context ctx;
  if (!make_context(opt, "pgtandem-backfill", &ctx, &error)) {
    std::fprintf(stderr, "pgtandem backfill: %s\n", error.c_str());
    return 1;
  }
  Backfill b(std::move(ctx));
  return b.run();
}

}  // namespace pgtandem::proxy::migrate

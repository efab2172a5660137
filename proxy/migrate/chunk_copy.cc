// The invariant's mechanics (docs/migration.md, "The invariant and how backfill holds it"): the
// mirror barrier (the answer drain, then the watermark) and one chunk copied under it: read and
// locked on the primary, written on the other target after the barrier, the primary's locks
// released last. Backfill and repair use them; the commands' context, state files and progress
// are in common.cc.
#include "proxy/migrate/chunk_copy.h"

#include <algorithm>
#include <thread>

namespace pgtandem::proxy::migrate {

using Clock = std::chrono::steady_clock;

MirrorBarrier::MirrorBarrier(const Context& ctx)
    : grace_ms_(ctx.opt.commit_grace_ms), timeout_ms_(ctx.opt.watermark_timeout_ms) {
  if (!ctx.opt.no_watermark) admins_ = ctx.opt.admins;
}

bool MirrorBarrier::drain(const std::string& admin, Clock::time_point grace_end, Watermark* w,
                          bool* exact, std::string* error) {
  *exact = false;
  uint64_t token = 0;
  for (int step = 0;; ++step) {
    const std::string q = token == 0 ? "drain=start" : "drain=" + std::to_string(token);
    if (!fetch_watermark(admin, w, error, q)) return false;
    if (!w->drain_known) break;  // a pgtandem without the drain: the grace alone
    token = w->drain;            // 0: an earlier drain is not over yet; ask again
    if (w->drained) {
      *exact = true;  // its last_assigned was read after the drain: nothing is left to number
      return true;
    }
    const auto now = Clock::now();
    if (now >= grace_end) break;
    std::this_thread::sleep_until(std::min(grace_end, now + std::chrono::milliseconds(step < 20 ? 1 : 5)));
  }
  // Some session was still waiting for an answer at the end of the grace: the watermark as it
  // stands now, as before the drain existed (docs/migration.md, the race).
  std::this_thread::sleep_until(grace_end);
  return fetch_watermark(admin, w, error);
}

bool MirrorBarrier::wait(std::string* error, Clock::time_point since) {
  if (admins_.empty()) return true;
  // COMMIT answers still on their way to pgtandem when the chunk was read: each pgtandem counts
  // its sessions waiting for an answer, and the barrier waits until every session counted now
  // has had its answer numbered (docs/migration.md, "The race"). That is exact, and immediate
  // when nothing is in flight; a session busy throughout holds it to the grace, counted from
  // the snapshot (`since`), as the barrier did before.
  const auto grace_end = since + std::chrono::milliseconds(grace_ms_);
  std::vector<uint64_t> targets(admins_.size());
  std::vector<bool> reached(admins_.size());
  bool all_exact = true;
  for (size_t i = 0; i < admins_.size(); ++i) {
    Watermark w;
    bool exact = false;
    if (!drain(admins_[i], grace_end, &w, &exact, error)) return false;
    all_exact = all_exact && exact;
    targets[i] = w.last_assigned;
    reached[i] = w.done_through >= w.last_assigned;  // an idle mirror: no polling
  }
  (all_exact ? drained_ : by_grace_).fetch_add(1);
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms_);
  for (size_t i = 0; i < admins_.size(); ++i) {
    for (int step = 0; !reached[i]; ++step) {
      Watermark w;
      if (!fetch_watermark(admins_[i], &w, error)) return false;
      if (w.done_through >= targets[i]) break;
      if (Clock::now() >= deadline) {
        *error = "pgtandem " + admins_[i] + ": the mirror did not apply unit " +
                 std::to_string(targets[i]) + " within " + std::to_string(timeout_ms_) +
                 " ms (done through " + std::to_string(w.done_through) + ")";
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(step < 10 ? 2 : 10));
    }
  }
  return true;
}

namespace {

std::optional<pm::Key> key_of_line(const pm::TableSql& t, std::string_view line) {
  if (t.key.empty() || line.empty()) return std::nullopt;
  auto fields = pm::decode_copy_line(line);
  pm::Key key;
  for (const auto& k : t.key) {
    for (size_t i = 0; i < t.columns.size(); ++i)
      if (t.columns[i] == k && i < fields.size() && fields[i]) key.push_back(*fields[i]);
  }
  if (key.size() != t.key.size()) return std::nullopt;
  return key;
}

// On the other target, in its open transaction: whether it holds any row of `range`.
bool range_empty(PgConn& n, const pm::TableSql& t, const pm::KeyRange& range, bool* empty,
                 std::string* error) {
  Rows r;
  if (!n.query("SELECT 1 FROM " + pm::qualified_name(t.schema, t.name) + " WHERE " +
                   pm::range_predicate(t, range) + " LIMIT 1",
               &r, error))
    return false;
  *empty = r.rows.empty();
  return true;
}

}  // namespace

bool read_chunk(PgConn& p, const ChunkCopy& what, ChunkRead* r, std::string* error) {
  *r = {};
  std::string e;
  auto fail = [&](const std::string& why) {
    *error = why;
    std::string ignored;
    if (p.ok()) p.exec("ROLLBACK", &ignored);
    return false;
  };
  if (!p.exec("BEGIN ISOLATION LEVEL READ COMMITTED", &e)) return fail(e);
  if (!what.lock_sql.empty() && !p.exec(what.lock_sql, &e)) return fail(e);
  // The chunk out of the primary (its rows locked as they are read), into memory while it fits.
  r->snapshot_by = Clock::now();
  if (!p.copy_out_buffered(what.copy_out_sql, what.max_buffer, &r->data, &r->rows, &r->last_at, &r->complete,
                           &r->snapshot_by, &e))
    return fail(e);
  return true;
}

std::optional<pm::Key> last_key_read(const pm::TableSql& t, const ChunkRead& r) {
  if (r.rows == 0 || !r.complete) return std::nullopt;
  return key_of_line(t, std::string_view(r.data).substr(r.last_at));
}

bool write_chunk(PgConn& p, PgConn& n, MirrorBarrier& barrier, const pm::TableSql& t, size_t staging_index,
                 const ChunkCopy& what, const ChunkRead& read, ChunkResult* result, std::string* error) {
  *result = {};
  result->rows = read.rows;
  const std::string staging = pm::staging_name(staging_index);
  auto fail = [&](const std::string& e) {
    *error = e;
    std::string ignored;
    if (n.ok()) n.exec("ROLLBACK", &ignored);
    if (p.ok()) p.exec("ROLLBACK", &ignored);
    return false;
  };
  std::string e;
  const std::string& data = read.data;
  const bool complete = read.complete;
  result->bytes = static_cast<int64_t>(data.size());
  std::string last_line = data.substr(read.last_at);
  bool direct = false;  // straight into the table
  if (!n.exec("BEGIN", &e)) return fail(e);
  if (complete) {
    // Every row is read and locked: wait until the mirror applied everything the primary
    // committed before (docs/migration.md), then look at what `new` holds of the range.
    if (!barrier.wait(&e, read.snapshot_by)) return fail(e);
    const auto last = key_of_line(t, last_line);
    if (what.range && last && result->rows > 0 &&
        !range_empty(n, t, pm::KeyRange{what.range->lo, *last}, &direct, &e))
      return fail(e);
  }
  if (direct) {
    int64_t ignored_rows = 0, ignored_bytes = 0;
    std::string ignored_line;
    if (!p.copy_buffer_to(n, pm::copy_into_table_sql(t), data, false, &ignored_rows, &ignored_bytes,
                          &ignored_line, &e))
      return fail(e);
  } else if (result->rows > 0 || what.whole_table || what.delete_absent) {
    std::string rest_line;
    if (!n.exec(pm::create_staging_sql(t, staging), &e) ||
        !p.copy_buffer_to(n, pm::copy_in_sql(staging, t), data, !complete, &result->rows, &result->bytes,
                          &rest_line, &e))
      return fail(e);
    if (!rest_line.empty()) last_line = std::move(rest_line);
    // A chunk too large for memory was streamed: its rows are all locked only now.
    if (!complete && !barrier.wait(&e, read.snapshot_by)) return fail(e);
    if (what.delete_absent && !what.delete_absent->empty() &&
        !n.exec(pm::delete_absent_sql(t, *what.delete_absent, staging), &e))
      return fail(e);
    if (what.whole_table) {
      const std::string table = pm::qualified_name(t.schema, t.name);
      const std::string cols = pm::column_list(t.columns);
      if (!n.exec("DELETE FROM " + table, &e) ||
          !n.exec("INSERT INTO " + table + " (" + cols + ") OVERRIDING SYSTEM VALUE SELECT " + cols +
                      " FROM " + pm::quote_ident(staging),
                  &e))
        return fail(e);
    } else if (result->rows > 0 && !n.exec(pm::upsert_from_staging_sql(t, staging), &e)) {
      return fail(e);
    }
  }
  if (!n.exec("COMMIT", &e)) return fail(e);
  if (!p.exec("COMMIT", &e)) return fail(e);  // releases the chunk's locks
  if (result->rows > 0) result->last_key = key_of_line(t, last_line);
  return true;
}

bool copy_chunk(ConnPair& pair, MirrorBarrier& barrier, const pm::TableSql& t, size_t staging_index,
                const ChunkCopy& what, ChunkResult* result, std::string* error) {
  ChunkRead read;
  *result = {};
  if (!read_chunk(*pair.primary, what, &read, error)) return false;
  return write_chunk(*pair.primary, *pair.secondary, barrier, t, staging_index, what, read, result, error);
}

}  // namespace pgtandem::proxy::migrate

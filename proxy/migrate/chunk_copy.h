// The invariant's mechanics (docs/migration.md): the mirror barrier, and one chunk copied under
// it. chunk_copy.cc.
#pragma once

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "proxy/migrate/common.h"

namespace pgtandem::proxy::migrate {

// Waits until every running pgtandem's mirror has applied what the primary committed before now
// minus nothing: after `commit_grace_ms` (for COMMIT answers still on their way to pgtandem), the
// last unit number each pgtandem assigned is read and its done_through awaited.
class MirrorBarrier {
 public:
  explicit MirrorBarrier(const Context& ctx);
  bool enabled() const { return !admins_.empty(); }
  // `since`: when the snapshot whose commits must be applied was taken at the latest (the COPY
  // out's start): the grace runs from there, so it overlaps the copy instead of following it.
  bool wait(std::string* error, std::chrono::steady_clock::time_point since = std::chrono::steady_clock::now());
  const std::vector<std::string>& admins() const { return admins_; }
  // Barriers whose pgtandems all drained their answers (exact, no grace slept), and those that
  // waited out the grace for at least one of them (a session busy throughout, an older pgtandem).
  int64_t drained() const { return drained_.load(); }
  int64_t by_grace() const { return by_grace_.load(); }

 private:
  // The answer drain of one pgtandem (policy/mirror/answer_drain.h), until it drains or
  // `grace_end`; *w then holds the watermark read after it. False only on an error.
  bool drain(const std::string& admin, std::chrono::steady_clock::time_point grace_end, Watermark* w,
             bool* exact, std::string* error);
  std::vector<std::string> admins_;
  std::atomic<int64_t> drained_{0}, by_grace_{0};
  int grace_ms_ = 50;
  int timeout_ms_ = 60000;
};

// One chunk copied under the invariant (docs/migration.md): on the primary, BEGIN, `lock_sql`
// (optional), the COPY out (which may lock rows FOR SHARE); streamed into a staging table on the
// other target; the mirror barrier; then on the other target: optional deletes (repair),
// the upsert (or, keyless, replace the whole table), COMMIT; then COMMIT on the primary.
struct ChunkCopy {
  std::string lock_sql;      // e.g. "LOCK TABLE ... IN SHARE MODE"; "" for none
  std::string copy_out_sql;  // COPY (...) TO STDOUT on the primary
  const std::vector<pm::Key>* delete_absent = nullptr;  // repair: these keys, if the primary lacks them
  bool whole_table = false;  // keyless: replace every row of the table
  // Backfill: the key range the chunk starts in (its rows are the first ones after range.lo).
  // Set: a chunk that fits in memory is COPYed straight into the table when `new` holds no row
  // of it (the common case of a first backfill), skipping the staging table and the upsert.
  std::optional<pm::KeyRange> range;
  size_t max_buffer = 64 << 20;  // bytes of the chunk held in memory; beyond, it is streamed
};
struct ChunkResult {
  int64_t rows = 0, bytes = 0;
  std::optional<pm::Key> last_key;
};
bool copy_chunk(ConnPair& pair, MirrorBarrier& barrier, const pm::TableSql& t, size_t staging_index,
                const ChunkCopy& what, ChunkResult* result, std::string* error);

// copy_chunk() in its two phases, for a caller that overlaps them (backfill): read_chunk() is
// step 1-2 on a primary connection (its transaction, and the chunk's row locks, stay open);
// write_chunk() is the rest, on that same primary connection and the other target's. Both roll
// back what they opened on failure.
struct ChunkRead {
  std::string data;
  int64_t rows = 0;
  size_t last_at = 0;
  bool complete = false;  // false: the COPY out is still open (streamed by write_chunk)
  std::chrono::steady_clock::time_point snapshot_by;
};
bool read_chunk(PgConn& primary, const ChunkCopy& what, ChunkRead* read, std::string* error);
// The key of the read's last row (nullopt: no rows, or not all read yet).
std::optional<pm::Key> last_key_read(const pm::TableSql& t, const ChunkRead& read);
bool write_chunk(PgConn& primary, PgConn& secondary, MirrorBarrier& barrier, const pm::TableSql& t,
                 size_t staging_index, const ChunkCopy& what, const ChunkRead& read, ChunkResult* result,
                 std::string* error);

}  // namespace pgtandem::proxy::migrate

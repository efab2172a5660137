// The snapshot backfill (issue 13; docs/migration.md, "Snapshot backfill"): whole tables copied
// from one exported snapshot of the primary, with no row lock, while clients keep writing through
// pgtandem. Exact because of the mirror fence (proxy/mirror/mirror_fence.h): every pgtandem
// pauses at transaction boundaries until its mirror has applied everything, the snapshot is taken
// then (it holds exactly those writes), the fence sends every later mirrored write to the journal
// while the tables are TRUNCATEd and COPYed on the other target, and catch-up applies the journal
// on top once the fence is released. The chunked backfill (backfill.cc) is the fallback.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "proxy/migrate/common.h"

namespace pgtandem::proxy::migrate {

struct SnapshotResult {
  // The fence is not offered by some pgtandem (an older one, [mirror] catchup off, no admin
  // token): nothing was changed, and `why` says why; "auto" falls back to the chunked copy.
  bool unavailable = false;
  std::string why;    // unavailable, or the failure (resumable: the same command continues)
  bool ok = false;
  int64_t rows = 0;  // of every table recorded copied, by this run or an earlier one
  int64_t rows_this_run = 0;
  int64_t tables_this_run = 0;
  int64_t tables_binary = 0;    // of them copied in binary format
  int64_t journal_entries = 0;  // writes the fence held back, then applied by catch-up
  double pause_ms = 0;          // the longest pause of one pgtandem
};

// `tables`: in copy order (parents first). Checkpoints in <state-dir>/backfill, shared with the
// chunked copy: a table recorded done is skipped; any other is copied whole again.
SnapshotResult snapshot_backfill(const Context& ctx, const std::vector<const pm::Table*>& tables,
                                 Progress& progress);

}  // namespace pgtandem::proxy::migrate

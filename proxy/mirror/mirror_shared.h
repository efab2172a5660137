// What all sessions' mirror links share (ServerState::mirror): the target writes go to, the
// journal, pgtandem's credentials, the queue bytes, the commit order across links, and what the
// classifier learned about functions (the write capture's classification).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <utility>
#include <vector>

#include "config/pgpass.h"
#include "policy/mirror/answer_drain.h"
#include "policy/mirror/mirror_order.h"
#include "policy/sql/classifier.h"

namespace pgtandem::proxy {

class Journal;
class MirrorLink;
class MirrorSafety;

// Links waiting for the commit order (MirrorLink::wait_for_order): each is woken on its own worker
// once the "done through" watermark reaches the number it waits for (no polling). `count` lets the
// completing side skip the lock when nobody waits; it and the watermark are seq_cst, so a link that
// registers and then re-reads the watermark never misses a wake.
struct OrderWaiters {
  std::mutex mu;
  std::vector<std::pair<uint64_t, std::weak_ptr<MirrorLink>>> list;
  std::atomic<size_t> count{0};
};

// Automatic catch-up (proxy/mirror/catchup.h, docs/design.md "Catch-up"): while the journal holds
// entries not yet applied, every link journals (none applies live), so that no live write
// overtakes a journaled one; the catch-up thread applies the backlog in commit order and, once it
// has applied the last entry appended, flips back to live under `mu` held exclusively (links
// journal under it shared, so no entry can slip in between). Under load the journal never stops
// growing by itself: for the last of the backlog catch-up drains (`draining` below).
struct MirrorBacklog {
  bool enabled = false;  // [mirror] catchup: set before sessions start, never changed after
  std::shared_mutex mu;
  std::atomic<bool> journaling{false};
  // The last of a backlog: catch-up set the mark (under `mu` exclusively) to the last unit number
  // given; units numbered past it wait in their links' queues instead of being journaled, so the
  // journal stops growing and catch-up can apply its last entry. Cleared at the flip.
  std::atomic<bool> draining{false};
  std::atomic<uint64_t> drain_mark{0};
  std::atomic<uint64_t> returns_to_live{0};
  // Written by the catch-up thread, read by /status and the metrics.
  enum State : int { kLive = 0, kJournaling = 1, kCatchingUp = 2, kWaiting = 3, kFenced = 4 };
  // For /status, the metrics' label and the cutover's journal gate.
  static const char* state_name(int s) {
    switch (s) {
      case kJournaling:
        return "journaling";
      case kCatchingUp:
        return "catching_up";
      case kWaiting:
        return "waiting_for_target";
      case kFenced:
        return "fenced";
      default:
        return "live";
    }
  }
  std::atomic<int> state{kLive};
  std::atomic<uint64_t> entries{0};
  std::atomic<uint64_t> bytes{0};
  std::atomic<int64_t> oldest_unix{0};
  std::atomic<uint64_t> applied{0};
  std::atomic<uint64_t> skipped{0};
  std::atomic<uint64_t> groups{0};          // transactions that applied several entries at once
  std::atomic<uint64_t> groups_retried{0};  // of them rolled back, their entries sent one by one
  std::atomic<uint64_t> divergences{0};
  std::atomic<double> rate{0};  // entries per second while catching up (last few seconds)
  // Apply timeout ([mirror] apply_timeout_ms, docs/design.md "Apply timeout"): links whose unit in
  // flight has had no answer past the timeout (while any is, catch-up neither drains nor returns
  // to live: its entries wait for that unit's fate), how often that happened, and the units whose
  // fate stayed unknown (a needs-repair mark each time).
  std::atomic<int64_t> hung_links{0};
  std::atomic<uint64_t> apply_timeouts{0};
  std::atomic<uint64_t> apply_timeout_unresolved{0};
  // Units sent live whose connection broke before their answer said whether they committed
  // (MirrorLink::settle_lost_answer): a needs-repair mark each time, never sent again.
  std::atomic<uint64_t> lost_answer_unresolved{0};
  // The mirror fence (proxy/mirror/mirror_fence.h; a snapshot backfill, docs/migration.md): while
  // `fenced`, every link journals and catch-up applies nothing. Catch-up parks before the fence
  // may journal anything: it stores in `parked_gen` the `fence_gen` it read along with `fenced`,
  // and the fence waits for its own generation there, so no pass that began before it is running.
  std::atomic<bool> fenced{false};
  std::atomic<uint64_t> fence_gen{0};
  std::atomic<uint64_t> parked_gen{0};
  // For /status and the metrics (written by the fence).
  std::atomic<int> fence_state{0};  // 0 idle, 1 paused, 2 armed
  std::atomic<uint64_t> fence_through{0};   // the last unit number before the fence
  std::atomic<uint64_t> fences{0};          // fences armed
  std::atomic<uint64_t> fences_expired{0};  // ended by a lease or the journal's size, not released
};

struct MirrorShared {
  // The target writes are mirrored to: written by a cutover (its thread), read by /status.
  std::atomic<size_t> secondary{1};
  std::unique_ptr<Journal> journal;              // where unapplied mirrored writes go
  std::shared_ptr<const config::Pgpass> pgpass;  // pgtandem's credentials for the targets
  std::atomic<int64_t> queue_bytes{0};           // all sessions' mirror queues together
  policy::MirrorOrder order;                     // commit order across sessions' mirror links
  policy::AnswerDrain answers;                   // sessions waiting for an answer (the barrier)
  OrderWaiters order_waiters;                    // links waiting for it
  MirrorBacklog backlog;                         // automatic catch-up
  policy::FunctionLists functions;               // from [classifier]
  // Learned from the primary's pg_proc at start; sessions take it when they begin.
  std::atomic<std::shared_ptr<const policy::VolatilityCatalog>> catalog;
  // The state dir's crash-window marker, needs-repair marks and the journal limit's stop state
  // (proxy/mirror/mirror_safety.h); opened with `journal`. Last: destroyed first, so its sampler
  // thread (which reads `order` and `queue_bytes`) stops before they go.
  std::unique_ptr<MirrorSafety> safety;
};

}  // namespace pgtandem::proxy

// The answer drain: "has every request forwarded before now had its answer?" (issue 13).
//
// The backfill's barrier (docs/migration.md) must wait until the mirror has applied every
// transaction the primary committed before the chunk was read. It reads the commit order's
// `last_assigned` and waits for the mirror to get there; but a unit numbered at its answer
// (MirrorOrder::assign: autocommit writes, multi-statement queries, pipelines) is numbered only
// when the primary's answer reaches pgtandem, a little after the primary committed. The barrier
// used to sleep a fixed grace (50 ms) for those answers: a guess, paid by every chunk, and still
// a race when an answer is later than that.
//
// The drain replaces the guess with a count. A mirrored session counts itself "waiting for an
// answer" from the moment it forwards a request with none outstanding until the ReadyForQuery
// that leaves none outstanding, after that answer's units were numbered. A transaction that
// committed on the primary before the barrier was called had its request forwarded before the
// call, so its session was counted before the call, and it stops being counted only once its
// unit has a number. So once every session counted at the call has left, `last_assigned` covers
// every such transaction: exact, and free when nothing is in flight.
//
// How the barrier tells "counted before my call" from later arrivals without a list of sessions:
// two counts per worker slot, by the parity of an epoch. A session enters the count of the
// epoch's parity it read, and leaves the same count. flip() moves the epoch on, so later
// arrivals count in the other parity, and the caller waits for the old parity's count to reach
// zero. That is sound only if the other parity held nobody when the flip happened (else sessions
// from before the call, counted there, would be missed), so flip() refuses (returns 0) until it
// does; a caller retries. Every step is seq_cst: a session increments before it forwards, the
// flip reads the other count before it moves the epoch, the barrier reads the old count after.
// A session that read the epoch just before a flip and increments just after it lands in the
// count being drained (waited for, harmless) or, if its read was older still, in the new count:
// then its increment, and so its forward, came after the barrier's call, and it is not needed.
//
// A session that stays busy (a long query, a pipeline that never pauses, a statement waiting on
// the chunk's own row locks) keeps a parity from draining: the barrier then falls back to its
// grace (proxy/migrate), never worse than before. Per request: one load of the epoch (a line
// written only by barriers) and two uncontended atomic operations on the worker's own line.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>

namespace pgtandem::policy {

class AnswerDrain {
 public:
  static constexpr size_t kSlots = 64;  // workers beyond this share slots (correct, just shared)

 private:
  struct alignas(64) Slot {
    std::atomic<int64_t> count[2] = {0, 0};
  };

 public:
  // One per session, used on its worker thread only.
  class Ticket {
   public:
    Ticket(AnswerDrain& d, size_t slot) : drain_(d), slot_(d.slots_[slot % kSlots]) {}
    ~Ticket() { leave(); }
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;
    // A request is being forwarded (before it is written to the server).
    void enter() {
      if (held_) return;
      parity_ = static_cast<unsigned>(drain_.epoch_.load() & 1);
      slot_.count[parity_].fetch_add(1);
      held_ = true;
    }
    // Nothing outstanding any more, and the last answer's units are numbered.
    void leave() {
      if (!held_) return;
      held_ = false;
      slot_.count[parity_].fetch_sub(1);
    }
    bool held() const { return held_; }

   private:
    AnswerDrain& drain_;
    Slot& slot_;
    unsigned parity_ = 0;
    bool held_ = false;
  };

  // Starts a drain: a token for drained(), or 0 while an earlier epoch has not drained yet (retry).
  uint64_t flip() {
    std::lock_guard lock(mu_);
    const uint64_t e = epoch_.load();
    if (count(static_cast<unsigned>((e + 1) & 1)) != 0) return 0;
    epoch_.store(e + 1);
    return e + 1;
  }
  // Whether every session counted before flip() returned `token` has left.
  bool drained(uint64_t token) const {
    if (token == 0) return false;
    // A later flip happened only once this token's parity had drained.
    if (epoch_.load() > token) return true;
    return count(static_cast<unsigned>((token - 1) & 1)) == 0;
  }
  // Sessions waiting for an answer now (both parities), for /status.
  int64_t busy() const { return count(0) + count(1); }
  uint64_t epoch() const { return epoch_.load(); }

 private:
  int64_t count(unsigned parity) const {
    int64_t n = 0;
    for (const Slot& s : slots_) n += s.count[parity].load();
    return n;
  }

  std::mutex mu_;  // flips only
  alignas(64) std::atomic<uint64_t> epoch_{0};
  Slot slots_[kSlots];
};

}  // namespace pgtandem::policy

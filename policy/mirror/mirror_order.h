// Commit order across sessions on the mirror.
//
// Each session applies its writes on the mirror over a connection of its own; without more, two
// sessions' writes could reach the mirror in the opposite order from the primary's, and where they
// touch the same rows the mirror ends up different. Two examples: pgbench TRUNCATEs a table in one
// session and then INSERTs into it from others; and 8 sessions each run `BEGIN; UPDATE hot SET
// v = f(v) WHERE id = k; COMMIT` on a few rows, where each UPDATE waits on the row lock of another
// session's transaction and reads what that one wrote. One inversion in a row's history of
// hundreds of updates leaves the row different.
//
// pgtandem sees neither rows nor locks, only when it forwarded each request and when each answer
// came back; it orders on the mirror what that shows the primary ordered. Every unit gets a
// number, and carries `after`: a link applies it only once every unit numbered up to `after` is
// done (applied, journaled or failed). Numbers come from one counter, in two ways:
//
//   - reserve(): when a session forwards a lone COMMIT (its transaction's writes came in earlier
//     requests, it is the only request in flight). The unit that COMMIT releases takes that number
//     and follows every lower one. Causality makes this exact: a transaction T that this one
//     conflicts with (a row both wrote, or a row this one read after T wrote it) had committed
//     before the conflicting statement completed, so T's COMMIT was forwarded, and numbered,
//     before the statement's answer reached pgtandem, before this COMMIT was forwarded. The
//     number is reserved before the COMMIT is written to the server, so no answer can overtake it.
//     A COMMIT never waits on another transaction's row locks, so following every transaction
//     forwarded earlier never puts this one before one it came after. A reservation the answer
//     does not use (a ROLLBACK, a read-only transaction, a lost connection) is marked done.
//   - assign(): any other unit, when the primary's answer released it (the number then is the
//     order the answers arrived in). A write follows everything numbered before it. When its
//     write and its commit came in one request (an autocommit statement, a multi-statement Query,
//     a pipeline) and another unit was numbered while that request was in flight, the answers'
//     order is the only evidence, and it is weak: a backend that releases a row lock can be
//     preempted by the one it woke before it sends its own answer. Such units are counted
//     (`unordered_overlaps()`), so that verify knows where to look first. A unit that changes no
//     data (session state, a read-only transaction) follows nothing.
//
// No cycle can form: a unit only ever waits for lower numbers than its own, and the lowest one not
// done waits for nothing (a reserved number's unit follows only lower numbers too).
//
// Thread-safe (sessions on all workers share one); a mutex per number and per completion, an
// atomic load for the checks.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>

namespace pgtandem::policy {

class MirrorOrder {
 public:
  enum class Follow : uint8_t { kNothing, kEverything };
  struct Numbered {
    uint64_t seq = 0;
    uint64_t after = 0;
  };

  // A number for the unit a lone COMMIT being forwarded now will release; it follows every lower
  // number. Mark it done() if no such unit comes (see the top).
  Numbered reserve() {
    std::lock_guard lock(mu_);
    Numbered n;
    n.seq = next();
    n.after = n.seq - 1;
    return n;
  }
  // Numbers a unit being pushed. `forward_mark`: last_assigned() when the request that released it
  // was forwarded; a write numbered past it overlapped others in flight (counted, see the top).
  Numbered assign(Follow follow, uint64_t forward_mark) {
    std::lock_guard lock(mu_);
    Numbered n;
    n.seq = next();
    if (follow == Follow::kEverything) {
      n.after = n.seq - 1;
      if (n.after > forward_mark) unordered_.fetch_add(1, std::memory_order_relaxed);
    }
    return n;
  }
  // The unit numbered `seq` is done (applied, journaled or failed). 0: not numbered, ignored.
  // Returns the new "done through" watermark.
  uint64_t done(uint64_t seq) {
    if (seq == 0) return done_through();
    std::lock_guard lock(mu_);
    if (seq >= base_ && seq - base_ < pending_.size()) {
      pending_[seq - base_] = true;
      advance();
    }
    return base_ - 1;
  }
  // Gives up waiting for the units up to `seq`: they count as done for ordering from now on (one
  // stuck unit then holds the others back once, not once per waiting unit).
  uint64_t give_up_through(uint64_t seq) {
    std::lock_guard lock(mu_);
    while (!pending_.empty() && base_ <= seq) {
      pending_.pop_front();
      ++base_;
    }
    advance();
    return base_ - 1;
  }
  // Every unit numbered up to this is done.
  uint64_t done_through() const { return done_through_.load(std::memory_order_seq_cst); }
  // The last number given.
  uint64_t last_assigned() const { return last_.load(std::memory_order_acquire); }
  // Writes committed in the request that made them, ordered against others in flight at the same
  // time only by the order their answers arrived (see the top).
  uint64_t unordered_overlaps() const { return unordered_.load(std::memory_order_relaxed); }

 private:
  // The next number (mu_ held).
  uint64_t next() {
    pending_.push_back(false);
    const uint64_t seq = base_ + pending_.size() - 1;
    last_.store(seq, std::memory_order_release);
    return seq;
  }

  // Past every done unit at the front (mu_ held).
  void advance() {
    while (!pending_.empty() && pending_.front()) {
      pending_.pop_front();
      ++base_;
    }
    // seq_cst: a waiter registers and then reads this; the completing side stores it and then
    // reads the waiter count (proxy/mirror/mirror_shared.h, OrderWaiters).
    done_through_.store(base_ - 1, std::memory_order_seq_cst);
  }

  std::mutex mu_;
  std::deque<bool> pending_;  // done? for base_, base_ + 1, ...
  uint64_t base_ = 1;
  std::atomic<uint64_t> last_{0};
  std::atomic<uint64_t> done_through_{0};
  std::atomic<uint64_t> unordered_{0};
};

}  // namespace pgtandem::policy

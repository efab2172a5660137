// Commit order across sessions on the mirror.
//
// Each session applies its writes on the mirror over a connection of its own, in its own order;
// without more, two sessions' writes could reach the mirror in the opposite order from the
// primary's. Example (pgbench does this at every start): one session TRUNCATEs a table and
// disconnects, then other sessions INSERT into it. If the first session's mirror connection is
// slower to open, its TRUNCATE lands on the mirror after some of the INSERTs and wipes them.
//
// The rule: a transaction that began on the primary after another one's COMMIT reached pgtandem
// is applied on the mirror after that one. Every unit pushed to a mirror link is numbered in push
// order (the order the primary's answers to the COMMITs reached pgtandem); a session notes the
// last number when a transaction of its begins (its first request while idle) and its unit
// carries it as `after`; a link applies a unit only once every unit numbered up to `after` is
// done (applied, journaled or failed). Transactions that overlapped on the primary are not
// ordered (the primary ran them concurrently), so links still apply in parallel. No cycle can
// form: a unit only ever waits for lower numbers than its own, and the lowest one not done waits
// for nothing.
//
// Thread-safe (sessions on all workers share one); a mutex per push and per completion, a relaxed
// atomic load for the checks.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>

namespace pgtandem::policy {

class MirrorOrder {
 public:
  // Numbers a unit being pushed: 1, 2, ...
  uint64_t assign() {
    std::lock_guard lock(mu_);
    pending_.push_back(false);
    const uint64_t seq = base_ + pending_.size() - 1;
    last_.store(seq, std::memory_order_release);
    return seq;
  }
  // The unit numbered `seq` is done (applied, journaled or failed). 0: not numbered, ignored.
  void done(uint64_t seq) {
    if (seq == 0) return;
    std::lock_guard lock(mu_);
    if (seq < base_ || seq - base_ >= pending_.size()) return;
    pending_[seq - base_] = true;
    advance();
  }
  // Gives up waiting for the units up to `seq`: they count as done for ordering from now on (one
  // stuck unit then holds the others back once, not once per waiting unit).
  void give_up_through(uint64_t seq) {
    std::lock_guard lock(mu_);
    while (!pending_.empty() && base_ <= seq) {
      pending_.pop_front();
      ++base_;
    }
    advance();
  }
  // Every unit numbered up to this is done.
  uint64_t done_through() const { return done_through_.load(std::memory_order_acquire); }
  // The last number given: a transaction beginning now is applied after it.
  uint64_t last_assigned() const { return last_.load(std::memory_order_acquire); }

 private:
  // Past every done unit at the front (mu_ held).
  void advance() {
    while (!pending_.empty() && pending_.front()) {
      pending_.pop_front();
      ++base_;
    }
    done_through_.store(base_ - 1, std::memory_order_release);
  }

  std::mutex mu_;
  std::deque<bool> pending_;  // done? for base_, base_ + 1, ...
  uint64_t base_ = 1;
  std::atomic<uint64_t> last_{0};
  std::atomic<uint64_t> done_through_{0};
};

}  // namespace pgtandem::policy

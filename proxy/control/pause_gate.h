// The pause gate of a cutover (issue 14, docs/cutover.md): while it is closed, a session waits at
// its next transaction boundary (where a new transaction or an autocommit statement would start)
// instead of sending the request; transactions already running go on to their end. The
// coordinator closes the gate, waits until in_flight() is zero (every session at a boundary),
// switches, and opens it. Sessions count themselves in flight between the boundary they passed and
// the primary's ReadyForQuery 'I' that ends their request (or transaction).
//
// Ordering: a session increments in_flight and then reads `closed`; the coordinator sets `closed`
// and then reads in_flight (both seq_cst). So either the session sees the gate closed (it steps
// back and waits) or the coordinator sees it in flight (it waits for it): never neither.
// Per worker: each session counts itself in its worker's slot (a cache line of its own), so a
// request's enter and leave are two uncontended atomic operations on a line that stays in the
// worker's core, not a process-wide counter that bounces between cores twice per request.
// in_flight() sums the slots: a session increments its slot before it reads `closed`, the
// coordinator sets `closed` before it reads every slot, so the argument above holds slot by slot.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace pgtandem::proxy {

class PauseGate {
 public:
  static constexpr size_t kSlots = 64;  // workers beyond this share slots (correct, just shared)

  void close() { closed_.store(true); }
  void open() { closed_.store(false); }
  bool closed() const { return closed_.load(); }
  int64_t in_flight() const {
    int64_t n = 0;
    for (const Slot& s : slots_) n += s.in_flight.load();
    return n;
  }
  int64_t waiting() const { return waiting_.load(std::memory_order_relaxed); }

  // A session's membership of the in-flight count (one per session, on its worker thread).
  class Ticket {
   public:
    // `slot`: the session's worker index.
    explicit Ticket(PauseGate& gate, size_t slot = 0)
        : gate_(gate), count_(gate.slots_[slot % kSlots].in_flight) {}
    ~Ticket() { leave(); }
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;
    // At a boundary, before a new request: true if it may go (now counted in flight), false if
    // the gate is closed (not counted; wait and try again).
    bool try_enter() {
      if (!held_) {
        count_.fetch_add(1);
        held_ = true;
      }
      if (!gate_.closed_.load()) return true;
      leave();
      return false;
    }
    // The request (or transaction) ended: the session is at a boundary again.
    void leave() {
      if (!held_) return;
      held_ = false;
      count_.fetch_sub(1);
    }
    bool held() const { return held_; }
    PauseGate& gate() { return gate_; }

   private:
    PauseGate& gate_;
    std::atomic<int64_t>& count_;
    bool held_ = false;
  };

  // Sessions waiting at the gate now (for /status and the pause report).
  void add_waiting(int64_t d) { waiting_.fetch_add(d, std::memory_order_relaxed); }

 private:
  struct alignas(64) Slot {
    std::atomic<int64_t> in_flight{0};
  };
  // Read by every request, written by a cutover only: a line of its own, shared read-only.
  alignas(64) std::atomic<bool> closed_{false};
  alignas(64) std::atomic<int64_t> waiting_{0};
  Slot slots_[kSlots];
};

}  // namespace pgtandem::proxy

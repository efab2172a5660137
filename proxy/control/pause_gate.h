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
#pragma once

#include <atomic>
#include <cstdint>

namespace pgtandem::proxy {

class PauseGate {
 public:
  void close() { closed_.store(true); }
  void open() { closed_.store(false); }
  bool closed() const { return closed_.load(); }
  int64_t in_flight() const { return in_flight_.load(); }
  int64_t waiting() const { return waiting_.load(std::memory_order_relaxed); }

  // A session's membership of the in-flight count (one per session, on its worker thread).
  class Ticket {
   public:
    explicit Ticket(PauseGate& gate) : gate_(gate) {}
    ~Ticket() { leave(); }
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;
    // At a boundary, before a new request: true if it may go (now counted in flight), false if
    // the gate is closed (not counted; wait and try again).
    bool try_enter() {
      if (!held_) {
        gate_.in_flight_.fetch_add(1);
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
      gate_.in_flight_.fetch_sub(1);
    }
    bool held() const { return held_; }
    PauseGate& gate() { return gate_; }

   private:
    PauseGate& gate_;
    bool held_ = false;
  };

  // Sessions waiting at the gate now (for /status and the pause report).
  void add_waiting(int64_t d) { waiting_.fetch_add(d, std::memory_order_relaxed); }

 private:
  std::atomic<bool> closed_{false};
  std::atomic<int64_t> in_flight_{0};
  std::atomic<int64_t> waiting_{0};
};

}  // namespace pgtandem::proxy

// The mirror link's queue of units waiting to be applied (proxy/mirror/mirror_link.h), in order.
//
// A vector read from a moving head and emptied whenever it drains, its usual state, so its
// capacity is reused: no allocation per unit once it has held as many as it ever holds at once
// (a std::deque allocated and freed a node every other unit). A queue that never drains (a
// backlog the link keeps taking from while more arrive) gives back its consumed front at a push
// once that is half its slots, so right after a push it holds at most twice what waits in it
// (plus kReclaimAt). A unit taken back to the front (the link holding it for later) goes into
// the slot it came from.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

#include "policy/mirror/write_capture.h"

namespace pgtandem::policy {

class UnitQueue {
 public:
  bool empty() const { return head_ == units_.size(); }
  size_t size() const { return units_.size() - head_; }
  MirrorUnit& front() { return units_[head_]; }

  void pop_front() {
    if (++head_ < units_.size()) return;
    units_.clear();  // (the units left are moved-from: nothing of theirs to keep)
    head_ = 0;
  }
  void push_back(MirrorUnit&& u) {
    if (head_ >= kReclaimAt && head_ * 2 >= units_.size()) {
      units_.erase(units_.begin(), units_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
    units_.push_back(std::move(u));
  }
  void push_front(MirrorUnit&& u) {
    if (head_ > 0) {
      units_[--head_] = std::move(u);
    } else {
      units_.insert(units_.begin(), std::move(u));
    }
  }

  // Slots held, taken or not (for tests: what the queue keeps allocated).
  size_t slots() const { return units_.size(); }
  size_t capacity() const { return units_.capacity(); }
  // Consumed slots at the front kept before a push gives them back.
  static constexpr size_t kReclaimAt = 64;

 private:
  std::vector<MirrorUnit> units_;
  size_t head_ = 0;
};

}  // namespace pgtandem::policy

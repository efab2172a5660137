// UnitQueue: the mirror link's queue, against std::deque as the reference.
#include "policy/mirror/unit_queue.h"

#include <gtest/gtest.h>

#include <deque>
#include <random>
#include <string>

namespace pgtandem::policy {
namespace {

MirrorUnit unit(uint64_t seq) {
  MirrorUnit u;
  u.seq = seq;
  u.bytes = "unit " + std::to_string(seq);
  return u;
}

TEST(UnitQueue, EveryMixOfPushesAndPopsKeepsTheDequesOrder) {
  // What the link does: push_back from intake, pop_front to apply, push_front to hold a unit
  // back; long runs without draining (the front given back) and drains (the slots reused).
  std::mt19937 rng(7);
  for (int round = 0; round < 200; ++round) {
    UnitQueue q;
    std::deque<uint64_t> reference;
    uint64_t next = 1;
    const int steps = 1 + static_cast<int>(rng() % 2000);
    const unsigned push_bias = 40 + rng() % 30;  // some rounds grow a backlog, some drain
    for (int i = 0; i < steps; ++i) {
      const unsigned op = rng() % 100;
      if (op < push_bias) {
        q.push_back(unit(next));
        reference.push_back(next++);
        // Right after a push the consumed front is given back once it is half the slots: never
        // more than about twice what waits.
        ASSERT_LE(q.slots(), 2 * q.size() + UnitQueue::kReclaimAt);
      } else if (op < 95 || reference.empty()) {
        if (reference.empty()) continue;
        ASSERT_EQ(q.front().seq, reference.front());
        ASSERT_EQ(q.front().bytes, "unit " + std::to_string(reference.front()));
        MirrorUnit taken = std::move(q.front());
        q.pop_front();
        reference.pop_front();
        if (rng() % 10 == 0) {  // held back: it goes to the front again
          reference.push_front(taken.seq);
          q.push_front(std::move(taken));
        }
      } else {
        q.push_front(unit(next));
        reference.push_front(next++);
      }
      ASSERT_EQ(q.size(), reference.size());
      ASSERT_EQ(q.empty(), reference.empty());
      if (!reference.empty()) {
        ASSERT_EQ(q.front().seq, reference.front());
      }
    }
    while (!reference.empty()) {
      ASSERT_EQ(q.front().seq, reference.front());
      q.pop_front();
      reference.pop_front();
    }
    EXPECT_TRUE(q.empty());
    EXPECT_EQ(q.slots(), 0u);
  }
}

TEST(UnitQueue, ADrainedQueueReusesItsSlots) {
  UnitQueue q;
  for (uint64_t i = 0; i < 10; ++i) q.push_back(unit(i));
  while (!q.empty()) q.pop_front();
  const size_t capacity = q.capacity();
  EXPECT_GE(capacity, 10u);
  for (int round = 0; round < 100; ++round) {
    for (uint64_t i = 0; i < 10; ++i) q.push_back(unit(i));
    while (!q.empty()) q.pop_front();
  }
  EXPECT_EQ(q.capacity(), capacity);
}

}  // namespace
}  // namespace pgtandem::policy

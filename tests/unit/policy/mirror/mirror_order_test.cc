// MirrorOrder: numbering in push order, and the "done through" watermark that only moves past a
// number once every lower one is done, whatever order they complete in (links of different
// sessions finish out of order), from several threads at once.
#include "policy/mirror/mirror_order.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <thread>
#include <vector>

namespace pgtandem::policy {
namespace {

uint64_t number(MirrorOrder& order) { return order.assign(MirrorOrder::Follow::kNothing, 0).seq; }

TEST(MirrorOrder, WatermarkWaitsForTheLowestUnfinished) {
  MirrorOrder order;
  EXPECT_EQ(order.last_assigned(), 0u);
  EXPECT_EQ(order.done_through(), 0u);
  const uint64_t a = number(order), b = number(order), c = number(order);
  EXPECT_EQ(a, 1u);
  EXPECT_EQ(b, 2u);
  EXPECT_EQ(c, 3u);
  EXPECT_EQ(order.last_assigned(), 3u);
  order.done(c);
  EXPECT_EQ(order.done_through(), 0u);  // 1 and 2 are not done
  order.done(a);
  EXPECT_EQ(order.done_through(), 1u);
  order.done(b);
  EXPECT_EQ(order.done_through(), 3u);  // 2, and 3 done before it
  // Repeated, unknown or unnumbered completions change nothing.
  order.done(b);
  order.done(99);
  order.done(0);
  EXPECT_EQ(order.done_through(), 3u);
  const uint64_t d = number(order);
  EXPECT_EQ(d, 4u);
  EXPECT_EQ(order.done_through(), 3u);
  order.done(d);
  EXPECT_EQ(order.done_through(), 4u);
}

TEST(MirrorOrder, GivingUpOnAStuckUnitReleasesTheOthersOnce) {
  MirrorOrder order;
  const uint64_t stuck = number(order);
  const uint64_t b = number(order);
  const uint64_t c = number(order);
  const uint64_t d = number(order);
  order.done(c);
  EXPECT_EQ(order.done_through(), 0u);
  order.give_up_through(b);  // a unit that waited for 1..2 too long
  EXPECT_EQ(order.done_through(), 3u);  // 1 and 2 given up, 3 done already
  order.done(stuck);  // applied at last: changes nothing
  order.done(b);
  EXPECT_EQ(order.done_through(), 3u);
  order.done(d);
  EXPECT_EQ(order.done_through(), 4u);
}

TEST(MirrorOrder, OutOfOrderCompletionsFromManyThreads) {
  MirrorOrder order;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 5000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&order, t] {
      std::mt19937 rng(static_cast<unsigned>(t));
      std::vector<uint64_t> mine;
      for (int i = 0; i < kPerThread; ++i) {
        mine.push_back(number(order));
        // Complete a random earlier one of ours now and then, the rest at the end.
        if (mine.size() > 8 && rng() % 2 == 0) {
          const size_t k = rng() % mine.size();
          order.done(mine[k]);
          mine.erase(mine.begin() + static_cast<ptrdiff_t>(k));
        }
        // The watermark never passes a number this thread has not completed.
        const uint64_t through = order.done_through();
        for (uint64_t seq : mine) ASSERT_GT(seq, through);
      }
      std::shuffle(mine.begin(), mine.end(), rng);
      for (uint64_t seq : mine) order.done(seq);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(order.last_assigned(), static_cast<uint64_t>(kThreads * kPerThread));
  EXPECT_EQ(order.done_through(), static_cast<uint64_t>(kThreads * kPerThread));
}

// What each unit follows, and which are counted as ordered only by their answers' arrival.
TEST(MirrorOrder, ReservedNumbersAndAssignedNumbersShareOneLine) {
  using F = MirrorOrder::Follow;
  MirrorOrder order;
  const auto state = order.assign(F::kNothing, 0);  // 1: a SET follows nothing
  EXPECT_EQ(state.seq, 1u);
  EXPECT_EQ(state.after, 0u);
  // 2: a lone COMMIT forwarded now; its answer comes later.
  const auto commit = order.reserve();
  EXPECT_EQ(commit.seq, 2u);
  EXPECT_EQ(commit.after, 1u);
  // 3: an autocommit write forwarded when 1 was the last number, answered after 2 was reserved:
  // it follows 2 too (everything numbered before it), but only by answer order: counted.
  const auto autocommit = order.assign(F::kEverything, 1);
  EXPECT_EQ(autocommit.seq, 3u);
  EXPECT_EQ(autocommit.after, 2u);
  EXPECT_EQ(order.unordered_overlaps(), 1u);
  // 4: an autocommit write nothing overlapped (forwarded after 3 was numbered): not counted.
  EXPECT_EQ(order.assign(F::kEverything, 3).after, 3u);
  EXPECT_EQ(order.unordered_overlaps(), 1u);
  // The reservation's unit never came (a ROLLBACK): done at once, the watermark moves on.
  order.done(state.seq);
  EXPECT_EQ(order.done_through(), 1u);
  order.done(commit.seq);
  EXPECT_EQ(order.done_through(), 2u);
  EXPECT_EQ(order.last_assigned(), 4u);
}

}  // namespace
}  // namespace pgtandem::policy

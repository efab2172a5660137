// The pumps' buffer pool (proxy/net/pump_buffer.h): blocks come back LIFO, the pool keeps at most
// its cap of idle blocks, a grown buffer is never pooled, and a resize keeps what was held.
#include "proxy/net/pump_buffer.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace pgtandem::proxy {
namespace {

TEST(BufferPool, ReusesTheLastBlockGivenBackAndKeepsAtMostItsCap) {
  BufferPool pool(1024, 2);
  char* a = pool.take();
  char* b = pool.take();
  char* c = pool.take();
  EXPECT_EQ(pool.in_use(), 3u);
  pool.give(a);
  pool.give(b);
  pool.give(c);  // past the cap: freed
  EXPECT_EQ(pool.idle(), 2u);
  EXPECT_EQ(pool.in_use(), 0u);
  EXPECT_EQ(pool.take(), b);  // LIFO: the block used last
  EXPECT_EQ(pool.take(), a);
  EXPECT_EQ(pool.idle(), 0u);
  char* d = pool.take();  // a new one
  EXPECT_NE(d, a);
  EXPECT_NE(d, b);
  pool.give(a);
  pool.give(b);
  pool.give(d);
}

TEST(PumpBuffer, HoldsOnlyBetweenHoldAndGiveBack) {
  BufferPool pool(64, 8);
  {
    PumpBuffer buf;
    buf.bind(pool);
    EXPECT_FALSE(buf.held());
    buf.hold();
    ASSERT_TRUE(buf.held());
    EXPECT_EQ(buf.size(), 64u);
    char* first = buf.data();
    buf.hold();  // already held: the same block
    EXPECT_EQ(buf.data(), first);
    EXPECT_EQ(pool.in_use(), 1u);
    buf.give_back();
    EXPECT_FALSE(buf.held());
    EXPECT_EQ(buf.data(), nullptr);
    EXPECT_EQ(pool.in_use(), 0u);
    EXPECT_EQ(pool.idle(), 1u);
    buf.hold();
    EXPECT_EQ(buf.data(), first);  // from the pool
  }
  EXPECT_EQ(pool.in_use(), 0u);  // the destructor gave it back
  EXPECT_EQ(pool.idle(), 1u);
}

TEST(PumpBuffer, GrowsForALargeMessageKeepingItsBytesAndNeverPoolsTheGrownBlock) {
  BufferPool pool(16, 8);
  PumpBuffer buf;
  buf.bind(pool);
  buf.hold();
  std::memcpy(buf.data(), "0123456789abcdef", 16);
  buf.resize(64, 16);
  ASSERT_EQ(buf.size(), 64u);
  EXPECT_EQ(std::string(buf.data(), 16), "0123456789abcdef");
  EXPECT_EQ(pool.in_use(), 0u);  // the pooled block went back
  EXPECT_EQ(pool.idle(), 1u);
  std::memcpy(buf.data() + 16, "more", 4);
  buf.resize(128, 20);
  EXPECT_EQ(std::string(buf.data(), 20), "0123456789abcdefmore");
  EXPECT_EQ(pool.idle(), 1u);  // the 64-byte block went to malloc, not the pool
  buf.give_back();
  EXPECT_EQ(pool.idle(), 1u);
  buf.hold();
  EXPECT_EQ(buf.size(), 16u);  // back to a pooled block
  EXPECT_EQ(pool.in_use(), 1u);
  buf.resize(16, 0);  // back to the pool's size: a pooled block again
  EXPECT_EQ(pool.in_use(), 1u);
  EXPECT_EQ(buf.size(), 16u);
}

}  // namespace
}  // namespace pgtandem::proxy

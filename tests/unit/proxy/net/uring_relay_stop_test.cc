// The liburing worker loop (UringRelay::run_worker) ends when its io_context is stopped, whatever
// the loop is doing at that moment. A stop lands while the loop is busy: handlers posted from
// another thread keep it going round (the ring wakes, Asio's handlers run, the loop arms its poll
// and waits again), and the stop comes after a random number of them. A stop between the loop's
// check of stopped() and its wait used to go unseen (Asio interrupts a waiting reactor only, and
// the loop had not said it was waiting yet): the loop then slept in the ring for good, and a
// SIGTERM after a graceful drain never ended the process (ShutdownTest, once in a CI run). Here a
// loop still running a second after the stop is counted, then woken by another post so that the
// test ends either way.
#include "proxy/net/uring_relay.h"

#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <random>
#include <system_error>
#include <thread>

namespace pgtandem::proxy {
namespace {

#if PGTANDEM_URING_RELAY

TEST(UringRelayStop, AStopAtAnyMomentEndsTheWorkerLoop) {
  {
    // Where the kernel refuses the ring pgtandem runs on epoll (io_backend = "auto"): nothing to
    // test. (Not the case on the machines CI runs on.)
    asio::io_context probe(1);
    try {
      UringRelay relay(probe);
    } catch (const std::system_error& e) {
      GTEST_SKIP() << "io_uring refused: " << e.what();
    }
  }
  std::mt19937 rng(20261207);
  int hung = 0;
  int rounds = 0;
  for (; rounds < 5000; ++rounds) {
    asio::io_context io(1);
    auto guard = asio::make_work_guard(io);
    std::promise<void> ready;
    std::promise<void> ended;
    std::atomic<uint64_t> ran{0};
    std::thread worker([&] {
      UringRelay relay(io);  // on the thread that alone submits to its ring
      ready.set_value();
      relay.run_worker();
      relay.shut_down();
      ended.set_value();
    });
    ready.get_future().wait();
    // Keep the loop going round, then stop it mid-way.
    const int posts = static_cast<int>(rng() % 8);
    for (int i = 0; i < posts; ++i) {
      asio::post(io, [&ran] { ran.fetch_add(1, std::memory_order_relaxed); });
      for (int spin = static_cast<int>(rng() % 200); spin > 0; --spin) {
        std::atomic_signal_fence(std::memory_order_seq_cst);
      }
    }
    io.stop();
    auto done = ended.get_future();
    if (done.wait_for(std::chrono::seconds(1)) != std::future_status::ready) {
      ++hung;
      // Woken by a post (Asio interrupts the reactor the loop now says it waits in).
      while (done.wait_for(std::chrono::milliseconds(10)) != std::future_status::ready) {
        asio::post(io, [] {});
      }
    }
    worker.join();
  }
  EXPECT_EQ(hung, 0) << "of " << rounds << " stops, the worker loop slept through " << hung;
}

#endif  // PGTANDEM_URING_RELAY

}  // namespace
}  // namespace pgtandem::proxy

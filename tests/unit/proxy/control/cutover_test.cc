// The cutover's pause gate (proxy/control/pause_gate.h) and the `pgtandem cutover` rendering.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "proxy/control/cli.h"
#include "proxy/control/pause_gate.h"

namespace pgtandem::proxy {
namespace {

TEST(PauseGate, OpenGateCountsInFlightUntilLeave) {
  PauseGate gate;
  PauseGate::Ticket t(gate);
  EXPECT_TRUE(t.try_enter());
  EXPECT_EQ(gate.in_flight(), 1);
  EXPECT_TRUE(t.try_enter());  // already in flight: not counted twice
  EXPECT_EQ(gate.in_flight(), 1);
  t.leave();
  t.leave();
  EXPECT_EQ(gate.in_flight(), 0);
}

TEST(PauseGate, ClosedGateHoldsNewRequestsButNotRunningOnes) {
  PauseGate gate;
  PauseGate::Ticket running(gate);
  PauseGate::Ticket next(gate);
  ASSERT_TRUE(running.try_enter());
  gate.close();
  EXPECT_FALSE(next.try_enter());
  EXPECT_FALSE(next.held());
  EXPECT_EQ(gate.in_flight(), 1);  // the running one finishes its transaction
  running.leave();
  EXPECT_EQ(gate.in_flight(), 0);
  gate.open();
  EXPECT_TRUE(next.try_enter());
}

TEST(PauseGate, TicketLeavesWhenTheSessionEnds) {
  PauseGate gate;
  {
    PauseGate::Ticket t(gate);
    ASSERT_TRUE(t.try_enter());
  }
  EXPECT_EQ(gate.in_flight(), 0);
}

TEST(PauseGate, SlotsPerWorkerAddUp) {
  PauseGate gate;
  PauseGate::Ticket a(gate, 0);
  PauseGate::Ticket b(gate, 1);
  PauseGate::Ticket c(gate, 1 + PauseGate::kSlots);  // shares slot 1
  ASSERT_TRUE(a.try_enter());
  ASSERT_TRUE(b.try_enter());
  ASSERT_TRUE(c.try_enter());
  EXPECT_EQ(gate.in_flight(), 3);
  gate.close();
  b.leave();
  EXPECT_EQ(gate.in_flight(), 2);
  PauseGate::Ticket d(gate, 7);
  EXPECT_FALSE(d.try_enter());
  EXPECT_EQ(gate.in_flight(), 2);
  a.leave();
  c.leave();
  EXPECT_EQ(gate.in_flight(), 0);
}

// Dekker: after close(), once in_flight() reads zero, no session is past the gate.
TEST(PauseGate, NoSessionSlipsPastAClosingGate) {
  PauseGate gate;
  std::atomic<bool> stop{false};
  std::atomic<int> past_after_zero{0};
  std::atomic<bool> zero_seen{false};
  std::vector<std::thread> sessions;
  for (int i = 0; i < 4; ++i) {
    sessions.emplace_back([&, i] {
      PauseGate::Ticket t(gate, static_cast<size_t>(i));  // a slot per "worker"
      while (!stop.load()) {
        if (t.try_enter()) {
          if (zero_seen.load()) past_after_zero.fetch_add(1);
          t.leave();
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  gate.close();
  while (gate.in_flight() != 0) std::this_thread::yield();
  zero_seen.store(true);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  stop.store(true);
  for (auto& s : sessions) s.join();
  EXPECT_EQ(past_after_zero.load(), 0);
}

TEST(RenderCutover, GatesAndResult) {
  bool failed = false;
  std::string error;
  const std::string out = render_cutover(
      R"j({"result":"refused","reason":"gates failed: breakers (open: new)","from":"old",)j"
      R"j("to":"new","epoch":1,"forced":false,"gates":[{"name":"mirror_lag","result":"PASS",)j"
      R"j("figure":"0 units behind"},{"name":"breakers","result":"FAIL","figure":"open: new"}],)j"
      R"j("pause_ms":0,"in_flight_at_pause":0,"sequences_synced":0,"replicas":[]})j",
      &failed, &error);
  EXPECT_TRUE(failed);
  EXPECT_NE(out.find("PASS  mirror_lag"), std::string::npos) << out;
  EXPECT_NE(out.find("FAIL  breakers"), std::string::npos) << out;
  EXPECT_NE(out.find("cutover: refused (old -> new, epoch 1)"), std::string::npos) << out;
  const std::string ok = render_cutover(
      R"j({"result":"ok","from":"old","to":"new","epoch":2,"gates":[],"pause_ms":120,)j"
      R"j("in_flight_at_pause":3,"sequences_synced":2,"replicas":["a/1: pause 120 ms"]})j",
      &failed, &error);
  EXPECT_FALSE(failed);
  EXPECT_NE(ok.find("pause 120 ms, 3 transaction(s)"), std::string::npos) << ok;
  EXPECT_NE(ok.find("replica a/1: pause 120 ms"), std::string::npos) << ok;
}

}  // namespace
}  // namespace pgtandem::proxy

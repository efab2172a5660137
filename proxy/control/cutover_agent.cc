// The cutover's agent (issue 14): one thread per process that heartbeats into the control schema
// and follows another replica's cutover (pause, switch, resume); see cutover.h, docs/cutover.md.
// An agent whose coordinator died mid-pause waits up to kOrphanPauseMs and then aborts on its
// own (compare-and-set on the phase: a newer cutover's row is left alone).
#include "proxy/control/cutover.h"

#include "proxy/control/cutover_clock.h"
#include "proxy/telemetry/log.h"
#include "proxy/worker.h"

namespace pgtandem::proxy {

using namespace cutover_detail;

void Cutover::start_agent() {
  if (!store_ || agent_.joinable()) return;
  stop_.store(false);
  agent_ = std::thread([this] { agent_loop(); });
}

void Cutover::stop_agent() {
  stop_.store(true);
  cv_.notify_all();
  if (agent_.joinable()) agent_.join();
}

void Cutover::heartbeat(bool ack, const std::string& phase) {
  ReplicaRow r;
  r.id = id_;
  r.epoch = epoch_.load();
  r.acked_phase = phase;
  r.pause_ms = agent_last_pause_ms_;
  {
    std::lock_guard lock(mu_);
    r.state = my_state_;
    if (coordinating_.load() && have_last_) r.pause_ms = last_.pause_ms;
  }
  std::string e;
  store_->upsert_replica(r, ack, &e);
}

void Cutover::agent_loop() {
  std::string e;
  store_->ensure(&e);
  auto last_beat = SteadyClock::now() - std::chrono::seconds(10);
  while (!stop_.load()) {
    if (!coordinating_.load()) agent_step();
    if (ms_since(last_beat) >= kHeartbeatMs) {
      heartbeat(false, "");
      sample_mismatches();
      last_beat = SteadyClock::now();
    }
    // NOTIFY wakes the agent at once (the coordinator notifies every phase and every ack); the
    // poll interval is the fallback.
    store_->wait_notify(kAgentPollMs);
  }
  if (agent_paused_) state_.control.pause.open();
}

void Cutover::agent_step() {
  std::string e;
  auto row = store_->read_epoch(&e);
  if (!row) return;
  const bool ours = row->coordinator == id_;
  {
    std::lock_guard lock(mu_);
    phase_ = row->phase;
  }
  // A switch (or a later phase of a newer epoch) this replica has not applied yet: apply it
  // first; while paused, every session is at a boundary and moves before it runs anything.
  if (row->epoch > epoch_.load() && row->phase != "pause" && row->phase != "abort") {
    std::string why;
    if (!hooks_.set_primary(row->primary, &why)) {
      log::error("cutover: cannot switch this replica", {{"error", why}});
      return;
    }
    epoch_.store(row->epoch);
    {
      std::lock_guard lock(mu_);
      primary_ = row->primary;
      my_state_ = agent_paused_ ? "switched" : "serving";
    }
    state_.metrics->set_cutover_epoch(row->epoch);
    heartbeat(true, "switch");
  }
  // A snapshot backfill's fence holds the pause gate here: this replica does not join (it never
  // acks, and the coordinator aborts at its timeout) rather than open the gate under the snapshot.
  if (row->phase == "pause" && !ours && !agent_paused_ && row->epoch >= epoch_.load() &&
      row->started_ms > 0 && unix_ms() - row->started_ms < kOrphanPauseMs &&
      state_.mirror.backlog.fence_state.load() == 0) {
    state_.control.pause.close();
    agent_paused_ = true;
    agent_pause_start_ = SteadyClock::now();
    {
      std::lock_guard lock(mu_);
      my_state_ = "paused";
    }
    log::info("cutover: pausing for another replica", {{"coordinator", row->coordinator}});
    // Ack once every transaction here finished and the mirror is drained; the coordinator aborts
    // if that takes longer than its timeout (this replica then sees `abort` and resumes).
    // (Watching the row meanwhile: an abort opens the gate at once.)
    auto last_check = SteadyClock::now();
    auto last_beat = SteadyClock::now();
    while (!stop_.load() && (state_.control.pause.in_flight() > 0 || !drained()) &&
           ms_since(agent_pause_start_) < kOrphanPauseMs) {
      sleep_ms(1);
      if (ms_since(last_beat) >= kHeartbeatMs) {  // a long pause is not a dead replica
        heartbeat(false, "");
        last_beat = SteadyClock::now();
      }
      if (ms_since(last_check) >= kAgentPollMs) {
        last_check = SteadyClock::now();
        auto now_row = store_->read_epoch(&e);
        if (now_row && (now_row->phase != "pause" || now_row->started_ms != row->started_ms)) return;
      }
    }
    heartbeat(true, "pause");
    return;
  }
  if (agent_paused_ && row->phase != "pause" && row->phase != "switch") {
    state_.control.pause.open();
    agent_paused_ = false;
    agent_last_pause_ms_ = ms_since(agent_pause_start_);
    {
      std::lock_guard lock(mu_);
      my_state_ = "serving";
    }
    heartbeat(true, row->phase);
    return;
  }
  if (agent_paused_ && ms_since(agent_pause_start_) > kOrphanPauseMs) {
    // The coordinator is gone (it aborts long before this): abort the cutover for everyone.
    log::error("cutover: the coordinator never ended the pause; aborting it", {});
    EpochRow abort = *row;
    abort.phase = "abort";
    store_->cas_epoch(abort, row->epoch, {"pause"}, &e);
  }
}

}  // namespace pgtandem::proxy

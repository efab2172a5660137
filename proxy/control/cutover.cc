// The cutover's coordinator (issue 14): gates, pause, drain, sequence sync, switch, resume; see
// cutover.h and docs/cutover.md. The agent that follows another replica's cutover is in
// cutover_agent.cc.
#include "proxy/control/cutover.h"

#include "proxy/control/cutover_clock.h"

#include <algorithm>
#include <unistd.h>

#include "proxy/mirror/journal.h"
#include "proxy/mirror/mirror_fence.h"
#include "proxy/mirror/mirror_safety.h"
#include "proxy/telemetry/log.h"
#include "proxy/worker.h"

namespace pgtandem::proxy {

namespace {

using namespace cutover_detail;

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "pgtandem";
  return buf;
}

}  // namespace

std::string CutoverReport::json() const {
  std::string out = "{\"result\":";
  log::append_json_string(out, result);
  out += ",\"reason\":";
  log::append_json_string(out, reason);
  out += ",\"from\":";
  log::append_json_string(out, from);
  out += ",\"to\":";
  log::append_json_string(out, to);
  out += ",\"epoch\":" + std::to_string(epoch);
  out += ",\"forced\":";
  out += forced ? "true" : "false";
  out += ",\"gates\":[";
  for (size_t i = 0; i < gates.size(); ++i) {
    if (i) out += ",";
    out += "{\"name\":";
    log::append_json_string(out, gates[i].name);
    out += ",\"result\":";
    out += gates[i].pass ? "\"PASS\"" : "\"FAIL\"";
    out += ",\"figure\":";
    log::append_json_string(out, gates[i].figure);
    out += "}";
  }
  out += "],\"pause_ms\":" + std::to_string(pause_ms);
  out += ",\"in_flight_at_pause\":" + std::to_string(in_flight_at_pause);
  out += ",\"sequences_synced\":" + std::to_string(sequences_synced);
  out += ",\"replicas\":";
  log::append_json_string_array(out, replicas);
  out += ",\"time_unix_ms\":" +
         std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                            time.time_since_epoch())
                            .count());
  out += "}";
  return out;
}

Cutover::Cutover(ServerState& state, std::unique_ptr<ControlStore> store, Hooks hooks)
    : state_(state), store_(std::move(store)), hooks_(std::move(hooks)) {
  id_ = host_name() + "/" + std::to_string(::getpid());
  auto snap = state_.snapshot.load();
  if (snap) primary_ = state_.targets[snap->primary].name;
}

Cutover::~Cutover() { stop_agent(); }

std::string Cutover::startup_primary(std::string* error) {
  if (!store_) return "";
  std::string e;
  auto row = store_->read_epoch(&e);
  if (!row) {
    *error = e;
    return "";
  }
  epoch_.store(row->epoch);
  std::lock_guard lock(mu_);
  primary_ = row->primary;
  phase_ = row->phase;
  return row->primary;
}

std::string Cutover::check_file_primary(const std::string& file_primary) const {
  const int64_t e = epoch_.load();
  if (e == 0) return "";
  std::lock_guard lock(mu_);
  if (file_primary == primary_) return "";
  return "primary is owned by the control epoch " + std::to_string(e) + " (primary \"" + primary_ +
         "\"): a change of primary in the file is not applied by one replica alone; use "
         "pgtandem cutover --to " + file_primary;
}

bool Cutover::drained() const { return mirror_settled(state_); }

void Cutover::gates(const CutoverRequest& req, const std::vector<ReplicaRow>& live,
                    CutoverReport* rep) {
  auto snap = state_.snapshot.load();
  const bool mirroring = snap && snap->config->mirror_writes;
  rep->gates.push_back({"mirror_writes", mirroring, mirroring ? "on" : "off"});
  const uint64_t assigned = state_.mirror.order.last_assigned();
  const uint64_t done = state_.mirror.order.done_through();
  const int64_t lag = assigned > done ? static_cast<int64_t>(assigned - done) : 0;
  rep->gates.push_back({"mirror_lag", lag <= req.max_mirror_lag,
                        std::to_string(lag) + " units behind (max " +
                            std::to_string(req.max_mirror_lag) + ")"});
  const int64_t queued = std::max<int64_t>(0, state_.mirror.queue_bytes.load());
  rep->gates.push_back({"mirror_queue", queued <= req.max_queue_bytes,
                        std::to_string(queued) + " bytes queued (max " +
                            std::to_string(req.max_queue_bytes) + ")"});
  const auto& backlog = state_.mirror.backlog;
  if (backlog.enabled) {
    // Catch-up applies the journal by itself: the gate is its backlog, not the file's history.
    const uint64_t entries = backlog.entries.load();
    const int st = backlog.state.load();
    rep->gates.push_back({"journal", entries == 0 && st == MirrorBacklog::kLive,
                          std::to_string(entries) + " journaled entries not yet applied (" +
                              std::to_string(backlog.bytes.load()) + " bytes), mirror " +
                              MirrorBacklog::state_name(st)});
  } else {
    const uint64_t journaled =
        state_.mirror.journal ? state_.mirror.journal->entries_written() : 0;
    rep->gates.push_back({"journal", journaled == 0,
                          std::to_string(journaled) + " entries journaled since start (" +
                              std::to_string(state_.mirror.journal ? state_.mirror.journal->bytes() : 0) +
                              " bytes in the file; catch-up off: replay them)"});
  }
  // Unclean stops (crash windows) and journal-full stops leave writes the target may lack: no
  // cutover until verify/repair and an operator's clear (or --force).
  const std::string repair =
      state_.mirror.safety ? state_.mirror.safety->needs_repair_summary() : std::string();
  rep->gates.push_back({"needs_repair", repair.empty(), repair.empty() ? "none" : repair});
  std::string open_breakers;
  for (size_t i = 0; i < state_.targets.size() && i < kMaxTargets; ++i) {
    if (state_.health.breakers.state_code(i) != 0) open_breakers += " " + state_.targets[i].name;
  }
  rep->gates.push_back({"breakers", open_breakers.empty(),
                        open_breakers.empty() ? "all closed" : "open:" + open_breakers});
  // A recent window, not "ever": a fault found and repaired an hour ago does not block today's
  // cutover; one the shadow reads still see does.
  const uint64_t mismatches = mismatches_within(req.shadow_window_s);
  rep->gates.push_back({"shadow_mismatches", mismatches <= req.max_mismatches,
                        std::to_string(mismatches) + " in the last " +
                            std::to_string(req.shadow_window_s) + " s (max " +
                            std::to_string(req.max_mismatches) + ")"});
  if (req.verify_max_age_s > 0) {
    // The last verify must be clean and recent: a cutover onto a target nobody proved equal is
    // what the migration plans forbid (pt-table-checksum before a switchover, Vitess's VDiff).
    int64_t finished = 0;
    int64_t exit_code = -1;
    const bool have = hooks_.last_verify && hooks_.last_verify(&finished, &exit_code);
    const int64_t age = unix_ms() / 1000 - finished;
    const bool pass = have && exit_code == 0 && age <= req.verify_max_age_s;
    std::string figure = !have ? "no verify reported to this replica"
                               : std::string(exit_code == 0 ? "clean" : "found differences (exit " +
                                                                           std::to_string(exit_code) + ")") +
                                     ", " + std::to_string(age) + " s ago";
    rep->gates.push_back({"verify", pass,
                          figure + " (max age " + std::to_string(req.verify_max_age_s) + " s)"});
  }
  std::string down;
  for (size_t i = 0; i < state_.targets.size() && i < kMaxTargets; ++i) {
    if (state_.health.reachable[i].load() == 0) down += " " + state_.targets[i].name;
  }
  rep->gates.push_back({"targets", down.empty(), down.empty() ? "reachable" : "down:" + down});
  const int64_t e = epoch_.load();
  std::string figure = std::to_string(live.size()) + " live:";
  bool agree = true;
  for (const auto& r : live) {
    figure += " " + r.id + "@" + std::to_string(r.epoch) + "(" + r.state + ")";
    // Epoch 0: a replica that never saw a control row serves the first epoch.
    if (std::max<int64_t>(r.epoch, 1) != e || r.state == "paused") agree = false;
  }
  rep->gates.push_back({"replicas", agree, figure});
}

// The local gate is closed: wait for this process's in-flight transactions and mirror, and for
// every other live replica's ack of the pause.
bool Cutover::wait_paused(int64_t deadline_ms, const std::vector<std::string>& others,
                          int64_t since_ms, std::string* why) {
  const auto start = SteadyClock::now();
  while (state_.control.pause.in_flight() > 0 || !drained()) {
    if (ms_since(start) > deadline_ms) {
      *why = "the pause timed out on this replica: " +
             std::to_string(state_.control.pause.in_flight()) + " transaction(s) still running, mirror " +
             (drained() ? "drained" : "not drained");
      return false;
    }
    sleep_ms(1);
  }
  const int64_t left = deadline_ms - ms_since(start);
  return wait_acks(others, "pause", since_ms, std::max<int64_t>(left, 0), why);
}

bool Cutover::wait_acks(const std::vector<std::string>& others, const std::string& phase,
                        int64_t since_ms, int64_t deadline_ms, std::string* why) {
  if (others.empty()) return true;
  const auto start = SteadyClock::now();
  for (;;) {
    std::string e;
    auto live = store_->live_replicas(kLiveMs, &e);
    std::string missing;
    for (const auto& id : others) {
      bool acked = false;
      for (const auto& r : live) {
        acked = acked || (r.id == id && r.acked_phase == phase && r.acked_ms >= since_ms);
      }
      if (!acked) missing += " " + id;
    }
    if (missing.empty()) return true;
    if (ms_since(start) > deadline_ms) {
      *why = "no ack of " + phase + " from:" + missing;
      return false;
    }
    sleep_ms(10);
  }
}

CutoverReport Cutover::run(const CutoverRequest& req) {
  std::lock_guard run_lock(run_mu_);
  CutoverReport rep;
  rep.time = std::chrono::system_clock::now();
  rep.to = req.to;
  rep.forced = req.force;
  // A snapshot backfill's fence holds the same pause gate and the mirror's journal: no cutover
  // (not even forced) may open the gate under its snapshot or switch the primary under its copy.
  if (state_.mirror.backlog.fence_state.load() != 0) {
    rep.result = "refused";
    rep.reason = "a snapshot backfill's mirror fence is held on this replica (POST /mirror/fence?action=status); "
                 "let the backfill finish or stop it";
    finish(rep);
    return rep;
  }
  if (!store_) {
    rep.result = "error";
    rep.reason = "no control database configured (set $PGTANDEM_CONTROL_USER or [classifier] catalog_user)";
    finish(rep);
    return rep;
  }
  coordinating_.store(true);
  struct Reset {
    std::atomic<bool>& f;
    ~Reset() { f.store(false); }
  } reset{coordinating_};

  std::string err;
  const bool control_ok = store_->ensure(&err);
  const std::string control_error = err;
  auto row = control_ok ? store_->read_epoch(&err) : std::nullopt;
  EpochRow cur;
  {
    std::lock_guard lock(mu_);
    cur.primary = primary_;
  }
  if (row) cur = *row;
  if (cur.epoch == 0) cur.epoch = 1;  // the first cutover: epoch 1 is the primary pgtandem started with
  epoch_.store(cur.epoch);
  rep.from = cur.primary;
  rep.epoch = cur.epoch;
  bool known = false;
  for (const auto& t : state_.targets) known = known || t.name == req.to;
  if (!known) {
    rep.result = "refused";
    rep.reason = "unknown target \"" + req.to + "\"";
    finish(rep);
    return rep;
  }
  if (req.to == cur.primary) {
    rep.result = "unchanged";
    rep.reason = "the primary is already \"" + req.to + "\"";
    finish(rep);
    return rep;
  }
  std::vector<ReplicaRow> live;
  if (control_ok) {
    heartbeat(false, "");
    live = store_->live_replicas(kLiveMs, &err);
  }
  std::vector<std::string> others;
  for (const auto& r : live) {
    if (r.id != id_) others.push_back(r.id);
  }
  rep.gates.push_back({"control", control_ok,
                       control_ok ? "schema pgtandem_control on every target" : control_error});
  gates(req, live, &rep);
  std::string failing;
  for (const auto& g : rep.gates) {
    if (!g.pass) failing += (failing.empty() ? "" : ", ") + g.name + " (" + g.figure + ")";
  }
  if (!failing.empty() && (!req.force || !control_ok)) {
    rep.result = "refused";
    rep.reason = "gates failed: " + failing;
    finish(rep);
    return rep;
  }
  if (!failing.empty()) log::warn("cutover forced past failing gates", {{"gates", failing}});

  // Pause everywhere.
  const int64_t started = unix_ms();
  EpochRow pause{cur.epoch, cur.primary, "pause", id_, started};
  state_.control.pause.close();  // here first: once the row says pause, this replica is paused
  const auto pause_start = SteadyClock::now();
  rep.in_flight_at_pause = state_.control.pause.in_flight();
  // Compare-and-set: a cutover another replica is running (or one that moved the epoch since it
  // was read) wins; this one is refused before anyone paused for it.
  if (!store_->cas_epoch(pause, row ? cur.epoch : 0, {"idle", "resume", "abort"}, &err)) {
    state_.control.pause.open();
    rep.result = err.find("control row changed") != std::string::npos ? "refused" : "error";
    rep.reason = "cannot start the pause: " + err;
    finish(rep);
    return rep;
  }
  {
    std::lock_guard lock(mu_);
    phase_ = "pause";
    my_state_ = "paused";
  }
  std::string why;
  bool ok = wait_paused(req.timeout_ms, others, started, &why);
  if (ok && !store_->sync_sequences(cur.primary, req.to, &rep.sequences_synced, &err)) {
    ok = false;
    why = "sequence sync failed: " + err;
  }
  if (!ok) {
    EpochRow abort{cur.epoch, cur.primary, "abort", id_, started};
    std::string e2;
    store_->write_epoch(abort, &e2);
    state_.control.pause.open();
    rep.pause_ms = ms_since(pause_start);
    {
      std::lock_guard lock(mu_);
      phase_ = "abort";
      my_state_ = "serving";
    }
    rep.result = "aborted";
    rep.reason = why;
    finish(rep);
    return rep;
  }
  // Switch: the new epoch on both targets first, then here. Every replica is paused and drained.
  EpochRow sw{cur.epoch + 1, req.to, "switch", id_, started};
  if (!store_->write_epoch(sw, &err)) {
    // Written to one target at most: the higher epoch wins, so retry once, else report. Nobody
    // runs anything until a resume or abort is written.
    std::string e2;
    if (!store_->write_epoch(sw, &e2)) {
      log::error("cutover: cannot write the switch; replicas stay paused until it is retried",
                 {{"error", err}});
    }
  }
  std::string set_error;
  if (!hooks_.set_primary(req.to, &set_error)) {
    log::error("cutover: cannot switch this replica", {{"error", set_error}});
  }
  epoch_.store(sw.epoch);
  {
    std::lock_guard lock(mu_);
    primary_ = req.to;
    phase_ = "switch";
  }
  std::string ack_why;
  wait_acks(others, "switch", started, req.timeout_ms, &ack_why);  // reported, not blocking
  EpochRow resume{sw.epoch, req.to, "resume", id_, started};
  store_->write_epoch(resume, &err);
  // This replica runs again only once the others acknowledged the switch (or the wait timed
  // out): resuming right after writing the switch coincided with 4 extra history rows on new in
  // 1 of 4 three-replica runs (docs/cutover.md, open finding).
  state_.control.pause.open();
  rep.pause_ms = ms_since(pause_start);
  rep.epoch = sw.epoch;
  {
    std::lock_guard lock(mu_);
    phase_ = "resume";
    my_state_ = "serving";
  }
  heartbeat(true, "resume");
  std::string resume_why;
  wait_acks(others, "resume", started, 2000, &resume_why);
  rep.replicas.push_back(id_ + ": pause " + std::to_string(rep.pause_ms) + " ms");
  for (const auto& r : store_->live_replicas(kLiveMs, &err)) {
    if (r.id != id_) rep.replicas.push_back(r.id + ": pause " + std::to_string(r.pause_ms) + " ms");
  }
  rep.result = "ok";
  rep.reason = ack_why.empty() ? "" : ack_why;
  finish(rep);
  return rep;
}

void Cutover::sample_mismatches() {
  const auto now = SteadyClock::now();
  std::lock_guard lock(mu_);
  mismatch_samples_.emplace_back(now, state_.shadow.mismatches.total());
  // Kept for a day at most (86,400 samples of 16 bytes): the longest window [cutover] allows.
  while (!mismatch_samples_.empty() && now - mismatch_samples_.front().first > std::chrono::hours(24)) {
    mismatch_samples_.pop_front();
  }
}

uint64_t Cutover::mismatches_within(int64_t window_s) const {
  const uint64_t total = state_.shadow.mismatches.total();
  const auto since = SteadyClock::now() - std::chrono::seconds(window_s);
  std::lock_guard lock(mu_);
  // The newest sample at or before the window's start is the baseline; none (pgtandem is younger
  // than the window): everything since start counts.
  uint64_t base = 0;
  for (const auto& [when, count] : mismatch_samples_) {
    if (when > since) break;
    base = count;
  }
  return total >= base ? total - base : 0;
}

void Cutover::finish(CutoverReport rep) {
  if (rep.result == "ok" || rep.result == "aborted") {
    state_.metrics->cutover(rep.result, static_cast<double>(rep.pause_ms) / 1000.0);
  } else {
    state_.metrics->cutover(rep.result, -1);
  }
  state_.metrics->set_cutover_epoch(epoch_.load());
  const std::string json = rep.json();
  if (hooks_.audit) hooks_.audit(json);
  std::lock_guard lock(mu_);
  last_ = std::move(rep);
  have_last_ = true;
}

std::string Cutover::status_json() const {
  std::lock_guard lock(mu_);
  std::string out = "{\"epoch\":" + std::to_string(epoch_.load()) + ",\"primary\":";
  log::append_json_string(out, primary_);
  out += ",\"phase\":";
  log::append_json_string(out, phase_);
  out += ",\"replica\":";
  log::append_json_string(out, id_);
  out += ",\"state\":";
  log::append_json_string(out, my_state_);
  out += ",\"control\":";
  out += store_ ? "true" : "false";
  out += ",\"paused\":";
  out += state_.control.pause.closed() ? "true" : "false";
  out += ",\"in_flight\":" + std::to_string(state_.control.pause.in_flight());
  out += ",\"waiting\":" + std::to_string(state_.control.pause.waiting());
  out += ",\"last\":";
  out += have_last_ ? last_.json() : "null";
  out += "}";
  return out;
}

}  // namespace pgtandem::proxy

// Units whose answer does not come, kept apart from mirror_link.cc (the live path) on purpose:
//   - the apply timeout ([mirror] apply_timeout_ms; docs/design.md, "Apply timeout"): a unit in
//     flight with no answer past the timeout moves the session to the journal while the unit waits
//     for its answer; one that never gets it is marked for repair, neither journaled (it could
//     apply twice) nor dropped;
//   - a connection lost while applying (settle_lost_answer): the answers that came settle what
//     they prove; the rest is marked the same way.
#include <algorithm>
#include <chrono>
#include <mutex>
#include <shared_mutex>
#include <string>

#include "proxy/mirror/mirror_link.h"
#include "proxy/mirror/mirror_safety.h"
#include "proxy/telemetry/log.h"

namespace pgtandem::proxy {

namespace {
int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
// How long the unit(s) in flight may wait for their answer after the timeout before the link gives
// up on them (and marks them for repair).
std::chrono::milliseconds give_up_after(std::chrono::milliseconds timeout) {
  return std::max<std::chrono::milliseconds>(std::chrono::seconds(60), timeout * 10);
}
}  // namespace

// The watch is lazy (as Envoy's and the kernel's timers are): one timer wait per link for as long
// as applies keep coming, re-armed only when it expires, for the deadline of the apply then in
// flight. Arming and cancelling it per apply cost a timer-queue insertion, a cancelled handler and,
// when the link's was the worker's earliest timer, a timerfd_settime on each (bench/README.md,
// "Mirroring's instructions (issue 17)").
void MirrorLink::watch_apply() {
  const auto snap = state_.snapshot.load(std::memory_order_acquire);
  const auto& m = snap ? snap->config->mirror : state_.config->mirror;
  hung_since_ms_ = unix_ms();
  watch_deadline_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(m.apply_timeout_ms);
  // Re-armed only when the wait in progress ends after this deadline: after a hang's give-up
  // time, or a reload that shortened apply_timeout_ms.
  if (!watch_armed_ || hang_timer_.expiry() > watch_deadline_) arm_watch();
}

void MirrorLink::arm_watch() {
  watch_armed_ = true;
  const uint64_t gen = ++watch_gen_;  // a wait replaced here completes aborted: ignored
  hang_timer_.expires_at(watch_deadline_);
  hang_timer_.async_wait([self = shared_from_this(), gen](boost::system::error_code) {
    if (gen == self->watch_gen_) self->on_watch();
  });
}

void MirrorLink::on_watch() {
  watch_armed_ = false;
  if (watch_deadline_ == kNoWatch) return;  // nothing in flight: armed again by the next apply
  if (std::chrono::steady_clock::now() < watch_deadline_) {
    arm_watch();  // a later apply's deadline
    return;
  }
  if (hung_) {
    give_up_hang();
  } else {
    on_hang();
  }
}

void MirrorLink::end_watch() {
  watch_deadline_ = kNoWatch;  // an armed wait finds nothing to watch and stops
  if (!hung_) return;
  hung_ = false;
  state_.mirror.backlog.hung_links.fetch_sub(1, std::memory_order_acq_rel);
  log::info("mirror target answered after the apply timeout",
            {{"session", context_.session_id}, {"target", state_.targets[target_].name}});
}

void MirrorLink::stop_watch() {
  watch_deadline_ = kNoWatch;
  hang_timer_.cancel();  // its handler holds the link
}

void MirrorLink::on_hang() {
  if (!busy_ || hung_) return;
  const auto snap = state_.snapshot.load(std::memory_order_acquire);
  const auto& m = snap ? snap->config->mirror : state_.config->mirror;
  auto& b = state_.mirror.backlog;
  hung_ = true;
  b.apply_timeouts.fetch_add(1, std::memory_order_relaxed);
  {
    // Counted before journaling is set, under the lock catch-up flips under: it cannot return to
    // live (nor drain) while a link is hung, even with nothing journaled yet.
    std::shared_lock lock(b.mu);
    b.hung_links.fetch_add(1, std::memory_order_acq_rel);
    if (b.enabled) b.journaling.store(true, std::memory_order_release);
  }
  const std::string detail =
      "no answer from the target within apply_timeout_ms = " + std::to_string(m.apply_timeout_ms);
  degrade("apply_timeout", detail);
  log::warn("mirror apply timeout: the session's writes go to the journal",
            {{"session", context_.session_id},
             {"target", state_.targets[target_].name},
             {"in_flight", std::to_string(in_flight_.size())},
             {"queued", std::to_string(queue_.size())}});
  // The queue follows the unit(s) in flight into the journal (in order, never held: catch-up
  // waits for the units in flight anyway).
  while (!queue_.empty()) {
    const int64_t size = static_cast<int64_t>(queue_.front().bytes.size());
    journal(queue_.front(), "apply_timeout", detail, false);
    queue_.pop_front();
    account(-size);
    settled(1);
  }
  watch_deadline_ = std::chrono::steady_clock::now() +
                    give_up_after(std::chrono::milliseconds(m.apply_timeout_ms)) -
                    std::chrono::milliseconds(m.apply_timeout_ms);
  if (!watch_armed_ || hang_timer_.expiry() > watch_deadline_) arm_watch();
}

void MirrorLink::give_up_hang() {
  if (!hung_) return;
  watch_deadline_ = kNoWatch;
  log::warn("mirror target still silent: giving up on the units in flight",
            {{"session", context_.session_id}, {"target", state_.targets[target_].name}});
  boost::system::error_code ignored;
  socket_.close(ignored);  // apply() reads nothing more and calls unresolved()
}

void MirrorLink::unresolved(std::string_view why) {
  // The target may or may not commit them (a stopped backend runs what it had received when it
  // resumes): applied again they could apply twice, so they are not journaled; the target is
  // marked for verify/repair instead, naming the session, the units and the window.
  auto& b = state_.mirror.backlog;
  if (in_flight_.empty()) return;
  mark_unknown_fate(0, "apply_timeout",
                    "sent to the target, which did not answer (" + std::string(why) + ")");
  for (auto& unit : in_flight_) {
    account(-static_cast<int64_t>(unit.bytes.size()));  // (run() skips an empty in_flight_)
  }
  in_flight_.clear();
  reprepare_ = true;
  reprepared_.clear();
  if (hung_) {
    hung_ = false;
    b.hung_links.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void MirrorLink::mark_unknown_fate(size_t from, std::string_view kind, std::string_view what) {
  auto& b = state_.mirror.backlog;
  if (from >= in_flight_.size()) return;
  const size_t count = in_flight_.size() - from;
  std::string detail = "session " + context_.session_id + ": " + std::to_string(count) +
                       " mirrored unit(s), commit order " + std::to_string(in_flight_[from].seq) +
                       ".." + std::to_string(in_flight_.back().seq) + ", first statement \"" +
                       in_flight_[from].first_sql.substr(0, 120) + "\", " + std::string(what) +
                       ": they may or may not have committed there";
  log::error("mirrored writes of unknown fate: the target needs verify/repair",
             {{"session", context_.session_id},
              {"target", state_.targets[target_].name},
              {"kind", kind},
              {"detail", detail}});
  (kind == "apply_timeout" ? b.apply_timeout_unresolved : b.lost_answer_unresolved)
      .fetch_add(count, std::memory_order_relaxed);
  if (state_.mirror.safety) {
    RepairMark mark;
    mark.kind = std::string(kind);
    mark.target = state_.targets[target_].name;
    mark.from_ms = hung_since_ms_;
    mark.to_ms = unix_ms();
    mark.detail = std::move(detail);
    state_.mirror.safety->add_mark(std::move(mark));
  }
  for (size_t i = from; i < in_flight_.size(); ++i) {
    state_.metrics->mirror_write(MirrorOutcome::kFailed);
    state_.mirror.order.done(in_flight_[i].seq);
  }
}

// A connection lost while applying (docs/design.md, "A connection lost while applying"). The
// target answers a unit's statements in order, and a unit is one transaction, so the answers that
// did arrive tell most fates apart:
//   - every answer of the unit, its COMMIT's included: it committed (PostgreSQL sends the
//     CommandComplete of a COMMIT after the commit, and processes no interrupt in between);
//   - an error the primary did not have: the transaction did not commit there (a fast shutdown or
//     pg_terminate_backend ends a backend with FATAL 57P01, before a request it had not started,
//     or in place of the statement it was running), and the target ran nothing after it;
//   - answers that stop without an error (a killed backend, a crash, a reset): unknown. The
//     statements may have run, their answers lost in the server's buffer. These units, and every
//     one sent after them, are marked for repair, never sent again (twice applied is a silent
//     divergence) nor dropped silently.
// A write that failed before a byte went out left nothing to the target; one that failed midway
// may have carried whole units: unknown.
void MirrorLink::settle_lost_answer(const boost::system::error_code& write_ec, size_t written,
                                    const std::vector<policy::Outcome>& outcomes) {
  const std::string detail = write_ec ? write_ec.message() : "connection closed while applying";
  degrade("connection_lost", detail);
  size_t settled = 0;  // in_flight_[0, settled) applied
  bool unknown = false;
  if (write_ec) {
    unknown = written > 0;
  } else {
    const auto now = std::chrono::steady_clock::now();
    size_t next = 0;
    for (; settled < in_flight_.size(); ++settled) {
      auto& unit = in_flight_[settled];
      const size_t take = std::min(unit.primary.size(), outcomes.size() - next);
      const std::span<const policy::Outcome> mine(outcomes.data() + next, take);
      next += take;
      if (refused_on_target(unit, mine)) break;
      if (take < unit.primary.size()) {
        unknown = true;
        break;
      }
      worker_.stats().mirror_lag.observe(now - unit.primary_done);
      compare(unit, mine);
      applied(unit);
    }
  }
  if (unknown) {
    mark_unknown_fate(settled, "lost_answer",
                      "sent to the target; the connection closed (" + detail +
                          ") before their answer came");
    return;
  }
  for (size_t i = settled; i < in_flight_.size(); ++i) {
    journal(in_flight_[i], "connection_lost", detail, false);
  }
}

}  // namespace pgtandem::proxy

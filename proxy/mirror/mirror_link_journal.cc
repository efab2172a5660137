// What the mirror link cannot apply goes to the journal, in the session's order: a unit journaled
// with its reason and the session's context (startup parameters, state units, the Parse of every
// statement it binds), the session degraded so that its later units follow it there, and at a
// stop everything still queued. On the link's thread (the home), as the apply loop
// (mirror_link.cc); catch-up or `pgtandem replay` applies the journal later (replay.h).
#include "proxy/mirror/mirror_link.h"

#include <mutex>
#include <string>

#include "proxy/mirror/mirror_safety.h"
#include "proxy/mirror/mirror_shared.h"
#include "proxy/telemetry/log.h"
#include "proxy/telemetry/metrics.h"

namespace pgtandem::proxy {

void MirrorLink::journal_pending(std::string_view reason) {
  // Runs on the home while the link's coroutine is suspended (or done): it never resumes after
  // this, so the unit it was applying is journaled as uncertain, the queued ones (and the inbox's,
  // after them) as they are.
  {
    std::lock_guard lock(mu_);
    for (auto& p : inbox_) queue_.push_back(std::move(p.unit));
    inbox_.clear();
  }
  if (hung_) {
    // Sent to a target that has not answered for apply_timeout_ms: it may still commit them.
    unresolved("pgtandem stopped while the target had not answered");
  }
  for (auto& unit : in_flight_) {
    const int64_t size = static_cast<int64_t>(unit.bytes.size());
    journal(unit, reason, "pgtandem stopped while the target was applying it", true);
    account(-size);
  }
  in_flight_.clear();
  while (!queue_.empty()) {
    const int64_t size = static_cast<int64_t>(queue_.front().bytes.size());
    journal(queue_.front(), reason, "pgtandem stopped before the target applied it", false);
    queue_.pop_front();
    account(-size);
  }
  stopped_ = true;
  outstanding_.store(0, std::memory_order_release);
  finished_.store(true, std::memory_order_release);
}

void MirrorLink::degrade(std::string reason, std::string detail) {
  // The link's thread, or a borrower's give_back: the first reason stays (never written again).
  std::lock_guard lock(degrade_mu_);
  if (degraded_.load(std::memory_order_relaxed)) return;
  degraded_reason_ = std::move(reason);
  degraded_detail_ = std::move(detail);
  degraded_.store(true, std::memory_order_release);
  log::warn("mirror degraded: session writes go to the journal",
            {{"session", context_.session_id},
             {"target", state_.targets[target_].name},
             {"reason", degraded_reason_},
             {"detail", degraded_detail_}});
}

bool MirrorLink::journal(policy::MirrorUnit& unit, std::string_view reason,
                         std::string_view detail, bool uncertain, bool may_hold) {
  // Catch-up flips back to live only with no append between its last check and the flip, and
  // starts draining (holding units past its mark) under the same lock held exclusively.
  auto& backlog = state_.mirror.backlog;
  std::shared_lock lock(backlog.mu);
  if (may_hold && backlog.enabled && backlog.draining.load(std::memory_order_acquire) &&
      unit.seq > backlog.drain_mark.load(std::memory_order_acquire)) {
    return false;
  }
  JournalEntry e;
  e.target = state_.targets[target_].name;
  e.reason = std::string(reason);
  e.detail = std::string(detail);
  e.uncertain = uncertain;
  e.session.id = context_.session_id;
  e.session.user = context_.user;
  e.session.database = context_.database;
  e.session.params = context_.params;
  {
    std::lock_guard state_lock(state_mu_);
    e.session.state = state_units_;
  }
  if (!unit.binds.empty()) {
    std::lock_guard parse_lock(parse_mu_);
    for (const auto& name : unit.binds) {
      if (const KnownParse* known = find_parse(name)) {
        e.session.prepared.emplace_back(name, known->parse);
      }
    }
  }
  remember_state(unit);
  const uint64_t seq = unit.seq;
  const auto snap = state_.snapshot.load(std::memory_order_acquire);
  if (journal_full_stops(state_.mirror, snap ? snap->config->mirror : state_.config->mirror,
                         e.target, *state_.metrics)) {
    order_done(seq);  // not journaled: counted as not mirrored (a repair mark)
    return true;
  }
  e.unit = std::move(unit);
  if (backlog.enabled) backlog.journaling.store(true, std::memory_order_release);
  const bool ok = state_.mirror.journal != nullptr && state_.mirror.journal->append(std::move(e)) != 0;
  lock.unlock();
  // What the entry prepares lands on catch-up's connection, not this one.
  reprepare_ = true;
  reprepared_.clear();
  state_.metrics->mirror_write(ok ? MirrorOutcome::kJournaled : MirrorOutcome::kFailed);
  if (!ok) {
    log::error("mirrored write lost: journal unavailable",
               {{"session", context_.session_id}, {"reason", reason}});
  }
  order_done(seq);
  return true;
}

}  // namespace pgtandem::proxy

// The mirror link's hand-over between threads (docs/design.md 4.2): what runs on the session's
// worker (creating the link on its home, push, finish, the queue limit, lend and give_back) and
// where it meets the link's thread (the inbox and intake()). The apply loop is mirror_link.cc; the
// units whose answer does not come, mirror_link_timeout.cc.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>

#include <mutex>
#include <string>
#include <vector>

#include "proxy/mirror/mirror_link.h"
#include "proxy/mirror/mirror_safety.h"

namespace pgtandem::proxy {

std::shared_ptr<MirrorLink> MirrorLink::start_on(Worker& home, MirrorContext context,
                                                 size_t target, bool moves) {
  auto link = std::make_shared<MirrorLink>(home, std::move(context), target, moves);
  home.add_mirror_link(link);
  asio::co_spawn(home.io(), [link]() { return link->run(); }, asio::detached);
  return link;
}

std::shared_ptr<MirrorLink> MirrorLink::start(Worker& worker, MirrorContext context,
                                              size_t target) {
  Worker& home = worker.mirror_home();
  return start_on(home, std::move(context), target, &home != &worker);
}

std::shared_ptr<MirrorLink> MirrorLink::start_like(const MirrorLink& model, size_t target) {
  auto link = start_on(model.worker_, model.context_, target, model.moves_);
  std::lock_guard lock(model.state_mu_);
  link->state_units_ = model.state_units_;
  link->state_bytes_ = model.state_bytes_;
  return link;
}

bool MirrorLink::over_limit() const {
  // [mirror] may change on reload; the snapshot holds the current one.
  const auto snap = state_.snapshot.load(std::memory_order_acquire);
  return over_limit(snap ? snap->config->mirror : state_.config->mirror, 0);
}

bool MirrorLink::over_limit(const config::Mirror& m, uint64_t more) const {
  return static_cast<uint64_t>(queued_bytes_.load(std::memory_order_relaxed)) + more >
             m.session_queue_bytes ||
         static_cast<uint64_t>(state_.mirror.queue_bytes.load(std::memory_order_relaxed)) + more >
             m.global_queue_bytes;
}

void MirrorLink::push(std::vector<policy::MirrorUnit>& units, policy::WriteCapture& capture,
                      const config::Mirror& m) {
  // Off the link's thread (the usual case), whether to post the intake is decided under the lock
  // the units are handed over with (request_intake() would take it again).
  const bool on_home = worker_.io().get_executor().running_in_this_thread();
  bool post = false;
  // (One writer: a load and a store, no locked add. Released before the units reach the inbox,
  // so a shadow read that sees the old count cannot have been overtaken by their apply.)
  pushed_.store(pushed_.load(std::memory_order_relaxed) + units.size(),
                std::memory_order_release);
  bool handed = false;
  {
    std::lock_guard lock(mu_);
    returning_.swap(returned_);
    for (auto& u : units) {
      // The journal filled up with journal_full = "stop": writes are no longer mirrored (counted).
      if (stopped_drops(state_.mirror, u.session_state, *state_.metrics)) {
        order_done(u.seq);  // a reserved number: nothing will apply it
        continue;
      }
      // Keep the Parse of every statement a unit binds: a journal entry must carry it. One copied
      // at the capture's current parse generation is current: no lookup, no comparison.
      if (!u.binds.empty() &&
          (capture.parse_generation() != checked_generation_ || u.binds != checked_binds_)) {
        const uint64_t generation = capture.parse_generation();
        checked_generation_ = generation;
        checked_binds_ = u.binds;
        std::lock_guard parse_lock(parse_mu_);
        for (const auto& name : u.binds) {
          KnownParse* known = find_parse(name);
          if (known != nullptr && known->generation == generation) continue;
          const std::string* parse = capture.parse_message(name);
          if (parse == nullptr) continue;
          if (known == nullptr) {
            parses_.push_back({name, *parse, generation});
          } else {
            if (known->parse != *parse) known->parse = *parse;
            known->generation = generation;
          }
        }
      }
      if (u.nondeterministic) state_.metrics->mirror_nondeterministic();
      if (u.seq == 0) {  // else numbered when its lone COMMIT was forwarded (Session::on_forward)
        using Follow = policy::MirrorOrder::Follow;
        const auto numbered = state_.mirror.order.assign(
            u.writes ? Follow::kEverything : Follow::kNothing, u.forward_mark);
        u.seq = numbered.seq;
        u.after = numbered.after;
      }
      const uint64_t size = u.bytes.size();
      const bool full = over_limit(m, size);
      account(static_cast<int64_t>(size));
      outstanding_.fetch_add(1, std::memory_order_acq_rel);
      // (Filled in place: a MirrorUnit moved is a dozen fields, and a temporary moves it twice.)
      Pushed& pushed = inbox_.emplace_back();
      pushed.unit = std::move(u);
      pushed.full = full && m.overflow == "journal";
      handed = true;
    }
    if (handed && !on_home && !intake_posted_) post = intake_posted_ = true;
  }
  units.clear();  // (the caller's vector keeps its capacity: no allocation per transaction)
  if (!returning_.empty()) capture.give_back(returning_);
  if (post) {
    post_intake();
  } else if (handed && on_home) {
    request_intake();
  }
}

void MirrorLink::request_intake() {
  if (worker_.io().get_executor().running_in_this_thread()) {
    intake();
    // The caller may be anything on this thread (a push from a session on the same worker, a
    // give-back): run() resumes after it, not inside it.
    if (auto resume = take_idle()) asio::post(worker_.io(), std::move(*resume));
    return;
  }
  {
    std::lock_guard lock(mu_);
    if (intake_posted_) return;
    intake_posted_ = true;
  }
  post_intake();
}

void MirrorLink::post_intake() {
  asio::post(worker_.io(), [self = shared_from_this()] {
    self->intake();
    // A handler of its own, on the link's thread: run() resumes here, as from any completion.
    if (auto resume = self->take_idle()) (*resume)();
  });
}

void MirrorLink::intake() {
  {
    std::lock_guard lock(mu_);
    intake_posted_ = false;
    intake_.swap(inbox_);
    if (returned_.empty()) {
      returned_.swap(spent_);  // (the usual case: push() took the last ones; spent_ is bounded too)
    } else {
      for (auto& u : spent_) {
        if (returned_.size() >= policy::WriteCapture::kSpareUnits) break;
        returned_.push_back(std::move(u));
      }
    }
  }
  spent_.clear();
  for (auto& p : intake_) {
    policy::MirrorUnit& u = p.unit;
    if (p.full && !degraded_.load(std::memory_order_relaxed)) {
      // The queue is bounded: rather than grow or drop, the write goes to the journal, and the
      // session's later writes follow it there to keep their order.
      degrade("queue_full", "mirror queue over its byte limit");
    }
    // (A hung link journals at once, ahead of nothing: its queue went to the journal at the hang.)
    const int64_t size = static_cast<int64_t>(u.bytes.size());
    // (Not while lent: the borrower may be connecting, and journal() touches what connect() sets;
    // the unit waits in the queue and run() journals it after give_back.)
    if (journaling() && queue_.empty() && (!busy_ || hung_) &&
        !lent_.load(std::memory_order_acquire) &&
        journal(u, "session_degraded",
                degraded_ ? degraded_reason_ + ": " + degraded_detail_
                          : "mirror backlog being caught up",
                false, !hung_)) {
      account(-size);
      settled(1);
      continue;
    }
    queue_.push_back(std::move(u));
  }
  intake_.clear();
  wake_.cancel();  // a wait for the commit order looks again; the journaling pause ends
}

MirrorLink::KnownParse* MirrorLink::find_parse(std::string_view name) {
  for (auto& p : parses_) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

void MirrorLink::finish() {
  finished_.store(true, std::memory_order_release);
  request_intake();  // wakes the coroutine, which closes once its queue is applied
}

void MirrorLink::close() {
  boost::system::error_code ignored;
  socket_.close(ignored);
}

asio::awaitable<Socket*> MirrorLink::lend(std::string* error) {
  // Only a drained link lends (callers check can_lend()): its coroutine then waits for units and
  // touches neither the socket nor the read buffer until give_back.
  if (!drained()) {
    *error = "the mirror link is applying writes";
    co_return nullptr;
  }
  bool expected = false;
  if (!lent_.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) {
    *error = kLentElsewhere;  // the other borrower won (a shadow read on the home, or the session)
    co_return nullptr;
  }
  // (A push between the check and the claim waits in the queue: run() applies nothing while the
  // link is lent, and the borrower's answer predates that write on both targets alike.)
  // (No co_await inside && or ||: GCC 12 miscompiles coroutines that do that.)
  if (!connected_.load(std::memory_order_acquire)) {
    const bool ok = co_await connect(error);  // on the borrower's io_context
    if (!ok) {
      if (moves_) socket_.rehome(worker_.io().get_executor());
      lent_.store(false, std::memory_order_release);
      request_intake();
      co_return nullptr;
    }
  } else if (moves_) {
    socket_.rehome(co_await asio::this_coro::executor);
  }
  co_return &socket_;
}

void MirrorLink::give_back(bool broken, bool mirrors_writes) {
  if (broken) {
    connected_.store(false, std::memory_order_release);
    rend_ = 0;
    boost::system::error_code ignored;
    socket_.close(ignored);
    // With catch-up the next connection prepares the session's statements again (reprepare());
    // without, the link cannot know them all and its later writes go to the journal.
    if (mirrors_writes && !state_.mirror.backlog.enabled) {
      degrade("connection_lost", "connection lost during a routed read");
    }
  }
  if (moves_) socket_.rehome(worker_.io().get_executor());
  lent_.store(false, std::memory_order_release);
  request_intake();  // units queued meanwhile
}

}  // namespace pgtandem::proxy

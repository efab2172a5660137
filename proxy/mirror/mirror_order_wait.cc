// The commit order across sessions' mirror links (policy/mirror/mirror_order.h), on the link's
// side: waiting for the units a unit follows, and waking the links waiting on a watermark once a
// unit is done (OrderWaiters in mirror_shared.h), instead of polling.
#include "proxy/mirror/mirror_link.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>
#include <vector>

#include "proxy/telemetry/log.h"

namespace pgtandem::proxy {

namespace {
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
using Clock = std::chrono::steady_clock;
// How long a unit waits for earlier ones of other sessions before it is applied anyway, and every
// link stops waiting for those (only a unit stuck on a link that neither applies nor journals it,
// say behind a lock on the target, makes it wait that long: a target that is down makes its links
// journal at once).
constexpr auto kMaxOrderWait = std::chrono::seconds(30);
}  // namespace

namespace {
// Wakes the links waiting for a watermark at or below `through` (any thread).
void wake_order_waiters(OrderWaiters& w, uint64_t through) {
  if (w.count.load(std::memory_order_seq_cst) == 0) return;
  thread_local std::vector<std::shared_ptr<MirrorLink>> ready;
  {
    std::lock_guard lock(w.mu);
    std::erase_if(w.list, [&](auto& entry) {
      if (entry.first > through) return false;
      if (auto link = entry.second.lock()) ready.push_back(std::move(link));
      return true;
    });
    w.count.store(w.list.size(), std::memory_order_seq_cst);
  }
  for (auto& link : ready) link->order_ready();
  ready.clear();
}
}  // namespace

void order_done(MirrorShared& mirror, uint64_t seq) {
  if (seq == 0) return;
  wake_order_waiters(mirror.order_waiters, mirror.order.done(seq));
}

void MirrorLink::order_done(uint64_t seq) { proxy::order_done(state_.mirror, seq); }

void MirrorLink::order_ready() {
  asio::post(wake_.get_executor(), [self = shared_from_this()] { self->wake_.cancel(); });
}

asio::awaitable<void> MirrorLink::wait_for_order(uint64_t after) {
  const auto give_up = Clock::now() + kMaxOrderWait;
  auto& waiters = state_.mirror.order_waiters;
  bool waited = false;
  bool registered = false;  // once: the entry stays until the watermark reaches `after`
  while (state_.mirror.order.done_through() < after) {
    // The units it waits for may be on a hung link (apply timeout): once the session journals,
    // the unit follows them into the journal (catch-up orders it) instead of queueing behind it.
    if (journaling()) co_return;
    if (Clock::now() >= give_up) {
      state_.metrics->mirror_order_wait(false);
      wake_order_waiters(waiters, state_.mirror.order.give_up_through(after));
      log::warn("mirror applies a write before earlier ones of other sessions",
                {{"session", context_.session_id},
                 {"target", state_.targets[target_].name},
                 {"reason", "waited too long for them"}});
      co_return;
    }
    if (!registered) {
      std::lock_guard lock(waiters.mu);
      waiters.list.emplace_back(after, weak_from_this());
      waiters.count.store(waiters.list.size(), std::memory_order_seq_cst);
      registered = true;
    }
    // Read again after registering: a completion in between either saw the registration or
    // moved the watermark before this read (both seq_cst).
    if (state_.mirror.order.done_through() >= after) break;
    waited = true;
    // Woken by order_ready() (or a push); the post runs on this worker, so it cannot slip in
    // before the wait starts. A look every 100 ms besides, for a switch to journaling (nothing
    // wakes waiters for that) and the give-up deadline.
    wake_.expires_at(std::min(give_up, Clock::now() + std::chrono::milliseconds(100)));
    co_await wake_.async_wait(kNoThrow);
  }
  if (waited) state_.metrics->mirror_order_wait(true);
}

}  // namespace pgtandem::proxy

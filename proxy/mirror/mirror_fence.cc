#include "proxy/mirror/mirror_fence.h"

#include <algorithm>
#include <random>

#include "proxy/mirror/journal.h"
#include "proxy/telemetry/log.h"
#include "proxy/worker.h"

namespace pgtandem::proxy {

namespace {

using Clock = std::chrono::steady_clock;
// A lease is at least this long and at most this long (a tool asks for its own within).
constexpr int64_t kMinLeaseMs = 200, kMaxLeaseMs = 600000;
// How long arm waits for catch-up to park (it polls every few ms when idle).
constexpr auto kParkTimeout = std::chrono::seconds(5);

std::string new_id() {
  std::random_device rd;
  std::mt19937_64 g((uint64_t{rd()} << 32) ^ rd());
  static const char* hex = "0123456789abcdef";
  std::string id;
  for (uint64_t v = g(), i = 0; i < 16; ++i, v >>= 4) id += hex[v & 15];
  return id;
}

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += (static_cast<unsigned char>(c) < 0x20) ? ' ' : c;
  }
  return out + "\"";
}

MirrorFence::Reply error(int status, const std::string& why) {
  return {status, "{\"error\":" + quote(why) + "}"};
}

}  // namespace

bool mirror_settled(const ServerState& state) {
  const auto& order = state.mirror.order;
  const auto& backlog = state.mirror.backlog;
  // With catch-up, journaled writes are part of the mirror: settled means applied.
  const bool caught_up = !backlog.enabled || (backlog.entries.load() == 0 &&
                                              backlog.state.load() == MirrorBacklog::kLive);
  return caught_up && state.mirror.queue_bytes.load() <= 0 &&
         order.done_through() >= order.last_assigned();
}

MirrorFence::MirrorFence(ServerState& state, uint64_t journal_max_bytes)
    : state_(state), journal_max_bytes_(journal_max_bytes) {
  thread_ = std::thread([this] { watch(); });
}

MirrorFence::~MirrorFence() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    if (st_ == State::kPaused) state_.control.pause.open();
    if (st_ == State::kArmed) end("pgtandem is stopping", false);
    st_ = State::kIdle;
    state_.mirror.backlog.fence_state.store(0);
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

MirrorFence::Reply MirrorFence::handle(Request q) {
  q.lease_ms = std::clamp(q.lease_ms, kMinLeaseMs, kMaxLeaseMs);
  q.timeout_ms = std::clamp<int64_t>(q.timeout_ms, 1, 60000);
  Reply reply;
  if (q.action == "pause") {
    reply = pause(q.timeout_ms, q.lease_ms);
  } else if (q.action == "arm") {
    reply = arm(q.id, q.lease_ms);
  } else if (q.action == "renew") {
    reply = renew(q.id, q.lease_ms);
  } else if (q.action == "release") {
    reply = release(q.id);
  } else if (q.action == "status") {
    return status();
  } else {
    return error(400, "action must be pause, arm, renew, release or status");
  }
  cv_.notify_all();  // the watcher sleeps while there is nothing to watch
  return reply;
}

std::string MirrorFence::state_json() const {
  const auto& b = state_.mirror.backlog;
  const char* st = st_ == State::kPaused ? "paused" : st_ == State::kArmed ? "armed" : "idle";
  return std::string("\"state\":\"") + st + "\",\"catchup\":\"" +
         MirrorBacklog::state_name(b.state.load()) + "\",\"backlog_entries\":" +
         std::to_string(b.entries.load()) + ",\"through\":" + std::to_string(through_) +
         ",\"last_assigned\":" + std::to_string(state_.mirror.order.last_assigned()) +
         ",\"done_through\":" + std::to_string(state_.mirror.order.done_through());
}

MirrorFence::Reply MirrorFence::pause(int64_t timeout_ms, int64_t lease_ms) {
  std::lock_guard lock(mu_);
  auto& b = state_.mirror.backlog;
  if (!b.enabled)
    return error(409, "the mirror fence needs [mirror] catchup = true (and mirror_writes on at start)");
  if (st_ != State::kIdle) return error(409, "a mirror fence is already held (id " + id_ + ")");
  auto& gate = state_.control.pause;
  if (gate.closed()) return error(409, "traffic is paused by a cutover");
  if (b.journaling.load()) return error(503, "the mirror is catching up on its journal; try again once it is live");
  // The limit counts the journal file, applied entries included: a fence that starts with the file
  // past half of it could fill it (mirroring would stop). 507: no retry mends that.
  const uint64_t file = state_.mirror.journal ? state_.mirror.journal->bytes() : 0;
  if (journal_max_bytes_ > 0 && file >= journal_max_bytes_ / 2)
    return error(507, "the mirror journal file holds " + std::to_string(file) +
                          " bytes, half of [mirror] journal_max_bytes or more: a fence could fill it");
  gate.close();
  const auto start = Clock::now();
  while (gate.in_flight() > 0 || !mirror_settled(state_)) {
    if (Clock::now() - start > std::chrono::milliseconds(timeout_ms)) {
      const int64_t in_flight = gate.in_flight();
      const bool settled = mirror_settled(state_);
      gate.open();
      return error(503, "the pause timed out after " + std::to_string(timeout_ms) + " ms: " +
                            std::to_string(in_flight) + " transaction(s) still running, mirror " +
                            (settled ? "settled" : "not settled"));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  st_ = State::kPaused;
  id_ = new_id();
  through_ = state_.mirror.order.last_assigned();
  deadline_ = Clock::now() + std::chrono::milliseconds(lease_ms);
  b.fence_state.store(1);
  const int64_t ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
  log::info("mirror fence: traffic paused", {{"id", id_}, {"through", std::to_string(through_)},
                                             {"pause_ms", std::to_string(ms)}});
  return {200, "{\"id\":" + quote(id_) + "," + state_json() + ",\"pause_ms\":" + std::to_string(ms) + "}"};
}

MirrorFence::Reply MirrorFence::arm(const std::string& id, int64_t lease_ms) {
  std::lock_guard lock(mu_);
  if (st_ != State::kPaused || id != id_)
    return error(409, id == last_id_ ? "the pause ended: " + last_end_ : "no pause with this id");
  auto& b = state_.mirror.backlog;
  // Catch-up must not run a pass from before the fence over entries journaled after it: it parks
  // first (with this generation), and only then may anything be journaled.
  const uint64_t gen = b.fence_gen.fetch_add(1) + 1;
  b.fenced.store(true);
  const auto start = Clock::now();
  while (b.parked_gen.load() != gen) {
    if (Clock::now() - start > kParkTimeout) {
      b.fenced.store(false);
      unpause("catch-up did not park within 5 s");
      return error(503, last_end_);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  {
    std::unique_lock journal_lock(b.mu);  // as catch-up's flips: no link journals meanwhile
    b.journaling.store(true, std::memory_order_release);
  }
  st_ = State::kArmed;
  deadline_ = Clock::now() + std::chrono::milliseconds(lease_ms);
  b.fence_through.store(through_);
  b.fence_state.store(2);
  b.fences.fetch_add(1);
  state_.control.pause.open();
  log::info("mirror fence armed: mirrored writes are journaled until it is released",
            {{"id", id_}, {"through", std::to_string(through_)}});
  return {200, "{\"id\":" + quote(id_) + "," + state_json() + "}"};
}

MirrorFence::Reply MirrorFence::renew(const std::string& id, int64_t lease_ms) {
  std::lock_guard lock(mu_);
  if (st_ != State::kArmed || id != id_)
    return error(409, id == last_id_ ? "the fence ended: " + last_end_ : "no fence with this id");
  deadline_ = Clock::now() + std::chrono::milliseconds(lease_ms);
  return {200, "{\"id\":" + quote(id_) + "," + state_json() + "}"};
}

MirrorFence::Reply MirrorFence::release(const std::string& id) {
  std::lock_guard lock(mu_);
  if (id.empty() || (id != id_ && id != last_id_)) return error(409, "no fence with this id");
  if (id == id_ && st_ == State::kPaused) {
    unpause("released while paused");
    log::info("mirror fence: pause released, no fence", {{"id", id_}});
  } else if (id == id_ && st_ == State::kArmed) {
    end("released", false);
  }
  return {200, "{\"id\":" + quote(id) + ",\"ended\":" + quote(last_end_) + "," + state_json() + "}"};
}

MirrorFence::Reply MirrorFence::status() {
  std::lock_guard lock(mu_);
  return {200, "{\"id\":" + quote(st_ == State::kIdle ? "" : id_) + "," + state_json() + "}"};
}

void MirrorFence::unpause(const std::string& why) {
  state_.control.pause.open();
  st_ = State::kIdle;
  state_.mirror.backlog.fence_state.store(0);
  last_id_ = id_;
  last_end_ = why;
}

void MirrorFence::end(const std::string& why, bool expired) {
  auto& b = state_.mirror.backlog;
  b.fenced.store(false);  // catch-up applies the journal, then returns every link to live
  b.fence_state.store(0);
  if (expired) b.fences_expired.fetch_add(1);
  st_ = State::kIdle;
  last_id_ = id_;
  last_end_ = why;
  if (expired)
    log::warn("mirror fence ended: catch-up applies the journal", {{"id", id_}, {"why", why}});
  else
    log::info("mirror fence ended: catch-up applies the journal", {{"id", id_}, {"why", why}});
}

void MirrorFence::watch() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    // Nothing paused or armed: asleep until handle() changes that (it notifies), not a look every
    // 20 ms for the proxy's whole life.
    if (st_ == State::kIdle) {
      cv_.wait(lock, [this] { return stopping_ || st_ != State::kIdle; });
      if (stopping_) break;
    }
    cv_.wait_for(lock, std::chrono::milliseconds(20));
    if (stopping_) break;
    const auto now = Clock::now();
    if (st_ == State::kPaused && now > deadline_) {
      unpause("the pause's lease ran out before the fence was armed");
      log::warn("mirror fence: pause lease ran out; traffic resumes, no fence", {{"id", id_}});
    } else if (st_ == State::kArmed && now > deadline_) {
      end("its lease ran out (the tool stopped renewing it)", true);
    } else if (st_ == State::kArmed && journal_max_bytes_ > 0 && state_.mirror.journal &&
               state_.mirror.journal->bytes() >= journal_max_bytes_ / 4 * 3) {
      // The journal's limit counts the file: the fence ends with a quarter of it left for the
      // writes catch-up meets before every link is live again.
      end("the journal file reached 3/4 of [mirror] journal_max_bytes", true);
    }
  }
}

}  // namespace pgtandem::proxy

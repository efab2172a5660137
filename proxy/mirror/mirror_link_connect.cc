// The mirror link's connection to its target and the session's state on it: connecting and
// logging in as the session's user, the session-state units kept and replayed on a new
// connection, and the statements prepared again before the units that bind them (after a
// reconnection or the journal). On the link's thread, as the apply loop (mirror_link.cc).
#include "proxy/mirror/mirror_link.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <cstring>
#include <mutex>

#include "protocol/message_types.h"
#include "protocol/messages.h"
#include "proxy/auth/backend_login.h"
#include "proxy/mirror/mirror_safety.h"
#include "proxy/net/upstream.h"
#include "proxy/telemetry/log.h"

namespace pgtandem::proxy {

namespace {
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr size_t kReadBufferSize = 16 * 1024;
constexpr size_t kMaxStateUnits = 256;
constexpr size_t kMaxStateBytes = 256 * 1024;
using Clock = std::chrono::steady_clock;

// Only Parse/Close/Describe/Sync/Flush: prepared statements, which a journal entry carries for
// what it binds (JournalSession::prepared). Keeping them as state too would prepare twice.
bool only_prepares(std::string_view bytes) {
  size_t pos = 0;
  while (pos + protocol::kHeaderSize <= bytes.size()) {
    const char type = bytes[pos];
    if (type != protocol::frontend::kParse && type != protocol::frontend::kClose &&
        type != protocol::frontend::kDescribe && type != protocol::frontend::kSync &&
        type != protocol::frontend::kFlush) {
      return false;
    }
    pos += 1 + protocol::read_u32(bytes.data() + pos + 1);
  }
  return true;
}

// The unit parses the named statement itself (it must not exist before).
bool parses(std::string_view bytes, std::string_view name) {
  size_t pos = 0;
  while (pos + protocol::kHeaderSize <= bytes.size()) {
    const uint32_t len = protocol::read_u32(bytes.data() + pos + 1);
    if (bytes[pos] == protocol::frontend::kParse && pos + 1 + len <= bytes.size()) {
      protocol::Parse p;
      if (protocol::decode(bytes.substr(pos + protocol::kHeaderSize, len + 1 - protocol::kHeaderSize), p) &&
          p.name == name) {
        return true;
      }
    }
    pos += 1 + len;
  }
  return false;
}

// ReadyForQuery messages a unit's bytes produce: one per Query, one per Sync.
uint32_t count_responses(std::string_view bytes) {
  uint32_t n = 0;
  size_t pos = 0;
  while (pos + protocol::kHeaderSize <= bytes.size()) {
    const char type = bytes[pos];
    if (type == protocol::frontend::kQuery || type == protocol::frontend::kSync) ++n;
    pos += 1 + protocol::read_u32(bytes.data() + pos + 1);
  }
  return n;
}

}  // namespace

void MirrorLink::remember_state(const policy::MirrorUnit& unit) {
  if (!unit.session_state || only_prepares(unit.bytes)) return;
  std::lock_guard lock(state_mu_);
  state_units_.push_back(unit.bytes);
  state_bytes_ += unit.bytes.size();
  // Bounded: a session that SETs forever keeps its most recent settings.
  while (state_units_.size() > kMaxStateUnits || state_bytes_ > kMaxStateBytes) {
    state_bytes_ -= state_units_.front().size();
    state_units_.erase(state_units_.begin());
  }
}

// GCC 12 pairs the coroutine frame's operator delete with the aligned_alloc inside Asio's frame
// allocator once this frame holds a Stream (proxy/net/stream.h): a false positive, the frame is freed
// by Asio's matching deallocate.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
asio::awaitable<bool> MirrorLink::connect(std::string* error) {
  const TargetEndpoint& target = state_.targets[target_];
  const auto& cfg = *state_.config;
  // A target found down recently is not tried again by every session.
  const int64_t now_ns = Clock::now().time_since_epoch().count();
  const int64_t down_until = state_.health.down_until[target_].load(std::memory_order_relaxed);
  if (now_ns < down_until) {
    *error = "target marked down after a recent failure";
    co_return false;
  }
  auto mark_down = [&] {
    state_.health.down_until[target_].store(
        now_ns + std::chrono::nanoseconds(std::chrono::milliseconds(cfg.mirror.reconnect_interval_ms))
                     .count(),
        std::memory_order_relaxed);
  };
  // On the io_context of whoever connects: the home's, or a borrower's (lend()).
  socket_ = Socket(co_await asio::this_coro::executor);
  auto ec = co_await connect_target(socket_, target,
                                    std::chrono::milliseconds(cfg.limits.connect_timeout_ms));
  if (ec) {
    state_.metrics->upstream_connect_failed(target_);
    mark_down();
    *error = ec.message();
    co_return false;
  }
  const config::Target* t = cfg.find_target(target.name);
  LoginParams p;
  p.user = context_.user;
  p.database = context_.database;
  p.extra = context_.params;
  p.pgpass = state_.mirror.pgpass.get();
  p.pgpass_host = pgpass_host(*t);
  p.pgpass_port = t->port;
  p.timeout = std::chrono::milliseconds(cfg.limits.connect_timeout_ms);
  LoginResult r = co_await login_backend(socket_, p);
  if (!r.ok) {
    boost::system::error_code ignored;
    socket_.close(ignored);
    if (r.error == LoginError::kIo || r.error == LoginError::kTimeout) mark_down();
    *error = "login failed: " + r.sqlstate + " " + r.message;
    co_return false;
  }
  key_ = r.key;
  rbuf_.resize(kReadBufferSize);
  rend_ = r.leftover.size() <= rbuf_.size() ? r.leftover.size() : 0;
  if (rend_ > 0) std::memcpy(rbuf_.data(), r.leftover.data(), rend_);
  // A reconnection (after a routed read lost the connection): the session's settings again.
  bool replayed = co_await replay_state();
  if (!replayed) {
    boost::system::error_code ignored;
    socket_.close(ignored);
    *error = "replaying the session's state failed";
    co_return false;
  }
  if (epoch_ > 0) reprepare_ = true;
  reprepared_.clear();
  ++epoch_;
  connected_.store(true, std::memory_order_release);
  co_return true;
}
#pragma GCC diagnostic pop

asio::awaitable<bool> MirrorLink::replay_state() {
  std::vector<std::string> units;
  {
    std::lock_guard lock(state_mu_);
    units = state_units_;
  }
  for (const auto& unit : units) {
    auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(unit), kNoThrow);
    if (ec) co_return false;
    std::vector<policy::Outcome> outcomes;
    policy::AnswerMatch answer(state_.limits);
    answer.start(count_responses(unit), nullptr, &outcomes);
    const bool read = co_await read_outcomes(answer, nullptr);
    if (!read) co_return false;
    for (const auto& o : outcomes) {
      if (o.is_error()) co_return false;
    }
  }
  co_return true;
}

asio::awaitable<bool> MirrorLink::reprepare() {
  std::string prep;
  for (const auto& unit : in_flight_) {
    for (const auto& name : unit.binds) {
      if (std::find(reprepared_.begin(), reprepared_.end(), name) != reprepared_.end()) continue;
      reprepared_.push_back(name);
      if (parses(unit.bytes, name)) continue;
      const KnownParse* known = find_parse(name);
      if (known == nullptr) continue;
      protocol::encode(prep, protocol::Close{protocol::kTargetStatement, name});
      prep += known->parse;
    }
  }
  if (prep.empty()) co_return true;
  protocol::encode(prep, protocol::Sync{});
  auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(prep), kNoThrow);
  if (ec) co_return false;
  std::vector<policy::Outcome> ignored;
  policy::AnswerMatch answer(state_.limits);
  answer.start(1, nullptr, &ignored);
  const bool read = co_await read_outcomes(answer, nullptr);
  co_return read;
}

}  // namespace pgtandem::proxy

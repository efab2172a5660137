// The primary flip (issue 4): a reload that changes the primary moves the session, at a request
// boundary, onto the mirror link's connection to the new primary.
#include "proxy/session/session_state.h"

#include <boost/asio/write.hpp>

#include <cstring>
#include <string>

#include "protocol/message_types.h"
#include "protocol/messages.h"
#include "proxy/telemetry/log.h"

namespace pgtandem::proxy::session {

asio::awaitable<void> Session::park_backend() {
  backend_parked_ = true;
  flip_front_.cancel();
  while (flipping_) {
    flip_back_.expires_at(asio::steady_timer::time_point::max());
    co_await flip_back_.async_wait(kNoThrow);
  }
  backend_parked_ = false;
}

// The session cannot follow a flip transparently: tell the client to reconnect (it will reach the
// new primary), as a server shutting down would.
asio::awaitable<void> Session::refuse_after_flip(std::string_view why) {
  log::warn("session closed at primary flip", {{"reason", why}});
  state_.metrics->primary_flip(false);
  co_await lock_client();
  const std::string bytes =
      fatal("57P01", "pgtandem: the primary changed to \"" + state_.targets[snap_->primary].name +
                         "\"; reconnect",
            std::string(why));
  co_await asio::async_write(client_, asio::buffer(bytes), kNoThrow);
  unlock_client();
  close_backend();
  close_client();
}

asio::awaitable<bool> Session::prepare_all_statements(Socket& server) {
  const auto& parses = capture_->parse_messages();
  if (parses.empty()) co_return true;
  std::string batch;
  for (const auto& [name, parse] : parses) {
    protocol::encode(batch, protocol::Close{protocol::kTargetStatement, name});
    batch.append(parse);
  }
  protocol::encode(batch, protocol::Sync{});
  auto [ec, n] = co_await asio::async_write(server, asio::buffer(batch), kNoThrow);
  if (ec) co_return false;
  // The answer: CloseComplete and ParseComplete pairs, then ReadyForQuery; any error fails.
  auto& rbuf = mirror_->read_buffer();
  size_t& rend = mirror_->read_end();
  FrameScanner scanner(protocol::Direction::kBackend, state_.limits, 8 * 1024);
  struct Visitor {
    bool error = false;
    bool ready = false;
    bool on_message(const Header& h, std::string_view) {
      if (h.type == protocol::backend::kErrorResponse) error = true;
      if (h.type == protocol::backend::kReadyForQuery) ready = true;
      return !ready;
    }
    bool on_stream_start(const Header&) { return true; }
  } v;
  for (;;) {
    if (rend > 0) {
      auto r = scanner.scan(std::string_view(rbuf.data(), rend), v);
      if (r.status == Status::kInvalid) co_return false;
      rend -= r.forward;
      if (rend > 0) std::memmove(rbuf.data(), rbuf.data() + r.forward, rend);
      if (v.ready) co_return !v.error;
    }
    auto [rec, rn] = co_await server.async_read_some(
        asio::buffer(rbuf.data() + rend, rbuf.size() - rend), kNoThrow);
    if (rec) co_return false;
    rend += rn;
  }
}

// Moves the session to a new primary at a request boundary (nothing outstanding, no transaction):
// the mirror link's connection, which has the session's state and, once drained, all its writes,
// becomes the primary leg, and the session's old primary connection becomes the mirror, so later
// writes flow back to the old primary and a flip back loses nothing. False if the session closed.
asio::awaitable<bool> Session::flip_primary(size_t to) {
  if (!mirror_ || wrote_unmirrored_) {
    co_await refuse_after_flip(mirror_ ? "the session wrote while mirror_writes was off"
                                       : "the session has no connection to the new primary");
    co_return false;
  }
  // Every write of the session must be on the new primary before it serves the session.
  const auto give_up = Clock::now() + std::chrono::milliseconds(
                                          state_.config->limits.connect_timeout_ms);
  // What other sessions committed before now should be there too, so that the session's next
  // transactions follow them on the new primary as they did on the old one (commit order,
  // policy/mirror/mirror_order.h): best effort within the same deadline (a session that waited that long
  // for others moves anyway: closing it would not help, a reconnected client would see the same).
  // (A shadow read may hold the connection: it gives it back within its timeout.)
  const uint64_t committed_before = state_.mirror.order.last_assigned();
  std::string error;
  Socket* other = nullptr;
  for (;;) {
    while ((!mirror_->drained() || mirror_->lent() ||
            state_.mirror.order.done_through() < committed_before) &&
           Clock::now() < give_up) {
      asio::steady_timer t(worker_.io(), std::chrono::milliseconds(1));
      co_await t.async_wait(kNoThrow);
    }
    if (!mirror_->can_lend()) {
      co_await refuse_after_flip("the session's mirrored writes are not all applied on the new primary");
      co_return false;
    }
    other = co_await mirror_->lend(&error);
    // A shadow read on the link's thread claimed it after the check: wait for it again.
    if (other != nullptr || error != MirrorLink::kLentElsewhere) break;
  }
  if (other == nullptr) {
    co_await refuse_after_flip("the new primary is unreachable: " + error);
    co_return false;
  }
  // The mirror has the statements of the session's writes; its reads' statements were never
  // mirrored. Prepare them all there under their own names (Close first: no error if absent).
  const bool prepared = co_await prepare_all_statements(*other);
  if (!prepared) {
    mirror_->give_back(true, mirror_writes_);
    co_await refuse_after_flip("preparing the session's statements on the new primary failed");
    co_return false;
  }
  // Park pump_backend (its read on the old connection is cancelled), swap, let it go on.
  flipping_ = true;
  backend_.cancel();
  while (!backend_parked_) {
    flip_front_.expires_at(asio::steady_timer::time_point::max());
    co_await flip_front_.async_wait(kNoThrow);
  }
  const size_t from = target_;
  std::swap(backend_, *other);
  const BackendKey new_key = mirror_->backend_key();
  mirror_->retarget(from, BackendKey{true, primary_pid_, primary_secret_});
  mirror_->give_back(false, mirror_writes_);
  primary_pid_ = new_key.process_id;
  primary_secret_ = new_key.secret_key;
  target_ = to;
  primary_is_old_ = state_.targets[to].name == "old";
  if (have_key_) state_.cancels.redirect(backend_pid_, backend_secret_, primary_cancel_key());
  flipping_ = false;
  flip_back_.cancel();
  state_.metrics->primary_flip(true);
  log::debug("session moved to the new primary",
             {{"from", state_.targets[from].name}, {"to", state_.targets[to].name}});
  co_return true;
}

}  // namespace pgtandem::proxy::session

// pump_frontend: the client's messages to the primary. Request boundaries and routability are
// the request tracker's (policy/session/request_tracker.h); a diverted read is served elsewhere.
#include "proxy/session/session_state.h"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <cstring>
#include <string>

#include "protocol/errors.h"
#include "protocol/message_types.h"
#include "proxy/net/relay_read.h"
#include "proxy/net/uring_relay.h"
#include "proxy/telemetry/log.h"

namespace pgtandem::proxy::session {

asio::awaitable<void> Session::pump_frontend() {
  // With mirroring on, every message must be seen whole (its bytes go to the mirror), so the
  // keep limit is the message size limit and the buffer grows for a large statement; otherwise
  // large messages stream through the fixed buffer untouched.
  const size_t keep_limit =
      capture_ ? size_t{state_.limits.max_message_size} + 1 : kKeepLimit;
  FrameScanner scanner(protocol::Direction::kFrontend, state_.limits, keep_limit);
  size_t end = fend_;
  bool unscanned = end > 0;
  const bool block_on_full = mirror_ && snap_ && snap_->config->mirror.overflow == "block";
  // The last read left the socket empty and the client now waits for answers: the next read waits
  // for readiness without a recv that finds nothing (proxy/net/relay_read.h).
  bool wait_first = false;
  int inq = -1;
  if (UringRelay* ring = worker_.uring()) client_.attach_uring(*ring);
  if (client_.uring() == nullptr) enable_inq(client_);

  for (;;) {
    if (block_on_full && mirror_->over_limit()) {
      co_await wait_for_mirror_room();
      wait_first = false;  // suspended: the reactor may have turned
    }
    if (!unscanned) {
      // Inline, not a sub-coroutine: a co_await of one allocates its frame on every read.
      if (state_.control.draining.load(std::memory_order_relaxed) &&
          drain_idle(end, tracker_.batch_started_earlier())) {
        close_for_drain();  // idle while pgtandem drains: leave now
        co_return;
      }
      const uint32_t writes = client_writes_;
      boost::system::error_code ec;
      size_t n = 0;
      if (UringLeg* leg = client_.uring()) {
        // On the ring: take what arrived; wait only when nothing has (no syscall either way). A
        // pump with nothing to scan waits without a buffer (proxy/net/pump_buffer.h).
        for (;;) {
          if (!leg->ready()) {
            if (end == 0) fbuf_.give_back();
            auto [wec, wn] = co_await leg->async_wait(
                asio::bind_cancellation_slot(drain_signal_.slot(), kNoThrow));
            if (wec) {
              ec = wec;
              break;
            }
            continue;
          }
          fbuf_.hold();
          n = leg->take(fbuf_.data() + end, fbuf_.size() - end, ec);
          if (n > 0 || ec) break;
        }
      } else {
        fbuf_.hold();  // (given back only on the ring; a flip may have left it)
        auto [rec, rn] = co_await relay_read_some(
            client_, asio::buffer(fbuf_.data() + end, fbuf_.size() - end), wait_first, &inq,
            asio::bind_cancellation_slot(drain_signal_.slot(), kNoThrow));
        ec = rec;
        n = rn;
      }
      wait_first = false;
      if (client_writes_ != writes) inq = -1;
      if (ec == asio::error::operation_aborted &&
          state_.control.draining.load(std::memory_order_relaxed)) {
        continue;  // woken for a drain: leave if idle, else go on reading
      }
      if (ec) {
        // The client is gone. Closing the server connection (never a forged Terminate in the
        // middle of a message) makes the server roll back an open transaction, as it would for
        // a client that vanished on a direct connection.
        close_backend();
        co_return;
      }
      end += n;
    }
    unscanned = false;
    bool turned = false;  // suspended since the read (the reactor may have turned)
    // Only a session with a capture has anything to do between requests; checking here keeps a
    // coroutine frame (an allocation) off every read of the plain relay.
    bool go_on = true;
    if (at_request_boundary()) {
      go_on = co_await between_requests();
      turned = true;  // it may have waited (pause gate, journal room, a flip)
    }
    if (!go_on) co_return;
    char* buf = fbuf_.data();
    const bool routing = routes_ && (routes_->routes_anything() || shadowing_) && !pinned_;
    tracker_.begin_scan(buf, routing);
    auto r = scanner.scan(std::string_view(buf, end), tracker_);
    size_t send = tracker_.divert() ? tracker_.divert_begin() : r.forward;
    bool stop = tracker_.terminate();
    if (r.status == Status::kInvalid) {
      send = on_invalid_frame(r, buf, end);
      stop = true;
    }
    if (send > 0) {
      if (capture_) on_forward();
      // One send for the whole batch this read produced; the rest, if the server's socket is
      // full, through the reactor.
      boost::system::error_code ec;
      size_t sent = 0;
      if (UringLeg* leg = backend_.uring()) {
        // On the ring: queued, and submitted with the worker's next ring entry.
        ++backend_writes_;
        auto [uec, un] = co_await leg->async_send(buf, send, kNoThrow);
        ++backend_writes_;
        ec = uec;
        sent = send;
        turned = true;
      } else if (!backend_.tls()) {
        sent = backend_.try_send(buf, send, ec);
      }
      if (!ec && sent < send) {
        ++backend_writes_;
        auto [aec, an] = co_await asio::async_write(backend_, asio::buffer(buf + sent, send - sent),
                                                    kNoThrow);
        ++backend_writes_;
        ec = aec;
        turned = true;
      }
      if (ec) {
        // The server is gone. The client is left to the other pump, which still delivers what
        // the server said last (say, FATAL 57P01 after pg_terminate_backend) and then closes.
        co_return;
      }
      stats_.bytes[kFrontendDir].add(send);
      stats_.messages[kFrontendDir].add(tracker_.messages());
    }
    if (stop) {
      if (!pending_fatal_.empty()) close_backend();
      co_return;
    }
    size_t consumed = send;
    if (tracker_.divert()) {
      const size_t begin = tracker_.divert_begin();
      const bool served = co_await serve_diverted(std::string_view(buf + begin, r.forward - begin));
      if (!served) co_return;
      turned = true;
      consumed = r.forward;
      unscanned = consumed < end;  // the scan stopped at the routed request: go on from there
    }
    tracker_.end_scan();
    wait_first = !turned && inq == 0 && consumed == end && tracker_.outstanding() > 0;
    end -= consumed;
    if (end > 0) std::memmove(buf, buf + consumed, end);
    if (!resize_frontend_buffer(end, keep_limit)) co_return;
  }
}

// overflow = "block": the client's next request waits until the mirror has room.
asio::awaitable<void> Session::wait_for_mirror_room() {
  while (mirror_->over_limit()) {
    asio::steady_timer t(worker_.io(), std::chrono::milliseconds(1));
    co_await t.async_wait(kNoThrow);
  }
}

// [mirror] journal_full = "block": the journal is at its limit, so the session's next request
// waits (at a request boundary, never inside a transaction) until catch-up, a replay or a reload
// makes room. Past journal_full_timeout_ms the client is told why and disconnected, as PgBouncer
// does at query_wait_timeout: never a write the mirror silently lacks.
asio::awaitable<bool> Session::wait_for_journal_room() {
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    refresh_snapshot();
    const auto& m = snap_ ? snap_->config->mirror : state_.config->mirror;
    const uint64_t bytes = state_.mirror.journal->bytes();
    if (m.journal_full != "block" || bytes < m.journal_max_bytes) co_return true;
    const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    if (waited.count() >= m.journal_full_timeout_ms) {
      log::warn("client closed: the mirror journal stayed full",
                {{"journal_bytes", std::to_string(bytes)},
                 {"limit", std::to_string(m.journal_max_bytes)},
                 {"waited_ms", std::to_string(waited.count())}});
      pending_fatal_ = fatal(
          "53400",
          "pgtandem: the mirror journal is full (" + std::to_string(bytes) + " of " +
              std::to_string(m.journal_max_bytes) + " bytes, [mirror] journal_full = \"block\"); "
              "waited " + std::to_string(waited.count()) + " ms for room",
          "Writes are held back until the mirror catches up or the journal is replayed.");
      close_backend();
      co_return false;
    }
    asio::steady_timer t(worker_.io(), std::chrono::milliseconds(10));
    co_await t.async_wait(kNoThrow);
  }
}

// The answer to a session idle while pgtandem drains, as the server gives at a smart/fast shutdown.
void Session::close_for_drain() {
  pending_fatal_ = fatal(protocol::sqlstate::kAdminShutdown,
                         "terminating connection due to administrator command");
  state_.metrics->drain_session_closed();
  close_backend();
}

// A reload takes effect between requests, never inside a transaction: the cutover's pause, the
// config snapshot, and a flip to a new primary. False if the session closed.
bool Session::at_request_boundary() const {
  return capture_ && tracker_.outstanding() == 0 && !capture_->in_transaction() &&
         !tracker_.batch_started_earlier();
}

asio::awaitable<bool> Session::between_requests() {
  co_await pass_pause_gate();
  refresh_snapshot();
  if (mirror_writes_ && state_.mirror.journal) {
    // Two loads per request boundary; the wait itself is a coroutine of its own, rarely entered.
    const auto& m = snap_ ? snap_->config->mirror : state_.config->mirror;
    if (m.journal_full == "block" && state_.mirror.journal->bytes() >= m.journal_max_bytes) {
      const bool room = co_await wait_for_journal_room();
      if (!room) co_return false;
    }
  }
  if (snap_ && snap_->primary != target_) {
    const bool moved = co_await flip_primary(snap_->primary);  // never co_await inside &&
    co_return moved;
  }
  co_return true;
}

// A cutover's pause (issue 14): at a boundary, the next request waits while the gate is closed
// (latency, never an error); once through, the session counts in flight until its boundary.
asio::awaitable<void> Session::pass_pause_gate() {
  PauseGate& gate = pause_ticket_.gate();
  bool waited = false;
  while (!pause_ticket_.try_enter()) {
    if (!waited) gate.add_waiting(1);
    waited = true;
    asio::steady_timer t(worker_.io(), std::chrono::milliseconds(2));
    co_await t.async_wait(kNoThrow);
  }
  if (waited) gate.add_waiting(-1);
}

// A frame the scanner rejected: how much to send the server still (the session stops after it).
size_t Session::on_invalid_frame(const FrameScanner::Result& r, const char* buf, size_t end) {
  state_.metrics->protocol_error(ProtocolErrorKind::kClientFraming);
  protocol::Limits server_limits;  // the server's own caps
  auto server_view = protocol::decode_header(std::string_view(buf + r.forward, end - r.forward),
                                             protocol::Direction::kFrontend, server_limits);
  if (server_view.status == Status::kInvalid) {
    // The server would reject this message too: hand it the offending header so the client
    // gets the server's own answer (or its silent close), in order after earlier replies.
    return std::min(end, r.forward + protocol::kHeaderSize);
  }
  pending_fatal_ = fatal("08P01", "pgtandem: message of " + std::to_string(r.bad_header.length) +
                                      " bytes exceeds max_message_size");
  return r.forward;
}

// The request the scan stopped at: served on the secondary, or else sent to the primary after
// all. False if the session cannot go on.
asio::awaitable<bool> Session::serve_diverted(std::string_view request) {
  const bool routed = co_await serve_routed(request);
  if (routed) co_return true;
  state_.metrics->route_decision(worker_.index(), snap_->generation, decision_.rule, target_);
  ++backend_writes_;
  auto [ec, n] = co_await asio::async_write(backend_, asio::buffer(request), kNoThrow);
  ++backend_writes_;
  if (ec) co_return false;
  stats_.bytes[kFrontendDir].add(request.size());
  co_return true;
}

// After a scan that left `end` bytes: a kept message larger than the buffer (mirroring only)
// grows it, up to the limit (false: past it, the session ends); an idle session shrinks it back.
bool Session::resize_frontend_buffer(size_t end, size_t keep_limit) {
  if (end == fbuf_.size()) {
    if (fbuf_.size() >= keep_limit) {
      close_backend();
      return false;
    }
    fbuf_.resize(std::min(fbuf_.size() * 2, keep_limit), end);
  } else if (end == 0 && fbuf_.size() > 4 * kFrontendBufferSize) {
    fbuf_.resize(kFrontendBufferSize, 0);  // back to a pooled block
  }
  return true;
}

// Idle for a graceful shutdown: nothing outstanding, not in a transaction (the primary's last
// ReadyForQuery said 'I'), no partial message or unsynced batch from the client.
bool Session::drain_idle(size_t buffered, bool batch_started) const {
  return tracker_.outstanding() == 0 && tx_status_ == 'I' && buffered == 0 && !batch_started &&
         !flipping_;
}

// [log] statements: one info line per client request (a Query, or a Parse's statement).
void Session::log_request(std::string_view sql) const {
  constexpr size_t kMaxStatementLog = 1024;
  const std::string session = std::to_string(primary_pid_);
  const bool cut = sql.size() > kMaxStatementLog;
  log::info("statement", {{"session", session},
                          {"target", state_.targets[target_].name},
                          {"statement", sql.substr(0, kMaxStatementLog)},
                          {"truncated", cut ? "true" : "false"}});
}

}  // namespace pgtandem::proxy::session

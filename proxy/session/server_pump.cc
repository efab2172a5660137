// pump_backend: the primary's answers to the client, feeding the capture, shadow reads and the
// request counter.
#include "proxy/session/session_state.h"

#include <boost/asio/write.hpp>

#include <cstring>

#include "protocol/message_types.h"
#include "proxy/net/relay_read.h"
#include "proxy/net/uring_relay.h"
#include "proxy/telemetry/log.h"

namespace pgtandem::proxy::session {

struct Session::BackendVisitor {
  Session* s;
  LatencyHistogram* latency;
  uint64_t messages = 0;
  bool last_ready = false;  // the last message seen was a ReadyForQuery
  bool on_message(const Header& h, std::string_view body) {
    ++messages;
    last_ready = h.type == protocol::backend::kReadyForQuery;
    if (s->shadow_) s->on_shadow_answer(h, body);
    switch (h.type) {
      case protocol::backend::kReadyForQuery: {
        const auto now = Clock::now();
        if (s->tracker_.answered()) latency->observe(now - s->request_start_);
        if (s->capture_ && s->capture_->on_backend(h, body, now)) s->on_capture_ready();
        if (s->order_reserved_ != 0 && s->capture_->outstanding() == 0) {
          s->release_order_reservation();  // its COMMIT released no write
        }
        // After the answer's units were numbered (on_capture_ready): the barrier's drain.
        if (s->tracker_.outstanding() == 0) s->answer_ticket_.leave();
        s->tx_status_ = body.empty() ? 'I' : body[0];
        if (s->tx_status_ == 'I' && s->tracker_.outstanding() == 0) s->pause_ticket_.leave();
        if (s->tracker_.outstanding() == 0 && s->state_.control.draining.load(std::memory_order_relaxed)) {
          s->drain_signal_.emit(asio::cancellation_type::terminal);  // pump_frontend decides
        }
        return true;
      }
      case protocol::backend::kCommandComplete:
      case protocol::backend::kErrorResponse:
      case protocol::backend::kParseComplete:
      case protocol::backend::kCloseComplete:
      case protocol::backend::kCopyInResponse:
        if (s->capture_) s->capture_->on_backend(h, body, {});
        return true;
      default:
        return true;
    }
  }
  bool on_stream_start(const Header& h) {
    ++messages;
    last_ready = false;
    if (s->shadow_) s->shadow_->on_primary_streamed();
    if (s->capture_ && h.type == protocol::backend::kErrorResponse) {
      s->capture_->on_backend(h, {}, {});
    }
    return true;
  }
};

asio::awaitable<void> Session::pump_backend() {
  FrameScanner scanner(protocol::Direction::kBackend, state_.limits, kKeepLimit);
  char* buf = bbuf_.data();
  size_t end = bend_;
  bool unscanned = end > 0;
  LatencyHistogram* latency = &stats_.query_latency[target_];
  // The last read left the socket empty and the server now waits for a request: the next read
  // waits for readiness without a recv that finds nothing (proxy/net/relay_read.h).
  bool wait_first = false;
  int inq = -1;
  UringRelay* const ring = worker_.uring();
  if (ring != nullptr) backend_.attach_uring(*ring);
  if (backend_.uring() == nullptr) enable_inq(backend_);

  for (;;) {
    if (!unscanned) {
      if (flipping_) {
        // The connection becomes the mirror link's (read through Asio): off the ring first.
        backend_.detach_uring();
        co_await park_backend();
        latency = &stats_.query_latency[target_];
        if (ring != nullptr) backend_.attach_uring(*ring);
        if (backend_.uring() == nullptr) enable_inq(backend_);
        wait_first = false;
      }
      const uint32_t writes = backend_writes_;
      boost::system::error_code ec;
      size_t n = 0;
      if (UringLeg* leg = backend_.uring()) {
        // As the client pump: no buffer held while there is nothing to scan and nothing arrived.
        for (;;) {
          if (!leg->ready()) {
            if (end == 0) bbuf_.give_back();
            auto [wec, wn] = co_await leg->async_wait(kNoThrow);
            if (wec) {
              ec = wec;
              break;
            }
            continue;
          }
          bbuf_.hold();
          n = leg->take(bbuf_.data() + end, kBackendBufferSize - end, ec);
          if (n > 0 || ec) break;
        }
        buf = bbuf_.data();  // null only with `ec` and nothing kept (end == 0)
      } else {
        bbuf_.hold();  // (given back only on the ring; a flip may have left it)
        buf = bbuf_.data();
        auto [rec, rn] = co_await relay_read_some(
            backend_, asio::buffer(buf + end, kBackendBufferSize - end), wait_first, &inq,
            kNoThrow);
        ec = rec;
        n = rn;
      }
      wait_first = false;
      if (backend_writes_ != writes) inq = -1;
      if (ec) {
        if (flipping_) continue;  // cancelled for a flip: park, then read the new primary
        break;
      }
      end += n;
    }
    unscanned = false;
    BackendVisitor v{this, latency};
    auto r = scanner.scan(std::string_view(buf, end), v);
    wait_first = inq == 0 && r.forward == end && v.last_ready && tracker_.outstanding() == 0;
    if (r.status == Status::kInvalid) {
      // A server does not send malformed frames; if one does, pass on what is whole and stop.
      state_.metrics->protocol_error(ProtocolErrorKind::kBackendFraming);
      log::warn("malformed message from target", {{"target", state_.targets[target_].name}});
      if (r.forward > 0) co_await asio::async_write(client_, asio::buffer(buf, r.forward), kNoThrow);
      close_backend();
      close_client();
      co_return;
    }
    if (r.forward > 0) {
      // The primary's answer to the client, written here rather than in a sub-coroutine: a
      // coroutine frame per server read was ~500 instructions of the relay (bench/README.md).
      if (client_busy_) {
        co_await lock_client();  // a routed read is writing (rare: notices)
        wait_first = false;      // suspended: the reactor may have turned
      } else {
        client_busy_ = true;
      }
      // One send for everything this read produced; the rest, if the client's socket is full,
      // through the reactor.
      boost::system::error_code wec;
      size_t written = 0;
      if (UringLeg* leg = client_.uring()) {
        // On the ring: queued, and submitted with the worker's next ring entry.
        ++client_writes_;
        auto [uec, un] = co_await leg->async_send(buf, r.forward, kNoThrow);
        ++client_writes_;
        wec = uec;
        written = uec ? 0 : r.forward;
        wait_first = false;
      } else if (!client_.tls()) {
        written = client_.try_send(buf, r.forward, wec);
      }
      if (!wec && written < r.forward) {
        ++client_writes_;
        auto [aec, an] = co_await asio::async_write(
            client_, asio::buffer(buf + written, r.forward - written), kNoThrow);
        ++client_writes_;
        wec = aec;
        written += an;
        wait_first = false;  // suspended: the reactor may have turned
      }
      unlock_client();
      if (wec) {
        close_backend();
        close_client();  // the client is gone: end pump_frontend's read too
        co_return;
      }
      stats_.bytes[kBackendDir].add(written);
      stats_.messages[kBackendDir].add(v.messages);
      // A routed read waits for everything before it to reach the client.
      if (waiting_answers_ && tracker_.outstanding() <= 1) answered_.cancel();
    }
    end -= r.forward;
    if (end > 0) std::memmove(buf, buf + r.forward, end);
  }

  // The server closed or failed. What it sent is passed on as it came, a partial message
  // included, so the client sees exactly what a direct connection would show; nothing is ever
  // injected after a partial message.
  if (end > 0) {
    co_await asio::async_write(client_, asio::buffer(buf, end), kNoThrow);
  } else if (!pending_fatal_.empty() && scanner.at_boundary()) {
    co_await asio::async_write(client_, asio::buffer(pending_fatal_), kNoThrow);
  }
  close_client();
}

}  // namespace pgtandem::proxy::session

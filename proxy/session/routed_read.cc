#include "proxy/session/routed_read.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <cstring>

#include "protocol/message_types.h"
#include "protocol/messages.h"

namespace pgtandem::proxy {
namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr size_t kKeepLimit = 8 * 1024;
// Preliminary messages held back before the answer commits; a RowDescription of thousands of
// columns is the largest realistic one. Past this, the answer commits (no retry).
constexpr size_t kMaxHeld = 256 * 1024;

bool preliminary(char type) {
  switch (type) {
    case protocol::backend::kParseComplete:
    case protocol::backend::kBindComplete:
    case protocol::backend::kParameterDescription:
    case protocol::backend::kRowDescription:
    case protocol::backend::kNoData:
    case protocol::backend::kNoticeResponse:
    case protocol::backend::kParameterStatus:
      return true;
    default:
      return false;
  }
}

// Feeds the whole messages at the start of `bytes` to the observer.
void observe_all(std::string_view bytes, BackendObserver& observer) {
  size_t pos = 0;
  while (bytes.size() - pos >= protocol::kHeaderSize) {
    const uint32_t len = protocol::read_u32(bytes.data() + pos + 1);
    if (len < 4 || bytes.size() - pos < size_t{len} + 1) break;
    protocol::Header h;
    h.type = bytes[pos];
    h.length = len;
    observer.on_backend(h, bytes.substr(pos + protocol::kHeaderSize, len - 4));
    pos += size_t{len} + 1;
  }
}

}  // namespace

bool is_availability_error(std::string_view s) {
  if (s.size() != 5) return false;
  return s.starts_with("08") ||  // connection exception
         s.starts_with("53") ||  // insufficient resources (too many connections, out of memory)
         s.starts_with("57P") ||  // admin/crash shutdown, cannot connect now
         s == "3D000" ||          // database does not exist (on this target)
         s == "28000" || s == "28P01" ||  // pgtandem's credentials refused there
         s == "25006";  // read-only transaction (a standby promoted away)
}

asio::awaitable<RoutedReadResult> serve_routed_read(Socket& server, std::vector<char>& rbuf,
                                                    size_t& rend, std::string_view request,
                                                    uint32_t injected, bool retry_errors,
                                                    Socket& client,
                                                    const protocol::Limits& limits,
                                                    BackendObserver& observer) {
  RoutedReadResult result;
  {
    auto [ec, n] = co_await asio::async_write(server, asio::buffer(request), kNoThrow);
    if (ec) {
      result.outcome = RoutedReadOutcome::kRetry;
      result.reason = "connection_lost";
      result.connection_usable = false;
      co_return result;
    }
  }

  protocol::FrameScanner scanner(protocol::Direction::kBackend, limits, kKeepLimit);
  std::string held;
  bool committed = false;
  bool failed = false;  // an error before commit: drain to ReadyForQuery, then retry

  size_t drop_front = 0;  // bytes of injected answers at the front of held + chunk

  struct Visitor {
    BackendObserver* observer;
    bool committed;
    bool failed;
    uint32_t* injected;
    size_t* drop_front;
    bool retry_errors;
    bool decisive = false;  // stopped at the message that decides (commit or fail)
    bool ready = false;
    bool error_seen = false;
    std::string sqlstate = {};
    bool on_message(const protocol::Header& h, std::string_view body) {
      if (h.type == protocol::backend::kErrorResponse) {
        error_seen = true;
        if (!committed && !failed && retry_errors) {
          protocol::ErrorResponse e;
          if (protocol::decode(body, e)) sqlstate = std::string(e.sqlstate());
          failed = true;
          decisive = true;
        }
      }
      if (h.type == protocol::backend::kReadyForQuery) {
        ready = true;
        if (committed) observer->on_backend(h, body);
        return false;
      }
      if (committed) {
        observer->on_backend(h, body);
        return true;
      }
      if (failed) return true;  // drained, never forwarded
      if (*injected > 0 && (h.type == protocol::backend::kParseComplete ||
                            h.type == protocol::backend::kCloseComplete)) {
        --*injected;
        *drop_front += h.frame_size();
        return true;
      }
      if (preliminary(h.type)) return true;
      decisive = true;
      return false;  // the caller commits, then goes on
    }
    bool on_stream_start(const protocol::Header&) {
      if (!committed && !failed) decisive = true;
      return !decisive;
    }
  };

  for (;;) {
    if (rend > 0) {
      Visitor v{&observer, committed, failed, &injected, &drop_front, retry_errors};
      auto r = scanner.scan(std::string_view(rbuf.data(), rend), v);
      if (r.status == protocol::Status::kInvalid) {
        result.connection_usable = false;
        result.outcome = committed ? RoutedReadOutcome::kBrokenAfterCommit : RoutedReadOutcome::kRetry;
        result.reason = "connection_lost";
        co_return result;
      }
      std::string_view chunk(rbuf.data(), r.forward);
      if (v.error_seen && committed) result.error_in_answer = true;
      if (!committed && !failed) {
        if (v.failed) {
          failed = true;
          result.sqlstate = v.sqlstate;
        } else if (v.decisive || v.ready || held.size() + chunk.size() > kMaxHeld) {
          // The answer commits: what was held, then this chunk, in order.
          committed = true;
          held.append(chunk);
          const std::string_view answer = std::string_view(held).substr(drop_front);
          observe_all(answer, observer);
          auto [ec, n] = co_await asio::async_write(client, asio::buffer(answer), kNoThrow);
          held.clear();
          if (ec) {
            result.outcome = RoutedReadOutcome::kClientGone;
            result.connection_usable = false;
            co_return result;
          }
          chunk = {};
        } else {
          held.append(chunk);
          chunk = {};
        }
      }
      if (committed && !chunk.empty()) {
        auto [ec, n] = co_await asio::async_write(client, asio::buffer(chunk), kNoThrow);
        if (ec) {
          result.outcome = RoutedReadOutcome::kClientGone;
          result.connection_usable = false;
          co_return result;
        }
      }
      rend -= r.forward;
      if (rend > 0) std::memmove(rbuf.data(), rbuf.data() + r.forward, rend);
      if (v.ready) {
        if (failed) {
          result.outcome = RoutedReadOutcome::kRetry;
          result.reason = is_availability_error(result.sqlstate) ? "unavailable" : "error";
        }
        co_return result;
      }
      if (r.forward > 0) continue;  // the scan stopped at a decisive message: go on from there
    }
    if (rend == rbuf.size()) rbuf.resize(rbuf.size() * 2);  // a kept message larger than the buffer
    auto [ec, n] = co_await server.async_read_some(
        asio::buffer(rbuf.data() + rend, rbuf.size() - rend), kNoThrow);
    if (ec) {
      result.connection_usable = false;
      if (committed) {
        result.outcome = RoutedReadOutcome::kBrokenAfterCommit;
      } else {
        result.outcome = RoutedReadOutcome::kRetry;
        result.reason = failed && !is_availability_error(result.sqlstate) ? "error" : "connection_lost";
      }
      co_return result;
    }
    rend += n;
  }
}

}  // namespace pgtandem::proxy

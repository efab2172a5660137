// The replay engine's wire exchange (replay_wire.h).
#include "proxy/mirror/replay_wire.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "protocol/framing.h"
#include "protocol/messages.h"

namespace pgtandem::proxy::replay_detail {
namespace {

using namespace asio::experimental::awaitable_operators;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr size_t kReadChunk = 16 * 1024;

asio::awaitable<void> send_part(Socket& s, std::string_view out, boost::system::error_code* ec) {
  auto [e, n] = co_await asio::async_write(s, asio::buffer(out.data(), out.size()), kNoThrow);
  (void)n;
  *ec = e;
  if (e) {
    boost::system::error_code ignored;
    s.cancel(ignored);  // wake the reader
  }
}

// Why reading stopped; wakes the writer, which would otherwise wait for a server that is gone.
void receive_failed(Socket& s, Exchange* r, std::string what) {
  r->error = std::move(what);
  boost::system::error_code ignored;
  s.cancel(ignored);
}

// Consumes the whole messages at the start of `buf`; true once `want` ReadyForQuery arrived or
// on a failure (r->error).
bool consume_answers(Socket& s, std::string& buf, uint32_t want, Exchange* r) {
  const protocol::Limits limits;
  size_t pos = 0;
  bool done = false;
  while (!done) {
    auto h = protocol::decode_header(std::string_view(buf).substr(pos),
                                     protocol::Direction::kBackend, limits);
    if (h.status == protocol::Status::kInvalid) {
      receive_failed(s, r, "invalid message from the server");
      return true;
    }
    if (h.status == protocol::Status::kNeedMore || buf.size() - pos < h.header.frame_size()) break;
    std::string_view body(buf.data() + pos + protocol::kHeaderSize, h.header.body_size());
    pos += h.header.frame_size();
    switch (h.header.type) {
      case protocol::backend::kCommandComplete: {
        protocol::CommandComplete c;
        if (!protocol::decode(body, c)) {
          receive_failed(s, r, "malformed CommandComplete from the server");
          return true;
        }
        r->outcomes.push_back(Outcome{std::string(c.tag), ""});
        break;
      }
      case protocol::backend::kErrorResponse: {
        protocol::ErrorResponse e;
        if (!protocol::decode(body, e)) {
          receive_failed(s, r, "malformed ErrorResponse from the server");
          return true;
        }
        r->outcomes.push_back(Outcome{"", std::string(e.sqlstate())});
        r->errors.push_back(std::string(e.sqlstate()) + ": " + std::string(e.message()));
        break;
      }
      case protocol::backend::kReadyForQuery: {
        protocol::ReadyForQuery z;
        if (!protocol::decode(body, z)) {
          receive_failed(s, r, "malformed ReadyForQuery from the server");
          return true;
        }
        r->status = z.status;
        r->readies.emplace_back(r->outcomes.size(), z.status);
        if (++r->ready == want) {
          r->ok = true;
          done = true;
        }
        break;
      }
      case protocol::backend::kDataRow: {
        protocol::DataRow row;
        if (protocol::decode(body, row)) {
          for (const auto& v : row.columns) {
            r->first_values.emplace_back(v.data);
            break;
          }
        }
        break;
      }
      default:
        break;  // ParseComplete, NoticeResponse, CopyInResponse, ...: not outcomes
    }
  }
  buf.erase(0, pos);
  return done;
}

asio::awaitable<void> receive_part(Socket& s, std::string& buf, uint32_t want, Exchange* r) {
  std::string chunk(kReadChunk, '\0');
  while (!consume_answers(s, buf, want, r)) {
    auto [ec, n] = co_await s.async_read_some(asio::buffer(chunk), kNoThrow);
    if (ec) {
      receive_failed(
          s, r,
          ec == asio::error::eof ? "the server closed the connection" : "read: " + ec.message());
      co_return;
    }
    buf.append(chunk.data(), n);
  }
}

}  // namespace

asio::awaitable<Exchange> exchange(Socket& s, std::string& buf, std::string_view out, uint32_t want,
                                   std::chrono::milliseconds timeout) {
  Exchange r;
  boost::system::error_code wec;
  // Sending and reading at once: a unit with many statements can produce more answers than the
  // socket buffers hold before the server has read all of it.
  if (timeout.count() > 0) {
    asio::steady_timer timer(co_await asio::this_coro::executor, timeout);
    auto v = co_await ((send_part(s, out, &wec) && receive_part(s, buf, want, &r)) ||
                       timer.async_wait(kNoThrow));
    if (v.index() == 1) {
      r.ok = false;
      r.error = "timed out after " + std::to_string(timeout.count()) + " ms";
      co_return r;
    }
  } else {
    co_await (send_part(s, out, &wec) && receive_part(s, buf, want, &r));
  }
  if (wec) {
    r.ok = false;
    r.error = "write: " + wec.message();
  }
  co_return r;
}

}  // namespace pgtandem::proxy::replay_detail

#include "proxy/session.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <sys/socket.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <string>

#include "protocol/errors.h"
#include "protocol/message_types.h"
#include "protocol/startup.h"
#include "proxy/log.h"
#include "proxy/mirror.h"
#include "proxy/upstream.h"
#include "routing/write_capture.h"

namespace pgtandem::proxy {
namespace {

using namespace asio::experimental::awaitable_operators;
using protocol::FrameScanner;
using protocol::Header;
using protocol::Status;
using Clock = std::chrono::steady_clock;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

// Per-direction buffers. Messages up to kKeepLimit are seen whole (policy can read them); larger
// ones stream through in buffer-sized pieces, so a 500 MB result never costs more than this.
constexpr size_t kFrontendBufferSize = 16 * 1024;
constexpr size_t kBackendBufferSize = 32 * 1024;
constexpr size_t kKeepLimit = 8 * 1024;
// During login, messages are small; anything larger than this is streamed and ends the login
// relay (the server itself will reject it).
constexpr size_t kAuthKeepLimit = 70 * 1024;

enum class AuthResult { kReady, kDone };

class Session {
 public:
  Session(Worker& worker, Socket client)
      : worker_(worker),
        state_(worker.state()),
        stats_(worker.stats()),
        client_(std::move(client)),
        backend_(worker.io()) {}

  asio::awaitable<void> run();

 private:
  asio::awaitable<AuthResult> startup_and_login();
  asio::awaitable<bool> fill(size_t n);
  asio::awaitable<void> answer_and_close(const std::string& bytes);
  asio::awaitable<void> answer_startup_error(protocol::StartupError error,
                                             const protocol::StartupMessage& msg);
  asio::awaitable<void> forward_cancel(std::string_view packet);
  asio::awaitable<AuthResult> relay_login();
  asio::awaitable<void> deadline(std::chrono::milliseconds d);
  asio::awaitable<void> pump_frontend();
  asio::awaitable<void> pump_backend();
  void close_client();
  void close_backend();
  void release_login_slot();
  void start_mirror();
  void on_capture_ready();

  Worker& worker_;
  ServerState& state_;
  WorkerStats& stats_;
  Socket client_;
  Socket backend_;
  size_t target_ = 0;  // index of the target serving this session (the primary at login)

  std::string in_;            // startup/login bytes from the client not yet consumed
  std::string startup_packet_;
  std::string backend_login_leftover_;
  int32_t backend_pid_ = 0;
  int32_t backend_secret_ = 0;
  bool have_key_ = false;
  bool holds_login_slot_ = true;  // counted in ServerState::unauthenticated

  std::vector<char> fbuf_;  // grows past its initial size only to hold a whole message to mirror
  std::unique_ptr<char[]> bbuf_;
  size_t fend_ = 0;
  size_t bend_ = 0;

  // Request latency: the first request after idle starts the clock; the ReadyForQuery that
  // answers the last outstanding one stops it.
  uint32_t outstanding_ = 0;
  Clock::time_point request_start_{};

  // An error pgtandem itself must report (its own limits), injected at a message boundary only.
  std::string pending_fatal_;

  // Write mirroring: what the client sends and the primary answers feeds the capture, whose
  // released units go to the mirror link. Both are null when mirror_writes is off.
  std::unique_ptr<routing::WriteCapture> capture_;
  std::shared_ptr<const routing::VolatilityCatalog> catalog_;
  std::shared_ptr<MirrorLink> mirror_;
  uint64_t reported_skips_ = 0;
};

std::string fatal(std::string_view sqlstate, std::string_view message, std::string_view detail = {}) {
  std::string out;
  protocol::encode_error_response(out, protocol::Severity::kFatal, sqlstate, message, detail);
  return out;
}

asio::awaitable<void> Session::run() {
  ServerState& st = state_;
  const auto& limits = st.config->limits;
  st.metrics->session_started();

  AuthResult login = AuthResult::kDone;
  {
    auto r = co_await (startup_and_login() ||
                       deadline(std::chrono::milliseconds(limits.startup_timeout_ms)));
    if (r.index() == 0) {
      login = std::get<0>(r);
    } else {
      st.metrics->rejected(RejectReason::kStartupTimeout);
      log::debug("startup timeout");
    }
  }
  release_login_slot();
  if (login != AuthResult::kReady) {
    close_backend();
    close_client();
    co_return;
  }

  if (have_key_) st.cancels.add(backend_pid_, backend_secret_, target_);
  if (st.config->mirror_writes) start_mirror();
  fbuf_.resize(kFrontendBufferSize);
  bbuf_ = std::make_unique_for_overwrite<char[]>(kBackendBufferSize);
  // Bytes the client sent right behind its last login message belong to the session.
  if (!in_.empty() && in_.size() <= kFrontendBufferSize) {
    std::memcpy(fbuf_.data(), in_.data(), in_.size());
    fend_ = in_.size();
  }
  if (!backend_login_leftover_.empty() && backend_login_leftover_.size() <= kBackendBufferSize) {
    std::memcpy(bbuf_.get(), backend_login_leftover_.data(), backend_login_leftover_.size());
    bend_ = backend_login_leftover_.size();
  }
  in_.clear();
  in_.shrink_to_fit();
  backend_login_leftover_.clear();
  backend_login_leftover_.shrink_to_fit();

  co_await (pump_frontend() && pump_backend());

  // The mirror applies what it was given even after the client left.
  if (mirror_) mirror_->finish();
  if (have_key_) st.cancels.remove(backend_pid_, backend_secret_);
  close_backend();
  close_client();
}

void Session::start_mirror() {
  protocol::StartupMessage startup;
  if (protocol::parse_startup_message(startup_packet_, startup) != protocol::StartupError::kNone) {
    return;  // cannot happen: the same packet passed this check at login
  }
  // A replication connection streams WAL; there is nothing to mirror.
  if (const std::string_view rep = startup.find("replication"); !rep.empty()) {
    bool on = false;
    if (rep == "database" || (protocol::parse_server_bool(rep, on) && on)) return;
  }
  MirrorContext ctx;
  ctx.session_id = state_.process_tag + "-" +
                   std::to_string(state_.next_session.fetch_add(1, std::memory_order_relaxed));
  ctx.user = std::string(startup.user());
  ctx.database = std::string(startup.database());
  for (const auto& [k, v] : startup.params) {
    if (k == "user" || k == "database") continue;
    ctx.params.emplace_back(k, v);
  }
  routing::WriteCapture::Options opts;
  opts.classifier.functions = &state_.functions;
  catalog_ = state_.catalog.load(std::memory_order_acquire);
  opts.classifier.catalog = catalog_.get();
  opts.classifier.generation = catalog_ ? 1 : 0;
  opts.classifier.unknown_function_is_write = state_.config->classifier.unknown_function_is_write;
  opts.cache = &worker_.classification_cache();
  capture_ = std::make_unique<routing::WriteCapture>(opts);
  mirror_ = MirrorLink::start(worker_, std::move(ctx), state_.secondary);
}

void Session::on_capture_ready() {
  mirror_->push(capture_->take(), *capture_);
  const uint64_t skips = capture_->stats().skipped_rollback;
  for (; reported_skips_ < skips; ++reported_skips_) {
    state_.metrics->mirror_write(MirrorOutcome::kSkippedRollback);
  }
}

asio::awaitable<void> Session::deadline(std::chrono::milliseconds d) {
  asio::steady_timer timer(worker_.io(), d);
  co_await timer.async_wait(kNoThrow);
}

void Session::release_login_slot() {
  if (!holds_login_slot_) return;
  holds_login_slot_ = false;
  state_.unauthenticated.fetch_sub(1, std::memory_order_relaxed);
}

void Session::close_client() {
  boost::system::error_code ec;
  client_.close(ec);
}

void Session::close_backend() {
  boost::system::error_code ec;
  backend_.close(ec);
}

// Reads from the client until in_ holds at least n bytes; false on EOF or error.
asio::awaitable<bool> Session::fill(size_t n) {
  char tmp[4096];
  while (in_.size() < n) {
    auto [ec, got] = co_await client_.async_read_some(asio::buffer(tmp), kNoThrow);
    if (ec) co_return false;
    in_.append(tmp, got);
  }
  co_return true;
}

asio::awaitable<void> Session::answer_and_close(const std::string& bytes) {
  if (!bytes.empty()) co_await asio::async_write(client_, asio::buffer(bytes), kNoThrow);
  close_client();
}

// Answers a bad startup packet exactly as the server would: its FATAL, or a silent close.
asio::awaitable<void> Session::answer_startup_error(protocol::StartupError error,
                                                    const protocol::StartupMessage& msg) {
  std::string out;
  protocol::answer_startup_error(error, msg, out);
  co_await answer_and_close(out);
}

asio::awaitable<AuthResult> Session::startup_and_login() {
  bool ssl_done = false;
  bool gss_done = false;
  for (;;) {
    // The server judges the length word as soon as it has it, so do we.
    if (!co_await fill(4)) co_return AuthResult::kDone;
    auto frame = protocol::decode_startup_frame(in_);
    if (frame.status == Status::kNeedMore) {
      if (!co_await fill(8)) co_return AuthResult::kDone;
      frame = protocol::decode_startup_frame(in_);
    }
    if (frame.status == Status::kInvalid) {
      state_.metrics->protocol_error(ProtocolErrorKind::kClientStartup);
      co_await answer_startup_error(frame.error, {});
      co_return AuthResult::kDone;
    }
    if (!co_await fill(frame.length)) co_return AuthResult::kDone;
    const std::string_view packet = std::string_view(in_).substr(0, frame.length);

    switch (protocol::classify_startup_code(frame.code, ssl_done, gss_done)) {
      case protocol::StartupKind::kCancelRequest:
        co_await forward_cancel(packet);
        co_return AuthResult::kDone;
      case protocol::StartupKind::kSslRequest:
      case protocol::StartupKind::kGssEncRequest: {
        const auto kind = protocol::classify_startup_code(frame.code, ssl_done, gss_done);
        // TLS and GSS encryption are not offered (yet): 'N' lets the client go on in clear
        // text, exactly as a server without ssl=on answers.
        static const char kNo = 'N';
        auto [ec, n] = co_await asio::async_write(client_, asio::buffer(&kNo, 1), kNoThrow);
        if (ec) co_return AuthResult::kDone;
        // Bytes sent with the request, before our answer, would have travelled unencrypted had
        // we said yes; the server refuses them for that reason (CVE-2021-23214), and so do we.
        auto err = protocol::check_after_encryption_request(kind, in_.size() - frame.length);
        if (err != protocol::StartupError::kNone) {
          state_.metrics->protocol_error(ProtocolErrorKind::kClientStartup);
          co_await answer_startup_error(err, {});
          co_return AuthResult::kDone;
        }
        (kind == protocol::StartupKind::kSslRequest ? ssl_done : gss_done) = true;
        in_.erase(0, frame.length);
        continue;
      }
      case protocol::StartupKind::kStartupMessage:
        break;
    }

    protocol::StartupMessage msg;
    auto err = protocol::parse_startup_message(packet, msg);
    if (err != protocol::StartupError::kNone) {
      state_.metrics->protocol_error(ProtocolErrorKind::kClientStartup);
      co_await answer_startup_error(err, msg);
      co_return AuthResult::kDone;
    }
    startup_packet_.assign(packet);
    in_.erase(0, frame.length);
    break;
  }

  // Log in on the primary with the client's own startup packet, byte for byte: every parameter
  // (options, application_name, _pq_ extensions) reaches the server, which also answers any
  // protocol version negotiation itself.
  target_ = state_.primary;
  const TargetEndpoint& target = state_.targets[target_];
  backend_ = Socket(worker_.io());
  auto ec = co_await connect_target(
      backend_, target, std::chrono::milliseconds(state_.config->limits.connect_timeout_ms));
  if (ec) {
    state_.metrics->upstream_connect_failed(target_);
    log::warn("target unavailable", {{"target", target.name},
                                     {"address", target.description},
                                     {"error", ec.message()}});
    co_await answer_and_close(
        fatal("08006",
              "pgtandem: target \"" + target.name + "\" (" + target.description +
                  ") is unavailable: " + ec.message(),
              "The proxy could not connect to the primary database server."));
    co_return AuthResult::kDone;
  }
  co_return co_await relay_login();
}

// Relays the login exchange between client and primary: the server leads, the client answers each
// authentication request that wants an answer. Ends at the first ReadyForQuery.
asio::awaitable<AuthResult> Session::relay_login() {
  {
    auto [ec, n] = co_await asio::async_write(backend_, asio::buffer(startup_packet_), kNoThrow);
    if (ec) co_return AuthResult::kDone;
  }
  const protocol::Limits& limits = state_.limits;
  FrameScanner backend_scan(protocol::Direction::kBackend, limits, kAuthKeepLimit);
  std::string bin;
  char tmp[8192];

  struct LoginVisitor {
    Session* s;
    bool ready = false;
    bool failed = false;
    bool wants_answer = false;
    bool streamed = false;
    bool on_message(const Header& h, std::string_view body) {
      switch (h.type) {
        case protocol::backend::kAuthentication:
          if (body.size() >= 4) {
            uint32_t code = protocol::read_u32(body.data());
            // 0 Ok and 12 SASLFinal need no answer; every other request does.
            wants_answer = code != 0 && code != 12;
          }
          return !wants_answer;
        case protocol::backend::kBackendKeyData:
          if (body.size() >= 8) {
            s->backend_pid_ = static_cast<int32_t>(protocol::read_u32(body.data()));
            s->backend_secret_ = static_cast<int32_t>(protocol::read_u32(body.data() + 4));
            s->have_key_ = true;
          }
          return true;
        case protocol::backend::kErrorResponse:
          failed = true;
          return true;
        case protocol::backend::kReadyForQuery:
          ready = true;
          return false;
        default:
          return true;
      }
    }
    bool on_stream_start(const Header&) {
      streamed = true;
      return false;
    }
  };

  for (;;) {
    LoginVisitor v{this};
    auto [ec, n] = co_await backend_.async_read_some(asio::buffer(tmp), kNoThrow);
    if (ec) {
      // The server closed (after an ErrorResponse, or it died): pass on what it sent.
      if (!bin.empty()) co_await asio::async_write(client_, asio::buffer(bin), kNoThrow);
      co_return AuthResult::kDone;
    }
    bin.append(tmp, n);
    size_t scanned = 0;
    while (scanned < bin.size()) {
      v.wants_answer = false;
      auto r = backend_scan.scan(std::string_view(bin).substr(scanned), v);
      if (r.status == Status::kInvalid) {
        state_.metrics->protocol_error(ProtocolErrorKind::kBackendFraming);
        co_return AuthResult::kDone;
      }
      // Logged in: the slot is free before the client can see ReadyForQuery and open the next
      // connection.
      if (v.ready) release_login_slot();
      if (r.forward > 0) {
        auto [wec, wn] = co_await asio::async_write(
            client_, asio::buffer(bin.data() + scanned, r.forward), kNoThrow);
        if (wec) co_return AuthResult::kDone;
        stats_.bytes[kBackendDir].add(r.forward);
      }
      scanned += r.forward;
      if (v.ready) {
        backend_login_leftover_.assign(bin, scanned);
        co_return AuthResult::kReady;
      }
      if (v.streamed) co_return AuthResult::kDone;
      if (v.wants_answer) {
        // Relay one client message (the answer). Anything malformed goes to the server as is:
        // its reply is the right one.
        FrameScanner front(protocol::Direction::kFrontend, limits, kAuthKeepLimit);
        struct One {
          bool done = false;
          bool on_message(const Header&, std::string_view) { return !(done = true); }
          bool on_stream_start(const Header&) { return !(done = true); }
        };
        for (;;) {
          One one;
          auto fr = front.scan(in_, one);
          size_t send = fr.forward;
          if (fr.status == Status::kInvalid) send = std::min<size_t>(in_.size(), fr.forward + 5);
          if (send > 0) {
            auto [wec, wn] = co_await asio::async_write(backend_, asio::buffer(in_.data(), send),
                                                        kNoThrow);
            if (wec) co_return AuthResult::kDone;
            in_.erase(0, send);
          }
          if (one.done || fr.status == Status::kInvalid) break;
          auto [rec, rn] = co_await client_.async_read_some(asio::buffer(tmp), kNoThrow);
          if (rec) co_return AuthResult::kDone;
          in_.append(tmp, rn);
        }
      }
      if (r.forward == 0) break;  // need more bytes from the backend
    }
    bin.erase(0, scanned);
  }
}

asio::awaitable<void> Session::forward_cancel(std::string_view packet) {
  protocol::CancelRequest key;
  if (!protocol::parse_cancel_request(packet, key)) {
    // Wrong length: the server logs "invalid length of startup packet" and closes silently.
    state_.metrics->protocol_error(ProtocolErrorKind::kClientStartup);
    co_return;
  }
  size_t target = state_.primary;
  bool local = state_.cancels.find(key.process_id, key.secret_key, &target);
  state_.metrics->cancel_request(local);
  // The key is the server's own, so the request is forwarded unchanged; a session on another
  // pgtandem replica is on the primary too, and the server ignores keys it does not know.
  Socket s(worker_.io());
  auto ec = co_await connect_target(s, state_.targets[target],
                                    std::chrono::milliseconds(state_.config->limits.connect_timeout_ms));
  if (ec) {
    state_.metrics->upstream_connect_failed(target);
    co_return;
  }
  co_await asio::async_write(s, asio::buffer(packet), kNoThrow);
  // The server closes once it has delivered the signal; waiting for that keeps PQcancel's promise
  // that the cancel was processed when it returns.
  char tmp[64];
  auto r = co_await (s.async_read_some(asio::buffer(tmp), kNoThrow) ||
                     deadline(std::chrono::milliseconds(state_.config->limits.connect_timeout_ms)));
  (void)r;
}

asio::awaitable<void> Session::pump_frontend() {
  // With mirroring on, every message must be seen whole (its bytes go to the mirror), so the
  // keep limit is the message size limit and the buffer grows for a large statement; otherwise
  // large messages stream through the fixed buffer untouched.
  const size_t keep_limit =
      capture_ ? size_t{state_.limits.max_message_size} + 1 : kKeepLimit;
  FrameScanner scanner(protocol::Direction::kFrontend, state_.limits, keep_limit);
  size_t end = fend_;
  bool unscanned = end > 0;
  const bool block_on_full = mirror_ && state_.config->mirror.overflow == "block";

  struct Visitor {
    Session* s;
    uint64_t messages = 0;
    bool terminate = false;
    void request() {
      if (s->outstanding_++ == 0) s->request_start_ = Clock::now();
    }
    bool on_message(const Header& h, std::string_view body) {
      ++messages;
      if (s->capture_) {
        s->capture_->on_frontend(
            h, std::string_view(body.data() - protocol::kHeaderSize, body.size() + protocol::kHeaderSize));
      }
      switch (h.type) {
        case protocol::frontend::kQuery:
        case protocol::frontend::kSync:
        case protocol::frontend::kFunctionCall:
          request();
          return true;
        case protocol::frontend::kTerminate:
          terminate = true;
          return false;
        default:
          return true;
      }
    }
    bool on_stream_start(const Header& h) {
      ++messages;
      switch (h.type) {
        case protocol::frontend::kQuery:
        case protocol::frontend::kSync:
        case protocol::frontend::kFunctionCall:
          request();
          return true;
        default:
          return true;
      }
    }
  };

  for (;;) {
    if (block_on_full) {
      // overflow = "block": the client's next request waits until the mirror has room.
      while (mirror_->over_limit()) {
        asio::steady_timer t(worker_.io(), std::chrono::milliseconds(1));
        co_await t.async_wait(kNoThrow);
      }
    }
    if (!unscanned) {
      auto [ec, n] = co_await client_.async_read_some(
          asio::buffer(fbuf_.data() + end, fbuf_.size() - end), kNoThrow);
      if (ec) {
        // The client is gone. Closing the server connection (never a forged Terminate in the
        // middle of a message) makes the server roll back an open transaction, as it would
        // for a client that vanished on a direct connection.
        close_backend();
        co_return;
      }
      end += n;
    }
    unscanned = false;
    char* buf = fbuf_.data();
    Visitor v{this};
    auto r = scanner.scan(std::string_view(buf, end), v);
    size_t send = r.forward;
    bool stop = v.terminate;
    if (r.status == Status::kInvalid) {
      state_.metrics->protocol_error(ProtocolErrorKind::kClientFraming);
      stop = true;
      protocol::Limits server_limits;  // the server's own caps
      auto server_view = protocol::decode_header(std::string_view(buf + r.forward, end - r.forward),
                                                 protocol::Direction::kFrontend, server_limits);
      if (server_view.status == Status::kInvalid) {
        // The server would reject this message too: hand it the offending header so the client
        // gets the server's own answer (or its silent close), in order after earlier replies.
        send = std::min(end, r.forward + protocol::kHeaderSize);
      } else {
        pending_fatal_ = fatal("08P01", "pgtandem: message of " +
                                            std::to_string(r.bad_header.length) +
                                            " bytes exceeds max_message_size");
      }
    }
    if (send > 0) {
      auto [ec, n] = co_await asio::async_write(backend_, asio::buffer(buf, send), kNoThrow);
      if (ec) {
        // The server is gone. The client is left to the other pump, which still delivers what
        // the server said last (say, FATAL 57P01 after pg_terminate_backend) and then closes.
        co_return;
      }
      stats_.bytes[kFrontendDir].add(send);
      stats_.messages[kFrontendDir].add(v.messages);
    }
    if (stop) {
      if (!pending_fatal_.empty()) close_backend();
      co_return;
    }
    end -= send;
    if (end > 0) std::memmove(buf, buf + send, end);
    if (end == fbuf_.size()) {
      // A kept message is larger than the buffer (mirroring only): grow, up to the limit.
      if (fbuf_.size() >= keep_limit) {
        close_backend();
        co_return;
      }
      fbuf_.resize(std::min(fbuf_.size() * 2, keep_limit));
    } else if (end == 0 && fbuf_.size() > 4 * kFrontendBufferSize) {
      fbuf_.resize(kFrontendBufferSize);
      fbuf_.shrink_to_fit();
    }
  }
}

asio::awaitable<void> Session::pump_backend() {
  FrameScanner scanner(protocol::Direction::kBackend, state_.limits, kKeepLimit);
  char* buf = bbuf_.get();
  size_t end = bend_;
  bool unscanned = end > 0;
  LatencyHistogram& latency = stats_.query_latency[target_];

  struct Visitor {
    Session* s;
    LatencyHistogram* latency;
    uint64_t messages = 0;
    bool on_message(const Header& h, std::string_view body) {
      ++messages;
      switch (h.type) {
        case protocol::backend::kReadyForQuery: {
          const auto now = Clock::now();
          if (s->outstanding_ > 0 && --s->outstanding_ == 0) latency->observe(now - s->request_start_);
          if (s->capture_ && s->capture_->on_backend(h, body, now)) s->on_capture_ready();
          return true;
        }
        case protocol::backend::kCommandComplete:
        case protocol::backend::kErrorResponse:
          if (s->capture_) s->capture_->on_backend(h, body, {});
          return true;
        default:
          return true;
      }
    }
    bool on_stream_start(const Header& h) {
      ++messages;
      if (s->capture_ && h.type == protocol::backend::kErrorResponse) {
        s->capture_->on_backend(h, {}, {});
      }
      return true;
    }
  };

  for (;;) {
    if (!unscanned) {
      auto [ec, n] = co_await backend_.async_read_some(
          asio::buffer(buf + end, kBackendBufferSize - end), kNoThrow);
      if (ec) break;
      end += n;
    }
    unscanned = false;
    Visitor v{this, &latency};
    auto r = scanner.scan(std::string_view(buf, end), v);
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
      auto [ec, n] = co_await asio::async_write(client_, asio::buffer(buf, r.forward), kNoThrow);
      if (ec) {
        close_backend();
        co_return;
      }
      stats_.bytes[kBackendDir].add(r.forward);
      stats_.messages[kBackendDir].add(v.messages);
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

}  // namespace

asio::awaitable<void> run_session(Worker& worker, Socket client) {
  Session session(worker, std::move(client));
  co_await session.run();
}

}  // namespace pgtandem::proxy

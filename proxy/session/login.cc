// Login: the startup packet (SSL/GSS requests, TLS termination), the relayed or file-mode
// authentication, and cancel requests forwarded to the server that runs the query.
#include "proxy/session/session_state.h"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <string>

#include "protocol/errors.h"
#include "protocol/message_types.h"
#include "protocol/messages.h"
#include "proxy/auth/auth_server.h"
#include "proxy/net/tls.h"
#include "proxy/net/upstream.h"
#include "proxy/telemetry/log.h"

namespace pgtandem::proxy::session {

using namespace asio::experimental::awaitable_operators;

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

// GCC 12 pairs this coroutine frame's operator delete with the aligned_alloc inside Asio's frame
// allocator (as in proxy/mirror/mirror_link.cc): a false positive, the frame is freed by Asio's
// matching deallocate.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
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
        if (kind == protocol::StartupKind::kSslRequest) {
          // TLS termination ([tls]): 'S', the handshake, then the startup again inside TLS.
          auto tls = state_.auth.client_tls.load(std::memory_order_acquire);
          if (tls && tls->context) {
            if (!co_await accept_tls(*tls, frame.length)) co_return AuthResult::kDone;
            ssl_done = true;
            continue;
          }
        }
        // TLS off ([tls] mode = "disable") or GSS encryption (never offered): 'N' lets the client
        // go on in clear text, exactly as a server without ssl=on answers.
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
    if (std::string refusal; refuse_without_tls(msg, &refusal)) {
      co_await answer_and_close(refusal);
      co_return AuthResult::kDone;
    }
    startup_packet_.assign(packet);
    in_.erase(0, frame.length);
    break;
  }

  // [auth] mode = "file": pgtandem authenticates the client itself and logs in to the primary
  // with its own credentials (auth_server.h); the session then goes on as after a relayed login.
  if (state_.config->auth.file_mode()) {
    FileLoginResult own = co_await file_login(worker_, client_, backend_, in_, startup_packet_,
                                              [this] { release_login_slot(); });
    if (!own.ok) co_return AuthResult::kDone;
    target_ = own.target;
    have_key_ = own.have_key;
    backend_pid_ = own.process_id;
    backend_secret_ = own.secret_key;
    backend_login_leftover_ = std::move(own.leftover);
    co_return AuthResult::kReady;
  }

  // Log in on the primary with the client's own startup packet, byte for byte: every parameter
  // (options, application_name, _pq_ extensions) reaches the server, which also answers any
  // protocol version negotiation itself.
  {
    // The primary of the config now (a reload may have flipped it).
    auto snap = state_.snapshot.load(std::memory_order_acquire);
    target_ = snap ? snap->primary : state_.primary;
  }
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
#pragma GCC diagnostic pop

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
    std::string_view sasl = {};  // an AuthenticationSASL body: the last message forwarded
    bool on_message(const Header& h, std::string_view body) {
      switch (h.type) {
        case protocol::backend::kAuthentication:
          if (body.size() >= 4) {
            uint32_t code = protocol::read_u32(body.data());
            if (code == protocol::kAuthSasl) sasl = body;
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
      v.sasl = {};
      auto r = backend_scan.scan(std::string_view(bin).substr(scanned), v);
      if (r.status == Status::kInvalid) {
        state_.metrics->protocol_error(ProtocolErrorKind::kBackendFraming);
        co_return AuthResult::kDone;
      }
      // Logged in: the slot is free before the client can see ReadyForQuery and open the next
      // connection.
      if (v.ready) release_login_slot();
      if (r.forward > 0) {
        // pgtandem terminates TLS, so a client's channel binding (SCRAM-SHA-256-PLUS) would bind
        // to pgtandem's certificate, never the server's: unless they are the same certificate,
        // the client is not offered it (docs/configuration.md, [tls]).
        std::string without_plus;
        if (!v.sasl.empty() && !tls_same_certificate(client_, backend_)) {
          const size_t at = r.forward - protocol::kHeaderSize - v.sasl.size();
          without_plus.assign(bin, scanned, at);
          if (!protocol::encode_sasl_without_mechanism(without_plus, v.sasl, "SCRAM-SHA-256-PLUS")) {
            without_plus.clear();
          }
        }
        auto [wec, wn] = co_await asio::async_write(
            client_,
            without_plus.empty() ? asio::buffer(bin.data() + scanned, r.forward)
                                 : asio::buffer(without_plus),
            kNoThrow);
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
        const bool relayed = co_await relay_login_answer(tmp, sizeof tmp);
        if (!relayed) co_return AuthResult::kDone;
      }
      if (r.forward == 0) break;  // need more bytes from the backend
    }
    bin.erase(0, scanned);
  }
}

// Relays one client message (the answer to an authentication request). Anything malformed goes
// to the server as is: its reply is the right one. False when the session must end.
asio::awaitable<bool> Session::relay_login_answer(char* tmp, size_t tmp_size) {
  const protocol::Limits& limits = state_.limits;
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
      if (wec) co_return false;
      in_.erase(0, send);
    }
    if (one.done || fr.status == Status::kInvalid) break;
    auto [rec, rn] = co_await client_.async_read_some(asio::buffer(tmp, tmp_size), kNoThrow);
    if (rec) co_return false;
    in_.append(tmp, rn);
  }
  co_return true;
}

// Answers an SSLRequest with 'S' and runs the handshake; false when the session must end.
asio::awaitable<bool> Session::accept_tls(const ClientTls& tls, size_t request_length) {
  static const char kYes = 'S';
  auto [ec, n] = co_await asio::async_write(client_, asio::buffer(&kYes, 1), kNoThrow);
  if (ec) co_return false;
  // Bytes sent with the request, before our answer, travelled unencrypted; the server refuses
  // them (CVE-2021-23214), and so do we, before the handshake could take them for TLS.
  auto err = protocol::check_after_encryption_request(protocol::StartupKind::kSslRequest,
                                                      in_.size() - request_length);
  if (err != protocol::StartupError::kNone) {
    state_.metrics->protocol_error(ProtocolErrorKind::kClientStartup);
    co_await answer_startup_error(err, {});
    co_return false;
  }
  in_.erase(0, request_length);
  // Bounded by the startup timeout, as the whole login is (run() cancels it).
  auto hec = co_await tls_accept(client_, tls.context);
  if (hec) {
    log::debug("client TLS handshake failed", {{"error", hec.message()}});
    close_client();
    co_return false;
  }
  co_return true;
}

// [tls] mode = "require": a TCP client that did not ask for TLS gets what a server whose pg_hba.conf
// has only hostssl lines answers. Unix-socket clients are local, as for the server's hostssl.
bool Session::refuse_without_tls(const protocol::StartupMessage& msg, std::string* fatal_out) {
  if (client_.tls()) return false;
  auto tls = state_.auth.client_tls.load(std::memory_order_acquire);
  if (!tls || tls->mode != ClientTls::Mode::kRequire) return false;
  boost::system::error_code ec;
  const Endpoint peer = client_.remote_endpoint(ec);
  if (ec) return true;
  char text[INET6_ADDRSTRLEN] = {};
  if (peer.data()->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(peer.data())->sin_addr, text, sizeof text);
  } else if (peer.data()->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(peer.data())->sin6_addr, text, sizeof text);
  } else {
    return false;
  }
  const std::string_view database = msg.database().empty() ? msg.user() : msg.database();
  *fatal_out = fatal(protocol::sqlstate::kInvalidAuthorizationSpecification,
                     "no pg_hba.conf entry for host \"" + std::string(text) + "\", user \"" +
                         std::string(msg.user()) + "\", database \"" + std::string(database) +
                         "\", no encryption",
                     "pgtandem's [tls] mode = \"require\" accepts TCP connections only with TLS.");
  log::debug("client without TLS refused", {{"client", text}});
  return true;
}

asio::awaitable<void> Session::forward_cancel(std::string_view packet) {
  protocol::CancelRequest key;
  if (!protocol::parse_cancel_request(packet, key)) {
    // Wrong length: the server logs "invalid length of startup packet" and closes silently.
    state_.metrics->protocol_error(ProtocolErrorKind::kClientStartup);
    co_return;
  }
  auto snap = state_.snapshot.load(std::memory_order_acquire);
  CancelRegistry::Entry entry{snap ? snap->primary : state_.primary, key.process_id, key.secret_key};
  bool local = state_.cancels.find(key.process_id, key.secret_key, &entry);
  state_.metrics->cancel_request(local);
  const size_t target = entry.target;
  // The key is the server's own, so the request is forwarded unchanged; a session on another
  // pgtandem replica is on the primary too, and the server ignores keys it does not know. A
  // session now served by another connection (a flip, a routed read) is cancelled with that
  // connection's key.
  std::string translated;
  if (entry.pid != key.process_id || entry.secret != key.secret_key) {
    protocol::encode_cancel_request(translated, {entry.pid, entry.secret});
    packet = translated;
  }
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

}  // namespace pgtandem::proxy::session

#include "proxy/session/session.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>

#include "protocol/errors.h"
#include "protocol/message_types.h"
#include "protocol/messages.h"
#include "protocol/startup.h"
#include "proxy/auth/auth_server.h"
#include "proxy/telemetry/log.h"
#include "proxy/mirror/mirror_link.h"
#include "proxy/session/routed_read.h"
#include "proxy/shadow/shadow_lane.h"
#include "proxy/net/tls.h"
#include "proxy/net/upstream.h"
#include "policy/route/route_rules.h"
#include "policy/route/route_safety.h"
#include "policy/shadow/shadow_policy.h"
#include "policy/shadow/shadow_request.h"
#include "policy/mirror/write_capture.h"

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
// A sampled read whose request is larger than this is not shadowed (its bytes are copied).
constexpr size_t kShadowMaxRequest = 64 * 1024;

// Whether a config shadows any read: its [shadow] rate or some rule's.
bool shadow_configured(const config::Config& c) {
  if (c.shadow.sample_rate > 0) return true;
  for (const auto& r : c.routes) {
    if (r.shadow_sample_rate && *r.shadow_sample_rate > 0) return true;
  }
  return false;
}

// MurmurHash3's fmix64: spreads a session's read counter over the key space.
uint64_t fmix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb53ca7b0a1b3ULL;
  k ^= k >> 33;
  return k;
}

enum class AuthResult { kReady, kDone };

class Session {
 public:
  Session(Worker& worker, Socket client)
      : worker_(worker),
        state_(worker.state()),
        stats_(worker.stats()),
        client_(std::move(client)),
        backend_(worker.io()),
        answered_(worker.io()),
        client_free_(worker.io()),
        flip_front_(worker.io()),
        flip_back_(worker.io()) {}

  asio::awaitable<void> run();

 private:
  asio::awaitable<AuthResult> startup_and_login();
  asio::awaitable<bool> accept_tls(const ClientTls& tls, size_t request_length);
  bool refuse_without_tls(const protocol::StartupMessage& msg, std::string* fatal_out);
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
  void start_secondary();
  void on_capture_ready();
  void refresh_snapshot();
  bool route_candidate(std::string_view sql);
  void refresh_shadow_settings();
  policy::ShadowSampler& shadow_sampler();
  void consider_shadow(std::string_view request, std::string_view sql, bool cursor);
  void on_shadow_answer(const Header& h, std::string_view body);
  asio::awaitable<bool> serve_routed(std::string_view request);
  bool rewrite_for_secondary(std::string_view request, bool prepare);
  asio::awaitable<void> lock_client();
  void unlock_client();
  asio::awaitable<bool> flip_primary(size_t to);
  asio::awaitable<bool> prepare_all_statements(Socket& server);
  asio::awaitable<void> park_backend();
  asio::awaitable<void> refuse_after_flip(std::string_view why);
  bool drain_idle(size_t buffered, bool batch_started) const;
  void log_request(std::string_view sql) const;
  struct RouteObserver;

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

  // Graceful shutdown (issue 6): the transaction status of the primary's last ReadyForQuery, and
  // the signal that cancels pump_frontend's wait for the client when pgtandem starts draining.
  char tx_status_ = 'I';
  asio::cancellation_signal drain_signal_;

  // Write mirroring: what the client sends and the primary answers feeds the capture, whose
  // released units go to the mirror link. Both are null when mirror_writes is off.
  std::unique_ptr<policy::WriteCapture> capture_;
  std::shared_ptr<const policy::VolatilityCatalog> catalog_;
  std::shared_ptr<MirrorLink> mirror_;
  uint64_t reported_skips_ = 0;
  // The mirror order's last number when the session's current transaction began (its first
  // request while idle): its unit is applied on the mirror after those (policy/mirror/mirror_order.h).
  uint64_t order_mark_ = 0;
  uint64_t reported_primary_only_ = 0;
  bool mirror_writes_ = false;  // units that write go to the link (else only session state)

  // Read routing (issue 4). The rules come from the config snapshot, picked up between requests
  // when nothing is outstanding (so never inside a transaction). A read routed away from the
  // primary is served on the mirror link's connection: it has the session's state replayed and,
  // once drained, the session's own writes (read-your-writes).
  std::shared_ptr<const ConfigSnapshot> snap_;
  uint64_t snap_generation_ = 0;
  policy::SessionInfo route_info_;
  std::optional<policy::RuleSet::SessionRoutes> routes_;
  bool pinned_ = false;            // temp table, advisory lock, LISTEN...: primary only
  bool wrote_unmirrored_ = false;  // wrote with mirror_writes off: the other target lacks it
  bool primary_is_old_ = true;
  policy::RouteDecision decision_;  // of the request being diverted
  // Named statements a routed read binds are prepared on the secondary lazily, once per
  // connection, under a name of pgtandem's own (so they never collide with the statements the
  // mirror applies there); the request's Bind/Describe are rewritten to use it.
  std::string routed_statement_;  // the named statement the diverted request binds ("" if none)
  std::string rewritten_;         // the request as sent to the secondary (reused buffer)
  std::unordered_set<std::string> link_prepared_;
  uint64_t link_epoch_ = 0;
  // The classification route_candidate() saw last (noise control for shadow reads).
  policy::Classification last_classification_;

  // Shadow reads (issue 5): a sampled read that stays on the primary runs on the link too, after
  // the primary answered. `shadow_` collects the primary's answer while it is being forwarded.
  bool shadowing_ = false;  // the snapshot's config shadows some reads
  std::shared_ptr<const policy::DigestOptions> shadow_options_;
  std::vector<std::shared_ptr<const policy::DigestOptions>> shadow_rule_options_;  // null: global
  std::shared_ptr<ShadowRead> shadow_;
  std::unique_ptr<ShadowLane> shadow_lane_;  // created with the first shadow read
  uint64_t shadow_seq_ = 0;
  // pump_frontend waits on `answered_` for the primary to answer what precedes a routed read;
  // pump_backend cancels it when outstanding_ drops. Writes to the client are serialised by
  // client_busy_ (pump_backend and a routed read never write at once).
  asio::steady_timer answered_;
  bool waiting_answers_ = false;
  asio::steady_timer client_free_;
  bool client_busy_ = false;
  bool client_waiters_ = false;

  // Primary flip (issue 4): the key of the connection serving the session now (the client's own
  // login until a flip), and the handshake that parks pump_backend while the connections swap.
  int32_t primary_pid_ = 0;
  int32_t primary_secret_ = 0;
  CancelRegistry::Entry primary_cancel_key() const {
    return {target_, primary_pid_, primary_secret_};
  }
  bool flipping_ = false;
  bool backend_parked_ = false;
  asio::steady_timer flip_front_;
  asio::steady_timer flip_back_;
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

  primary_pid_ = backend_pid_;
  primary_secret_ = backend_secret_;
  if (have_key_) st.cancels.add(backend_pid_, backend_secret_, target_);
  start_secondary();
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

  {
    DrainRegistration drain_registration(worker_, &drain_signal_);
    co_await (pump_frontend() && pump_backend());
  }

  // The mirror applies what it was given even after the client left.
  if (shadow_lane_) shadow_lane_->close();
  if (mirror_) mirror_->finish();
  if (have_key_) st.cancels.remove(backend_pid_, backend_secret_);
  close_backend();
  close_client();
}

void Session::start_secondary() {
  snap_ = state_.snapshot.load(std::memory_order_acquire);
  snap_generation_ = snap_ ? snap_->generation : 0;
  mirror_writes_ = snap_ ? snap_->config->mirror_writes : state_.config->mirror_writes;
  const bool routes = snap_ && snap_->rules && !snap_->rules->empty();
  refresh_shadow_settings();
  // A session that begins with neither mirroring, routes nor shadow reads needs no second leg; one
  // that begins with routes keeps its state on the link, so later reloads can route it.
  if (!mirror_writes_ && !routes && !shadowing_) return;
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
  policy::WriteCapture::Options opts;
  opts.classifier.functions = &state_.functions;
  catalog_ = state_.catalog.load(std::memory_order_acquire);
  opts.classifier.catalog = catalog_.get();
  opts.classifier.generation = catalog_ ? 1 : 0;
  opts.classifier.unknown_function_is_write = state_.config->classifier.unknown_function_is_write;
  opts.cache = &worker_.classification_cache();
  capture_ = std::make_unique<policy::WriteCapture>(opts);
  // The other target: the primary's mirror, and where reads are routed.
  mirror_ = MirrorLink::start(worker_, std::move(ctx), target_ == 0 ? 1 : 0);

  primary_is_old_ = state_.targets[target_].name == "old";
  route_info_.user = std::string(startup.user());
  route_info_.database = std::string(startup.database().empty() ? startup.user() : startup.database());
  route_info_.application_name = std::string(startup.find("application_name"));
  route_info_.session_key =
      (uint64_t{static_cast<uint32_t>(backend_pid_)} << 32) ^ static_cast<uint32_t>(backend_secret_);
  boost::system::error_code ec;
  const Endpoint peer = client_.remote_endpoint(ec);
  if (!ec && peer.data()->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(peer.data());
    route_info_.client = policy::IpAddress::from_v4(ntohl(in->sin_addr.s_addr));
  } else if (!ec && peer.data()->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(peer.data());
    route_info_.client = policy::IpAddress::from_v6(in6->sin6_addr.s6_addr);
  }
  if (route_info_.client) {
    char text[INET6_ADDRSTRLEN] = {};
    if (peer.data()->sa_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(peer.data())->sin_addr, text, sizeof text);
    } else {
      inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(peer.data())->sin6_addr, text, sizeof text);
    }
    route_info_.client_address = text;
  }
  if (snap_ && snap_->rules) routes_.emplace(snap_->rules->for_session(route_info_));
}

void Session::refresh_snapshot() {
  if (state_.snapshot_generation.load(std::memory_order_acquire) == snap_generation_) return;
  snap_ = state_.snapshot.load(std::memory_order_acquire);
  if (!snap_) return;
  snap_generation_ = snap_->generation;
  // Mirroring switched on or off by a reload applies from this transaction on (a session that
  // began with neither mirroring nor routes has no link, and keeps that until it reconnects).
  mirror_writes_ = snap_->config->mirror_writes;
  refresh_shadow_settings();
  routes_.reset();
  if (snap_->rules) routes_.emplace(snap_->rules->for_session(route_info_));
}

void Session::on_capture_ready() {
  auto units = capture_->take();
  if (!mirror_writes_) {
    // Routing without mirroring: only the session's state goes to the link (so reads routed there
    // see the same settings and prepared statements). A write is not applied there, so from now on
    // the other target lacks what this session wrote: its reads stay on the primary.
    std::erase_if(units, [&](const policy::MirrorUnit& u) {
      if (u.session_state) return false;
      // A committed read-only transaction (BEGIN ... COMMIT around reads) changed nothing.
      if (u.writes) wrote_unmirrored_ = true;
      return true;
    });
  }
  for (auto& u : units) u.after = order_mark_;
  if (!units.empty()) mirror_->push(std::move(units), *capture_);
  const uint64_t skips = capture_->stats().skipped_rollback;
  for (; reported_skips_ < skips; ++reported_skips_) {
    state_.metrics->mirror_write(MirrorOutcome::kSkippedRollback);
  }
  const uint64_t primary_only = capture_->stats().skipped_primary_only;
  for (; reported_primary_only_ < primary_only; ++reported_primary_only_) {
    state_.metrics->mirror_write(MirrorOutcome::kSkippedPrimaryOnly);
  }
  for (const auto& skip : capture_->take_skips()) {
    if (skip.lost_writes) {
      // The request also wrote (or its transaction did): the mirror lacks that now.
      log::warn("primary-only call not mirrored, with the writes of its request or transaction",
                {{"statement", skip.first_sql}});
    } else {
      log::debug("primary-only call not mirrored", {{"statement", skip.first_sql}});
    }
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
        if (kind == protocol::StartupKind::kSslRequest) {
          // TLS termination ([tls]): 'S', the handshake, then the startup again inside TLS.
          auto tls = state_.client_tls.load(std::memory_order_acquire);
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
  auto tls = state_.client_tls.load(std::memory_order_acquire);
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

// Whether a read may leave the primary, as far as the statement itself tells (the rest is decided
// when it is dispatched): a plain read that neither pins the session nor changes its state.
bool Session::route_candidate(std::string_view sql) {
  policy::ClassifierOptions opts;
  opts.functions = &state_.functions;
  opts.catalog = catalog_.get();
  opts.generation = catalog_ ? 1 : 0;
  opts.unknown_function_is_write = state_.config->classifier.unknown_function_is_write;
  opts.prepared = &capture_->prepared();
  // The capture classified this very text with the same options a moment ago (on_frontend runs
  // first): reuse that instead of hashing and looking the text up again.
  const policy::Classification* seen = capture_->classified(sql);
  const policy::Classification c =
      seen != nullptr ? *seen : policy::classify_cached(sql, opts, &worker_.classification_cache());
  last_classification_ = c;
  if (c.pins_session) pinned_ = true;
  if (c.session == policy::SessionOp::kDeallocateAll || c.session == policy::SessionOp::kDiscardAll) {
    link_prepared_.clear();  // mirrored there too (session state): prepare again when needed
  }
  return c.kind == policy::StatementKind::kRead && !c.pins_session &&
         (c.session == policy::SessionOp::kNone || c.session == policy::SessionOp::kShow) &&
         !c.uses_session_prepared;
}

void Session::refresh_shadow_settings() {
  const config::Config& c = snap_ ? *snap_->config : *state_.config;
  shadowing_ = shadow_configured(c);
  if (!shadowing_) {
    shadow_options_.reset();
    return;
  }
  auto options = std::make_shared<policy::DigestOptions>();
  options->ignore_columns = c.shadow.ignore_columns;
  options->float_significant_digits = c.shadow.float_significant_digits;
  options->float_absolute_tolerance = c.shadow.float_tolerance;
  options->ignore_column_order = c.shadow.ignore_column_order;
  // A rule's own comparison options (rule index = its place in [[routes]]) over [shadow]'s.
  shadow_rule_options_.assign(c.routes.size(), nullptr);
  for (size_t i = 0; i < c.routes.size(); ++i) {
    const config::Route& r = c.routes[i];
    if (!r.shadow_ignore_columns && !r.shadow_float_significant_digits &&
        !r.shadow_float_tolerance && !r.shadow_ignore_column_order) {
      continue;
    }
    auto own = std::make_shared<policy::DigestOptions>(*options);
    if (r.shadow_ignore_columns) own->ignore_columns = *r.shadow_ignore_columns;
    if (r.shadow_float_significant_digits) {
      own->float_significant_digits = r.shadow_float_significant_digits;
    }
    if (r.shadow_float_tolerance) own->float_absolute_tolerance = r.shadow_float_tolerance;
    if (r.shadow_ignore_column_order) own->ignore_column_order = *r.shadow_ignore_column_order;
    shadow_rule_options_[i] = std::move(own);
  }
  shadow_options_ = std::move(options);
}

policy::ShadowSampler& Session::shadow_sampler() {
  // One per worker thread: the rate limit takes no lock, and each worker admits its share of it.
  // Rebuilt when another config snapshot (or another server, in tests) asks.
  struct PerWorker {
    const ServerState* state = nullptr;
    uint64_t generation = 0;
    std::optional<policy::ShadowSampler> sampler;
  };
  thread_local PerWorker w;
  if (!w.sampler || w.state != &state_ || w.generation != snap_->generation) {
    const auto& c = *snap_->config;
    std::optional<policy::ShadowSampler::RateLimit> limit;
    if (c.shadow.max_per_second > 0) {
      const double share =
          c.shadow.max_per_second / static_cast<double>(std::max<size_t>(1, state_.workers.size()));
      limit = policy::ShadowSampler::RateLimit{share, std::max(1.0, share)};
    }
    w.sampler.emplace(c.routing.hash_seed, limit);
    w.state = &state_;
    w.generation = snap_->generation;
  }
  return *w.sampler;
}

// A read that stays on the primary: sample it, and if it is to be shadowed, collect the primary's
// answer (pump_backend) and run it on the link once that answer is complete.
void Session::consider_shadow(std::string_view request, std::string_view sql, bool cursor) {
  if (!mirror_ || !shadow_options_ || shadow_ || !snap_) return;
  const double rate = decision_.shadow_sample_rate.value_or(snap_->config->shadow.sample_rate);
  if (!(rate > 0)) return;
  // Only a read alone in flight and outside a transaction: the primary's next answer is its own,
  // and it saw what the other target holds once the session's writes are applied there.
  if (outstanding_ != 1 || capture_->in_transaction()) return;
  const uint64_t key = route_info_.session_key ^ fmix64(++shadow_seq_);
  switch (shadow_sampler().decide(key, rate, Clock::now())) {
    case policy::ShadowSampler::Outcome::kNotSampled:
      return;
    case policy::ShadowSampler::Outcome::kRateLimited:
      state_.metrics->shadow_drop("rate_limit");
      return;
    case policy::ShadowSampler::Outcome::kSampled:
      break;
  }
  std::string_view skip;
  policy::ReadShape shape;
  std::string shadow_request;
  if (cursor) {
    skip = "cursor";
  } else if (request.size() > kShadowMaxRequest) {
    skip = "too_large";
  } else if (last_classification_.multi_statement) {
    skip = "multi_statement";
  } else if (wrote_unmirrored_ || !mirror_->drained()) {
    skip = "writes_pending";  // the other target lacks (or does not yet have) the session's writes
  } else if (!policy::shadow_request(
                 request,
                 [this](std::string_view name) -> const std::string* {
                   return capture_ ? capture_->parse_message(name) : nullptr;
                 },
                 &shadow_request)) {
    skip = "named_statement";  // a statement pgtandem does not know the text of
  } else {
    shape = policy::analyze_read(sql, last_classification_);
    if (shape.nondeterministic != policy::NondeterministicReason::kNone) {
      skip = policy::to_string(shape.nondeterministic);
    }
  }
  if (!skip.empty()) {
    state_.metrics->shadow_skip(skip);
    return;
  }
  if (shadow_lane_ && shadow_lane_->full()) {
    state_.metrics->shadow_drop("queue_full");  // the other target is slower than the primary
    return;
  }
  std::shared_ptr<const policy::DigestOptions> options = shadow_options_;
  if (decision_.rule >= 0 && static_cast<size_t>(decision_.rule) < shadow_rule_options_.size() &&
      shadow_rule_options_[static_cast<size_t>(decision_.rule)]) {
    options = shadow_rule_options_[static_cast<size_t>(decision_.rule)];
  }
  auto read = std::make_shared<ShadowRead>(std::move(options), shape.top_level_order_by);
  read->request = std::move(shadow_request);
  read->statement.assign(sql);
  read->link_units = mirror_->pushed();
  read->rule = decision_.rule >= 0 && snap_->rules
                   ? snap_->rules->rule_name(static_cast<size_t>(decision_.rule))
                   : std::string("default");
  shadow_ = std::move(read);
}

// pump_backend: the primary's answer to the read being shadowed, up to its ReadyForQuery.
void Session::on_shadow_answer(const Header& h, std::string_view body) {
  if (h.type != protocol::backend::kReadyForQuery) {
    shadow_->on_primary(h, body);
    return;
  }
  std::shared_ptr<ShadowRead> read = std::move(shadow_);
  shadow_.reset();
  if (read->abandoned) {
    state_.metrics->shadow_skip("row_too_large");
    return;
  }
  if (body.empty() || body[0] != 'I') {
    state_.metrics->shadow_skip("transaction");
    return;
  }
  if (read->results != 1) {
    state_.metrics->shadow_skip("multi_statement");
    return;
  }
  const auto& c = snap_->config->shadow;
  ShadowRunOptions options;
  options.timeout_ms = c.statement_timeout_ms;
  options.mirror_writes = mirror_writes_;
  options.redact_values = c.redact_values;
  options.mismatch_log = c.mismatch_log;
  options.recheck_delay_ms = c.recheck_delay_ms;
  if (!shadow_lane_) shadow_lane_ = std::make_unique<ShadowLane>(worker_, mirror_);
  shadow_lane_->submit(std::move(read), std::move(options));
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
  const bool block_on_full = mirror_ && snap_ && snap_->config->mirror.overflow == "block";
  // An extended-protocol batch whose first messages went to the primary before its Sync arrived
  // belongs to the primary: only batches seen whole in one scan can be routed.
  bool batch_started_earlier = false;

  struct Visitor {
    Session* s;
    const char* base;
    bool routing;  // some rule may route this session's reads: look at each request
    bool batch_started_earlier;
    uint64_t messages = 0;
    bool terminate = false;
    // The request being scanned: where it began in the buffer, and whether it may be routed.
    size_t request_begin = 0;
    bool in_request = false;
    bool routable = true;
    bool parsed_unnamed = false;
    std::string_view sql = {};  // of the request's statement, for rules that look at it
    // Set when the scan stopped at the end of a request to serve on the secondary.
    bool divert = false;
    size_t divert_begin = 0;

    void request() {
      if (s->outstanding_++ == 0) s->request_start_ = Clock::now();
    }
    void begin(const Header&, std::string_view body) {
      if (in_request) return;
      in_request = true;
      request_begin = static_cast<size_t>(body.data() - protocol::kHeaderSize - base);
      routable = !batch_started_earlier;
      batch_started_earlier = false;
      parsed_unnamed = false;
      sql = {};
      s->routed_statement_.clear();
      s->last_classification_ = {};
    }
    // The request just ended (its last message's body is `last`): stop here if its statement may
    // leave the primary; else it may be shadowed.
    bool end_request(std::string_view last) {
      in_request = false;
      if (!routing || s->pinned_) return true;
      // A cursor is no routable read, but a sampled one is counted as a skipped shadow read.
      const bool cursor = !routable && s->shadowing_ &&
                          s->last_classification_.session == policy::SessionOp::kCursor;
      if (!routable && !cursor) return true;
      const auto& routes = *s->routes_;
      if (routes.depends_on_statement()) {
        policy::StatementInfo info(sql);
        s->decision_ = routes.decide(info);
      } else {
        s->decision_ = routes.fixed();
      }
      if (cursor) {
        s->consider_shadow({}, sql, true);
        return true;
      }
      if (!policy::routes_to_secondary(s->decision_.target, s->primary_is_old_)) {
        s->state_.metrics->route_decision(s->worker_.index(), s->snap_->generation,
                                          s->decision_.rule, s->target_);
        if (s->shadowing_) {
          const char* request_end = last.data() + last.size();
          s->consider_shadow(
              std::string_view(base + request_begin, static_cast<size_t>(request_end - base) -
                                                         request_begin),
              sql, false);
        }
        return true;
      }
      divert = true;
      divert_begin = request_begin;
      return false;
    }
    bool on_message(const Header& h, std::string_view body) {
      ++messages;
      if (s->capture_) {
        s->capture_->on_frontend(
            h, std::string_view(body.data() - protocol::kHeaderSize, body.size() + protocol::kHeaderSize));
      }
      begin(h, body);
      switch (h.type) {
        case protocol::frontend::kQuery:
          request();
          if (s->state_.log_statements.load(std::memory_order_relaxed)) {
            s->log_request(body.substr(0, body.empty() ? 0 : body.size() - 1));
          }
          if (routing) {
            std::string_view q = body.substr(0, body.empty() ? 0 : body.size() - 1);
            sql = q;
            routable = routable && s->route_candidate(q);
            return end_request(body);
          }
          in_request = false;
          return true;
        case protocol::frontend::kSync:
          request();
          if (routing) return end_request(body);
          in_request = false;
          return true;
        case protocol::frontend::kFunctionCall:
          request();
          in_request = false;
          return true;
        case protocol::frontend::kTerminate:
          terminate = true;
          return false;
        case protocol::frontend::kParse:
          if (s->state_.log_statements.load(std::memory_order_relaxed)) {
            protocol::Parse p;
            if (protocol::decode(body, p)) s->log_request(p.query);
          }
          if (routing) {
            protocol::Parse p;
            if (!protocol::decode(body, p) || !p.name.empty()) {
              // A named statement must exist on the primary: its Parse never leaves it. Its copy
              // on the secondary, if any, is stale now.
              routable = false;
              if (!p.query.empty()) s->route_candidate(p.query);  // pinning
              if (!p.name.empty() && !s->link_prepared_.empty()) {
                s->link_prepared_.erase(std::string(p.name));
              }
            } else {
              parsed_unnamed = true;
              if (sql.empty()) sql = p.query;
              routable = routable && s->route_candidate(p.query);
            }
          }
          return true;
        case protocol::frontend::kBind:
          if (routing && routable) {
            std::string_view portal, statement;
            if (!protocol::decode_bind_names(body, &portal, &statement) || !portal.empty()) {
              routable = false;
            } else if (statement.empty()) {
              routable = parsed_unnamed;  // the unnamed statement lives where its Parse went
            } else {
              const policy::Classification* c = s->capture_->prepared().find(statement);
              routable = c != nullptr && c->kind == policy::StatementKind::kRead &&
                         c->session == policy::SessionOp::kNone && !c->pins_session &&
                         s->capture_->parse_message(statement) != nullptr &&
                         (s->routed_statement_.empty() || s->routed_statement_ == statement);
              if (routable) s->routed_statement_.assign(statement);
              if (routable && sql.empty()) {
                if (const std::string* parse = s->capture_->parse_message(statement)) {
                  protocol::Parse p;
                  if (parse->size() > protocol::kHeaderSize &&
                      protocol::decode(std::string_view(*parse).substr(protocol::kHeaderSize), p)) {
                    sql = p.query;
                  }
                }
              }
            }
          }
          return true;
        case protocol::frontend::kDescribe:
          if (routing && routable) {
            protocol::Describe d;
            if (!protocol::decode(body, d)) {
              routable = false;
            } else if (d.target == protocol::kTargetStatement && !d.name.empty()) {
              const policy::Classification* c = s->capture_->prepared().find(d.name);
              routable = c != nullptr && c->kind == policy::StatementKind::kRead &&
                         c->session == policy::SessionOp::kNone && !c->pins_session &&
                         s->capture_->parse_message(d.name) != nullptr &&
                         (s->routed_statement_.empty() || s->routed_statement_ == d.name);
              if (routable) s->routed_statement_.assign(d.name);
            } else if (d.target == protocol::kTargetPortal && !d.name.empty()) {
              routable = false;  // a named portal lives where its Bind ran
            }
          }
          return true;
        case protocol::frontend::kExecute:
          return true;
        default:
          // Close, Flush, COPY data: not part of a routable read.
          if (routing) routable = false;
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
          in_request = false;
          return true;
        default:
          // A streamed message is forwarded in pieces: its request cannot be routed.
          if (!in_request) {
            in_request = true;
            batch_started_earlier = false;
          }
          routable = false;
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
      if (state_.draining.load(std::memory_order_relaxed) && drain_idle(end, batch_started_earlier)) {
        // Idle while pgtandem drains: leave now, as the server does at a smart/fast shutdown.
        pending_fatal_ = fatal(protocol::sqlstate::kAdminShutdown,
                               "terminating connection due to administrator command");
        state_.metrics->drain_session_closed();
        close_backend();
        co_return;
      }
      auto [ec, n] = co_await client_.async_read_some(
          asio::buffer(fbuf_.data() + end, fbuf_.size() - end),
          asio::bind_cancellation_slot(drain_signal_.slot(), kNoThrow));
      if (ec == asio::error::operation_aborted && state_.draining.load(std::memory_order_relaxed)) {
        continue;  // woken for a drain: leave if idle, else go on reading
      }
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
    // A reload takes effect between requests, never inside a transaction.
    if (capture_ && outstanding_ == 0 && !capture_->in_transaction() && !batch_started_earlier) {
      order_mark_ = state_.mirror_order.last_assigned();
      refresh_snapshot();
      if (snap_ && snap_->primary != target_) {
        const bool moved = co_await flip_primary(snap_->primary);  // never co_await inside &&
        if (!moved) co_return;
      }
    }
    char* buf = fbuf_.data();
    const bool routing = routes_ && (routes_->routes_anything() || shadowing_) && !pinned_;
    Visitor v{this, buf, routing, batch_started_earlier};
    auto r = scanner.scan(std::string_view(buf, end), v);
    size_t send = v.divert ? v.divert_begin : r.forward;
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
    size_t consumed = send;
    if (v.divert) {
      const std::string_view request(buf + v.divert_begin, r.forward - v.divert_begin);
      if (!co_await serve_routed(request)) {
        state_.metrics->route_decision(worker_.index(), snap_->generation, decision_.rule, target_);
        auto [ec, n] = co_await asio::async_write(backend_, asio::buffer(request), kNoThrow);
        if (ec) co_return;
        stats_.bytes[kFrontendDir].add(request.size());
      }
      consumed = r.forward;
      unscanned = consumed < end;  // the scan stopped at the routed request: go on from there
    }
    // What is left of an extended-protocol batch went to the primary already (it is kept whole
    // in the buffer only while it is incomplete, and then not forwarded yet).
    batch_started_earlier = v.in_request && !v.divert;
    end -= consumed;
    if (end > 0) std::memmove(buf, buf + consumed, end);
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

// Feeds what the client receives from a routed read to the capture, as pump_backend does for the
// primary's answers: the capture keeps the session's request/answer bookkeeping.
struct Session::RouteObserver final : BackendObserver {
  Session* s;
  explicit RouteObserver(Session* session) : s(session) {}
  void on_backend(const Header& h, std::string_view body) override {
    switch (h.type) {
      case protocol::backend::kReadyForQuery:
        if (s->capture_->on_backend(h, body, Clock::now())) s->on_capture_ready();
        break;
      case protocol::backend::kCommandComplete:
      case protocol::backend::kErrorResponse:
      case protocol::backend::kParseComplete:
      case protocol::backend::kCloseComplete:
        s->capture_->on_backend(h, body, {});
        break;
      default:
        break;
    }
  }
};

asio::awaitable<void> Session::lock_client() {
  while (client_busy_) {
    client_waiters_ = true;
    client_free_.expires_at(asio::steady_timer::time_point::max());
    co_await client_free_.async_wait(kNoThrow);
  }
  client_busy_ = true;
}

void Session::unlock_client() {
  client_busy_ = false;
  if (client_waiters_) {
    client_waiters_ = false;
    client_free_.cancel();
  }
}

// The request as the secondary must see it: the named statement it binds renamed to pgtandem's
// copy, prepared first (Close, then Parse: Close of a statement that does not exist is no error)
// when `prepare`. False if the request cannot be rewritten (then it stays on the primary).
bool Session::rewrite_for_secondary(std::string_view request, bool prepare) {
  const std::string* parse_bytes = capture_->parse_message(routed_statement_);
  if (parse_bytes == nullptr || parse_bytes->size() < protocol::kHeaderSize) return false;
  protocol::Parse parse;
  if (!protocol::decode(std::string_view(*parse_bytes).substr(protocol::kHeaderSize), parse)) {
    return false;
  }
  std::string name = "pgtandem_";
  name += routed_statement_;
  rewritten_.clear();
  if (prepare) {
    protocol::encode(rewritten_, protocol::Close{protocol::kTargetStatement, name});
    parse.name = name;
    protocol::encode(rewritten_, parse);
  }
  size_t pos = 0;
  while (pos + protocol::kHeaderSize <= request.size()) {
    const char type = request[pos];
    const size_t len = protocol::read_u32(request.data() + pos + 1);
    const std::string_view msg = request.substr(pos, len + 1);
    const std::string_view body = msg.substr(protocol::kHeaderSize);
    pos += len + 1;
    if (type == protocol::frontend::kBind) {
      std::string_view portal, statement;
      if (protocol::decode_bind_names(body, &portal, &statement) && statement == routed_statement_) {
        // Same message with the statement name replaced: portal, name, then the rest verbatim.
        const size_t begin = protocol::begin_message(rewritten_, type);
        rewritten_.append(portal);
        rewritten_ += '\0';
        rewritten_.append(name);
        rewritten_ += '\0';
        rewritten_.append(body.substr(portal.size() + statement.size() + 2));
        protocol::end_message(rewritten_, begin);
        continue;
      }
    } else if (type == protocol::frontend::kDescribe) {
      protocol::Describe d;
      if (protocol::decode(body, d) && d.target == protocol::kTargetStatement &&
          d.name == routed_statement_) {
        protocol::encode(rewritten_, protocol::Describe{protocol::kTargetStatement, name});
        continue;
      }
    }
    rewritten_.append(msg);
  }
  return true;
}

// Serves the read request (the last one counted in outstanding_) on the secondary. False when it
// must go to the primary instead: nothing of it reached the client then.
asio::awaitable<bool> Session::serve_routed(std::string_view request) {
  // Everything before it must have been answered (and written to the client) first: answers
  // reach the client in request order.
  while (outstanding_ > 1 || client_busy_) {
    waiting_answers_ = true;
    answered_.expires_at(asio::steady_timer::time_point::max());
    co_await answered_.async_wait(kNoThrow);
  }
  waiting_answers_ = false;
  const size_t secondary = mirror_->target();
  const auto now = Clock::now();
  // The safety rules, judged now that everything before it has been answered.
  policy::RouteSafety safety;
  safety.in_transaction = capture_->in_transaction();
  safety.pinned = pinned_;
  safety.writes_pending = !mirror_->drained();
  safety.link_usable = mirror_->can_lend() || !mirror_->drained();
  safety.wrote_unmirrored = wrote_unmirrored_;
  safety.read_your_writes = snap_->config->routing.read_your_writes;
  auto kept = policy::keep_on_primary(safety);
  // The breaker is asked last: in half-open it counts the trial reads it admits.
  if (!kept && !state_.breakers.allow(state_, secondary, snap_->config->breaker, snap_->generation,
                                      now)) {
    kept = policy::KeptReason::kBreakerOpen;
  }
  if (kept) {
    state_.metrics->route_kept(*kept);
    co_return false;  // counted as a decision for the primary by the caller
  }

  std::string error;
  const bool was_connected = mirror_->connected();
  Socket* server = co_await mirror_->lend(&error);
  if (!was_connected) {
    state_.metrics->route_secondary_connect(
        secondary, server != nullptr              ? SecondaryConnectOutcome::kOk
                   : error.starts_with("login")   ? SecondaryConnectOutcome::kLoginFailed
                                                  : SecondaryConnectOutcome::kConnectFailed);
  }
  if (server == nullptr) {
    state_.breakers.record(state_, secondary, false, Clock::now());
    state_.metrics->route_fallback(secondary, RouteFallbackReason::kConnect);
    log::debug("routed read falls back to the primary",
               {{"target", state_.targets[secondary].name}, {"reason", "connect"}, {"error", error}});
    co_return false;
  }
  std::string_view to_send = request;
  uint32_t injected = 0;
  bool preparing = false;
  if (!routed_statement_.empty()) {
    if (link_epoch_ != mirror_->epoch()) {
      link_prepared_.clear();
      link_epoch_ = mirror_->epoch();
    }
    preparing = !link_prepared_.contains(routed_statement_);
    if (!rewrite_for_secondary(request, preparing)) {
      mirror_->give_back(false, mirror_writes_);
      co_return false;
    }
    to_send = rewritten_;
    injected = preparing ? 2 : 0;
  }
  co_await lock_client();
  RouteObserver observer(this);
  const BackendKey& link_key = mirror_->backend_key();
  const bool redirect = have_key_ && link_key.present;
  if (redirect) {
    state_.cancels.redirect(backend_pid_, backend_secret_,
                            {secondary, link_key.process_id, link_key.secret_key});
  }
  const auto started = Clock::now();
  RoutedReadResult r = co_await serve_routed_read(*server, mirror_->read_buffer(),
                                                  mirror_->read_end(), to_send, injected,
                                                  snap_->config->routing.fallback_to_primary, client_,
                                                  state_.limits, observer);
  unlock_client();
  if (redirect) state_.cancels.redirect(backend_pid_, backend_secret_, primary_cancel_key());
  mirror_->give_back(!r.connection_usable, mirror_writes_);
  if (preparing && r.outcome == RoutedReadOutcome::kServed) link_prepared_.insert(routed_statement_);
  switch (r.outcome) {
    case RoutedReadOutcome::kServed:
      state_.breakers.record(state_, secondary, !r.error_in_answer, Clock::now());
      state_.metrics->route_decision(worker_.index(), snap_->generation, decision_.rule, secondary);
      stats_.bytes[kFrontendDir].add(request.size());
      if (outstanding_ > 0 && --outstanding_ == 0) {
        stats_.query_latency[secondary].observe(Clock::now() - started);
      }
      co_return true;
    case RoutedReadOutcome::kRetry:
      state_.breakers.record(state_, secondary, false, Clock::now());
      state_.metrics->route_fallback(secondary, r.reason == "unavailable"
                                                    ? RouteFallbackReason::kUnavailable
                                                    : r.reason == "error" ? RouteFallbackReason::kError
                                                                          : RouteFallbackReason::kConnect);
      log::debug("routed read falls back to the primary",
                 {{"target", state_.targets[secondary].name},
                  {"reason", r.reason},
                  {"sqlstate", r.sqlstate}});
      co_return false;
    case RoutedReadOutcome::kClientGone:
    case RoutedReadOutcome::kBrokenAfterCommit:
      // Part of the answer reached the client: the session cannot go on consistently.
      state_.breakers.record(state_, secondary, false, Clock::now());
      log::warn("routed read failed mid-answer: closing the session",
                {{"target", state_.targets[secondary].name}});
      close_backend();
      close_client();
      co_return true;
  }
  co_return true;
}

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
  const uint64_t committed_before = state_.mirror_order.last_assigned();
  while ((!mirror_->drained() || mirror_->lent() ||
          state_.mirror_order.done_through() < committed_before) &&
         Clock::now() < give_up) {
    asio::steady_timer t(worker_.io(), std::chrono::milliseconds(1));
    co_await t.async_wait(kNoThrow);
  }
  if (!mirror_->can_lend()) {
    co_await refuse_after_flip("the session's mirrored writes are not all applied on the new primary");
    co_return false;
  }
  std::string error;
  Socket* other = co_await mirror_->lend(&error);
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

asio::awaitable<void> Session::pump_backend() {
  FrameScanner scanner(protocol::Direction::kBackend, state_.limits, kKeepLimit);
  char* buf = bbuf_.get();
  size_t end = bend_;
  bool unscanned = end > 0;
  LatencyHistogram* latency = &stats_.query_latency[target_];

  struct Visitor {
    Session* s;
    LatencyHistogram* latency;
    uint64_t messages = 0;
    bool on_message(const Header& h, std::string_view body) {
      ++messages;
      if (s->shadow_) s->on_shadow_answer(h, body);
      switch (h.type) {
        case protocol::backend::kReadyForQuery: {
          const auto now = Clock::now();
          if (s->outstanding_ > 0 && --s->outstanding_ == 0) latency->observe(now - s->request_start_);
          if (s->capture_ && s->capture_->on_backend(h, body, now)) s->on_capture_ready();
          s->tx_status_ = body.empty() ? 'I' : body[0];
          if (s->outstanding_ == 0 && s->state_.draining.load(std::memory_order_relaxed)) {
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
      if (s->shadow_) s->shadow_->on_primary_streamed();
      if (s->capture_ && h.type == protocol::backend::kErrorResponse) {
        s->capture_->on_backend(h, {}, {});
      }
      return true;
    }
  };

  for (;;) {
    if (!unscanned) {
      if (flipping_) {
        co_await park_backend();
        latency = &stats_.query_latency[target_];
      }
      auto [ec, n] = co_await backend_.async_read_some(
          asio::buffer(buf + end, kBackendBufferSize - end), kNoThrow);
      if (ec) {
        if (flipping_) continue;  // cancelled for a flip: park, then read the new primary
        break;
      }
      end += n;
    }
    unscanned = false;
    Visitor v{this, latency};
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
      if (client_busy_) co_await lock_client();  // a routed read is writing (rare: notices)
      else client_busy_ = true;
      auto [ec, n] = co_await asio::async_write(client_, asio::buffer(buf, r.forward), kNoThrow);
      unlock_client();
      if (ec) {
        close_backend();
        co_return;
      }
      stats_.bytes[kBackendDir].add(r.forward);
      stats_.messages[kBackendDir].add(v.messages);
      // A routed read waits for everything before it to reach the client.
      if (waiting_answers_ && outstanding_ <= 1) answered_.cancel();
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

// Idle for a graceful shutdown: nothing outstanding, not in a transaction (the primary's last
// ReadyForQuery said 'I'), no partial message or unsynced batch from the client.
bool Session::drain_idle(size_t buffered, bool batch_started) const {
  return outstanding_ == 0 && tx_status_ == 'I' && buffered == 0 && !batch_started &&
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

}  // namespace

asio::awaitable<void> run_session(Worker& worker, Socket client) {
  Session session(worker, std::move(client));
  co_await session.run();
}

}  // namespace pgtandem::proxy

// The Session class behind run_session (proxy/session/session.h): its members grouped by concern,
// and the constants its parts share. Included only by proxy/session/*.cc, one file per part:
//
//   session.cc       run() and run_session()
//   login.cc         startup, TLS accept, relayed login, cancel forwarding
//   client_pump.cc   pump_frontend (request boundaries: policy/session/request_tracker.h)
//   server_pump.cc   pump_backend
//   read_routing.cc  routed reads: route_candidate, serve_routed, the request tracker's host
//   primary_flip.cc  moving the session to a new primary
//   shadowing.cc     shadow reads
//   mirroring.cc     the second leg: start_secondary, the capture's units, config reloads
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "policy/mirror/write_capture.h"
#include "policy/route/route_rules.h"
#include "policy/route/route_safety.h"
#include "policy/session/request_tracker.h"
#include "policy/shadow/result_digest.h"
#include "policy/shadow/shadow_policy.h"
#include "policy/sql/classifier.h"
#include "protocol/framing.h"
#include "protocol/startup.h"
#include "proxy/mirror/mirror_link.h"
#include "proxy/session/routed_read.h"
#include "proxy/shadow/shadow_lane.h"
#include "proxy/worker.h"

namespace pgtandem::proxy::session {

using protocol::FrameScanner;
using protocol::Header;
using protocol::Status;
using Clock = std::chrono::steady_clock;
inline constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

// Messages up to kKeepLimit are seen whole (policy can read them); the pumps' buffers
// (kFrontendBufferSize, kBackendBufferSize) are the worker's (proxy/net/pump_buffer.h).
inline constexpr size_t kKeepLimit = 8 * 1024;
// During login, messages are small; anything larger than this is streamed and ends the login
// relay (the server itself will reject it).
inline constexpr size_t kAuthKeepLimit = 70 * 1024;
// A sampled read whose request is larger than this is not shadowed (its bytes are copied).
inline constexpr size_t kShadowMaxRequest = 64 * 1024;

// A FATAL ErrorResponse, encoded.
std::string fatal(std::string_view sqlstate, std::string_view message, std::string_view detail = {});

enum class AuthResult { kReady, kDone };

class Session final : public policy::RequestTrackerHost {
 public:
  Session(Worker& worker, Socket client);

  asio::awaitable<void> run();

 private:
  // login.cc
  asio::awaitable<AuthResult> startup_and_login();
  asio::awaitable<bool> accept_tls(const ClientTls& tls, size_t request_length);
  bool refuse_without_tls(const protocol::StartupMessage& msg, std::string* fatal_out);
  asio::awaitable<bool> fill(size_t n);
  asio::awaitable<void> answer_and_close(const std::string& bytes);
  asio::awaitable<void> answer_startup_error(protocol::StartupError error,
                                             const protocol::StartupMessage& msg);
  asio::awaitable<void> forward_cancel(std::string_view packet);
  asio::awaitable<AuthResult> relay_login();
  asio::awaitable<bool> relay_login_answer(char* tmp, size_t tmp_size);
  // session.cc
  asio::awaitable<void> deadline(std::chrono::milliseconds d);
  void close_client();
  void close_backend();
  void release_login_slot();
  void adopt_login_leftovers();
  // client_pump.cc
  asio::awaitable<void> pump_frontend();
  asio::awaitable<void> wait_for_mirror_room();
  // [mirror] journal_full = "block", the journal at its limit: false (client closed) on timeout.
  asio::awaitable<bool> wait_for_journal_room();
  void close_for_drain();
  bool at_request_boundary() const;          // between_requests() has work to do
  asio::awaitable<bool> between_requests();  // call only at_request_boundary()
  size_t on_invalid_frame(const FrameScanner::Result& r, const char* buf, size_t end);
  asio::awaitable<bool> serve_diverted(std::string_view request);
  bool resize_frontend_buffer(size_t end, size_t keep_limit);
  bool drain_idle(size_t buffered, bool batch_started) const;
  asio::awaitable<void> pass_pause_gate();
  void log_request(std::string_view sql) const;
  // server_pump.cc
  asio::awaitable<void> pump_backend();
  struct BackendVisitor;
  // mirroring.cc
  void start_secondary();
  void on_capture_ready();
  // A mirroring session's request is being forwarded: notes the commit order's mark, and reserves
  // a number for a lone COMMIT. Once its answer is in, release_order_reservation() gives back a
  // number no unit took.
  void on_forward();
  void release_order_reservation();
  void refresh_snapshot();
  // read_routing.cc
  bool route_candidate(std::string_view sql);
  asio::awaitable<bool> serve_routed(std::string_view request);
  std::optional<policy::KeptReason> keep_routed_on_primary(size_t secondary);
  bool on_routed_outcome(const RoutedReadResult& r, size_t secondary, size_t request_size,
                         Clock::time_point started);
  bool rewrite_for_secondary(std::string_view request, bool prepare);
  asio::awaitable<void> lock_client();
  void unlock_client();
  struct RouteObserver;
  // primary_flip.cc
  asio::awaitable<bool> flip_primary(size_t to);
  asio::awaitable<bool> prepare_all_statements(Socket& server);
  asio::awaitable<void> park_backend();
  asio::awaitable<void> refuse_after_flip(std::string_view why);
  // shadowing.cc
  void refresh_shadow_settings();
  policy::ShadowSampler& shadow_sampler();
  void consider_shadow(std::string_view request, std::string_view sql, bool cursor);
  void on_shadow_answer(const Header& h, std::string_view body);

  // policy::RequestTrackerHost (read_routing.cc): what the request tracker asks the session.
  void on_frontend(const Header& h, std::string_view message) override;
  void on_first_outstanding() override;
  bool log_statements() const override;
  void log_statement(std::string_view sql) override;
  void on_request_begin() override;
  policy::StatementVerdict classify(std::string_view sql) override;
  void statement_redefined(std::string_view name) override;
  bool prepared_read(std::string_view name, std::string_view* sql) override;
  bool pinned() const override;
  bool route_to_secondary(std::string_view sql) override;
  void kept_on_primary(std::string_view request, std::string_view sql, bool cursor) override;

  // --- The session's two connections.
  Worker& worker_;
  ServerState& state_;
  WorkerStats& stats_;
  Socket client_;
  Socket backend_;
  size_t target_ = 0;  // index of the target serving this session (the primary at login)

  // --- Login (login.cc).
  std::string in_;  // startup/login bytes from the client not yet consumed
  std::string startup_packet_;
  std::string backend_login_leftover_;
  int32_t backend_pid_ = 0;
  int32_t backend_secret_ = 0;
  bool have_key_ = false;
  bool holds_login_slot_ = true;  // counted in ServerState::unauthenticated

  // --- The pumps (client_pump.cc, server_pump.cc).
  // Asio writes started or finished on each socket (proxy/net/relay_read.h: a read that completed
  // alongside one of them may have been deferred past a reactor turn, so its "empty" is not trusted).
  uint32_t client_writes_ = 0;
  uint32_t backend_writes_ = 0;
  // Held only while bytes are in the pump's hands on the liburing relay (proxy/net/pump_buffer.h);
  // fbuf_ grows past the pool's size only to hold a whole message to mirror.
  PumpBuffer fbuf_;
  PumpBuffer bbuf_;
  size_t fend_ = 0;
  size_t bend_ = 0;
  // Request boundaries, routability and the requests in flight (outstanding()).
  policy::RequestTracker tracker_{*this};
  // Request latency: the first request after idle starts the clock; the ReadyForQuery that
  // answers the last outstanding one stops it.
  Clock::time_point request_start_{};
  // An error pgtandem itself must report (its own limits), injected at a message boundary only.
  std::string pending_fatal_;
  // Graceful shutdown (issue 6): the transaction status of the primary's last ReadyForQuery, and
  // the signal that cancels pump_frontend's wait for the client when pgtandem starts draining.
  char tx_status_ = 'I';
  asio::cancellation_signal drain_signal_;
  // Cutover (issue 14): counted in flight from the boundary a request passed to the primary's
  // ReadyForQuery 'I' with nothing outstanding; a closed gate holds the next request at its boundary.
  PauseGate::Ticket pause_ticket_{state_.control.pause, worker_.index()};  // per-worker slot
  // Counted from a mirrored request's forward until the answer that leaves none outstanding
  // (its units numbered): the backfill's barrier drains it (policy/mirror/answer_drain.h).
  policy::AnswerDrain::Ticket answer_ticket_{state_.mirror.answers, worker_.index()};

  // --- Write mirroring (mirroring.cc): what the client sends and the primary answers feeds the
  // capture, whose released units go to the mirror link. Both are null when mirror_writes is off.
  std::unique_ptr<policy::WriteCapture> capture_;
  std::vector<policy::MirrorUnit> released_;  // the capture's, on their way to the link (reused)
  std::shared_ptr<const policy::VolatilityCatalog> catalog_;
  std::shared_ptr<MirrorLink> mirror_;
  // Commit order on the mirror (policy/mirror/mirror_order.h): the number reserved for the lone
  // COMMIT in flight (0: none), and the order's last number at the latest forward.
  uint64_t order_reserved_ = 0;
  uint64_t forward_mark_ = 0;
  uint64_t reported_skips_ = 0;
  uint64_t reported_primary_only_ = 0;
  bool mirror_writes_ = false;  // units that write go to the link (else only session state)

  // --- Read routing (issue 4, read_routing.cc). The rules come from the config snapshot, picked
  // up between requests when nothing is outstanding (so never inside a transaction). A read routed
  // away from the primary is served on the mirror link's connection: it has the session's state
  // replayed and, once drained, the session's own writes (read-your-writes).
  std::shared_ptr<const ConfigSnapshot> snap_;
  uint64_t snap_generation_ = 0;
  policy::SessionInfo route_info_;
  std::optional<policy::RuleSet::SessionRoutes> routes_;
  bool pinned_ = false;            // temp table, advisory lock, LISTEN...: primary only
  bool wrote_unmirrored_ = false;  // wrote with mirror_writes off: the other target lacks it
  bool primary_is_old_ = true;
  policy::RouteDecision decision_;  // of the request being diverted
  // Named statements a routed read binds (tracker_.routed_statement()) are prepared on the
  // secondary lazily, once per connection, under a name of pgtandem's own (so they never collide
  // with the statements the mirror applies there); the request's Bind/Describe are rewritten to
  // use it.
  std::string rewritten_;  // the request as sent to the secondary (reused buffer)
  std::unordered_set<std::string> link_prepared_;
  uint64_t link_epoch_ = 0;
  // The classification route_candidate() saw last (noise control for shadow reads).
  policy::Classification last_classification_;
  // pump_frontend waits on `answered_` for the primary to answer what precedes a routed read;
  // pump_backend cancels it when the outstanding count drops. Writes to the client are serialised
  // by client_busy_ (pump_backend and a routed read never write at once).
  asio::steady_timer answered_;
  bool waiting_answers_ = false;
  asio::steady_timer client_free_;
  bool client_busy_ = false;
  bool client_waiters_ = false;

  // --- Shadow reads (issue 5, shadowing.cc): a sampled read that stays on the primary runs on
  // the link too, after the primary answered. `shadow_` collects the primary's answer while it is
  // being forwarded.
  bool shadowing_ = false;  // the snapshot's config shadows some reads
  std::shared_ptr<const policy::DigestOptions> shadow_options_;
  std::vector<std::shared_ptr<const policy::DigestOptions>> shadow_rule_options_;  // null: global
  std::shared_ptr<ShadowRead> shadow_;
  std::unique_ptr<ShadowLane> shadow_lane_;  // created with the first shadow read
  uint64_t shadow_seq_ = 0;

  // --- Primary flip (issue 4, primary_flip.cc): the key of the connection serving the session
  // now (the client's own login until a flip), and the handshake that parks pump_backend while
  // the connections swap.
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

}  // namespace pgtandem::proxy::session

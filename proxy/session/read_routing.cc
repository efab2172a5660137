// Read routing (issue 4): which requests may leave the primary (the request tracker's host), and
// serving a diverted read on the mirror link's connection.
#include "proxy/session/session_state.h"

#include <boost/asio/write.hpp>

#include <optional>
#include <string>

#include "protocol/message_types.h"
#include "protocol/messages.h"
#include "proxy/session/routed_read.h"
#include "proxy/telemetry/log.h"

namespace pgtandem::proxy::session {

// Whether a read may leave the primary, as far as the statement itself tells (the rest is decided
// when it is dispatched): a plain read that neither pins the session nor changes its state.
bool Session::route_candidate(std::string_view sql) {
  policy::ClassifierOptions opts;
  opts.functions = &state_.mirror.functions;
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

// Feeds what the client receives from a routed read to the capture, as pump_backend does for the
// primary's answers: the capture keeps the session's request/answer bookkeeping.
struct Session::RouteObserver final : BackendObserver {
  Session* s;
  explicit RouteObserver(Session* session) : s(session) {}
  void on_backend(const Header& h, std::string_view body) override {
    switch (h.type) {
      case protocol::backend::kReadyForQuery:
        if (s->capture_->on_backend(h, body, Clock::now())) s->on_capture_ready();
        if (s->order_reserved_ != 0 && s->capture_->outstanding() == 0) {
          s->release_order_reservation();
        }
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
  const std::string* parse_bytes = capture_->parse_message(tracker_.routed_statement());
  if (parse_bytes == nullptr || parse_bytes->size() < protocol::kHeaderSize) return false;
  protocol::Parse parse;
  if (!protocol::decode(std::string_view(*parse_bytes).substr(protocol::kHeaderSize), parse)) {
    return false;
  }
  std::string name = "pgtandem_";
  name += tracker_.routed_statement();
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
      if (protocol::decode_bind_names(body, &portal, &statement) && statement == tracker_.routed_statement()) {
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
          d.name == tracker_.routed_statement()) {
        protocol::encode(rewritten_, protocol::Describe{protocol::kTargetStatement, name});
        continue;
      }
    }
    rewritten_.append(msg);
  }
  return true;
}

// Whether the read must stay on the primary after all: the safety rules, judged now that
// everything before it has been answered, then the breaker.
std::optional<policy::KeptReason> Session::keep_routed_on_primary(size_t secondary) {
  policy::RouteSafety safety;
  safety.in_transaction = capture_->in_transaction();
  safety.pinned = pinned_;
  safety.writes_pending = !mirror_->drained();
  safety.link_usable = mirror_->can_lend() || !mirror_->drained();
  safety.wrote_unmirrored = wrote_unmirrored_;
  safety.read_your_writes = snap_->config->routing.read_your_writes;
  auto kept = policy::keep_on_primary(safety);
  // The breaker is asked last: in half-open it counts the trial reads it admits.
  if (!kept && !state_.health.breakers.allow(state_, secondary, snap_->config->breaker, snap_->generation,
                                      Clock::now())) {
    kept = policy::KeptReason::kBreakerOpen;
  }
  return kept;
}

// Serves the read request (the last one the request tracker counted) on the secondary. False when it
// must go to the primary instead: nothing of it reached the client then.
asio::awaitable<bool> Session::serve_routed(std::string_view request) {
  // Everything before it must have been answered (and written to the client) first: answers
  // reach the client in request order.
  while (tracker_.outstanding() > 1 || client_busy_) {
    waiting_answers_ = true;
    answered_.expires_at(asio::steady_timer::time_point::max());
    co_await answered_.async_wait(kNoThrow);
  }
  waiting_answers_ = false;
  const size_t secondary = mirror_->target();
  const auto kept = keep_routed_on_primary(secondary);
  if (kept) {
    state_.metrics->route_kept(*kept);
    co_return false;  // counted as a decision for the primary by the caller
  }

  std::string error;
  const bool was_connected = mirror_->connected();
  Socket* server = co_await mirror_->lend(&error);
  if (server == nullptr && error == MirrorLink::kLentElsewhere) {
    // The session's shadow lane (on the link's thread) claimed the connection after the check:
    // as if can_lend() had said so then.
    state_.metrics->route_kept(policy::KeptReason::kReadYourWrites);
    co_return false;
  }
  if (!was_connected) {
    state_.metrics->route_secondary_connect(
        secondary, server != nullptr              ? SecondaryConnectOutcome::kOk
                   : error.starts_with("login")   ? SecondaryConnectOutcome::kLoginFailed
                                                  : SecondaryConnectOutcome::kConnectFailed);
  }
  if (server == nullptr) {
    state_.health.breakers.record(state_, secondary, false, Clock::now());
    state_.metrics->route_fallback(secondary, RouteFallbackReason::kConnect);
    log::debug("routed read falls back to the primary",
               {{"target", state_.targets[secondary].name}, {"reason", "connect"}, {"error", error}});
    co_return false;
  }
  std::string_view to_send = request;
  uint32_t injected = 0;
  bool preparing = false;
  if (!tracker_.routed_statement().empty()) {
    if (link_epoch_ != mirror_->epoch()) {
      link_prepared_.clear();
      link_epoch_ = mirror_->epoch();
    }
    preparing = !link_prepared_.contains(tracker_.routed_statement());
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
  if (preparing && r.outcome == RoutedReadOutcome::kServed) {
    link_prepared_.insert(tracker_.routed_statement());
  }
  co_return on_routed_outcome(r, secondary, request.size(), started);
}

// What a routed read's outcome means for the session (the breaker, metrics, the request count):
// true if it was answered (or the session ended), false if it goes to the primary instead.
bool Session::on_routed_outcome(const RoutedReadResult& r, size_t secondary, size_t request_size,
                                Clock::time_point started) {
  switch (r.outcome) {
    case RoutedReadOutcome::kServed:
      state_.health.breakers.record(state_, secondary, !r.error_in_answer, Clock::now());
      state_.metrics->route_decision(worker_.index(), snap_->generation, decision_.rule, secondary);
      stats_.bytes[kFrontendDir].add(request_size);
      if (tracker_.answered()) {
        stats_.query_latency[secondary].observe(Clock::now() - started);
      }
      if (tracker_.outstanding() == 0) answer_ticket_.leave();  // as at the primary's answers
      return true;
    case RoutedReadOutcome::kRetry:
      state_.health.breakers.record(state_, secondary, false, Clock::now());
      state_.metrics->route_fallback(secondary, r.reason == "unavailable"
                                                    ? RouteFallbackReason::kUnavailable
                                                    : r.reason == "error" ? RouteFallbackReason::kError
                                                                          : RouteFallbackReason::kConnect);
      log::debug("routed read falls back to the primary",
                 {{"target", state_.targets[secondary].name},
                  {"reason", r.reason},
                  {"sqlstate", r.sqlstate}});
      return false;
    case RoutedReadOutcome::kClientGone:
    case RoutedReadOutcome::kBrokenAfterCommit:
      // Part of the answer reached the client: the session cannot go on consistently.
      state_.health.breakers.record(state_, secondary, false, Clock::now());
      log::warn("routed read failed mid-answer: closing the session",
                {{"target", state_.targets[secondary].name}});
      close_backend();
      close_client();
      return true;
  }
  return true;
}

// --- policy::RequestTrackerHost: what the request tracker asks the session.

void Session::on_frontend(const Header& h, std::string_view message) {
  if (capture_) capture_->on_frontend(h, message);
}

void Session::on_first_outstanding() { request_start_ = Clock::now(); }

bool Session::log_statements() const {
  return state_.control.log_statements.load(std::memory_order_relaxed);
}

void Session::log_statement(std::string_view sql) { log_request(sql); }

void Session::on_request_begin() { last_classification_ = {}; }

policy::StatementVerdict Session::classify(std::string_view sql) {
  policy::StatementVerdict v;
  v.routable = route_candidate(sql);
  v.shadow_cursor = shadowing_ && last_classification_.session == policy::SessionOp::kCursor;
  return v;
}

void Session::statement_redefined(std::string_view name) {
  if (!link_prepared_.empty()) link_prepared_.erase(std::string(name));
}

bool Session::prepared_read(std::string_view name, std::string_view* sql) {
  const policy::Classification* c = capture_->prepared().find(name);
  if (c == nullptr || c->kind != policy::StatementKind::kRead ||
      c->session != policy::SessionOp::kNone || c->pins_session) {
    return false;
  }
  const std::string* parse = capture_->parse_message(name);
  if (parse == nullptr) return false;
  if (sql != nullptr) {
    protocol::Parse p;
    if (parse->size() > protocol::kHeaderSize &&
        protocol::decode(std::string_view(*parse).substr(protocol::kHeaderSize), p)) {
      *sql = p.query;
    }
  }
  return true;
}

bool Session::pinned() const { return pinned_; }

bool Session::route_to_secondary(std::string_view sql) {
  const auto& routes = *routes_;
  if (routes.depends_on_statement()) {
    policy::StatementInfo info(sql);
    decision_ = routes.decide(info);
  } else {
    decision_ = routes.fixed();
  }
  return policy::routes_to_secondary(decision_.target, primary_is_old_);
}

void Session::kept_on_primary(std::string_view request, std::string_view sql, bool cursor) {
  if (cursor) {
    consider_shadow({}, sql, true);
    return;
  }
  state_.metrics->route_decision(worker_.index(), snap_->generation, decision_.rule, target_);
  if (shadowing_) consider_shadow(request, sql, false);
}

}  // namespace pgtandem::proxy::session

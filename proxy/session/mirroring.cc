// Write mirroring: the session's second leg (the mirror link), what the capture releases to it,
// and the config snapshot picked up between requests.
#include "proxy/session/session_state.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <string>
#include <utility>

#include "protocol/messages.h"
#include "proxy/telemetry/log.h"

namespace pgtandem::proxy::session {

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
  opts.classifier.functions = &state_.mirror.functions;
  catalog_ = state_.mirror.catalog.load(std::memory_order_acquire);
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

void Session::on_forward() {
  const bool lone_commit = capture_->forwarded();
  if (!mirror_ || !mirror_writes_) return;
  answer_ticket_.enter();  // before the request is written: see answer_drain.h
  forward_mark_ = state_.mirror.order.last_assigned();
  // Reserved before the COMMIT reaches the server: no answer it causes can be numbered before it.
  if (lone_commit && order_reserved_ == 0) order_reserved_ = state_.mirror.order.reserve().seq;
}

void Session::release_order_reservation() {
  const uint64_t seq = std::exchange(order_reserved_, 0);
  order_done(state_.mirror, seq);
}

void Session::on_capture_ready() {
  auto& units = released_;
  capture_->take(units);
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
  for (auto& u : units) {
    u.forward_mark = forward_mark_;
    if (order_reserved_ != 0 && u.lone_commit && u.writes) {
      // The lone COMMIT's number, reserved when it was forwarded: it follows everything before.
      u.seq = order_reserved_;
      u.after = order_reserved_ - 1;
      order_reserved_ = 0;
    }
  }
  if (!units.empty()) {
    mirror_->push(units, *capture_, snap_ ? snap_->config->mirror : state_.config->mirror);
  }
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

}  // namespace pgtandem::proxy::session

// The admin API's actions (POST /reload, /cutover, /breaker/reset, /mirror/.../clear): each runs
// where its owner lives (a reload and the primary switch on the main thread) and answers the
// admin thread with what happened. Routing of paths to these is in proxy/server.cc.
#include <boost/asio/post.hpp>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <future>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "policy/migrate/json.h"
#include "proxy/control/cutover.h"
#include "proxy/control/reload.h"
#include "proxy/mirror/mirror_safety.h"
#include "proxy/server_impl.h"
#include "proxy/telemetry/log.h"

namespace pgtandem::proxy {

AdminReply Server::Impl::reload_via_admin() {
  // The reloader lives on the main thread: the reload runs there, as a SIGHUP's does, and this
  // (the admin) thread waits for its outcome.
  auto done = std::make_shared<std::promise<ConfigReloadOutcome>>();
  auto outcome_future = done->get_future();
  asio::post(main_io, [this, done] { done->set_value(reloader->reload(ReloadSource::kAdmin)); });
  AdminReply reply;
  if (outcome_future.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
    reply.status = 503;
    reply.content_type = "text/plain; charset=utf-8";
    reply.body = "the reload did not run (pgtandem is shutting down?)\n";
    return reply;
  }
  const ConfigReloadOutcome outcome = outcome_future.get();
  const ReloadReport report = reloader->last_report();
  reply.status = outcome == ConfigReloadOutcome::kInvalid ? 422 : 200;
  reply.body = "{\"outcome\":";
  log::append_json_string(reply.body, outcome_name(outcome));
  reply.body += ",\"hash\":";
  log::append_json_string(reply.body, report.hash);
  reply.body += ",\"generation\":" + std::to_string(report.generation);
  reply.body += ",\"errors\":";
  log::append_json_string_array(reply.body,
                      outcome == ConfigReloadOutcome::kInvalid ? report.errors
                                                               : std::vector<std::string>{});
  reply.body += ",\"changes\":";
  log::append_json_string_array(reply.body, outcome == ConfigReloadOutcome::kApplied
                                      ? report.changes
                                      : std::vector<std::string>{});
  reply.body += "}\n";
  return reply;
}

// The switch of a cutover: the reloader lives on the main thread, so the new snapshot is made
// there, as a reload's is; the caller (admin or agent thread) waits for it.
bool Server::Impl::set_primary_on_main(const std::string& primary, std::string* error) {
  auto done = std::make_shared<std::promise<std::pair<bool, std::string>>>();
  auto result = done->get_future();
  asio::post(main_io, [this, done, primary] {
    std::string why;
    const bool ok = reloader->set_primary(primary, &why);
    done->set_value({ok, why});
  });
  if (result.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
    *error = "the switch did not run (pgtandem is shutting down?)";
    return false;
  }
  auto [ok, why] = result.get();
  if (ok) {
    for (size_t i = 0; i < state.targets.size(); ++i) {
      if (state.targets[i].name != primary) state.mirror.secondary.store(i);
    }
  }
  *error = why;
  return ok;
}

void Server::Impl::audit_cutover(const std::string& json) {
  log::info("cutover", {{"report", json}});
  if (options.audit_log_path.empty()) return;
  const std::string line = "{\"time\":\"" + rfc3339_utc(std::chrono::system_clock::now()) +
                           "\",\"source\":\"cutover\",\"cutover\":" + json + "}\n";
  std::ofstream out(options.audit_log_path, std::ios::app | std::ios::binary);
  out << line;
  out.flush();
  if (!out) log::error("cannot write the audit log", {{"path", options.audit_log_path}});
}

// POST /cutover?to=new[&force=1][&timeout_ms=N][&max_mismatches=N][&max_lag=N].
AdminReply Server::Impl::cutover_via_admin(std::string_view query) {
  AdminReply reply;
  if (!cutover) {
    reply.status = 503;
    reply.content_type = "text/plain; charset=utf-8";
    reply.body = "cutover unavailable: it needs mirror_writes on at start and a control user "
                 "([cutover] control_user, $PGTANDEM_CONTROL_USER, [classifier] catalog_user or "
                 "$PGUSER)\n";
    return reply;
  }
  CutoverRequest req;
  if (auto snap = state.snapshot.load()) {  // [cutover]'s defaults; the query overrides them
    const config::Cutover& c = snap->config->cutover;
    req.timeout_ms = c.pause_timeout_ms;
    req.max_mirror_lag = static_cast<int64_t>(c.max_mirror_lag);
    req.max_queue_bytes = static_cast<int64_t>(c.max_queue_bytes);
    req.max_mismatches = c.max_shadow_mismatches;
    req.shadow_window_s = c.shadow_window_s;
    req.verify_max_age_s = c.verify_max_age_s;
  }
  for_each_query_param(query, [&](std::string_view k, std::string_view value) {
    const std::string v(value);
    if (k == "to") req.to = v;
    if (k == "force") req.force = v == "1" || v == "true";
    if (k == "timeout_ms" && !v.empty()) req.timeout_ms = std::atoll(v.c_str());
    if (k == "max_mismatches" && !v.empty()) req.max_mismatches = std::strtoull(v.c_str(), nullptr, 10);
    if (k == "max_lag" && !v.empty()) req.max_mirror_lag = std::atoll(v.c_str());
    if (k == "verify_max_age_s" && !v.empty()) req.verify_max_age_s = std::atoll(v.c_str());
    if (k == "shadow_window_s" && !v.empty()) req.shadow_window_s = std::max(1LL, std::atoll(v.c_str()));
  });
  if (req.to.empty()) {
    reply.status = 400;
    reply.content_type = "text/plain; charset=utf-8";
    reply.body = "give the target: POST /cutover?to=new|old\n";
    return reply;
  }
  const CutoverReport rep = cutover->run(req);
  reply.status = rep.result == "ok" || rep.result == "unchanged" ? 200
                 : rep.result == "error"                         ? 503
                                                                 : 409;
  reply.body = rep.json() + "\n";
  return reply;
}

AdminReply Server::Impl::breaker_reset(std::string_view query) {
  AdminReply reply;
  size_t target = kMaxTargets;  // all
  if (!query.empty()) {
    std::string_view name;
    if (query.substr(0, 7) == "target=") name = query.substr(7);
    target = state.targets.size();
    for (size_t i = 0; i < state.targets.size(); ++i) {
      if (state.targets[i].name == name) target = i;
    }
    if (target == state.targets.size()) {
      reply.status = 400;
      reply.content_type = "text/plain; charset=utf-8";
      reply.body = "unknown target: use ?target=old or ?target=new (or no query for both)\n";
      return reply;
    }
  }
  const int reset = state.health.breakers.reset(state, target, std::chrono::steady_clock::now());
  log::warn("circuit breakers reset by the operator",
            {{"target", target < kMaxTargets ? state.targets[target].name : std::string("all")},
             {"were_open", std::to_string(reset)}});
  reply.body = "{\"reset\":" + std::to_string(reset) + ",\"breakers\":{";
  for (size_t i = 0; i < state.targets.size() && i < kMaxTargets; ++i) {
    if (i != 0) reply.body += ",";
    log::append_json_string(reply.body, state.targets[i].name);
    reply.body += ":";
    log::append_json_string(reply.body, breaker_name(state.health.breakers.state_code(i)));
  }
  reply.body += "}}\n";
  return reply;
}


// POST /mirror/crash-window/clear and POST /mirror/needs-repair/clear: the operator verified (and
// repaired) the mirror target; the marks go and the cutover gate `needs_repair` passes again.
AdminReply Server::Impl::mirror_clear(std::string_view path, std::string_view body) {
  AdminReply reply;
  if (!state.mirror.safety) {
    reply.status = 409;
    reply.content_type = "text/plain; charset=utf-8";
    reply.body = "mirroring was never on in this process: nothing is marked\n";
    return reply;
  }
  // A list of marks (a clean verify's: exactly those it saw at its start), or every mark of the kind.
  std::optional<std::vector<std::string>> listed;
  if (!body.empty() && body != "{}") {
    const auto j = policy::migrate::Json::parse(body);
    const policy::migrate::Json* marks = j ? j->get("marks") : nullptr;
    if (marks == nullptr || marks->type() != policy::migrate::Json::Type::kArray) {
      reply.status = 400;
      reply.content_type = "text/plain; charset=utf-8";
      reply.body = "expected {} or {\"marks\":[\"kind|target|from|to\",...]}\n";
      return reply;
    }
    listed.emplace();
    for (const auto& m : marks->items()) listed->push_back(m.as_string());
  }
  const std::string_view kind = path == "/mirror/crash-window/clear" ? "crash_window" : "";
  const size_t cleared = listed ? state.mirror.safety->clear_listed(kind, *listed) : state.mirror.safety->clear(kind);
  reply.body = "{\"cleared\":" + std::to_string(cleared) +
               ",\"remaining\":" + std::to_string(state.mirror.safety->marks().size()) + "}\n";
  return reply;
}

}  // namespace pgtandem::proxy

// GET /status: every wing's state in one JSON document (docs/operations.md lists its fields).
#include <algorithm>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "proxy/control/reload.h"
#include "proxy/mirror/catchup.h"
#include "proxy/mirror/journal.h"
#include "proxy/mirror/mirror_safety.h"
#include "proxy/server_impl.h"
#include "proxy/shadow/shadow_lane.h"
#include "proxy/telemetry/log.h"

namespace pgtandem::proxy {

std::string Server::Impl::status_json() const {
  auto snap = state.snapshot.load(std::memory_order_acquire);
  const size_t primary = snap ? snap->primary : state.primary;
  const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::steady_clock::now() - started_steady)
                          .count();
  std::string out = "{\"version\":";
  log::append_json_string(out, PGTANDEM_VERSION);
  out += ",\"pid\":" + std::to_string(::getpid());
  out += ",\"started_at\":";
  log::append_json_string(out, rfc3339_utc(started_at));
  out += ",\"uptime_seconds\":" + std::to_string(uptime);
  out += ",\"draining\":";
  out += state.control.draining.load(std::memory_order_relaxed) ? "true" : "false";
  out += ",\"clients\":" + std::to_string(state.clients.load(std::memory_order_relaxed));
  out += ",\"primary\":";
  log::append_json_string(out, state.targets[primary].name);

  out += ",\"targets\":[";
  for (size_t i = 0; i < state.targets.size() && i < kMaxTargets; ++i) {
    if (i != 0) out += ",";
    const int reach = state.health.reachable[i].load(std::memory_order_relaxed);
    out += "{\"name\":";
    log::append_json_string(out, state.targets[i].name);
    out += ",\"address\":";
    log::append_json_string(out, state.targets[i].description);
    out += ",\"primary\":";
    out += i == primary ? "true" : "false";
    out += ",\"health\":";
    out += reach == -1 ? "\"unknown\"" : target_up(i) ? "\"up\"" : "\"down\"";
    out += ",\"connect_failures\":" + std::to_string(metrics->upstream_connect_failures(i));
    out += "}";
  }
  out += "]";

  out += ",\"breakers\":{";
  for (size_t i = 0; i < state.targets.size() && i < kMaxTargets; ++i) {
    if (i != 0) out += ",";
    log::append_json_string(out, state.targets[i].name);
    out += ":";
    log::append_json_string(out, breaker_name(state.health.breakers.state_code(i)));
  }
  out += "}";

  // Rules in the running config's order, then the rest (default, retired rules, other).
  std::vector<std::string> order;
  if (snap && snap->rules) {
    for (size_t i = 0; i < snap->rules->size(); ++i) order.push_back(snap->rules->rule_name(i));
  }
  std::map<std::string, std::map<std::string, uint64_t>> counts;
  for (const auto& rc : metrics->route_counts()) {
    counts[rc.rule][rc.target] += rc.count;
    if (std::find(order.begin(), order.end(), rc.rule) == order.end()) order.push_back(rc.rule);
  }
  out += ",\"rules\":[";
  bool first = true;
  for (const auto& name : order) {
    if (!first) out += ",";
    first = false;
    out += "{\"name\":";
    log::append_json_string(out, name);
    out += ",\"reads\":{";
    bool first_target = true;
    for (size_t i = 0; i < state.targets.size(); ++i) {
      if (!first_target) out += ",";
      first_target = false;
      log::append_json_string(out, state.targets[i].name);
      out += ':';
      out += std::to_string(counts[name][state.targets[i].name]);
    }
    out += "}}";
  }
  out += "]";

  uint64_t lag_count = 0;
  double lag_sum = 0;
  metrics->mirror_lag(&lag_count, &lag_sum);
  const bool mirroring = snap && snap->config->mirror_writes;
  out += ",\"mirror\":{\"enabled\":";
  out += mirroring ? "true" : "false";
  out += ",\"target\":";
  // The mirror's target is the one that is not the primary now (after a flip, `old`), not the
  // secondary pgtandem started with.
  const size_t mirror_target =
      state.targets.size() == 2 ? 1 - primary : state.mirror.secondary.load();
  log::append_json_string(out, state.targets[mirror_target].name);
  out += ",\"applied\":" + std::to_string(lag_count);
  out += ",\"lag_seconds_avg\":" + format_double(lag_count ? lag_sum / static_cast<double>(lag_count) : 0);
  out += ",\"queue_bytes\":" +
         std::to_string(std::max<int64_t>(0, state.mirror.queue_bytes.load(std::memory_order_relaxed)));
  out += ",\"journal_bytes\":" + std::to_string(state.mirror.journal ? state.mirror.journal->bytes() : 0);
  const auto& mc = snap ? snap->config->mirror : config.mirror;
  out += ",\"journal_path\":";
  log::append_json_string(out, state.mirror.journal ? state.mirror.journal->path() : mc.journal_path);
  out += ",\"journal_limit_bytes\":" + std::to_string(mc.journal_max_bytes);
  out += ",\"journal_full\":";
  log::append_json_string(out, mc.journal_full);
  const bool blocking = state.mirror.journal && mc.journal_full == "block" &&
                        state.mirror.journal->bytes() >= mc.journal_max_bytes;
  out += ",\"state\":";
  log::append_json_string(out, !mirroring ? "off"
                               : state.mirror.safety && state.mirror.safety->stopped()
                                   ? "stopped_journal_full"
                               : blocking ? "blocking_journal_full"
                                          : "mirroring");
  if (state.mirror.safety) {
    out += ',';
    out += state.mirror.safety->status_members();
  } else {
    out += ",\"crash_window\":null,\"needs_repair\":[]";
  }
  out += mirror_backlog_json(state);
  out += "}";

  const ReloadReport report = reloader ? reloader->last_report() : ReloadReport{};
  out += ",\"config\":{\"path\":";
  log::append_json_string(out, options.config_path);
  out += ",\"hash\":";
  log::append_json_string(out, snap ? snap->hash : report.hash);
  out += ",\"generation\":" + std::to_string(snap ? snap->generation : 0);
  out += ",\"loaded_at\":";
  log::append_json_string(out, rfc3339_utc(report.loaded_at));
  out += ",\"last_reload\":{\"time\":";
  log::append_json_string(out, rfc3339_utc(report.time));
  out += ",\"source\":";
  log::append_json_string(out, to_string(report.source));
  out += ",\"outcome\":";
  log::append_json_string(out, outcome_name(report.outcome));
  out += ",\"errors\":";
  log::append_json_string_array(out, report.errors);
  out += ",\"changes\":";
  log::append_json_string_array(out, report.changes);
  out += "}}";

  out += ",\"shadow\":";
  out += shadow_status_json(state);
  out += ",\"cutover\":";
  out += cutover ? cutover->status_json() : std::string("null");
  uint64_t real_divergences = 0, backfill_divergences = 0;
  metrics->mirror_divergences(&real_divergences, &backfill_divergences);
  out += ",\"migration\":{\"mirror_divergences\":{\"real\":" + std::to_string(real_divergences) +
         ",\"backfill_pending\":" + std::to_string(backfill_divergences) +
         "},\"mirror_unordered_overlaps\":" +
         std::to_string(state.mirror.order.unordered_overlaps()) + ",\"commands\":";
  {
    std::lock_guard lock(migrate_mu);
    out += migrate_board.status_json(unix_now());
  }
  out += "}";
  out += "}\n";
  return out;
}

}  // namespace pgtandem::proxy

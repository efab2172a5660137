// Prometheus metrics (proxy/telemetry/metrics.h): every family registered here, in one place, so
// that a metric's name, help and labels are found once. What the hot path and the rest of the
// proxy record is proxy/telemetry/metrics_record.cc; the families rendered at scrape time from
// the workers' counters are proxy/telemetry/metrics_families.h.
#include "proxy/telemetry/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <string>
#include <vector>

#include "proxy/telemetry/metrics_impl.h"

namespace pgtandem::proxy {

Metrics::Metrics(std::vector<std::string> target_names) : impl_(std::make_unique<Impl>()) {
  auto& r = *impl_->registry;
  impl_->hot = std::make_shared<WorkerStatsCollectable>(target_names);
  impl_->sessions = &prometheus::BuildCounter()
                         .Name("pgtandem_sessions_total")
                         .Help("Client connections accepted")
                         .Register(r)
                         .Add({});
  impl_->clients = &prometheus::BuildGauge()
                        .Name("pgtandem_client_connections")
                        .Help("Client connections open now")
                        .Register(r)
                        .Add({});
  auto& cf = prometheus::BuildCounter()
                 .Name("pgtandem_upstream_connect_failures_total")
                 .Help("Failed connection attempts to a target, by target")
                 .Register(r);
  for (const auto& t : target_names) impl_->connect_failures.push_back(&cf.Add({{"target", t}}));
  auto& rej = prometheus::BuildCounter()
                  .Name("pgtandem_rejected_connections_total")
                  .Help("Client connections refused or closed before login, by reason")
                  .Register(r);
  impl_->rejected[0] = &rej.Add({{"reason", "startup_timeout"}});
  impl_->rejected[1] = &rej.Add({{"reason", "too_many_unauthenticated"}});
  impl_->rejected[2] = &rej.Add({{"reason", "too_many_clients"}});
  auto& pe = prometheus::BuildCounter()
                 .Name("pgtandem_protocol_errors_total")
                 .Help("Malformed protocol input, by kind")
                 .Register(r);
  impl_->protocol_errors[0] = &pe.Add({{"kind", "client_framing"}});
  impl_->protocol_errors[1] = &pe.Add({{"kind", "client_startup"}});
  impl_->protocol_errors[2] = &pe.Add({{"kind", "backend_framing"}});
  auto& cr = prometheus::BuildCounter()
                 .Name("pgtandem_cancel_requests_total")
                 .Help("CancelRequests forwarded, by whether the session is on this replica")
                 .Register(r);
  impl_->cancels[0] = &cr.Add({{"session", "other"}});
  impl_->cancels[1] = &cr.Add({{"session", "local"}});
  auto& fl = prometheus::BuildCounter()
                 .Name("pgtandem_primary_flips_total")
                 .Help("Sessions at a primary flip: moved to the new primary at a transaction "
                       "boundary, or closed (asked to reconnect) because they could not be moved")
                 .Register(r);
  impl_->flips[0] = &fl.Add({{"outcome", "closed"}});
  impl_->flips[1] = &fl.Add({{"outcome", "moved"}});
  impl_->cutovers = &prometheus::BuildCounter()
                        .Name("pgtandem_cutover_total")
                        .Help("Cutovers this replica coordinated, by result (ok, aborted, refused, "
                              "unchanged, error)")
                        .Register(r);
  impl_->cutover_pause = &prometheus::BuildHistogram()
                             .Name("pgtandem_cutover_pause_seconds")
                             .Help("How long a cutover this replica coordinated held new "
                                   "transactions at their boundary")
                             .Register(r)
                             .Add({}, prometheus::Histogram::BucketBoundaries{
                                          0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
  impl_->cutover_epoch = &prometheus::BuildGauge()
                             .Name("pgtandem_cutover_epoch")
                             .Help("The control epoch this replica serves (0: no cutover ever ran)")
                             .Register(r)
                             .Add({});
  auto& kp = prometheus::BuildCounter()
                 .Name("pgtandem_route_kept_on_primary_total")
                 .Help("Reads a rule sent to the other target that stayed on the primary, by the "
                       "safety rule that kept them")
                 .Register(r);
  impl_->kept[0] = &kp.Add({{"reason", "transaction"}});
  impl_->kept[1] = &kp.Add({{"reason", "pinned"}});
  impl_->kept[2] = &kp.Add({{"reason", "read_your_writes"}});
  impl_->kept[3] = &kp.Add({{"reason", "breaker_open"}});
  auto& mw = prometheus::BuildCounter()
                 .Name("pgtandem_mirror_writes_total")
                 .Help("Writes for the mirror target, by outcome")
                 .Register(r);
  impl_->mirror_writes[0] = &mw.Add({{"outcome", "applied"}});
  impl_->mirror_writes[1] = &mw.Add({{"outcome", "failed"}});
  impl_->mirror_writes[2] = &mw.Add({{"outcome", "journaled"}});
  impl_->mirror_writes[3] = &mw.Add({{"outcome", "skipped_rollback"}});
  impl_->mirror_writes[4] = &mw.Add({{"outcome", "skipped_primary_only"}});
  impl_->mirror_writes[5] = &mw.Add({{"outcome", "stopped"}});
  impl_->divergences = &prometheus::BuildCounter()
                            .Name("pgtandem_mirror_divergences_total")
                            .Help("Mirrored writes whose outcome differed from the primary's, by kind")
                            .Register(r);
  for (const char* kind : {"row_count", "command", "error_on_mirror", "error_on_primary",
                           "error_code", "statements"}) {
    impl_->divergences->Add({{"kind", kind}});
  }
  impl_->divergences_backfill =
      &prometheus::BuildCounter()
           .Name("pgtandem_mirror_divergences_backfill_pending_total")
           .Help("Mirror divergences (row_count, error_on_mirror) while a backfill had not finished "
                 "the table: rows not copied yet, not counted in pgtandem_mirror_divergences_total")
           .Register(r);
  for (const char* kind : {"row_count", "error_on_mirror"}) impl_->divergences_backfill->Add({{"kind", kind}});
  impl_->nondeterministic = &prometheus::BuildCounter()
                                 .Name("pgtandem_mirror_nondeterministic_writes_total")
                                 .Help("Mirrored writes with now(), random(), nextval(), serial "
                                       "defaults...: the targets may store different values")
                                 .Register(r)
                                 .Add({});
  impl_->coalesced = &prometheus::BuildCounter()
                          .Name("pgtandem_mirror_coalesced_transactions_total")
                          .Help("Committed transactions applied on the mirror in one request "
                                "with others of their session, or with their statements joined "
                                "(one round trip instead of one per statement)")
                          .Register(r)
                          .Add({});
  auto& order_waits = prometheus::BuildCounter()
                          .Name("pgtandem_mirror_order_waits_total")
                          .Help("Mirrored writes that waited for other sessions' writes they follow "
                                "in commit order (policy/mirror/mirror_order.h); result=timeout: "
                                "applied anyway after waiting too long")
                          .Register(r);
  impl_->order_waited = &order_waits.Add({{"result", "ok"}});
  impl_->order_timed_out = &order_waits.Add({{"result", "timeout"}});
  auto& reloads = prometheus::BuildCounter()
                      .Name("pgtandem_config_reloads_total")
                      .Help("Config reloads (SIGHUP or file change), by outcome: applied, invalid "
                            "(rejected, the running config stays), unchanged (same bytes)")
                      .Register(r);
  impl_->reloads[0] = &reloads.Add({{"outcome", "applied"}});
  impl_->reloads[1] = &reloads.Add({{"outcome", "invalid"}});
  impl_->reloads[2] = &reloads.Add({{"outcome", "unchanged"}});
  impl_->generation = &prometheus::BuildGauge()
                           .Name("pgtandem_config_generation")
                           .Help("Generation of the running config: 1 at start, +1 per applied "
                                 "reload")
                           .Register(r)
                           .Add({});
  impl_->config_info = &prometheus::BuildGauge()
                            .Name("pgtandem_config_info")
                            .Help("The running config file's hash (64-bit FNV-1a of its bytes); "
                                  "always 1")
                            .Register(r);
  impl_->routes = std::make_shared<RouteCollectable>(target_names);
  auto& fb = prometheus::BuildCounter()
                 .Name("pgtandem_route_fallbacks_total")
                 .Help("Routed reads retried on the primary, by the target that failed and why: "
                       "connect, error, unavailable")
                 .Register(r);
  auto& bs = prometheus::BuildGauge()
                 .Name("pgtandem_breaker_state")
                 .Help("Circuit breaker of reads routed to a target: 0 closed, 1 open, 2 half-open")
                 .Register(r);
  auto& bt = prometheus::BuildCounter()
                 .Name("pgtandem_breaker_trips_total")
                 .Help("Times a target's circuit breaker opened")
                 .Register(r);
  auto& sc = prometheus::BuildCounter()
                 .Name("pgtandem_route_secondary_connects_total")
                 .Help("Connections opened for routed reads to a target that is not the primary, "
                       "by outcome: ok, connect_failed, timeout, login_failed")
                 .Register(r);
  for (const auto& t : target_names) {
    impl_->fallbacks.push_back({&fb.Add({{"target", t}, {"reason", "connect"}}),
                                &fb.Add({{"target", t}, {"reason", "error"}}),
                                &fb.Add({{"target", t}, {"reason", "unavailable"}})});
    impl_->breaker_state.push_back(&bs.Add({{"target", t}}));
    impl_->breaker_trips.push_back(&bt.Add({{"target", t}}));
    impl_->secondary_connects.push_back({&sc.Add({{"target", t}, {"outcome", "ok"}}),
                                         &sc.Add({{"target", t}, {"outcome", "connect_failed"}}),
                                         &sc.Add({{"target", t}, {"outcome", "timeout"}}),
                                         &sc.Add({{"target", t}, {"outcome", "login_failed"}})});
  }
  auto& sr = prometheus::BuildCounter()
                 .Name("pgtandem_shadow_reads_total")
                 .Help("Sampled reads run on the other target too, by outcome: match, mismatch, "
                       "skipped (not run), dropped (rate limit, timeout, other target failed)")
                 .Register(r);
  impl_->shadow_reads[0] = &sr.Add({{"outcome", "match"}});
  impl_->shadow_reads[1] = &sr.Add({{"outcome", "mismatch"}});
  impl_->shadow_reads[2] = &sr.Add({{"outcome", "skipped"}});
  impl_->shadow_reads[3] = &sr.Add({{"outcome", "dropped"}});
  impl_->client_auth = &prometheus::BuildCounter()
                            .Name("pgtandem_client_auth_total")
                            .Help("Clients authenticated by pgtandem itself ([auth] mode = file), "
                                  "by method and outcome: ok, failed, unknown_user, error")
                            .Register(r);
  impl_->shadow_skips = &prometheus::BuildCounter()
                             .Name("pgtandem_shadow_skips_total")
                             .Help("Sampled reads not shadowed, by reason")
                             .Register(r);
  impl_->shadow_mismatches = &prometheus::BuildCounter()
                                  .Name("pgtandem_shadow_mismatches_total")
                                  .Help("Shadow reads whose answers differed, by the first "
                                        "difference: error, columns, row_count, rows, row_order, "
                                        "command_tag")
                                  .Register(r);
  impl_->shadow_drops = &prometheus::BuildCounter()
                             .Name("pgtandem_shadow_drops_total")
                             .Help("Sampled reads whose shadow did not run or finish, by reason")
                             .Register(r);
  impl_->shadow_fingerprints =
      &prometheus::BuildCounter()
           .Name("pgtandem_shadow_mismatches_by_fingerprint_total")
           .Help("Shadow mismatches by libpg_query fingerprint of the statement; the first 50 "
                 "fingerprints get a label each, later ones count as \"other\" (see /status)")
           .Register(r);
  impl_->shadow_rechecks = &prometheus::BuildCounter()
                                .Name("pgtandem_shadow_rechecks_total")
                                .Help("Mismatches run again on both targets after a delay: "
                                      "persistent, transient, failed")
                                .Register(r);
  impl_->drain_closed = &prometheus::BuildCounter()
                             .Name("pgtandem_drain_sessions_closed_total")
                             .Help("Sessions closed at an idle boundary by a graceful shutdown "
                                   "(FATAL 57P01)")
                             .Register(r)
                             .Add({});
  impl_->drain_duration = &prometheus::BuildGauge()
                               .Name("pgtandem_drain_duration_seconds")
                               .Help("Time the graceful shutdown in progress (or the last one) "
                                     "has taken so far")
                               .Register(r)
                               .Add({});
  prometheus::BuildGauge()
      .Name("pgtandem_build_info")
      .Help("Build information")
      .Register(r)
      .Add({{"version", PGTANDEM_VERSION}, {"io_backend", PGTANDEM_IO_BACKEND}})
      .Set(1);
}

Metrics::~Metrics() = default;

}  // namespace pgtandem::proxy

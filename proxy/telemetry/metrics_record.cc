// What the proxy records in its metrics (proxy/telemetry/metrics.h), and what it reads back of
// them for /status; the families are registered in proxy/telemetry/metrics.cc.
#include <prometheus/text_serializer.h>

#include <string>
#include <vector>

#include "proxy/telemetry/metrics.h"
#include "proxy/telemetry/metrics_impl.h"

namespace pgtandem::proxy {

using metrics_detail::kDefaultSlot;
using metrics_detail::kOtherSlot;
using metrics_detail::kRouteBanks;

void Metrics::add_worker(const WorkerStats* stats) {
  impl_->hot->add(stats);
  impl_->route_workers.push_back(impl_->routes->add_worker());
}
void Metrics::session_started() { impl_->sessions->Increment(); }
void Metrics::client_connected() { impl_->clients->Increment(); }
void Metrics::client_disconnected() { impl_->clients->Decrement(); }
void Metrics::upstream_connect_failed(size_t target) {
  if (target < impl_->connect_failures.size()) impl_->connect_failures[target]->Increment();
}
void Metrics::rejected(RejectReason reason) { impl_->rejected[static_cast<int>(reason)]->Increment(); }
void Metrics::protocol_error(ProtocolErrorKind kind) {
  impl_->protocol_errors[static_cast<int>(kind)]->Increment();
}
void Metrics::primary_flip(bool moved) { impl_->flips[moved ? 1 : 0]->Increment(); }

void Metrics::cutover(const std::string& result, double pause_seconds) {
  impl_->cutovers->Add({{"result", result}}).Increment();
  if (pause_seconds >= 0) impl_->cutover_pause->Observe(pause_seconds);
}

void Metrics::set_cutover_epoch(int64_t epoch) {
  impl_->cutover_epoch->Set(static_cast<double>(epoch));
}
void Metrics::route_kept(policy::KeptReason reason) {
  impl_->kept[static_cast<size_t>(reason)]->Increment();
}
void Metrics::cancel_request(bool known_session) { impl_->cancels[known_session ? 1 : 0]->Increment(); }

void Metrics::mirror_write(MirrorOutcome outcome) {
  impl_->mirror_writes[static_cast<int>(outcome)]->Increment();
}
void Metrics::mirror_divergence(std::string_view kind, std::string_view unit_bytes) {
  // An UPDATE/DELETE that found 0 rows on the other target, or failed there (a foreign key to a row
  // not there yet), while a backfill has not finished: rows not copied yet, not a real divergence.
  // row_count: by the unit's tables; error_on_mirror: any table (the parent is not named).
  const bool backfill_kind = kind == "row_count" || kind == "error_on_mirror";
  if (backfill_kind && impl_->backfill_pending &&
      impl_->backfill_pending(kind == "row_count" ? unit_bytes : std::string_view())) {
    impl_->divergences_backfill->Add({{"kind", std::string(kind)}}).Increment();
    impl_->divergences_pending.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  impl_->divergences->Add({{"kind", std::string(kind)}}).Increment();
  impl_->divergences_real.fetch_add(1, std::memory_order_relaxed);
}
void Metrics::set_backfill_pending(std::function<bool(std::string_view)> pending) {
  impl_->backfill_pending = std::move(pending);
}
void Metrics::mirror_divergences(uint64_t* real, uint64_t* backfill_pending) const {
  *real = impl_->divergences_real.load(std::memory_order_relaxed);
  *backfill_pending = impl_->divergences_pending.load(std::memory_order_relaxed);
}
void Metrics::mirror_nondeterministic() { impl_->nondeterministic->Increment(); }
void Metrics::mirror_coalesced(size_t transactions) {
  impl_->coalesced->Increment(static_cast<double>(transactions));
}
void Metrics::mirror_order_wait(bool in_time) {
  (in_time ? impl_->order_waited : impl_->order_timed_out)->Increment();
}
void Metrics::set_mirror_sources(const std::atomic<int64_t>* queue_bytes,
                                 std::function<uint64_t()> journal_bytes) {
  impl_->hot->set_mirror_sources(queue_bytes, std::move(journal_bytes));
}

void Metrics::add_gauge(std::string name, std::string help, std::function<double()> value) {
  impl_->hot->add_gauge(std::move(name), std::move(help), std::move(value));
}

void Metrics::set_extra_source(std::function<std::vector<Sample>()> source) {
  impl_->hot->set_extra_source(std::move(source));
}

void Metrics::config_reload(ConfigReloadOutcome outcome) {
  impl_->reloads[static_cast<int>(outcome)]->Increment();
}

void Metrics::set_config(uint64_t generation, const std::string& hash) {
  if (impl_->config_info_current != nullptr) impl_->config_info->Remove(impl_->config_info_current);
  impl_->config_info_current = &impl_->config_info->Add({{"hash", hash}});
  impl_->config_info_current->Set(1);
  impl_->generation->Set(static_cast<double>(generation));
}

void Metrics::set_route_rules(uint64_t generation, std::vector<std::string> rule_names) {
  impl_->routes->set_rules(generation, std::move(rule_names));
}

void Metrics::route_decision(size_t worker, uint64_t generation, int rule, size_t target) noexcept {
  const auto& workers = impl_->route_workers;
  if (worker >= workers.size() || target >= kMaxTargets) return;
  const size_t slot = rule < 0                                     ? kDefaultSlot
                      : static_cast<size_t>(rule) < kMaxRouteRules ? static_cast<size_t>(rule) + 1
                                                                   : kOtherSlot;
  workers[worker]->decisions[generation % kRouteBanks][slot][target].add();
}

void Metrics::route_fallback(size_t target, RouteFallbackReason reason) {
  if (target < impl_->fallbacks.size())
    impl_->fallbacks[target][static_cast<size_t>(reason)]->Increment();
}

void Metrics::set_breaker_state(size_t target, BreakerState state) {
  if (target < impl_->breaker_state.size())
    impl_->breaker_state[target]->Set(static_cast<double>(static_cast<int>(state)));
}

void Metrics::breaker_trip(size_t target) {
  if (target < impl_->breaker_trips.size()) impl_->breaker_trips[target]->Increment();
}

void Metrics::route_secondary_connect(size_t target, SecondaryConnectOutcome outcome) {
  if (target < impl_->secondary_connects.size())
    impl_->secondary_connects[target][static_cast<size_t>(outcome)]->Increment();
}

void Metrics::shadow_read(ShadowOutcome outcome) {
  impl_->shadow_reads[static_cast<int>(outcome)]->Increment();
}
void Metrics::client_auth(std::string_view method, std::string_view outcome) {
  impl_->client_auth->Add({{"method", std::string(method)}, {"outcome", std::string(outcome)}})
      .Increment();
}
void Metrics::shadow_skip(std::string_view reason) {
  impl_->shadow_reads[static_cast<int>(ShadowOutcome::kSkipped)]->Increment();
  impl_->shadow_skips->Add({{"reason", std::string(reason)}}).Increment();
}
void Metrics::shadow_mismatch(std::string_view kind) {
  impl_->shadow_reads[static_cast<int>(ShadowOutcome::kMismatch)]->Increment();
  impl_->shadow_mismatches->Add({{"kind", std::string(kind)}}).Increment();
}
void Metrics::shadow_drop(std::string_view reason) {
  impl_->shadow_reads[static_cast<int>(ShadowOutcome::kDropped)]->Increment();
  impl_->shadow_drops->Add({{"reason", std::string(reason)}}).Increment();
}
void Metrics::shadow_mismatch_fingerprint(std::string_view label) {
  impl_->shadow_fingerprints->Add({{"fingerprint", std::string(label)}}).Increment();
}
void Metrics::shadow_recheck(std::string_view result) {
  impl_->shadow_rechecks->Add({{"result", std::string(result)}}).Increment();
}

void Metrics::drain_session_closed() { impl_->drain_closed->Increment(); }
void Metrics::set_drain_duration(double seconds) { impl_->drain_duration->Set(seconds); }
uint64_t Metrics::drain_sessions_closed() const {
  return static_cast<uint64_t>(impl_->drain_closed->Value());
}
uint64_t Metrics::upstream_connect_failures(size_t target) const {
  if (target >= impl_->connect_failures.size()) return 0;
  return static_cast<uint64_t>(impl_->connect_failures[target]->Value());
}

std::vector<Metrics::RuleCount> Metrics::route_counts() const {
  std::vector<RuleCount> out;
  for (const auto& family : impl_->routes->Collect()) {
    for (const auto& m : family.metric) {
      RuleCount rc;
      for (const auto& l : m.label) {
        if (l.name == "rule") rc.rule = l.value;
        if (l.name == "target") rc.target = l.value;
      }
      rc.count = static_cast<uint64_t>(m.counter.value);
      out.push_back(std::move(rc));
    }
  }
  return out;
}

void Metrics::mirror_lag(uint64_t* count, double* sum_seconds) const {
  *count = 0;
  *sum_seconds = 0;
  for (const auto& family : impl_->hot->Collect()) {
    if (family.name != "pgtandem_mirror_lag_seconds") continue;
    for (const auto& m : family.metric) {
      *count += m.histogram.sample_count;
      *sum_seconds += m.histogram.sample_sum;
    }
  }
}

std::string Metrics::serialize() const {
  auto families = impl_->registry->Collect();
  for (const auto* c : {static_cast<const prometheus::Collectable*>(impl_->hot.get()),
                        static_cast<const prometheus::Collectable*>(impl_->routes.get())}) {
    auto more = c->Collect();
    families.insert(families.end(), std::make_move_iterator(more.begin()),
                    std::make_move_iterator(more.end()));
  }
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace pgtandem::proxy

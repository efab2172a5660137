// Prometheus metrics (proxy/telemetry/metrics.h): every family registered in one place, the hot
// per-worker counters and the scrape-time families. Size: ~770 lines, one file so that a metric's
// name, help and labels are found once; the seam to split along is the hot counters (worker side)
// vs the scrape-time rendering (admin side).
#include "proxy/telemetry/metrics.h"

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <array>
#include <limits>
#include <map>
#include <mutex>

namespace pgtandem::proxy {

namespace {

// One Prometheus histogram summed over the workers' LatencyHistograms.
template <typename Get>
prometheus::ClientMetric sum_histograms(const std::vector<const WorkerStats*>& workers, Get get) {
  prometheus::ClientMetric cm;
  uint64_t cumulative = 0;
  uint64_t sum_ns = 0;
  for (size_t i = 0; i <= LatencyHistogram::kBounds.size(); ++i) {
    for (const auto* w : workers) cumulative += get(*w).bucket(i);
    prometheus::ClientMetric::Bucket b;
    b.cumulative_count = cumulative;
    b.upper_bound = i < LatencyHistogram::kBounds.size() ? LatencyHistogram::kBounds[i]
                                                         : std::numeric_limits<double>::infinity();
    cm.histogram.bucket.push_back(b);
  }
  for (const auto* w : workers) sum_ns += get(*w).sum_ns();
  cm.histogram.sample_count = cumulative;
  cm.histogram.sample_sum = static_cast<double>(sum_ns) * 1e-9;
  return cm;
}

// Aggregates the per-worker hot-path stats at scrape time.
class WorkerStatsCollectable : public prometheus::Collectable {
 public:
  explicit WorkerStatsCollectable(std::vector<std::string> targets) : targets_(std::move(targets)) {}

  void add(const WorkerStats* s) {
    std::lock_guard lock(mu_);
    workers_.push_back(s);
  }

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::lock_guard lock(mu_);
    std::vector<prometheus::MetricFamily> out;
    const char* dirs[2] = {"frontend", "backend"};

    prometheus::MetricFamily bytes{"pgtandem_bytes_total",
                                   "Bytes relayed, by direction (frontend: client to server)",
                                   prometheus::MetricType::Counter, {}};
    prometheus::MetricFamily msgs{"pgtandem_messages_total",
                                  "Protocol messages relayed, by direction",
                                  prometheus::MetricType::Counter, {}};
    for (size_t d = 0; d < 2; ++d) {
      uint64_t b = 0, m = 0;
      for (const auto* w : workers_) {
        b += w->bytes[d].get();
        m += w->messages[d].get();
      }
      prometheus::ClientMetric cb;
      cb.label = {{"direction", dirs[d]}};
      cb.counter.value = static_cast<double>(b);
      bytes.metric.push_back(cb);
      prometheus::ClientMetric cm;
      cm.label = {{"direction", dirs[d]}};
      cm.counter.value = static_cast<double>(m);
      msgs.metric.push_back(cm);
    }
    out.push_back(std::move(bytes));
    out.push_back(std::move(msgs));

    prometheus::MetricFamily lat{
        "pgtandem_query_duration_seconds",
        "Time from a client request to the target's ReadyForQuery, by target",
        prometheus::MetricType::Histogram,
        {}};
    for (size_t t = 0; t < targets_.size() && t < kMaxTargets; ++t) {
      prometheus::ClientMetric cm =
          sum_histograms(workers_, [t](const WorkerStats& w) -> const LatencyHistogram& {
            return w.query_latency[t];
          });
      cm.label = {{"target", targets_[t]}};
      lat.metric.push_back(std::move(cm));
    }
    out.push_back(std::move(lat));

    prometheus::MetricFamily lag{
        "pgtandem_mirror_lag_seconds",
        "Time from the primary's answer to the mirror having applied the same write",
        prometheus::MetricType::Histogram,
        {}};
    lag.metric.push_back(sum_histograms(
        workers_, [](const WorkerStats& w) -> const LatencyHistogram& { return w.mirror_lag; }));
    out.push_back(std::move(lag));

    if (queue_bytes_ != nullptr) {
      prometheus::MetricFamily q{"pgtandem_mirror_queue_bytes",
                                 "Bytes of writes waiting for the mirror, all sessions",
                                 prometheus::MetricType::Gauge,
                                 {}};
      prometheus::ClientMetric cm;
      cm.gauge.value = static_cast<double>(queue_bytes_->load(std::memory_order_relaxed));
      q.metric.push_back(cm);
      out.push_back(std::move(q));
    }
    if (journal_bytes_) {
      prometheus::MetricFamily j{"pgtandem_mirror_journal_bytes",
                                 "Size of the mirror journal file",
                                 prometheus::MetricType::Gauge,
                                 {}};
      prometheus::ClientMetric cm;
      cm.gauge.value = static_cast<double>(journal_bytes_());
      j.metric.push_back(cm);
      out.push_back(std::move(j));
    }
    for (const auto& g : gauges_) {
      prometheus::MetricFamily f{g.name, g.help, prometheus::MetricType::Gauge, {}};
      prometheus::ClientMetric cm;
      cm.gauge.value = g.value();
      f.metric.push_back(cm);
      out.push_back(std::move(f));
    }
    if (extra_) {
      for (const auto& sample : extra_()) {
        if (out.empty() || out.back().name != sample.name) {
          out.push_back(prometheus::MetricFamily{
              sample.name, sample.help,
              sample.counter ? prometheus::MetricType::Counter : prometheus::MetricType::Gauge,
              {}});
        }
        prometheus::ClientMetric cm;
        if (!sample.label_key.empty()) cm.label = {{sample.label_key, sample.label_value}};
        if (sample.counter) {
          cm.counter.value = sample.value;
        } else {
          cm.gauge.value = sample.value;
        }
        out.back().metric.push_back(cm);
      }
    }
    return out;
  }

 private:
  std::vector<std::string> targets_;
  mutable std::mutex mu_;

 public:
  void set_mirror_sources(const std::atomic<int64_t>* q, std::function<uint64_t()> j) {
    std::lock_guard lock(mu_);
    queue_bytes_ = q;
    journal_bytes_ = std::move(j);
  }
  void add_gauge(std::string name, std::string help, std::function<double()> value) {
    std::lock_guard lock(mu_);
    for (auto& g : gauges_) {
      if (g.name == name) {
        g.help = std::move(help);
        g.value = std::move(value);
        return;
      }
    }
    gauges_.push_back({std::move(name), std::move(help), std::move(value)});
  }
  void set_extra_source(std::function<std::vector<Metrics::Sample>()> source) {
    std::lock_guard lock(mu_);
    extra_ = std::move(source);
  }

 private:
  const std::atomic<int64_t>* queue_bytes_ = nullptr;
  std::function<uint64_t()> journal_bytes_;
  struct Gauge {
    std::string name;
    std::string help;
    std::function<double()> value;
  };
  std::vector<Gauge> gauges_;
  std::function<std::vector<Metrics::Sample>()> extra_;
  std::vector<const WorkerStats*> workers_;
};

// Route decision counters. Each worker owns one RouteCounters (single writer, relaxed), with a bank
// per generation modulo kRouteBanks, so a session that still decides with the previous snapshot's
// rules (until its transaction boundary) is counted under that snapshot's rule names. Counts are
// kept across reloads, by rule name: when a bank is reused for a new generation, what it counted
// so far is folded into per-name totals first. Only a session deciding with a snapshot
// kRouteBanks generations old is counted under the wrong names.
constexpr size_t kRouteBanks = 4;
constexpr size_t kRouteSlots = kMaxRouteRules + 2;  // 0: default, 1..256: rules, 257: other
constexpr size_t kDefaultSlot = 0;
constexpr size_t kOtherSlot = kMaxRouteRules + 1;
// Names of rules that existed once are kept (their counters must not go back); past this many,
// further ones are folded into "other".
constexpr size_t kMaxRetiredRuleNames = 1024;

struct alignas(64) RouteCounters {
  RelaxedCounter decisions[kRouteBanks][kRouteSlots][kMaxTargets];
};

class RouteCollectable : public prometheus::Collectable {
 public:
  explicit RouteCollectable(std::vector<std::string> targets) : targets_(std::move(targets)) {}

  // Before serving starts: the vector is not resized afterwards, so workers index it unlocked.
  RouteCounters* add_worker() {
    std::lock_guard lock(mu_);
    workers_.push_back(std::make_unique<RouteCounters>());
    return workers_.back().get();
  }
  const std::vector<std::unique_ptr<RouteCounters>>& workers() const { return workers_; }

  void set_rules(uint64_t generation, std::vector<std::string> names) {
    std::lock_guard lock(mu_);
    Bank& bank = banks_[generation % kRouteBanks];
    if (bank.generation != 0) {
      for (size_t s = 0; s < kRouteSlots; ++s) {
        for (size_t t = 0; t < kMaxTargets; ++t) {
          const uint64_t now = sum(generation % kRouteBanks, s, t);
          const uint64_t delta = now - bank.base[s][t];
          bank.base[s][t] = now;
          if (delta != 0) retired_slot(label(bank, s))[t] += delta;
        }
      }
    }
    bank.generation = generation;
    bank.names = std::move(names);
    current_ = generation;
  }

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::lock_guard lock(mu_);
    std::map<std::string, std::array<uint64_t, kMaxTargets>> totals = retired_;
    totals.try_emplace("default");
    for (size_t b = 0; b < kRouteBanks; ++b) {
      const Bank& bank = banks_[b];
      if (bank.generation == 0) continue;
      if (bank.generation == current_)
        for (const auto& n : bank.names) totals.try_emplace(n);
      for (size_t s = 0; s < kRouteSlots; ++s) {
        for (size_t t = 0; t < kMaxTargets; ++t) {
          const uint64_t delta = sum(b, s, t) - bank.base[s][t];
          if (delta != 0) totals[label(bank, s)][t] += delta;
        }
      }
    }
    prometheus::MetricFamily f{"pgtandem_route_decisions_total",
                               "Reads routed, by the rule that decided (default: none matched) "
                               "and the target they went to",
                               prometheus::MetricType::Counter,
                               {}};
    for (const auto& [rule, counts] : totals) {
      for (size_t t = 0; t < targets_.size() && t < kMaxTargets; ++t) {
        prometheus::ClientMetric cm;
        cm.label = {{"rule", rule}, {"target", targets_[t]}};
        cm.counter.value = static_cast<double>(counts[t]);
        f.metric.push_back(std::move(cm));
      }
    }
    return {std::move(f)};
  }

 private:
  struct Bank {
    uint64_t generation = 0;  // 0: never used
    std::vector<std::string> names;
    uint64_t base[kRouteSlots][kMaxTargets] = {};  // counted before this generation took the bank
  };

  static std::string label(const Bank& bank, size_t slot) {
    if (slot == kDefaultSlot) return "default";
    if (slot == kOtherSlot || slot - 1 >= bank.names.size()) return "other";
    return bank.names[slot - 1];
  }

  std::array<uint64_t, kMaxTargets>& retired_slot(const std::string& name) {
    auto it = retired_.find(name);
    if (it != retired_.end()) return it->second;
    if (retired_.size() >= kMaxRetiredRuleNames) return retired_["other"];
    return retired_[name];
  }

  uint64_t sum(size_t bank, size_t slot, size_t target) const {
    uint64_t total = 0;
    for (const auto& w : workers_) total += w->decisions[bank][slot][target].get();
    return total;
  }

  std::vector<std::string> targets_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<RouteCounters>> workers_;
  Bank banks_[kRouteBanks];
  uint64_t current_ = 0;
  std::map<std::string, std::array<uint64_t, kMaxTargets>> retired_;
};

}  // namespace

struct Metrics::Impl {
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  std::shared_ptr<WorkerStatsCollectable> hot;
  prometheus::Counter* sessions = nullptr;
  prometheus::Gauge* clients = nullptr;
  std::vector<prometheus::Counter*> connect_failures;
  prometheus::Counter* rejected[3] = {};
  prometheus::Counter* protocol_errors[3] = {};
  prometheus::Counter* cancels[2] = {};
  prometheus::Counter* flips[2] = {};
  prometheus::Family<prometheus::Counter>* cutovers = nullptr;
  prometheus::Histogram* cutover_pause = nullptr;
  prometheus::Gauge* cutover_epoch = nullptr;
  prometheus::Counter* kept[4] = {};
  prometheus::Counter* mirror_writes[6] = {};
  prometheus::Family<prometheus::Counter>* divergences = nullptr;
  // Divergences on rows a backfill has not copied yet (issue 13), counted apart.
  prometheus::Family<prometheus::Counter>* divergences_backfill = nullptr;
  std::function<bool(std::string_view)> backfill_pending;
  std::atomic<uint64_t> divergences_real{0}, divergences_pending{0};
  prometheus::Counter* nondeterministic = nullptr;
  prometheus::Counter* coalesced = nullptr;
  prometheus::Counter* order_waited = nullptr;
  prometheus::Counter* order_timed_out = nullptr;

  prometheus::Counter* reloads[3] = {};
  prometheus::Gauge* generation = nullptr;
  prometheus::Family<prometheus::Gauge>* config_info = nullptr;
  prometheus::Gauge* config_info_current = nullptr;
  std::shared_ptr<RouteCollectable> routes;
  std::vector<RouteCounters*> route_workers;  // index = worker index; fixed once serving
  std::vector<std::array<prometheus::Counter*, 3>> fallbacks;  // [target][reason]
  std::vector<prometheus::Gauge*> breaker_state;
  std::vector<prometheus::Counter*> breaker_trips;
  std::vector<std::array<prometheus::Counter*, 4>> secondary_connects;  // [target][outcome]
  prometheus::Counter* shadow_reads[4] = {};
  prometheus::Family<prometheus::Counter>* shadow_skips = nullptr;
  prometheus::Family<prometheus::Counter>* client_auth = nullptr;
  prometheus::Family<prometheus::Counter>* shadow_mismatches = nullptr;
  prometheus::Family<prometheus::Counter>* shadow_drops = nullptr;
  prometheus::Family<prometheus::Counter>* shadow_fingerprints = nullptr;
  prometheus::Family<prometheus::Counter>* shadow_rechecks = nullptr;
  prometheus::Counter* drain_closed = nullptr;
  prometheus::Gauge* drain_duration = nullptr;
};

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

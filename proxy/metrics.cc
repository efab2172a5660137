#include "proxy/metrics.h"

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <limits>
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

 private:
  const std::atomic<int64_t>* queue_bytes_ = nullptr;
  std::function<uint64_t()> journal_bytes_;
  std::vector<const WorkerStats*> workers_;
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
  prometheus::Counter* mirror_writes[4] = {};
  prometheus::Family<prometheus::Counter>* divergences = nullptr;
  prometheus::Counter* nondeterministic = nullptr;
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
  auto& mw = prometheus::BuildCounter()
                 .Name("pgtandem_mirror_writes_total")
                 .Help("Writes for the mirror target, by outcome")
                 .Register(r);
  impl_->mirror_writes[0] = &mw.Add({{"outcome", "applied"}});
  impl_->mirror_writes[1] = &mw.Add({{"outcome", "failed"}});
  impl_->mirror_writes[2] = &mw.Add({{"outcome", "journaled"}});
  impl_->mirror_writes[3] = &mw.Add({{"outcome", "skipped_rollback"}});
  impl_->divergences = &prometheus::BuildCounter()
                            .Name("pgtandem_mirror_divergences_total")
                            .Help("Mirrored writes whose outcome differed from the primary's, by kind")
                            .Register(r);
  for (const char* kind : {"row_count", "command", "error_on_mirror", "error_on_primary",
                           "error_code", "statements"}) {
    impl_->divergences->Add({{"kind", kind}});
  }
  impl_->nondeterministic = &prometheus::BuildCounter()
                                 .Name("pgtandem_mirror_nondeterministic_writes_total")
                                 .Help("Mirrored writes with now(), random(), nextval(), serial "
                                       "defaults...: the targets may store different values")
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

void Metrics::add_worker(const WorkerStats* stats) { impl_->hot->add(stats); }
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
void Metrics::cancel_request(bool known_session) { impl_->cancels[known_session ? 1 : 0]->Increment(); }

void Metrics::mirror_write(MirrorOutcome outcome) {
  impl_->mirror_writes[static_cast<int>(outcome)]->Increment();
}
void Metrics::mirror_divergence(std::string_view kind) {
  impl_->divergences->Add({{"kind", std::string(kind)}}).Increment();
}
void Metrics::mirror_nondeterministic() { impl_->nondeterministic->Increment(); }
void Metrics::set_mirror_sources(const std::atomic<int64_t>* queue_bytes,
                                 std::function<uint64_t()> journal_bytes) {
  impl_->hot->set_mirror_sources(queue_bytes, std::move(journal_bytes));
}

std::string Metrics::serialize() const {
  auto families = impl_->registry->Collect();
  auto hot = impl_->hot->Collect();
  families.insert(families.end(), std::make_move_iterator(hot.begin()),
                  std::make_move_iterator(hot.end()));
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace pgtandem::proxy

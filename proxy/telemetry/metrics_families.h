// The metric families Prometheus renders at scrape time from the workers' own counters (never
// touched on the hot path beyond a relaxed add): bytes, messages, latencies and the other
// per-worker stats, and the route decisions by rule across reloads. Internal to
// proxy/telemetry/metrics*.cc (heavy: prometheus-cpp).
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <array>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "policy/route/route_safety.h"
#include "proxy/telemetry/stats.h"

namespace pgtandem::proxy::metrics_detail {

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

}  // namespace pgtandem::proxy::metrics_detail

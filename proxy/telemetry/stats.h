// Hot-path statistics. Each worker owns one WorkerStats and is its only writer, so updates are
// plain relaxed load+store (no locked instruction, no shared cache line between workers); the
// admin thread reads them when /metrics is scraped and aggregates (metrics.cc).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace pgtandem::proxy {

class RelaxedCounter {
 public:
  void add(uint64_t n = 1) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  uint64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

// Fixed-bucket latency histogram, single writer.
class LatencyHistogram {
 public:
  // Upper bounds in seconds, Prometheus-style (cumulative on export, +Inf implied).
  static constexpr std::array<double, 16> kBounds = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                     0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                                     1,      2.5,     5,      10};
  void observe(std::chrono::nanoseconds d) {
    const double s = static_cast<double>(d.count()) * 1e-9;
    size_t i = 0;
    while (i < kBounds.size() && s > kBounds[i]) ++i;
    buckets_[i].add();
    sum_ns_.add(static_cast<uint64_t>(d.count()));
  }
  uint64_t bucket(size_t i) const { return buckets_[i].get(); }  // i == kBounds.size(): +Inf
  uint64_t sum_ns() const { return sum_ns_.get(); }

 private:
  std::array<RelaxedCounter, kBounds.size() + 1> buckets_;
  RelaxedCounter sum_ns_;
};

inline constexpr size_t kMaxTargets = 2;  // old, new

enum StatDirection : size_t { kFrontendDir = 0, kBackendDir = 1 };

struct alignas(64) WorkerStats {
  RelaxedCounter bytes[2];
  RelaxedCounter messages[2];
  LatencyHistogram query_latency[kMaxTargets];
  LatencyHistogram mirror_lag;  // primary's answer -> mirror applied, per unit
};

}  // namespace pgtandem::proxy

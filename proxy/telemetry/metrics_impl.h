// Metrics::Impl: the registry and every family's handle, shared by the registration
// (proxy/telemetry/metrics.cc) and the recording (metrics_record.cc). Internal (heavy:
// prometheus-cpp).
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "proxy/telemetry/metrics.h"
#include "proxy/telemetry/metrics_families.h"

namespace pgtandem::proxy {

using metrics_detail::RouteCollectable;
using metrics_detail::RouteCounters;
using metrics_detail::WorkerStatsCollectable;

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

}  // namespace pgtandem::proxy

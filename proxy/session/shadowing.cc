// Shadow reads (issue 5): sampling a read that stays on the primary, and handing the primary's
// answer with the request to the shadow lane, which runs it on the other target and compares.
#include "proxy/session/session_state.h"

#include <algorithm>
#include <string>

#include "policy/shadow/shadow_request.h"
#include "protocol/message_types.h"

namespace pgtandem::proxy::session {

namespace {

// Whether a config shadows any read: its [shadow] rate or some rule's.
bool shadow_configured(const config::Config& c) {
  if (c.shadow.sample_rate > 0) return true;
  for (const auto& r : c.routes) {
    if (r.shadow_sample_rate && *r.shadow_sample_rate > 0) return true;
  }
  return false;
}

// MurmurHash3's fmix64: spreads a session's read counter over the key space.
uint64_t fmix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb53ca7b0a1b3ULL;
  k ^= k >> 33;
  return k;
}

}  // namespace

void Session::refresh_shadow_settings() {
  const config::Config& c = snap_ ? *snap_->config : *state_.config;
  shadowing_ = shadow_configured(c);
  if (!shadowing_) {
    shadow_options_.reset();
    return;
  }
  auto options = std::make_shared<policy::DigestOptions>();
  options->ignore_columns = c.shadow.ignore_columns;
  options->float_significant_digits = c.shadow.float_significant_digits;
  options->float_absolute_tolerance = c.shadow.float_tolerance;
  options->ignore_column_order = c.shadow.ignore_column_order;
  // A rule's own comparison options (rule index = its place in [[routes]]) over [shadow]'s.
  shadow_rule_options_.assign(c.routes.size(), nullptr);
  for (size_t i = 0; i < c.routes.size(); ++i) {
    const config::Route& r = c.routes[i];
    if (!r.shadow_ignore_columns && !r.shadow_float_significant_digits &&
        !r.shadow_float_tolerance && !r.shadow_ignore_column_order) {
      continue;
    }
    auto own = std::make_shared<policy::DigestOptions>(*options);
    if (r.shadow_ignore_columns) own->ignore_columns = *r.shadow_ignore_columns;
    if (r.shadow_float_significant_digits) {
      own->float_significant_digits = r.shadow_float_significant_digits;
    }
    if (r.shadow_float_tolerance) own->float_absolute_tolerance = r.shadow_float_tolerance;
    if (r.shadow_ignore_column_order) own->ignore_column_order = *r.shadow_ignore_column_order;
    shadow_rule_options_[i] = std::move(own);
  }
  shadow_options_ = std::move(options);
}

policy::ShadowSampler& Session::shadow_sampler() {
  // One per worker thread: the rate limit takes no lock, and each worker admits its share of it.
  // Rebuilt when another config snapshot (or another server, in tests) asks.
  struct PerWorker {
    const ServerState* state = nullptr;
    uint64_t generation = 0;
    std::optional<policy::ShadowSampler> sampler;
  };
  thread_local PerWorker w;
  if (!w.sampler || w.state != &state_ || w.generation != snap_->generation) {
    const auto& c = *snap_->config;
    std::optional<policy::ShadowSampler::RateLimit> limit;
    if (c.shadow.max_per_second > 0) {
      const double share =
          c.shadow.max_per_second / static_cast<double>(std::max<size_t>(1, state_.workers.size()));
      limit = policy::ShadowSampler::RateLimit{share, std::max(1.0, share)};
    }
    w.sampler.emplace(c.routing.hash_seed, limit);
    w.state = &state_;
    w.generation = snap_->generation;
  }
  return *w.sampler;
}

// A read that stays on the primary: sample it, and if it is to be shadowed, collect the primary's
// answer (pump_backend) and run it on the link once that answer is complete.
void Session::consider_shadow(std::string_view request, std::string_view sql, bool cursor) {
  if (!mirror_ || !shadow_options_ || shadow_ || !snap_) return;
  const double rate = decision_.shadow_sample_rate.value_or(snap_->config->shadow.sample_rate);
  if (!(rate > 0)) return;
  // Only a read alone in flight and outside a transaction: the primary's next answer is its own,
  // and it saw what the other target holds once the session's writes are applied there.
  if (tracker_.outstanding() != 1 || capture_->in_transaction()) return;
  const uint64_t key = route_info_.session_key ^ fmix64(++shadow_seq_);
  switch (shadow_sampler().decide(key, rate, Clock::now())) {
    case policy::ShadowSampler::Outcome::kNotSampled:
      return;
    case policy::ShadowSampler::Outcome::kRateLimited:
      state_.metrics->shadow_drop("rate_limit");
      return;
    case policy::ShadowSampler::Outcome::kSampled:
      break;
  }
  std::string_view skip;
  policy::ReadShape shape;
  std::string shadow_request;
  if (cursor) {
    skip = "cursor";
  } else if (request.size() > kShadowMaxRequest) {
    skip = "too_large";
  } else if (last_classification_.multi_statement) {
    skip = "multi_statement";
  } else if (wrote_unmirrored_ || !mirror_->drained()) {
    skip = "writes_pending";  // the other target lacks (or does not yet have) the session's writes
  } else if (!policy::shadow_request(
                 request,
                 [this](std::string_view name) -> const std::string* {
                   return capture_ ? capture_->parse_message(name) : nullptr;
                 },
                 &shadow_request)) {
    skip = "named_statement";  // a statement pgtandem does not know the text of
  } else {
    shape = policy::analyze_read(sql, last_classification_);
    if (shape.nondeterministic != policy::NondeterministicReason::kNone) {
      skip = policy::to_string(shape.nondeterministic);
    }
  }
  if (!skip.empty()) {
    state_.metrics->shadow_skip(skip);
    return;
  }
  if (shadow_lane_ && shadow_lane_->is_full()) {
    state_.metrics->shadow_drop("queue_full");  // the other target is slower than the primary
    return;
  }
  std::shared_ptr<const policy::DigestOptions> options = shadow_options_;
  if (decision_.rule >= 0 && static_cast<size_t>(decision_.rule) < shadow_rule_options_.size() &&
      shadow_rule_options_[static_cast<size_t>(decision_.rule)]) {
    options = shadow_rule_options_[static_cast<size_t>(decision_.rule)];
  }
  auto read = std::make_shared<ShadowRead>(std::move(options), shape.top_level_order_by);
  read->request = std::move(shadow_request);
  read->statement.assign(sql);
  read->link_units = mirror_->pushed();
  read->rule = decision_.rule >= 0 && snap_->rules
                   ? snap_->rules->rule_name(static_cast<size_t>(decision_.rule))
                   : std::string("default");
  shadow_ = std::move(read);
}

// pump_backend: the primary's answer to the read being shadowed, up to its ReadyForQuery.
void Session::on_shadow_answer(const Header& h, std::string_view body) {
  if (h.type != protocol::backend::kReadyForQuery) {
    shadow_->on_primary(h, body);
    return;
  }
  std::shared_ptr<ShadowRead> read = std::move(shadow_);
  shadow_.reset();
  if (read->abandoned) {
    state_.metrics->shadow_skip("row_too_large");
    return;
  }
  if (body.empty() || body[0] != 'I') {
    state_.metrics->shadow_skip("transaction");
    return;
  }
  if (read->results != 1) {
    state_.metrics->shadow_skip("multi_statement");
    return;
  }
  const auto& c = snap_->config->shadow;
  ShadowRunOptions options;
  options.timeout_ms = c.statement_timeout_ms;
  options.mirror_writes = mirror_writes_;
  options.redact_values = c.redact_values;
  options.mismatch_log = c.mismatch_log;
  options.recheck_delay_ms = c.recheck_delay_ms;
  if (!shadow_lane_) shadow_lane_ = std::make_unique<ShadowLane>(mirror_);
  shadow_lane_->submit(std::move(read), std::move(options));
}

}  // namespace pgtandem::proxy::session

// [breaker] (the circuit breaker on routed reads) and [shadow] (shadow reads and their
// comparison).
#include "config/validator.h"

namespace pgtandem::config::detail {

void Validator::validate_breaker(const toml::table& table, Breaker& out) {
  for (auto&& [key, node] : table) {
    const std::string_view k = key.str();
    if (k == "enabled") {
      set_bool(node, "breaker.enabled", out.enabled);
    } else if (k == "window_ms") {
      set_uint(node, "breaker.window_ms", 1, kMaxTimeoutMs, out.window_ms);
    } else if (k == "min_requests") {
      set_uint(node, "breaker.min_requests", 1, kMaxCount, out.min_requests);
    } else if (k == "error_rate") {
      set_breaker_rate(node, "breaker.error_rate", out.error_rate);
    } else if (k == "mismatch_rate") {
      set_breaker_rate(node, "breaker.mismatch_rate", out.mismatch_rate);
    } else if (k == "cooldown_ms") {
      set_uint(node, "breaker.cooldown_ms", 1, kMaxTimeoutMs, out.cooldown_ms);
    } else if (k == "half_open_requests") {
      set_uint(node, "breaker.half_open_requests", 1, kMaxCount, out.half_open_requests);
    } else {
      unknown_key(key, "in [breaker]");
    }
  }
}

// The breaker opens when rate >= threshold: a threshold of 0 would open it with no failure.
void Validator::set_breaker_rate(const toml::node& node, std::string_view what, double& out) {
  auto v = get_number(node, what, 0, 1);
  if (!v) return;
  if (*v == 0) {
    error(&node.source(),
          std::string(what) +
              " must be above 0: the breaker opens when the rate reaches it, so 0 "
              "would open it with no failure at all");
    return;
  }
  out = *v;
}

void Validator::validate_shadow(const toml::table& table, Shadow& out) {
  for (auto&& [key, node] : table) {
    const std::string_view k = key.str();
    if (k == "sample_rate") {
      if (auto v = get_number(node, "shadow.sample_rate", 0, 1)) out.sample_rate = *v;
    } else if (k == "max_per_second") {
      if (auto v = get_number(node, "shadow.max_per_second", 0, 1e6)) out.max_per_second = *v;
    } else if (k == "statement_timeout_ms") {
      set_uint(node, "shadow.statement_timeout_ms", 1, kMaxTimeoutMs, out.statement_timeout_ms);
    } else if (k == "recheck_delay_ms") {
      set_uint(node, "shadow.recheck_delay_ms", 0, kMaxTimeoutMs, out.recheck_delay_ms);
    } else if (k == "mismatch_log") {
      if (auto v = get_string(node, "shadow.mismatch_log")) out.mismatch_log = *v;
    } else if (k == "redact_values") {
      set_bool(node, "shadow.redact_values", out.redact_values);
    } else if (k == "ignore_columns") {
      set_string_list(node, "shadow.ignore_columns", out.ignore_columns);
    } else if (k == "float_significant_digits") {
      if (auto v = get_int(node, "shadow.float_significant_digits", 1, 17)) {
        out.float_significant_digits = static_cast<int>(*v);
      }
    } else if (k == "float_tolerance") {
      if (auto v = get_positive(node, "shadow.float_tolerance")) out.float_tolerance = *v;
    } else if (k == "ignore_column_order") {
      set_bool(node, "shadow.ignore_column_order", out.ignore_column_order);
    } else {
      unknown_key(key, "in [shadow]");
    }
  }
}

}  // namespace pgtandem::config::detail

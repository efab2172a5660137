// [limits], [shutdown] and [log]: plain knobs, one key one value.
#include "config/validator.h"

namespace pgtandem::config::detail {

void Validator::validate_limits(const toml::table& table, Limits& out) {
  for (auto&& [key, node] : table) {
    const std::string_view k = key.str();
    if (k == "max_message_size") {
      set_uint(node, "limits.max_message_size", kMinMessageSize, kMaxMessageSize,
               out.max_message_size);
    } else if (k == "startup_timeout_ms") {
      set_uint(node, "limits.startup_timeout_ms", 1, kMaxTimeoutMs, out.startup_timeout_ms);
    } else if (k == "connect_timeout_ms") {
      set_uint(node, "limits.connect_timeout_ms", 1, kMaxTimeoutMs, out.connect_timeout_ms);
    } else if (k == "max_unauthenticated") {
      set_uint(node, "limits.max_unauthenticated", 1, kMaxConnections, out.max_unauthenticated);
    } else if (k == "max_client_connections") {
      set_uint(node, "limits.max_client_connections", 1, kMaxConnections,
               out.max_client_connections);
    } else {
      unknown_key(key, "in [limits]");
    }
  }
}

void Validator::validate_shutdown(const toml::table& table, Shutdown& out) {
  for (auto&& [key, node] : table) {
    if (key.str() == "drain_timeout_ms") {
      set_uint(node, "shutdown.drain_timeout_ms", 0, 3600000, out.drain_timeout_ms);
    } else {
      unknown_key(key, "in [shutdown]");
    }
  }
}

void Validator::validate_log(const toml::table& table, Log& out) {
  for (auto&& [key, node] : table) {
    const std::string_view k = key.str();
    if (k == "level") {
      set_enum(node, "log.level", {"debug", "info", "warn", "error"}, out.level);
    } else if (k == "format") {
      set_enum(node, "log.format", {"logfmt", "json"}, out.format);
    } else if (k == "statements") {
      set_bool(node, "log.statements", out.statements);
    } else {
      unknown_key(key, "in [log]");
    }
  }
}

}  // namespace pgtandem::config::detail

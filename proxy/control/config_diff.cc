#include "proxy/control/config_diff.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <optional>
#include <string_view>
#include <utility>

namespace pgtandem::proxy {
namespace {

// Bare when unambiguous (`primary: old -> new`), else double-quoted with JSON escapes.
std::string format_string(std::string_view s) {
  const bool bare = !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.' || c == ':' || c == '/' || c == '@' || c == '+' || c == '*';
  });
  if (bare) return std::string(s);
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  out.push_back('"');
  return out;
}

std::string quoted(std::string_view s) {
  std::string f = format_string(s);
  return f.front() == '"' ? f : "\"" + f + "\"";
}

std::string format_value(const std::string& v) { return format_string(v); }
std::string format_value(bool v) { return v ? "true" : "false"; }
std::string format_value(uint64_t v) { return std::to_string(v); }
std::string format_value(uint32_t v) { return std::to_string(v); }
std::string format_value(uint16_t v) { return std::to_string(v); }

std::string format_value(double v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string format_value(const std::optional<double>& v) {
  return v ? format_value(*v) : std::string("(unset)");
}

std::string format_value(const std::optional<int>& v) {
  return v ? std::to_string(*v) : std::string("(unset)");
}

std::string format_value(const std::optional<bool>& v) {
  return v ? format_value(*v) : std::string("(unset)");
}

std::string format_value(const std::vector<std::string>& v);
std::string format_value(const std::optional<std::vector<std::string>>& v) {
  return v ? format_value(*v) : std::string("(unset)");
}

std::string format_value(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i != 0) out += ", ";
    out += quoted(v[i]);
  }
  out += "]";
  return out;
}

std::string format_value(const std::vector<std::pair<std::string, std::vector<std::string>>>& v) {
  std::string out = "{";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i != 0) out += ", ";
    out += format_string(v[i].first) + " = " + format_value(v[i].second);
  }
  out += "}";
  return out;
}

std::vector<std::string> host_ports(const std::vector<config::ListenAddress>& v) {
  std::vector<std::string> out;
  for (const auto& a : v) out.push_back(config::format_host_port(a.host, a.port));
  return out;
}

class Differ {
 public:
  template <typename T>
  void field(const std::string& key, const T& before, const T& after, bool restart = false) {
    if (before == after) return;
    add(key, key + ": " + format_value(before) + " -> " + format_value(after), restart);
  }

  void add(std::string key, std::string description, bool restart) {
    changes_.push_back({std::move(key), std::move(description), restart});
  }

  std::vector<ConfigChange> take() { return std::move(changes_); }

 private:
  std::vector<ConfigChange> changes_;
};

void diff_targets(Differ& d, const config::Config& before, const config::Config& after) {
  std::vector<std::string> names;
  for (const auto* c : {&before, &after})
    for (const auto& t : c->targets)
      if (std::find(names.begin(), names.end(), t.name) == names.end()) names.push_back(t.name);
  for (const auto& name : names) {
    const config::Target* b = before.find_target(name);
    const config::Target* a = after.find_target(name);
    const std::string prefix = "targets." + name;
    if (b == nullptr || a == nullptr) {
      d.add(prefix, prefix + (b == nullptr ? ": added" : ": removed"), true);
      continue;
    }
    d.field(prefix + ".host", b->host, a->host, true);
    d.field(prefix + ".port", b->port, a->port, true);
    d.field(prefix + ".unix_socket_dir", b->unix_socket_dir, a->unix_socket_dir, true);
    d.field(prefix + ".sslmode", b->sslmode, a->sslmode, true);
    d.field(prefix + ".sslrootcert", b->sslrootcert, a->sslrootcert, true);
    d.field(prefix + ".sslcert", b->sslcert, a->sslcert, true);
    d.field(prefix + ".sslkey", b->sslkey, a->sslkey, true);
  }
}

void diff_route(Differ& d, const config::Route& b, const config::Route& a) {
  const std::string p = "routes[" + format_string(a.name) + "].";
  d.field(p + "users", b.match.users, a.match.users);
  d.field(p + "databases", b.match.databases, a.match.databases);
  d.field(p + "application_names", b.match.application_names, a.match.application_names);
  d.field(p + "client_cidrs", b.match.client_cidrs, a.match.client_cidrs);
  d.field(p + "tables", b.match.tables, a.match.tables);
  d.field(p + "fingerprints", b.match.fingerprints, a.match.fingerprints);
  d.field(p + "tags", b.match.tags, a.match.tags);
  // An action switch (target <-> percent) shows as both keys changing, "(unset)" on one side.
  if (b.target != a.target) {
    d.add(p + "target",
          p + "target: " + (b.target.empty() ? "(unset)" : format_string(b.target)) + " -> " +
              (a.target.empty() ? "(unset)" : format_string(a.target)),
          false);
  }
  d.field(p + "percent", b.percent, a.percent);
  d.field(p + "hash_key", b.hash_key, a.hash_key);
  d.field(p + "shadow_sample_rate", b.shadow_sample_rate, a.shadow_sample_rate);
  d.field(p + "shadow_ignore_columns", b.shadow_ignore_columns, a.shadow_ignore_columns);
  d.field(p + "shadow_float_significant_digits", b.shadow_float_significant_digits,
          a.shadow_float_significant_digits);
  d.field(p + "shadow_float_tolerance", b.shadow_float_tolerance, a.shadow_float_tolerance);
  d.field(p + "shadow_ignore_column_order", b.shadow_ignore_column_order,
          a.shadow_ignore_column_order);
}

void diff_routes(Differ& d, const std::vector<config::Route>& before,
                 const std::vector<config::Route>& after) {
  auto find = [](const std::vector<config::Route>& v, const std::string& name) {
    return std::find_if(v.begin(), v.end(), [&](const config::Route& r) { return r.name == name; });
  };
  for (const auto& b : before)
    if (find(after, b.name) == after.end())
      d.add("routes", "routes: removed " + quoted(b.name), false);
  for (const auto& a : after)
    if (find(before, a.name) == before.end())
      d.add("routes", "routes: added " + quoted(a.name), false);
  // First match wins, so the order of the rules that stayed is a change of its own.
  std::vector<std::string> kept_before;
  std::vector<std::string> kept_after;
  for (const auto& b : before)
    if (find(after, b.name) != after.end()) kept_before.push_back(b.name);
  for (const auto& a : after)
    if (find(before, a.name) != before.end()) kept_after.push_back(a.name);
  if (kept_before != kept_after) {
    auto list = [](const std::vector<std::string>& names) {
      std::string out;
      for (const auto& n : names) out += (out.empty() ? "" : ", ") + quoted(n);
      return out;
    };
    d.add("routes", "routes: order " + list(kept_before) + " -> " + list(kept_after), false);
  }
  for (const auto& a : after) {
    auto b = find(before, a.name);
    if (b != before.end()) diff_route(d, *b, a);
  }
}

}  // namespace

std::vector<ConfigChange> diff_configs(const config::Config& before, const config::Config& after) {
  Differ d;
  d.field("primary", before.primary, after.primary);
  d.field("workers", before.workers, after.workers, true);
  d.field("io_backend", before.io_backend, after.io_backend, true);
  d.field("state_dir", before.state_dir, after.state_dir, true);
  d.field("mirror_writes", before.mirror_writes, after.mirror_writes);

  d.field("listen.addresses", host_ports(before.listen), host_ports(after.listen), true);
  d.field("listen.unix_socket_dir", before.unix_socket_dir, after.unix_socket_dir, true);

  diff_targets(d, before, after);
  // [tls] applies to new client connections at once (the files are read again on every reload).
  d.field("tls.mode", before.tls.mode, after.tls.mode);
  d.field("tls.cert_file", before.tls.cert_file, after.tls.cert_file);
  d.field("tls.key_file", before.tls.key_file, after.tls.key_file);
  d.field("tls.ca_file", before.tls.ca_file, after.tls.ca_file);
  d.field("tls.min_version", before.tls.min_version, after.tls.min_version);

  const auto& lb = before.limits;
  const auto& la = after.limits;
  d.field("limits.max_message_size", lb.max_message_size, la.max_message_size, true);
  d.field("limits.startup_timeout_ms", lb.startup_timeout_ms, la.startup_timeout_ms, true);
  d.field("limits.connect_timeout_ms", lb.connect_timeout_ms, la.connect_timeout_ms, true);
  d.field("limits.max_unauthenticated", lb.max_unauthenticated, la.max_unauthenticated, true);
  d.field("limits.max_client_connections", lb.max_client_connections, la.max_client_connections,
          true);

  const std::string admin_before =
      before.admin.enabled()
          ? config::format_host_port(before.admin.listen_host, before.admin.listen_port)
          : std::string("off");
  const std::string admin_after =
      after.admin.enabled()
          ? config::format_host_port(after.admin.listen_host, after.admin.listen_port)
          : std::string("off");
  d.field("admin.listen", admin_before, admin_after, true);
  // Never the token itself: changes end up in the log and the audit file.
  if (before.admin.token != after.admin.token) {
    d.add("admin.token", "admin.token: changed", true);
  }
  d.field("admin.token_file", before.admin.token_file, after.admin.token_file, true);
  d.field("shutdown.drain_timeout_ms", before.shutdown.drain_timeout_ms,
          after.shutdown.drain_timeout_ms);

  const auto& mb = before.mirror;
  const auto& ma = after.mirror;
  d.field("mirror.credentials_file", mb.credentials_file, ma.credentials_file, true);
  d.field("mirror.session_queue_bytes", mb.session_queue_bytes, ma.session_queue_bytes);
  d.field("mirror.global_queue_bytes", mb.global_queue_bytes, ma.global_queue_bytes);
  d.field("mirror.overflow", mb.overflow, ma.overflow);
  d.field("mirror.journal_path", mb.journal_path, ma.journal_path, true);
  d.field("mirror.journal_fsync", mb.journal_fsync, ma.journal_fsync, true);
  d.field("mirror.journal_fsync_interval_ms", mb.journal_fsync_interval_ms,
          ma.journal_fsync_interval_ms, true);
  d.field("mirror.journal_max_bytes", mb.journal_max_bytes, ma.journal_max_bytes);
  d.field("mirror.journal_full", mb.journal_full, ma.journal_full);
  d.field("mirror.journal_full_timeout_ms", mb.journal_full_timeout_ms,
          ma.journal_full_timeout_ms);
  d.field("mirror.reconnect_interval_ms", mb.reconnect_interval_ms, ma.reconnect_interval_ms);
  d.field("mirror.link_threads", mb.link_threads, ma.link_threads, true);
  d.field("mirror.link_nice", mb.link_nice, ma.link_nice, true);

  d.field("auth.mode", before.auth.mode, after.auth.mode, true);
  d.field("auth.file", before.auth.file, after.auth.file);
  d.field("auth.method", before.auth.method, after.auth.method);

  const auto& cb = before.classifier;
  const auto& ca = after.classifier;
  d.field("classifier.read_only_functions", cb.read_only_functions, ca.read_only_functions, true);
  d.field("classifier.writing_functions", cb.writing_functions, ca.writing_functions, true);
  d.field("classifier.unknown_function_is_write", cb.unknown_function_is_write,
          ca.unknown_function_is_write, true);
  d.field("classifier.catalog_user", cb.catalog_user, ca.catalog_user, true);
  d.field("classifier.catalog_database", cb.catalog_database, ca.catalog_database, true);

  d.field("routing.hash_seed", before.routing.hash_seed, after.routing.hash_seed);
  d.field("routing.read_your_writes", before.routing.read_your_writes,
          after.routing.read_your_writes);
  d.field("routing.fallback_to_primary", before.routing.fallback_to_primary,
          after.routing.fallback_to_primary);
  diff_routes(d, before.routes, after.routes);

  const auto& bb = before.breaker;
  const auto& ba = after.breaker;
  d.field("breaker.enabled", bb.enabled, ba.enabled);
  d.field("breaker.window_ms", bb.window_ms, ba.window_ms);
  d.field("breaker.min_requests", bb.min_requests, ba.min_requests);
  d.field("breaker.error_rate", bb.error_rate, ba.error_rate);
  d.field("breaker.mismatch_rate", bb.mismatch_rate, ba.mismatch_rate);
  d.field("breaker.cooldown_ms", bb.cooldown_ms, ba.cooldown_ms);
  d.field("breaker.half_open_requests", bb.half_open_requests, ba.half_open_requests);

  const auto& sb = before.shadow;
  const auto& sa = after.shadow;
  d.field("shadow.sample_rate", sb.sample_rate, sa.sample_rate);
  d.field("shadow.max_per_second", sb.max_per_second, sa.max_per_second);
  d.field("shadow.statement_timeout_ms", sb.statement_timeout_ms, sa.statement_timeout_ms);
  d.field("shadow.recheck_delay_ms", sb.recheck_delay_ms, sa.recheck_delay_ms);
  d.field("shadow.mismatch_log", sb.mismatch_log, sa.mismatch_log);
  d.field("shadow.redact_values", sb.redact_values, sa.redact_values);
  d.field("shadow.ignore_columns", sb.ignore_columns, sa.ignore_columns);
  d.field("shadow.float_significant_digits", sb.float_significant_digits,
          sa.float_significant_digits);
  d.field("shadow.float_tolerance", sb.float_tolerance, sa.float_tolerance);
  d.field("shadow.ignore_column_order", sb.ignore_column_order, sa.ignore_column_order);

  d.field("log.level", before.log.level, after.log.level);
  d.field("log.format", before.log.format, after.log.format);
  d.field("log.statements", before.log.statements, after.log.statements);
  return d.take();
}

std::vector<std::string> describe_changes(const config::Config& before,
                                          const config::Config& after) {
  std::vector<std::string> out;
  for (auto& c : diff_configs(before, after)) {
    out.push_back(c.restart_required ? c.description + " (restart required)"
                                     : std::move(c.description));
  }
  return out;
}

}  // namespace pgtandem::proxy

// [targets.old] and [targets.new]: where the two servers are and how to reach them (TLS).
#include "config/validator.h"

namespace pgtandem::config::detail {
namespace {

// RFC 1123 host name syntax (letters, digits, '-', '.'; '_' tolerated as DNS in clusters uses it).
bool is_host_name(std::string_view s) {
  if (s.empty() || s.size() > 253 || s.front() == '.' || s.front() == '-') return false;
  size_t label = 0;
  for (char c : s) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
    if (!ok || ++label > 63) return false;
  }
  return true;
}

}  // namespace

void Validator::validate_targets(const toml::table& table, Config& out) {
  const toml::table* old_table = nullptr;
  const toml::table* new_table = nullptr;
  bool old_seen = false;
  bool new_seen = false;
  for (auto&& [key, node] : table) {
    const std::string_view k = key.str();
    if (k == "old") {
      old_seen = true;
      old_table = get_table(node, "targets.old");
    } else if (k == "new") {
      new_seen = true;
      new_table = get_table(node, "targets.new");
    } else {
      unknown_key(key, "in [targets] (the targets are 'old' and 'new')");
    }
  }
  // Point at [targets] when it was written out; an implicit one has no place of its own.
  const toml::source_region* where = table.source().begin.line != 0 ? &table.source() : nullptr;
  if (!old_seen) error(where, "missing [targets.old]: both targets 'old' and 'new' are required");
  if (!new_seen) error(where, "missing [targets.new]: both targets 'old' and 'new' are required");

  Target old_target;
  old_target.name = "old";
  Target new_target;
  new_target.name = "new";
  const size_t errors_before = errors_.size();
  if (old_table != nullptr) validate_target(*old_table, old_target);
  if (new_table != nullptr) validate_target(*new_table, new_target);
  out.targets = {std::move(old_target), std::move(new_target)};

  // Mirroring into the server that also serves as primary would apply every write twice.
  // Skipped when a target had errors: its defaults would make a misleading second error.
  if (old_table != nullptr && new_table != nullptr && errors_.size() == errors_before) {
    const Target& a = out.targets[0];
    const Target& b = out.targets[1];
    const bool same = a.port == b.port && a.unix_socket_dir == b.unix_socket_dir &&
                      (!a.unix_socket_dir.empty() || a.host == b.host);
    if (same) {
      const std::string server = a.unix_socket_dir.empty()
                                     ? format_host_port(a.host, a.port)
                                     : a.unix_socket_dir + "/.s.PGSQL." + std::to_string(a.port);
      error(&new_table->source(), "targets 'old' and 'new' are the same server (" + server +
                                      "): every mirrored write would be applied twice");
    }
  }
}

void Validator::validate_target(const toml::table& table, Target& out) {
  const std::string prefix = "targets." + out.name + ".";
  const std::string where = "in [targets." + out.name + "]";
  const toml::node* dir_node = nullptr;
  const toml::node* sslmode_node = nullptr;
  for (auto&& [key, node] : table) {
    const std::string_view k = key.str();
    if (k == "host") {
      auto v = get_string(node, prefix + "host");
      if (!v) continue;
      if (!is_ipv4(*v) && !is_ipv6(*v) && !is_host_name(*v)) {
        error(&node.source(), prefix + "host '" + *v +
                                  "' is not an IP address (IPv6 without brackets) or host name");
        continue;
      }
      out.host = *v;
    } else if (k == "port") {
      set_uint(node, prefix + "port", 1, 65535, out.port);
    } else if (k == "unix_socket_dir") {
      dir_node = &node;
      if (auto v = get_string(node, prefix + "unix_socket_dir")) out.unix_socket_dir = *v;
    } else if (k == "sslmode") {
      sslmode_node = &node;
      set_enum(node, prefix + "sslmode", {"disable", "prefer", "require", "verify-ca", "verify-full"},
               out.sslmode);
    } else if (k == "sslrootcert") {
      set_path(node, prefix + "sslrootcert", out.sslrootcert);
    } else if (k == "sslcert") {
      set_path(node, prefix + "sslcert", out.sslcert);
    } else if (k == "sslkey") {
      set_path(node, prefix + "sslkey", out.sslkey);
    } else {
      unknown_key(key, where);
    }
  }
  if (dir_node != nullptr && dir_node->is_string()) {
    check_unix_socket_dir(*dir_node, prefix + "unix_socket_dir", out.unix_socket_dir, out.port);
  }
  const toml::source_region* at = sslmode_node != nullptr ? &sslmode_node->source() : &table.source();
  const bool verify = out.sslmode == "verify-ca" || out.sslmode == "verify-full";
  if (verify && out.sslrootcert.empty()) {
    error(at, prefix + "sslmode '" + out.sslmode + "' needs " + prefix + "sslrootcert (the CA file)");
  }
  // libpq never uses TLS over a Unix socket; a mode that insists on it could never connect.
  if (!out.unix_socket_dir.empty() && out.sslmode != "disable" && out.sslmode != "prefer") {
    error(at, prefix + "sslmode '" + out.sslmode + "' cannot be used with unix_socket_dir (no TLS over Unix sockets)");
  }
  if (out.sslcert.empty() != out.sslkey.empty()) {
    error(&table.source(), prefix + "sslcert and " + prefix + "sslkey go together");
  }
}

}  // namespace pgtandem::config::detail

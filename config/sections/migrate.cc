// [migrate]: the migration commands' settings (issue 13: preflight, backfill, verify, repair;
// docs/migration.md). Their command-line flags override these.
#include <cstdlib>

#include "config/validator.h"

namespace pgtandem::config::detail {

namespace {

// "HOST:PORT" or "[v6]:PORT" with a port in 1..65535: nullopt when fine, else what is wrong.
std::optional<std::string> admin_endpoint_problem(const std::string& s) {
  const size_t colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size())
    return "expected HOST:PORT, got '" + s + "'";
  const std::string host = s.substr(0, colon);
  if (host.find(':') != std::string::npos && (host.front() != '[' || host.back() != ']'))
    return "an IPv6 address needs brackets ([::1]:9930), got '" + s + "'";
  const std::string port = s.substr(colon + 1);
  if (port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5 ||
      std::atoi(port.c_str()) < 1 || std::atoi(port.c_str()) > 65535)
    return "the port must be 1..65535, got '" + s + "'";
  return std::nullopt;
}

}  // namespace

void Validator::validate_migrate(const toml::table& table, Migrate& out) {
  for (auto&& [key, node] : table) {
    const std::string_view k = key.str();
    if (k == "user") {
      set_path(node, "migrate.user", out.user);
    } else if (k == "dbname") {
      set_path(node, "migrate.dbname", out.dbname);
    } else if (k == "jobs") {
      set_uint(node, "migrate.jobs", 1, 64, out.jobs);
    } else if (k == "chunk_rows") {
      set_uint(node, "migrate.chunk_rows", 1, int64_t{1} << 31, out.chunk_rows);
    } else if (k == "chunk_memory") {
      set_uint(node, "migrate.chunk_memory", 0, int64_t{1} << 40, out.chunk_memory);
    } else if (k == "max_rate") {
      set_uint(node, "migrate.max_rate", 0, int64_t{1} << 40, out.max_rate);
    } else if (k == "commit_grace_ms") {
      set_uint(node, "migrate.commit_grace_ms", 0, 60000, out.commit_grace_ms);
    } else if (k == "watermark_timeout_ms") {
      set_uint(node, "migrate.watermark_timeout_ms", 1, kMaxTimeoutMs, out.watermark_timeout_ms);
    } else if (k == "recheck_delay_ms") {
      set_uint(node, "migrate.recheck_delay_ms", 0, kMaxTimeoutMs, out.recheck_delay_ms);
    } else if (k == "backfill_mode") {
      set_enum(node, "migrate.backfill_mode", {"auto", "snapshot", "chunked"}, out.backfill_mode);
    } else if (k == "fence_lease_ms") {
      set_uint(node, "migrate.fence_lease_ms", 500, 600000, out.fence_lease_ms);
    } else if (k == "admins") {
      set_string_list(node, "migrate.admins", out.admins);
      if (const auto* array = node.as_array()) {
        for (const toml::node& element : *array) {
          const auto* v = element.as_string();
          if (v == nullptr || v->get().empty()) continue;  // reported by set_string_list
          if (auto problem = admin_endpoint_problem(v->get()))
            error(&element.source(), "migrate.admins: " + *problem);
        }
      }
    } else if (k == "use_admin_token") {
      set_bool(node, "migrate.use_admin_token", out.use_admin_token);
    } else if (k == "state_dir") {
      set_path(node, "migrate.state_dir", out.state_dir);
    } else {
      unknown_key(key, "in [migrate]");
    }
  }
}

}  // namespace pgtandem::config::detail

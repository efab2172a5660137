// [tls]: TLS termination for clients.
#include "config/validator.h"

namespace pgtandem::config::detail {

void Validator::validate_tls(const toml::table& table, Tls& out) {
  const toml::node* mode_node = nullptr;
  for (auto&& [key, node] : table) {
    const std::string_view k = key.str();
    if (k == "mode") {
      mode_node = &node;
      set_enum(node, "tls.mode", {"disable", "allow", "prefer", "require"}, out.mode);
    } else if (k == "cert_file") {
      set_path(node, "tls.cert_file", out.cert_file);
    } else if (k == "key_file") {
      set_path(node, "tls.key_file", out.key_file);
    } else if (k == "ca_file") {
      set_path(node, "tls.ca_file", out.ca_file);
    } else if (k == "min_version") {
      set_enum(node, "tls.min_version", {"1.2", "1.3"}, out.min_version);
    } else {
      unknown_key(key, "in [tls]");
    }
  }
  if (out.enabled() && (out.cert_file.empty() || out.key_file.empty())) {
    error(mode_node != nullptr ? &mode_node->source() : &table.source(),
          "tls.mode '" + out.mode + "' needs tls.cert_file and tls.key_file");
  }
}

}  // namespace pgtandem::config::detail

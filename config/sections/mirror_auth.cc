// [mirror] (write mirroring, its queues and journal), [classifier] (which statements write) and
// [auth] (who checks the client's password).
#include "config/validator.h"

namespace pgtandem::config::detail {

void Validator::validate_mirror(const toml::table& table, Mirror& out) {
  for (auto&& [key, node] : table) {
    const std::string_view k = key.str();
    if (k == "credentials_file") {
      if (auto v = get_string(node, "mirror.credentials_file")) out.credentials_file = *v;
    } else if (k == "session_queue_bytes") {
      set_uint(node, "mirror.session_queue_bytes", 64 << 10, int64_t{1} << 40,
               out.session_queue_bytes);
    } else if (k == "global_queue_bytes") {
      set_uint(node, "mirror.global_queue_bytes", 1 << 20, int64_t{1} << 40,
               out.global_queue_bytes);
    } else if (k == "overflow") {
      set_enum(node, "mirror.overflow", {"journal", "block"}, out.overflow);
    } else if (k == "journal_path") {
      auto v = get_string(node, "mirror.journal_path");
      if (v && v->empty()) {
        error(&node.source(), "mirror.journal_path must not be empty");
      } else if (v) {
        out.journal_path = *v;
      }
    } else if (k == "journal_fsync") {
      set_enum(node, "mirror.journal_fsync", {"always", "interval", "never"}, out.journal_fsync);
    } else if (k == "journal_fsync_interval_ms") {
      set_uint(node, "mirror.journal_fsync_interval_ms", 1, kMaxTimeoutMs,
               out.journal_fsync_interval_ms);
    } else if (k == "journal_max_bytes") {
      set_uint(node, "mirror.journal_max_bytes", 64 << 10, int64_t{1} << 50, out.journal_max_bytes);
    } else if (k == "journal_full") {
      set_enum(node, "mirror.journal_full", {"stop", "block"}, out.journal_full);
    } else if (k == "journal_full_timeout_ms") {
      set_uint(node, "mirror.journal_full_timeout_ms", 1, kMaxTimeoutMs,
               out.journal_full_timeout_ms);
    } else if (k == "reconnect_interval_ms") {
      set_uint(node, "mirror.reconnect_interval_ms", 1, kMaxTimeoutMs, out.reconnect_interval_ms);
    } else if (k == "apply_timeout_ms") {
      set_uint(node, "mirror.apply_timeout_ms", 10, kMaxTimeoutMs, out.apply_timeout_ms);
    } else if (k == "catchup") {
      set_bool(node, "mirror.catchup", out.catchup);
    } else if (k == "link_threads") {
      set_uint(node, "mirror.link_threads", 0, 64, out.link_threads);
    } else if (k == "link_nice") {
      set_uint(node, "mirror.link_nice", 0, 19, out.link_nice);
    } else {
      unknown_key(key, "in [mirror]");
    }
  }
}

void Validator::validate_classifier(const toml::table& table, Classifier& out) {
  for (auto&& [key, node] : table) {
    const std::string_view k = key.str();
    if (k == "read_only_functions") {
      set_string_list(node, "classifier.read_only_functions", out.read_only_functions);
    } else if (k == "writing_functions") {
      set_string_list(node, "classifier.writing_functions", out.writing_functions);
    } else if (k == "unknown_function_is_write") {
      set_bool(node, "classifier.unknown_function_is_write", out.unknown_function_is_write);
    } else if (k == "catalog_user") {
      if (auto v = get_string(node, "classifier.catalog_user")) out.catalog_user = *v;
    } else if (k == "catalog_database") {
      if (auto v = get_string(node, "classifier.catalog_database")) out.catalog_database = *v;
    } else {
      unknown_key(key, "in [classifier]");
    }
  }
}

void Validator::validate_auth(const toml::table& table, Auth& out) {
  const toml::node* mode_node = nullptr;
  for (auto&& [key, node] : table) {
    const std::string_view k = key.str();
    if (k == "mode") {
      mode_node = &node;
      set_enum(node, "auth.mode", {"relay", "file"}, out.mode);
    } else if (k == "file") {
      auto v = get_string(node, "auth.file");
      if (v && v->empty()) {
        error(&node.source(), "auth.file must not be empty");
      } else if (v) {
        out.file = *v;
      }
    } else if (k == "method") {
      set_enum(node, "auth.method", {"scram-sha-256", "md5"}, out.method);
    } else {
      unknown_key(key, "in [auth]");
    }
  }
  if (out.mode == "file" && out.file.empty()) {
    error(mode_node != nullptr ? &mode_node->source() : nullptr,
          "auth.mode = \"file\" needs auth.file (the userlist pgtandem checks passwords against)");
  }
}

}  // namespace pgtandem::config::detail

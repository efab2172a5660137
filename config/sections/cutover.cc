// [cutover]: the control schema's connection and the default gates of a coordinated cutover
// (issue 14, docs/cutover.md).
#include "config/validator.h"

namespace pgtandem::config::detail {

void Validator::validate_cutover(const toml::table& table, Cutover& out) {
  for (auto&& [key, node] : table) {
    const std::string_view k = key.str();
    if (k == "control_user") {
      set_path(node, "cutover.control_user", out.control_user);
    } else if (k == "control_database") {
      set_path(node, "cutover.control_database", out.control_database);
    } else if (k == "pause_timeout_ms") {
      set_uint(node, "cutover.pause_timeout_ms", 100, 600000, out.pause_timeout_ms);
    } else if (k == "max_mirror_lag") {
      set_uint(node, "cutover.max_mirror_lag", 0, int64_t{1} << 40, out.max_mirror_lag);
    } else if (k == "max_queue_bytes") {
      set_uint(node, "cutover.max_queue_bytes", 0, int64_t{1} << 40, out.max_queue_bytes);
    } else if (k == "max_shadow_mismatches") {
      set_uint(node, "cutover.max_shadow_mismatches", 0, int64_t{1} << 40,
               out.max_shadow_mismatches);
    } else if (k == "shadow_window_s") {
      set_uint(node, "cutover.shadow_window_s", 1, 86400, out.shadow_window_s);
    } else if (k == "verify_max_age_s") {
      set_uint(node, "cutover.verify_max_age_s", 0, 366LL * 24 * 3600, out.verify_max_age_s);
    } else {
      unknown_key(key, "in [cutover]");
    }
  }
}

}  // namespace pgtandem::config::detail

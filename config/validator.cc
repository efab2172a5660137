// The Validator's shared machinery: the top level of the document, errors with line and column,
// unknown keys, and the typed getters every section uses. The sections: config/sections/.
#include "config/validator.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace pgtandem::config::detail {
namespace {

std::string_view type_name(toml::node_type type) {
  switch (type) {
    case toml::node_type::table:
      return "table";
    case toml::node_type::array:
      return "array";
    case toml::node_type::string:
      return "string";
    case toml::node_type::integer:
      return "integer";
    case toml::node_type::floating_point:
      return "float";
    case toml::node_type::boolean:
      return "boolean";
    case toml::node_type::date:
      return "date";
    case toml::node_type::time:
      return "time";
    case toml::node_type::date_time:
      return "date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}


// Shortest text that reads back as the same double ("25", "0.05", "nan"), for messages.
std::string format_number(double v) {
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  if (ec != std::errc()) return "?";
  return std::string(buf, end);
}

size_t decimal_digits(uint32_t v) {
  size_t n = 1;
  while (v >= 10) {
    v /= 10;
    ++n;
  }
  return n;
}

// "<dir>/.s.PGSQL.<port>", the name PostgreSQL and libpq use.
size_t unix_socket_path_length(const std::string& dir, uint16_t port) {
  return dir.size() + std::strlen("/.s.PGSQL.") + decimal_digits(port);
}

}  // namespace

bool is_ipv4(const std::string& s) {
  in_addr addr;
  return inet_pton(AF_INET, s.c_str(), &addr) == 1;
}

bool is_ipv6(const std::string& s) {
  in6_addr addr;
  return inet_pton(AF_INET6, s.c_str(), &addr) == 1;
}

void Validator::validate(const toml::table& root, Config& out) {
  bool targets_seen = false;
  for (auto&& [key, node] : root) {
    const std::string_view k = key.str();
    if (k == "primary") {
      primary_node_ = &node;
      if (auto v = get_string(node, "primary")) out.primary = *v;
    } else if (k == "workers") {
      set_uint(node, "workers", 0, kMaxWorkers, out.workers);
    } else if (k == "io_backend") {
      set_enum(node, "io_backend", {"auto", "epoll", "uring"}, out.io_backend);
    } else if (k == "state_dir") {
      auto v = get_string(node, "state_dir");
      if (v && (v->empty() || (*v)[0] != '/')) {
        error(&node.source(), "state_dir must be an absolute path (pgtandem never keeps state in "
                              "the working directory), got '" + *v + "'");
      } else if (v) {
        out.state_dir = *v;
      }
    } else if (k == "listen") {
      if (auto* t = get_table(node, "listen")) validate_listen(*t, out);
    } else if (k == "targets") {
      targets_seen = true;
      if (auto* t = get_table(node, "targets")) validate_targets(*t, out);
    } else if (k == "limits") {
      if (auto* t = get_table(node, "limits")) validate_limits(*t, out.limits);
    } else if (k == "admin") {
      if (auto* t = get_table(node, "admin")) validate_admin(*t, out);
    } else if (k == "log") {
      if (auto* t = get_table(node, "log")) validate_log(*t, out.log);
    } else if (k == "shutdown") {
      if (auto* t = get_table(node, "shutdown")) validate_shutdown(*t, out.shutdown);
    } else if (k == "mirror_writes") {
      set_bool(node, "mirror_writes", out.mirror_writes);
    } else if (k == "mirror") {
      if (auto* t = get_table(node, "mirror")) validate_mirror(*t, out.mirror);
    } else if (k == "auth") {
      if (auto* t = get_table(node, "auth")) validate_auth(*t, out.auth);
    } else if (k == "classifier") {
      if (auto* t = get_table(node, "classifier")) validate_classifier(*t, out.classifier);
    } else if (k == "routing") {
      if (auto* t = get_table(node, "routing")) validate_routing(*t, out.routing);
    } else if (k == "routes") {
      validate_routes(node, out.routes);
    } else if (k == "breaker") {
      if (auto* t = get_table(node, "breaker")) validate_breaker(*t, out.breaker);
    } else if (k == "shadow") {
      if (auto* t = get_table(node, "shadow")) validate_shadow(*t, out.shadow);
    } else if (k == "cutover") {
      if (auto* t = get_table(node, "cutover")) validate_cutover(*t, out.cutover);
    } else if (k == "migrate") {
      if (auto* t = get_table(node, "migrate")) validate_migrate(*t, out.migrate);
    } else if (k == "tls") {
      if (auto* t = get_table(node, "tls")) validate_tls(*t, out.tls);
    } else {
      unknown_key(key, "at top level");
    }
  }
  if (!targets_seen) {
    error(nullptr, "missing [targets.old] and [targets.new]: both targets are required");
  }
  if (primary_node_ != nullptr && primary_node_->is_string() && out.primary != "old" &&
      out.primary != "new") {
    error(&primary_node_->source(),
          "primary must name a target ('old' or 'new'), got '" + out.primary + "'");
  }
  check_cross_section(out);
  out.mirror.journal_path = config::resolve_state_path(out.state_dir, out.mirror.journal_path);
  out.migrate.state_dir = out.migrate.state_dir.empty()
                              ? out.state_dir
                              : config::resolve_state_path(out.state_dir, out.migrate.state_dir);
}

std::vector<Error> Validator::take_errors() {
  // Errors tied to a place come in file order; the others (missing sections) after them.
  std::stable_sort(errors_.begin(), errors_.end(), [](const Error& a, const Error& b) {
    const bool a_placed = a.line != 0;
    const bool b_placed = b.line != 0;
    if (a_placed != b_placed) return a_placed;
    if (a.line != b.line) return a.line < b.line;
    return a.column < b.column;
  });
  return std::move(errors_);
}

void Validator::error(const toml::source_region* where, std::string message) {
  Error e;
  e.file = file_;
  if (where != nullptr) {
    e.line = where->begin.line;
    e.column = where->begin.column;
  }
  e.message = std::move(message);
  errors_.push_back(std::move(e));
}

void Validator::unknown_key(const toml::key& key, std::string_view where) {
  error(&key.source(), "unknown key '" + std::string(key.str()) + "' " + std::string(where));
}

void Validator::wrong_type(const toml::node& node, std::string_view what, std::string_view expected) {
  error(&node.source(), std::string(what) + " must be " + std::string(expected) + ", got " +
                            std::string(type_name(node.type())));
}

const toml::table* Validator::get_table(const toml::node& node, std::string_view what) {
  if (const auto* t = node.as_table()) return t;
  wrong_type(node, what, "a table");
  return nullptr;
}

std::optional<std::string> Validator::get_string(const toml::node& node, std::string_view what) {
  if (const auto* s = node.as_string()) return s->get();
  wrong_type(node, what, "a string");
  return std::nullopt;
}

std::optional<int64_t> Validator::get_int(const toml::node& node, std::string_view what, int64_t lo,
                                          int64_t hi) {
  const auto* i = node.as_integer();
  if (i == nullptr) {
    wrong_type(node, what, "an integer");
    return std::nullopt;
  }
  const int64_t v = i->get();
  if (v < lo || v > hi) {
    error(&node.source(), std::string(what) + " must be in " + std::to_string(lo) + ".." +
                              std::to_string(hi) + ", got " + std::to_string(v));
    return std::nullopt;
  }
  return v;
}

// A finite number > 0.
std::optional<double> Validator::get_positive(const toml::node& node, std::string_view what) {
  auto v = get_number(node, what, -1e308, 1e308);
  if (v && !(*v > 0)) {
    error(&node.source(), std::string(what) + " must be greater than 0");
    return std::nullopt;
  }
  return v;
}

// An integer or a float in lo..hi (NaN is out of every range).
std::optional<double> Validator::get_number(const toml::node& node, std::string_view what, double lo,
                                            double hi) {
  double v = 0;
  if (const auto* i = node.as_integer()) {
    v = static_cast<double>(i->get());
  } else if (const auto* f = node.as_floating_point()) {
    v = f->get();
  } else {
    wrong_type(node, what, "a number");
    return std::nullopt;
  }
  if (!(v >= lo && v <= hi)) {
    error(&node.source(), std::string(what) + " must be in " + format_number(lo) + ".." +
                              format_number(hi) + ", got " + format_number(v));
    return std::nullopt;
  }
  return v;
}

void Validator::set_bool(const toml::node& node, std::string_view what, bool& out) {
  if (const auto* b = node.as_boolean()) {
    out = b->get();
    return;
  }
  wrong_type(node, what, "a boolean");
}

void Validator::set_string_list(const toml::node& node, std::string_view what,
                                std::vector<std::string>& out) {
  const auto* array = node.as_array();
  if (array == nullptr) {
    wrong_type(node, what, "an array of strings");
    return;
  }
  out.clear();
  for (const toml::node& element : *array) {
    if (auto v = get_string(element, std::string(what) + " element")) {
      if (v->empty()) {
        error(&element.source(), std::string(what) + " elements must not be empty");
        continue;
      }
      out.push_back(*v);
    }
  }
}

void Validator::set_enum(const toml::node& node, std::string_view what,
                         std::initializer_list<std::string_view> allowed, std::string& out) {
  auto v = get_string(node, what);
  if (!v) return;
  if (std::find(allowed.begin(), allowed.end(), *v) != allowed.end()) {
    out = *v;
    return;
  }
  std::string list;
  for (auto a : allowed) {
    if (!list.empty()) list += ", ";
    list += "'" + std::string(a) + "'";
  }
  error(&node.source(), std::string(what) + " must be one of " + list + ", got '" + *v + "'");
}

// A file name: a non-empty string.
void Validator::set_path(const toml::node& node, const std::string& what, std::string& out) {
  auto v = get_string(node, what);
  if (!v) return;
  if (v->empty()) {
    error(&node.source(), what + " must not be empty (leave the key out instead)");
    return;
  }
  out = *v;
}

// An absolute directory whose socket file name fits in sockaddr_un.
void Validator::check_unix_socket_dir(const toml::node& node, std::string_view what, const std::string& dir,
                                      uint16_t port) {
  if (dir.empty()) return;
  if (dir.front() != '/') {
    error(&node.source(), std::string(what) + " must be an absolute path, got '" + dir + "'");
    return;
  }
  if (unix_socket_path_length(dir, port) > kMaxUnixSocketPath) {
    error(&node.source(), std::string(what) + " is too long: '" + dir + "/.s.PGSQL." +
                              std::to_string(port) + "' exceeds " +
                              std::to_string(kMaxUnixSocketPath) + " bytes");
  }
}
}  // namespace pgtandem::config::detail

#include "config/config.h"

#include <arpa/inet.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <exception>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <map>
#include <sstream>
#include <type_traits>
#include <utility>

namespace pgtandem::config {
namespace {

constexpr int64_t kMaxWorkers = 1024;
constexpr int64_t kMinMessageSize = 1024;
constexpr int64_t kMaxMessageSize = 0x3fffffff - 1;  // the server's own MaxAllocSize - 1
constexpr int64_t kMaxTimeoutMs = 24LL * 60 * 60 * 1000;
constexpr int64_t kMaxConnections = 1000000;
constexpr int64_t kMaxCount = 1000000;  // breaker request counts
// sockaddr_un::sun_path is 108 bytes including the terminating NUL.
constexpr size_t kMaxUnixSocketPath = 107;
// A config file is small; anything bigger is a mistake (wrong path), not a config.
constexpr std::streamoff kMaxFileSize = 16 << 20;

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

bool is_ipv4(const std::string& s) {
  in_addr addr;
  return inet_pton(AF_INET, s.c_str(), &addr) == 1;
}

bool is_ipv6(const std::string& s) {
  in6_addr addr;
  return inet_pton(AF_INET6, s.c_str(), &addr) == 1;
}

// Shortest text that reads back as the same double ("25", "0.05", "nan"), for messages.
std::string format_number(double v) {
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  if (ec != std::errc()) return "?";
  return std::string(buf, end);
}

bool is_hex_digit(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// "10.0.0.0/8", "::1/128", "192.168.1.7" (a single address). Host bits beyond the prefix are an
// error: "10.1.2.3/8" is more likely a typo for /32 than a way to write 10.0.0.0/8.
std::optional<std::string> check_cidr(const std::string& text) {
  const size_t slash = text.find('/');
  const std::string address = text.substr(0, slash);
  unsigned char bytes[16] = {};
  int family = 0;
  size_t max_prefix = 0;
  if (inet_pton(AF_INET, address.c_str(), bytes) == 1) {
    family = AF_INET;
    max_prefix = 32;
  } else if (inet_pton(AF_INET6, address.c_str(), bytes) == 1) {
    family = AF_INET6;
    max_prefix = 128;
  } else if (slash == std::string::npos) {
    return "not an IPv4 or IPv6 address or network";
  } else {
    return "'" + address + "' is not an IPv4 or IPv6 address";
  }
  if (slash == std::string::npos) return std::nullopt;
  const std::string_view prefix_text = std::string_view(text).substr(slash + 1);
  if (prefix_text.empty() || prefix_text.size() > 3 ||
      !std::all_of(prefix_text.begin(), prefix_text.end(),
                   [](char c) { return c >= '0' && c <= '9'; })) {
    return "prefix length '" + std::string(prefix_text) + "' is not a number";
  }
  size_t prefix = 0;
  for (char c : prefix_text) prefix = prefix * 10 + static_cast<size_t>(c - '0');
  if (prefix > max_prefix) {
    return "prefix length " + std::to_string(prefix) + " is out of range 0.." +
           std::to_string(max_prefix) + (family == AF_INET ? " for IPv4" : " for IPv6");
  }
  bool host_bits = false;
  for (size_t bit = prefix; bit < max_prefix; ++bit) {
    const unsigned char mask = static_cast<unsigned char>(0x80u >> (bit % 8));
    if ((bytes[bit / 8] & mask) != 0) {
      host_bits = true;
      bytes[bit / 8] = static_cast<unsigned char>(bytes[bit / 8] & ~mask);
    }
  }
  if (host_bits) {
    char network[INET6_ADDRSTRLEN] = {};
    inet_ntop(family, bytes, network, sizeof network);
    return "address has bits set beyond the /" + std::to_string(prefix) +
           " prefix (the network is " + network + "/" + std::to_string(prefix) + ")";
  }
  return std::nullopt;
}

// "name" or "schema.name", as referenced_tables() reports them.
std::optional<std::string> check_table_name(const std::string& text) {
  const size_t dot = text.find('.');
  if (dot != std::string::npos && text.find('.', dot + 1) != std::string::npos) {
    return "must be \"name\" or \"schema.name\"";
  }
  if (dot == 0 || dot + 1 == text.size()) return "has an empty schema or table name";
  for (char c : text) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') return "must not contain whitespace";
  }
  return std::nullopt;
}

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

// Parses "host:port", "[v6]:port", "*:port". Returns an explanation on failure.
std::optional<std::string> parse_host_port(std::string_view text, bool allow_port_zero,
                                           ListenAddress* out) {
  std::string host;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) return "missing ']' after IPv6 address";
    host = std::string(text.substr(1, close - 1));
    if (!is_ipv6(host)) return "'" + host + "' is not a valid IPv6 address";
    if (close + 1 >= text.size() || text[close + 1] != ':') {
      return "missing port (expected \"[ipv6]:port\")";
    }
    port_text = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return "missing port (expected \"host:port\")";
    host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
    if (host.find(':') != std::string::npos) {
      return "IPv6 addresses must be in brackets, e.g. \"[::1]:6432\"";
    }
    if (host.empty()) return "missing host (use \"*:port\" for all interfaces)";
    if (host != "*" && host != "localhost" && !is_ipv4(host)) {
      return "host '" + host +
             "' must be a numeric IPv4 address, a bracketed IPv6 address, 'localhost' or '*'";
    }
  }
  if (port_text.empty() || port_text.size() > 5 ||
      !std::all_of(port_text.begin(), port_text.end(),
                   [](char c) { return c >= '0' && c <= '9'; })) {
    return "port '" + std::string(port_text) + "' is not a number";
  }
  uint32_t port = 0;
  for (char c : port_text) port = port * 10 + static_cast<uint32_t>(c - '0');
  if (port > 65535 || (port == 0 && !allow_port_zero)) {
    return "port " + std::to_string(port) +
           (allow_port_zero ? " is out of range 0..65535" : " is out of range 1..65535");
  }
  out->host = std::move(host);
  out->port = static_cast<uint16_t>(port);
  return std::nullopt;
}

// Walks the parsed document against the fixed schema. Every problem becomes an Error; walking
// continues past errors so that one run reports everything.
class Validator {
 public:
  explicit Validator(std::string file) : file_(std::move(file)) {}

  void validate(const toml::table& root, Config& out) {
    bool targets_seen = false;
    for (auto&& [key, node] : root) {
      const std::string_view k = key.str();
      if (k == "primary") {
        primary_node_ = &node;
        if (auto v = get_string(node, "primary")) out.primary = *v;
      } else if (k == "workers") {
        set_uint(node, "workers", 0, kMaxWorkers, out.workers);
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
  }

  std::vector<Error> take_errors() {
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

 private:
  void error(const toml::source_region* where, std::string message) {
    Error e;
    e.file = file_;
    if (where != nullptr) {
      e.line = where->begin.line;
      e.column = where->begin.column;
    }
    e.message = std::move(message);
    errors_.push_back(std::move(e));
  }

  void unknown_key(const toml::key& key, std::string_view where) {
    error(&key.source(), "unknown key '" + std::string(key.str()) + "' " + std::string(where));
  }

  void wrong_type(const toml::node& node, std::string_view what, std::string_view expected) {
    error(&node.source(), std::string(what) + " must be " + std::string(expected) + ", got " +
                              std::string(type_name(node.type())));
  }

  const toml::table* get_table(const toml::node& node, std::string_view what) {
    if (const auto* t = node.as_table()) return t;
    wrong_type(node, what, "a table");
    return nullptr;
  }

  std::optional<std::string> get_string(const toml::node& node, std::string_view what) {
    if (const auto* s = node.as_string()) return s->get();
    wrong_type(node, what, "a string");
    return std::nullopt;
  }

  std::optional<int64_t> get_int(const toml::node& node, std::string_view what, int64_t lo,
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

  // An integer or a float in lo..hi (NaN is out of every range).
  // A finite number > 0.
  std::optional<double> get_positive(const toml::node& node, std::string_view what) {
    auto v = get_number(node, what, -1e308, 1e308);
    if (v && !(*v > 0)) {
      error(&node.source(), std::string(what) + " must be greater than 0");
      return std::nullopt;
    }
    return v;
  }

  std::optional<double> get_number(const toml::node& node, std::string_view what, double lo,
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

  void set_bool(const toml::node& node, std::string_view what, bool& out) {
    if (const auto* b = node.as_boolean()) {
      out = b->get();
      return;
    }
    wrong_type(node, what, "a boolean");
  }

  void set_string_list(const toml::node& node, std::string_view what,
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

  template <typename T>
  void set_uint(const toml::node& node, std::string_view what, int64_t lo, int64_t hi, T& out) {
    static_assert(std::is_unsigned_v<T>);
    if (auto v = get_int(node, what, lo, hi)) out = static_cast<T>(*v);
  }

  void set_enum(const toml::node& node, std::string_view what,
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

  // An absolute directory whose socket file name fits in sockaddr_un.
  void check_unix_socket_dir(const toml::node& node, std::string_view what, const std::string& dir,
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

  void validate_listen(const toml::table& table, Config& out) {
    const toml::node* dir_node = nullptr;
    for (auto&& [key, node] : table) {
      const std::string_view k = key.str();
      if (k == "addresses") {
        validate_listen_addresses(node, out);
      } else if (k == "unix_socket_dir") {
        dir_node = &node;
        if (auto v = get_string(node, "listen.unix_socket_dir")) out.unix_socket_dir = *v;
      } else {
        unknown_key(key, "in [listen]");
      }
    }
    if (dir_node != nullptr && dir_node->is_string() && !out.listen.empty()) {
      check_unix_socket_dir(*dir_node, "listen.unix_socket_dir", out.unix_socket_dir,
                            out.listen.front().port);
    }
  }

  void validate_listen_addresses(const toml::node& node, Config& out) {
    const auto* array = node.as_array();
    if (array == nullptr) {
      wrong_type(node, "listen.addresses", "an array of strings");
      return;
    }
    if (array->empty()) {
      error(&node.source(), "listen.addresses must not be empty");
      return;
    }
    std::vector<ListenAddress> addresses;
    for (const toml::node& element : *array) {
      auto text = get_string(element, "listen.addresses element");
      if (!text) continue;
      ListenAddress address;
      if (auto why = parse_host_port(*text, /*allow_port_zero=*/false, &address)) {
        error(&element.source(), "listen address '" + *text + "': " + *why);
        continue;
      }
      const bool duplicate = std::any_of(
          addresses.begin(), addresses.end(),
          [&](const ListenAddress& a) { return a.host == address.host && a.port == address.port; });
      if (duplicate) {
        error(&element.source(), "duplicate listen address '" + *text + "'");
        continue;
      }
      addresses.push_back(std::move(address));
    }
    out.listen = std::move(addresses);
  }

  void validate_targets(const toml::table& table, Config& out) {
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

  void validate_target(const toml::table& table, Target& out) {
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

  // A file name: a non-empty string.
  void set_path(const toml::node& node, const std::string& what, std::string& out) {
    auto v = get_string(node, what);
    if (!v) return;
    if (v->empty()) {
      error(&node.source(), what + " must not be empty (leave the key out instead)");
      return;
    }
    out = *v;
  }

  void validate_tls(const toml::table& table, Tls& out) {
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

  void validate_limits(const toml::table& table, Limits& out) {
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

  void validate_admin(const toml::table& table, Config& out) {
    const toml::node* token_node = nullptr;
    const toml::node* token_file_node = nullptr;
    for (auto&& [key, node] : table) {
      if (key.str() == "token") {
        token_node = &node;
        if (auto v = get_string(node, "admin.token")) {
          if (v->empty()) {
            error(&node.source(), "admin.token is empty; leave it out to disable POST endpoints");
          } else if (v->find_first_of(" \t\r\n") != std::string::npos) {
            error(&node.source(), "admin.token must not contain whitespace");
          } else {
            out.admin.token = std::move(*v);
          }
        }
        continue;
      }
      if (key.str() == "token_file") {
        token_file_node = &node;
        if (auto v = get_string(node, "admin.token_file")) {
          if (v->empty()) {
            error(&node.source(), "admin.token_file is empty");
          } else {
            out.admin.token_file = std::move(*v);
          }
        }
        continue;
      }
      if (key.str() != "listen") {
        unknown_key(key, "in [admin]");
        continue;
      }
      admin_node_ = &node;
      auto text = get_string(node, "admin.listen");
      if (!text) continue;
      if (text->empty()) {
        out.admin.listen_port = 0;
        continue;
      }
      ListenAddress address;
      if (auto why = parse_host_port(*text, /*allow_port_zero=*/true, &address)) {
        error(&node.source(), "admin.listen '" + *text + "': " + *why);
        continue;
      }
      out.admin.listen_host = std::move(address.host);
      out.admin.listen_port = address.port;
    }
    if (token_node != nullptr && token_file_node != nullptr) {
      error(&token_file_node->source(), "admin.token and admin.token_file are both set; use one");
    }
  }

  void validate_shutdown(const toml::table& table, Shutdown& out) {
    for (auto&& [key, node] : table) {
      if (key.str() == "drain_timeout_ms") {
        set_uint(node, "shutdown.drain_timeout_ms", 0, 3600000, out.drain_timeout_ms);
      } else {
        unknown_key(key, "in [shutdown]");
      }
    }
  }

  void validate_mirror(const toml::table& table, Mirror& out) {
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
      } else if (k == "reconnect_interval_ms") {
        set_uint(node, "mirror.reconnect_interval_ms", 1, kMaxTimeoutMs, out.reconnect_interval_ms);
      } else {
        unknown_key(key, "in [mirror]");
      }
    }
  }

  void validate_auth(const toml::table& table, Auth& out) {
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

  void validate_classifier(const toml::table& table, Classifier& out) {
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

  void validate_routing(const toml::table& table, Routing& out) {
    for (auto&& [key, node] : table) {
      const std::string_view k = key.str();
      if (k == "hash_seed") {
        if (auto v = get_string(node, "routing.hash_seed")) out.hash_seed = *v;
      } else if (k == "read_your_writes") {
        set_bool(node, "routing.read_your_writes", out.read_your_writes);
      } else if (k == "fallback_to_primary") {
        set_bool(node, "routing.fallback_to_primary", out.fallback_to_primary);
      } else {
        unknown_key(key, "in [routing]");
      }
    }
  }

  // A match list: one string, or a non-empty array of non-empty strings. `check` explains what is
  // wrong with an element (nullopt: fine) and may normalize it in place.
  template <typename Check>
  void set_match_list(const toml::node& node, const std::string& what,
                      std::vector<std::string>& out, Check check) {
    auto add = [&](const toml::node& element, std::string_view element_what) {
      auto v = get_string(element, element_what);
      if (!v) return;
      if (v->empty()) {
        error(&element.source(), what + " entries must not be empty");
        return;
      }
      const std::string as_written = *v;
      if (auto why = check(*v)) {
        error(&element.source(), what + " entry '" + as_written + "': " + *why);
        return;
      }
      out.push_back(std::move(*v));
    };
    out.clear();
    if (node.is_string()) {
      add(node, what);
      return;
    }
    const auto* array = node.as_array();
    if (array == nullptr) {
      wrong_type(node, what, "a string or an array of strings");
      return;
    }
    if (array->empty()) {
      error(&node.source(), what + " must not be empty (leave the key out to match any value)");
      return;
    }
    for (const toml::node& element : *array) add(element, what + " element");
  }

  void set_tags(const toml::node& node, const std::string& what,
                std::vector<std::pair<std::string, std::vector<std::string>>>& out) {
    const auto* table = get_table(node, what);
    if (table == nullptr) return;
    if (table->empty()) {
      error(&node.source(), what + " must not be empty (leave the key out to match any tags)");
      return;
    }
    out.clear();
    for (auto&& [key, value] : *table) {
      const std::string name(key.str());
      if (name.empty()) {
        error(&key.source(), what + " tag names must not be empty");
        continue;
      }
      std::vector<std::string> values;
      set_match_list(value, what + "." + name, values,
                     [](std::string&) -> std::optional<std::string> { return std::nullopt; });
      if (!values.empty()) out.emplace_back(name, std::move(values));
    }
  }

  void validate_routes(const toml::node& node, std::vector<Route>& out) {
    const auto* array = node.as_array();
    if (array == nullptr) {
      wrong_type(node, "routes", "an array of tables ([[routes]])");
      return;
    }
    out.clear();
    // Where each route's name is written; null for a default name.
    std::vector<const toml::node*> name_nodes;
    std::vector<const toml::table*> tables;
    for (size_t i = 0; i < array->size(); ++i) {
      const toml::node& element = *array->get(i);
      const std::string what = "routes[" + std::to_string(i + 1) + "]";
      const auto* table = get_table(element, what);
      if (table == nullptr) continue;
      Route route;
      route.name = "route-" + std::to_string(i + 1);
      route.line = table->source().begin.line;
      name_nodes.push_back(validate_route(*table, what, route));
      tables.push_back(table);
      out.push_back(std::move(route));
    }
    // Names label metrics and logs: two rules with one name would be counted as one.
    std::map<std::string, size_t> first_by_name;
    for (size_t i = 0; i < out.size(); ++i) {
      auto [it, inserted] = first_by_name.emplace(out[i].name, i);
      if (inserted) continue;
      const std::string first_line = std::to_string(out[it->second].line);
      if (name_nodes[i] != nullptr) {
        error(&name_nodes[i]->source(),
              "duplicate route name '" + out[i].name + "': the route at line " + first_line +
                  (name_nodes[it->second] != nullptr ? " has it too" : " has it as default name"));
      } else {
        error(tables[i]->source().begin.line != 0 ? &tables[i]->source() : nullptr,
              "this route's default name '" + out[i].name +
                  "' is already used by the route at line " + first_line +
                  ": give one of them another name");
      }
    }
  }

  // Returns the node of an explicit, valid `name`, or null.
  const toml::node* validate_route(const toml::table& table, const std::string& what, Route& out) {
    const std::string prefix = what + ".";
    const toml::node* name_node = nullptr;
    const toml::node* target_node = nullptr;
    const toml::node* percent_node = nullptr;
    auto any = [](std::string&) -> std::optional<std::string> { return std::nullopt; };
    for (auto&& [key, node] : table) {
      const std::string_view k = key.str();
      const std::string key_what = prefix + std::string(k);
      if (k == "name") {
        auto v = get_string(node, key_what);
        if (!v) continue;
        if (v->empty()) {
          error(&node.source(), key_what + " must not be empty");
          continue;
        }
        if (std::any_of(v->begin(), v->end(),
                        [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
          error(&node.source(), key_what + " must not contain control characters");
          continue;
        }
        out.name = *v;
        name_node = &node;
      } else if (k == "users") {
        set_match_list(node, key_what, out.match.users, any);
      } else if (k == "databases") {
        set_match_list(node, key_what, out.match.databases, any);
      } else if (k == "application_names") {
        set_match_list(node, key_what, out.match.application_names, any);
      } else if (k == "client_cidrs") {
        set_match_list(node, key_what, out.match.client_cidrs,
                       [](std::string& v) { return check_cidr(v); });
      } else if (k == "tables") {
        set_match_list(node, key_what, out.match.tables,
                       [](std::string& v) { return check_table_name(v); });
      } else if (k == "fingerprints") {
        set_match_list(node, key_what, out.match.fingerprints,
                       [](std::string& v) -> std::optional<std::string> {
                         if (v.size() != 16 || !std::all_of(v.begin(), v.end(), is_hex_digit)) {
                           return "must be 16 hex digits (as pg_query_fingerprint gives them)";
                         }
                         // pg_query_fingerprint's form, so that the rule set compares bytes.
                         std::transform(v.begin(), v.end(), v.begin(), [](char c) {
                           return static_cast<char>(c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c);
                         });
                         return std::nullopt;
                       });
      } else if (k == "tags") {
        set_tags(node, key_what, out.match.tags);
      } else if (k == "target") {
        target_node = &node;
        set_enum(node, key_what, {"old", "new", "primary"}, out.target);
      } else if (k == "percent") {
        percent_node = &node;
        if (auto v = get_number(node, key_what, 0, 100)) out.percent = *v;
      } else if (k == "hash_key") {
        auto v = get_string(node, key_what);
        if (!v) continue;
        if (v->rfind("tag:", 0) == 0) {
          if (v->size() == 4) {
            error(&node.source(), key_what + " 'tag:' needs a tag name, e.g. 'tag:tenant'");
            continue;
          }
        } else if (*v != "session" && *v != "user" && *v != "application_name" &&
                   *v != "client_address") {
          error(&node.source(), key_what +
                                    " must be one of 'session', 'user', 'application_name', "
                                    "'client_address', 'tag:<name>', got '" +
                                    *v + "'");
          continue;
        }
        out.hash_key = *v;
      } else if (k == "shadow_sample_rate") {
        if (auto v = get_number(node, key_what, 0, 1)) out.shadow_sample_rate = *v;
      } else if (k == "shadow_ignore_columns") {
        std::vector<std::string> v;
        set_string_list(node, key_what, v);
        out.shadow_ignore_columns = std::move(v);
      } else if (k == "shadow_float_significant_digits") {
        if (auto v = get_int(node, key_what, 1, 17)) {
          out.shadow_float_significant_digits = static_cast<int>(*v);
        }
      } else if (k == "shadow_float_tolerance") {
        if (auto v = get_positive(node, key_what)) out.shadow_float_tolerance = *v;
      } else if (k == "shadow_ignore_column_order") {
        bool v = false;
        set_bool(node, key_what, v);
        out.shadow_ignore_column_order = v;
      } else {
        unknown_key(key, "in " + what);
      }
    }
    // Decided on the keys' presence, not their validity: a bad value is its own error already.
    if (target_node != nullptr && percent_node != nullptr) {
      const toml::node* later =
          target_node->source().begin < percent_node->source().begin ? percent_node : target_node;
      error(&later->source(), what + " sets both target and percent: a rule has one action");
    } else if (target_node == nullptr && percent_node == nullptr) {
      error(table.source().begin.line != 0 ? &table.source() : nullptr,
            what + " has no action: set target ('old', 'new' or 'primary') or percent (0..100)");
    }
    return name_node;
  }

  void validate_breaker(const toml::table& table, Breaker& out) {
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
  void set_breaker_rate(const toml::node& node, std::string_view what, double& out) {
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

  void validate_shadow(const toml::table& table, Shadow& out) {
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

  void validate_log(const toml::table& table, Log& out) {
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

  void check_cross_section(const Config& out) {
    if (!out.admin.enabled()) return;
    for (const auto& a : out.listen) {
      if (a.host == out.admin.listen_host && a.port == out.admin.listen_port) {
        error(admin_node_ != nullptr ? &admin_node_->source() : nullptr,
              "admin.listen " + format_host_port(a.host, a.port) + " is also in listen.addresses");
      }
    }
  }

  std::string file_;
  std::vector<Error> errors_;
  const toml::node* primary_node_ = nullptr;
  const toml::node* admin_node_ = nullptr;
};

}  // namespace

std::string Error::to_string() const {
  std::string out = file;
  if (line != 0) {
    out += ':' + std::to_string(line) + ':' + std::to_string(column);
  }
  out += ": ";
  out += message;
  return out;
}

std::string config_hash(std::string_view file_contents) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a 64 offset basis
  for (unsigned char c : file_contents) {
    h ^= c;
    h *= 0x100000001b3ULL;  // FNV-1a 64 prime
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i) {
    out[static_cast<size_t>(i)] = kHex[h & 0xf];
    h >>= 4;
  }
  return out;
}

std::string format_host_port(std::string_view host, uint16_t port) {
  const bool v6 = host.find(':') != std::string_view::npos;
  std::string out;
  if (v6) out += '[';
  out += host;
  if (v6) out += ']';
  out += ':';
  out += std::to_string(port);
  return out;
}

LoadResult load_string(std::string_view toml, const std::string& source_name) {
  LoadResult result;
  // The only exceptions that can get here are toml++'s parse_error (this toml++ build throws) and
  // allocation failure; load_* promises never to throw, so both end as errors.
  try {
    result.source_hash = config_hash(toml);
    toml::table root;
    try {
      root = toml::parse(toml, source_name);
    } catch (const toml::parse_error& e) {
      Error error;
      error.file = source_name;
      error.line = e.source().begin.line;
      error.column = e.source().begin.column;
      error.message = std::string(e.description());
      result.errors.push_back(std::move(error));
      return result;
    }
    Config config;
    Validator validator(source_name);
    validator.validate(root, config);
    result.errors = validator.take_errors();
    if (result.errors.empty()) result.config = std::move(config);
  } catch (const std::exception& e) {
    result.config.reset();
    result.errors.push_back(Error{source_name, 0, 0, std::string("internal error: ") + e.what()});
  } catch (...) {
    result.config.reset();
    result.errors.push_back(Error{source_name, 0, 0, "internal error"});
  }
  return result;
}

LoadResult load_file(const std::string& path) {
  try {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      const int err = errno;
      LoadResult result;
      result.errors.push_back(
          Error{path, 0, 0, std::string("cannot open file: ") + std::strerror(err)});
      return result;
    }
    in.seekg(0, std::ios::end);
    const std::streamoff size = in.tellg();
    in.seekg(0, std::ios::beg);
    if (size < 0 || !in) {
      LoadResult result;
      result.errors.push_back(Error{path, 0, 0, "cannot read file (is it a directory?)"});
      return result;
    }
    if (size > kMaxFileSize) {
      LoadResult result;
      result.errors.push_back(Error{path, 0, 0,
                                    "file is " + std::to_string(size) + " bytes, more than " +
                                        std::to_string(kMaxFileSize) + ": not a config file"});
      return result;
    }
    std::ostringstream contents;
    contents << in.rdbuf();
    if (in.bad()) {
      LoadResult result;
      result.errors.push_back(Error{path, 0, 0, "cannot read file"});
      return result;
    }
    return load_string(contents.str(), path);
  } catch (const std::exception& e) {
    LoadResult result;
    result.errors.push_back(Error{path, 0, 0, std::string("cannot read file: ") + e.what()});
    return result;
  }
}

}  // namespace pgtandem::config

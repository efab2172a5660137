// [listen] (client addresses, Unix socket) and [admin] (the HTTP listener and its token), and
// the check between them (one address cannot be both).
#include "config/validator.h"

#include <algorithm>

namespace pgtandem::config::detail {
namespace {

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

}  // namespace

void Validator::validate_listen(const toml::table& table, Config& out) {
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

void Validator::validate_listen_addresses(const toml::node& node, Config& out) {
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

void Validator::validate_admin(const toml::table& table, Config& out) {
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

void Validator::check_cross_section(const Config& out) {
  if (!out.admin.enabled()) return;
  for (const auto& a : out.listen) {
    if (a.host == out.admin.listen_host && a.port == out.admin.listen_port) {
      error(admin_node_ != nullptr ? &admin_node_->source() : nullptr,
            "admin.listen " + format_host_port(a.host, a.port) + " is also in listen.addresses");
    }
  }
}

}  // namespace pgtandem::config::detail

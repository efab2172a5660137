// [routing] and [[routes]]: the read-routing rules, their match lists and actions.
#include "config/validator.h"

#include <arpa/inet.h>

#include <algorithm>
#include <map>

namespace pgtandem::config::detail {
namespace {

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

}  // namespace

void Validator::validate_routing(const toml::table& table, Routing& out) {
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
void Validator::set_match_list(const toml::node& node, const std::string& what,
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

void Validator::set_tags(const toml::node& node, const std::string& what,
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

void Validator::validate_routes(const toml::node& node, std::vector<Route>& out) {
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
const toml::node* Validator::validate_route(const toml::table& table, const std::string& what, Route& out) {
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

}  // namespace pgtandem::config::detail

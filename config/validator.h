// Internal to pgtandem_config: the walk of a parsed TOML document against pgtandem's schema.
// One Validator per load; its shared machinery (typed getters, line/column errors, unknown-key
// errors) is in validator.cc, one file per group of sections under config/sections/.
// Includes toml++ (a PRIVATE dependency of pgtandem_config): never include this outside config/.
#pragma once

#include <toml++/toml.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "config/config.h"

namespace pgtandem::config::detail {

inline constexpr int64_t kMaxWorkers = 1024;
inline constexpr int64_t kMinMessageSize = 1024;
inline constexpr int64_t kMaxMessageSize = 0x3fffffff - 1;  // the server's own MaxAllocSize - 1
inline constexpr int64_t kMaxTimeoutMs = 24LL * 60 * 60 * 1000;
inline constexpr int64_t kMaxConnections = 1000000;
inline constexpr int64_t kMaxCount = 1000000;  // breaker request counts
// sockaddr_un::sun_path is 108 bytes including the terminating NUL.
inline constexpr size_t kMaxUnixSocketPath = 107;

bool is_ipv4(const std::string& s);
bool is_ipv6(const std::string& s);

// Walks the parsed document against the fixed schema. Every problem becomes an Error; walking
// continues past errors so that one run reports everything.
class Validator {
 public:
  explicit Validator(std::string file) : file_(std::move(file)) {}

  // validator.cc: the top level, and the errors in file order.
  void validate(const toml::table& root, Config& out);
  std::vector<Error> take_errors();

 private:
  // validator.cc: errors and typed getters/setters shared by every section.
  void error(const toml::source_region* where, std::string message);
  void unknown_key(const toml::key& key, std::string_view where);
  void wrong_type(const toml::node& node, std::string_view what, std::string_view expected);
  const toml::table* get_table(const toml::node& node, std::string_view what);
  std::optional<std::string> get_string(const toml::node& node, std::string_view what);
  std::optional<int64_t> get_int(const toml::node& node, std::string_view what, int64_t lo,
                                 int64_t hi);
  // A finite number > 0.
  std::optional<double> get_positive(const toml::node& node, std::string_view what);
  // An integer or a float in lo..hi (NaN is out of every range).
  std::optional<double> get_number(const toml::node& node, std::string_view what, double lo,
                                   double hi);
  void set_bool(const toml::node& node, std::string_view what, bool& out);
  void set_string_list(const toml::node& node, std::string_view what,
                       std::vector<std::string>& out);
  void set_enum(const toml::node& node, std::string_view what,
                std::initializer_list<std::string_view> allowed, std::string& out);
  // A file name: a non-empty string.
  void set_path(const toml::node& node, const std::string& what, std::string& out);
  // An absolute directory whose socket file name fits in sockaddr_un.
  void check_unix_socket_dir(const toml::node& node, std::string_view what, const std::string& dir,
                             uint16_t port);
  template <typename T>
  void set_uint(const toml::node& node, std::string_view what, int64_t lo, int64_t hi, T& out) {
    static_assert(std::is_unsigned_v<T>);
    if (auto v = get_int(node, what, lo, hi)) out = static_cast<T>(*v);
  }

  // sections/listen_admin.cc
  void validate_listen(const toml::table& table, Config& out);
  void validate_listen_addresses(const toml::node& node, Config& out);
  void validate_admin(const toml::table& table, Config& out);
  void check_cross_section(const Config& out);

  // sections/targets.cc
  void validate_targets(const toml::table& table, Config& out);
  void validate_target(const toml::table& table, Target& out);

  // sections/tls.cc
  void validate_tls(const toml::table& table, Tls& out);

  // sections/limits_shutdown_log.cc
  void validate_limits(const toml::table& table, Limits& out);
  void validate_shutdown(const toml::table& table, Shutdown& out);
  void validate_log(const toml::table& table, Log& out);

  // sections/mirror_auth.cc
  void validate_mirror(const toml::table& table, Mirror& out);
  void validate_classifier(const toml::table& table, Classifier& out);
  void validate_auth(const toml::table& table, Auth& out);

  // sections/routes.cc
  void validate_routing(const toml::table& table, Routing& out);
  // A match list: one string, or a non-empty array of non-empty strings. `check` explains what is
  // wrong with an element (nullopt: fine) and may normalize it in place.
  template <typename Check>
  void set_match_list(const toml::node& node, const std::string& what,
                      std::vector<std::string>& out, Check check);
  void set_tags(const toml::node& node, const std::string& what,
                std::vector<std::pair<std::string, std::vector<std::string>>>& out);
  void validate_routes(const toml::node& node, std::vector<Route>& out);
  // Returns the node of an explicit, valid `name`, or null.
  const toml::node* validate_route(const toml::table& table, const std::string& what, Route& out);

  // sections/breaker_shadow.cc
  void validate_breaker(const toml::table& table, Breaker& out);
  // The breaker opens when rate >= threshold: a threshold of 0 would open it with no failure.
  void set_breaker_rate(const toml::node& node, std::string_view what, double& out);
  void validate_shadow(const toml::table& table, Shadow& out);

  // sections/cutover.cc
  void validate_cutover(const toml::table& table, Cutover& out);

  // sections/migrate.cc
  void validate_migrate(const toml::table& table, Migrate& out);

  std::string file_;
  std::vector<Error> errors_;
  const toml::node* primary_node_ = nullptr;
  const toml::node* admin_node_ = nullptr;
};

}  // namespace pgtandem::config::detail

#include "policy/route/route_rules.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>

#include "policy/hash.h"

namespace pgtandem::policy {

// ---- IpAddress ----

IpAddress IpAddress::from_v4(uint32_t host_order) {
  IpAddress a;
  a.bytes[10] = 0xff;
  a.bytes[11] = 0xff;
  a.bytes[12] = static_cast<uint8_t>(host_order >> 24);
  a.bytes[13] = static_cast<uint8_t>(host_order >> 16);
  a.bytes[14] = static_cast<uint8_t>(host_order >> 8);
  a.bytes[15] = static_cast<uint8_t>(host_order);
  return a;
}

IpAddress IpAddress::from_v6(const uint8_t bytes[16]) {
  IpAddress a;
  std::memcpy(a.bytes, bytes, 16);
  return a;
}

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  // inet_pton needs a terminated string; the longest textual IPv6 address is 45 bytes.
  char buf[64];
  if (text.empty() || text.size() >= sizeof(buf) || text.find('\0') != std::string_view::npos) {
    return std::nullopt;
  }
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  if (text.find(':') == std::string_view::npos) {
    uint8_t v4[4];
    if (inet_pton(AF_INET, buf, v4) != 1) return std::nullopt;
    return from_v4(static_cast<uint32_t>(v4[0]) << 24 | static_cast<uint32_t>(v4[1]) << 16 |
                   static_cast<uint32_t>(v4[2]) << 8 | v4[3]);
  }
  uint8_t v6[16];
  if (inet_pton(AF_INET6, buf, v6) != 1) return std::nullopt;
  return from_v6(v6);
}

// ---- Consistent hashing ----

namespace {

using hash::fmix64;
using hash::fnv1a;
using hash::kFnvOffset;

}  // namespace

uint32_t hash_point(std::string_view seed, std::string_view key) {
  uint64_t h = fnv1a(kFnvOffset, seed);
  h = fnv1a(h, std::string_view("\0", 1));  // so that "ab"+"c" and "a"+"bc" hash apart
  h = fnv1a(h, key);
  h = fmix64(h);
  // Multiply-shift onto [0, 10000): the top 32 bits scaled, bias below 10000 / 2^32.
  return static_cast<uint32_t>(((h >> 32) * 10000u) >> 32);
}

// ---- StatementInfo ----

const std::vector<std::pair<std::string, std::string>>& StatementInfo::tags() {
  if (!tags_) tags_ = parse_sql_tags(sql_);
  return *tags_;
}

const std::vector<std::string>& StatementInfo::tables() {
  if (!tables_) tables_ = referenced_tables(sql_);
  return *tables_;
}

const std::string& StatementInfo::fingerprint() {
  if (!fingerprint_) fingerprint_ = statement_fingerprint(sql_);
  return *fingerprint_;
}

// ---- RuleSet ----

namespace {

struct Cidr {
  IpAddress network;
  int prefix = 0;  // over the 128-bit (v4-mapped) form
};

bool in_cidr(const IpAddress& a, const Cidr& c) {
  int bits = c.prefix;
  for (int i = 0; i < 16 && bits > 0; ++i, bits -= 8) {
    const uint8_t mask = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
    if ((a.bytes[i] & mask) != c.network.bytes[i]) return false;
  }
  return true;
}

std::optional<Cidr> parse_cidr(std::string_view text) {
  const size_t slash = text.find('/');
  const std::string_view host = text.substr(0, slash);
  std::optional<IpAddress> address = IpAddress::parse(host);
  if (!address) return std::nullopt;
  const bool v4 = host.find(':') == std::string_view::npos;
  const int max = v4 ? 32 : 128;
  int prefix = max;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3) return std::nullopt;
    prefix = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') return std::nullopt;
      prefix = prefix * 10 + (c - '0');
    }
    if (prefix > max) return std::nullopt;
  }
  Cidr cidr;
  cidr.prefix = v4 ? prefix + 96 : prefix;
  // Host bits set in the network ("10.1.2.3/8") are masked off: the rule means 10.0.0.0/8.
  int bits = cidr.prefix;
  for (int i = 0; i < 16; ++i, bits -= 8) {
    const uint8_t mask = bits >= 8   ? 0xff
                         : bits <= 0 ? 0
                                     : static_cast<uint8_t>(0xff << (8 - bits));
    cidr.network.bytes[i] = address->bytes[i] & mask;
  }
  return cidr;
}

// A table name from the config as the parser would spell it: unquoted parts lowercased (ASCII),
// "quoted" parts kept, "" unescaped. Empty on something that is not a name.
std::string normalize_table(std::string_view text) {
  std::string out;
  size_t i = 0;
  const size_t n = text.size();
  while (i < n && (text[i] == ' ' || text[i] == '\t')) ++i;
  for (;;) {
    if (i >= n) return {};
    if (text[i] == '"') {
      ++i;
      size_t part = 0;
      for (;;) {
        if (i >= n) return {};
        if (text[i] == '"') {
          if (i + 1 < n && text[i + 1] == '"') {
            out.push_back('"');
            i += 2;
            ++part;
            continue;
          }
          ++i;
          break;
        }
        out.push_back(text[i++]);
        ++part;
      }
      if (part == 0) return {};
    } else {
      const size_t begin = i;
      while (i < n && text[i] != '.' && text[i] != '"' && text[i] != ' ' && text[i] != '\t') {
        const char c = text[i++];
        out.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c);
      }
      if (i == begin) return {};
    }
    while (i < n && (text[i] == ' ' || text[i] == '\t')) ++i;
    if (i == n) return out;
    if (text[i] != '.') return {};
    out.push_back('.');
    ++i;
    while (i < n && (text[i] == ' ' || text[i] == '\t')) ++i;
  }
}

std::string lower_ascii(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
  return out;
}

enum class HashKey : uint8_t { kSession, kUser, kApplicationName, kClientAddress, kTag };

bool contains(const std::vector<std::string>& list, std::string_view value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

}  // namespace

struct RuleSet::Rule {
  std::string name;
  // Session conditions.
  std::vector<std::string> users;
  std::vector<std::string> databases;
  std::vector<std::string> application_names;
  bool has_cidrs = false;  // given in the config, even if none of them parsed
  std::vector<Cidr> cidrs;
  // Statement conditions.
  bool has_tables = false;
  std::vector<std::string> tables;  // normalized; a bare name matches it in any schema
  bool has_fingerprints = false;
  std::vector<std::string> fingerprints;  // lowercase
  std::vector<std::pair<std::string, std::vector<std::string>>> tags;
  // Action.
  bool is_percent = false;
  RouteTarget target = RouteTarget::kPrimary;  // when !is_percent
  uint32_t threshold = 0;                      // hash points below it go to `new`
  HashKey hash_key = HashKey::kSession;
  std::string hash_tag;  // for HashKey::kTag
  std::optional<double> shadow_sample_rate;

  bool statement_conditions() const { return has_tables || has_fingerprints || !tags.empty(); }
  bool depends_on_statement() const {
    return statement_conditions() || (is_percent && hash_key == HashKey::kTag);
  }
  bool may_leave_primary() const {
    return is_percent ? threshold > 0 : target != RouteTarget::kPrimary;
  }
};

struct RuleSet::Impl {
  std::string seed;
  std::vector<Rule> rules;
};

RuleSet::RuleSet() : impl_(std::make_unique<Impl>()) {}
RuleSet::~RuleSet() = default;

size_t RuleSet::size() const { return impl_->rules.size(); }

const std::string& RuleSet::rule_name(size_t index) const { return impl_->rules.at(index).name; }

std::shared_ptr<const RuleSet> RuleSet::compile(const config::Config& config) {
  std::shared_ptr<RuleSet> set(new RuleSet());
  set->impl_->seed = config.routing.hash_seed;
  set->impl_->rules.reserve(config.routes.size());
  for (size_t i = 0; i < config.routes.size(); ++i) {
    const config::Route& route = config.routes[i];
    Rule rule;
    rule.name = route.name.empty() ? "route-" + std::to_string(i + 1) : route.name;
    rule.users = route.match.users;
    rule.databases = route.match.databases;
    rule.application_names = route.match.application_names;
    rule.has_cidrs = !route.match.client_cidrs.empty();
    for (const std::string& text : route.match.client_cidrs) {
      if (std::optional<Cidr> cidr = parse_cidr(text)) rule.cidrs.push_back(*cidr);
    }
    rule.has_tables = !route.match.tables.empty();
    for (const std::string& text : route.match.tables) {
      std::string name = normalize_table(text);
      if (!name.empty()) rule.tables.push_back(std::move(name));
    }
    rule.has_fingerprints = !route.match.fingerprints.empty();
    for (const std::string& fp : route.match.fingerprints) {
      rule.fingerprints.push_back(lower_ascii(fp));
    }
    rule.tags = route.match.tags;

    if (route.percent && route.target.empty()) {
      rule.is_percent = true;
      const double p = *route.percent;
      // p percent = p * 100 basis points; a point (an integer) is below p * 100 iff it is below
      // its ceiling. NaN and negatives send nothing.
      double points = p * 100.0;
      // 0.07 * 100 is 7.000000000000001: decimal percentages mean what they say.
      if (std::abs(points - std::round(points)) < 1e-6) points = std::round(points);
      points = std::ceil(points);
      rule.threshold = points >= 10000.0 ? 10000u
                       : points > 0.0    ? static_cast<uint32_t>(points)
                                         : 0u;
    } else if (route.target == "old") {
      rule.target = RouteTarget::kOld;
    } else if (route.target == "new") {
      rule.target = RouteTarget::kNew;
    } else {
      rule.target = RouteTarget::kPrimary;  // "primary", and anything validation let through
    }
    const std::string_view key = route.hash_key;
    if (key == "user") {
      rule.hash_key = HashKey::kUser;
    } else if (key == "application_name") {
      rule.hash_key = HashKey::kApplicationName;
    } else if (key == "client_address") {
      rule.hash_key = HashKey::kClientAddress;
    } else if (key.substr(0, 4) == "tag:" && key.size() > 4) {
      rule.hash_key = HashKey::kTag;
      rule.hash_tag = std::string(key.substr(4));
    } else {
      rule.hash_key = HashKey::kSession;
    }
    rule.shadow_sample_rate = route.shadow_sample_rate;
    set->impl_->rules.push_back(std::move(rule));
  }
  return set;
}

namespace {

bool session_matches(const RuleSet::Rule& rule, const SessionInfo& s) {
  if (!rule.users.empty() && !contains(rule.users, s.user)) return false;
  if (!rule.databases.empty() && !contains(rule.databases, s.database)) return false;
  if (!rule.application_names.empty() && !contains(rule.application_names, s.application_name)) {
    return false;
  }
  if (rule.has_cidrs) {
    // A Unix-socket client has no address: a rule on addresses does not apply to it.
    if (!s.client) return false;
    bool any = false;
    for (const Cidr& c : rule.cidrs) {
      if (in_cidr(*s.client, c)) {
        any = true;
        break;
      }
    }
    if (!any) return false;
  }
  return true;
}

// The first value of tag `key`, or null.
const std::string* find_tag(const std::vector<std::pair<std::string, std::string>>& tags,
                            std::string_view key) {
  for (const auto& [k, v] : tags) {
    if (k == key) return &v;
  }
  return nullptr;
}

bool table_matches(const std::string& rule_table, const std::vector<std::string>& referenced) {
  for (const std::string& ref : referenced) {
    if (ref == rule_table) return true;
    // A rule's bare or partly qualified name matches the same name under any schema (the
    // search_path is the server's to resolve): "accounts" matches "public.accounts".
    if (ref.size() > rule_table.size() && ref[ref.size() - rule_table.size() - 1] == '.' &&
        std::string_view(ref).substr(ref.size() - rule_table.size()) == rule_table) {
      return true;
    }
  }
  return false;
}

bool statement_matches(const RuleSet::Rule& rule, StatementInfo& st) {
  if (rule.has_fingerprints && !contains(rule.fingerprints, st.fingerprint())) return false;
  if (rule.has_tables) {
    const std::vector<std::string>& referenced = st.tables();
    bool any = false;
    for (const std::string& t : rule.tables) {
      if (table_matches(t, referenced)) {
        any = true;
        break;
      }
    }
    if (!any) return false;
  }
  if (!rule.tags.empty()) {
    const auto& tags = st.tags();
    for (const auto& [key, values] : rule.tags) {
      const std::string* value = find_tag(tags, key);
      if (value == nullptr) return false;
      // A key listed with no values only asks for its presence.
      if (!values.empty() && !contains(values, *value)) return false;
    }
  }
  return true;
}

RouteTarget percent_target(const RuleSet::Rule& rule, std::string_view seed, std::string_view key) {
  return hash_point(seed, key) < rule.threshold ? RouteTarget::kNew : RouteTarget::kPrimary;
}

}  // namespace

RuleSet::SessionRoutes RuleSet::for_session(const SessionInfo& session) const {
  SessionRoutes routes;
  routes.set_ = this;
  routes.session_ = &session;
  routes.session_key_ = std::to_string(session.session_key);
  bool always_matched = false;
  for (uint32_t i = 0; i < impl_->rules.size() && !always_matched; ++i) {
    const Rule& rule = impl_->rules[i];
    if (!session_matches(rule, session)) continue;
    SessionRoutes::Candidate c{i, rule.target};
    if (rule.is_percent) {
      std::string_view key = routes.session_key_;
      switch (rule.hash_key) {
        case HashKey::kUser:
          key = session.user;
          break;
        case HashKey::kApplicationName:
          key = session.application_name;
          break;
        case HashKey::kClientAddress:
          key = session.client_address;
          break;
        case HashKey::kSession:
        case HashKey::kTag:  // decided per statement; the session key is the fallback
          break;
      }
      c.session_target = percent_target(rule, impl_->seed, key);
    }
    routes.candidates_.push_back(c);
    if (rule.depends_on_statement()) routes.depends_on_statement_ = true;
    // A percentage on a session-fixed key is decided already: 40% that leaves this session on
    // the primary routes nothing of it.
    const bool session_decided = rule.is_percent && rule.hash_key != HashKey::kTag;
    if (session_decided ? c.session_target != RouteTarget::kPrimary : rule.may_leave_primary()) {
      routes.routes_anything_ = true;
    }
    // Rules after one that matches every statement of this session are never reached.
    always_matched = !rule.statement_conditions();
  }
  if (!routes.depends_on_statement_) {
    routes.fixed_ = RouteDecision{};
    if (!routes.candidates_.empty()) {
      // No candidate has statement conditions, so there is one, and it always matches.
      const SessionRoutes::Candidate& last = routes.candidates_.back();
      const Rule& rule = impl_->rules[last.rule];
      if (!rule.statement_conditions()) {
        routes.fixed_.target = last.session_target;
        routes.fixed_.rule = static_cast<int>(last.rule);
        routes.fixed_.shadow_sample_rate = rule.shadow_sample_rate;
      }
    }
  }
  return routes;
}

RouteDecision RuleSet::SessionRoutes::decide(StatementInfo& statement) const {
  if (!depends_on_statement_) return fixed_;
  const std::vector<Rule>& rules = set_->impl_->rules;
  for (const Candidate& c : candidates_) {
    const Rule& rule = rules[c.rule];
    if (!statement_matches(rule, statement)) continue;
    RouteDecision d;
    d.rule = static_cast<int>(c.rule);
    d.shadow_sample_rate = rule.shadow_sample_rate;
    d.target = c.session_target;
    if (rule.is_percent && rule.hash_key == HashKey::kTag) {
      const std::string* value = find_tag(statement.tags(), rule.hash_tag);
      d.target = percent_target(rule, set_->impl_->seed,
                                value != nullptr ? std::string_view(*value) : session_key_);
    }
    return d;
  }
  return RouteDecision{};
}

}  // namespace pgtandem::policy

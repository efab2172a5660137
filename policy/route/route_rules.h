// Read routing rules: which target a read goes to (DESIGN.md "Routing reads"; issue 4).
//
// Pure and deterministic: the session builds a SessionInfo once and a StatementInfo per read, the
// rule set returns a RouteDecision, the proxy carries it out (and enforces the safety rules this
// file does not know about: transactions, writes, pinning, read-your-writes, the breaker). The
// percentage of a rule is a consistent hash of a stable key with the configured seed, so the same
// key gets the same decision on every replica, after every reload that keeps the rule, and raising
// a rule's percentage only moves keys from the primary to `new`, never back.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace pgtandem::policy {

// A client address, v4 or v6 (v4 stored as v4-mapped v6), for CIDR matching.
struct IpAddress {
  uint8_t bytes[16] = {};
  static std::optional<IpAddress> parse(std::string_view text);  // "10.1.2.3", "::1"
  static IpAddress from_v4(uint32_t host_order);
  static IpAddress from_v6(const uint8_t bytes[16]);
  bool operator==(const IpAddress&) const = default;
};

// What is known of a session at login; fixed for its life.
struct SessionInfo {
  std::string user;
  std::string database;
  std::string application_name;
  std::optional<IpAddress> client;  // none for Unix-socket clients
  std::string client_address;       // text form, the hash key "client_address" ("" for Unix)
  uint64_t session_key = 0;         // unique per session (the hash key "session")
};

enum class RouteTarget : uint8_t { kPrimary, kOld, kNew };

struct RouteDecision {
  RouteTarget target = RouteTarget::kPrimary;
  int rule = -1;  // index into RuleSet::rules(), -1 when no rule matched
  // The matched rule's shadow sample rate (issue 5), if it sets one.
  std::optional<double> shadow_sample_rate;
};

// sqlcommenter-style tags from the statement's comments: /* tenant='42',route='canary' */ and
// -- tenant='42'. Values are URL-decoded ('%27' -> '\''); malformed comments give no tags.
// Returns (key, value) pairs in order of appearance; a bounded number (64) at most. Keys are kept
// as written (case-sensitive). Each comment is all or nothing: one that is not entirely a tag
// list (ordinary text, a bad %-escape, a nested comment) gives no tags. Text inside literals,
// quoted identifiers and dollar quotes is not a comment; a statement the server's scanner rejects
// (unterminated comment or string) has no tags. Rules use a key's first occurrence.
std::vector<std::pair<std::string, std::string>> parse_sql_tags(std::string_view sql);

// Tables a statement references (FROM, JOIN, INSERT/UPDATE/DELETE targets, subqueries, CTE bodies
// excluding the CTE names themselves), as "name" and "schema.name" as written, unquoted names
// lowercased. Parsed with libpg_query (slow: ~15 us); empty on a syntax error. A rule's table
// matches a reference equal to it or ending in "." + it: "accounts" matches "public.accounts",
// "public.accounts" does not match an unqualified "accounts" (the search_path is unknown here).
std::vector<std::string> referenced_tables(std::string_view sql);

// libpg_query fingerprint as 16 lowercase hex digits; "" on a syntax error. ~4 us.
std::string statement_fingerprint(std::string_view sql);
// The statement with its constants replaced by $n (pg_query_normalize), for logs and /status;
// the statement itself when it does not parse. Off the data path (mismatches only).
std::string normalize_statement(std::string_view sql);

// The seeded consistent hash of a key: a point in [0, 10000) (basis points). A rule with percent
// p sends the key to `new` iff hash_point(seed, rule_name?, key) < p * 100, so raising p only adds
// keys. The rule name is NOT part of the hash: two rules on the same key agree, and renaming a rule
// moves nothing. Algorithm (fixed forever: changing it reshuffles every replica's routing):
// FNV-1a 64 over seed, one NUL byte and key; MurmurHash3's fmix64; then ((h >> 32) * 10000) >> 32.
uint32_t hash_point(std::string_view seed, std::string_view key);

// Lazily computed per-statement facts; the rule set only asks for what its rules use.
class StatementInfo {
 public:
  explicit StatementInfo(std::string_view sql) : sql_(sql) {}
  std::string_view sql() const { return sql_; }
  const std::vector<std::pair<std::string, std::string>>& tags();
  const std::vector<std::string>& tables();
  const std::string& fingerprint();

 private:
  std::string_view sql_;
  std::optional<std::vector<std::pair<std::string, std::string>>> tags_;
  std::optional<std::vector<std::string>> tables_;
  std::optional<std::string> fingerprint_;
};

class RuleSet {
 public:
  struct Rule;  // compiled config::Route (defined in route_rules.cc)

  // Compiles the config's [routing] and [[routes]]; config validation already checked them, so
  // this cannot fail on a validated config.
  static std::shared_ptr<const RuleSet> compile(const config::Config& config);
  ~RuleSet();

  size_t size() const;
  const std::string& rule_name(size_t index) const;
  bool empty() const { return size() == 0; }

  // Per session: which rules can match this session at all (user/database/application_name/
  // client CIDR decided once), and whether the decision can depend on the statement (tables,
  // fingerprints, tags, or a tag hash key). When it cannot, `fixed()` holds the decision and the
  // session need not build StatementInfo at all: no per-statement cost.
  class SessionRoutes {
   public:
    bool depends_on_statement() const { return depends_on_statement_; }
    const RouteDecision& fixed() const { return fixed_; }  // valid when !depends_on_statement()
    RouteDecision decide(StatementInfo& statement) const;
    // Some reachable rule may send this session's reads off the primary (a percentage on a
    // session-fixed key that keeps this session on the primary does not count).
    bool routes_anything() const { return routes_anything_; }

   private:
    friend class RuleSet;
    struct Candidate {
      uint32_t rule;
      // The rule's decision when it matches and its hash key does not come from the statement
      // (everything but tag:<name>): computed once per session.
      RouteTarget session_target;
    };
    const RuleSet* set_ = nullptr;
    const SessionInfo* session_ = nullptr;
    // Rules whose session conditions match, in order, up to the first one that always matches.
    std::vector<Candidate> candidates_;
    std::string session_key_;  // session_key in decimal: the "session" hash key
    bool depends_on_statement_ = false;
    bool routes_anything_ = false;
    RouteDecision fixed_;
  };
  // `session` must outlive the result; so must this RuleSet (hold the shared_ptr).
  SessionRoutes for_session(const SessionInfo& session) const;

 private:
  RuleSet();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Resolves a decision's target to "which target is it relative to the primary".
inline bool routes_to_secondary(RouteTarget t, bool primary_is_old) {
  switch (t) {
    case RouteTarget::kPrimary:
      return false;
    case RouteTarget::kOld:
      return !primary_is_old;
    case RouteTarget::kNew:
      return primary_is_old;
  }
  return false;
}

}  // namespace pgtandem::policy

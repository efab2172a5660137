// Shadow-read noise control and sampling (DESIGN.md "Shadow reads"; issue 5). Pure: time is
// injected, the sample decision is a hash, nothing here does I/O.
//
// A shadow read compares two servers' answers (result_digest.h); a statement whose answer is not
// a function of the data alone would compare as a mismatch on identical data. The helpers here
// tell the proxy which reads to skip, and which to compare in order.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

#include "policy/sql/classifier.h"

namespace pgtandem::policy {

// Why a read's answer can differ between two servers holding the same data.
enum class NondeterministicReason : uint8_t {
  kNone,
  kVolatileFunction,     // random(), now(), clock_timestamp(), nextval(), ... (the classifier's)
  kLimitWithoutOrderBy,  // LIMIT n, OFFSET n, FETCH FIRST/NEXT in a (sub)query without ORDER BY
  kDistinctOnWithoutOrderBy,  // DISTINCT ON keeps an arbitrary row of each group
  kTableSample,               // TABLESAMPLE: which rows depends on the physical layout, even with
                              // REPEATABLE, and the layout differs between servers
};
std::string_view to_string(NondeterministicReason r);  // "none", "volatile_function", ...

struct ReadShape {
  // Every statement of the text ends in an ORDER BY of its own top level: outside parentheses
  // (a statement wholly in parentheses counts as its inside), strings, comments and quoted names.
  // Its rows must come in the same order on both sides. ORDER BY on a non-unique key still lets
  // ties come in any order: compare() reports that as kRowOrder, apart from kRows.
  bool top_level_order_by = false;
  NondeterministicReason nondeterministic = NondeterministicReason::kNone;
};

// One lexer pass (no parser). `classification` is the statement's own (cached by the proxy);
// only its nondeterministic flag is used. A scope is a query level: the text between matching
// parentheses, or the statement. LIMIT/OFFSET/FETCH or DISTINCT ON count as nondeterministic unless
// the same scope has an ORDER BY (LIMIT ALL does not limit). On text the server's scanner rejects,
// what was seen before the error counts.
ReadShape analyze_read(std::string_view sql, const Classification& classification,
                       bool standard_conforming_strings = true);

bool has_top_level_order_by(std::string_view sql, bool standard_conforming_strings = true);
// Classifies the statement with default ClassifierOptions (unknown functions count as volatile);
// a proxy that holds the statement's classification calls analyze_read instead.
bool is_nondeterministic_read(std::string_view sql);

// Deterministic sampling by hash: the same (seed, key) always gets the same answer, on every
// replica, and raising the rate only adds keys. rate <= 0 (or NaN): never; rate >= 1: always.
// Algorithm (fixed): h = fmix64(fnv1a64(seed) ^ fmix64(key)) (MurmurHash3's fmix64); sampled iff
// the top 53 bits of h, as a fraction of 2^53, are below rate.
bool sample(std::string_view seed, uint64_t key, double rate);

// Token bucket: at most `per_second` admissions per second on average, `burst` at once. Starts
// full. Time is injected; a clock that goes backwards adds nothing. Not thread-safe (one per
// worker: give each its share of the rate).
class TokenBucket {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  // per_second <= 0 (or NaN) admits nothing; burst below 1 is 1.
  TokenBucket(double per_second, double burst);
  bool try_take(TimePoint now);
  double tokens(TimePoint now) const;  // what try_take would see, for /status

 private:
  double refilled(TimePoint now) const;

  double per_second_;
  double burst_;
  double tokens_;
  std::optional<TimePoint> last_;
};

// The sample decision of a shadow read: the rule's rate by hash, then the optional rate limit.
class ShadowSampler {
 public:
  enum class Outcome : uint8_t {
    kNotSampled,
    kSampled,
    kRateLimited,  // sampled, but over the rate limit: a counted drop
  };
  struct RateLimit {
    double per_second = 0;
    double burst = 1;
  };
  explicit ShadowSampler(std::string_view seed, std::optional<RateLimit> limit = std::nullopt);

  // Same answer as sample(seed, key, rate) when no limit is set. `key` identifies the read (say,
  // a session key mixed with the statement's sequence number).
  Outcome decide(uint64_t key, double rate, TokenBucket::TimePoint now);

 private:
  uint64_t seed_hash_;
  std::optional<TokenBucket> bucket_;
};

}  // namespace pgtandem::policy

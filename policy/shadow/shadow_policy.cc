#include "policy/shadow/shadow_policy.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "policy/sql/lexer.h"
#include "policy/hash.h"

namespace pgtandem::policy {
namespace {

// Scopes deeper than this are not tracked one by one: a LIMIT down there counts as
// nondeterministic whatever ORDER BY it has (conservative: the read is skipped, not miscompared).
constexpr int kTrackedDepth = 64;

class ShapeScanner {
 public:
  explicit ShapeScanner(std::string_view sql, bool scs) : lexer_(sql, scs) {}

  ReadShape run() {
    bool any_statement = false;
    bool all_ordered = true;
    for (;;) {
      const Token t = lexer_.next();
      if (t.kind == TokenKind::kEnd || t.kind == TokenKind::kError ||
          (t.kind == TokenKind::kSemicolon && depth_ == 0)) {
        if (in_statement_) {
          any_statement = true;
          all_ordered = all_ordered && statement_ordered();
          close_scopes_down_to(0);
          close_scope(0);
          start_statement();
        }
        if (t.kind != TokenKind::kSemicolon) break;
        continue;
      }
      token(t);
    }
    ReadShape shape;
    shape.top_level_order_by = any_statement && all_ordered;
    shape.nondeterministic = reason_;
    return shape;
  }

 private:
  void start_statement() {
    in_statement_ = false;
    depth_ = 0;
    min_token_depth_ = INT32_MAX;
    min_order_depth_ = INT32_MAX;
    prev_ = Token{};
    order_bits_ = limit_bits_ = 0;
  }

  bool statement_ordered() const {
    return min_order_depth_ != INT32_MAX && min_order_depth_ == min_token_depth_;
  }

  static uint64_t bit(int depth) { return depth < kTrackedDepth ? 1ull << depth : 0; }

  void flag(NondeterministicReason r) {
    if (reason_ == NondeterministicReason::kNone) reason_ = r;
  }

  // A scope ends: a LIMIT or DISTINCT ON in it without an ORDER BY in it.
  void close_scope(int depth) {
    const uint64_t b = bit(depth);
    if ((limit_bits_ & b) && !(order_bits_ & b)) flag(pending_[std::min(depth, kTrackedDepth - 1)]);
    order_bits_ &= ~b;
    limit_bits_ &= ~b;
  }
  void close_scopes_down_to(int depth) {
    for (int d = std::min(depth_, kTrackedDepth - 1); d > depth; --d) close_scope(d);
  }

  void limited(NondeterministicReason r) {
    if (depth_ >= kTrackedDepth) {
      flag(r);
      return;
    }
    if (!(limit_bits_ & bit(depth_))) pending_[depth_] = r;
    limit_bits_ |= bit(depth_);
  }

  void token(const Token& t) {
    in_statement_ = true;
    const Token prev = prev_;
    prev_ = t;
    // LIMIT n, LIMIT $1, LIMIT (...), but not LIMIT ALL. Decided at the token after LIMIT, before
    // a parenthesis opens a scope.
    if (is_word(prev, "limit") && !is_word(t, "all")) {
      limited(NondeterministicReason::kLimitWithoutOrderBy);
    }
    if (t.kind == TokenKind::kLeftParen) {
      ++depth_;
      return;
    }
    if (t.kind == TokenKind::kRightParen) {
      if (depth_ > 0) {
        close_scope(depth_);
        --depth_;
      }
      return;
    }
    min_token_depth_ = std::min(min_token_depth_, depth_);
    if (t.kind != TokenKind::kWord) return;
    if (is_word(t, "by") && is_word(prev, "order")) {
      min_order_depth_ = std::min(min_order_depth_, depth_);
      order_bits_ |= bit(depth_);
    } else if (is_word(t, "offset")) {
      limited(NondeterministicReason::kLimitWithoutOrderBy);
    } else if ((is_word(t, "first") || is_word(t, "next")) && is_word(prev, "fetch")) {
      limited(NondeterministicReason::kLimitWithoutOrderBy);
    } else if (is_word(t, "on") && is_word(prev, "distinct")) {
      limited(NondeterministicReason::kDistinctOnWithoutOrderBy);
    } else if (is_word(t, "tablesample")) {
      flag(NondeterministicReason::kTableSample);
    }
  }

  Lexer lexer_;
  bool in_statement_ = false;
  int depth_ = 0;
  int min_token_depth_ = INT32_MAX;
  int min_order_depth_ = INT32_MAX;
  Token prev_;
  uint64_t order_bits_ = 0;
  uint64_t limit_bits_ = 0;
  NondeterministicReason pending_[kTrackedDepth] = {};
  NondeterministicReason reason_ = NondeterministicReason::kNone;
};

using hash::fmix64;
using hash::fnv1a;

bool sample_hashed(uint64_t seed_hash, uint64_t key, double rate) {
  if (!(rate > 0)) return false;  // NaN too
  if (rate >= 1) return true;
  const uint64_t point = fmix64(seed_hash ^ fmix64(key)) >> 11;
  // rate * 2^53 is exact for any double rate in (0, 1): a power-of-two scaling.
  return static_cast<double>(point) < std::ldexp(rate, 53);
}

}  // namespace

std::string_view to_string(NondeterministicReason r) {
  switch (r) {
    case NondeterministicReason::kNone:
      return "none";
    case NondeterministicReason::kVolatileFunction:
      return "volatile_function";
    case NondeterministicReason::kLimitWithoutOrderBy:
      return "limit_without_order_by";
    case NondeterministicReason::kDistinctOnWithoutOrderBy:
      return "distinct_on_without_order_by";
    case NondeterministicReason::kTableSample:
      return "tablesample";
  }
  return "unknown";
}

ReadShape analyze_read(std::string_view sql, const Classification& classification,
                       bool standard_conforming_strings) {
  ReadShape shape = ShapeScanner(sql, standard_conforming_strings).run();
  if (classification.nondeterministic) {
    shape.nondeterministic = NondeterministicReason::kVolatileFunction;
  }
  return shape;
}

bool has_top_level_order_by(std::string_view sql, bool standard_conforming_strings) {
  return ShapeScanner(sql, standard_conforming_strings).run().top_level_order_by;
}

bool is_nondeterministic_read(std::string_view sql) {
  const Classification c = classify(sql, ClassifierOptions{});
  return analyze_read(sql, c).nondeterministic != NondeterministicReason::kNone;
}

bool sample(std::string_view seed, uint64_t key, double rate) {
  return sample_hashed(fnv1a(seed), key, rate);
}

// ---- TokenBucket ----

TokenBucket::TokenBucket(double per_second, double burst)
    : per_second_(per_second > 0 ? per_second : 0),
      burst_(burst >= 1 ? burst : 1),
      tokens_(burst_) {}

double TokenBucket::refilled(TimePoint now) const {
  if (!last_ || now <= *last_) return tokens_;
  const double seconds = std::chrono::duration<double>(now - *last_).count();
  return std::min(burst_, tokens_ + seconds * per_second_);
}

double TokenBucket::tokens(TimePoint now) const { return per_second_ > 0 ? refilled(now) : 0; }

bool TokenBucket::try_take(TimePoint now) {
  if (per_second_ <= 0) return false;
  tokens_ = refilled(now);
  if (!last_ || now > *last_) last_ = now;
  if (tokens_ < 1) return false;
  tokens_ -= 1;
  return true;
}

// ---- ShadowSampler ----

ShadowSampler::ShadowSampler(std::string_view seed, std::optional<RateLimit> limit)
    : seed_hash_(fnv1a(seed)) {
  if (limit) bucket_.emplace(limit->per_second, limit->burst);
}

ShadowSampler::Outcome ShadowSampler::decide(uint64_t key, double rate,
                                             TokenBucket::TimePoint now) {
  if (!sample_hashed(seed_hash_, key, rate)) return Outcome::kNotSampled;
  if (bucket_ && !bucket_->try_take(now)) return Outcome::kRateLimited;
  return Outcome::kSampled;
}

}  // namespace pgtandem::policy

// The shadow-read mismatch table (issue 5): which queries disagree between the targets, by libpg_query
// fingerprint, for the admin `/status` endpoint and the per-fingerprint mismatch metric. Bounded:
// the first `capacity` fingerprints seen get an entry (and a metric label of their own); later
// ones are counted together as "other", so the Prometheus label set can never grow unbounded.
// Thread-safe (workers record, the admin thread reads); touched on a mismatch only, never per read.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "policy/shadow/result_digest.h"

namespace pgtandem::policy {

struct MismatchEntry {
  std::string fingerprint;  // 16 hex digits, or "" when the statement did not parse
  std::string query;        // normalized ($1 for constants), cut at 512 bytes
  std::string example;      // the last mismatch's detail ("row_count: 3 vs 2", ...)
  std::string rule;         // the route rule of the last mismatch
  std::string target;       // the target the shadow ran on, last time
  uint64_t count = 0;
  // Index: static_cast<size_t>(MismatchKind); kNone unused.
  std::array<uint64_t, 7> by_kind{};
  uint64_t persistent = 0;  // rechecks that found the mismatch again
  uint64_t transient = 0;   // rechecks that found the targets agreeing
  int64_t first_seen_ms = 0;  // unix ms
  int64_t last_seen_ms = 0;
};

class MismatchTable {
 public:
  static constexpr size_t kDefaultCapacity = 50;
  explicit MismatchTable(size_t capacity = kDefaultCapacity) : capacity_(capacity) {}

  // Counts a mismatch. Returns the metric label for the fingerprint: the fingerprint itself when
  // it has an entry, "other" when the table was full, "unparsed" for "".
  std::string record(std::string_view fingerprint, MismatchKind kind, std::string_view query,
                     std::string_view example, std::string_view rule, std::string_view target,
                     int64_t unix_ms);
  // A recheck's verdict on a mismatch of this fingerprint (no-op when it has no entry).
  void record_recheck(std::string_view fingerprint, bool persistent);

  // Entries by count, highest first (ties: most recent first), at most `limit`.
  std::vector<MismatchEntry> top(size_t limit) const;
  uint64_t other() const;   // mismatches of fingerprints that found the table full
  uint64_t total() const;   // every mismatch recorded
  size_t size() const;
  void clear();             // POST /breaker/reset does not clear it; tests and a future admin call

 private:
  mutable std::mutex mu_;
  size_t capacity_;
  std::unordered_map<std::string, MismatchEntry> entries_;
  uint64_t other_ = 0;
  uint64_t total_ = 0;
};

}  // namespace pgtandem::policy

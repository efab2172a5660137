#include "policy/shadow/mismatch_table.h"

#include <algorithm>

namespace pgtandem::policy {
namespace {
constexpr size_t kMaxQuery = 512;
constexpr size_t kMaxExample = 512;

std::string cut(std::string_view s, size_t max) {
  if (s.size() <= max) return std::string(s);
  // Never split a UTF-8 sequence: back up to a lead byte.
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return std::string(s.substr(0, n)) + "...";
}
}  // namespace

std::string MismatchTable::record(std::string_view fingerprint, MismatchKind kind,
                                  std::string_view query, std::string_view example,
                                  std::string_view rule, std::string_view target,
                                  int64_t unix_ms) {
  std::lock_guard lock(mu_);
  ++total_;
  const std::string key(fingerprint);
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    if (entries_.size() >= capacity_) {
      ++other_;
      return "other";
    }
    it = entries_.emplace(key, MismatchEntry{}).first;
    it->second.fingerprint = key;
    it->second.first_seen_ms = unix_ms;
  }
  MismatchEntry &e = it->second;
  ++e.count;
  const auto k = static_cast<size_t>(kind);
  if (k < e.by_kind.size()) ++e.by_kind[k];
  e.query = cut(query, kMaxQuery);
  e.example = cut(example, kMaxExample);
  e.rule = std::string(rule);
  e.target = std::string(target);
  e.last_seen_ms = unix_ms;
  return key.empty() ? std::string("unparsed") : key;
}

void MismatchTable::record_recheck(std::string_view fingerprint, bool persistent) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(std::string(fingerprint));
  if (it == entries_.end()) return;
  ++(persistent ? it->second.persistent : it->second.transient);
}

std::vector<MismatchEntry> MismatchTable::top(size_t limit) const {
  std::vector<MismatchEntry> out;
  {
    std::lock_guard lock(mu_);
    out.reserve(entries_.size());
    for (const auto &[k, e] : entries_) out.push_back(e);
  }
  std::sort(out.begin(), out.end(), [](const MismatchEntry &a, const MismatchEntry &b) {
    if (a.count != b.count) return a.count > b.count;
    if (a.last_seen_ms != b.last_seen_ms) return a.last_seen_ms > b.last_seen_ms;
    return a.fingerprint < b.fingerprint;
  });
  if (out.size() > limit) out.resize(limit);
  return out;
}

uint64_t MismatchTable::other() const {
  std::lock_guard lock(mu_);
  return other_;
}

uint64_t MismatchTable::total() const {
  std::lock_guard lock(mu_);
  return total_;
}

size_t MismatchTable::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

void MismatchTable::clear() {
  std::lock_guard lock(mu_);
  entries_.clear();
  other_ = 0;
  total_ = 0;
}

}  // namespace pgtandem::policy

#include "policy/sql/classifier_cache.h"

#include <functional>

namespace pgtandem::policy {

ClassificationCache::ClassificationCache(Limits limits) : limits_(limits) {
  if (limits_.max_entries == 0) limits_.max_entries = 1;
  index_.reserve(limits_.max_entries);
}

uint64_t ClassificationCache::key_of(std::string_view sql, bool standard_conforming_strings) {
  const uint64_t h = std::hash<std::string_view>{}(sql);
  // The same text can end its literals elsewhere under the other setting: a different entry.
  return standard_conforming_strings ? h : h ^ 0x9e3779b97f4a7c15ull;
}

void ClassificationCache::check_generation(const ClassifierOptions& opts) {
  if (opts.generation != generation_) {
    clear();
    generation_ = opts.generation;
  }
}

const Classification* ClassificationCache::find(std::string_view sql,
                                                const ClassifierOptions& opts) {
  check_generation(opts);
  auto it = index_.find(key_of(sql, opts.standard_conforming_strings));
  if (it != index_.end()) {
    Entry& e = entries_[it->second];
    // The hash only finds the slot; the text decides (a collision must not turn a write into a
    // read).
    if (e.sql == sql && e.standard_conforming_strings == opts.standard_conforming_strings) {
      e.referenced = true;
      ++hits_;
      return &e.classification;
    }
  }
  ++misses_;
  return nullptr;
}

void ClassificationCache::evict_one() {
  // CLOCK: a referenced entry gets a second chance.
  for (;;) {
    if (hand_ >= entries_.size()) hand_ = 0;
    Entry& e = entries_[hand_];
    const uint32_t slot = static_cast<uint32_t>(hand_);
    ++hand_;
    if (!e.used) continue;
    if (e.referenced) {
      e.referenced = false;
      continue;
    }
    index_.erase(e.key);
    bytes_ -= e.sql.size();
    e.used = false;
    std::string().swap(e.sql);
    free_.push_back(slot);
    ++evictions_;
    return;
  }
}

void ClassificationCache::insert(std::string_view sql, const ClassifierOptions& opts,
                                 const Classification& c) {
  check_generation(opts);
  if (c.uses_session_prepared) return;
  if (sql.size() > limits_.max_statement_bytes || sql.size() > limits_.max_bytes) return;
  const uint64_t key = key_of(sql, opts.standard_conforming_strings);
  auto it = index_.find(key);
  if (it != index_.end()) {
    // Same key: the same text again, or a hash collision; the newer one takes the slot.
    Entry& e = entries_[it->second];
    bytes_ = bytes_ - e.sql.size() + sql.size();
    e.sql.assign(sql);
    e.classification = c;
    e.standard_conforming_strings = opts.standard_conforming_strings;
    e.referenced = true;
    return;
  }
  while (!index_.empty() &&
         (index_.size() >= limits_.max_entries || bytes_ + sql.size() > limits_.max_bytes)) {
    evict_one();
  }
  uint32_t slot;
  if (!free_.empty()) {
    slot = free_.back();
    free_.pop_back();
  } else {
    slot = static_cast<uint32_t>(entries_.size());
    entries_.emplace_back();
  }
  Entry& e = entries_[slot];
  e.sql.assign(sql);
  e.key = key;
  e.classification = c;
  e.standard_conforming_strings = opts.standard_conforming_strings;
  e.referenced = false;
  e.used = true;
  bytes_ += sql.size();
  index_.emplace(key, slot);
}

void ClassificationCache::clear() {
  entries_.clear();
  free_.clear();
  index_.clear();
  hand_ = 0;
  bytes_ = 0;
}

Classification classify_cached(std::string_view sql, const ClassifierOptions& opts,
                               ClassificationCache* cache) {
  if (const Classification* hit = cache->find(sql, opts)) return *hit;
  const Classification c = classify(sql, opts);
  cache->insert(sql, opts, c);
  return c;
}

}  // namespace pgtandem::policy

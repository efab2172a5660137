#include "policy/sql/classifier_cache.h"

#include <functional>

#include "policy/sql/statement_shape.h"

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

std::string_view ClassificationCache::key_text(std::string_view sql,
                                              const ClassifierOptions& opts) {
  if (statement_shape(sql, opts.standard_conforming_strings, &shape_)) return shape_;
  return sql;
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
  const std::string_view text = key_text(sql, opts);
  return find_keyed(text, opts, key_of(text, opts.standard_conforming_strings));
}

const Classification* ClassificationCache::find_keyed(std::string_view sql,
                                                      const ClassifierOptions& opts, uint64_t key) {
  auto it = index_.find(key);
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
  const std::string_view text = key_text(sql, opts);
  insert_keyed(text, opts, c, key_of(text, opts.standard_conforming_strings));
}

void ClassificationCache::insert_keyed(std::string_view sql, const ClassifierOptions& opts,
                                       const Classification& c, uint64_t key) {
  if (c.uses_session_prepared) return;
  if (sql.size() > limits_.max_statement_bytes || sql.size() > limits_.max_bytes) return;
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
  seen_.clear();
}

bool ClassificationCache::seen_before(uint64_t key) {
  if (seen_.empty()) seen_.assign(kSeenSlots, 0);
  uint64_t& slot = seen_[key & (kSeenSlots - 1)];
  const uint64_t mark = key | 1;
  if (slot == mark) {
    slot = 0;
    return true;
  }
  slot = mark;  // a later text with the same slot takes it: it is only a hint
  return false;
}

Classification ClassificationCache::classify_through(std::string_view sql,
                                                     const ClassifierOptions& opts) {
  check_generation(opts);
  const std::string_view text = key_text(sql, opts);
  const uint64_t key = key_of(text, opts.standard_conforming_strings);
  if (const Classification* hit = find_keyed(text, opts, key)) return *hit;
  const Classification c = classify(sql, opts);  // the text itself, never its shape
  if (seen_before(key)) insert_keyed(text, opts, c, key);
  return c;
}

Classification classify_cached(std::string_view sql, const ClassifierOptions& opts,
                               ClassificationCache* cache) {
  return cache->classify_through(sql, opts);
}

}  // namespace pgtandem::policy

// A bounded cache of classifications keyed by statement text, so that a statement seen before
// (a Parse of the same text, an ORM's repeated query) costs a hash and a compare instead of a
// lexer pass or a parse. CLOCK eviction, bounded by entries and by bytes of text. Not thread-safe:
// one per worker (or per session), passed explicitly.
//
// classify_cached() admits a text at its second sighting, as TinyLFU's doorkeeper does: a
// direct-mapped table of the hashes seen once. Texts that carry their own literals (pgbench
// -M simple, most hand-written SQL) are never seen twice; copying each into the cache, and evicting
// a useful entry for it, was 4k instructions of a mirrored TPC-B transaction (bench/README.md,
// "Mirroring's instructions"). A text that does repeat is classified once more before it is cached.
//
// Entries are keyed by the statement's shape (statement_shape.h: its numbers written as `0`/`0.0`), so
// texts that differ only in their numbers share one: the first text of a shape is classified, the
// others of it hit. A text without a shape is keyed by itself.
//
// Statements classified from the session's prepared statements (EXECUTE) are never cached; the
// session's named statements themselves live in PreparedStatements (classifier.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "policy/sql/classifier.h"

namespace pgtandem::policy {

class ClassificationCache {
 public:
  struct Limits {
    size_t max_entries = 4096;
    size_t max_bytes = 4 << 20;             // total statement text held
    size_t max_statement_bytes = 64 << 10;  // longer statements are classified, not cached
  };

  ClassificationCache() : ClassificationCache(Limits{}) {}
  explicit ClassificationCache(Limits limits);

  // nullptr on a miss. Valid until the next insert() or clear(). An entry classified under another
  // opts.generation is a miss (the whole cache is dropped).
  const Classification* find(std::string_view sql, const ClassifierOptions& opts);
  void insert(std::string_view sql, const ClassifierOptions& opts, const Classification& c);
  void clear();
  // classify() through the cache (classify_cached): one hash of the text for the lookup, the
  // admission and the insertion.
  Classification classify_through(std::string_view sql, const ClassifierOptions& opts);

  size_t size() const { return index_.size(); }
  size_t bytes() const { return bytes_; }
  uint64_t hits() const { return hits_; }
  uint64_t misses() const { return misses_; }
  uint64_t evictions() const { return evictions_; }

 private:
  struct Entry {
    std::string sql;
    uint64_t key = 0;
    Classification classification;
    bool standard_conforming_strings = true;
    bool referenced = false;
    bool used = false;
  };

  static uint64_t key_of(std::string_view sql, bool standard_conforming_strings);
  // What the entry for `sql` is keyed and compared by: its shape (in shape_, valid until the next
  // call), or the text itself.
  std::string_view key_text(std::string_view sql, const ClassifierOptions& opts);
  std::string shape_;
  void check_generation(const ClassifierOptions& opts);
  void evict_one();
  const Classification* find_keyed(std::string_view sql, const ClassifierOptions& opts, uint64_t key);
  void insert_keyed(std::string_view sql, const ClassifierOptions& opts, const Classification& c,
                    uint64_t key);
  // The doorkeeper: true when `key` was seen once already (and then forgets it), else notes it.
  bool seen_before(uint64_t key);
  static constexpr size_t kSeenSlots = 4096;  // 32 KB
  std::vector<uint64_t> seen_;                // key | 1 per slot; 0: empty

  Limits limits_;
  std::vector<Entry> entries_;
  std::vector<uint32_t> free_;
  std::unordered_map<uint64_t, uint32_t> index_;  // key -> entries_ slot
  size_t hand_ = 0;
  size_t bytes_ = 0;
  uint64_t generation_ = 0;
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
  uint64_t evictions_ = 0;
};

// classify() through the cache.
Classification classify_cached(std::string_view sql, const ClassifierOptions& opts,
                               ClassificationCache* cache);

}  // namespace pgtandem::policy

// Result digests and their comparison (policy/shadow/result_digest.h). Size: ~780 lines, kept
// whole: the per-type canonical forms (floats, numerics, timestamps, arrays) and the comparison
// that relies on them must change together.
#include "policy/shadow/result_digest.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>

#include "protocol/framing.h"
#include "protocol/messages.h"
#include "policy/hash.h"

namespace pgtandem::policy {
namespace {

// ---- Hashing ----
//
// Two lanes over the same input, each a chain of wyhash's mixing step (a folded 64x64->128-bit
// multiplication taking 16 bytes, or a header word and up to 8 bytes, at a time) with its own
// secrets: two independent-enough 64-bit hashes for about the cost of one, the two chains running
// side by side. Not keyed against adversaries: both sides are servers holding the same data.

constexpr uint64_t kSeedA = 0x243f6a8885a308d3ull;
constexpr uint64_t kSeedB = 0x13198a2e03707344ull;
constexpr uint64_t kSecretA = 0xa0761d6478bd642full;
constexpr uint64_t kSecretB = 0xe7037ed1a0b428dbull;

inline uint64_t mum(uint64_t x, uint64_t y) {
  const unsigned __int128 r = static_cast<unsigned __int128>(x) * y;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}

// MurmurHash3's finalizer and SplitMix64's: bijections, one per lane.
inline uint64_t fmix_a(uint64_t h) { return hash::fmix64(h); }
inline uint64_t fmix_b(uint64_t h) {
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h;
}

inline uint64_t load64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline uint64_t load32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

struct Lanes {
  uint64_t a;
  uint64_t b;

  void step(uint64_t x, uint64_t y) {
    a = mum(x ^ kSecretA, y ^ a);
    b = mum(x ^ kSecretB, y ^ b);
  }
  // One item: its header word (which holds n) and its n bytes. Knowing n, the overlapping loads
  // of the tail are unambiguous; no load leaves [p, p + n).
  void item(uint64_t header, const char* p, size_t n) {
    if (n <= 8) {
      step(header, small(p, n));
      return;
    }
    const char* end = p + n;
    step(header, load64(p));
    for (p += 8; end - p > 16; p += 16) step(load64(p), load64(p + 8));
    step(end - p > 8 ? load64(p) : 0, load64(end - 8));
  }

  static uint64_t small(const char* p, size_t n) {
    if (n == 8) return load64(p);
    if (n >= 4) return (load32(p) << 32) | load32(p + n - 4);
    if (n == 0) return 0;
    const auto u = [](char c) { return static_cast<uint64_t>(static_cast<uint8_t>(c)); };
    return (u(p[0]) << 16) | (u(p[n >> 1]) << 8) | u(p[n - 1]);
  }
};

// Header word of a value: its length (or kNullLength) in bits 0-31, its format code in bits 32-47,
// a tag bit, and how it was hashed in bits 49-56.
constexpr uint64_t kNullLength = 0xffffffffull;
enum : uint64_t { kRaw = 0, kCanonical = 1, kName = 2, kType = 3, kMalformed = 4, kEnd = 5 };

inline uint64_t header(uint64_t length, int16_t format, uint64_t kind) {
  return (kind << 49) | (1ull << 48) |
         (static_cast<uint64_t>(static_cast<uint16_t>(format)) << 32) | (length & kNullLength);
}

bool hash_less(const Digest128& x, const Digest128& y) {
  return x.a != y.a ? x.a < y.a : x.b < y.b;
}

Digest128 finish(const Lanes& l, uint64_t count) {
  return Digest128{fmix_a(l.a ^ count), fmix_b(l.b + count)};
}

// ---- Float tolerance ----

constexpr uint32_t kFloat4Oid = 700;
constexpr uint32_t kFloat8Oid = 701;
constexpr uint32_t kNumericOid = 1700;
constexpr uint32_t kFirstNormalObjectId = 16384;  // OIDs below: built in, equal on every cluster
enum : uint8_t { kFloatNone = 0, kFloat4 = 1, kFloat8 = 2, kNumeric = 3 };

constexpr size_t kCanonicalMax = 48;

// The canonical form of a float/numeric value under the configured tolerance, into buf; false
// when the value is not a number this scheme handles (it is then hashed as its bytes).
bool canonical_float(std::string_view v, int16_t format, uint8_t kind, int digits, double tolerance,
                     char* buf, size_t* n) {
  double x = 0;
  if (format == 0) {
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
    if (ec != std::errc() || end != v.data() + v.size()) return false;
  } else if (format == 1 && kind == kFloat4 && v.size() == 4) {
    x = std::bit_cast<float>(protocol::read_u32(v.data()));
  } else if (format == 1 && kind == kFloat8 && v.size() == 8) {
    const uint64_t hi = protocol::read_u32(v.data());
    x = std::bit_cast<double>((hi << 32) | protocol::read_u32(v.data() + 4));
  } else {
    return false;
  }
  if (std::isnan(x)) {
    std::memcpy(buf, "nan", 3);
    *n = 3;
    return true;
  }
  if (x == 0) x = 0;  // -0 is 0
  if (tolerance > 0) {
    const double q = x / tolerance;
    if (std::fabs(q) < 9.0e15) {
      const int64_t bucket = static_cast<int64_t>(std::floor(q + 0.5));
      buf[0] = 'q';
      std::memcpy(buf + 1, &bucket, 8);
      *n = 9;
      return true;
    }
    // Beyond 2^53 steps of the tolerance a double has no finer steps anyway: the exact value.
    const auto r = std::to_chars(buf, buf + kCanonicalMax, x);
    *n = static_cast<size_t>(r.ptr - buf);
    return r.ec == std::errc();
  }
  const auto r =
      std::to_chars(buf, buf + kCanonicalMax, x, std::chars_format::scientific, digits - 1);
  *n = static_cast<size_t>(r.ptr - buf);
  return r.ec == std::errc();
}

// ---- Rendering ----

// Appends up to a byte budget; past it, cuts at a UTF-8 boundary and ends with "...".
constexpr size_t kMinRendered = 8;

class BoundedWriter {
 public:
  BoundedWriter(std::string* out, size_t limit) : out_(out), limit_(std::max(limit, kMinRendered)) {
    out_->clear();
  }
  bool full() const { return full_; }
  void put(std::string_view s) {
    if (full_) return;
    const size_t room = limit_ - 3 - out_->size();
    if (s.size() <= room) {
      out_->append(s);
      return;
    }
    size_t cut = room;
    while (cut > 0 && (static_cast<uint8_t>(s[cut]) & 0xc0) == 0x80) --cut;
    out_->append(s.substr(0, cut));
    out_->append("...");
    full_ = true;
  }
  void put(char c) { put(std::string_view(&c, 1)); }

 private:
  std::string* out_;
  size_t limit_;
  bool full_ = false;
};

// `complete`: false when the value was cut short (its closing quote is left out).
void render_value(BoundedWriter& w, std::string_view v, bool null, int16_t format, bool complete) {
  if (null) {
    w.put("NULL");
    return;
  }
  if (format != 0) {
    static constexpr char kHex[] = "0123456789abcdef";
    w.put("\\x");
    for (char c : v) {
      if (w.full()) return;
      const auto u = static_cast<uint8_t>(c);
      const char pair[2] = {kHex[u >> 4], kHex[u & 15]};
      w.put(std::string_view(pair, 2));
    }
    return;
  }
  w.put('\'');
  size_t start = 0;
  for (size_t i = 0; i < v.size() && !w.full(); ++i) {
    if (v[i] == '\'') {
      w.put(v.substr(start, i + 1 - start));
      w.put('\'');
      start = i + 1;
    }
  }
  w.put(v.substr(start));
  if (complete) w.put('\'');
}

void append_number(std::string* out, uint64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, static_cast<size_t>(r.ptr - buf));
}

}  // namespace

std::string to_hex(const Digest128& d) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s(32, '0');
  for (int i = 0; i < 16; ++i) {
    s[15 - i] = kHex[(d.a >> (4 * i)) & 15];
    s[31 - i] = kHex[(d.b >> (4 * i)) & 15];
  }
  return s;
}

// ---- ResultDigest ----

ResultDigest::ResultDigest(const DigestOptions* options, bool ordered) : options_(options) {
  first_row_.reserve(rendered_capacity());
  reset(ordered);
}

size_t ResultDigest::rendered_capacity() const {
  return std::max(options_->max_rendered_row, kMinRendered);
}

int ResultDigest::float_digits() const {
  const auto& d = options_->float_significant_digits;
  return d ? std::clamp(*d, 1, 17) : 0;
}

double ResultDigest::float_tolerance() const {
  const auto& t = options_->float_absolute_tolerance;
  return t && *t > 0 && std::isfinite(*t) ? *t : 0;
}

void ResultDigest::reset(bool ordered) {
  ordered_ = ordered;
  complete_ = false;
  failed_ = false;
  has_row_description_ = false;
  identity_order_ = true;
  sqlstate_size_ = 0;
  error_message_.clear();
  command_tag_.clear();
  columns_.clear();
  order_.clear();
  columns_state_ = Digest128{kSeedA, kSeedB};
  columns_digest_ = Digest128{};
  row_count_ = 0;
  rows_sum_ = Digest128{};
  rows_ordered_ = Digest128{kSeedA, kSeedB};
  malformed_ = 0;
  first_row_.clear();
  first_row_cut_ = false;
  sample_size_ = 0;
  heap_.clear();
}

void ResultDigest::on_row_description(std::string_view body) {
  Lanes lanes{columns_state_.a, columns_state_.b};
  protocol::RowDescription rd;
  if (!protocol::decode(body, rd)) {
    // The rows that follow are hashed as if undescribed: in wire order, as text.
    ++malformed_;
    has_row_description_ = false;
    identity_order_ = true;
    columns_.clear();
    order_.clear();
    lanes.item(header(body.size(), 0, kMalformed), body.data(), body.size());
    columns_state_ = Digest128{lanes.a, lanes.b};
    columns_digest_ = finish(lanes, 0);
    return;
  }
  has_row_description_ = true;
  const size_t n = rd.size();
  const bool tolerance = float_digits() > 0 || float_tolerance() > 0;
  columns_.assign(n, Column{});
  if (names_.size() < n) names_.resize(n);
  values_.resize(n);
  nulls_.resize(n);
  order_.clear();
  size_t i = 0;
  for (const protocol::ColumnDescription& c : rd) {
    names_[i].assign(c.name);
    Column& col = columns_[i];
    col.type_oid = c.type_oid;
    col.format = c.format;
    if (tolerance) {
      col.float_kind = c.type_oid == kFloat4Oid    ? kFloat4
                       : c.type_oid == kFloat8Oid  ? kFloat8
                       : c.type_oid == kNumericOid ? kNumeric
                                                   : kFloatNone;
    }
    const auto& ignored = options_->ignore_columns;
    if (std::find(ignored.begin(), ignored.end(), c.name) == ignored.end()) {
      order_.push_back(static_cast<uint16_t>(i));
    }
    ++i;
  }
  if (options_->ignore_column_order) {
    // By name, then wire position: a stable order without std::stable_sort's buffer.
    std::sort(order_.begin(), order_.end(), [&](uint16_t x, uint16_t y) {
      const int c = names_[x].compare(names_[y]);
      return c != 0 ? c < 0 : x < y;
    });
  }
  identity_order_ = order_.size() == n;
  for (size_t k = 0; k < order_.size() && identity_order_; ++k) identity_order_ = order_[k] == k;

  // Chained onto any earlier RowDescription of the same result, so that every one counts.
  for (uint16_t w : order_) {
    const std::string& name = names_[w];
    uint32_t oid = columns_[w].type_oid;
    if (oid >= kFirstNormalObjectId && !options_->compare_user_type_oids)
      oid = kFirstNormalObjectId;
    lanes.item(header(name.size(), 0, kName), name.data(), name.size());
    lanes.step(header(oid, 0, kType), 0);
  }
  lanes.step(header(order_.size(), 0, kEnd), 0);
  columns_state_ = Digest128{lanes.a, lanes.b};
  columns_digest_ = finish(lanes, order_.size());
}

bool ResultDigest::split_row(std::string_view body) {
  if (body.size() < 2 || !has_row_description_) return false;
  const size_t count = protocol::read_u16(body.data());
  if (count != columns_.size()) return false;
  size_t pos = 2;
  for (size_t i = 0; i < count; ++i) {
    if (body.size() - pos < 4) return false;
    const auto len = static_cast<int32_t>(protocol::read_u32(body.data() + pos));
    pos += 4;
    if (len < 0) {
      if (len != -1) return false;
      nulls_[i] = 1;
      values_[i] = {};
      continue;
    }
    if (body.size() - pos < static_cast<size_t>(len)) return false;
    nulls_[i] = 0;
    values_[i] = body.substr(pos, static_cast<size_t>(len));
    pos += static_cast<size_t>(len);
  }
  return pos == body.size();
}

bool ResultDigest::hash_row(std::string_view body, Digest128* out) {
  const int digits = float_digits();
  const double tolerance = float_tolerance();
  Lanes lanes{kSeedA, kSeedB};
  const auto value = [&](std::string_view v, bool null, const Column& col) {
    if (null) {  // a NULL is the same NULL in either format
      lanes.step(header(kNullLength, 0, kRaw), 0);
      return;
    }
    if (col.float_kind != kFloatNone) {
      char buf[kCanonicalMax];
      size_t n = 0;
      if (canonical_float(v, col.format, col.float_kind, digits, tolerance, buf, &n)) {
        lanes.item(header(n, col.format, kCanonical), buf, n);
        return;
      }
    }
    lanes.item(header(v.size(), col.format, kRaw), v.data(), v.size());
  };

  if (!identity_order_) {
    if (!split_row(body)) return false;
    for (uint16_t w : order_) value(values_[w], nulls_[w] != 0, columns_[w]);
    *out = finish(lanes, order_.size());
    return true;
  }
  // Wire order, nothing ignored: one pass over the body.
  if (body.size() < 2) return false;
  const size_t count = protocol::read_u16(body.data());
  if (has_row_description_ && count != columns_.size()) return false;
  static constexpr Column kUndescribed{};
  size_t pos = 2;
  for (size_t i = 0; i < count; ++i) {
    if (body.size() - pos < 4) return false;
    const auto len = static_cast<int32_t>(protocol::read_u32(body.data() + pos));
    pos += 4;
    const Column& col = has_row_description_ ? columns_[i] : kUndescribed;
    if (len < 0) {
      if (len != -1) return false;
      value({}, true, col);
      continue;
    }
    if (body.size() - pos < static_cast<size_t>(len)) return false;
    value(body.substr(pos, static_cast<size_t>(len)), false, col);
    pos += static_cast<size_t>(len);
  }
  if (pos != body.size()) return false;
  *out = finish(lanes, count);
  return true;
}

void ResultDigest::on_data_row(std::string_view body) {
  Digest128 h;
  if (!hash_row(body, &h)) {
    ++malformed_;
    Lanes lanes{kSeedA, kSeedB};
    lanes.item(header(body.size(), 0, kMalformed), body.data(), body.size());
    h = finish(lanes, 0);
  }
  const uint64_t index = row_count_++;
  rows_sum_.a += h.a;
  rows_sum_.b += h.b;
  rows_ordered_.a = fmix_a(rows_ordered_.a ^ h.a);
  rows_ordered_.b = fmix_b(rows_ordered_.b + h.b);
  if (index == 0) keep_body(body, &first_row_, &first_row_cut_);
  keep_sample(body, h, index);
}

void ResultDigest::keep_sample(std::string_view body, const Digest128& h, uint64_t index) {
  const size_t k = options_->sample_rows;
  if (sample_size_ >= k && (ordered_ || k == 0)) return;
  const auto by_hash = [](const HeapEntry& x, const HeapEntry& y) {
    return hash_less(x.hash, y.hash);
  };
  size_t slot;
  if (sample_size_ < k) {
    if (sample_.size() <= sample_size_) {
      sample_.emplace_back();
      sample_.back().body.reserve(rendered_capacity());
    }
    slot = sample_size_++;
    if (!ordered_) {
      heap_.push_back(HeapEntry{h, static_cast<uint32_t>(slot)});
      std::push_heap(heap_.begin(), heap_.end(), by_hash);
    }
  } else {
    // Bottom-k: keep the k smallest hashes. The heap's front is the largest of them; its slot
    // takes the new row.
    if (!hash_less(h, heap_.front().hash)) return;
    std::pop_heap(heap_.begin(), heap_.end(), by_hash);
    slot = heap_.back().slot;
    heap_.back().hash = h;
    std::push_heap(heap_.begin(), heap_.end(), by_hash);
  }
  SampleRow& row = sample_[slot];
  row.hash = h;
  row.index = index;
  keep_body(body, &row.body, &row.cut);
}

void ResultDigest::keep_body(std::string_view body, std::string* out, bool* cut) const {
  const size_t cap = rendered_capacity();
  *cut = body.size() > cap;
  out->assign(body.substr(0, cap));
}

std::string ResultDigest::columns_rendered() const {
  std::string out;
  BoundedWriter w(&out, options_->max_rendered_row);
  for (size_t k = 0; k < order_.size(); ++k) {
    if (k > 0) w.put(", ");
    w.put(names_[order_[k]]);
    w.put(':');
    char buf[12];
    const auto r = std::to_chars(buf, buf + sizeof buf, columns_[order_[k]].type_oid);
    w.put(std::string_view(buf, static_cast<size_t>(r.ptr - buf)));
  }
  return out;
}

std::string ResultDigest::first_row() const {
  return row_count_ == 0 ? std::string() : render_row(first_row_, first_row_cut_);
}

std::string ResultDigest::render_row(std::string_view body, bool cut) const {
  struct Cell {
    std::string_view value;
    bool null = false;
    bool present = false;   // not lost to the cut
    bool complete = false;  // the whole value is there
  };
  std::string out;
  BoundedWriter w(&out, options_->max_rendered_row);
  const auto malformed = [&] {
    w.put("(malformed DataRow)");
    return out;
  };
  if (body.size() < 2) return malformed();
  const size_t count = protocol::read_u16(body.data());
  if (has_row_description_ && count != columns_.size()) return malformed();
  std::vector<Cell> cells(count);
  size_t pos = 2;
  for (size_t i = 0; i < count; ++i) {
    if (body.size() - pos < 4) {
      if (cut) break;
      return malformed();
    }
    const auto len = static_cast<int32_t>(protocol::read_u32(body.data() + pos));
    pos += 4;
    if (len < -1) return malformed();
    if (len == -1) {
      cells[i] = Cell{{}, true, true, true};
      continue;
    }
    const size_t have = std::min(body.size() - pos, static_cast<size_t>(len));
    if (have < static_cast<size_t>(len) && !cut) return malformed();
    cells[i] = Cell{body.substr(pos, have), false, true, have == static_cast<size_t>(len)};
    pos += have;
  }
  if (!cut && pos != body.size()) return malformed();

  w.put('(');
  const size_t compared = has_row_description_ ? order_.size() : count;
  for (size_t k = 0; k < compared && !w.full(); ++k) {
    const size_t wire = has_row_description_ ? order_[k] : k;
    if (k > 0) w.put(", ");
    if (has_row_description_) {
      w.put(names_[wire]);
      w.put('=');
    }
    const Cell& cell = cells[wire];
    if (!cell.present) {
      w.put("...");  // lost to the cut: what is kept of the row ends here
      return out;
    }
    const int16_t format = has_row_description_ ? columns_[wire].format : 0;
    render_value(w, cell.value, cell.null, format, cell.complete);
    if (!cell.complete) {
      w.put("...");
      return out;
    }
  }
  w.put(')');
  return out;
}

void ResultDigest::on_command_complete(std::string_view body) {
  constexpr size_t kMaxTag = 256;
  protocol::CommandComplete cc;
  if (!protocol::decode(body, cc)) {
    ++malformed_;
    cc.tag = body;
  }
  command_tag_.assign(cc.tag.substr(0, kMaxTag));
  complete_ = true;
}

void ResultDigest::on_error(std::string_view body) {
  constexpr size_t kMaxMessage = 256;
  protocol::ErrorResponse e;
  failed_ = true;
  complete_ = true;
  if (!protocol::decode(body, e)) {
    ++malformed_;
    sqlstate_size_ = 0;
    error_message_.assign("(malformed ErrorResponse)");
    return;
  }
  const std::string_view state = e.sqlstate().substr(0, sqlstate_.size());
  std::copy(state.begin(), state.end(), sqlstate_.begin());
  sqlstate_size_ = state.size();
  BoundedWriter w(&error_message_, kMaxMessage);
  w.put(e.message());
}

// ---- compare ----

std::string_view to_string(MismatchKind kind) {
  switch (kind) {
    case MismatchKind::kNone:
      return "none";
    case MismatchKind::kError:
      return "error";
    case MismatchKind::kColumns:
      return "columns";
    case MismatchKind::kRowCount:
      return "row_count";
    case MismatchKind::kRows:
      return "rows";
    case MismatchKind::kRowOrder:
      return "row_order";
    case MismatchKind::kCommandTag:
      return "command_tag";
  }
  return "unknown";
}

namespace {

void set_first_rows(const ResultDigest& p, const ResultDigest& s, Comparison* c) {
  if (p.row_count() == 0 && s.row_count() == 0) return;
  c->evidence = RowEvidence::kFirstRows;
  c->primary_row = p.first_row();
  c->shadow_row = s.first_row();
}

// Multiset: diff the two bottom-k samples below the bound both sides cover completely, and report
// the row (in hash order) whose count differs.
bool find_in_multiset_samples(const ResultDigest& p, const ResultDigest& s, Comparison* c) {
  const auto in_range = [&](uint64_t a) {
    return (p.sample_complete() || a < p.sample_bound()) &&
           (s.sample_complete() || a < s.sample_bound());
  };
  const auto collect = [&](std::span<const ResultDigest::SampleRow> rows) {
    std::vector<const ResultDigest::SampleRow*> out;
    out.reserve(rows.size());
    for (const auto& r : rows) {
      if (in_range(r.hash.a)) out.push_back(&r);
    }
    std::sort(out.begin(), out.end(), [](auto* x, auto* y) { return hash_less(x->hash, y->hash); });
    return out;
  };
  const auto ps = collect(p.sample());
  const auto ss = collect(s.sample());
  size_t i = 0;
  size_t j = 0;
  while (i < ps.size() || j < ss.size()) {
    if (j == ss.size() || (i < ps.size() && hash_less(ps[i]->hash, ss[j]->hash))) {
      c->evidence = RowEvidence::kOnlyPrimary;
      c->primary_row = p.render(*ps[i]);
      return true;
    }
    if (i == ps.size() || hash_less(ss[j]->hash, ps[i]->hash)) {
      c->evidence = RowEvidence::kOnlyShadow;
      c->shadow_row = s.render(*ss[j]);
      return true;
    }
    ++i;  // the same row on both sides: one occurrence each
    ++j;
  }
  return false;
}

// Ordered: the first position where the samples differ, or where one side's result ended.
bool find_in_ordered_samples(const ResultDigest& p, const ResultDigest& s, Comparison* c) {
  const auto ps = p.sample();
  const auto ss = s.sample();
  const size_t common = std::min(ps.size(), ss.size());
  for (size_t i = 0; i < common; ++i) {
    if (ps[i].hash == ss[i].hash) continue;
    c->evidence = RowEvidence::kAtPosition;
    c->row_index = i;
    c->primary_row = p.render(ps[i]);
    c->shadow_row = s.render(ss[i]);
    return true;
  }
  // Equal as far as both samples go: a difference here only if the shorter side ended.
  if (ps.size() > common && s.row_count() == common) {
    c->evidence = RowEvidence::kAtPosition;
    c->row_index = common;
    c->primary_row = p.render(ps[common]);
    return true;
  }
  if (ss.size() > common && p.row_count() == common) {
    c->evidence = RowEvidence::kAtPosition;
    c->row_index = common;
    c->shadow_row = s.render(ss[common]);
    return true;
  }
  return false;
}

void find_differing_row(const ResultDigest& p, const ResultDigest& s, bool ordered, Comparison* c) {
  const bool found = ordered ? find_in_ordered_samples(p, s, c) : find_in_multiset_samples(p, s, c);
  if (found) return;
  set_first_rows(p, s, c);
}

void describe_error(const ResultDigest& d, std::string* out) {
  out->append("failed with ");
  out->append(d.sqlstate().empty() ? std::string_view("no SQLSTATE") : d.sqlstate());
  if (!d.error_message().empty()) {
    out->append(" (");
    out->append(d.error_message());
    out->push_back(')');
  }
}

}  // namespace

Comparison compare(const ResultDigest& primary, const ResultDigest& shadow) {
  Comparison c;
  // 1. Error vs success. Both failed alike: nothing else matters (rows before the error are
  //    whatever each server got to before failing).
  if (primary.failed() || shadow.failed()) {
    if (primary.failed() && shadow.failed() && primary.sqlstate() == shadow.sqlstate()) return c;
    c.kind = MismatchKind::kError;
    if (primary.failed() && shadow.failed()) {
      c.detail = "SQLSTATE ";
      c.detail.append(primary.sqlstate());
      c.detail.append(" on primary, ");
      c.detail.append(shadow.sqlstate());
      c.detail.append(" on shadow: primary ");
      describe_error(primary, &c.detail);
      c.detail.append("; shadow ");
      describe_error(shadow, &c.detail);
    } else if (primary.failed()) {
      c.detail = "primary ";
      describe_error(primary, &c.detail);
      c.detail.append(", shadow succeeded");
    } else {
      c.detail = "primary succeeded, shadow ";
      describe_error(shadow, &c.detail);
    }
    set_first_rows(primary, shadow, &c);
    return c;
  }

  // 2. Columns.
  if (primary.columns_digest() != shadow.columns_digest()) {
    c.kind = MismatchKind::kColumns;
    c.detail = "columns differ: primary (";
    c.detail.append(primary.columns_rendered());
    c.detail.append(") vs shadow (");
    c.detail.append(shadow.columns_rendered());
    c.detail.push_back(')');
    set_first_rows(primary, shadow, &c);
    return c;
  }

  const bool ordered = primary.ordered() && shadow.ordered();
  // 3. Row count.
  if (primary.row_count() != shadow.row_count()) {
    c.kind = MismatchKind::kRowCount;
    c.detail = "row count ";
    append_number(&c.detail, primary.row_count());
    c.detail.append(" on primary, ");
    append_number(&c.detail, shadow.row_count());
    c.detail.append(" on shadow");
    find_differing_row(primary, shadow, ordered, &c);
    return c;
  }

  // 4. Rows, then their order.
  const bool rows_differ = primary.rows_digest() != shadow.rows_digest();
  if (rows_differ || (ordered && primary.ordered_digest() != shadow.ordered_digest())) {
    c.kind = rows_differ ? MismatchKind::kRows : MismatchKind::kRowOrder;
    c.detail = rows_differ ? "rows differ (" : "same rows in a different order (";
    append_number(&c.detail, primary.row_count());
    c.detail.append(" rows): digest ");
    c.detail.append(to_hex(ordered ? primary.ordered_digest() : primary.rows_digest()));
    c.detail.append(" on primary, ");
    c.detail.append(to_hex(ordered ? shadow.ordered_digest() : shadow.rows_digest()));
    c.detail.append(" on shadow");
    find_differing_row(primary, shadow, ordered, &c);
    return c;
  }

  // 5. Command tag.
  if (primary.command_tag() != shadow.command_tag()) {
    c.kind = MismatchKind::kCommandTag;
    c.detail = "command tag '";
    c.detail.append(primary.command_tag());
    c.detail.append("' on primary, '");
    c.detail.append(shadow.command_tag());
    c.detail.append("' on shadow");
    set_first_rows(primary, shadow, &c);
  }
  return c;
}

}  // namespace pgtandem::policy

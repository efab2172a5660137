// Shadow-read result comparison (DESIGN.md "Shadow reads"; issue 5): a streaming digest of one
// side's answer to one read statement, and the comparison of two such digests.
//
// The proxy feeds a ResultDigest the backend message bodies of one statement's result, as the codec
// hands them out (RowDescription, DataRow..., then CommandComplete or ErrorResponse), one digest
// per side, then calls compare(). Memory is O(1) per query (O(sample_rows) rows kept for the log);
// after the first query of a reused digest (reset()), digesting a DataRow allocates nothing.
// Pure: no I/O, no clock, no exceptions; malformed bodies are counted, never asserted on.
//
// What is compared, in this order (the first difference is the reported kind):
//   1. error vs success, and the SQLSTATE when both failed (both failed alike: equal, done);
//   2. the columns: names and type OIDs, in order, or as a multiset with ignore_column_order;
//   3. the row count (DataRows seen);
//   4. the rows: a multiset digest (two independent 64-bit sums of 64-bit per-row hashes, mod 2^64:
//      order-insensitive, and a row seen twice adds its hash twice, so duplicates count), or, for a
//      statement with a top-level ORDER BY (reset(ordered = true)), an ordered digest as well;
//   5. the CommandComplete tag.
//
// A row's hash (two 64-bit lanes) covers, for each compared column in order: NULL, or the value's
// length, format code (text 0 / binary 1) and bytes. NULL differs from '' (a NULL is the same in
// either format), and a text value from the same bytes in binary. Nothing is converted between
// formats: the proxy asks both sides for the same ones. A DataRow without a RowDescription (an
// extended-protocol Execute without Describe) is hashed in wire order as text, with no options.
//
// Float tolerance (float_significant_digits / float_absolute_tolerance) applies to float4, float8
// and numeric columns, in text format and, for float4/float8, in binary. Such a value is parsed
// as a double and hashed as its canonical form instead of its bytes:
//   - significant digits N (1..17): the double correctly rounded to N significant decimal digits
//     (std::to_chars scientific, precision N - 1; -0 is 0);
//   - absolute tolerance t (> 0): the bucket round(x / t), i.e. x rounded to a multiple of t.
// With both set, the absolute tolerance is used. Limits of any hashable scheme: values equal after
// rounding always match, values further apart than one rounding step never do, but two values
// closer than the tolerance can still straddle a rounding boundary (1.2344999 vs 1.2345001 at 4
// digits: 1.234 vs 1.235) and then differ. numeric goes through a double: beyond ~15-17 significant
// digits its text is rounded before N digits are taken, and values outside the double range (or
// binary numeric) are hashed as their bytes. NaN, Infinity and -Infinity each have one canonical
// form.
//
// For the mismatch log each side keeps its first row and a small sample of rows (sample_rows: row
// hashes and DataRow bodies cut at max_rendered_row bytes, rendered only when reported; a row whose
// compared columns lie beyond the cut, after a large ignored column, renders cut short):
//   - multiset digests: the rows with the sample_rows smallest row hashes (a bottom-k sketch). This
//     sample depends only on the multiset of rows, not on the order the server sent them, so below
//     the smaller of the two sides' largest sampled hash, both samples hold every row of their
//     side. compare() diffs the samples in that range. Guaranteed: a reported row is present more
//     times on its side than on the other (up to 128-bit hash collisions); when both sides have at
//     most sample_rows rows, a differing row is always found; otherwise one is found with
//     probability about 1 - (1 - sample_rows / rows)^(differing rows), and none may be reported.
//   - ordered digests: the first sample_rows rows in order; a difference within them is reported as
//     the first position where the two sides' rows differ.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pgtandem::policy {

struct DigestOptions {
  // Columns left out of every comparison, by name exactly as the server reports it (unquoted
  // identifiers come back lowercase). All columns of that name are left out.
  std::vector<std::string> ignore_columns;
  std::optional<int> float_significant_digits;     // 1..17; see the header comment
  std::optional<double> float_absolute_tolerance;  // > 0; wins over significant digits
  // Columns are matched by name, not position: rows hash their values sorted by column name
  // (columns of the same name keep their relative order) and the columns compare as a multiset.
  bool ignore_column_order = false;
  // Type OIDs >= 16384 belong to user-defined types (enums, domains, composites) and differ
  // between two clusters holding the same schema: by default they compare as "some user type".
  bool compare_user_type_oids = false;
  size_t sample_rows = 32;         // rows kept for finding a differing row; 0 keeps none
  size_t max_rendered_row = 1024;  // bytes of a rendered row, "..." included
};

// Two independent 64-bit lanes.
struct Digest128 {
  uint64_t a = 0;
  uint64_t b = 0;
  bool operator==(const Digest128&) const = default;
};
std::string to_hex(const Digest128& d);  // 32 lowercase hex digits, a then b

class ResultDigest {
 public:
  // A kept row: its DataRow body as received, cut at max_rendered_row bytes (copying is cheap,
  // rendering is not: rows are rendered only when a comparison reports them).
  struct SampleRow {
    Digest128 hash;
    uint64_t index = 0;  // position in the result (0-based)
    std::string body;
    bool cut = false;
  };

  // `options` must outlive the digest. `ordered`: the statement has a top-level ORDER BY
  // (has_top_level_order_by in shadow_policy.h): rows must also come in the same order.
  explicit ResultDigest(const DigestOptions* options, bool ordered = false);

  // Start over for another statement, keeping allocated capacity.
  void reset(bool ordered);

  void on_row_description(std::string_view body);
  void on_data_row(std::string_view body);
  void on_command_complete(std::string_view body);
  void on_error(std::string_view body);  // ErrorResponse body

  bool ordered() const { return ordered_; }
  // A CommandComplete or an ErrorResponse arrived.
  bool complete() const { return complete_; }
  bool failed() const { return failed_; }
  std::string_view sqlstate() const { return {sqlstate_.data(), sqlstate_size_}; }
  std::string_view error_message() const { return error_message_; }  // bounded
  std::string_view command_tag() const { return command_tag_; }
  bool has_row_description() const { return has_row_description_; }
  size_t column_count() const { return columns_.size(); }  // wire columns, ignored ones included
  // The last RowDescription's compared columns, e.g. "id:23, name:25" (name:type OID), bounded
  // like a row.
  std::string columns_rendered() const;
  Digest128 columns_digest() const { return columns_digest_; }
  uint64_t row_count() const { return row_count_; }
  Digest128 rows_digest() const { return rows_sum_; }         // multiset
  Digest128 ordered_digest() const { return rows_ordered_; }  // also kept when !ordered()
  // Bodies that did not decode (each still counted and hashed as raw bytes).
  uint64_t malformed_messages() const { return malformed_; }
  // "(id='1', name='x', note=NULL)": the compared columns in compared order, text values quoted,
  // binary ones as \x hex, bounded by max_rendered_row ("..." marks a cut). Empty without rows.
  std::string first_row() const;
  std::string render(const SampleRow& row) const { return render_row(row.body, row.cut); }
  // Multiset: the bottom-k sample, in no particular order. Ordered: the first rows in order.
  std::span<const SampleRow> sample() const { return {sample_.data(), sample_size_}; }
  // Multiset: the sample holds every row of the result (none was refused or evicted).
  bool sample_complete() const { return sample_size_ == row_count_; }
  // Multiset, sample full: it holds every row whose hash.a is below this bound.
  uint64_t sample_bound() const { return heap_.empty() ? 0 : heap_.front().hash.a; }

 private:
  struct HeapEntry {
    Digest128 hash;
    uint32_t slot;  // in sample_
  };
  struct Column {
    uint32_t type_oid = 0;
    int16_t format = 0;
    uint8_t float_kind = 0;  // set only when a float tolerance is configured
  };

  size_t rendered_capacity() const;
  int float_digits() const;        // 0: not set
  double float_tolerance() const;  // 0: not set (or not a positive number)
  bool hash_row(std::string_view body, Digest128* out);
  bool split_row(std::string_view body);  // described rows: values_ and nulls_ by wire index
  void keep_sample(std::string_view body, const Digest128& h, uint64_t index);
  void keep_body(std::string_view body, std::string* out, bool* cut) const;
  std::string render_row(std::string_view body, bool cut) const;

  const DigestOptions* options_;
  bool ordered_ = false;
  bool complete_ = false;
  bool failed_ = false;
  bool has_row_description_ = false;
  bool identity_order_ = true;  // no column ignored or moved: values hash in wire order
  std::array<char, 5> sqlstate_{};
  size_t sqlstate_size_ = 0;
  std::string error_message_;
  std::string command_tag_;
  std::vector<Column> columns_;           // by wire index
  std::vector<uint16_t> order_;           // compared position -> wire index
  std::vector<std::string> names_;        // by wire index
  std::vector<std::string_view> values_;  // scratch: by wire index
  std::vector<uint8_t> nulls_;            // scratch: by wire index
  Digest128 columns_state_;
  Digest128 columns_digest_;
  uint64_t row_count_ = 0;
  Digest128 rows_sum_;
  Digest128 rows_ordered_;
  uint64_t malformed_ = 0;
  std::string first_row_;  // body, as in SampleRow
  bool first_row_cut_ = false;
  std::vector<SampleRow> sample_;  // [0, sample_size_) in use; the rest keeps its capacity
  size_t sample_size_ = 0;
  std::vector<HeapEntry> heap_;  // multiset: max-heap on hash over the sample's slots
};

enum class MismatchKind : uint8_t {
  kNone,
  kError,    // one side failed and the other did not, or different SQLSTATEs
  kColumns,  // column names or types
  kRowCount,
  kRows,      // same count, different rows
  kRowOrder,  // same rows (multiset), different order, for a statement with ORDER BY
  kCommandTag,
};
std::string_view to_string(MismatchKind kind);  // "none", "error", "columns", ... (metric labels)

// Which rows Comparison carries.
enum class RowEvidence : uint8_t {
  kNone,         // no rows on either side, or no mismatch
  kFirstRows,    // no differing row found: each side's first row
  kOnlyPrimary,  // primary_row occurs more often on the primary (shadow_row is empty)
  kOnlyShadow,   // shadow_row occurs more often on the shadow (primary_row is empty)
  kAtPosition,   // ordered: the rows at row_index, the first position where they differ (a side
                 // whose result ended there has an empty string)
};

struct Comparison {
  MismatchKind kind = MismatchKind::kNone;
  std::string detail;  // one line for the log; empty when kind == kNone
  RowEvidence evidence = RowEvidence::kNone;
  uint64_t row_index = 0;  // kAtPosition only
  std::string primary_row;
  std::string shadow_row;
};

// Compares two digests of the same statement. Allocates nothing when they match.
Comparison compare(const ResultDigest& primary, const ResultDigest& shadow);

}  // namespace pgtandem::policy

// The migration commands' files (issue 13), pure encode/decode:
// - the backfill checkpoint, one per table: the table's key ranges and how far each was copied,
//   so that the same command continues after a kill or an outage;
// - the verify report: differing keys per table and sequence differences (repair's input);
// - chunk planning: key ranges from boundary keys;
// - progress lines (rows, MB/s, ETA).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/migrate/json.h"
#include "policy/migrate/marks.h"
#include "policy/migrate/sql.h"

namespace pgtandem::policy::migrate {

// Chunk planning: boundaries b1 < b2 < ... (every N-th key) -> (-inf,b1], (b1,b2], ..., (bn,+inf).
std::vector<KeyRange> ranges_from_boundaries(const std::vector<Key>& boundaries);
// At most `parts` ranges by taking every k-th boundary (for parallel copy of one table).
std::vector<KeyRange> split_ranges(const std::vector<Key>& boundaries, size_t parts);

struct RangeProgress {
  KeyRange range;
  std::optional<Key> last;  // the last key copied in this range (the next chunk starts after it)
  int64_t rows = 0;         // rows copied so far
  bool done = false;
};

struct Checkpoint {
  std::string table;             // "schema.table"
  std::vector<std::string> key;  // key columns ([] for a keyless table, copied whole)
  std::vector<RangeProgress> ranges;
  bool done() const;
  int64_t rows() const;
};
std::string encode_checkpoint(const Checkpoint& c);
// nullopt on a malformed file (*error says why).
std::optional<Checkpoint> decode_checkpoint(std::string_view text, std::string* error = nullptr);

enum class DiffKind { kMissingOnNew, kExtraOnNew, kChanged };
const char* diff_kind_name(DiffKind k);  // "missing_on_new" | "extra_on_new" | "changed"

struct RowDiff {
  Key key;
  DiffKind kind = DiffKind::kChanged;
};

struct TableReport {
  std::string table;             // "schema.table"
  std::vector<std::string> key;  // [] for a keyless table (compared whole)
  int64_t rows_old = 0;
  int64_t rows_new = 0;
  int64_t chunks = 0;
  bool whole_table_differs = false;  // keyless tables: their content differs
  std::vector<RowDiff> rows;
  std::string error;  // set when the table could not be compared
};

struct SequenceReport {
  std::string sequence;  // "schema.sequence"
  std::optional<int64_t> old_value;  // nextval would return more than this (nullopt: never used)
  std::optional<int64_t> new_value;
};

struct Report {
  std::string primary = "old";
  std::vector<TableReport> tables;      // only the tables with differences or errors
  std::vector<SequenceReport> sequences;  // only the differing sequences
  int64_t tables_checked = 0;
  int64_t rows_checked = 0;
  // Every table of the primary was compared (no --tables): only such a clean verify (or a repair
  // of its report, verified again clean) clears the proxies' needs-repair marks.
  bool all_tables = false;
  // Each known pgtandem's marks when the verify started (policy/migrate/marks.h).
  std::vector<AdminMarks> marks_at_start;
  bool identical() const { return tables.empty() && sequences.empty(); }
};
std::string encode_report(const Report& r);  // JSON, one document
std::optional<Report> decode_report(std::string_view text, std::string* error = nullptr);

// "public.t  12,345 / 100,000 rows  3.2 MB/s  ETA 0:42" (total < 0: unknown, no ETA).
std::string format_progress(std::string_view table, int64_t rows, int64_t total_rows,
                            int64_t bytes, double seconds);
std::string format_count(int64_t n);      // 1234567 -> "1,234,567"
std::string format_duration(double s);    // 75 -> "1:15", 3700 -> "1:01:40"

}  // namespace pgtandem::policy::migrate

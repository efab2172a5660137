#include "policy/migrate/state.h"

#include <cmath>
#include <algorithm>
#include <cstdio>

namespace pgtandem::policy::migrate {

std::vector<KeyRange> ranges_from_boundaries(const std::vector<Key>& boundaries) {
  std::vector<KeyRange> out;
  std::optional<Key> lo;
  for (const auto& b : boundaries) {
    out.push_back({lo, b});
    lo = b;
  }
  out.push_back({lo, std::nullopt});
  return out;
}

std::vector<KeyRange> split_ranges(const std::vector<Key>& boundaries, size_t parts) {
  if (parts <= 1 || boundaries.empty()) return {{std::nullopt, std::nullopt}};
  std::vector<Key> picked;
  const size_t n = boundaries.size() + 1;  // ranges there would be
  const size_t per = (n + parts - 1) / parts;
  for (size_t i = per; i <= boundaries.size(); i += per) picked.push_back(boundaries[i - 1]);
  return ranges_from_boundaries(picked);
}

bool Checkpoint::done() const {
  for (const auto& r : ranges)
    if (!r.done) return false;
  return true;
}

int64_t Checkpoint::rows() const {
  int64_t n = 0;
  for (const auto& r : ranges) n += r.rows;
  return n;
}

namespace {

Json key_json(const std::optional<Key>& k) {
  if (!k) return Json::null();
  Json a = Json::array();
  for (const auto& v : *k) a.push(Json::string(v));
  return a;
}

bool key_from(const Json* j, std::optional<Key>* out) {
  if (j == nullptr || j->is_null()) {
    out->reset();
    return true;
  }
  if (j->type() != Json::Type::kArray) return false;
  Key k;
  for (const auto& v : j->items()) {
    if (v.type() != Json::Type::kString) return false;
    k.push_back(v.as_string());
  }
  *out = std::move(k);
  return true;
}

Json strings_json(const std::vector<std::string>& v) {
  Json a = Json::array();
  for (const auto& s : v) a.push(Json::string(s));
  return a;
}

bool strings_from(const Json* j, std::vector<std::string>* out) {
  if (j == nullptr || j->type() != Json::Type::kArray) return false;
  out->clear();
  for (const auto& v : j->items()) {
    if (v.type() != Json::Type::kString) return false;
    out->push_back(v.as_string());
  }
  return true;
}

bool fail(std::string* error, const std::string& why) {
  if (error) *error = why;
  return false;
}

}  // namespace

std::string encode_checkpoint(const Checkpoint& c) {
  Json j = Json::object();
  j.set("format", Json::string("pgtandem-backfill-checkpoint/1"));
  j.set("table", Json::string(c.table));
  j.set("key", strings_json(c.key));
  Json ranges = Json::array();
  for (const auto& r : c.ranges) {
    Json o = Json::object();
    o.set("lo", key_json(r.range.lo));
    o.set("hi", key_json(r.range.hi));
    o.set("last", key_json(r.last));
    o.set("rows", Json::integer(r.rows));
    o.set("done", Json::boolean(r.done));
    ranges.push(std::move(o));
  }
  j.set("ranges", std::move(ranges));
  return j.dump() + "\n";
}

std::optional<Checkpoint> decode_checkpoint(std::string_view text, std::string* error) {
  auto j = Json::parse(text, error);
  if (!j) return std::nullopt;
  const Json* format = j->get("format");
  if (format == nullptr || format->as_string() != "pgtandem-backfill-checkpoint/1") {
    fail(error, "not a pgtandem backfill checkpoint (format)");
    return std::nullopt;
  }
  Checkpoint c;
  const Json* table = j->get("table");
  const Json* ranges = j->get("ranges");
  if (table == nullptr || table->type() != Json::Type::kString || !strings_from(j->get("key"), &c.key) ||
      ranges == nullptr || ranges->type() != Json::Type::kArray) {
    fail(error, "checkpoint lacks table, key or ranges");
    return std::nullopt;
  }
  c.table = table->as_string();
  for (const auto& r : ranges->items()) {
    RangeProgress p;
    const Json* rows = r.get("rows");
    const Json* done = r.get("done");
    if (!key_from(r.get("lo"), &p.range.lo) || !key_from(r.get("hi"), &p.range.hi) ||
        !key_from(r.get("last"), &p.last) || rows == nullptr || done == nullptr ||
        rows->type() != Json::Type::kInt || done->type() != Json::Type::kBool) {
      fail(error, "malformed range in checkpoint");
      return std::nullopt;
    }
    p.rows = rows->as_int();
    p.done = done->as_bool();
    c.ranges.push_back(std::move(p));
  }
  return c;
}

const char* diff_kind_name(DiffKind k) {
  switch (k) {
    case DiffKind::kMissingOnNew: return "missing_on_new";
    case DiffKind::kExtraOnNew: return "extra_on_new";
    case DiffKind::kChanged: return "changed";
  }
  return "changed";
}

namespace {

Json optional_int(const std::optional<int64_t>& v) { return v ? Json::integer(*v) : Json::null(); }

}  // namespace

std::string encode_report(const Report& r) {
  Json j = Json::object();
  j.set("format", Json::string("pgtandem-verify-report/1"));
  j.set("primary", Json::string(r.primary));
  j.set("identical", Json::boolean(r.identical()));
  j.set("tables_checked", Json::integer(r.tables_checked));
  j.set("rows_checked", Json::integer(r.rows_checked));
  Json tables = Json::array();
  for (const auto& t : r.tables) {
    Json o = Json::object();
    o.set("table", Json::string(t.table));
    o.set("key", strings_json(t.key));
    o.set("rows_old", Json::integer(t.rows_old));
    o.set("rows_new", Json::integer(t.rows_new));
    o.set("chunks", Json::integer(t.chunks));
    o.set("whole_table_differs", Json::boolean(t.whole_table_differs));
    if (!t.error.empty()) o.set("error", Json::string(t.error));
    Json rows = Json::array();
    for (const auto& d : t.rows) {
      Json rd = Json::object();
      rd.set("key", key_json(d.key));
      rd.set("kind", Json::string(diff_kind_name(d.kind)));
      rows.push(std::move(rd));
    }
    o.set("rows", std::move(rows));
    tables.push(std::move(o));
  }
  j.set("tables", std::move(tables));
  Json seqs = Json::array();
  for (const auto& s : r.sequences) {
    Json o = Json::object();
    o.set("sequence", Json::string(s.sequence));
    o.set("old", optional_int(s.old_value));
    o.set("new", optional_int(s.new_value));
    seqs.push(std::move(o));
  }
  j.set("sequences", std::move(seqs));
  j.set("all_tables", Json::boolean(r.all_tables));
  j.set("marks_at_start", encode_admin_marks(r.marks_at_start));
  return j.dump() + "\n";
}

std::optional<Report> decode_report(std::string_view text, std::string* error) {
  auto j = Json::parse(text, error);
  if (!j) return std::nullopt;
  const Json* format = j->get("format");
  if (format == nullptr || format->as_string() != "pgtandem-verify-report/1") {
    fail(error, "not a pgtandem verify report (format)");
    return std::nullopt;
  }
  Report r;
  if (const Json* p = j->get("primary")) r.primary = p->as_string();
  if (const Json* v = j->get("tables_checked")) r.tables_checked = v->as_int();
  if (const Json* v = j->get("rows_checked")) r.rows_checked = v->as_int();
  if (const Json* v = j->get("all_tables")) r.all_tables = v->as_bool();
  r.marks_at_start = decode_admin_marks(j->get("marks_at_start"));
  const Json* tables = j->get("tables");
  const Json* seqs = j->get("sequences");
  if (tables == nullptr || seqs == nullptr || tables->type() != Json::Type::kArray ||
      seqs->type() != Json::Type::kArray) {
    fail(error, "report lacks tables or sequences");
    return std::nullopt;
  }
  for (const auto& t : tables->items()) {
    TableReport tr;
    const Json* name = t.get("table");
    const Json* rows = t.get("rows");
    if (name == nullptr || !strings_from(t.get("key"), &tr.key) || rows == nullptr ||
        rows->type() != Json::Type::kArray) {
      fail(error, "malformed table in report");
      return std::nullopt;
    }
    tr.table = name->as_string();
    if (const Json* v = t.get("rows_old")) tr.rows_old = v->as_int();
    if (const Json* v = t.get("rows_new")) tr.rows_new = v->as_int();
    if (const Json* v = t.get("chunks")) tr.chunks = v->as_int();
    if (const Json* v = t.get("whole_table_differs")) tr.whole_table_differs = v->as_bool();
    if (const Json* v = t.get("error")) tr.error = v->as_string();
    for (const auto& d : rows->items()) {
      RowDiff rd;
      std::optional<Key> k;
      const Json* kind = d.get("kind");
      if (!key_from(d.get("key"), &k) || !k || kind == nullptr) {
        fail(error, "malformed row in report");
        return std::nullopt;
      }
      rd.key = std::move(*k);
      const std::string& kn = kind->as_string();
      rd.kind = kn == "missing_on_new" ? DiffKind::kMissingOnNew
                : kn == "extra_on_new" ? DiffKind::kExtraOnNew
                                       : DiffKind::kChanged;
      tr.rows.push_back(std::move(rd));
    }
    r.tables.push_back(std::move(tr));
  }
  for (const auto& s : seqs->items()) {
    SequenceReport sr;
    const Json* name = s.get("sequence");
    if (name == nullptr) {
      fail(error, "malformed sequence in report");
      return std::nullopt;
    }
    sr.sequence = name->as_string();
    if (const Json* v = s.get("old"); v && !v->is_null()) sr.old_value = v->as_int();
    if (const Json* v = s.get("new"); v && !v->is_null()) sr.new_value = v->as_int();
    r.sequences.push_back(std::move(sr));
  }
  return r;
}

std::string format_count(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

std::string format_duration(double s) {
  if (!(s >= 0) || !std::isfinite(s)) return "?";
  const int64_t total = static_cast<int64_t>(s + 0.5);
  char buf[32];
  if (total >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(total / 3600),
                  static_cast<long long>(total / 60 % 60), static_cast<long long>(total % 60));
  else
    std::snprintf(buf, sizeof buf, "%lld:%02lld", static_cast<long long>(total / 60),
                  static_cast<long long>(total % 60));
  return buf;
}

std::string format_progress(std::string_view table, int64_t rows, int64_t total_rows, int64_t bytes,
                            double seconds) {
  std::string out(table);
  out += "  " + format_count(rows);
  if (total_rows >= 0) out += " / " + format_count(std::max(total_rows, rows));
  out += " rows";
  char buf[64];
  const double mbps = seconds > 0 ? static_cast<double>(bytes) / 1e6 / seconds : 0;
  std::snprintf(buf, sizeof buf, "  %.1f MB/s", mbps);
  out += buf;
  if (total_rows > 0 && rows > 0 && seconds > 0) {
    const double rate = static_cast<double>(rows) / seconds;
    const double left = static_cast<double>(std::max<int64_t>(total_rows - rows, 0)) / rate;
    out += "  ETA " + format_duration(left);
  }
  return out;
}

}  // namespace pgtandem::policy::migrate

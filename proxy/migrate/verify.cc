// pgtandem verify --config FILE [--tables ...] [--jobs N] [--report FILE] (issue 13).
//
// Per table, chunk boundaries come from the primary (every --chunk-rows-th key); each server
// hashes each chunk of its own rows (count and an order-independent sum of 64-bit row hashes, the
// md5 of the row's text in by-name column order, under identical output settings), the chunk
// queries pipelined. A differing chunk is rechecked after a pause (writes in flight through
// pgtandem reach the two targets at different moments), then drilled down to its rows (key and
// row hash from both), and the differing rows are rechecked once more before they are reported.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>

#include "proxy/migrate/commands.h"
#include "proxy/migrate/verify.h"

namespace pgtandem::proxy::migrate {

namespace {

constexpr size_t kPipelineDepth = 64;
constexpr size_t kKeysPerQuery = 500;
constexpr int64_t kDrillRows = 1000;  // a differing chunk larger than this is split into sub-ranges first

struct ChunkHash {
  std::string count, sum;
  bool operator==(const ChunkHash& o) const { return count == o.count && sum == o.sum; }
};

// Runs the same queries on both connections at once (pipelined on each).
bool both(PgConn& p, PgConn& n, const std::vector<std::string>& sqls, std::vector<Rows>* po,
          std::vector<Rows>* no, std::string* error) {
  std::string ne;
  bool nok = true;
  std::thread t([&] { nok = n.pipeline(sqls, no, &ne); });
  const bool pok = p.pipeline(sqls, po, error);
  t.join();
  if (!nok && pok) *error = ne;
  return pok && nok;
}

bool hash_ranges(PgConn& p, PgConn& n, const pm::TableSql& t, const std::vector<pm::KeyRange>& ranges,
                 std::vector<ChunkHash>* ph, std::vector<ChunkHash>* nh, std::string* error) {
  ph->clear();
  nh->clear();
  for (size_t i = 0; i < ranges.size(); i += kPipelineDepth) {
    std::vector<std::string> sqls;
    for (size_t j = i; j < std::min(ranges.size(), i + kPipelineDepth); ++j)
      sqls.push_back(pm::chunk_hash_sql(t, ranges[j]));
    std::vector<Rows> po, no;
    if (!both(p, n, sqls, &po, &no, error)) return false;
    for (size_t j = 0; j < sqls.size(); ++j) {
      ph->push_back({po[j].at(0, 0), po[j].at(0, 1)});
      nh->push_back({no[j].at(0, 0), no[j].at(0, 1)});
    }
  }
  return true;
}

std::string key_id(const pm::Key& k) {
  std::string id;
  for (const auto& v : k) {
    id += v;
    id += '\x1f';
  }
  return id;
}

// key id -> (key, row hash)
using RowMap = std::map<std::string, std::pair<pm::Key, std::string>>;

void add_rows(const Rows& r, size_t key_cols, RowMap* out) {
  for (const auto& row : r.rows) {
    pm::Key k;
    for (size_t c = 0; c < key_cols; ++c) k.push_back(row[c].value_or(""));
    std::string id = key_id(k);
    (*out)[id] = {std::move(k), row[key_cols].value_or("")};
  }
}

std::vector<pm::RowDiff> diff_rows(const RowMap& o, const RowMap& n) {
  std::vector<pm::RowDiff> out;
  for (const auto& [id, v] : o) {
    auto it = n.find(id);
    if (it == n.end())
      out.push_back({v.first, pm::DiffKind::kMissingOnNew});
    else if (it->second.second != v.second)
      out.push_back({v.first, pm::DiffKind::kChanged});
  }
  for (const auto& [id, v] : n)
    if (!o.count(id)) out.push_back({v.first, pm::DiffKind::kExtraOnNew});
  return out;
}

bool recheck_rows(PgConn& p, PgConn& n, const pm::TableSql& t, std::vector<pm::RowDiff>* rows,
                  std::string* error) {
  std::vector<pm::Key> keys;
  for (const auto& d : *rows) keys.push_back(d.key);
  RowMap o, nm;
  for (size_t i = 0; i < keys.size(); i += kKeysPerQuery) {
    std::vector<pm::Key> part(keys.begin() + i, keys.begin() + std::min(keys.size(), i + kKeysPerQuery));
    std::vector<Rows> po, no;
    if (!both(p, n, {pm::row_hashes_for_keys_sql(t, part)}, &po, &no, error)) return false;
    add_rows(po[0], t.key.size(), &o);
    add_rows(no[0], t.key.size(), &nm);
  }
  *rows = diff_rows(o, nm);
  return true;
}

void sleep_ms(int ms) {
  if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

bool verify_keyless(const Context& ctx, PgConn& p, PgConn& n, const pm::TableSql& t,
                    pm::TableReport* tr, std::string* error) {
  std::vector<ChunkHash> ph, nh;
  const std::vector<pm::KeyRange> all = {pm::KeyRange{}};
  if (!hash_ranges(p, n, t, all, &ph, &nh, error)) return false;
  if (!(ph[0] == nh[0])) {
    sleep_ms(ctx.opt.recheck_delay_ms);
    if (!hash_ranges(p, n, t, all, &ph, &nh, error)) return false;
  }
  tr->rows_old = std::atoll(ph[0].count.c_str());
  tr->rows_new = std::atoll(nh[0].count.c_str());
  tr->chunks = 1;
  tr->whole_table_differs = !(ph[0] == nh[0]);
  return true;
}

bool verify_table(const Context& ctx, PgConn& p, PgConn& n, const pm::Table& table,
                  pm::TableReport* tr, Progress* progress, std::string* error) {
  const pm::TableSql t = table_sql(table);
  tr->table = table.qualified();
  tr->key = t.key;
  if (t.key.empty()) {
    if (!verify_keyless(ctx, p, n, t, tr, error)) return false;
    progress->add(tr->table, tr->rows_old, 0, 1);
    return true;
  }
  Rows b;
  if (!p.query(pm::boundaries_sql(t, ctx.opt.chunk_rows), &b, error)) return false;
  std::vector<pm::Key> boundaries;
  for (const auto& row : b.rows) {
    pm::Key k;
    for (const auto& v : row) k.push_back(v.value_or(""));
    boundaries.push_back(std::move(k));
  }
  const auto ranges = pm::ranges_from_boundaries(boundaries);
  std::vector<ChunkHash> ph, nh;
  if (!hash_ranges(p, n, t, ranges, &ph, &nh, error)) return false;
  std::vector<pm::KeyRange> differing;
  for (size_t i = 0; i < ranges.size(); ++i) {
    tr->rows_old += std::atoll(ph[i].count.c_str());
    tr->rows_new += std::atoll(nh[i].count.c_str());
    if (!(ph[i] == nh[i])) differing.push_back(ranges[i]);
  }
  tr->chunks = static_cast<int64_t>(ranges.size());
  progress->add(tr->table, tr->rows_old, 0, tr->chunks);
  if (differing.empty()) return true;
  // Recheck: writes in flight reach the two targets at different moments.
  sleep_ms(ctx.opt.recheck_delay_ms);
  if (!hash_ranges(p, n, t, differing, &ph, &nh, error)) return false;
  std::vector<pm::KeyRange> still;
  for (size_t i = 0; i < differing.size(); ++i) {
    if (ph[i] == nh[i]) continue;
    if (std::max(std::atoll(ph[i].count.c_str()), std::atoll(nh[i].count.c_str())) <= kDrillRows) {
      still.push_back(differing[i]);
      continue;
    }
    // A large chunk: sub-ranges of kDrillRows rows (by the primary's keys), hashed on both; only
    // the differing ones are drilled down to rows.
    Rows sb;
    if (!p.query(pm::boundaries_sql(t, differing[i], kDrillRows), &sb, error)) return false;
    std::vector<pm::KeyRange> subs;
    std::optional<pm::Key> lo = differing[i].lo;
    for (const auto& row : sb.rows) {
      pm::Key k;
      for (const auto& v : row) k.push_back(v.value_or(""));
      subs.push_back({lo, k});
      lo = std::move(k);
    }
    subs.push_back({lo, differing[i].hi});
    std::vector<ChunkHash> sp, sn;
    if (!hash_ranges(p, n, t, subs, &sp, &sn, error)) return false;
    for (size_t j = 0; j < subs.size(); ++j)
      if (!(sp[j] == sn[j])) still.push_back(subs[j]);
  }
  // Drill down to rows.
  std::vector<pm::RowDiff> rows;
  for (const auto& r : still) {
    std::vector<Rows> po, no;
    if (!both(p, n, {pm::row_hashes_sql(t, r)}, &po, &no, error)) return false;
    RowMap o, nm;
    add_rows(po[0], t.key.size(), &o);
    add_rows(no[0], t.key.size(), &nm);
    auto d = diff_rows(o, nm);
    rows.insert(rows.end(), d.begin(), d.end());
  }
  if (!rows.empty()) {
    sleep_ms(ctx.opt.recheck_delay_ms);
    if (!recheck_rows(p, n, t, &rows, error)) return false;
  }
  tr->rows = std::move(rows);
  progress->add_differences(static_cast<int64_t>(tr->rows.size()));
  return true;
}

bool compare_sequences(PgConn& p, PgConn& n, pm::Report* report, std::string* error) {
  const std::string sql =
      "SELECT schemaname || '.' || sequencename, last_value FROM pg_sequences WHERE schemaname NOT "
      "IN ('pg_catalog', 'information_schema') ORDER BY 1";
  Rows o, nr;
  if (!p.query(sql, &o, error) || !n.query(sql, &nr, error)) return false;
  std::map<std::string, std::optional<int64_t>> nv;
  for (const auto& r : nr.rows)
    nv[*r[0]] = r[1] ? std::optional<int64_t>(std::atoll(r[1]->c_str())) : std::nullopt;
  for (const auto& r : o.rows) {
    auto it = nv.find(*r[0]);
    if (it == nv.end()) continue;  // preflight names missing sequences
    const std::optional<int64_t> ov = r[1] ? std::optional<int64_t>(std::atoll(r[1]->c_str())) : std::nullopt;
    // Behind the primary is what breaks a cutover (new's next value already used on the primary);
    // ahead is harmless.
    if (ov && (!it->second || *it->second < *ov)) report->sequences.push_back({*r[0], ov, it->second});
  }
  return true;
}

}  // namespace

bool run_verify(const Context& ctx, const std::vector<const pm::Table*>& tables,
                const pm::Schema& /*old_schema*/, pm::Report* report, Progress* progress,
                std::string* error) {
  report->primary = ctx.primary_name;
  std::mutex mu;
  std::atomic<size_t> next{0};
  std::string first_error;
  std::vector<pm::TableReport> results(tables.size());
  std::vector<bool> ok(tables.size(), false);
  auto worker = [&] {
    ConnPair pair;
    std::string e;
    if (!open_pair(ctx, &pair, &e)) {
      std::lock_guard lock(mu);
      if (first_error.empty()) first_error = e;
      return;
    }
    for (;;) {
      const size_t i = next.fetch_add(1);
      if (i >= tables.size()) break;
      progress->table_started(tables[i]->qualified(), tables[i]->estimated_rows);
      if (verify_table(ctx, *pair.primary, *pair.secondary, *tables[i], &results[i], progress, &e)) {
        ok[i] = true;
      } else {
        results[i].table = tables[i]->qualified();
        results[i].error = e;
        if (!pair.primary->ok() || !pair.secondary->ok()) {
          std::lock_guard lock(mu);
          if (first_error.empty()) first_error = e;
          return;
        }
      }
      progress->table_done(tables[i]->qualified());
    }
  };
  std::vector<std::thread> threads;
  const size_t jobs = std::min<size_t>(std::max(1, ctx.opt.jobs), std::max<size_t>(1, tables.size()));
  for (size_t j = 0; j < jobs; ++j) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  if (!first_error.empty()) {
    *error = first_error;
    return false;
  }
  for (size_t i = 0; i < tables.size(); ++i) {
    report->tables_checked++;
    report->rows_checked += results[i].rows_old;
    if (!results[i].rows.empty() || results[i].whole_table_differs || !results[i].error.empty())
      report->tables.push_back(std::move(results[i]));
  }
  ConnPair pair;
  if (!open_pair(ctx, &pair, error)) return false;
  return compare_sequences(*pair.primary, *pair.secondary, report, error);
}

namespace {

void print_report(const pm::Report& r) {
  for (const auto& t : r.tables) {
    if (!t.error.empty()) {
      print_check('-', t.table + ": cannot compare: " + t.error);
      continue;
    }
    if (t.whole_table_differs) {
      print_check('-', t.table + " (no key): contents differ (" + std::to_string(t.rows_old) + " rows on old side, " +
                           std::to_string(t.rows_new) + " on the other)");
      continue;
    }
    int64_t missing = 0, extra = 0, changed = 0;
    for (const auto& d : t.rows)
      (d.kind == pm::DiffKind::kMissingOnNew ? missing : d.kind == pm::DiffKind::kExtraOnNew ? extra : changed)++;
    print_check('-', t.table + ": " + std::to_string(t.rows.size()) + " differing rows (" + std::to_string(missing) +
                         " missing on the other target, " + std::to_string(extra) + " only there, " +
                         std::to_string(changed) + " changed)");
  }
  for (const auto& s : r.sequences)
    print_check('-', "sequence " + s.sequence + ": " + (s.old_value ? std::to_string(*s.old_value) : "unused") +
                         " on the primary, " + (s.new_value ? std::to_string(*s.new_value) : "unused") +
                         " on the other target (behind)");
}

}  // namespace

int verify_main(int argc, char** argv) {
  Options opt;
  std::string error;
  if (!parse_options(argc, argv, {"--config", "--user", "--dbname", "--tables", "--jobs", "--chunk-rows", "--state-dir", "--report", "--recheck-delay-ms", "--admin"},
                     &opt, &error)) {
    std::fprintf(stderr, "pgtandem verify: %s\n", error.c_str());
    return 2;
  }
  Context ctx;
  if (!make_context(opt, "pgtandem-verify", &ctx, &error)) {
    std::fprintf(stderr, "pgtandem verify: %s\n", error.c_str());
    return 3;
  }
  auto p = PgConn::open(ctx.primary, &error);
  pm::Schema schema;
  std::vector<const pm::Table*> tables;
  if (!p || !fetch_schema(*p, &schema, &error) || !select_tables(schema, opt.tables, &tables, &error)) {
    std::fprintf(stderr, "pgtandem verify: %s\n", error.c_str());
    audit(ctx.opt, "verify", 3, pm::Json::object().set("error", pm::Json::string(error)));
    return 3;
  }
  p.reset();
  const std::string dir = state_dir(ctx.opt);
  Progress progress("verify", dir + "/verify-state.json", &ctx);
  pm::Report report;
  // The marks each pgtandem holds now, before any table is read: only those may be cleared if
  // the verify is clean (policy/migrate/marks.h).
  report.all_tables = opt.tables.empty();
  report.marks_at_start = read_marks(ctx);
  progress.start();
  const bool ok = run_verify(ctx, tables, schema, &report, &progress, &error);
  if (!ok) {
    progress.finish(3, error);
    std::fprintf(stderr, "pgtandem verify: %s\n", error.c_str());
    audit(ctx.opt, "verify", 3, pm::Json::object().set("error", pm::Json::string(error)));
    return 3;
  }
  progress.finish(report.identical() ? 0 : 1);
  const std::string path = opt.report.empty() ? dir + "/verify-report.json" : opt.report;
  if (!write_file_atomic(path, pm::encode_report(report), &error))
    std::fprintf(stderr, "pgtandem verify: %s\n", error.c_str());
  print_report(report);
  if (report.identical())
    print_check('+', "identical: " + std::to_string(report.tables_checked) + " tables, " +
                         pm::format_count(report.rows_checked) + " rows");
  std::printf("report: %s\n", path.c_str());
  const int code = report.identical() ? 0 : 1;
  int64_t rows = 0;
  for (const auto& t : report.tables) rows += static_cast<int64_t>(t.rows.size());
  pm::Json details = pm::Json::object();
  if (report.identical() && report.all_tables)
    clear_marks_after_clean_verify(ctx, report.marks_at_start, &details);
  else if (report.identical())
    print_check('!', "needs-repair marks not cleared: --tables verified only some tables");
  audit(ctx.opt, "verify", code,
        details
            .set("report", pm::Json::string(path))
            .set("tables_checked", pm::Json::integer(report.tables_checked))
            .set("rows_checked", pm::Json::integer(report.rows_checked))
            .set("differing_tables", pm::Json::integer(static_cast<int64_t>(report.tables.size())))
            .set("differing_rows", pm::Json::integer(rows))
            .set("differing_sequences", pm::Json::integer(static_cast<int64_t>(report.sequences.size()))));
  return code;
}

}  // namespace pgtandem::proxy::migrate

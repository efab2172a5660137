// pgtandem repair --config FILE [--report FILE] (issue 13).
//
// Reads verify's report and makes the other target equal to the primary where it differs: for a
// batch of differing keys, the table is locked SHARE on the primary (no insert, update or delete
// of it commits meanwhile, so a key the primary lacks cannot be inserted concurrently), the
// primary's rows for those keys are copied into a staging table on the other target, the mirror
// barrier is awaited, then the other target deletes the listed keys the primary lacks and upserts
// the rest, and commits before the primary's lock is released (docs/migration.md). A table
// without a key, or whose contents differ as a whole, is copied whole the same way. Sequences
// behind the primary's are set to the primary's value. Then what was repaired is verified again.
#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "policy/migrate/state.h"
#include "proxy/migrate/commands.h"
#include "proxy/migrate/chunk_copy.h"
#include "proxy/migrate/common.h"
#include "proxy/migrate/verify.h"

namespace pgtandem::proxy::migrate {

namespace {

constexpr size_t kKeysPerBatch = 500;

bool repair_table(ConnPair& pair, MirrorBarrier& barrier, const pm::Table& table, size_t index,
                  const pm::TableReport& tr, int64_t* repaired, std::string* error) {
  const pm::TableSql t = table_sql(table);
  const std::string lock = "LOCK TABLE " + pm::qualified_name(t.schema, t.name) + " IN SHARE MODE";
  if (t.key.empty() || tr.whole_table_differs || tr.key != t.key) {
    ChunkCopy what;
    what.lock_sql = lock;
    what.copy_out_sql = pm::copy_all_out_sql(t);
    what.whole_table = true;
    ChunkResult r;
    if (!copy_chunk(pair, barrier, t, index, what, &r, error)) return false;
    *repaired += r.rows;
    return true;
  }
  for (size_t i = 0; i < tr.rows.size(); i += kKeysPerBatch) {
    std::vector<pm::Key> keys;
    for (size_t j = i; j < std::min(tr.rows.size(), i + kKeysPerBatch); ++j) keys.push_back(tr.rows[j].key);
    ChunkCopy what;
    what.lock_sql = lock;
    what.copy_out_sql = pm::copy_keys_out_sql(t, keys);
    what.delete_absent = &keys;
    ChunkResult r;
    if (!copy_chunk(pair, barrier, t, index, what, &r, error)) return false;
    *repaired += static_cast<int64_t>(keys.size());
  }
  return true;
}

}  // namespace

int repair_main(int argc, char** argv) {
  Options opt;
  std::string error;
  if (!parse_options(argc, argv,
                     {"--config", "--user", "--dbname", "--report", "--state-dir", "--admin", "--no-watermark",
                      "--commit-grace-ms", "--watermark-timeout-ms", "--jobs", "--recheck-delay-ms", "--chunk-rows"},
                     &opt, &error)) {
    std::fprintf(stderr, "pgtandem repair: %s\n", error.c_str());
    return 2;
  }
  Context ctx;
  if (!make_context(opt, "pgtandem-repair", &ctx, &error)) {
    std::fprintf(stderr, "pgtandem repair: %s\n", error.c_str());
    return 1;
  }
  const std::string dir = state_dir(ctx.opt);
  const std::string report_path = opt.report.empty() ? dir + "/verify-report.json" : opt.report;
  std::string text;
  if (!read_whole_file(report_path, &text)) {
    std::fprintf(stderr, "pgtandem repair: cannot read the report %s (run pgtandem verify first)\n", report_path.c_str());
    return 1;
  }
  auto report = pm::decode_report(text, &error);
  if (!report) {
    std::fprintf(stderr, "pgtandem repair: %s: %s\n", report_path.c_str(), error.c_str());
    return 1;
  }
  if (report->primary != ctx.primary_name) {
    std::fprintf(stderr, "pgtandem repair: the report was made with %s as the primary, the config says %s: verify again\n",
                 report->primary.c_str(), ctx.primary_name.c_str());
    return 1;
  }
  MirrorBarrier barrier(ctx);
  if (ctx.mirror_writes && !barrier.enabled() && !opt.no_watermark) {
    std::fprintf(stderr, "pgtandem repair: mirror_writes is on but no pgtandem admin endpoint is known: give --admin HOST:PORT\n");
    return 1;
  }
  ConnPair pair;
  pm::Schema schema;
  if (!open_pair(ctx, &pair, &error) || !fetch_schema(*pair.primary, &schema, &error)) {
    std::fprintf(stderr, "pgtandem repair: %s\n", error.c_str());
    return 1;
  }
  int64_t repaired = 0;
  std::vector<const pm::Table*> tables;
  int failures = 0;
  for (const auto& tr : report->tables) {
    const pm::Table* t = schema.table(tr.table);
    if (t == nullptr) {
      print_check('-', tr.table + ": not on the primary any more");
      ++failures;
      continue;
    }
    tables.push_back(t);
    if (!tr.error.empty()) continue;  // verify could not compare it: verified again below
    int64_t n = 0;
    if (!repair_table(pair, barrier, *t, tables.size(), tr, &n, &error)) {
      print_check('-', tr.table + ": repair failed: " + error);
      ++failures;
      if (!pair.primary->ok() || !pair.secondary->ok()) open_pair(ctx, &pair, &error);
      continue;
    }
    repaired += n;
    print_check('+', tr.table + ": " + std::to_string(n) + (tr.whole_table_differs || tr.key.empty() ? " rows copied whole" : " keys repaired"));
  }
  for (const auto& s : report->sequences) {
    const pm::Sequence* seq = nullptr;
    for (const auto& q : schema.sequences)
      if (q.qualified() == s.sequence) seq = &q;
    bool raised = false;
    if (seq == nullptr || !raise_sequence(pair, *seq, &raised, &error)) {
      print_check('-', "sequence " + s.sequence + ": " + (seq ? error : "not on the primary"));
      ++failures;
    } else {
      print_check('+', "sequence " + s.sequence + " set to at least the primary's value");
    }
  }
  // Verify what was repaired again.
  Progress progress("repair", dir + "/repair-state.json", &ctx);
  progress.set_barrier(&barrier);
  progress.add_repaired(repaired);
  progress.start();
  pm::Report after;
  if (!run_verify(ctx, tables, schema, &after, &progress, &error)) {
    progress.finish(1, error);
    std::fprintf(stderr, "pgtandem repair: verifying again failed: %s\n", error.c_str());
    audit(ctx.opt, "repair", 1, pm::Json::object().set("error", pm::Json::string(error)));
    return 1;
  }
  const std::string after_path = dir + "/repair-verify-report.json";
  write_file_atomic(after_path, pm::encode_report(after), &error);
  const bool identical = after.identical() && failures == 0;
  if (identical)
    print_check('+', "verified again: the repaired tables and sequences are identical");
  else
    print_check('-', "verified again: " + std::to_string(after.tables.size()) + " table(s) and " +
                         std::to_string(after.sequences.size()) + " sequence(s) still differ (report " + after_path +
                         "); run repair --report " + after_path + " again");
  const int code = identical ? 0 : 1;
  progress.finish(code, identical ? "" : "differences remain");
  // The report's verify covered every table and the re-verify of what differed is clean: old and
  // new agree on every table since that verify's start.
  pm::Json details = pm::Json::object();
  if (identical && report->all_tables)
    clear_marks_after_clean_verify(ctx, report->marks_at_start, &details);
  else if (identical)
    print_check('!', "needs-repair marks not cleared: the report's verify covered only some tables (--tables)");
  audit(ctx.opt, "repair", code,
        details
            .set("report", pm::Json::string(report_path))
            .set("repaired_rows", pm::Json::integer(repaired))
            .set("failures", pm::Json::integer(failures))
            .set("still_differing_tables", pm::Json::integer(static_cast<int64_t>(after.tables.size()))));
  return code;
}

}  // namespace pgtandem::proxy::migrate

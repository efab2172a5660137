#include <algorithm>
#include <array>
#include <cstring>

#include "policy/sql/classifier.h"
#include "policy/sql/classifier_internal.h"
#include "policy/sql/lexer.h"

namespace pgtandem::policy {
namespace internal {
namespace {

using E = FunctionEffect;
using FunctionMap = StaticStringMap<FunctionEffect, 1024>;
using Entry = FunctionMap::Entry;

// pg_catalog functions whose effect the classifier knows without a catalog. Writers and the
// nondeterministic ones apply even when the catalog is loaded (nextval is VOLATILE, but so is
// random(), which writes nothing); the read-only ones are IMMUTABLE or STABLE in PostgreSQL 15 and
// apply only when no catalog knows the name.
// clang-format off
constexpr auto kBuiltinEntries = std::to_array<Entry>({
    {"nextval", E::kWriteNondeterministic}, {"set_config", E::kSetConfig},
    {"random", E::kReadNondeterministic}, {"setseed", E::kReadNondeterministic},
    {"clock_timestamp", E::kReadNondeterministic}, {"timeofday", E::kReadNondeterministic},
    {"now", E::kReadNondeterministic}, {"statement_timestamp", E::kReadNondeterministic},
    {"transaction_timestamp", E::kReadNondeterministic},
    {"gen_random_uuid", E::kReadNondeterministic}, {"pg_sleep", E::kReadNondeterministic},
    {"pg_sleep_for", E::kReadNondeterministic}, {"pg_sleep_until", E::kReadNondeterministic},
    {"current_query", E::kReadNondeterministic}, {"pg_database_size", E::kReadNondeterministic},
    {"pg_indexes_size", E::kReadNondeterministic}, {"pg_relation_size", E::kReadNondeterministic},
    {"pg_table_size", E::kReadNondeterministic},
    {"pg_total_relation_size", E::kReadNondeterministic},
    {"pg_is_in_recovery", E::kReadNondeterministic},
    {"pg_current_wal_lsn", E::kReadNondeterministic},
    {"pg_current_wal_insert_lsn", E::kReadNondeterministic},
    {"pg_last_wal_replay_lsn", E::kReadNondeterministic},
    {"pg_last_wal_receive_lsn", E::kReadNondeterministic},
    {"pg_last_xact_replay_timestamp", E::kReadNondeterministic},
    {"pg_blocking_pids", E::kReadNondeterministic},
    {"pg_current_snapshot", E::kReadNondeterministic},
    {"txid_current_snapshot", E::kReadNondeterministic},
    {"pg_conf_load_time", E::kReadNondeterministic}, {"setval", E::kWrite}, {"currval", E::kWrite},
    {"lastval", E::kWrite}, {"lo_create", E::kWrite}, {"lo_creat", E::kWrite},
    {"lo_import", E::kWrite}, {"lo_export", E::kWrite}, {"lo_unlink", E::kWrite},
    {"lowrite", E::kWrite}, {"loread", E::kWrite}, {"lo_put", E::kWrite}, {"lo_get", E::kWrite},
    {"lo_from_bytea", E::kWrite}, {"lo_truncate", E::kWrite}, {"lo_truncate64", E::kWrite},
    {"lo_open", E::kWrite}, {"lo_close", E::kWrite}, {"lo_lseek", E::kWrite},
    {"lo_lseek64", E::kWrite}, {"lo_tell", E::kWrite}, {"lo_tell64", E::kWrite},
    {"pg_notify", E::kWrite}, {"txid_current", E::kWrite}, {"txid_current_if_assigned", E::kWrite},
    {"pg_current_xact_id", E::kWrite}, {"pg_current_xact_id_if_assigned", E::kWrite},
    // Primary only: they act on the server they run on (its backends, configuration, WAL,
    // statistics, replication slots and origins), where a pid or slot on the mirror is another
    // one or none. Older releases' names too: the primary may be one.
    {"pg_terminate_backend", E::kPrimaryOnly}, {"pg_cancel_backend", E::kPrimaryOnly},
    {"pg_reload_conf", E::kPrimaryOnly}, {"pg_rotate_logfile", E::kPrimaryOnly},
    {"pg_rotate_logfile_old", E::kPrimaryOnly}, {"pg_switch_wal", E::kPrimaryOnly},
    {"pg_switch_xlog", E::kPrimaryOnly}, {"pg_create_restore_point", E::kPrimaryOnly},
    {"pg_log_backend_memory_contexts", E::kPrimaryOnly}, {"pg_promote", E::kPrimaryOnly},
    {"pg_wal_replay_pause", E::kPrimaryOnly}, {"pg_wal_replay_resume", E::kPrimaryOnly},
    {"pg_xlog_replay_pause", E::kPrimaryOnly}, {"pg_xlog_replay_resume", E::kPrimaryOnly},
    {"pg_backup_start", E::kPrimaryOnly}, {"pg_backup_stop", E::kPrimaryOnly},
    {"pg_start_backup", E::kPrimaryOnly}, {"pg_stop_backup", E::kPrimaryOnly},
    {"pg_stat_reset", E::kPrimaryOnly}, {"pg_stat_reset_shared", E::kPrimaryOnly},
    {"pg_stat_reset_single_table_counters", E::kPrimaryOnly},
    {"pg_stat_reset_single_function_counters", E::kPrimaryOnly},
    {"pg_stat_reset_slru", E::kPrimaryOnly}, {"pg_stat_reset_replication_slot", E::kPrimaryOnly},
    {"pg_stat_reset_subscription_stats", E::kPrimaryOnly},
    {"pg_logical_slot_get_changes", E::kPrimaryOnly},
    {"pg_logical_slot_get_binary_changes", E::kPrimaryOnly},
    {"pg_logical_slot_peek_changes", E::kPrimaryOnly},
    {"pg_logical_slot_peek_binary_changes", E::kPrimaryOnly},
    {"pg_replication_slot_advance", E::kPrimaryOnly},
    {"pg_create_physical_replication_slot", E::kPrimaryOnly},
    {"pg_create_logical_replication_slot", E::kPrimaryOnly},
    {"pg_drop_replication_slot", E::kPrimaryOnly},
    {"pg_copy_physical_replication_slot", E::kPrimaryOnly},
    {"pg_copy_logical_replication_slot", E::kPrimaryOnly},
    {"pg_replication_origin_create", E::kPrimaryOnly},
    {"pg_replication_origin_drop", E::kPrimaryOnly},
    {"pg_replication_origin_advance", E::kPrimaryOnly},
    {"pg_replication_origin_session_setup", E::kPrimaryOnly},
    {"pg_replication_origin_session_reset", E::kPrimaryOnly},
    {"pg_replication_origin_xact_setup", E::kPrimaryOnly},
    {"pg_replication_origin_xact_reset", E::kPrimaryOnly},
    {"pg_stat_clear_snapshot", E::kWrite}, {"pg_import_system_collations", E::kWrite},
    {"pg_logical_emit_message", E::kWrite},
    {"pg_advisory_lock", E::kAdvisoryLock}, {"pg_advisory_lock_shared", E::kAdvisoryLock},
    {"pg_advisory_unlock", E::kAdvisoryLock}, {"pg_advisory_unlock_shared", E::kAdvisoryLock},
    {"pg_advisory_unlock_all", E::kAdvisoryLock}, {"pg_try_advisory_lock", E::kAdvisoryLock},
    {"pg_try_advisory_lock_shared", E::kAdvisoryLock}, {"pg_advisory_xact_lock", E::kAdvisoryLock},
    {"pg_advisory_xact_lock_shared", E::kAdvisoryLock},
    {"pg_try_advisory_xact_lock", E::kAdvisoryLock},
    {"pg_try_advisory_xact_lock_shared", E::kAdvisoryLock}, {"abs", E::kRead}, {"acos", E::kRead},
    {"age", E::kRead}, {"array_agg", E::kRead}, {"array_append", E::kRead}, {"array_cat", E::kRead},
    {"array_dims", E::kRead}, {"array_fill", E::kRead}, {"array_length", E::kRead},
    {"array_lower", E::kRead}, {"array_ndims", E::kRead}, {"array_position", E::kRead},
    {"array_positions", E::kRead}, {"array_prepend", E::kRead}, {"array_remove", E::kRead},
    {"array_replace", E::kRead}, {"array_to_json", E::kRead}, {"array_to_string", E::kRead},
    {"array_to_tsvector", E::kRead}, {"array_upper", E::kRead}, {"ascii", E::kRead},
    {"asin", E::kRead}, {"atan", E::kRead}, {"atan2", E::kRead}, {"avg", E::kRead},
    {"bit_and", E::kRead}, {"bit_length", E::kRead}, {"bit_or", E::kRead}, {"bool", E::kRead},
    {"bool_and", E::kRead}, {"bool_or", E::kRead}, {"bpchar", E::kRead}, {"btrim", E::kRead},
    {"cardinality", E::kRead}, {"cbrt", E::kRead}, {"ceil", E::kRead}, {"ceiling", E::kRead},
    {"char_length", E::kRead}, {"character_length", E::kRead}, {"chr", E::kRead},
    {"cidr", E::kRead}, {"col_description", E::kRead}, {"concat", E::kRead},
    {"concat_ws", E::kRead}, {"corr", E::kRead}, {"cos", E::kRead}, {"count", E::kRead},
    {"covar_pop", E::kRead}, {"covar_samp", E::kRead}, {"cume_dist", E::kRead},
    {"current_database", E::kRead}, {"current_schema", E::kRead}, {"current_schemas", E::kRead},
    {"current_setting", E::kRead}, {"current_user", E::kRead}, {"date", E::kRead},
    {"date_bin", E::kRead}, {"date_part", E::kRead}, {"date_trunc", E::kRead}, {"decode", E::kRead},
    {"degrees", E::kRead}, {"dense_rank", E::kRead}, {"div", E::kRead}, {"encode", E::kRead},
    {"every", E::kRead}, {"exp", E::kRead}, {"extract", E::kRead}, {"factorial", E::kRead},
    {"first_value", E::kRead}, {"float4", E::kRead}, {"float8", E::kRead}, {"floor", E::kRead},
    {"format", E::kRead}, {"format_type", E::kRead}, {"gcd", E::kRead},
    {"generate_series", E::kRead}, {"generate_subscripts", E::kRead}, {"get_bit", E::kRead},
    {"get_byte", E::kRead}, {"has_any_column_privilege", E::kRead},
    {"has_column_privilege", E::kRead}, {"has_database_privilege", E::kRead},
    {"has_function_privilege", E::kRead}, {"has_schema_privilege", E::kRead},
    {"has_sequence_privilege", E::kRead}, {"has_table_privilege", E::kRead}, {"hashtext", E::kRead},
    {"host", E::kRead}, {"hostmask", E::kRead}, {"inet_client_addr", E::kRead},
    {"inet_client_port", E::kRead}, {"inet_server_addr", E::kRead}, {"inet_server_port", E::kRead},
    {"initcap", E::kRead}, {"int2", E::kRead}, {"int4", E::kRead}, {"int8", E::kRead},
    {"interval", E::kRead}, {"isfinite", E::kRead}, {"json_agg", E::kRead},
    {"json_array_elements", E::kRead}, {"json_array_elements_text", E::kRead},
    {"json_array_length", E::kRead}, {"json_build_array", E::kRead},
    {"json_build_object", E::kRead}, {"json_each", E::kRead}, {"json_each_text", E::kRead},
    {"json_extract_path", E::kRead}, {"json_extract_path_text", E::kRead},
    {"json_object", E::kRead}, {"json_object_agg", E::kRead}, {"json_object_keys", E::kRead},
    {"json_populate_record", E::kRead}, {"json_populate_recordset", E::kRead},
    {"json_strip_nulls", E::kRead}, {"json_to_record", E::kRead}, {"json_to_recordset", E::kRead},
    {"json_typeof", E::kRead}, {"jsonb_agg", E::kRead}, {"jsonb_array_elements", E::kRead},
    {"jsonb_array_elements_text", E::kRead}, {"jsonb_array_length", E::kRead},
    {"jsonb_build_array", E::kRead}, {"jsonb_build_object", E::kRead}, {"jsonb_each", E::kRead},
    {"jsonb_each_text", E::kRead}, {"jsonb_extract_path", E::kRead},
    {"jsonb_extract_path_text", E::kRead}, {"jsonb_insert", E::kRead}, {"jsonb_object", E::kRead},
    {"jsonb_object_agg", E::kRead}, {"jsonb_object_keys", E::kRead},
    {"jsonb_path_exists", E::kRead}, {"jsonb_path_match", E::kRead}, {"jsonb_path_query", E::kRead},
    {"jsonb_path_query_array", E::kRead}, {"jsonb_path_query_first", E::kRead},
    {"jsonb_populate_record", E::kRead}, {"jsonb_populate_recordset", E::kRead},
    {"jsonb_pretty", E::kRead}, {"jsonb_set", E::kRead}, {"jsonb_set_lax", E::kRead},
    {"jsonb_strip_nulls", E::kRead}, {"jsonb_to_record", E::kRead},
    {"jsonb_to_recordset", E::kRead}, {"jsonb_typeof", E::kRead}, {"justify_days", E::kRead},
    {"justify_hours", E::kRead}, {"justify_interval", E::kRead}, {"lag", E::kRead},
    {"last_value", E::kRead}, {"lcm", E::kRead}, {"lead", E::kRead}, {"left", E::kRead},
    {"length", E::kRead}, {"ln", E::kRead}, {"log", E::kRead}, {"log10", E::kRead},
    {"lower", E::kRead}, {"lpad", E::kRead}, {"ltrim", E::kRead}, {"macaddr", E::kRead},
    {"make_date", E::kRead}, {"make_interval", E::kRead}, {"make_time", E::kRead},
    {"make_timestamp", E::kRead}, {"make_timestamptz", E::kRead}, {"max", E::kRead},
    {"md5", E::kRead}, {"min", E::kRead}, {"mod", E::kRead}, {"mode", E::kRead}, {"name", E::kRead},
    {"normalize", E::kRead}, {"nth_value", E::kRead}, {"ntile", E::kRead},
    {"num_nonnulls", E::kRead}, {"num_nulls", E::kRead}, {"numeric", E::kRead},
    {"obj_description", E::kRead}, {"octet_length", E::kRead}, {"oid", E::kRead},
    {"overlay", E::kRead}, {"percent_rank", E::kRead}, {"percentile_cont", E::kRead},
    {"percentile_disc", E::kRead}, {"pg_backend_pid", E::kRead},
    {"pg_collation_is_visible", E::kRead}, {"pg_column_size", E::kRead},
    {"pg_conversion_is_visible", E::kRead}, {"pg_encoding_to_char", E::kRead},
    {"pg_function_is_visible", E::kRead}, {"pg_get_constraintdef", E::kRead},
    {"pg_get_expr", E::kRead}, {"pg_get_function_arguments", E::kRead},
    {"pg_get_function_identity_arguments", E::kRead}, {"pg_get_function_result", E::kRead},
    {"pg_get_function_sqlbody", E::kRead}, {"pg_get_functiondef", E::kRead},
    {"pg_get_indexdef", E::kRead}, {"pg_get_keywords", E::kRead}, {"pg_get_partkeydef", E::kRead},
    {"pg_get_ruledef", E::kRead}, {"pg_get_serial_sequence", E::kRead},
    {"pg_get_statisticsobjdef", E::kRead}, {"pg_get_triggerdef", E::kRead},
    {"pg_get_userbyid", E::kRead}, {"pg_get_viewdef", E::kRead}, {"pg_has_role", E::kRead},
    {"pg_index_column_has_property", E::kRead}, {"pg_my_temp_schema", E::kRead},
    {"pg_opclass_is_visible", E::kRead}, {"pg_operator_is_visible", E::kRead},
    {"pg_postmaster_start_time", E::kRead}, {"pg_relation_filenode", E::kRead},
    {"pg_size_pretty", E::kRead}, {"pg_stat_get_numscans", E::kRead},
    {"pg_table_is_visible", E::kRead}, {"pg_tablespace_location", E::kRead},
    {"pg_ts_config_is_visible", E::kRead}, {"pg_type_is_visible", E::kRead},
    {"pg_typeof", E::kRead}, {"phraseto_tsquery", E::kRead}, {"pi", E::kRead},
    {"plainto_tsquery", E::kRead}, {"position", E::kRead}, {"power", E::kRead},
    {"quote_ident", E::kRead}, {"quote_literal", E::kRead}, {"quote_nullable", E::kRead},
    {"radians", E::kRead}, {"rank", E::kRead}, {"regclass", E::kRead}, {"regexp_count", E::kRead},
    {"regexp_instr", E::kRead}, {"regexp_like", E::kRead}, {"regexp_match", E::kRead},
    {"regexp_matches", E::kRead}, {"regexp_replace", E::kRead}, {"regexp_split_to_array", E::kRead},
    {"regexp_split_to_table", E::kRead}, {"regexp_substr", E::kRead}, {"regr_avgx", E::kRead},
    {"regr_count", E::kRead}, {"regr_slope", E::kRead}, {"repeat", E::kRead}, {"replace", E::kRead},
    {"reverse", E::kRead}, {"right", E::kRead}, {"round", E::kRead}, {"row_number", E::kRead},
    {"row_to_json", E::kRead}, {"rpad", E::kRead}, {"rtrim", E::kRead}, {"scale", E::kRead},
    {"session_user", E::kRead}, {"sha224", E::kRead}, {"sha256", E::kRead}, {"sha384", E::kRead},
    {"sha512", E::kRead}, {"shobj_description", E::kRead}, {"sign", E::kRead}, {"sin", E::kRead},
    {"split_part", E::kRead}, {"sqrt", E::kRead}, {"starts_with", E::kRead}, {"stddev", E::kRead},
    {"stddev_pop", E::kRead}, {"stddev_samp", E::kRead}, {"string_agg", E::kRead},
    {"string_to_array", E::kRead}, {"string_to_table", E::kRead}, {"strpos", E::kRead},
    {"substr", E::kRead}, {"substring", E::kRead}, {"sum", E::kRead}, {"tan", E::kRead},
    {"text", E::kRead}, {"time", E::kRead}, {"timestamp", E::kRead}, {"timestamptz", E::kRead},
    {"timezone", E::kRead}, {"to_ascii", E::kRead}, {"to_char", E::kRead}, {"to_date", E::kRead},
    {"to_hex", E::kRead}, {"to_json", E::kRead}, {"to_jsonb", E::kRead}, {"to_number", E::kRead},
    {"to_regclass", E::kRead}, {"to_regproc", E::kRead}, {"to_regtype", E::kRead},
    {"to_timestamp", E::kRead}, {"to_tsquery", E::kRead}, {"to_tsvector", E::kRead},
    {"translate", E::kRead}, {"trim_scale", E::kRead}, {"trunc", E::kRead},
    {"ts_headline", E::kRead}, {"ts_rank", E::kRead}, {"ts_rank_cd", E::kRead},
    {"unnest", E::kRead}, {"upper", E::kRead}, {"var_pop", E::kRead}, {"var_samp", E::kRead},
    {"varchar", E::kRead}, {"variance", E::kRead}, {"version", E::kRead},
    {"websearch_to_tsquery", E::kRead}, {"width_bucket", E::kRead}, {"xmlagg", E::kRead},
});
constexpr FunctionMap kBuiltins(kBuiltinEntries);

// Extension functions, matched in any schema (extensions are installed where the user chose).
constexpr auto kExtensionEntries = std::to_array<StaticStringMap<FunctionEffect, 16>::Entry>({
    {"uuid_generate_v1", E::kReadNondeterministic},
    {"uuid_generate_v1mc", E::kReadNondeterministic},
    {"uuid_generate_v4", E::kReadNondeterministic}, {"dblink", E::kWrite},
    {"dblink_exec", E::kWrite}, {"dblink_send_query", E::kWrite},
});
// clang-format on
constexpr StaticStringMap<FunctionEffect, 16> kExtensions(kExtensionEntries);

}  // namespace

FunctionEffect function_effect(std::string_view schema, std::string_view name,
                               const ClassifierOptions& opts) {
  const bool builtin_schema = schema.empty() || schema == "pg_catalog";
  const FunctionEffect* builtin = builtin_schema ? kBuiltins.find(name) : nullptr;
  // Before the configured lists: listing pg_cancel_backend as read-only must not let it reach the
  // mirror, where the pid is another backend.
  if (builtin != nullptr && *builtin == E::kPrimaryOnly) return E::kPrimaryOnly;
  const FunctionLists* lists = opts.functions;
  if (lists != nullptr && lists->writing.contains_any_schema(name)) return E::kWrite;
  if (builtin != nullptr && *builtin != E::kRead) return *builtin;
  if (const FunctionEffect* ext = kExtensions.find(name)) return *ext;
  if (lists != nullptr && lists->read_only.contains(schema, name)) return E::kRead;
  if (opts.catalog != nullptr) {
    if (std::optional<Volatility> v = opts.catalog->find(schema, name)) {
      return *v == Volatility::kVolatile ? E::kWriteNondeterministic : E::kRead;
    }
  }
  if (builtin != nullptr) return *builtin;
  return opts.unknown_function_is_write ? E::kWriteNondeterministic : E::kRead;
}

bool mentions_primary_only(std::string_view text) {
  auto word_byte = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '$';
  };
  char lower[kMaxIdentifierBytes];
  for (size_t i = 0; i < text.size();) {
    if (!word_byte(text[i])) {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < text.size() && word_byte(text[end])) ++end;
    const size_t n = end - i;
    if (n <= sizeof(lower) && (text[i] == 'p' || text[i] == 'P')) {
      for (size_t k = 0; k < n; ++k) lower[k] = ascii_lower(text[i + k]);
      const FunctionEffect* e = kBuiltins.find(std::string_view(lower, n));
      if (e != nullptr && *e == E::kPrimaryOnly) return true;
    }
    i = end;
  }
  return false;
}

void merge(Classification* total, const Classification& next) {
  if (next.statement_count == 0) return;
  if (total->statement_count == 0) {
    *total = next;
    return;
  }
  // Before kind and session change: what each side needs mirrored besides primary-only calls.
  const bool besides =
      needs_mirror_besides_primary_only(*total) || needs_mirror_besides_primary_only(next);
  total->primary_only = total->primary_only || next.primary_only;
  total->primary_only_mixed = total->primary_only && besides;
  total->kind = std::max(total->kind, next.kind);
  if (next.txn != TxnControl::kNone) total->txn = next.txn;
  if (next.session != SessionOp::kNone) total->session = next.session;
  if (next.session == SessionOp::kPrepare) total->prepared_kind = next.prepared_kind;
  total->nondeterministic = total->nondeterministic || next.nondeterministic;
  total->may_use_defaults = total->may_use_defaults || next.may_use_defaults;
  total->pins_session = total->pins_session || next.pins_session;
  total->used_parser = total->used_parser || next.used_parser;
  total->uses_session_prepared = total->uses_session_prepared || next.uses_session_prepared;
  const uint32_t count = uint32_t{total->statement_count} + next.statement_count;
  total->statement_count = static_cast<uint16_t>(std::min<uint32_t>(count, UINT16_MAX));
  total->multi_statement = true;
}

}  // namespace internal

bool is_primary_only_function_oid(uint32_t oid) {
  // pg_proc.dat OIDs of the primary-only built-ins above, as of PostgreSQL 15. Renamed functions
  // kept their OIDs (pg_switch_xlog is pg_switch_wal's 2848); 2173 is pg_stop_backup() before 15.
  static constexpr uint32_t kOids[] = {
      2096, 2171, 2172, 2173, 2274, 2307, 2621, 2622, 2739, 2848, 3071, 3072, 3098, 3436,
      3775, 3776, 3777, 3779, 3780, 3782, 3783, 3784, 3785, 3786, 3878, 4099, 4220, 4221,
      4222, 4223, 4224, 4543, 6003, 6004, 6006, 6007, 6010, 6011, 6012, 6170, 6232};
  return std::find(std::begin(kOids), std::end(kOids), oid) != std::end(kOids);
}

namespace {

// "schema.name" in a stack buffer: both parts are at most 63 bytes as the server stores them.
class QualifiedName {
 public:
  QualifiedName(std::string_view schema, std::string_view name) {
    schema = schema.substr(0, kMaxIdentifierBytes * 4);
    name = name.substr(0, kMaxIdentifierBytes * 4);
    std::memcpy(buf_, schema.data(), schema.size());
    buf_[schema.size()] = '.';
    std::memcpy(buf_ + schema.size() + 1, name.data(), name.size());
    size_ = schema.size() + 1 + name.size();
  }
  std::string_view view() const { return {buf_, size_}; }

 private:
  char buf_[kMaxIdentifierBytes * 8 + 1];
  size_t size_;
};

}  // namespace

FunctionSet::FunctionSet(const std::vector<std::string>& names) {
  for (const std::string& n : names) add(n);
}

void FunctionSet::add(std::string_view name) {
  exact_.emplace(name);
  const size_t dot = name.rfind('.');
  names_.emplace(dot == std::string_view::npos ? name : name.substr(dot + 1));
}

bool FunctionSet::contains(std::string_view schema, std::string_view name) const {
  if (exact_.find(name) != exact_.end()) return true;
  if (schema.empty()) return false;
  return exact_.find(QualifiedName(schema, name).view()) != exact_.end();
}

bool FunctionSet::contains_any_schema(std::string_view name) const {
  return names_.find(name) != names_.end();
}

std::optional<Volatility> VolatilityCatalog::from_provolatile(char c) {
  switch (c) {
    case 'i':
      return Volatility::kImmutable;
    case 's':
      return Volatility::kStable;
    case 'v':
      return Volatility::kVolatile;
    default:
      return std::nullopt;
  }
}

void VolatilityCatalog::add(std::string_view schema, std::string_view name, Volatility v) {
  auto merge_into = [v](auto& map, std::string_view key) {
    auto it = map.find(key);
    if (it == map.end()) {
      map.emplace(std::string(key), v);
    } else {
      it->second = std::max(it->second, v);
    }
  };
  merge_into(by_name_, name);
  merge_into(by_qualified_name_, QualifiedName(schema, name).view());
}

std::optional<Volatility> VolatilityCatalog::find(std::string_view schema,
                                                  std::string_view name) const {
  if (schema.empty()) {
    auto it = by_name_.find(name);
    if (it == by_name_.end()) return std::nullopt;
    return it->second;
  }
  auto it = by_qualified_name_.find(QualifiedName(schema, name).view());
  if (it == by_qualified_name_.end()) return std::nullopt;
  return it->second;
}

void PreparedStatements::add(std::string_view name, const Classification& c) {
  Classification body = c;
  if (c.session == SessionOp::kPrepare) {
    body.kind = c.prepared_kind;
    body.session = SessionOp::kNone;
  }
  body.multi_statement = false;
  body.statement_count = 1;
  auto it = by_name_.find(name);
  if (it == by_name_.end()) {
    by_name_.emplace(std::string(name), body);
  } else {
    it->second = body;
  }
}

const Classification* PreparedStatements::find(std::string_view name) const {
  uint32_t h = 2166136261u;  // FNV-1a: names are short
  for (const char ch : name) h = (h ^ static_cast<unsigned char>(ch)) * 16777619u;
  Memo& m = memo_[(h ^ (h >> 16)) & (memo_.size() - 1)];
  if (m.name != nullptr && *m.name == name) return m.classification;
  auto it = by_name_.find(name);
  if (it == by_name_.end()) return nullptr;
  m = {&it->first, &it->second};
  return &it->second;
}

std::string_view to_string(StatementKind kind) {
  switch (kind) {
    case StatementKind::kRead:
      return "read";
    case StatementKind::kTransactionControl:
      return "transaction_control";
    case StatementKind::kSessionState:
      return "session_state";
    case StatementKind::kWrite:
      return "write";
    case StatementKind::kUnknown:
      return "unknown";
  }
  return "?";
}

std::string_view to_string(TxnControl txn) {
  static constexpr std::array<std::string_view, 13> kNames = {"none",
                                                              "begin",
                                                              "begin_read_only",
                                                              "commit",
                                                              "commit_and_chain",
                                                              "rollback",
                                                              "rollback_and_chain",
                                                              "savepoint",
                                                              "release",
                                                              "rollback_to",
                                                              "prepare_transaction",
                                                              "commit_prepared",
                                                              "rollback_prepared"};
  const size_t i = static_cast<size_t>(txn);
  return i < kNames.size() ? kNames[i] : "?";
}

std::string_view to_string(SessionOp op) {
  static constexpr std::array<std::string_view, 19> kNames = {"none",
                                                              "set",
                                                              "set_local",
                                                              "set_transaction",
                                                              "reset",
                                                              "reset_all",
                                                              "discard_all",
                                                              "discard_plans",
                                                              "discard_sequences",
                                                              "discard_temp",
                                                              "prepare",
                                                              "execute",
                                                              "deallocate",
                                                              "deallocate_all",
                                                              "listen",
                                                              "unlisten",
                                                              "load",
                                                              "show",
                                                              "cursor"};
  const size_t i = static_cast<size_t>(op);
  return i < kNames.size() ? kNames[i] : "?";
}

}  // namespace pgtandem::policy

#include "proxy/migrate/common.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "config/pgpass.h"

namespace pgtandem::proxy::migrate {

using Clock = std::chrono::steady_clock;

namespace {

bool parse_int(const std::string& s, int64_t* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || *end != '\0' || v < 0) return false;
  *out = v;
  return true;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

}  // namespace

bool parse_options(int argc, char** argv, const std::vector<std::string>& allowed, Options* o,
                   std::string* error) {
  std::set<std::string> ok(allowed.begin(), allowed.end());
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (!ok.count(flag)) {
      *error = "unknown option " + flag;
      return false;
    }
    o->given.insert(flag);
    if (flag == "--no-watermark") {
      o->no_watermark = true;
      continue;
    }
    if (i + 1 >= argc) {
      *error = flag + " needs a value";
      return false;
    }
    const std::string v = argv[++i];
    int64_t n = 0;
    auto number = [&](int64_t min) {
      if (!parse_int(v, &n) || n < min) {
        *error = flag + " needs a number >= " + std::to_string(min) + ", not '" + v + "'";
        return false;
      }
      return true;
    };
    if (flag == "--config") o->config_path = v;
    else if (flag == "--user") o->user = v;
    else if (flag == "--dbname") o->dbname = v;
    else if (flag == "--tables") o->tables = split(v, ',');
    else if (flag == "--state-dir") o->state_dir = v;
    else if (flag == "--admin") o->admins.push_back(v);
    else if (flag == "--report") o->report = v;
    else if (flag == "--mode") {
      if (v != "auto" && v != "snapshot" && v != "chunked") {
        *error = "--mode must be auto, snapshot or chunked, not '" + v + "'";
        return false;
      }
      o->mode = v;
    } else if (flag == "--fence-lease-ms") {
      if (!number(500)) return false;
      o->fence_lease_ms = static_cast<int>(std::min<int64_t>(n, 600000));
    }
    else if (flag == "--allow-cast") o->allowed_casts.push_back(v);
    else if (flag == "--jobs") {
      if (!number(1)) return false;
      o->jobs = static_cast<int>(std::min<int64_t>(n, 64));
    } else if (flag == "--max-rate") {
      if (!number(0)) return false;
      o->max_rate = n;
    } else if (flag == "--chunk-memory") {
      if (!number(0)) return false;
      o->chunk_memory = n;
    } else if (flag == "--chunk-rows") {
      if (!number(1)) return false;
      o->chunk_rows = n;
    } else if (flag == "--commit-grace-ms") {
      if (!number(0)) return false;
      o->commit_grace_ms = static_cast<int>(n);
    } else if (flag == "--watermark-timeout-ms") {
      if (!number(1)) return false;
      o->watermark_timeout_ms = static_cast<int>(n);
    } else if (flag == "--recheck-delay-ms") {
      if (!number(0)) return false;
      o->recheck_delay_ms = static_cast<int>(n);
    }
  }
  if (o->config_path.empty()) {
    *error = "--config FILE is required";
    return false;
  }
  return true;
}

namespace {

ConnSpec spec_for(const config::Target& t, const std::string& db, const std::string& user,
                  const config::Pgpass* pgpass, const std::string& app) {
  ConnSpec s;
  s.host = t.unix_socket_dir.empty() ? t.host : t.unix_socket_dir;
  s.port = t.port;
  s.label = t.name + " (" + (t.unix_socket_dir.empty() ? config::format_host_port(t.host, t.port)
                                                       : t.unix_socket_dir + ":" + std::to_string(t.port)) +
            ")";
  s.dbname = db;
  s.user = user;
  s.sslmode = t.sslmode;
  s.sslrootcert = t.sslrootcert;
  s.sslcert = t.sslcert;
  s.sslkey = t.sslkey;
  s.application_name = app;
  if (pgpass) {
    const std::string host = t.unix_socket_dir.empty() ? t.host : "localhost";
    if (const auto* e = pgpass->lookup(host, t.port, db, user)) s.password = e->password;
  }
  return s;
}

void apply_migrate_section(const config::Migrate& m, Options* o) {
  auto unset = [&](const char* flag) { return o->given.count(flag) == 0; };
  if (unset("--user")) o->user = m.user;
  if (unset("--dbname")) o->dbname = m.dbname;
  if (unset("--jobs")) o->jobs = static_cast<int>(m.jobs);
  if (unset("--chunk-rows")) o->chunk_rows = static_cast<int64_t>(m.chunk_rows);
  if (unset("--chunk-memory")) o->chunk_memory = static_cast<int64_t>(m.chunk_memory);
  if (unset("--max-rate")) o->max_rate = static_cast<int64_t>(m.max_rate);
  if (unset("--commit-grace-ms")) o->commit_grace_ms = static_cast<int>(m.commit_grace_ms);
  if (unset("--watermark-timeout-ms")) o->watermark_timeout_ms = static_cast<int>(m.watermark_timeout_ms);
  if (unset("--recheck-delay-ms")) o->recheck_delay_ms = static_cast<int>(m.recheck_delay_ms);
  if (unset("--mode")) o->mode = m.backfill_mode;
  if (unset("--fence-lease-ms")) o->fence_lease_ms = static_cast<int>(m.fence_lease_ms);
  if (unset("--admin")) o->admins = m.admins;
  if (unset("--state-dir")) o->state_dir = m.state_dir;
  o->use_admin_token = m.use_admin_token;
}

}  // namespace

void wait_for_rate_cap(int64_t total, int64_t rows_per_s, std::chrono::steady_clock::time_point started,
                       const std::atomic<bool>& stop, int64_t max_step_ms) {
  if (rows_per_s <= 0) return;
  for (;;) {
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const double allowed = elapsed * static_cast<double>(rows_per_s);
    if (static_cast<double>(total) <= allowed || stop) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(
        max_step_ms, static_cast<int64_t>((static_cast<double>(total) - allowed) * 1000.0 / rows_per_s) + 1)));
  }
}

std::string checkpoint_path(const Options& opt, const std::string& table) {
  const std::string dir = state_dir(opt) + "/backfill";
  ::mkdir(dir.c_str(), 0755);
  std::string out;
  for (unsigned char c : table) {
    if (std::isalnum(c) || c == '_' || c == '.' || c == '-') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return dir + "/" + out + ".json";
}

bool make_context(const Options& opt, const std::string& app, Context* ctx, std::string* error) {
  ctx->opt = opt;
  auto loaded = config::load_file(opt.config_path);
  if (!loaded.ok()) {
    *error = "invalid config:";
    for (const auto& e : loaded.errors) *error += "\n  " + e.to_string();
    return false;
  }
  ctx->cfg = *loaded.config;
  ctx->mirror_writes = ctx->cfg.mirror_writes;
  apply_migrate_section(ctx->cfg.migrate, &ctx->opt);
  std::string user = ctx->opt.user.empty() ? ctx->cfg.classifier.catalog_user : ctx->opt.user;
  if (user.empty() && std::getenv("PGUSER")) user = std::getenv("PGUSER");
  if (user.empty()) {
    *error = "no user: give --user, or set [migrate] user, [classifier] catalog_user or $PGUSER";
    return false;
  }
  std::string db = ctx->opt.dbname.empty() ? ctx->cfg.classifier.catalog_database : ctx->opt.dbname;
  if (db.empty() && std::getenv("PGDATABASE")) db = std::getenv("PGDATABASE");
  if (db.empty()) db = user;
  std::optional<config::Pgpass> pgpass;
  if (!ctx->cfg.mirror.credentials_file.empty()) {
    auto p = config::load_pgpass_file(ctx->cfg.mirror.credentials_file);
    if (!p.ok()) {
      *error = "cannot read [mirror] credentials_file " + ctx->cfg.mirror.credentials_file;
      for (const auto& e : p.errors) *error += "\n  " + e.to_string();
      return false;
    }
    pgpass = std::move(p.pgpass);
  }
  const config::Pgpass* pp = pgpass ? &*pgpass : nullptr;
  ctx->primary = spec_for(ctx->cfg.primary_target(), db, user, pp, app);
  ctx->secondary = spec_for(ctx->cfg.secondary_target(), db, user, pp, app);
  ctx->primary_name = ctx->cfg.primary_target().name;
  ctx->secondary_name = ctx->cfg.secondary_target().name;
  std::string config_admin;
  if (ctx->cfg.admin.enabled()) {
    const std::string host = ctx->cfg.admin.listen_host == "*" || ctx->cfg.admin.listen_host.empty()
                                 ? "127.0.0.1"
                                 : ctx->cfg.admin.listen_host;
    config_admin = config::format_host_port(host, ctx->cfg.admin.listen_port);
  }
  if (ctx->opt.admins.empty() && ctx->cfg.mirror_writes && !config_admin.empty())
    ctx->opt.admins.push_back(config_admin);
  ctx->report_admins = ctx->opt.admins;
  if (ctx->report_admins.empty() && !config_admin.empty()) ctx->report_admins.push_back(config_admin);
  ctx->admin_token = ctx->opt.use_admin_token ? ctx->cfg.admin.token : std::string();
  if (ctx->opt.use_admin_token && ctx->admin_token.empty() && !ctx->cfg.admin.token_file.empty()) {
    std::string token;
    if (read_whole_file(ctx->cfg.admin.token_file, &token)) {
      const auto first = token.find_first_not_of(" \t\r\n");
      const auto last = token.find_last_not_of(" \t\r\n");
      ctx->admin_token = first == std::string::npos ? std::string() : token.substr(first, last - first + 1);
    }
  }
  // Checkpoints, reports and the audit log go there: a command that cannot write it stops now.
  return !state_dir(ctx->opt, error).empty();
}

namespace {

// The system's schemas, and pgtandem's own bookkeeping on a target: the cutover's control schema
// and the record of journal entries replay and catch-up applied (kMarkerTable, created on the
// target catch-up writes to; after a cutover that is the primary, and a verify must not ask the
// other target for it).
const char* kSystemSchemas =
    "n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgtandem_control') AND n.nspname NOT LIKE 'pg\\_toast%' "
    "AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND NOT (n.nspname = 'public' AND c.relname = 'pgtandem_mirror_applied')";

std::string key_of(const Row& r) { return *r[0] + "." + *r[1]; }

}  // namespace

bool fetch_schema(PgConn& conn, pm::Schema* out, std::string* error) {
  *out = {};
  Rows tables, columns, indexes, fks, seqs, exts;
  const std::string sys = kSystemSchemas;
  if (!conn.query("SELECT n.nspname, c.relname, greatest(c.reltuples, 0)::bigint, c.relkind = 'p' FROM pg_class c "
                  "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') "
                  "AND NOT c.relispartition AND " + sys + " ORDER BY 1, 2",
                  &tables, error) ||
      !conn.query("SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), "
                  "a.attnotnull FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN "
                  "pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND "
                  "a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' AND " + sys +
                  " ORDER BY 1, 2, a.attnum",
                  &columns, error) ||
      !conn.query("SELECT n.nspname, c.relname, i.indisprimary, (SELECT string_agg(a.attname, "
                  "E'\\x1f' ORDER BY k.ord) FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS "
                  "k(attnum, ord) JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = "
                  "k.attnum WHERE k.ord <= i.indnkeyatts) FROM pg_index i JOIN pg_class c ON "
                  "c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_class "
                  "ic ON ic.oid = i.indexrelid WHERE i.indisunique AND i.indisvalid AND i.indpred "
                  "IS NULL AND i.indexprs IS NULL AND " + sys +
                  " ORDER BY 1, 2, NOT i.indisprimary, ic.relname",
                  &indexes, error) ||
      !conn.query("SELECT n.nspname, c.relname, pn.nspname, pc.relname FROM pg_constraint k JOIN "
                  "pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = "
                  "c.relnamespace JOIN pg_class pc ON pc.oid = k.confrelid JOIN pg_namespace pn "
                  "ON pn.oid = pc.relnamespace WHERE k.contype = 'f' AND " + sys,
                  &fks, error) ||
      !conn.query("SELECT schemaname, sequencename, data_type::text FROM pg_sequences WHERE "
                  "schemaname NOT IN ('pg_catalog', 'information_schema', 'pgtandem_control') ORDER BY 1, 2",
                  &seqs, error) ||
      !conn.query("SELECT extname, extversion FROM pg_extension ORDER BY 1", &exts, error)) {
    return false;
  }
  std::map<std::string, size_t> index;
  for (const auto& r : tables.rows) {
    pm::Table t;
    t.schema = *r[0];
    t.name = *r[1];
    t.estimated_rows = std::atoll(r[2]->c_str());
    t.partitioned = r[3] && *r[3] == "t";
    index[key_of(r)] = out->tables.size();
    out->tables.push_back(std::move(t));
  }
  for (const auto& r : columns.rows) {
    auto it = index.find(key_of(r));
    if (it == index.end()) continue;
    out->tables[it->second].columns.push_back({*r[2], *r[3], *r[4] == "t"});
  }
  for (const auto& r : indexes.rows) {
    auto it = index.find(key_of(r));
    if (it == index.end() || !r[3]) continue;
    std::vector<std::string> cols;
    std::string cur;
    for (char c : *r[3]) {
      if (c == '\x1f') {
        cols.push_back(cur);
        cur.clear();
      } else {
        cur += c;
      }
    }
    cols.push_back(cur);
    auto& t = out->tables[it->second];
    if (*r[2] == "t")
      t.primary_key = cols;
    else
      t.unique_keys.push_back(cols);
  }
  for (const auto& r : fks.rows) {
    auto it = index.find(key_of(r));
    if (it != index.end()) out->tables[it->second].references.push_back(*r[2] + "." + *r[3]);
  }
  for (const auto& r : seqs.rows) out->sequences.push_back({*r[0], *r[1], *r[2]});
  for (const auto& r : exts.rows) out->extensions.emplace_back(*r[0], *r[1]);
  return true;
}

bool select_tables(const pm::Schema& schema, const std::vector<std::string>& names,
                   std::vector<const pm::Table*>* out, std::string* error) {
  out->clear();
  if (names.empty()) {
    for (const auto& t : schema.tables) out->push_back(&t);
    return true;
  }
  for (const auto& n : names) {
    const pm::Table* found = nullptr;
    for (const auto& t : schema.tables) {
      const bool match = n.find('.') == std::string::npos ? t.name == n : t.qualified() == n;
      if (!match) continue;
      if (found) {
        *error = "--tables: " + n + " is ambiguous (" + found->qualified() + ", " + t.qualified() +
                 "); qualify it with its schema";
        return false;
      }
      found = &t;
    }
    if (!found) {
      *error = "--tables: no table " + n + " on the primary";
      return false;
    }
    out->push_back(found);
  }
  return true;
}

pm::TableSql table_sql(const pm::Table& t) {
  pm::TableSql s;
  s.schema = t.schema;
  s.name = t.name;
  s.columns = pm::canonical_columns(t);
  s.key = pm::choose_key(t).columns;
  for (const auto& k : s.key) s.key_types.push_back(t.column(k) ? t.column(k)->type : "text");
  return s;
}

bool open_pair(const Context& ctx, ConnPair* pair, std::string* error, bool second_primary) {
  pair->primary = PgConn::open(ctx.primary, error);
  if (!pair->primary) return false;
  pair->primary2.reset();
  if (second_primary) {
    pair->primary2 = PgConn::open(ctx.primary, error);
    if (!pair->primary2 || !pair->primary2->exec("SET lock_timeout = '30s'", error)) return false;
  }
  pair->secondary = PgConn::open(ctx.secondary, error);
  if (!pair->secondary) return false;
  // Foreign keys and triggers on the other target do not fire for the copy (parents may come
  // later; the primary's triggers already ran); needs superuser, else tables go parents first.
  std::string ignored;
  pair->replica_role = pair->secondary->exec("SET session_replication_role = replica", &ignored);
  std::string lock_error;
  if (!pair->primary->exec("SET lock_timeout = '30s'", &lock_error)) {
    *error = lock_error;
    return false;
  }
  return true;
}

bool raise_sequence(ConnPair& pair, const pm::Sequence& s, bool* raised, std::string* error) {
  *raised = false;
  const std::string reg = pm::quote_literal(pm::qualified_name(s.schema, s.name));
  Rows p, n;
  const std::string sql = "SELECT last_value FROM pg_sequences WHERE schemaname = " + pm::quote_literal(s.schema) +
                          " AND sequencename = " + pm::quote_literal(s.name);
  if (!pair.primary->query(sql, &p, error) || !pair.secondary->query(sql, &n, error)) return false;
  if (p.rows.empty() || !p.rows[0][0]) return true;  // unused on the primary
  const int64_t pv = std::atoll(p.at(0, 0).c_str());
  if (n.rows.empty()) {
    *error = "sequence " + s.qualified() + " is missing on the other target";
    return false;
  }
  if (n.rows[0][0] && std::atoll(n.at(0, 0).c_str()) >= pv) return true;
  // GREATEST on the other target itself: a mirrored nextval between the read and the setval is
  // not undone.
  Rows ignored;
  if (!pair.secondary->query("SELECT setval(" + reg + "::regclass, GREATEST(" + std::to_string(pv) +
                                 ", (SELECT last_value FROM " + pm::qualified_name(s.schema, s.name) + ")), true)",
                             &ignored, error))
    return false;
  *raised = true;
  return true;
}

std::string state_dir(const Options& opt, std::string* error) {
  // make_context() filled state_dir from [migrate] (absolute); a command that fails before its
  // config is read has nowhere to write, and says so instead of using the working directory.
  std::string dir = opt.state_dir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (dir.empty()) {
    if (error) *error = "no state directory (the config was not read)";
    return {};
  }
  for (size_t at = dir.find('/', 1);; at = dir.find('/', at + 1)) {
    const std::string part = at == std::string::npos ? dir : dir.substr(0, at);
    if (::mkdir(part.c_str(), 0700) != 0 && errno != EEXIST) {
      if (error)
        *error = "cannot create the state directory " + part + ": " + std::strerror(errno) +
                 " (set [migrate] state_dir or give --state-dir)";
      return {};
    }
    if (at == std::string::npos) break;
  }
  struct stat st{};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || ::access(dir.c_str(), W_OK) != 0) {
    if (error)
      *error = "the state directory " + dir + " is not a writable directory (set [migrate] state_dir or give --state-dir)";
    return {};
  }
  return dir;
}

bool write_file_atomic(const std::string& path, const std::string& content, std::string* error) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << content;
    f.flush();
    if (!f) {
      *error = "cannot write " + tmp;
      return false;
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    *error = "cannot rename " + tmp + " to " + path + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

bool read_whole_file(const std::string& path, std::string* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::ostringstream s;
  s << f.rdbuf();
  *out = s.str();
  return true;
}

namespace {

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

void audit(const Options& opt, const std::string& command, int exit_code, pm::Json details) {
  pm::Json line = pm::Json::object();
  line.set("time", pm::Json::string(utc_now()));
  line.set("command", pm::Json::string(command));
  line.set("config", pm::Json::string(opt.config_path));
  pm::Json tables = pm::Json::array();
  for (const auto& t : opt.tables) tables.push(pm::Json::string(t));
  line.set("tables", std::move(tables));
  line.set("exit_code", pm::Json::integer(exit_code));
  line.set("details", std::move(details));
  const std::string dir = state_dir(opt);
  if (dir.empty()) return;  // the command already said why
  const std::string path = dir + "/audit.log";
  if (FILE* f = std::fopen(path.c_str(), "a")) {
    const std::string text = line.dump() + "\n";
    std::fwrite(text.data(), 1, text.size(), f);
    std::fflush(f);
    ::fsync(fileno(f));
    std::fclose(f);
  }
}

void print_check(char mark, const std::string& text) {
  const char* m = mark == '+' ? "\u2713" : mark == '-' ? "\u2717" : "!";
  std::printf("%s %s\n", m, text.c_str());
  std::fflush(stdout);
}

}  // namespace pgtandem::proxy::migrate

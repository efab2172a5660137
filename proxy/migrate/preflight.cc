// pgtandem preflight --config FILE: the pre-migration checklist (issue 13). One line per check,
// ✓ or ✗ (! for a note that does not fail), exit 1 on any ✗.
#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "proxy/migrate/chunk_copy.h"
#include "proxy/migrate/common.h"
#include "proxy/migrate/commands.h"

namespace pgtandem::proxy::migrate {

namespace {

int64_t number(const Rows& r, size_t row = 0, size_t col = 0) { return std::atoll(r.at(row, col).c_str()); }

struct Preflight {
  Context ctx;
  int failures = 0;
  pm::Json details = pm::Json::object();
  void check(bool ok, const std::string& text) {
    print_check(ok ? '+' : '-', text);
    if (!ok) ++failures;
  }

  // Privileges: reading (and locking rows FOR SHARE / the table SHARE, which need UPDATE) on the
  // primary; writing and temporary tables on the other target.
  void privileges(PgConn& p, PgConn& n, const std::vector<const pm::Table*>& tables) {
    std::vector<std::string> missing, no_truncate;
    std::string e;
    for (const pm::Table* t : tables) {
      const std::string name = pm::quote_literal(pm::qualified_name(t->schema, t->name));
      Rows r;
      if (p.query("SELECT has_table_privilege(" + name + ", 'SELECT'), has_table_privilege(" + name +
                      ", 'UPDATE')",
                  &r, &e)) {
        if (r.at(0, 0) != "t") missing.push_back("SELECT on " + t->qualified() + " (" + ctx.primary_name + ")");
        if (r.at(0, 1) != "t")
          missing.push_back("UPDATE on " + t->qualified() + " (" + ctx.primary_name +
                            ": row and table locks of backfill and repair)");
      }
      Rows w;
      if (n.query("SELECT has_table_privilege(" + name + ", 'SELECT,INSERT,UPDATE,DELETE'), has_table_privilege(" +
                      name + ", 'TRUNCATE')",
                  &w, &e) &&
          !w.rows.empty()) {
        if (w.at(0, 0) != "t")
          missing.push_back("SELECT, INSERT, UPDATE, DELETE on " + t->qualified() + " (" + ctx.secondary_name + ")");
        if (w.at(0, 1) != "t") no_truncate.push_back(t->qualified());
      }
    }
    // The snapshot copy empties a table before it loads it; without TRUNCATE only the chunked
    // copy works (backfill --mode chunked), so this is a warning, not a failure.
    if (!no_truncate.empty()) {
      std::string list;
      for (const auto& t : no_truncate) list += (list.empty() ? "" : ", ") + t;
      print_check('!', "TRUNCATE missing on " + ctx.secondary_name + " for " + list +
                           ": the snapshot backfill needs it; backfill --mode chunked does not");
    }
    Rows temp;
    if (n.query("SELECT has_database_privilege(current_database(), 'TEMP')", &temp, &e) && temp.at(0, 0) != "t")
      missing.push_back("TEMP on the database (" + ctx.secondary_name + ": staging tables)");
    std::string list;
    for (const auto& m : missing) list += (list.empty() ? "" : "; ") + m;
    check(missing.empty(), missing.empty() ? "privileges: " + ctx.primary.user + " can read and lock on " +
                                                 ctx.primary_name + ", write on " + ctx.secondary_name
                                           : "privileges missing: " + list);
  }

  // Mirrored writes that reference rows not yet backfilled must not fail on the other target:
  // its foreign keys must not be checked for them (session_replication_role = replica for the
  // database or role, which takes a superuser to set).
  void foreign_keys(PgConn& n, const pm::Schema& new_schema) {
    size_t fks = 0;
    for (const auto& t : new_schema.tables) fks += t.references.size();
    std::string e;
    Rows su, settings;
    n.query("SELECT rolsuper FROM pg_roles WHERE rolname = current_user", &su, &e);
    n.query("SELECT coalesce(string_agg(coalesce(r.rolname, '(all roles)'), ', '), '') FROM "
            "pg_db_role_setting s LEFT JOIN pg_roles r ON r.oid = s.setrole WHERE (s.setdatabase = "
            "0 OR s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())) "
            "AND 'session_replication_role=replica' = ANY(s.setconfig)",
            &settings, &e);
    const bool superuser = su.at(0, 0) == "t";
    const std::string replica_for = settings.at(0, 0);
    if (fks == 0) {
      check(true, "foreign keys: none on " + ctx.secondary_name + ", mirrored writes cannot fail on missing parents");
    } else if (!replica_for.empty()) {
      check(true, "foreign keys: " + std::to_string(fks) + " on " + ctx.secondary_name +
                      "; session_replication_role = replica is set there for " + replica_for +
                      " (mirrored writes referencing rows not yet backfilled do not fail; reset it after the backfill)");
    } else {
      check(false, "foreign keys: " + std::to_string(fks) + " on " + ctx.secondary_name +
                       " would make mirrored writes that reference rows not yet backfilled fail; as a superuser on " +
                       ctx.secondary_name + " run ALTER DATABASE " + pm::quote_ident(ctx.secondary.dbname) +
                       " SET session_replication_role = replica (RESET it after the backfill)" +
                       (superuser ? "" : "; " + ctx.secondary.user + " is not a superuser, so backfill copies parents before children instead"));
    }
  }

  // Serial and identity columns (docs/migration.md, "Serial and identity columns"): a mirrored
  // INSERT that leaves one to its default draws from the other target's own sequence, whose order
  // is not the primary's commit order (concurrent inserts) and which never saw the primary's
  // rolled-back draws: the same row then has another value there. Named one by one, as a note.
  void serial_columns(PgConn& p, const std::vector<const pm::Table*>& tables) {
    Rows r;
    std::string e;
    if (!p.query("SELECT n.nspname, c.relname, a.attname, CASE a.attidentity WHEN 'a' THEN 'identity always' "
                 "WHEN 'd' THEN 'identity by default' ELSE 'serial' END, coalesce(pg_get_serial_sequence("
                 "format('%I.%I', n.nspname, c.relname), a.attname), '') FROM pg_attribute a JOIN pg_class c "
                 "ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_attrdef d "
                 "ON d.adrelid = a.attrelid AND d.adnum = a.attnum WHERE c.relkind IN ('r', 'p') AND "
                 "a.attnum > 0 AND NOT a.attisdropped AND (a.attidentity <> '' OR pg_get_expr(d.adbin, "
                 "d.adrelid) LIKE 'nextval(%') ORDER BY 1, 2, a.attnum",
                 &r, &e)) {
      check(false, "cannot read serial and identity columns: " + e);
      return;
    }
    size_t named = 0;
    for (const auto& row : r.rows) {
      const std::string table = *row[0] + "." + *row[1];
      const pm::Table* t = nullptr;
      for (const pm::Table* c : tables)
        if (c->qualified() == table) t = c;
      if (t == nullptr) continue;  // not one of --tables
      const auto key = pm::choose_key(*t);
      const bool in_key = std::find(key.columns.begin(), key.columns.end(), *row[2]) != key.columns.end();
      print_check('!', "serial: " + table + "." + *row[2] + " (" + *row[3] +
                           (row[4]->empty() ? "" : ", sequence " + *row[4]) + (in_key ? ", part of the key" : "") +
                           "): a mirrored INSERT that leaves it to its default takes " + ctx.secondary_name +
                           "'s own next value, which differs from the primary's under concurrent inserts and "
                           "after inserts rolled back on the primary" +
                           (in_key ? " (the same row gets another key there)" : "") +
                           ". Remedy: verify + repair (repair copies the primary's rows and sets the sequence), "
                           "or keys the application generates (uuid, or nextval read first and sent as a value)");
      ++named;
    }
    if (named == 0) check(true, "serial: no serial or identity column in the tables");
    details.set("serial_columns", pm::Json::integer(static_cast<int64_t>(named)));
  }

  void connections(PgConn& c, const std::string& name) {
    Rows r;
    std::string e;
    if (!c.query("SELECT current_setting('max_connections')::int, current_setting('superuser_reserved_connections')::int, "
                 "(SELECT count(*) FROM pg_stat_activity)",
                 &r, &e)) {
      check(false, name + ": cannot read max_connections: " + e);
      return;
    }
    const int64_t max = number(r, 0, 0), reserved = number(r, 0, 1), used = number(r, 0, 2);
    const int64_t free = max - reserved - used;
    // The backfill's --jobs connections, verify's, plus room for the mirror's (one per client
    // session that writes) and for clients coming and going: at least 10 and a quarter.
    // Backfill: two connections per job on the primary (overlapped chunks), one on the other.
    const int64_t need = 2 * ctx.opt.jobs + std::max<int64_t>(10, max / 4);
    check(free >= need, name + ": max_connections " + std::to_string(max) + ", " + std::to_string(used) +
                            " in use, " + std::to_string(reserved) + " reserved: " + std::to_string(free) +
                            " free (need " + std::to_string(need) + " for " + std::to_string(ctx.opt.jobs) +
                            " backfill jobs and the mirror's connections)");
  }
};

}  // namespace

int preflight_main(int argc, char** argv) {
  Options opt;
  std::string error;
  if (!parse_options(argc, argv, {"--config", "--user", "--dbname", "--tables", "--jobs", "--state-dir", "--admin", "--allow-cast"},
                     &opt, &error)) {
    std::fprintf(stderr, "pgtandem preflight: %s\n", error.c_str());
    return 2;
  }
  Preflight pf;
  if (!make_context(opt, "pgtandem-preflight", &pf.ctx, &error)) {
    print_check('-', error);
    return 1;
  }
  const Context& ctx = pf.ctx;
  std::string pe, ne;
  auto p = PgConn::open(ctx.primary, &pe);
  auto n = PgConn::open(ctx.secondary, &ne);
  pf.check(p != nullptr, p ? ctx.primary.label + " reachable as " + ctx.primary.user + ", PostgreSQL " + p->server_version() + " (primary)" : pe);
  pf.check(n != nullptr, n ? ctx.secondary.label + " reachable as " + ctx.secondary.user + ", PostgreSQL " + n->server_version() : ne);
  if (!p || !n) {
    audit(ctx.opt, "preflight", 1, pm::Json::object().set("failures", pm::Json::integer(pf.failures)));
    return 1;
  }
  const int pmajor = PQserverVersion(p->raw()) / 10000, nmajor = PQserverVersion(n->raw()) / 10000;
  if (pmajor != nmajor)
    print_check('!', "major versions differ (" + std::to_string(pmajor) + " -> " + std::to_string(nmajor) +
                         "): text output of some types may differ; verify compares the text");
  {
    // Chunks are key ranges compared with the same literals on both servers: text keys must sort
    // the same on both (collation), and text must mean the same bytes (encoding).
    const std::string sql =
        "SELECT pg_encoding_to_char(encoding) || ', collate ' || datcollate || ', ctype ' || datctype "
        "FROM pg_database WHERE datname = current_database()";
    Rows po, no;
    std::string ce;
    if (p->query(sql, &po, &ce) && n->query(sql, &no, &ce))
      pf.check(po.at(0, 0) == no.at(0, 0),
               po.at(0, 0) == no.at(0, 0)
                   ? "encoding and collation the same on both: " + po.at(0, 0)
                   : "encoding or collation differ: " + po.at(0, 0) + " on " + ctx.primary_name + ", " +
                         no.at(0, 0) + " on " + ctx.secondary_name +
                         " (text keys would sort differently: chunks would not match)");
    else
      pf.check(false, "cannot read the database's encoding and collation: " + ce);
  }
  pm::Schema old_schema, new_schema;
  if (!fetch_schema(*p, &old_schema, &error) || !fetch_schema(*n, &new_schema, &error)) {
    pf.check(false, "cannot read the catalog: " + error);
    return 1;
  }
  const auto diffs = pm::compare_schemas(old_schema, new_schema, opt.allowed_casts);
  pf.check(diffs.empty(), diffs.empty() ? "schemas compatible: " + std::to_string(old_schema.tables.size()) + " tables, " +
                                              std::to_string(old_schema.sequences.size()) + " sequences, " +
                                              std::to_string(old_schema.extensions.size()) + " extensions"
                                        : "schemas differ (" + std::to_string(diffs.size()) + "):");
  for (const auto& d : diffs) std::printf("    %s\n", d.c_str());
  std::vector<const pm::Table*> tables;
  if (!select_tables(old_schema, opt.tables, &tables, &error)) {
    pf.check(false, error);
    return 1;
  }
  std::vector<std::string> keyless;
  for (const pm::Table* t : tables)
    if (!pm::choose_key(*t).usable()) keyless.push_back(t->qualified());
  if (keyless.empty()) {
    pf.check(true, "keys: all " + std::to_string(tables.size()) + " tables have a primary key or a unique NOT NULL key");
  } else {
    std::string list;
    for (const auto& k : keyless) list += (list.empty() ? "" : ", ") + k;
    print_check('!', "keys: " + std::to_string(keyless.size()) + " table(s) without a usable key: " + list +
                         ". backfill and repair copy such a table whole in one transaction while it is locked "
                         "SHARE on the primary (writes to it wait for the copy); verify compares it whole (count and hash)");
  }
  pf.privileges(*p, *n, tables);
  pf.serial_columns(*p, tables);
  pf.foreign_keys(*n, new_schema);
  pf.connections(*p, ctx.primary.label);
  pf.connections(*n, ctx.secondary.label);
  MirrorBarrier barrier(ctx);
  if (!ctx.mirror_writes) {
    print_check('!', "mirror_writes is off: backfill copies without waiting for the mirror (stop writes, or turn mirroring on first)");
  } else {
    for (const auto& a : barrier.admins()) {
      Watermark w;
      std::string we;
      const bool ok = fetch_watermark(a, &w, &we);
      if (ok)
        print_check('+', "pgtandem " + a + ": mirror watermark readable (done through " + std::to_string(w.done_through) +
                             ", " + std::to_string(w.pending) + " pending)");
      else
        print_check('!', we + " (backfill and repair need every running pgtandem's watermark)");
    }
  }
  pf.details.set("failures", pm::Json::integer(pf.failures));
  pf.details.set("schema_differences", pm::Json::integer(static_cast<int64_t>(diffs.size())));
  pf.details.set("keyless_tables", pm::Json::integer(static_cast<int64_t>(keyless.size())));
  const int code = pf.failures == 0 ? 0 : 1;
  std::printf("%s\n", code == 0 ? "preflight passed" : ("preflight failed: " + std::to_string(pf.failures) + " check(s)").c_str());
  audit(ctx.opt, "preflight", code, std::move(pf.details));
  return code;
}

}  // namespace pgtandem::proxy::migrate

// The control schema on the targets (issue 14): see control_store.h and docs/cutover.md.
#include "proxy/control/control_store.h"

#include <libpq-fe.h>

#include <poll.h>

#include <cstdlib>

#include "config/pgpass.h"

namespace pgtandem::proxy {

namespace {

constexpr const char* kSchemaSql = R"SQL(
CREATE SCHEMA IF NOT EXISTS pgtandem_control;
CREATE TABLE IF NOT EXISTS pgtandem_control.epoch (
  id int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
  epoch bigint NOT NULL,
  primary_target text NOT NULL,
  phase text NOT NULL,
  coordinator text,
  started_at timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS pgtandem_control.replicas (
  id text PRIMARY KEY,
  epoch bigint,
  state text,
  heartbeat_at timestamptz,
  acked_phase text,
  acked_at timestamptz,
  pause_ms bigint);
)SQL";

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

// One libpq result, cleared on scope exit.
struct Result {
  PGresult* r = nullptr;
  explicit Result(PGresult* p) : r(p) {}
  ~Result() { PQclear(r); }
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;
  bool ok() const {
    const auto s = PQresultStatus(r);
    return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
  }
  int rows() const { return PQntuples(r); }
  std::string at(int row, int col) const {
    return PQgetisnull(r, row, col) ? std::string() : std::string(PQgetvalue(r, row, col));
  }
  int64_t num(int row, int col) const {
    const std::string s = at(row, col);
    return s.empty() ? 0 : std::strtoll(s.c_str(), nullptr, 10);
  }
};

std::string escape_literal(const std::string& v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

std::string quote_ident(const std::string& v) {
  std::string out = "\"";
  for (char c : v) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace

struct ControlStore::Conn {
  PGconn* c = nullptr;
  std::string label;
  ~Conn() {
    if (c) PQfinish(c);
  }
  bool open(const std::string& info, const std::string& name, std::string* error) {
    label = name;
    c = PQconnectdb(info.c_str());
    // CREATE ... IF NOT EXISTS notices would go to stderr: not for pgtandem's log.
    PQsetNoticeProcessor(c, [](void*, const char*) {}, nullptr);
    if (PQstatus(c) != CONNECTION_OK) {
      *error = name + ": " + PQerrorMessage(c);
      while (!error->empty() && error->back() == '\n') error->pop_back();
      return false;
    }
    return true;
  }
  bool exec(const std::string& sql, std::string* error) {
    Result r(PQexec(c, sql.c_str()));
    if (!r.ok()) {
      *error = label + ": " + PQresultErrorMessage(r.r);
      while (!error->empty() && error->back() == '\n') error->pop_back();
      return false;
    }
    return true;
  }
  std::unique_ptr<Result> query(const std::string& sql, std::string* error) {
    auto r = std::make_unique<Result>(PQexec(c, sql.c_str()));
    if (!r->ok()) {
      *error = label + ": " + PQresultErrorMessage(r->r);
      while (!error->empty() && error->back() == '\n') error->pop_back();
      return nullptr;
    }
    return r;
  }
};

ControlStore::ControlStore() = default;
ControlStore::~ControlStore() = default;

ControlStore::Conn* ControlStore::cached(size_t i, std::string* error) {
  if (cache_.size() < targets_.size()) cache_.resize(targets_.size());
  if (cache_[i] && PQstatus(cache_[i]->c) == CONNECTION_OK) return cache_[i].get();
  auto c = std::make_unique<Conn>();
  if (!c->open(conninfo(targets_[i], database_), targets_[i].name, error)) {
    cache_[i].reset();
    return nullptr;
  }
  cache_[i] = std::move(c);
  return cache_[i].get();
}

void ControlStore::drop(size_t i) {
  if (i < cache_.size()) cache_[i].reset();
}

std::unique_ptr<ControlStore> ControlStore::from_config(const config::Config& cfg, std::string* why) {
  auto store = std::unique_ptr<ControlStore>(new ControlStore());
  store->targets_ = cfg.targets;
  // The file's [cutover] first, then the environment (a Kubernetes Secret/env), then the
  // classifier's catalog user, then libpq's own default.
  store->user_ = !cfg.cutover.control_user.empty()
                     ? cfg.cutover.control_user
                     : env_or("PGTANDEM_CONTROL_USER",
                              cfg.classifier.catalog_user.empty() ? env_or("PGUSER", "")
                                                                  : cfg.classifier.catalog_user);
  store->database_ = cfg.cutover.control_database != "postgres"
                         ? cfg.cutover.control_database
                         : env_or("PGTANDEM_CONTROL_DATABASE", "postgres");
  if (store->user_.empty()) {
    *why = "no control user: set [cutover] control_user, $PGTANDEM_CONTROL_USER, [classifier] "
           "catalog_user or $PGUSER";
    return nullptr;
  }
  if (!cfg.mirror.credentials_file.empty()) {
    auto p = config::load_pgpass_file(cfg.mirror.credentials_file);
    if (p.ok()) store->pgpass_ = std::make_shared<config::Pgpass>(std::move(*p.pgpass));
  }
  return store;
}

std::string ControlStore::conninfo(const config::Target& t, const std::string& db) const {
  const std::string host = t.unix_socket_dir.empty() ? t.host : t.unix_socket_dir;
  std::string info = "host=" + escape_literal(host) + " port=" + std::to_string(t.port) +
                     " dbname=" + escape_literal(db) + " user=" + escape_literal(user_) +
                     " sslmode=" + escape_literal(t.unix_socket_dir.empty() ? t.sslmode : "disable") +
                     " connect_timeout=3 application_name='pgtandem-control'";
  if (pgpass_) {
    const std::string lookup_host = t.unix_socket_dir.empty() ? t.host : "localhost";
    if (const auto* e = pgpass_->lookup(lookup_host, t.port, db, user_)) {
      info += " password=" + escape_literal(e->password);
    }
  }
  return info;
}

bool ControlStore::ensure(std::string* error) {
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < targets_.size(); ++i) {
    Conn* c = cached(i, error);
    if (!c) return false;
    // Concurrent CREATE ... IF NOT EXISTS can still race on the catalog: serialise on a lock.
    if (!c->exec("SELECT pg_advisory_lock(7238414); " + std::string(kSchemaSql) +
                     "SELECT pg_advisory_unlock(7238414);",
                 error)) {
      drop(i);
      return false;
    }
  }
  return true;
}

std::optional<EpochRow> ControlStore::read_epoch(std::string* error) {
  std::lock_guard lock(mu_);
  std::optional<EpochRow> best;
  int answered = 0;
  for (size_t i = 0; i < targets_.size(); ++i) {
    std::string e;
    Conn* cp = cached(i, &e);
    if (!cp) {
      *error = e;
      continue;
    }
    Conn& c = *cp;
    auto r = c.query(
        "SELECT epoch, primary_target, phase, coalesce(coordinator, ''), "
        "coalesce((extract(epoch FROM started_at) * 1000)::bigint, 0) "
        "FROM pgtandem_control.epoch WHERE to_regclass('pgtandem_control.epoch') IS NOT NULL",
        &e);
    if (!r) {
      // No schema yet on this target is "no row", not an error.
      auto exists = c.query("SELECT to_regclass('pgtandem_control.epoch') IS NOT NULL", &e);
      if (exists && exists->at(0, 0) == "f") {
        ++answered;
      } else {
        *error = e;
        drop(i);
      }
      continue;
    }
    ++answered;
    if (r->rows() == 0) continue;
    EpochRow row;
    row.epoch = r->num(0, 0);
    row.primary = r->at(0, 1);
    row.phase = r->at(0, 2);
    row.coordinator = r->at(0, 3);
    row.started_ms = r->num(0, 4);
    if (!best || row.epoch > best->epoch) best = row;
  }
  if (answered > 0 && best) error->clear();
  return best;
}

// The epoch row's upsert on one target; `where` (may be empty) guards the update.
static std::string epoch_upsert_sql(const EpochRow& row, const std::string& where) {
  const std::string started =
      row.started_ms > 0 ? "to_timestamp(" + std::to_string(row.started_ms) + " / 1000.0)" : "NULL";
  return "INSERT INTO pgtandem_control.epoch AS cur (id, epoch, primary_target, phase, coordinator, "
         "started_at, updated_at) VALUES (1, " +
         std::to_string(row.epoch) + ", " + escape_literal(row.primary) + ", " +
         escape_literal(row.phase) + ", " + escape_literal(row.coordinator) + ", " + started +
         ", now()) ON CONFLICT (id) DO UPDATE SET epoch = excluded.epoch, primary_target = "
         "excluded.primary_target, phase = excluded.phase, coordinator = excluded.coordinator, "
         "started_at = excluded.started_at, updated_at = now()" +
         (where.empty() ? std::string() : " WHERE " + where) + " RETURNING 1";
}

static std::string epoch_notify_sql(const EpochRow& row) {
  return "NOTIFY pgtandem_control, " + escape_literal(std::to_string(row.epoch) + ":" + row.phase);
}

bool ControlStore::write_epoch(const EpochRow& row, std::string* error) {
  const std::string sql = epoch_upsert_sql(row, "") + "; " + epoch_notify_sql(row) + ";";
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < targets_.size(); ++i) {
    Conn* c = cached(i, error);
    if (!c) return false;
    if (!c->exec(sql, error)) {
      drop(i);
      return false;
    }
  }
  return true;
}

bool ControlStore::cas_epoch(const EpochRow& row, int64_t expect_epoch,
                             const std::vector<std::string>& expect_phases, std::string* error) {
  std::string phases;
  for (const auto& p : expect_phases) phases += (phases.empty() ? "" : ", ") + escape_literal(p);
  const std::string sql = epoch_upsert_sql(
      row, "cur.epoch = " + std::to_string(expect_epoch) + " AND cur.phase IN (" + phases + ")");
  const std::string current =
      "SELECT epoch || ' ' || phase || ' by ' || coalesce(coordinator, '?') FROM "
      "pgtandem_control.epoch";
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < targets_.size(); ++i) {
    Conn* c = cached(i, error);
    if (!c) return false;
    auto r = c->query(sql, error);
    if (!r) {
      drop(i);
      return false;
    }
    if (r->rows() == 0) {
      std::string e;
      auto now = c->query(current, &e);
      *error = targets_[i].name + ": the control row changed (now epoch " +
               (now && now->rows() > 0 ? now->at(0, 0) : std::string("?")) + ")";
      return false;
    }
    c->exec(epoch_notify_sql(row), error);
  }
  return true;
}

bool ControlStore::upsert_replica(const ReplicaRow& row, bool ack, std::string* error) {
  const std::string ack_cols = ack ? ", acked_phase = excluded.acked_phase, acked_at = now()" : "";
  const std::string sql =
      "INSERT INTO pgtandem_control.replicas (id, epoch, state, heartbeat_at, acked_phase, "
      "acked_at, pause_ms) VALUES (" +
      escape_literal(row.id) + ", " + std::to_string(row.epoch) + ", " + escape_literal(row.state) +
      ", now(), " + escape_literal(row.acked_phase) + ", " + (ack ? "now()" : "NULL") + ", " +
      std::to_string(row.pause_ms) +
      ") ON CONFLICT (id) DO UPDATE SET epoch = excluded.epoch, state = excluded.state, "
      "heartbeat_at = now(), pause_ms = excluded.pause_ms" +
      ack_cols + ";" + (ack ? " NOTIFY pgtandem_control, 'ack';" : "");
  std::lock_guard lock(mu_);
  int ok = 0;
  for (size_t i = 0; i < targets_.size(); ++i) {
    std::string e;
    Conn* c = cached(i, &e);
    if (c && c->exec(sql, &e)) {
      ++ok;
    } else {
      *error = e;
      drop(i);
    }
  }
  return ok > 0;
}

std::vector<ReplicaRow> ControlStore::live_replicas(int64_t live_ms, std::string* error) {
  std::lock_guard lock(mu_);
  std::vector<ReplicaRow> best;
  int64_t best_epoch = -1;
  for (size_t i = 0; i < targets_.size(); ++i) {
    std::string e;
    Conn* c = cached(i, &e);
    if (!c) {
      *error = e;
      continue;
    }
    auto r = c->query(
        "SELECT id, coalesce(epoch, 0), coalesce(state, ''), coalesce(acked_phase, ''), "
        "coalesce((extract(epoch FROM acked_at) * 1000)::bigint, 0), "
        "(extract(epoch FROM now() - heartbeat_at) * 1000)::bigint, coalesce(pause_ms, 0), "
        "(SELECT coalesce(max(epoch), 0) FROM pgtandem_control.epoch) "
        "FROM pgtandem_control.replicas WHERE heartbeat_at > now() - make_interval(secs => " +
            std::to_string(static_cast<double>(live_ms) / 1000.0) + ") ORDER BY id",
        &e);
    if (!r) {
      *error = e;
      drop(i);
      continue;
    }
    std::vector<ReplicaRow> rows;
    int64_t epoch = r->rows() > 0 ? r->num(0, 7) : 0;
    for (int i = 0; i < r->rows(); ++i) {
      ReplicaRow row;
      row.id = r->at(i, 0);
      row.epoch = r->num(i, 1);
      row.state = r->at(i, 2);
      row.acked_phase = r->at(i, 3);
      row.acked_ms = r->num(i, 4);
      row.heartbeat_age_ms = r->num(i, 5);
      row.pause_ms = r->num(i, 6);
      rows.push_back(std::move(row));
    }
    // The authority's view, and on a tie the larger set (a replica's heartbeat may have reached
    // only one target).
    if (epoch > best_epoch || (epoch == best_epoch && rows.size() > best.size())) {
      best_epoch = epoch;
      best = std::move(rows);
    }
  }
  return best;
}

bool ControlStore::wait_notify(int timeout_ms) {
  if (listeners_.size() < targets_.size()) listeners_.resize(targets_.size());
  std::vector<pollfd> fds;
  std::vector<size_t> which;
  for (size_t i = 0; i < targets_.size(); ++i) {
    auto& l = listeners_[i];
    if (l && PQstatus(l->c) != CONNECTION_OK) l.reset();
    if (!l) {
      auto c = std::make_unique<Conn>();
      std::string e;
      if (!c->open(conninfo(targets_[i], database_), targets_[i].name, &e) ||
          !c->exec("LISTEN pgtandem_control", &e)) {
        continue;  // the poll covers this target until it is back
      }
      l = std::move(c);
    }
    fds.push_back(pollfd{PQsocket(l->c), POLLIN, 0});
    which.push_back(i);
  }
  if (fds.empty()) {
    ::poll(nullptr, 0, timeout_ms);
    return false;
  }
  if (::poll(fds.data(), fds.size(), timeout_ms) <= 0) return false;
  bool got = false;
  for (size_t k = 0; k < fds.size(); ++k) {
    if (fds[k].revents == 0) continue;
    auto& l = listeners_[which[k]];
    if (PQconsumeInput(l->c) == 0) {
      l.reset();
      continue;
    }
    while (PGnotify* n = PQnotifies(l->c)) {
      got = true;
      PQfreemem(n);
    }
  }
  return got;
}

bool ControlStore::sync_sequences(const std::string& from, const std::string& to, int* synced,
                                  std::string* error) {
  *synced = 0;
  const config::Target* src = nullptr;
  const config::Target* dst = nullptr;
  for (const auto& t : targets_) {
    if (t.name == from) src = &t;
    if (t.name == to) dst = &t;
  }
  if (!src || !dst) {
    *error = "unknown target";
    return false;
  }
  Conn list;
  if (!list.open(conninfo(*src, database_), src->name, error)) return false;
  auto dbs = list.query(
      "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1", error);
  if (!dbs) return false;
  for (int d = 0; d < dbs->rows(); ++d) {
    const std::string db = dbs->at(d, 0);
    Conn s;
    Conn t;
    std::string e;
    if (!s.open(conninfo(*src, db), src->name, error)) return false;
    if (!t.open(conninfo(*dst, db), dst->name, &e)) continue;  // not on the target: nothing to sync
    auto seqs = s.query(
        "SELECT schemaname, sequencename, last_value FROM pg_sequences WHERE last_value IS NOT "
        "NULL",
        error);
    if (!seqs) return false;
    std::string batch;
    for (int i = 0; i < seqs->rows(); ++i) {
      const std::string name = quote_ident(seqs->at(i, 0)) + "." + quote_ident(seqs->at(i, 1));
      const std::string lit = escape_literal(name);
      // Only raise: a target already ahead (it was the primary) keeps its value.
      batch += "SELECT setval(" + lit + ", " + seqs->at(i, 2) + ") FROM pg_sequences WHERE " +
               "schemaname = " + escape_literal(seqs->at(i, 0)) + " AND sequencename = " +
               escape_literal(seqs->at(i, 1)) + " AND coalesce(last_value, 0) < " + seqs->at(i, 2) +
               ";";
      ++*synced;
    }
    if (!batch.empty() && !t.exec(batch, error)) return false;
  }
  return true;
}

}  // namespace pgtandem::proxy

// The replay engine's connections to the targets (JournalApplier::Impl, replay_applier.h): opened
// per journaled session and target, a few at a time (least recently used closed first), each
// with the session's startup parameters and state units run again, its prepared statements
// tracked, and the target's record of applied entries loaded for exactly-once.
#include "proxy/mirror/replay_applier.h"

#include <boost/asio/experimental/awaitable_operators.hpp>

namespace pgtandem::proxy {

using namespace replay_detail;  // the engine's helpers, the wire exchange, the unit scan
using namespace asio::experimental::awaitable_operators;

bool JournalApplier::Impl::prepare_targets(std::string* error) {
  if (!resolve_targets(cfg_, &endpoints_, error)) return false;
  if (!cfg_.mirror.credentials_file.empty()) {
    config::PgpassLoadResult r = config::load_pgpass_file(cfg_.mirror.credentials_file);
    if (!r.ok()) {
      *error = "cannot use credentials file " + cfg_.mirror.credentials_file;
      for (const auto& e : r.errors) *error += "; " + e.to_string();
      return false;
    }
    pgpass_ = std::move(r.pgpass);
  }
  return true;
}

std::string JournalApplier::Impl::entry_label(const JournalEntry& e) const {
  return "seq=" + std::to_string(e.seq) + " target=" + e.target + " session=" + e.session.id;
}

std::string JournalApplier::Impl::connection_key(const JournalEntry& e) {
  std::string k = e.target + '\0' + e.session.user + '\0' + e.session.database;
  for (const auto& [name, value] : e.session.params) k += '\0' + name + '=' + value;
  uint64_t h = 14695981039346656037ull;
  for (const auto& unit : e.session.state) {
    h ^= fnv1a64(unit);
    h *= 1099511628211ull;
  }
  return k + '\0' + hex16(h) + ':' + std::to_string(e.session.state.size());
}

void JournalApplier::Impl::drop(const std::string& key) {
  auto it = connections_.find(key);
  if (it == connections_.end()) return;
  close(*it->second);
  connections_.erase(it);
}

void JournalApplier::Impl::close(Connection& c) {
  if (!c.socket || !c.socket->is_open()) return;
  std::string terminate;
  protocol::encode(terminate, protocol::Terminate{});
  boost::system::error_code ignored;
  asio::write(*c.socket, asio::buffer(terminate), ignored);
  c.socket->close(ignored);
}

Exchange JournalApplier::Impl::run_exchange(Connection& c, std::string_view bytes, uint32_t want) {
  Exchange fallback;
  fallback.error = "internal error";
  return run_sync(io_, exchange(*c.socket, c.buf, bytes, want, opts_.unit_timeout), fallback);
}

const std::string* JournalApplier::Impl::journaled_parse(const JournalEntry& e, const std::string& name) {
  for (const auto& [pname, pbytes] : e.session.prepared)
    if (pname == name) return &pbytes;
  return nullptr;
}

bool JournalApplier::Impl::prepared_as(const Connection& c, const std::string& name, const std::string& parse) {
  auto known = c.statements.find(name);
  return known != c.statements.end() && known->second == parse;
}

void JournalApplier::Impl::forget_statements(Connection& c, const UnitScan& scan) {
  if (scan.may_deallocate) {
    c.statements.clear();
    c.mark_prepared = false;  // DEALLOCATE ALL / DISCARD ALL drop ours too
  }
  for (const auto& name : scan.touched) c.statements.erase(name);
}

Connection* JournalApplier::Impl::open_connection(const JournalEntry& e, const std::string& key, const TargetEndpoint& te, const config::Target& t, std::string* error) {
  if (connections_.size() >= opts_.max_connections && !connections_.empty()) {
    auto lru = connections_.begin();
    for (auto it = connections_.begin(); it != connections_.end(); ++it)
      if (it->second->last_use < lru->second->last_use) lru = it;
    close(*lru->second);
    connections_.erase(lru);
  }
  auto c = std::make_unique<Connection>();
  c->target = e.target;
  c->socket = std::make_unique<Socket>(io_);
  boost::system::error_code ec = run_sync(
      io_,
      connect_target(*c->socket, te, std::chrono::milliseconds(cfg_.limits.connect_timeout_ms)),
      boost::system::error_code(asio::error::fault));
  if (ec) {
    *error = "cannot connect to target " + t.name + " at " + te.description + ": " +
             ec.message() + " (not applied)";
    return nullptr;
  }
  LoginParams p;
  p.user = e.session.user;
  p.database = e.session.database;
  p.application_name = opts_.application_name;
  for (const auto& [name, value] : e.session.params) {
    // user and database have their own fields; replication and protocol options do not apply
    // to a replayed session.
    if (name == "user" || name == "database" || name == "replication" ||
        name.rfind("_pq_.", 0) == 0)
      continue;
    p.extra.emplace_back(name, value);
  }
  p.pgpass = pgpass_ ? &*pgpass_ : nullptr;
  p.pgpass_host = pgpass_host(t);
  p.pgpass_port = t.port;
  p.timeout = opts_.login_timeout;
  LoginResult failed_login;
  failed_login.message = "internal error";
  LoginResult login = run_sync(io_, login_backend(*c->socket, p), failed_login);
  if (!login.ok) {
    *error = "cannot log in to target " + t.name + " at " + te.description + " as \"" + p.user +
             "\" (database \"" + p.database + "\"): " + login.sqlstate + " " + login.message +
             " (not applied)";
    boost::system::error_code ignored;
    c->socket->close(ignored);
    return nullptr;
  }
  c->buf = std::move(login.leftover);
  if (opts_.exactly_once && !load_markers(*c, error)) {
    close(*c);
    return nullptr;
  }
  Connection* raw = c.get();
  connections_[key] = std::move(c);
  return raw;
}

bool JournalApplier::Impl::load_markers(Connection& c, std::string* error) {
  const std::string select = std::string("SELECT session || ' ' || seq FROM ") + kMarkerTable +
                             " WHERE seq > " + std::to_string(applied_.seq) +
                             " AND starts_with(session, " + sql_literal(journal_id_ + "/") + ")";
  std::string q;
  protocol::encode(q, protocol::Query{select});
  Exchange x = run_exchange(c, q, 1);
  if (!x.ok) {
    *error = "reading " + std::string(kMarkerTable) + ": " + x.error + " (not applied)";
    return false;
  }
  if (!x.errors.empty()) {
    std::string create;
    protocol::encode(create,
                     protocol::Query{std::string("CREATE TABLE IF NOT EXISTS ") + kMarkerTable +
                                     " (session text PRIMARY KEY, seq bigint NOT NULL, "
                                     "applied_at timestamptz NOT NULL DEFAULT now());"
                                     "GRANT ALL ON " +
                                     kMarkerTable + " TO PUBLIC"});
    Exchange cx = run_exchange(c, create, 1);
    if (!cx.ok) {
      *error = "creating " + std::string(kMarkerTable) + ": " + cx.error + " (not applied)";
      return false;
    }
    c.markers = cx.errors.empty();
    if (c.markers) {
      std::string async;
      protocol::encode(async, protocol::Query{"SET synchronous_commit = off"});
      Exchange ax = run_exchange(c, async, 1);
      if (!ax.ok) {
        *error = "SET synchronous_commit: " + ax.error + " (not applied)";
        return false;
      }
    }
    if (!c.markers && !warned_markers_) {
      warned_markers_ = true;
      report_ << "note: cannot create " << kMarkerTable << " on target " << c.target << " ("
              << printable(cx.errors.front())
              << "): what was applied is recorded in the applied-state file only\n";
    }
    return true;
  }
  c.markers = true;
  std::string async;
  protocol::encode(async, protocol::Query{"SET synchronous_commit = off"});
  Exchange ax = run_exchange(c, async, 1);
  if (!ax.ok) {
    *error = "SET synchronous_commit: " + ax.error + " (not applied)";
    return false;
  }
  for (const auto& v : x.first_values) {
    const size_t space = v.rfind(' ');
    uint64_t seq = 0;
    if (space == std::string::npos) continue;
    std::from_chars(v.data() + space + 1, v.data() + v.size(), seq);
    c.marked[v.substr(0, space)] = seq;
  }
  return true;
}

bool JournalApplier::Impl::run_state(Connection& c, const JournalEntry& e, const std::vector<UnitScan>& scans, std::vector<std::string>* notes, std::string* error) {
  for (size_t i = 0; i < e.session.state.size(); ++i) {
    Exchange x = run_exchange(c, e.session.state[i], scans[i].requests);
    if (!x.ok) {
      *error = "session state unit " + std::to_string(i + 1) + ": " + x.error + " (not applied)";
      return false;
    }
    forget_statements(c, scans[i]);
    for (const auto& err : x.errors)
      notes->push_back("session state unit " + std::to_string(i + 1) + " failed: " + err);
    if (x.status != protocol::kTxIdle) {
      std::string rollback;
      protocol::encode(rollback, protocol::Query{"ROLLBACK"});
      Exchange rb = run_exchange(c, rollback, 1);
      if (!rb.ok) {
        *error = "ROLLBACK after session state: " + rb.error;
        return false;
      }
    }
    c.state.push_back(e.session.state[i]);
  }
  return true;
}

}  // namespace pgtandem::proxy

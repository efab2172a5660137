// `pgtandem replay` and the engine automatic catch-up shares (JournalApplier): applies a journal's
// unapplied entries in commit order on pipelined connections and records what it applied.
// Beside it: the wire exchange (replay_wire.cc), the applied-state file (replay_state.cc), and
// what an entry's messages are and how they are sent (replay_units.cc, text only). Size: ~1,360
// lines, the engine read top to bottom (sessions rebuilt from journal state, the pipelined batch
// and the grouped transaction, the target's record, the report); its members share the
// connection and batch state, so splitting it further would mean a private header of the whole
// class.
#include "proxy/mirror/replay.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

#include "config/pgpass.h"
#include "protocol/framing.h"
#include "protocol/messages.h"
#include "proxy/auth/backend_login.h"
#include "proxy/mirror/journal.h"
#include "proxy/mirror/replay_state.h"
#include "proxy/mirror/replay_units.h"
#include "proxy/mirror/replay_wire.h"
#include "proxy/telemetry/log.h"
#include "proxy/net/upstream.h"

namespace pgtandem::proxy {
namespace {

using namespace replay_detail;  // the wire exchange and the unit scan (replay_wire.h, replay_units.h)

using namespace asio::experimental::awaitable_operators;
using policy::Outcome;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr size_t kReadChunk = 16 * 1024;
constexpr size_t kMaxSqlInReport = 120;
constexpr size_t kSummaryWidth = 31;  // the longest label plus one

// ------------------------------------------------------------------------------------------------
// Small helpers

uint64_t fnv1a64(std::string_view s) {
  uint64_t h = 14695981039346656037ull;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

std::string hex16(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

// Printable for a one-line report: control characters escaped, long text cut.
std::string printable(std::string_view s, size_t max = kMaxSqlInReport) {
  std::string out;
  for (char ch : s.substr(0, max)) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '\n' || c == '\r' || c == '\t') {
      out += ' ';
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  if (s.size() > max) out += "...";
  return out;
}

std::string describe(const std::vector<Outcome>& outcomes) {
  std::string out = "[";
  for (size_t i = 0; i < outcomes.size(); ++i) {
    if (i > 0) out += ", ";
    out += outcomes[i].is_error() ? "ERROR " + outcomes[i].sqlstate : outcomes[i].tag;
  }
  return out + "]";
}

// Runs `op` to completion on `io`. Nothing on these paths throws; should something (allocation)
// escape anyway, `on_exception` is returned.
template <typename T>
T run_sync(asio::io_context& io, asio::awaitable<T> op, T on_exception) {
  std::optional<T> result;
  asio::co_spawn(io, std::move(op), [&result](std::exception_ptr e, T value) {
    if (!e) result = std::move(value);
  });
  io.restart();
  io.run();
  return result ? std::move(*result) : std::move(on_exception);
}

// ------------------------------------------------------------------------------------------------
// The engine: JournalApplier (replay.h), shared by `pgtandem replay` and automatic catch-up.

struct Connection {
  std::unique_ptr<Socket> socket;
  std::string buf;                                // bytes read and not yet consumed
  std::vector<std::string> state;                 // state units run on it, in order
  std::map<std::string, std::string> statements;  // named statements we prepared -> Parse bytes
  uint64_t last_use = 0;
  std::string target;
  // Exactly-once (replay.h): the target's table of applied entries is usable on this connection,
  // and what it held above the applied-state seq when the connection opened (session -> seq).
  bool markers = false;
  std::map<std::string, uint64_t> marked;
  // With the record on the target, entries commit asynchronously (synchronous_commit = off: no
  // WAL flush per entry); before the applied-state file moves past them, one synchronous commit
  // on the connection flushes the WAL up to there (flush_targets()).
  bool unflushed = false;
  // The wrap's BEGIN and record statements are prepared on the connection (append_marked_begin):
  // parsed and planned once, not once per entry.
  bool mark_prepared = false;
};

constexpr size_t kMaxBatchEntries = 64;
constexpr size_t kMaxGroupEntries = 32;  // entries committed as one transaction (apply_group)
constexpr size_t kMaxBatchBytes = 256 * 1024;
constexpr auto kFlushEvery = std::chrono::milliseconds(200);
constexpr uint64_t kMaxPerPass = 1024;  // entries per catch-up pass

std::string sql_literal(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

// The session id's process part: "<process tag>-<n>" -> "<process tag>".
std::string process_of(const std::string& session_id) {
  const size_t dash = session_id.rfind('-');
  return dash == std::string::npos ? session_id : session_id.substr(0, dash);
}

// "ts":"2026-12-06T07:38:25.123Z" -> unix seconds; 0 if absent.
int64_t line_time(std::string_view line) {
  const size_t at = line.find("\"ts\":\"");
  if (at == std::string_view::npos || line.size() < at + 6 + 19) return 0;
  std::tm tm{};
  const std::string ts(line.substr(at + 6, 19));
  if (::strptime(ts.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) == nullptr) return 0;
  return static_cast<int64_t>(::timegm(&tm));
}

}  // namespace

class JournalApplier::Impl {
 public:
  Impl(const config::Config& cfg, std::string journal_path, ReplayOptions opts,
       std::ostream& report, ReplaySummary* summary)
      : cfg_(cfg),
        path_(std::move(journal_path)),
        opts_(std::move(opts)),
        report_(report),
        s_(*summary) {}

  ~Impl() {
    for (auto& [key, conn] : connections_) close(*conn);
    if (fd_ >= 0) ::close(fd_);
  }

  bool open(std::string* error) {
    applied_path_ = applied_state_path(path_);
    if (!read_applied(applied_path_, &applied_, error)) return false;
    s_.last_applied_seq = applied_.seq;
    matched_ = applied_.seq == 0;
    if (!opts_.dry_run && !prepare_targets(error)) return false;
    fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) {
      *error = errno_text("cannot open journal " + path_);
      return false;
    }
    return true;
  }

  uint64_t recorded_seq() const { return applied_.seq; }

  PassResult pass(const ApplyHooks* hooks) {
    PassResult r;
    std::string error;
    // A malformed line stops reading there; the entries before it are still applied.
    PassResult read;
    const bool read_ok = read_new(hooks, &read);
    // Commit order: by process (in the order they wrote to the journal), then by the number each
    // unit got when the primary's answer to its COMMIT reached pgtandem, then by file position.
    std::stable_sort(pending_.begin(), pending_.end(), [](const Pending& a, const Pending& b) {
      if (a.epoch != b.epoch) return a.epoch < b.epoch;
      if (a.e.unit.seq != b.e.unit.seq) return a.e.unit.seq < b.e.unit.seq;
      return a.e.seq < b.e.seq;
    });
    // The running process's entries wait until every unit numbered before them is settled
    // (applied live or journaled): a lower-numbered one may still be on its way to the journal.
    size_t ready = pending_.size();
    if (hooks != nullptr && hooks->done_through) {
      const uint64_t done = hooks->done_through();
      for (size_t i = 0; i < pending_.size(); ++i) {
        const Pending& p = pending_[i];
        if (p.process == hooks->process_tag && p.e.unit.seq > done) {
          ready = i;
          break;
        }
      }
    }
    size_t next = 0;
    singles_until_ = 0;
    // Catch-up returns now and then (its metrics, a stop request); the command applies it all.
    const uint64_t most = hooks != nullptr ? kMaxPerPass : UINT64_MAX;
    while (next < ready && r.failure.empty() && r.applied + r.skipped < most) {
      next = apply_batch(next, ready, &r);
    }
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(next));
    // Group commit: at the end of the command, else at most every kFlushEvery (the target's
    // record covers the rest).
    const bool flush_now = hooks == nullptr ||
                           Clock::now() - last_flush_ >= kFlushEvery;
    if (flush_now && !record(&error)) r.failure = error;
    if (!read_ok && r.failure.empty()) r.failure = read.failure;
    r.failed = !r.failure.empty();
    return r;
  }

  // The CLI: one pass over the whole journal, then the report.
  int run() {
    report_ << "pgtandem replay" << (opts_.dry_run ? " (dry run)" : "") << ": journal " << path_
            << "\n";
    std::string error;
    if (!open(&error)) {
      if (fd_ < 0 && applied_path_.empty()) applied_path_ = applied_state_path(path_);
      return finish_with_failure(error);
    }
    report_ << "applied-state " << applied_path_ << ": "
            << (applied_.seq == 0
                    ? std::string("nothing applied yet")
                    : "entries up to seq " + std::to_string(applied_.seq) + " already applied")
            << "\n";
    PassResult r = pass(nullptr);
    if (!r.failure.empty() && s_.failures == 0) fail_entry(r.failure);
    // (The entry that failed is the first pending one.)
    if (s_.failures > 0 && !pending_.empty()) s_.not_attempted += pending_.size() - 1;
    if (!partial_.empty()) {
      s_.torn_tail = true;
      report_ << "torn last line: line " << line_no_ + 1 << " (" << partial_.size()
              << " bytes, no newline) is incomplete and was not applied\n";
    }
    if (s_.failures == 0 && !matched_ && s_.already_applied > 0)
      fail_entry(mismatch_text(applied_.seq));
    return finish();
  }

  size_t pending() const { return pending_.size(); }
  uint64_t pending_bytes() const {
    uint64_t b = 0;
    for (const auto& p : pending_) b += p.bytes;
    return b;
  }
  int64_t oldest_pending_time() const {
    int64_t t = 0;
    for (const auto& p : pending_)
      if (p.ts != 0 && (t == 0 || p.ts < t)) t = p.ts;
    return t;
  }
  uint64_t read_through() const { return prev_seq_; }
  uint64_t file_offset() const { return offset_; }

 private:
  struct Pending {
    JournalEntry e;
    uint64_t fingerprint = 0;
    size_t epoch = 0;
    std::string process;
    size_t bytes = 0;
    int64_t ts = 0;
  };
  using Clock = std::chrono::steady_clock;

  // Reads the whole lines appended since the last call into pending_ (entries already applied
  // per the applied-state are counted and dropped). False on a malformed journal.
  bool read_new(const ApplyHooks* hooks, PassResult* r) {
    (void)hooks;
    char chunk[64 * 1024];
    for (;;) {
      ssize_t n = ::pread(fd_, chunk, sizeof chunk, static_cast<off_t>(offset_));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        r->failure = errno_text("cannot read journal " + path_);
        r->failed = true;
        fail_entry(r->failure);
        return false;
      }
      if (n == 0) break;
      offset_ += static_cast<uint64_t>(n);
      partial_.append(chunk, static_cast<size_t>(n));
      size_t start = 0;
      for (size_t nl = partial_.find('\n'); nl != std::string::npos;
           nl = partial_.find('\n', start)) {
        std::string_view line(partial_.data() + start, nl - start);
        start = nl + 1;
        ++line_no_;
        if (line.empty()) continue;
        if (!take_line(std::string(line), r)) {
          partial_.erase(0, start);
          return false;
        }
      }
      partial_.erase(0, start);
    }
    return true;
  }

  bool take_line(const std::string& line, PassResult* r) {
    JournalEntry entry;
    std::string error;
    auto fail = [&](const std::string& what) {
      r->failure = what;
      r->failed = true;
      fail_entry(what);
      return false;
    };
    if (!parse_journal_line(line, &entry, &error))
      return fail("line " + std::to_string(line_no_) + " is malformed: " + error);
    ++s_.entries_read;
    if (entry.seq <= prev_seq_) {
      return fail("line " + std::to_string(line_no_) + ": seq " + std::to_string(entry.seq) +
                  " does not follow seq " + std::to_string(prev_seq_));
    }
    prev_seq_ = entry.seq;
    const uint64_t fingerprint = fnv1a64(line);
    if (journal_id_.empty()) journal_id_ = hex16(fingerprint);  // the first line names the journal
    if (entry.seq <= applied_.seq) {
      if (entry.seq == applied_.seq) {
        if (fingerprint != applied_.fingerprint) return fail(mismatch_text(applied_.seq));
        matched_ = true;
      }
      ++s_.already_applied;
      return true;
    }
    if (!matched_ && s_.already_applied > 0) return fail(mismatch_text(applied_.seq));
    matched_ = true;
    Pending p;
    p.fingerprint = fingerprint;
    p.bytes = line.size() + 1;
    p.ts = line_time(line);
    p.process = process_of(entry.session.id);
    auto [it, inserted] = epochs_.emplace(p.process, epochs_.size());
    p.epoch = it->second;
    fingerprints_[entry.seq] = fingerprint;
    unapplied_.insert(entry.seq);
    p.e = std::move(entry);
    pending_.push_back(std::move(p));
    return true;
  }

  // Marks an entry done (applied, skipped as already applied, or dry-run counted).
  void settle(uint64_t seq) { unapplied_.erase(seq); }

  // The applied-state: every entry up to the last seq below the oldest one not applied.
  bool record(std::string* error) {
    if (opts_.dry_run) return true;
    uint64_t through = unapplied_.empty() ? prev_seq_ : *unapplied_.begin() - 1;
    auto it = fingerprints_.upper_bound(through);
    if (it == fingerprints_.begin()) return true;  // nothing new read below it
    --it;
    AppliedState now{it->first, it->second};
    if (now.seq <= applied_.seq) return true;
    last_flush_ = Clock::now();
    if (!flush_targets()) return true;  // the file waits; the target's record covers the entries
    fingerprints_.erase(fingerprints_.begin(), std::next(it));
    if (!write_applied(applied_path_, now, error)) {
      *error = "seq " + std::to_string(now.seq) + " was applied but could not be recorded: " +
               *error + " (entries since " + std::to_string(applied_.seq) +
               " may be applied again where the target does not record them)";
      return false;
    }
    applied_ = now;
    s_.last_applied_seq = now.seq;
    return true;
  }

  // One synchronous commit per connection that committed asynchronously since the last one: the
  // target's WAL is then flushed past every entry it applied. False if one failed (that
  // connection is closed: its entries are found by their record on the target).
  bool flush_targets() {
    bool ok = true;
    std::vector<std::string> broken;
    for (auto& [key, c] : connections_) {
      if (!c->unflushed) continue;
      std::string q;
      protocol::encode(
          q, protocol::Query{std::string("BEGIN; SET LOCAL synchronous_commit = on; INSERT INTO ") +
                             kMarkerTable + " (session, seq) VALUES (" +
                             sql_literal(journal_id_ + "/flush") +
                             ", 0) ON CONFLICT (session) DO UPDATE SET applied_at = now(); COMMIT"});
      Exchange x = run_exchange(*c, q, 1);
      if (!x.ok || !x.errors.empty() || x.status != protocol::kTxIdle) {
        ok = false;
        broken.push_back(key);
        continue;
      }
      c->unflushed = false;
    }
    for (const auto& key : broken) drop(key);
    return ok;
  }

  std::string mismatch_text(uint64_t seq) {
    return applied_path_ + " records seq " + std::to_string(seq) +
           ", which is not the entry with that seq in this journal: the journal was replaced "
           "or edited. Remove " +
           applied_path_ + " only if none of its entries were applied";
  }

  void fail_entry(const std::string& what) {
    ++s_.failures;
    report_ << "failure: " << what << "\n";
  }

  int finish_with_failure(const std::string& what) {
    fail_entry(what);
    return finish();
  }

  int finish() {
    auto row = [this](std::string_view label, const std::string& value) {
      report_ << "  " << label << ":" << std::string(kSummaryWidth - label.size(), ' ') << value
              << "\n";
    };
    report_ << "summary:\n";
    row("entries read", std::to_string(s_.entries_read));
    row(opts_.dry_run ? "to apply" : "applied", std::to_string(s_.applied));
    row("skipped (already applied)", std::to_string(s_.already_applied));
    row("divergences", std::to_string(s_.divergences));
    row("failures", std::to_string(s_.failures));
    if (s_.not_attempted > 0)
      row("not attempted (after failure)", std::to_string(s_.not_attempted));
    if (s_.uncertain > 0) row("uncertain (sent again)", std::to_string(s_.uncertain));
    if (s_.groups > 0 || s_.groups_retried > 0)
      row("grouped transactions", std::to_string(s_.groups) + " (" +
                                      std::to_string(s_.groups_retried) +
                                      " rolled back and sent one entry at a time)");
    if (s_.torn_tail) row("torn last line", "1 (not applied)");
    row("last applied seq", std::to_string(s_.last_applied_seq));
    if (s_.failures > 0) return 1;
    if (s_.divergences > 0 || s_.torn_tail) return 2;
    return 0;
  }

  bool prepare_targets(std::string* error) {
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

  std::string entry_label(const JournalEntry& e) const {
    return "seq=" + std::to_string(e.seq) + " target=" + e.target + " session=" + e.session.id;
  }

  // The connection an entry runs on: one per target, login (user, database, startup parameters)
  // and session state, shared by every journaled session with the same ones, so that entries of
  // many sessions can be pipelined on it in their order.
  static std::string connection_key(const JournalEntry& e) {
    std::string k = e.target + '\0' + e.session.user + '\0' + e.session.database;
    for (const auto& [name, value] : e.session.params) k += '\0' + name + '=' + value;
    uint64_t h = 14695981039346656037ull;
    for (const auto& unit : e.session.state) {
      h ^= fnv1a64(unit);
      h *= 1099511628211ull;
    }
    return k + '\0' + hex16(h) + ':' + std::to_string(e.session.state.size());
  }

  void drop(const std::string& key) {
    auto it = connections_.find(key);
    if (it == connections_.end()) return;
    close(*it->second);
    connections_.erase(it);
  }

  void close(Connection& c) {
    if (!c.socket || !c.socket->is_open()) return;
    std::string terminate;
    protocol::encode(terminate, protocol::Terminate{});
    boost::system::error_code ignored;
    asio::write(*c.socket, asio::buffer(terminate), ignored);
    c.socket->close(ignored);
  }

  Exchange run_exchange(Connection& c, std::string_view bytes, uint32_t want) {
    Exchange fallback;
    fallback.error = "internal error";
    return run_sync(io_, exchange(*c.socket, c.buf, bytes, want, opts_.unit_timeout), fallback);
  }

  // After a unit or state unit ran: what it did to the named statements we track.
  // The Parse the entry's session journaled for a named statement, or null.
  static const std::string* journaled_parse(const JournalEntry& e, const std::string& name) {
    for (const auto& [pname, pbytes] : e.session.prepared)
      if (pname == name) return &pbytes;
    return nullptr;
  }
  // The connection has `name` prepared from exactly this Parse.
  static bool prepared_as(const Connection& c, const std::string& name, const std::string& parse) {
    auto known = c.statements.find(name);
    return known != c.statements.end() && known->second == parse;
  }

  static void forget_statements(Connection& c, const UnitScan& scan) {
    if (scan.may_deallocate) {
      c.statements.clear();
      c.mark_prepared = false;  // DEALLOCATE ALL / DISCARD ALL drop ours too
    }
    for (const auto& name : scan.touched) c.statements.erase(name);
  }

  Connection* open_connection(const JournalEntry& e, const std::string& key,
                              const TargetEndpoint& te, const config::Target& t,
                              std::string* error) {
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

  // The target's record of applied entries (replay.h). Without the right to create it, entries
  // are recorded only in the applied-state file (the old window: one batch).
  bool load_markers(Connection& c, std::string* error) {
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

  // Runs the entry's state units on a fresh connection; false on a failure.
  bool run_state(Connection& c, const JournalEntry& e, const std::vector<UnitScan>& scans,
                 std::vector<std::string>* notes, std::string* error) {
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

  // The entry's messages are whole and of the kinds a unit may hold; the target exists.
  bool validate(const JournalEntry& e, UnitScan* scan, std::vector<UnitScan>* state_scans,
                std::string* error) {
    if (!scan_unit(e.unit.bytes, scan, error)) {
      *error = "malformed unit: " + *error + " (not applied)";
      return false;
    }
    state_scans->assign(e.session.state.size(), UnitScan{});
    for (size_t i = 0; i < e.session.state.size(); ++i) {
      if (!scan_unit(e.session.state[i], &(*state_scans)[i], error)) {
        *error = "malformed session state unit " + std::to_string(i + 1) + ": " + *error +
                 " (not applied)";
        return false;
      }
    }
    for (const auto& [name, parse] : e.session.prepared) {
      if (!check_prepared(name, parse, error)) {
        *error = "malformed entry: " + *error + " (not applied)";
        return false;
      }
    }
    if (cfg_.find_target(e.target) == nullptr) {
      *error = "no target named \"" + e.target + "\" in the config (not applied)";
      return false;
    }
    return true;
  }

  // One entry of a pipelined batch: what was sent for it and how its answers are split.
  struct Planned {
    Pending* p = nullptr;
    UnitScan scan;
    Wrap wrap = Wrap::kRecordAfter;
    bool marker = false;       // its record on the target is part of the request
    uint32_t prepare = 0;      // 1: a Close/Parse/Sync ahead of it
    uint32_t prefix = 0;       // 1: BEGIN; <record>
    uint32_t want = 0;         // the unit's own ReadyForQuery count
    uint32_t suffix = 0;       // 1: COMMIT (autocommit wrap)
    bool stripped = false;     // the unit's BEGIN request was replaced by the wrap's
    bool fused = false;        // the whole entry as one request (append_fused)
    std::vector<std::pair<std::string, std::string>> preparing;
    std::vector<std::string> notes;
  };

  // `BEGIN` and the entry's record as one request answered by one ReadyForQuery (the outcomes
  // BEGIN, INSERT 0 1, as the simple Query "BEGIN; INSERT .." gives), on statements prepared once
  // per connection: the record's INSERT .. ON CONFLICT is not parsed and planned per entry.
  static constexpr std::string_view kBegin = "pgtandem_replay_begin";
  static constexpr std::string_view kMark = "pgtandem_replay_mark";
  static constexpr std::string_view kCommit = "pgtandem_replay_commit";

  void append_marked_begin(Connection& c, const JournalEntry& e, std::string& out,
                           bool sync = true) const {
    append_group_begin(c, out);
    append_record(e, out);
    if (sync) protocol::encode(out, protocol::Sync{});
  }

  void ensure_marks_prepared(Connection& c, std::string& out) const {
    if (c.mark_prepared) return;
    static const std::string mark_sql = record_sql("$1", "$2::bigint");
    protocol::encode(out, protocol::Close{protocol::kTargetStatement, kBegin});
    protocol::encode(out, protocol::Close{protocol::kTargetStatement, kMark});
    protocol::encode(out, protocol::Close{protocol::kTargetStatement, kCommit});
    protocol::encode_parse(out, kBegin, "BEGIN", {});
    protocol::encode_parse(out, kMark, mark_sql, {});
    protocol::encode_parse(out, kCommit, "COMMIT", {});
    c.mark_prepared = true;
  }

  void append_group_begin(Connection& c, std::string& out) const {
    ensure_marks_prepared(c, out);
    protocol::encode_bind(out, "", kBegin, {}, {}, {});
    protocol::encode(out, protocol::Execute{});
  }

  // The entry's record (record_sql), without a Sync, once ensure_marks_prepared has run.
  void append_record(const JournalEntry& e, std::string& out) const {
    const std::string key = marker_key(e);
    const std::string seq = std::to_string(e.seq);
    const protocol::Value params[2] = {protocol::Value::of(key), protocol::Value::of(seq)};
    protocol::encode_bind(out, "", kMark, {}, params, {});
    protocol::encode(out, protocol::Execute{});
  }

  // A unit of a BEGIN..COMMIT or autocommit wrap whose primary answers hold no error, made of
  // extended-query messages only, as one request: `BEGIN; <record>`, its statements, (COMMIT),
  // one Sync. An error skips the rest to the Sync and leaves the transaction failed: the entry
  // rolls back as a whole, as it would with a Sync per statement, and the entries pipelined
  // after it fail on the aborted transaction without effect (apply_batch resends them).
  bool append_fused(Connection& c, const JournalEntry& e, Wrap wrap, size_t skip,
                    std::string& out) const {
    if (any_error(e.unit.primary)) return false;
    std::string body;
    if (!without_syncs(e.unit.bytes, skip, &body)) return false;
    append_marked_begin(c, e, out, /*sync=*/false);
    out += body;
    if (wrap == Wrap::kAutocommit) {
      protocol::encode_bind(out, "", kCommit, {}, {}, {});
      protocol::encode(out, protocol::Execute{});
    }
    protocol::encode(out, protocol::Sync{});
    return true;
  }

  // A fused entry's one answer split as its separate requests' would be: `BEGIN; <record>`, the
  // unit's, and an autocommit wrap's COMMIT (absent when a statement failed: the unit's answers
  // then end with the error, and the comparison with the primary's reports it).
  static void split_fused(const Planned& pl, std::vector<Outcome>* prefix,
                          std::vector<Outcome>* unit, std::vector<Outcome>* suffix) {
    const auto n = static_cast<std::ptrdiff_t>(std::min<size_t>(2, unit->size()));
    prefix->insert(prefix->end(), unit->begin(), unit->begin() + n);
    unit->erase(unit->begin(), unit->begin() + n);
    if (pl.wrap == Wrap::kAutocommit && unit->size() == pl.p->e.unit.primary.size() + 1 &&
        !unit->back().is_error() && unit->back().tag == "COMMIT") {
      suffix->push_back(std::move(unit->back()));
      unit->pop_back();
    }
  }

  std::string marker_sql(const JournalEntry& e) const {
    return record_sql(sql_literal(marker_key(e)), std::to_string(e.seq));
  }

  // One transaction for many entries (docs/design.md, "Catch-up"): `BEGIN`, then per entry its
  // record and its statements without their own BEGIN, COMMIT and Syncs, then `COMMIT` and one
  // Sync. The target commits, records and flushes once per group instead of once per entry
  // (its CPU per TPC-B entry 130 -> 75 us measured with pgbench). Grouped: entries of this
  // connection in a row whose primary answers hold no error, made of extended-query messages
  // binding statements already prepared here, changing no session state. Any failure (an
  // error, an entry a late backend committed, answers not as expected) rolls the whole group
  // back and its entries go again one at a time, where each is judged on its own.
  // True when a group was sent; *done is the index after the entries it settled.
  bool apply_group(Connection& c, const std::string& key, size_t from, size_t to, PassResult* r,
                   size_t* done) {
    struct Member {
      Pending* p;
      size_t answers;  // the record's and the statements' outcomes
      size_t first;    // the primary's outcomes compared: [first, first + answers - 1)
    };
    std::vector<Member> members;
    std::string body;
    std::string error;
    size_t i = from;
    for (; i < to && members.size() < kMaxGroupEntries && body.size() < kMaxBatchBytes; ++i) {
      Pending& p = pending_[i];
      const JournalEntry& e = p.e;
      if (connection_key(e) != key || e.unit.session_state) break;
      auto m = c.marked.find(marker_key(e));
      if (m != c.marked.end() && e.seq <= m->second) break;  // the batch path skips it
      UnitScan scan;
      std::vector<UnitScan> state_scans;
      if (!validate(e, &scan, &state_scans, &error)) break;
      if (!scan.parses_first.empty() || !scan.touched.empty() || scan.may_deallocate) break;
      bool prepared = true;
      for (const auto& name : scan.needs) {
        const std::string* parse = journaled_parse(e, name);
        prepared = prepared && parse != nullptr && prepared_as(c, name, *parse);
      }
      if (!prepared || any_error(e.unit.primary)) break;
      const Wrap wrap = wrap_for(e.unit);
      size_t lead = 0;
      size_t tail = e.unit.bytes.size();
      size_t first = 0;
      size_t statements = e.unit.primary.size();
      if (wrap == Wrap::kTransaction) {
        lead = leading_begin(e.unit.bytes);
        tail = trailing_commit(e.unit.bytes);
        if (lead == 0 || tail == std::string_view::npos || tail < lead) break;
        first = 1;
        statements -= 2;
      } else if (wrap != Wrap::kAutocommit) {
        break;
      }
      const size_t mark = body.size();
      append_record(e, body);
      if (!without_syncs(std::string_view(e.unit.bytes).substr(0, tail), lead, &body)) {
        body.resize(mark);
        break;
      }
      members.push_back({&p, statements + 1, first});
    }
    if (members.size() < 2) return false;
    std::string request;
    append_group_begin(c, request);
    request += body;
    protocol::encode_bind(request, "", kCommit, {}, {}, {});
    protocol::encode(request, protocol::Execute{});
    protocol::encode(request, protocol::Sync{});
    Exchange x = run_exchange(c, request, 1);
    if (!x.ok) {
      r->failure = entry_label(members.front().p->e) + ": " + x.error +
                   " (sent: a group of entries in one transaction, committed or not as a whole; "
                   "the target's record tells which)";
      fail_entry(r->failure);
      drop(key);
      *done = from;
      return true;
    }
    c.unflushed = true;
    // [BEGIN, (record, statements...) per member, COMMIT], the transaction committed.
    size_t expected = 2;
    for (const auto& m : members) expected += m.answers;
    bool ok = x.status == protocol::kTxIdle && x.outcomes.size() == expected;
    for (const auto& o : x.outcomes) ok = ok && !o.is_error();
    if (!ok) {
      if (x.status != protocol::kTxIdle) {
        std::string rollback;
        protocol::encode(rollback, protocol::Query{"ROLLBACK"});
        Exchange rb = run_exchange(c, rollback, 1);
        if (!rb.ok) drop(key);
      }
      ++s_.groups_retried;
      ++r->groups_retried;
      c.mark_prepared = false;  // prepared again (Close first): the group may have skipped it
      singles_until_ = from + members.size();  // one at a time: each judged on its own
      *done = from;
      return true;
    }
    size_t at = 1;
    for (const auto& m : members) {
      const JournalEntry& e = m.p->e;
      const std::vector<Outcome> got(
          x.outcomes.begin() + static_cast<std::ptrdiff_t>(at + 1),
          x.outcomes.begin() + static_cast<std::ptrdiff_t>(at + m.answers));
      const std::vector<Outcome> want(
          e.unit.primary.begin() + static_cast<std::ptrdiff_t>(m.first),
          e.unit.primary.begin() + static_cast<std::ptrdiff_t>(m.first + m.answers - 1));
      at += m.answers;
      ++s_.applied;
      ++r->applied;
      if (e.uncertain) ++s_.uncertain;
      if (got != want) {
        // Committed with the group (no error): a different row count, say. Reported as the
        // batch path would.
        ++s_.divergences;
        ++r->divergences;
        report_ << "divergence: " << entry_label(e) << ": primary=" << describe(want)
                << " target=" << describe(got) << " sql=\"" << printable(e.unit.first_sql)
                << "\"\n";
      }
      settle(e.seq);
    }
    ++s_.groups;
    ++r->groups;
    *done = from + members.size();
    return true;
  }

  // Applies pending_[from, to) from `from` on: the entries that share its connection, up to the
  // batch limits, as one pipelined request (the target runs them in order). Returns the index
  // after the last entry settled; r->failure set when one failed (it and the rest stay pending).
  size_t apply_batch(size_t from, size_t to, PassResult* r) {
    std::string error;
    const JournalEntry& first = pending_[from].e;
    if (opts_.dry_run) {
      UnitScan scan;
      std::vector<UnitScan> state_scans;
      if (!validate(first, &scan, &state_scans, &error)) {
        r->failure = entry_label(first) + ": " + error;
        fail_entry(r->failure);
        return from;
      }
      report_ << "would apply: seq=" << first.seq << " target=" << first.target
              << " session=" << first.session.id << (first.uncertain ? " uncertain" : "")
              << " sql=\"" << printable(first.unit.first_sql) << "\"\n";
      ++s_.applied;
      settle(first.seq);
      return from + 1;
    }
    const std::string key = connection_key(first);
    const config::Target* target = cfg_.find_target(first.target);
    const TargetEndpoint* te = nullptr;
    for (const auto& candidate : endpoints_)
      if (candidate.name == first.target) te = &candidate;
    auto fail_at = [&](size_t i, const std::string& what) {
      r->failure = entry_label(pending_[i].e) + ": " + what + "; replay stopped here";
      fail_entry(r->failure);
      drop(key);
      return i;
    };
    if (target == nullptr || te == nullptr)
      return fail_at(from, "no target named \"" + first.target + "\" in the config (not applied)");

    Connection* c = nullptr;
    std::vector<std::string> open_notes;
    if (auto it = connections_.find(key); it != connections_.end()) c = it->second.get();
    if (c == nullptr) {
      UnitScan scan;
      std::vector<UnitScan> state_scans;
      if (!validate(first, &scan, &state_scans, &error)) return fail_at(from, error);
      c = open_connection(first, key, *te, *target, &error);
      if (c == nullptr) return fail_at(from, error);
      if (!run_state(*c, first, state_scans, &open_notes, &error)) return fail_at(from, error);
    }
    c->last_use = ++use_clock_;
    if (c->markers && open_notes.empty() && from >= singles_until_) {
      size_t done = 0;
      if (apply_group(*c, key, from, to, r, &done)) return done;
    }

    // Plan the batch: the request and, per entry, how many answers belong to it.
    std::string request;
    std::vector<Planned> plan;
    size_t i = from;
    for (; i < to && plan.size() < kMaxBatchEntries && request.size() < kMaxBatchBytes; ++i) {
      Pending& p = pending_[i];
      const JournalEntry& e = p.e;
      if (i > from && connection_key(e) != key) break;
      Planned pl;
      pl.p = &p;
      std::vector<UnitScan> state_scans;
      if (!validate(e, &pl.scan, &state_scans, &error)) {
        if (plan.empty()) return fail_at(i, error);
        break;  // the entries before it first
      }
      if (c->markers) {
        auto m = c->marked.find(marker_key(e));
        if (m != c->marked.end() && e.seq <= m->second) {
          // The target recorded it: applied before (by catch-up or a replay that was stopped).
          ++s_.already_applied;
          ++r->skipped;
          settle(e.seq);
          pl.p = nullptr;
          plan.push_back(std::move(pl));
          continue;
        }
      }
      // (Re)prepare what the unit binds without parsing it itself, and make room for what it
      // parses first. Close of a statement that does not exist is not an error.
      std::string prep;
      for (const auto& name : pl.scan.parses_first) {
        protocol::encode(prep, protocol::Close{protocol::kTargetStatement, name});
        c->statements.erase(name);
      }
      for (const auto& name : pl.scan.needs) {
        const std::string* parse = journaled_parse(e, name);
        if (parse == nullptr) continue;  // not journaled: the target answers as it will
        if (prepared_as(*c, name, *parse)) continue;
        protocol::encode(prep, protocol::Close{protocol::kTargetStatement, name});
        prep += *parse;
        pl.preparing.emplace_back(name, *parse);
        c->statements[name] = *parse;  // expected; corrected when the answers say otherwise
      }
      if (!prep.empty()) {
        protocol::encode(prep, protocol::Sync{});
        request += prep;
        pl.prepare = 1;
      }
      // Only units that surely end outside a transaction block are pipelined with what follows
      // (BEGIN..COMMIT, plain DML): any other may leave one open, and whatever ran after it would
      // run inside it. Such a unit ends the batch, and its record follows once it is known idle.
      const Wrap shape = wrap_for(e.unit);
      const bool ends_batch = shape == Wrap::kRecordAfter;
      pl.wrap = c->markers ? shape : Wrap::kRecordAfter;
      pl.marker = c->markers;
      const bool wrapped = pl.marker && pl.wrap != Wrap::kRecordAfter;
      const size_t skip =
          wrapped && pl.wrap == Wrap::kTransaction ? leading_begin(e.unit.bytes) : 0;
      if (wrapped && append_fused(*c, e, pl.wrap, skip, request)) {
        pl.fused = true;
        pl.stripped = skip > 0;
        pl.want = 1;
      } else {
        if (wrapped) {
          append_marked_begin(*c, e, request);
          pl.prefix = 1;
        }
        request.append(e.unit.bytes, skip, std::string::npos);
        pl.want = e.unit.responses > 0 ? e.unit.responses : pl.scan.requests;
        if (skip > 0 && pl.want > 1) {
          pl.stripped = true;
          --pl.want;
        } else if (skip > 0) {
          request.insert(request.size() - (e.unit.bytes.size() - skip), e.unit.bytes, 0, skip);
        }
        if (wrapped && pl.wrap == Wrap::kAutocommit) {
          protocol::encode(request, protocol::Query{"COMMIT"});
          pl.suffix = 1;
        }
      }
      forget_statements(*c, pl.scan);
      for (const auto& [name, parse] : pl.preparing) c->statements[name] = parse;
      plan.push_back(std::move(pl));
      // A unit that changes the session's state ends the batch: the connection's state is no
      // longer the one its key names, so it is re-keyed (or closed) before anything else runs.
      // So does a fused entry that prepared statements: the entries after it that bind them may
      // then go as one transaction (apply_group).
      if (ends_batch || (e.unit.session_state && !plan.back().scan.only_prepares) ||
          (plan.back().fused && plan.back().prepare > 0)) {
        ++i;
        break;
      }
    }
    uint32_t want = 0;
    for (const auto& pl : plan)
      if (pl.p != nullptr) want += pl.prepare + pl.prefix + pl.want + pl.suffix;
    if (want == 0) return i;  // all recorded on the target already
    Exchange x = run_exchange(*c, request, want);
    if (!x.ok) {
      // Which entries of the request the target ran is unknown here: with its record on the
      // target, the next connection reads it and skips them; without, they are applied again.
      return fail_at(from, x.error + " (sent: some entries may have been applied" +
                               std::string(c->markers ? ", the target's record tells which)"
                                                      : "; the next run applies them again)"));
    }
    if (c->markers) c->unflushed = true;
    // Split the answers: each part ends with a ReadyForQuery.
    size_t ready = 0;
    size_t out_at = 0;
    auto take = [&](uint32_t parts, std::vector<Outcome>* outs, char* status) {
      for (uint32_t k = 0; k < parts && ready < x.readies.size(); ++k, ++ready) {
        const auto [end, st] = x.readies[ready];
        if (outs != nullptr)
          outs->insert(outs->end(), x.outcomes.begin() + static_cast<std::ptrdiff_t>(out_at),
                       x.outcomes.begin() + static_cast<std::ptrdiff_t>(end));
        out_at = end;
        if (status != nullptr) *status = st;
      }
    };
    bool open_txn = false;
    size_t settled_to = i;  // the index after the last entry settled
    for (size_t k = 0; k < plan.size(); ++k) {
      Planned& pl = plan[k];
      if (pl.p == nullptr) continue;
      const JournalEntry& e = pl.p->e;
      std::vector<std::string> notes = std::move(open_notes);
      open_notes.clear();
      std::vector<Outcome> prep_out, prefix_out, unit_out, suffix_out;
      char status = protocol::kTxIdle;
      take(pl.prepare, &prep_out, nullptr);
      take(pl.prefix, &prefix_out, nullptr);
      take(pl.want, &unit_out, &status);
      take(pl.suffix, &suffix_out, pl.wrap == Wrap::kAutocommit ? &status : nullptr);
      if (pl.fused) split_fused(pl, &prefix_out, &unit_out, &suffix_out);
      if (pl.fused && status != protocol::kTxIdle) {
        // It failed: the entries pipelined after it ran on its aborted transaction, without
        // effect, and their statements may not be prepared. They are sent again.
        settled_to = from + k + 1;
        c->statements.clear();
      }
      if (pl.stripped && !prefix_out.empty()) {
        // The wrap's BEGIN answered for the unit's own.
        unit_out.insert(unit_out.begin(), prefix_out.front());
        prefix_out.erase(prefix_out.begin());
      }
      if (already_recorded(prefix_out)) {
        // Another connection's backend committed this entry after this one read the records
        // (record_sql): the entry rolled back here, it is applied once.
        if (status != protocol::kTxIdle) open_txn = true;
        ++s_.already_applied;
        ++r->skipped;
        report_ << "note: " << entry_label(e)
                << " was committed by an earlier connection's backend after this run read the "
                   "target's records; not applied again\n";
        settle(e.seq);
        if (settled_to != i) break;
        continue;
      }
      for (const auto& o : prep_out) {
        if (o.is_error()) {
          notes.push_back("preparing statements failed: " + o.sqlstate);
          for (const auto& [name, parse] : pl.preparing) c->statements.erase(name);
        }
      }
      for (const auto& o : prefix_out) {
        if (!o.is_error()) continue;
        notes.push_back("recording on the target failed: " + o.sqlstate);
        c->mark_prepared = false;  // prepared again (Close first) before the next entry
      }
      for (const auto& o : suffix_out)
        if (o.is_error()) notes.push_back("recording on the target failed: " + o.sqlstate);
      if (status != protocol::kTxIdle) {
        // A fused entry's failed transaction is its error's (in unit_out), not one it left open.
        if (!pl.fused)
          notes.push_back(std::string("left a transaction open on the target (status ") + status +
                          "), rolled back");
        open_txn = true;
      }
      // The wrap's own BEGIN and the unit's (now only a warning) answer alike: the tags match.
      const std::vector<Outcome>& primary = e.unit.primary;
      if (unit_out != primary) {
        std::string d = "primary=" + describe(primary) + " target=" + describe(unit_out);
        notes.insert(notes.begin(), d);
      }
      ++s_.applied;
      ++r->applied;
      if (e.uncertain) ++s_.uncertain;
      if (!notes.empty()) {
        ++s_.divergences;
        ++r->divergences;
        report_ << "divergence: " << entry_label(e)
                << (e.uncertain ? " (uncertain: the target may have applied it before)" : "")
                << ":";
        for (size_t n = 0; n < notes.size(); ++n) report_ << (n > 0 ? ";" : "") << " " << notes[n];
        report_ << " sql=\"" << printable(e.unit.first_sql) << "\"\n";
      }
      settle(e.seq);
      if (settled_to != i) break;
    }
    if (open_txn) {
      std::string rollback;
      protocol::encode(rollback, protocol::Query{"ROLLBACK"});
      Exchange rb = run_exchange(*c, rollback, 1);
      if (!rb.ok) drop(key);
    }
    // The last unit's record, once it is known to have left no transaction open.
    if (settled_to != i) return settled_to;  // the rest was not applied: sent again
    const Planned& last = plan.back();
    if (last.p != nullptr && last.marker && last.wrap == Wrap::kRecordAfter &&
        connections_.count(key) != 0) {
      std::string q;
      protocol::encode(q, protocol::Query{marker_sql(last.p->e)});
      Exchange mx = run_exchange(*c, q, 1);
      if (!mx.ok) drop(key);
      if (mx.ok && already_recorded(mx.outcomes)) {
        // Recorded after the unit, not with it (it may leave a transaction open): an earlier
        // connection's backend recorded it meanwhile, so it ran there too. Not silent.
        ++s_.divergences;
        ++r->divergences;
        report_ << "divergence: " << entry_label(last.p->e)
                << ": the target had recorded it already (an earlier connection's backend "
                   "committed it late): it may have been applied twice; verify its tables\n";
      }
    }
    // The last unit changed the session's state: the connection now runs with it.
    if (last.p != nullptr && last.p->e.unit.session_state && !last.scan.only_prepares &&
        connections_.count(key) != 0) {
      auto node = connections_.extract(key);
      node.mapped()->state.push_back(last.p->e.unit.bytes);
      JournalEntry next_like = last.p->e;
      next_like.session.state.push_back(last.p->e.unit.bytes);
      node.key() = connection_key(next_like);
      if (connections_.count(node.key()) == 0) {
        connections_.insert(std::move(node));
      } else {
        close(*node.mapped());
      }
    }
    return i;
  }

  const config::Config& cfg_;
  std::string path_;
  ReplayOptions opts_;
  std::ostream& report_;
  ReplaySummary& s_;
  asio::io_context io_{1};
  std::vector<TargetEndpoint> endpoints_;
  std::optional<config::Pgpass> pgpass_;
  std::map<std::string, std::unique_ptr<Connection>> connections_;  // by connection_key()
  uint64_t use_clock_ = 0;
  size_t singles_until_ = 0;  // pending_ before it go one at a time (a group failed this pass)
  bool warned_markers_ = false;
  // The target's record is keyed by journal and session: "<first line's fingerprint>/<session id>"
  // (session ids are unique per pgtandem process; hand-made journals may reuse them).
  std::string journal_id_;
  std::string marker_key(const JournalEntry& e) const { return journal_id_ + "/" + e.session.id; }

  std::string applied_path_;
  AppliedState applied_;
  bool matched_ = true;
  int fd_ = -1;
  uint64_t offset_ = 0;
  std::string partial_;  // bytes of a line not yet ended by its newline
  uint64_t line_no_ = 0;
  uint64_t prev_seq_ = 0;
  std::vector<Pending> pending_;
  std::map<std::string, size_t> epochs_;          // process -> order of first appearance
  std::map<uint64_t, uint64_t> fingerprints_;     // seq -> fingerprint, above the applied-state
  std::set<uint64_t> unapplied_;                  // read, not applied yet
  Clock::time_point last_flush_ = Clock::now();
};

JournalApplier::JournalApplier(const config::Config& cfg, std::string journal_path,
                               ReplayOptions opts, std::ostream& report, ReplaySummary* summary)
    : impl_(std::make_unique<Impl>(cfg, std::move(journal_path), std::move(opts), report,
                                   summary)) {}
JournalApplier::~JournalApplier() = default;
bool JournalApplier::open(std::string* error) { return impl_->open(error); }
PassResult JournalApplier::pass(const ApplyHooks* hooks) { return impl_->pass(hooks); }
size_t JournalApplier::pending() const { return impl_->pending(); }
uint64_t JournalApplier::pending_bytes() const { return impl_->pending_bytes(); }
int64_t JournalApplier::oldest_pending_time() const { return impl_->oldest_pending_time(); }
uint64_t JournalApplier::read_through() const { return impl_->read_through(); }
uint64_t JournalApplier::file_offset() const { return impl_->file_offset(); }
uint64_t JournalApplier::recorded_seq() const { return impl_->recorded_seq(); }

namespace {

constexpr const char* kReplayUsage =
    "Usage: pgtandem replay --config FILE --journal FILE [--dry-run]\n"
    "\n"
    "Applies the mirror journal to its targets in order and reports what it did. What was\n"
    "applied is recorded in FILE.applied, so running it again never applies an entry twice.\n"
    "\n"
    "Exit status: 0 all applied as on the primary; 1 a failure stopped replay; 2 applied, with\n"
    "divergences or a torn last line; 64 usage error.\n";

}  // namespace

std::string applied_state_path(const std::string& journal_path) {
  return journal_path + ".applied";
}

int run_replay(const config::Config& cfg, const std::string& journal_path,
               const ReplayOptions& opts, std::ostream& report, ReplaySummary* summary) {
  ReplaySummary local;
  ReplaySummary* s = summary != nullptr ? summary : &local;
  *s = ReplaySummary{};
  JournalApplier::Impl replayer(cfg, journal_path, opts, report, s);
  int code = replayer.run();
  report.flush();
  return code;
}

int run_replay(const config::Config& cfg, const std::string& journal_path,
               const ReplayOptions& opts, std::ostream& report) {
  return run_replay(cfg, journal_path, opts, report, nullptr);
}

int replay_main(int argc, char** argv) {
  std::string config_path;
  std::string journal_path;
  ReplayOptions opts;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kReplayUsage, stdout);
      return 0;
    }
    if (arg == "--dry-run") {
      opts.dry_run = true;
    } else if (arg == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (arg == "--journal" && i + 1 < argc) {
      journal_path = argv[++i];
    } else {
      std::fprintf(stderr, "pgtandem replay: unexpected argument \"%s\"\n\n%s", argv[i],
                   kReplayUsage);
      return 64;
    }
  }
  if (config_path.empty() || journal_path.empty()) {
    std::fputs(kReplayUsage, stderr);
    return 64;
  }
  config::LoadResult loaded = config::load_file(config_path);
  if (!loaded.ok()) {
    for (const auto& e : loaded.errors) std::fprintf(stderr, "%s\n", e.to_string().c_str());
    return 1;
  }
  log::Level level = log::Level::kWarn;
  log::parse_level(loaded.config->log.level, &level);
  log::configure(level,
                 loaded.config->log.format == "json" ? log::Format::kJson : log::Format::kLogfmt);
  return run_replay(*loaded.config, journal_path, opts, std::cout);
}

}  // namespace pgtandem::proxy

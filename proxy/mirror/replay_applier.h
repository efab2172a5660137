// The engine behind `pgtandem replay` and automatic catch-up (JournalApplier, replay.h), declared
// for the three files that define it: replay.cc (reading the journal, the applied-state and the
// target's record, the report), replay_connections.cc (the pipelined connections to the targets,
// sessions rebuilt on them from journal state) and replay_apply.cc (an entry checked and wrapped,
// the pipelined batch and the grouped transaction). Private to proxy/mirror/replay*.cc.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
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
#include "proxy/mirror/replay.h"
#include "proxy/mirror/replay_state.h"
#include "proxy/mirror/replay_units.h"
#include "proxy/mirror/replay_wire.h"
#include "proxy/telemetry/log.h"
#include "proxy/net/upstream.h"

namespace pgtandem::proxy {
namespace replay_detail {

using policy::Outcome;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr size_t kReadChunk = 16 * 1024;
constexpr size_t kMaxSqlInReport = 120;
constexpr size_t kSummaryWidth = 31;  // the longest label plus one

// ------------------------------------------------------------------------------------------------
// Small helpers

inline uint64_t fnv1a64(std::string_view s) {
  uint64_t h = 14695981039346656037ull;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

inline std::string hex16(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

inline std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

// Printable for a one-line report: control characters escaped, long text cut.
inline std::string printable(std::string_view s, size_t max = kMaxSqlInReport) {
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

inline std::string describe(const std::vector<Outcome>& outcomes) {
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

inline std::string sql_literal(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

// The session id's process part: "<process tag>-<n>" -> "<process tag>".
inline std::string process_of(const std::string& session_id) {
  const size_t dash = session_id.rfind('-');
  return dash == std::string::npos ? session_id : session_id.substr(0, dash);
}

// "ts":"2026-12-06T07:38:25.123Z" -> unix seconds; 0 if absent.
inline int64_t line_time(std::string_view line) {
  const size_t at = line.find("\"ts\":\"");
  if (at == std::string_view::npos || line.size() < at + 6 + 19) return 0;
  std::tm tm{};
  const std::string ts(line.substr(at + 6, 19));
  if (::strptime(ts.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) == nullptr) return 0;
  return static_cast<int64_t>(::timegm(&tm));
}

}  // namespace replay_detail

class JournalApplier::Impl {
  // The names the members use from replay_detail (replay_wire.h, replay_units.h, and above).
  using Connection = replay_detail::Connection;
  using Exchange = replay_detail::Exchange;
  using UnitScan = replay_detail::UnitScan;
  using Wrap = replay_detail::Wrap;
  using Outcome = policy::Outcome;
  using AppliedState = replay_detail::AppliedState;

 public:
  Impl(const config::Config& cfg, std::string journal_path, ReplayOptions opts,
       std::ostream& report, ReplaySummary* summary)
      : cfg_(cfg),
        path_(std::move(journal_path)),
        opts_(std::move(opts)),
        report_(report),
        s_(*summary) {}

  ~Impl();

  bool open(std::string* error);

  uint64_t recorded_seq() const { return applied_.seq; }

  PassResult pass(const ApplyHooks* hooks);

  // The CLI: one pass over the whole journal, then the report.
  int run();

  size_t pending() const { return pending_.size(); }
  uint64_t pending_bytes() const;
  int64_t oldest_pending_time() const;
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
  bool read_new(const ApplyHooks* hooks, PassResult* r);

  bool take_line(const std::string& line, PassResult* r);

  // Marks an entry done (applied, skipped as already applied, or dry-run counted).
  void settle(uint64_t seq) { unapplied_.erase(seq); }

  // The applied-state: every entry up to the last seq below the oldest one not applied.
  bool record(std::string* error);

  // One synchronous commit per connection that committed asynchronously since the last one: the
  // target's WAL is then flushed past every entry it applied. False if one failed (that
  // connection is closed: its entries are found by their record on the target).
  bool flush_targets();

  std::string mismatch_text(uint64_t seq);

  void fail_entry(const std::string& what);

  int finish_with_failure(const std::string& what);

  int finish();

  bool prepare_targets(std::string* error);

  std::string entry_label(const JournalEntry& e) const;

  // The connection an entry runs on: one per target, login (user, database, startup parameters)
  // and session state, shared by every journaled session with the same ones, so that entries of
  // many sessions can be pipelined on it in their order.
  static std::string connection_key(const JournalEntry& e);

  void drop(const std::string& key);

  void close(Connection& c);

  Exchange run_exchange(Connection& c, std::string_view bytes, uint32_t want);

  // The Parse the entry's session journaled for a named statement, or null.
  static const std::string* journaled_parse(const JournalEntry& e, const std::string& name);
  // The connection has `name` prepared from exactly this Parse.
  static bool prepared_as(const Connection& c, const std::string& name, const std::string& parse);

  // After a unit or state unit ran: what it did to the named statements we track.
  static void forget_statements(Connection& c, const UnitScan& scan);

  Connection* open_connection(const JournalEntry& e, const std::string& key,
                              const TargetEndpoint& te, const config::Target& t,
                              std::string* error);

  // The target's record of applied entries (replay.h). Without the right to create it, entries
  // are recorded only in the applied-state file (the old window: one batch).
  bool load_markers(Connection& c, std::string* error);

  // Runs the entry's state units on a fresh connection; false on a failure.
  bool run_state(Connection& c, const JournalEntry& e, const std::vector<UnitScan>& scans,
                 std::vector<std::string>* notes, std::string* error);

  // The entry's messages are whole and of the kinds a unit may hold; the target exists.
  bool validate(const JournalEntry& e, UnitScan* scan, std::vector<UnitScan>* state_scans,
                std::string* error);

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
                           bool sync = true) const;

  void ensure_marks_prepared(Connection& c, std::string& out) const;

  void append_group_begin(Connection& c, std::string& out) const;

  // The entry's record (record_sql), without a Sync, once ensure_marks_prepared has run.
  void append_record(const JournalEntry& e, std::string& out) const;

  // A unit of a BEGIN..COMMIT or autocommit wrap whose primary answers hold no error, made of
  // extended-query messages only, as one request: `BEGIN; <record>`, its statements, (COMMIT),
  // one Sync. An error skips the rest to the Sync and leaves the transaction failed: the entry
  // rolls back as a whole, as it would with a Sync per statement, and the entries pipelined
  // after it fail on the aborted transaction without effect (apply_batch resends them).
  bool append_fused(Connection& c, const JournalEntry& e, Wrap wrap, size_t skip,
                    std::string& out) const;

  // A fused entry's one answer split as its separate requests' would be: `BEGIN; <record>`, the
  // unit's, and an autocommit wrap's COMMIT (absent when a statement failed: the unit's answers
  // then end with the error, and the comparison with the primary's reports it).
  static void split_fused(const Planned& pl, std::vector<Outcome>* prefix,
                          std::vector<Outcome>* unit, std::vector<Outcome>* suffix);

  std::string marker_sql(const JournalEntry& e) const;

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
                   size_t* done);

  // Applies pending_[from, to) from `from` on: the entries that share its connection, up to the
  // batch limits, as one pipelined request (the target runs them in order). Returns the index
  // after the last entry settled; r->failure set when one failed (it and the rest stay pending).
  size_t apply_batch(size_t from, size_t to, PassResult* r);

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

}  // namespace pgtandem::proxy

// Which of a session's requests must be applied on the mirror, and when.
//
// Pure policy, fed the session's protocol messages in both directions (DESIGN.md "Mirroring
// writes"). A request is what one ReadyForQuery answers: a simple Query (plus any COPY data that
// follows it), or an extended-protocol batch up to its Sync. When the primary's ReadyForQuery for
// a request arrives, the capture decides:
//   - reads are never mirrored;
//   - outside a transaction, a write or session-state request that succeeded on the primary is
//     released as a MirrorUnit at once; one that failed is dropped (the server rolled it back);
//   - inside an explicit transaction, requests are held; a COMMIT releases them all as one unit,
//     a ROLLBACK (or a failed COMMIT, whose tag is ROLLBACK) discards them.
// Statements of a transaction that failed on the primary before a ROLLBACK TO SAVEPOINT stay in
// the unit: the mirror runs the same sequence and reaches the same state. For the same reason a
// request in which anything committed ("BEGIN; ...; COMMIT; <failing statement>") is released
// whole, and once a unit has left the mirror inside a transaction (COMMIT AND CHAIN), the rest of
// that transaction is released however it ends. Named prepared statements are not transactional:
// the Parse and Close messages the primary completed in a request or transaction that is not
// released still reach the mirror, alone.
//
// Primary-only calls (pg_terminate_backend(pid) ...: Classification::primary_only) never reach the
// mirror, where they would act on another server's backends. A request making them is not
// mirrored (its Parse and Close messages aside) and is reported by take_skips(). A request cannot
// be mirrored in part (the extended protocol and a single statement cannot be split), so when it
// also writes, changes session state or controls a transaction, that is lost to the mirror; inside
// an explicit transaction, all of the transaction is then left out rather than applying it in part,
// so that the mirror never holds half of a transaction the primary committed whole.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "protocol/framing.h"
#include "policy/sql/classifier.h"
#include "policy/sql/classifier_cache.h"

namespace pgtandem::policy {

// The primary's (or mirror's) answer to one statement: its CommandComplete tag, or the SQLSTATE
// of its ErrorResponse.
struct Outcome {
  std::string tag;       // "INSERT 0 1", "COMMIT", ... ; empty for an error
  std::string sqlstate;  // empty for success
  bool operator==(const Outcome&) const = default;
  bool is_error() const { return !sqlstate.empty(); }
};

struct MirrorUnit {
  std::string bytes;          // frontend messages, whole, in the order the primary received them
  uint32_t responses = 0;     // ReadyForQuery messages the unit's requests produce
  // Where each request ends in `bytes`, when the capture saw that every request of the unit is
  // extended-protocol messages ended by its one Sync; empty otherwise (a simple Query, COPY, a unit
  // read from the journal). The mirror's batch joins such a unit without reading its messages
  // again (policy/mirror/mirror_batch.h).
  std::vector<uint32_t> sync_ends;
  std::vector<Outcome> primary;
  // Named prepared statements the unit binds (so a journal entry can carry their Parse).
  std::vector<std::string> binds;
  bool session_state = false;      // contains SET/RESET/DISCARD/PREPARE/...: part of session context
  bool transaction = false;        // an explicit transaction, BEGIN..COMMIT
  bool nondeterministic = false;   // now(), random(), nextval(), serial defaults...
  bool writes = false;             // changes data (not only session state or transaction control)
  std::string first_sql;           // for logs: the first statement text, truncated
  std::chrono::steady_clock::time_point primary_done{};  // when the primary answered
  // The request that committed it was a lone COMMIT: it wrote nothing, the writes came earlier
  // (the commit order across sessions rests on it: policy/mirror/mirror_order.h).
  bool lone_commit = false;
  // Commit order across sessions, set by the proxy: this unit's number, the number it is applied
  // after, and the last number given when its committing request was forwarded.
  uint64_t seq = 0;
  uint64_t after = 0;
  uint64_t forward_mark = 0;
};

struct CaptureStats {
  uint64_t released = 0;          // units released to the mirror
  uint64_t skipped_rollback = 0;  // transactions or autocommit writes the primary rolled back
  uint64_t skipped_read = 0;      // read requests (never mirrored)
  uint64_t nondeterministic = 0;  // released units flagged nondeterministic
  uint64_t skipped_primary_only = 0;  // requests not mirrored: they call primary-only functions
};

// A request left off the mirror because it calls primary-only functions.
struct PrimaryOnlySkip {
  std::string first_sql;  // truncated like MirrorUnit::first_sql
  // It also wrote, changed session state or controlled a transaction: that is missing on the
  // mirror, and so is the rest of the explicit transaction around it (worth a warning).
  bool lost_writes = false;
};

class WriteCapture {
 public:
  struct Options {
    ClassifierOptions classifier;
    ClassificationCache* cache = nullptr;  // the worker's; optional
    size_t max_sql_in_unit = 200;          // first_sql truncation
  };
  explicit WriteCapture(Options options);

  // A whole frontend message as it was forwarded (type byte and length included).
  void on_frontend(const protocol::Header& header, std::string_view message);
  // The messages given to on_frontend() so far are being forwarded to the primary now (call once
  // per forward, not per message). True when they close a lone COMMIT: a COMMIT (or PREPARE
  // TRANSACTION) without writes, ending an open transaction, with nothing else in flight.
  bool forwarded();
  // A backend message (body only is enough: only C, E, Z, 1, 3 and G are read).
  // `now` stamps released units. Returns true when units were released or requests skipped as
  // primary-only (take them with take() and take_skips()).
  bool on_backend(const protocol::Header& header, std::string_view body,
                  std::chrono::steady_clock::time_point now);

  std::vector<MirrorUnit> take();  // released units, in release order
  // Units the mirror is done with, given back for their buffers' capacity: the next releases fill
  // them instead of allocating (a unit is allocated on the session's thread and applied on the
  // mirror link's). Takes them all; at most kSpareUnits are kept.
  void give_back(std::vector<MirrorUnit>& units);
  static constexpr size_t kSpareUnits = 8;
  // A buffer larger than this (a COPY, a huge batch) is freed, never kept for reuse.
  static constexpr size_t kMaxKeptBytes = 64 * 1024;
  // The same into `out` (emptied first), which keeps the capacity of the vector it had.
  void take(std::vector<MirrorUnit>& out) {
    out.clear();
    out.swap(released_);
  }
  // Requests skipped as primary-only since the last call, oldest first; at most kMaxPendingSkips
  // are kept (stats().skipped_primary_only counts them all).
  std::vector<PrimaryOnlySkip> take_skips();
  static constexpr size_t kMaxPendingSkips = 64;

  bool in_transaction() const { return txn_status_ != 'I'; }
  // Requests forwarded to the primary whose ReadyForQuery has not come back yet.
  size_t outstanding() const { return inflight_.size(); }
  const CaptureStats& stats() const { return stats_; }
  const PreparedStatements& prepared() const { return prepared_; }
  // The Parse message of a named statement, as the client sent it (for journal entries).
  const std::string* parse_message(std::string_view name) const;
  // Changes whenever a named statement's Parse message does (added, replaced, closed): a caller
  // that copied one at a generation knows it is still current while the generation stays.
  uint64_t parse_generation() const { return parse_generation_; }
  // Every named statement's Parse message (name -> bytes): a primary flip prepares them all.
  const std::unordered_map<std::string, std::string>& parse_messages() const {
    return parse_messages_;
  }
  // The classification of the statement text the last on_frontend() classified (a Query's or a
  // Parse's), when `sql` is that very text (same bytes in the caller's buffer): the session's
  // routing decision reuses it instead of classifying the text again. nullptr otherwise.
  const Classification* classified(std::string_view sql) const {
    return last_sql_ != nullptr && sql.data() == last_sql_ && sql.size() == last_size_
               ? &last_classification_
               : nullptr;
  }

 private:
  // What a request does to the session's named statements, in message order.
  struct StatementOp {
    enum Kind : uint8_t { kAdd, kRemove, kClear };
    Kind kind = kAdd;
    std::string name;
    Classification classification;  // kAdd
    std::string parse;               // kAdd by a protocol Parse: the message
  };
  // A request's scalar fields: recycle() resets them all at once. Containers go in Request.
  struct RequestHead {
    uint32_t responses = 0;
    StatementKind kind = StatementKind::kRead;
    bool session_state = false;
    bool txn_control = false;
    bool nondeterministic = false;
    bool primary_only = false;          // executes a primary-only call
    bool besides_primary_only = false;  // executes something else the mirror needs
    bool commits = false;       // holds a COMMIT or PREPARE TRANSACTION
    bool sent = false;          // forwarded() saw it closed
    bool synced = false;        // an extended-protocol batch ended by its Sync
    bool sync_ignored = false;  // ... whose Sync the server ignored: COPY IN started
    bool copy_data = false;     // COPY data, done or fail messages follow its statements
    uint32_t statement_completions = 0;  // of statement_messages, by the primary
  };
  // Only containers here (recycle() empties each, keeping its capacity): scalars go in RequestHead.
  struct Request : RequestHead {
    std::string bytes;
    std::vector<std::string> binds;
    std::vector<Outcome> outcomes;
    std::vector<StatementOp> statement_ops;
    // Every Parse and Close message in order (the bytes only where the mirror needs them); the
    // primary completes them in order (statement_completions) and skips the rest of a batch
    // after an error.
    std::vector<std::string> statement_messages;
    std::string first_sql;
  };

  // Requests are handed around by pointer: a Request is six containers, and moving one from stage
  // to stage (batch being built, in flight, held in a transaction, spare) cost more than the rest
  // of the capture's bookkeeping.
  using RequestPtr = std::unique_ptr<Request>;

  // The requests in flight, oldest first: a ring whose slots are reused (std::deque allocates and
  // frees a node every other request of this size, on every session's path).
  class RequestFifo {
   public:
    bool empty() const { return size_ == 0; }
    size_t size() const { return size_; }
    Request& front() { return at(0); }
    Request& back() { return at(size_ - 1); }
    // The i-th oldest.
    Request& at(size_t i) { return *slot(i); }
    const Request& at(size_t i) const { return *slots_[(head_ + i) & (slots_.size() - 1)]; }
    void push_back(RequestPtr r) {
      if (size_ == slots_.size()) grow();
      ++size_;
      slot(size_ - 1) = std::move(r);
    }
    RequestPtr pop_front() {
      RequestPtr r = std::move(slot(0));
      head_ = (head_ + 1) & (slots_.size() - 1);
      --size_;
      return r;
    }

   private:
    RequestPtr& slot(size_t i) { return slots_[(head_ + i) & (slots_.size() - 1)]; }
    void grow();
    std::vector<RequestPtr> slots_;  // a power of two in size, or empty
    size_t head_ = 0;
    size_t size_ = 0;
  };

  // A request with default fields, with the buffers of one done with when there is one.
  RequestPtr fresh_request();
  // Keeps a request done with for its buffers' capacity: its RequestHead reset, its containers
  // emptied (kSpareRequests at most are kept).
  void recycle(RequestPtr r);
  void recycle_all(std::vector<RequestPtr>& requests);
  static constexpr size_t kSpareRequests = 16;

  Classification classify(std::string_view sql);
  const Classification* find_statement(std::string_view name) const;
  // `executes`: a Query or a Bind runs `c`; a Parse or Close only names a statement.
  void note(Request& r, const Classification& c, std::string_view sql, bool executes = true);
  void close_request(RequestPtr r);
  Request* answering();
  static void absorb(Request& into, Request&& from);
  // Takes `r` when it keeps it (a write held or released); leaves it otherwise.
  void finish_request(RequestPtr& r, char status, std::chrono::steady_clock::time_point now);
  void release(std::vector<RequestPtr>& requests, std::chrono::steady_clock::time_point now);
  // Releases, ahead of `requests`, the deferred Parse messages of the statements they bind; then
  // follows their Close/Parse/DISCARD effects on the deferred set.
  void release_deferred_parses(const std::vector<RequestPtr>& requests,
                               std::chrono::steady_clock::time_point now);
  void release_statements(const std::vector<RequestPtr>& requests,
                          std::chrono::steady_clock::time_point now);
  void skip_primary_only(Request& r, bool in_transaction);
  void end_transaction_unmirrored(std::chrono::steady_clock::time_point now);

  Options options_;
  const char* last_sql_ = nullptr;  // see classified(); reset for every frontend message
  size_t last_size_ = 0;
  Classification last_classification_;
  RequestPtr open_;               // extended-protocol batch being built (until Sync)
  bool open_has_messages_ = false;
  RequestFifo inflight_;          // closed, sent to the primary, awaiting ReadyForQuery
  std::vector<RequestPtr> txn_;    // requests of the current explicit transaction
  std::vector<RequestPtr> spare_;  // done with, kept for their buffers (recycle())
  std::vector<RequestPtr> one_;    // an autocommit request on its way to release()
  char txn_status_ = 'I';
  bool mirror_in_txn_ = false;    // a released unit left the mirror inside the current transaction
  // The current transaction holds a request mixing primary-only calls with what the mirror needs:
  // none of the transaction is mirrored.
  bool txn_primary_only_ = false;
  PreparedStatements prepared_;
  std::unordered_map<std::string, std::string> parse_messages_;  // name -> Parse bytes
  uint64_t parse_generation_ = 0;
  // Named statements prepared on the primary in a request or transaction that did not reach the
  // mirror (rolled back, or read-only), not yet prepared there: name -> Parse bytes. They are
  // prepared on the mirror lazily, just before the first released unit that binds them. Sending
  // them at once (they are not transactional) fails on the mirror when the statement refers to
  // objects the rolled-back transaction created, which the primary no longer has either
  // ("BEGIN; CREATE TABLE t ...; Parse s: INSERT INTO t ...; ROLLBACK", what a driver's prepare
  // threshold does): that was counted as a divergence and took the session off the live mirror.
  std::unordered_map<std::string, std::string> deferred_parses_;
  Classification unnamed_;        // the unnamed statement's classification
  // A unit released now, at the back of released_, with default fields and the buffers of one
  // given back when there is one. (Built in place: a MirrorUnit is a dozen fields, and moving one
  // from stage to stage cost more than filling it.)
  MirrorUnit& new_unit();
  // What give_back() keeps of a unit: its containers, emptied.
  struct UnitBuffers {
    std::string bytes;
    std::vector<Outcome> primary;
    std::vector<std::string> binds;
    std::vector<uint32_t> sync_ends;
  };
  std::vector<MirrorUnit> released_;
  std::vector<UnitBuffers> spare_units_;
  std::vector<PrimaryOnlySkip> skips_;
  bool skipped_now_ = false;  // a request was skipped as primary-only in this on_backend()
  CaptureStats stats_;
};

}  // namespace pgtandem::policy

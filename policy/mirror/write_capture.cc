#include "policy/mirror/write_capture.h"

#include <algorithm>
#include <cstdint>
#include <utility>

#include "protocol/message_types.h"
#include "protocol/messages.h"

namespace pgtandem::policy {

namespace fe = protocol::frontend;
namespace be = protocol::backend;

WriteCapture::WriteCapture(Options options) : options_(std::move(options)) {
  unnamed_.kind = StatementKind::kUnknown;
  open_ = fresh_request();
}

Classification WriteCapture::classify(std::string_view sql) {
  ClassifierOptions opts = options_.classifier;
  opts.prepared = &prepared_;
  last_classification_ = options_.cache != nullptr ? classify_cached(sql, opts, options_.cache)
                                                   : policy::classify(sql, opts);
  last_sql_ = sql.data();
  last_size_ = sql.size();
  return last_classification_;
}

void WriteCapture::note(Request& r, const Classification& c, std::string_view sql, bool executes) {
  if (executes) {
    // A PREPARE alone runs nothing: its flags are the prepared body's.
    const bool prepares = c.session == SessionOp::kPrepare && !c.multi_statement;
    if (c.primary_only && !prepares) {
      r.primary_only = true;
      r.besides_primary_only = r.besides_primary_only || c.primary_only_mixed;
    } else if (c.kind != StatementKind::kRead) {
      r.besides_primary_only = true;
    }
  }
  if (c.kind > r.kind) r.kind = c.kind;
  if (c.kind == StatementKind::kTransactionControl || c.txn != TxnControl::kNone) {
    r.txn_control = true;
  }
  if (c.txn == TxnControl::kCommit || c.txn == TxnControl::kCommitAndChain ||
      c.txn == TxnControl::kPrepareTransaction) {
    r.commits = true;
  }
  if (c.kind == StatementKind::kSessionState) r.session_state = true;
  if (c.nondeterministic || c.may_use_defaults) r.nondeterministic = true;
  if (r.first_sql.empty() && !sql.empty()) {
    r.first_sql.assign(sql.substr(0, options_.max_sql_in_unit));
  }
  switch (c.session) {
    case SessionOp::kPrepare:
      if (auto name = prepared_statement_name(sql)) {
        r.statement_ops.push_back({StatementOp::kAdd, std::move(*name), c, {}});
      }
      break;
    case SessionOp::kDeallocate:
      if (auto name = prepared_statement_name(sql)) {
        r.statement_ops.push_back({StatementOp::kRemove, std::move(*name), {}, {}});
      }
      break;
    case SessionOp::kDeallocateAll:
    case SessionOp::kDiscardAll:
      r.statement_ops.push_back({StatementOp::kClear, {}, {}, {}});
      break;
    default:
      break;
  }
}

void WriteCapture::on_frontend(const protocol::Header& header, std::string_view message) {
  const std::string_view body = message.substr(protocol::kHeaderSize);
  last_sql_ = nullptr;
  switch (header.type) {
    case fe::kQuery: {
      RequestPtr r;
      if (open_has_messages_) {
        // Extended-protocol messages without a Sync before a Query: the Query's ReadyForQuery
        // answers them too, so they belong to one request.
        r = std::move(open_);
        open_ = fresh_request();
        open_has_messages_ = false;
      } else {
        r = fresh_request();
      }
      protocol::Query q;
      Classification c;
      if (protocol::decode(body, q)) {
        c = classify(q.sql);
      }
      note(*r, c, q.sql);
      // Reads are never mirrored: only requests that may be copy their bytes.
      if (r->kind != StatementKind::kRead) r->bytes.append(message);
      r->responses = 1;
      close_request(std::move(r));
      return;
    }
    case fe::kParse: {
      open_has_messages_ = true;
      open_->bytes.append(message);
      protocol::Parse p;
      Classification c;
      if (protocol::decode(body, p)) {
        c = classify(p.query);
      }
      // A Parse of a write must reach the mirror (its Binds will); a Parse of a read needs not.
      if (c.kind != StatementKind::kRead) {
        Classification as_request = c;
        // Preparing is not executing: the request is session state unless a Bind executes it.
        as_request.kind = StatementKind::kSessionState;
        as_request.txn = TxnControl::kNone;  // preparing BEGIN starts no transaction
        as_request.nondeterministic = false;
        as_request.may_use_defaults = false;
        note(*open_, as_request, p.query, false);
      }
      const bool mirror_needs = !p.name.empty() && c.kind != StatementKind::kRead;
      open_->statement_messages.emplace_back(mirror_needs ? std::string(message) : std::string());
      if (p.name.empty()) {
        unnamed_ = c;
      } else {
        open_->statement_ops.push_back(
            {StatementOp::kAdd, std::string(p.name), c, std::string(message)});
      }
      return;
    }
    case fe::kBind: {
      open_has_messages_ = true;
      open_->bytes.append(message);
      // Only the statement's name: the parameters are the mirror's bytes, never read here (a
      // Bind the server finds malformed fails there, and what it fails is not mirrored).
      std::string_view portal;
      std::string_view statement;
      Classification c;  // kUnknown unless we know the statement
      if (protocol::decode_bind_names(body, &portal, &statement)) {
        if (statement.empty()) {
          c = unnamed_;
        } else if (const Classification* found = find_statement(statement)) {
          c = *found;
        }
        if (!statement.empty() && c.kind != StatementKind::kRead) {
          open_->binds.emplace_back(statement);
        }
        // A skipped request is logged: name it by its statement's text.
        const std::string* parse = c.primary_only && open_->first_sql.empty() && !statement.empty()
                                       ? parse_message(statement)
                                       : nullptr;
        protocol::Parse p;
        if (parse != nullptr &&
            protocol::decode(std::string_view(*parse).substr(protocol::kHeaderSize), p)) {
          open_->first_sql.assign(p.query.substr(0, options_.max_sql_in_unit));
        }
      }
      note(*open_, c, {});
      return;
    }
    case fe::kClose: {
      open_has_messages_ = true;
      open_->bytes.append(message);
      protocol::Close cl;
      const bool statement =
          protocol::decode(body, cl) && cl.target == protocol::kTargetStatement && !cl.name.empty();
      open_->statement_messages.emplace_back(statement ? std::string(message) : std::string());
      if (statement) {
        open_->statement_ops.push_back({StatementOp::kRemove, std::string(cl.name), {}, {}});
        // Closing must reach the mirror too, or a later Parse of the same name fails there.
        Classification state;
        state.kind = StatementKind::kSessionState;
        note(*open_, state, {}, false);
      }
      return;
    }
    case fe::kDescribe:
    case fe::kExecute:
    case fe::kFlush:
      open_has_messages_ = true;
      open_->bytes.append(message);
      return;
    case fe::kSync:
      open_->bytes.append(message);
      open_->responses = 1;
      open_->synced = true;
      close_request(std::move(open_));
      open_ = fresh_request();
      open_has_messages_ = false;
      return;
    case fe::kFunctionCall: {
      RequestPtr r = fresh_request();
      r->bytes.append(message);
      r->kind = StatementKind::kUnknown;  // a fast-path call can do anything
      r->responses = 1;
      protocol::FunctionCall call;
      if (protocol::decode(body, call) && is_primary_only_function_oid(call.function_oid)) {
        r->primary_only = true;
        r->first_sql = "fast-path call of function " + std::to_string(call.function_oid);
      }
      close_request(std::move(r));
      return;
    }
    case fe::kCopyData:
    case fe::kCopyDone:
    case fe::kCopyFail:
      // COPY data follows the Query (or Execute) that started the COPY.
      if (open_has_messages_) {
        open_->bytes.append(message);
        open_->copy_data = true;
      } else if (!inflight_.empty()) {
        Request& r = inflight_.back();
        if (r.kind != StatementKind::kRead) r.bytes.append(message);
        r.copy_data = true;
      }
      return;
    default:
      return;  // Terminate, stray password messages: nothing to mirror
  }
}

const Classification* WriteCapture::find_statement(std::string_view name) const {
  // Parsed (or closed) in the batch being built, or in one still waiting for its ReadyForQuery,
  // or known. A statement closed since is unknown: nullptr.
  auto search = [&](const Request& r, bool& decided) -> const Classification* {
    for (auto op = r.statement_ops.rbegin(); op != r.statement_ops.rend(); ++op) {
      if (op->kind == StatementOp::kClear || op->name == name) {
        decided = true;
        return op->kind == StatementOp::kAdd ? &op->classification : nullptr;
      }
    }
    return nullptr;
  };
  bool decided = false;
  const Classification* c = search(*open_, decided);
  for (size_t i = inflight_.size(); !decided && i > 0; --i) c = search(inflight_.at(i - 1), decided);
  return decided ? c : prepared_.find(name);
}

void WriteCapture::close_request(RequestPtr r) { inflight_.push_back(std::move(r)); }

bool WriteCapture::forwarded() {
  // Requests closed since the last forward are the unsent ones at the back.
  size_t fresh = 0;
  for (size_t i = inflight_.size(); i > 0 && !inflight_.at(i - 1).sent; --i) {
    inflight_.at(i - 1).sent = true;
    ++fresh;
  }
  if (fresh != 1 || inflight_.size() != 1 || open_has_messages_ || txn_status_ == 'I') return false;
  const Request& r = inflight_.back();
  return r.commits && r.kind < StatementKind::kWrite;
}

WriteCapture::Request* WriteCapture::answering() {
  // The server answers requests in order. With nothing sent up to a Sync waiting, the answer is
  // to the batch being built: the client flushed before its Sync.
  if (!inflight_.empty()) return &inflight_.front();
  return open_has_messages_ ? open_.get() : nullptr;
}

void WriteCapture::absorb(Request& into, Request&& from) {
  into.bytes += from.bytes;
  if (from.kind > into.kind) into.kind = from.kind;
  into.session_state |= from.session_state;
  into.txn_control |= from.txn_control;
  into.commits |= from.commits;
  into.nondeterministic |= from.nondeterministic;
  into.primary_only |= from.primary_only;
  into.besides_primary_only |= from.besides_primary_only;
  for (auto& b : from.binds) into.binds.push_back(std::move(b));
  for (auto& o : from.outcomes) into.outcomes.push_back(std::move(o));
  for (auto& op : from.statement_ops) into.statement_ops.push_back(std::move(op));
  for (auto& m : from.statement_messages) into.statement_messages.push_back(std::move(m));
  into.statement_completions += from.statement_completions;
  into.copy_data |= from.copy_data;
  if (into.first_sql.empty()) into.first_sql = std::move(from.first_sql);
}

bool WriteCapture::on_backend(const protocol::Header& header, std::string_view body,
                              std::chrono::steady_clock::time_point now) {
  switch (header.type) {
    case be::kCommandComplete: {
      protocol::CommandComplete cc;
      Request* r = answering();
      if (r != nullptr && protocol::decode(body, cc)) {
        r->outcomes.emplace_back().tag.assign(cc.tag);  // (built in place: no temporary to move)
      }
      return false;
    }
    case be::kErrorResponse: {
      // An error too large to be seen whole (body empty) still counts as an error.
      protocol::ErrorResponse e;
      if (Request* r = answering()) {
        std::string_view code = protocol::decode(body, e) ? e.sqlstate() : std::string_view{};
        r->outcomes.emplace_back().sqlstate.assign(code.empty() ? "XX000" : code);
      }
      return false;
    }
    case be::kParseComplete:
    case be::kCloseComplete:
      if (Request* r = answering()) ++r->statement_completions;
      return false;
    case be::kCopyInResponse:
      // During COPY IN the server ignores Sync: libpq sends one right after the Execute of an
      // extended-protocol COPY and another after CopyDone, and one ReadyForQuery answers both.
      if (!inflight_.empty() && inflight_.front().synced) inflight_.front().sync_ignored = true;
      return false;
    case be::kReadyForQuery: {
      protocol::ReadyForQuery z;
      if (!protocol::decode(body, z)) return false;
      if (inflight_.empty()) {
        txn_status_ = z.status;
        return false;
      }
      RequestPtr r = inflight_.pop_front();
      if (r->sync_ignored && !inflight_.empty()) {
        RequestPtr next = inflight_.pop_front();
        absorb(*r, std::move(*next));
        recycle(std::move(next));
      }
      skipped_now_ = false;
      finish_request(r, z.status, now);
      if (r) recycle(std::move(r));  // a read: not kept by finish_request
      txn_status_ = z.status;
      return !released_.empty() || skipped_now_;
    }
    default:
      return false;
  }
}

namespace {

bool has_error(const std::vector<Outcome>& outcomes) {
  for (const auto& o : outcomes)
    if (o.is_error()) return true;
  return false;
}

// Whether a transaction committed among these statements: COMMIT (also COMMIT AND CHAIN, or a
// COMMIT followed by more statements in one simple Query), or PREPARE TRANSACTION. The server
// answers ROLLBACK to a COMMIT of a failed transaction.
bool commits(const std::vector<Outcome>& outcomes) {
  for (const auto& o : outcomes) {
    if (o.tag == "COMMIT" || o.tag == "PREPARE TRANSACTION") return true;
  }
  return false;
}

}  // namespace

void WriteCapture::finish_request(RequestPtr& request, char status,
                                  std::chrono::steady_clock::time_point now) {
  Request& r = *request;
  // The session's named statements follow what the primary was sent, in message order; a Parse
  // the primary rejected leaves a name the server does not know, which only makes a later Bind
  // fail there too.
  if (!r.statement_ops.empty()) ++parse_generation_;
  for (auto& op : r.statement_ops) {
    switch (op.kind) {
      case StatementOp::kAdd:
        prepared_.add(op.name, op.classification);
        if (op.parse.empty()) {
          parse_messages_.erase(op.name);
        } else {
          parse_messages_[op.name] = std::move(op.parse);
        }
        break;
      case StatementOp::kRemove:
        prepared_.remove(op.name);
        parse_messages_.erase(op.name);
        break;
      case StatementOp::kClear:
        prepared_.clear();
        parse_messages_.clear();
        break;
    }
  }

  const bool was_in_txn = txn_status_ != 'I';
  const bool now_in_txn = status != 'I';
  const bool primary_only = r.primary_only;
  if (primary_only) skip_primary_only(r, was_in_txn || now_in_txn);
  const bool mirrorable = r.kind != StatementKind::kRead;
  if (!mirrorable) {
    if (!primary_only) ++stats_.skipped_read;
    if (was_in_txn && !now_in_txn) {
      // A read ended the transaction (say, an implicit rollback): decide on what was held.
      if (txn_primary_only_) {
        end_transaction_unmirrored(now);
      } else {
        if (!txn_.empty()) ++stats_.skipped_rollback;
        release_statements(txn_, now);
      }
      recycle_all(txn_);
      mirror_in_txn_ = false;
      txn_primary_only_ = false;
    }
    return;
  }
  if (!was_in_txn && !now_in_txn) {
    // Autocommit (or whole transactions inside one request): applied unless nothing in it
    // committed. The mirror runs the same statements and fails or rolls back where the primary did.
    const bool ended_in_rollback =
        r.txn_control && !r.outcomes.empty() && r.outcomes.back().tag == "ROLLBACK";
    const bool rolled_back = !commits(r.outcomes) && (has_error(r.outcomes) || ended_in_rollback);
    one_.clear();
    one_.push_back(std::move(request));
    if (rolled_back) {
      ++stats_.skipped_rollback;
      release_statements(one_, now);
    } else {
      release(one_, now);
    }
    recycle_all(one_);
    return;
  }
  if (now_in_txn) {
    // BEGIN, or a statement inside the transaction (failed ones too: the mirror must reach the
    // same state through the same ROLLBACK TO SAVEPOINT).
    const bool committed_midway = r.txn_control && commits(r.outcomes) && !txn_primary_only_;
    txn_.push_back(std::move(request));
    if (committed_midway) {
      // COMMIT AND CHAIN, or "COMMIT; BEGIN; ..." in one request: what came before is committed.
      release(txn_, now);
      recycle_all(txn_);
      // The mirror is now inside the transaction that request opened: however it ends on the
      // primary, the rest must reach the mirror to end it there too.
      mirror_in_txn_ = true;
    }
    return;
  }
  // The transaction ended in this request.
  const bool committed = commits(r.outcomes) || mirror_in_txn_;
  txn_.push_back(std::move(request));
  if (txn_primary_only_) {
    end_transaction_unmirrored(now);
  } else if (committed) {
    release(txn_, now);
  } else {
    ++stats_.skipped_rollback;
    release_statements(txn_, now);
  }
  recycle_all(txn_);
  mirror_in_txn_ = false;
  txn_primary_only_ = false;
}

void WriteCapture::skip_primary_only(Request& r, bool in_transaction) {
  ++stats_.skipped_primary_only;
  skipped_now_ = true;
  const bool lost = r.besides_primary_only;
  // Applying the rest of the transaction without this request would leave the mirror with part of
  // what the primary committed whole; leaving all of it out keeps the mirror at a state the
  // primary had (and the loss is reported, for verify/repair).
  if (lost && in_transaction) txn_primary_only_ = true;
  if (skips_.size() < kMaxPendingSkips) skips_.push_back({r.first_sql, lost});
  // What still reaches the mirror of it: the named statements it prepared or closed.
  Request kept;
  const size_t done = std::min<size_t>(r.statement_completions, r.statement_messages.size());
  for (size_t i = 0; i < done; ++i) kept.bytes += r.statement_messages[i];
  if (kept.bytes.empty()) {
    kept.kind = StatementKind::kRead;
  } else {
    protocol::encode(kept.bytes, protocol::Sync{});
    kept.responses = 1;
    kept.kind = StatementKind::kSessionState;
    kept.session_state = true;
  }
  kept.statement_messages = std::move(r.statement_messages);
  kept.statement_completions = r.statement_completions;
  kept.first_sql = std::move(r.first_sql);
  r = std::move(kept);  // (rare: primary-only calls)
}

// A transaction holding a request that mixes primary-only calls with writes ended: only its
// completed Parse and Close messages reach the mirror. If a unit already opened the transaction
// there (COMMIT AND CHAIN), it is rolled back: what followed it on the primary never arrives.
void WriteCapture::end_transaction_unmirrored(std::chrono::steady_clock::time_point now) {
  release_statements(txn_, now);
  if (!mirror_in_txn_) return;
  RequestPtr rollback = fresh_request();
  protocol::encode(rollback->bytes, protocol::Query{"ROLLBACK"});
  rollback->responses = 1;
  rollback->kind = StatementKind::kTransactionControl;
  rollback->txn_control = true;
  rollback->outcomes.push_back(Outcome{"ROLLBACK", {}});
  rollback->first_sql = "ROLLBACK";
  std::vector<RequestPtr> one;
  one.push_back(std::move(rollback));
  release(one, now);
  recycle_all(one);
}

void WriteCapture::release_deferred_parses(const std::vector<RequestPtr>& requests,
                                           std::chrono::steady_clock::time_point now) {
  MirrorUnit u;
  for (const auto& r : requests) {
    for (const auto& name : r->binds) {
      auto it = deferred_parses_.find(name);
      if (it == deferred_parses_.end()) continue;
      u.bytes += it->second;
      deferred_parses_.erase(it);
    }
  }
  // What the released requests do to named statements reaches the mirror with them: a name they
  // close or prepare again is no longer a deferred one.
  for (const auto& r : requests) {
    for (const auto& op : r->statement_ops) {
      if (op.kind == StatementOp::kClear) {
        deferred_parses_.clear();
      } else {
        deferred_parses_.erase(op.name);
      }
    }
  }
  if (u.bytes.empty()) return;
  protocol::encode(u.bytes, protocol::Sync{});
  u.responses = 1;
  u.session_state = true;
  u.first_sql = "(prepare deferred statements)";
  u.primary_done = now;
  ++stats_.released;
  released_.push_back(std::move(u));
}

void WriteCapture::release(std::vector<RequestPtr>& requests,
                           std::chrono::steady_clock::time_point now) {
  if (requests.empty()) return;
  if (!deferred_parses_.empty()) release_deferred_parses(requests, now);
  MirrorUnit u = fresh_unit();
  size_t total = 0;
  size_t outcomes = 0;
  size_t binds = 0;
  // Every request extended-protocol messages ended by their one Sync: where each ends is recorded.
  bool synced = true;
  for (const auto& r : requests) {
    total += r->bytes.size();
    outcomes += r->outcomes.size();
    binds += r->binds.size();
    synced = synced && r->synced && !r->sync_ignored && !r->copy_data;
  }
  u.bytes.reserve(total);
  u.primary.reserve(outcomes);
  u.binds.reserve(binds);
  if (synced && total <= UINT32_MAX) {
    u.sync_ends.resize(requests.size());
    size_t at = 0;
    for (size_t i = 0; i < requests.size(); ++i) {
      at += requests[i]->bytes.size();
      u.sync_ends[i] = static_cast<uint32_t>(at);
    }
  }
  bool txn_control = false;
  bool state = false;
  bool writes = false;
  for (auto& request : requests) {
    Request& r = *request;
    u.bytes += r.bytes;
    u.responses += r.responses;
    for (auto& o : r.outcomes) u.primary.push_back(std::move(o));
    for (auto& b : r.binds) u.binds.push_back(std::move(b));
    state |= r.session_state && r.kind == StatementKind::kSessionState;
    writes |= r.kind >= StatementKind::kWrite;
    u.nondeterministic |= r.nondeterministic;
    txn_control |= r.txn_control;
    if (u.first_sql.empty()) u.first_sql = std::move(r.first_sql);
  }
  // The proxy replays session-state units on a new mirror connection and before journal entries:
  // a unit that also changes data must not be one, or its writes would be applied twice.
  u.session_state = state && !writes;
  u.writes = writes;
  u.transaction = txn_control;
  u.primary_done = now;
  // The request that committed carried no write of its own: every write of the unit had completed
  // on the primary before it was forwarded.
  u.lone_commit = requests.size() > 1 && requests.back()->kind < StatementKind::kWrite;
  ++stats_.released;
  if (u.nondeterministic) ++stats_.nondeterministic;
  released_.push_back(std::move(u));
}

// Named statements are not transactional: a Parse or Close the primary completed stands after the
// request or transaction around it was rolled back, so the mirror gets those messages alone.
void WriteCapture::release_statements(const std::vector<RequestPtr>& requests,
                                      std::chrono::steady_clock::time_point now) {
  // Named statements are not transactional, so what the primary completed of them must reach the
  // mirror; but a Parse is deferred until a released unit binds the statement (see
  // deferred_parses_), and closing a deferred statement needs nothing on the mirror.
  RequestPtr r;
  for (const auto& held : requests) {
    const size_t done =
        std::min<size_t>(held->statement_completions, held->statement_messages.size());
    for (size_t i = 0; i < done; ++i) {
      const std::string& m = held->statement_messages[i];
      if (m.size() <= protocol::kHeaderSize) continue;
      const std::string_view body = std::string_view(m).substr(protocol::kHeaderSize);
      if (m[0] == protocol::frontend::kParse) {
        protocol::Parse p;
        if (protocol::decode(body, p) && !p.name.empty()) {
          deferred_parses_[std::string(p.name)] = m;
          continue;
        }
      } else if (m[0] == protocol::frontend::kClose) {
        protocol::Close cl;
        if (protocol::decode(body, cl) && cl.target == protocol::kTargetStatement &&
            deferred_parses_.erase(std::string(cl.name)) > 0) {
          continue;
        }
      }
      if (!r) r = fresh_request();
      r->bytes += m;
    }
  }
  if (!r) return;
  protocol::encode(r->bytes, protocol::Sync{});
  r->responses = 1;
  r->kind = StatementKind::kSessionState;
  r->session_state = true;
  std::vector<RequestPtr> one;
  one.push_back(std::move(r));
  release(one, now);
  recycle_all(one);
}

void WriteCapture::RequestFifo::grow() {
  std::vector<RequestPtr> slots(slots_.empty() ? 8 : slots_.size() * 2);
  for (size_t i = 0; i < size_; ++i) slots[i] = std::move(slot(i));
  slots_.swap(slots);
  head_ = 0;
}

WriteCapture::RequestPtr WriteCapture::fresh_request() {
  if (spare_.empty()) return std::make_unique<Request>();
  RequestPtr r = std::move(spare_.back());
  spare_.pop_back();
  return r;
}

void WriteCapture::recycle(RequestPtr r) {
  if (!r || spare_.size() >= kSpareRequests) return;
  static_cast<RequestHead&>(*r) = RequestHead{};
  r->bytes.clear();
  r->binds.clear();
  r->outcomes.clear();
  r->statement_ops.clear();
  r->statement_messages.clear();
  r->first_sql.clear();
  // A COPY or a huge batch does not pin its memory for the session's life.
  if (r->bytes.capacity() > kMaxKeptBytes) r->bytes = std::string();
  if (r->outcomes.capacity() > 64) r->outcomes = std::vector<Outcome>();
  spare_.push_back(std::move(r));
}

void WriteCapture::recycle_all(std::vector<RequestPtr>& requests) {
  for (auto& r : requests) recycle(std::move(r));
  requests.clear();
}

MirrorUnit WriteCapture::fresh_unit() {
  if (spare_units_.empty()) return MirrorUnit{};
  MirrorUnit u = std::move(spare_units_.back());
  spare_units_.pop_back();
  return u;
}

void WriteCapture::give_back(std::vector<MirrorUnit>& units) {
  for (auto& used : units) {
    if (spare_units_.size() >= kSpareUnits) break;
    if (used.bytes.capacity() > kMaxKeptBytes) continue;
    // Only the buffers are kept: every other field starts from its default, whatever fields
    // MirrorUnit grows.
    MirrorUnit u;
    u.bytes = std::move(used.bytes);
    u.bytes.clear();
    u.primary = std::move(used.primary);
    u.primary.clear();
    u.binds = std::move(used.binds);
    u.binds.clear();
    u.sync_ends = std::move(used.sync_ends);
    u.sync_ends.clear();
    spare_units_.push_back(std::move(u));
  }
  units.clear();
}

std::vector<MirrorUnit> WriteCapture::take() {
  std::vector<MirrorUnit> out;
  take(out);
  return out;
}

std::vector<PrimaryOnlySkip> WriteCapture::take_skips() {
  std::vector<PrimaryOnlySkip> out;
  out.swap(skips_);
  return out;
}

const std::string* WriteCapture::parse_message(std::string_view name) const {
  auto it = parse_messages_.find(std::string(name));
  return it == parse_messages_.end() ? nullptr : &it->second;
}

}  // namespace pgtandem::policy

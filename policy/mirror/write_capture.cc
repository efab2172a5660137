// WriteCapture (policy/mirror/write_capture.h): what it reads of the session's messages in both
// directions, and the requests and units it recycles for their buffers. What a request answered by
// a ReadyForQuery becomes (held, released, left out) is write_capture_release.cc.
#include "policy/mirror/write_capture.h"

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

MirrorUnit& WriteCapture::new_unit() {
  MirrorUnit& u = released_.emplace_back();
  if (spare_units_.empty()) return u;
  UnitBuffers& b = spare_units_.back();
  u.bytes.swap(b.bytes);
  u.primary.swap(b.primary);
  u.binds.swap(b.binds);
  u.sync_ends.swap(b.sync_ends);
  spare_units_.pop_back();
  return u;
}

void WriteCapture::give_back(std::vector<MirrorUnit>& units) {
  for (auto& used : units) {
    if (spare_units_.size() >= kSpareUnits) break;
    if (used.bytes.capacity() > kMaxKeptBytes) continue;
    // Only the buffers are kept: every other field of the next unit starts from its default,
    // whatever fields MirrorUnit grows.
    UnitBuffers& b = spare_units_.emplace_back();
    b.bytes.swap(used.bytes);
    b.bytes.clear();
    b.primary.swap(used.primary);
    b.primary.clear();
    b.binds.swap(used.binds);
    b.binds.clear();
    b.sync_ends.swap(used.sync_ends);
    b.sync_ends.clear();
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

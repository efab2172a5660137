#include "routing/write_capture.h"

#include <utility>

#include "protocol/message_types.h"
#include "protocol/messages.h"

namespace pgtandem::routing {

namespace fe = protocol::frontend;
namespace be = protocol::backend;

WriteCapture::WriteCapture(Options options) : options_(std::move(options)) {
  unnamed_.kind = StatementKind::kUnknown;
}

Classification WriteCapture::classify(std::string_view sql) {
  ClassifierOptions opts = options_.classifier;
  opts.prepared = &prepared_;
  if (options_.cache != nullptr) return classify_cached(sql, opts, options_.cache);
  return routing::classify(sql, opts);
}

void WriteCapture::note(Request& r, const Classification& c, std::string_view sql) {
  if (c.kind > r.kind) r.kind = c.kind;
  if (c.kind == StatementKind::kTransactionControl || c.txn != TxnControl::kNone) {
    r.txn_control = true;
  }
  if (c.kind == StatementKind::kSessionState) r.session_state = true;
  if (c.nondeterministic || c.may_use_defaults) r.nondeterministic = true;
  if (r.first_sql.empty() && !sql.empty()) {
    r.first_sql.assign(sql.substr(0, options_.max_sql_in_unit));
  }
  switch (c.session) {
    case SessionOp::kPrepare:
      if (auto name = prepared_statement_name(sql)) r.parses.emplace_back(*name, c);
      break;
    case SessionOp::kDeallocate:
      if (auto name = prepared_statement_name(sql)) r.closes.push_back(*name);
      break;
    case SessionOp::kDeallocateAll:
    case SessionOp::kDiscardAll:
      r.discard_all = true;
      break;
    default:
      break;
  }
}

void WriteCapture::on_frontend(const protocol::Header& header, std::string_view message) {
  const std::string_view body = message.substr(protocol::kHeaderSize);
  switch (header.type) {
    case fe::kQuery: {
      Request r;
      if (open_has_messages_) {
        // Extended-protocol messages without a Sync before a Query: the Query's ReadyForQuery
        // answers them too, so they belong to one request.
        r = std::move(open_);
        open_ = Request{};
        open_has_messages_ = false;
      }
      protocol::Query q;
      Classification c;
      if (protocol::decode(body, q)) {
        c = classify(q.sql);
      }
      note(r, c, q.sql);
      // Reads are never mirrored: only requests that may be copy their bytes.
      if (r.kind != StatementKind::kRead) r.bytes.append(message);
      r.responses = 1;
      close_request(std::move(r));
      return;
    }
    case fe::kParse: {
      open_has_messages_ = true;
      open_.bytes.append(message);
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
        as_request.nondeterministic = false;
        as_request.may_use_defaults = false;
        note(open_, as_request, p.query);
      }
      if (p.name.empty()) {
        unnamed_ = c;
      } else {
        open_.parses.emplace_back(std::string(p.name), c);
        parse_bytes_pending_.emplace_back(std::string(p.name), std::string(message));
      }
      return;
    }
    case fe::kBind: {
      open_has_messages_ = true;
      open_.bytes.append(message);
      protocol::Bind b;
      Classification c;  // kUnknown unless we know the statement
      if (protocol::decode(body, b)) {
        if (b.statement.empty()) {
          c = unnamed_;
        } else if (const Classification* found = find_statement(b.statement)) {
          c = *found;
        }
        if (!b.statement.empty() && c.kind != StatementKind::kRead) {
          open_.binds.emplace_back(b.statement);
        }
      }
      note(open_, c, {});
      return;
    }
    case fe::kClose: {
      open_has_messages_ = true;
      open_.bytes.append(message);
      protocol::Close cl;
      if (protocol::decode(body, cl) && cl.target == protocol::kTargetStatement &&
          !cl.name.empty()) {
        open_.closes.emplace_back(cl.name);
        // Closing must reach the mirror too, or a later Parse of the same name fails there.
        Classification state;
        state.kind = StatementKind::kSessionState;
        note(open_, state, {});
      }
      return;
    }
    case fe::kDescribe:
    case fe::kExecute:
    case fe::kFlush:
      open_has_messages_ = true;
      open_.bytes.append(message);
      return;
    case fe::kSync:
      open_.bytes.append(message);
      open_.responses = 1;
      close_request(std::move(open_));
      open_ = Request{};
      open_has_messages_ = false;
      return;
    case fe::kFunctionCall: {
      Request r;
      r.bytes.append(message);
      r.kind = StatementKind::kUnknown;  // a fast-path call can do anything
      r.responses = 1;
      close_request(std::move(r));
      return;
    }
    case fe::kCopyData:
    case fe::kCopyDone:
    case fe::kCopyFail:
      // COPY data follows the Query (or Execute) that started the COPY.
      if (open_has_messages_) {
        open_.bytes.append(message);
      } else if (!inflight_.empty()) {
        Request& r = inflight_.back();
        if (r.kind != StatementKind::kRead) r.bytes.append(message);
      }
      return;
    default:
      return;  // Terminate, stray password messages: nothing to mirror
  }
}

const Classification* WriteCapture::find_statement(std::string_view name) const {
  // Parsed in the batch being built, or in one still waiting for its ReadyForQuery, or known.
  for (auto it = open_.parses.rbegin(); it != open_.parses.rend(); ++it) {
    if (it->first == name) return &it->second;
  }
  for (auto r = inflight_.rbegin(); r != inflight_.rend(); ++r) {
    for (auto it = r->parses.rbegin(); it != r->parses.rend(); ++it) {
      if (it->first == name) return &it->second;
    }
  }
  return prepared_.find(name);
}

void WriteCapture::close_request(Request&& r) {
  for (auto& [name, bytes] : parse_bytes_pending_) r.parse_bytes.emplace_back(name, std::move(bytes));
  parse_bytes_pending_.clear();
  inflight_.push_back(std::move(r));
}

bool WriteCapture::on_backend(const protocol::Header& header, std::string_view body,
                              std::chrono::steady_clock::time_point now) {
  switch (header.type) {
    case be::kCommandComplete: {
      protocol::CommandComplete cc;
      if (!inflight_.empty() && protocol::decode(body, cc)) {
        inflight_.front().outcomes.push_back(Outcome{std::string(cc.tag), {}});
      }
      return false;
    }
    case be::kErrorResponse: {
      // An error too large to be seen whole (body empty) still counts as an error.
      protocol::ErrorResponse e;
      if (!inflight_.empty()) {
        std::string_view code = protocol::decode(body, e) ? e.sqlstate() : std::string_view{};
        inflight_.front().outcomes.push_back(Outcome{{}, std::string(code.empty() ? "XX000" : code)});
      }
      return false;
    }
    case be::kReadyForQuery: {
      protocol::ReadyForQuery z;
      if (!protocol::decode(body, z)) return false;
      if (inflight_.empty()) {
        txn_status_ = z.status;
        return false;
      }
      Request r = std::move(inflight_.front());
      inflight_.pop_front();
      finish_request(std::move(r), z.status, now);
      txn_status_ = z.status;
      return !released_.empty();
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

// The tag of the statement that ended the transaction: COMMIT, or ROLLBACK (also what the server
// answers to a COMMIT of a failed transaction), or PREPARE TRANSACTION.
bool ends_committed(const std::vector<Outcome>& outcomes) {
  for (auto it = outcomes.rbegin(); it != outcomes.rend(); ++it) {
    if (it->is_error()) return false;
    if (it->tag == "COMMIT" || it->tag == "PREPARE TRANSACTION") return true;
    if (it->tag == "ROLLBACK") return false;
  }
  return false;
}

}  // namespace

void WriteCapture::finish_request(Request&& r, char status,
                                  std::chrono::steady_clock::time_point now) {
  // The session's named statements follow what the primary was sent; a Parse the primary
  // rejected leaves a name the server does not know, which only makes a later Bind fail there too.
  for (auto& [name, c] : r.parses) prepared_.add(name, c);
  for (auto& [name, bytes] : r.parse_bytes) parse_messages_[name] = std::move(bytes);
  for (const auto& name : r.closes) {
    prepared_.remove(name);
    parse_messages_.erase(name);
  }
  if (r.discard_all) {
    prepared_.clear();
    parse_messages_.clear();
  }

  const bool was_in_txn = txn_status_ != 'I';
  const bool now_in_txn = status != 'I';
  const bool mirrorable = r.kind != StatementKind::kRead;
  if (!mirrorable) {
    ++stats_.skipped_read;
    if (was_in_txn && !now_in_txn) {
      // A read ended the transaction (say, an implicit rollback): decide on what was held.
      std::vector<Request> txn = std::move(txn_);
      txn_.clear();
      if (!txn.empty()) ++stats_.skipped_rollback;
    }
    return;
  }
  if (!was_in_txn && !now_in_txn) {
    // Autocommit (or a whole transaction inside one request): applied only if it committed.
    const bool rolled_back = has_error(r.outcomes) || (r.txn_control && !ends_committed(r.outcomes) &&
                                                       !r.outcomes.empty() &&
                                                       r.outcomes.back().tag == "ROLLBACK");
    if (rolled_back) {
      ++stats_.skipped_rollback;
      return;
    }
    std::vector<Request> one;
    one.push_back(std::move(r));
    release(one, now);
    return;
  }
  if (now_in_txn) {
    // BEGIN, or a statement inside the transaction (failed ones too: the mirror must reach the
    // same state through the same ROLLBACK TO SAVEPOINT).
    const bool committed_midway = was_in_txn && r.txn_control && ends_committed(r.outcomes);
    txn_.push_back(std::move(r));
    if (committed_midway) {
      // COMMIT AND CHAIN, or "COMMIT; BEGIN; ..." in one request: what came before is committed.
      release(txn_, now);
      txn_.clear();
    }
    return;
  }
  // The transaction ended in this request.
  const bool committed = ends_committed(r.outcomes);
  txn_.push_back(std::move(r));
  if (committed) {
    release(txn_, now);
  } else {
    ++stats_.skipped_rollback;
  }
  txn_.clear();
}

void WriteCapture::release(std::vector<Request>& requests,
                           std::chrono::steady_clock::time_point now) {
  if (requests.empty()) return;
  MirrorUnit u;
  size_t total = 0;
  for (const auto& r : requests) total += r.bytes.size();
  u.bytes.reserve(total);
  bool txn_control = false;
  for (auto& r : requests) {
    u.bytes += r.bytes;
    u.responses += r.responses;
    for (auto& o : r.outcomes) u.primary.push_back(std::move(o));
    for (auto& b : r.binds) u.binds.push_back(std::move(b));
    u.session_state |= r.session_state && r.kind == StatementKind::kSessionState;
    u.nondeterministic |= r.nondeterministic;
    txn_control |= r.txn_control;
    if (u.first_sql.empty()) u.first_sql = std::move(r.first_sql);
  }
  u.transaction = txn_control;
  u.primary_done = now;
  ++stats_.released;
  if (u.nondeterministic) ++stats_.nondeterministic;
  released_.push_back(std::move(u));
}

std::vector<MirrorUnit> WriteCapture::take() {
  std::vector<MirrorUnit> out;
  out.swap(released_);
  return out;
}

const std::string* WriteCapture::parse_message(std::string_view name) const {
  auto it = parse_messages_.find(std::string(name));
  return it == parse_messages_.end() ? nullptr : &it->second;
}

}  // namespace pgtandem::routing

// WriteCapture's decisions (policy/mirror/write_capture.h): what a request becomes once the
// primary's ReadyForQuery answers it (held in its transaction, released as a MirrorUnit, or left
// out), the named statements that reach the mirror all the same, and the units themselves. What
// the capture reads of the messages, and its recycled buffers, are write_capture.cc.
#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "policy/mirror/write_capture.h"
#include "protocol/message_types.h"
#include "protocol/messages.h"

namespace pgtandem::policy {

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
  MirrorUnit& u = new_unit();
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

}  // namespace pgtandem::policy

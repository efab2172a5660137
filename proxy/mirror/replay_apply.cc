// The replay engine's apply (JournalApplier::Impl, replay_applier.h): an entry checked against
// what its connection holds, wrapped with the target's record of it (its own transaction, an
// autocommit statement marked after, or fused), and applied in pipelined batches or, for runs of
// small entries, as one grouped transaction whose outcomes are compared entry by entry.
#include "proxy/mirror/replay_applier.h"

#include <boost/asio/experimental/awaitable_operators.hpp>

namespace pgtandem::proxy {

using namespace replay_detail;  // the engine's helpers, the wire exchange, the unit scan
using namespace asio::experimental::awaitable_operators;

bool JournalApplier::Impl::validate(const JournalEntry& e, UnitScan* scan, std::vector<UnitScan>* state_scans, std::string* error) {
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

void JournalApplier::Impl::append_marked_begin(Connection& c, const JournalEntry& e, std::string& out, bool sync) const {
  append_group_begin(c, out);
  append_record(e, out);
  if (sync) protocol::encode(out, protocol::Sync{});
}

void JournalApplier::Impl::ensure_marks_prepared(Connection& c, std::string& out) const {
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

void JournalApplier::Impl::append_group_begin(Connection& c, std::string& out) const {
  ensure_marks_prepared(c, out);
  protocol::encode_bind(out, "", kBegin, {}, {}, {});
  protocol::encode(out, protocol::Execute{});
}

void JournalApplier::Impl::append_record(const JournalEntry& e, std::string& out) const {
  const std::string key = marker_key(e);
  const std::string seq = std::to_string(e.seq);
  const protocol::Value params[2] = {protocol::Value::of(key), protocol::Value::of(seq)};
  protocol::encode_bind(out, "", kMark, {}, params, {});
  protocol::encode(out, protocol::Execute{});
}

bool JournalApplier::Impl::append_fused(Connection& c, const JournalEntry& e, Wrap wrap, size_t skip, std::string& out) const {
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

void JournalApplier::Impl::split_fused(const Planned& pl, std::vector<Outcome>* prefix, std::vector<Outcome>* unit, std::vector<Outcome>* suffix) {
  const auto n = static_cast<std::ptrdiff_t>(std::min<size_t>(2, unit->size()));
  prefix->insert(prefix->end(), unit->begin(), unit->begin() + n);
  unit->erase(unit->begin(), unit->begin() + n);
  if (pl.wrap == Wrap::kAutocommit && unit->size() == pl.p->e.unit.primary.size() + 1 &&
      !unit->back().is_error() && unit->back().tag == "COMMIT") {
    suffix->push_back(std::move(unit->back()));
    unit->pop_back();
  }
}

std::string JournalApplier::Impl::marker_sql(const JournalEntry& e) const {
  return record_sql(sql_literal(marker_key(e)), std::to_string(e.seq));
}

bool JournalApplier::Impl::apply_group(Connection& c, const std::string& key, size_t from, size_t to, PassResult* r, size_t* done) {
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

size_t JournalApplier::Impl::apply_batch(size_t from, size_t to, PassResult* r) {
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

}  // namespace pgtandem::proxy

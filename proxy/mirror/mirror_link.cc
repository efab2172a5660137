// The mirror link's own thread: the apply loop (run), applying a request, reading and comparing
// the target's answers and settling the units. Beside it: the link's connection and the session's
// state on it (mirror_link_connect.cc), what it cannot apply (mirror_link_journal.cc), the
// hand-over with the session's worker (mirror_link_handover.cc), and units whose answer does not
// come (mirror_link_timeout.cc).
#include "proxy/mirror/mirror_link.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <shared_mutex>
#include <span>

#include "protocol/message_types.h"
#include "protocol/messages.h"
#include "proxy/auth/backend_login.h"
#include "proxy/mirror/mirror_safety.h"
#include "proxy/telemetry/log.h"
#include "proxy/net/upstream.h"
#include "policy/mirror/mirror_batch.h"

namespace pgtandem::proxy {

namespace {
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
// A batch: queued transactions of the session sent as one request (policy/mirror/mirror_batch.h).
constexpr size_t kMaxBatchUnits = 64;
constexpr size_t kMaxBatchBytes = 256 * 1024;
using Clock = std::chrono::steady_clock;

std::string describe(std::span<const policy::Outcome> outcomes) {
  std::string s;
  for (const auto& o : outcomes) {
    if (!s.empty()) s += ", ";
    s += o.is_error() ? "ERROR " + o.sqlstate : o.tag;
  }
  return s.empty() ? "(no statement)" : s;
}
}  // namespace

MirrorLink::MirrorLink(Worker& home, MirrorContext context, size_t target, bool moves)
    : worker_(home),
      moves_(moves),
      state_(home.state()),
      context_(std::move(context)),
      target_(target),
      socket_(home.io()),
      wake_(home.io()),
      hang_timer_(home.io()),
      answers_(home.state().limits) {}

void MirrorLink::account(int64_t delta) {
  queued_bytes_.fetch_add(delta, std::memory_order_relaxed);
  state_.mirror.queue_bytes.fetch_add(delta, std::memory_order_relaxed);
}

policy::AnswerMatch::Step MirrorLink::feed_answers(policy::AnswerMatch& m) {
  size_t used = 0;
  const auto step = m.feed(std::string_view(rbuf_.data(), rend_), &used);
  rend_ -= used;
  if (used > 0 && rend_ > 0) std::memmove(rbuf_.data(), rbuf_.data() + used, rend_);
  return step;
}

asio::awaitable<bool> MirrorLink::read_outcomes(policy::AnswerMatch& m, char* status) {
  if (status != nullptr) *status = 'I';
  for (;;) {
    const auto step = feed_answers(m);
    if (step == policy::AnswerMatch::Step::kInvalid) co_return false;
    if (step == policy::AnswerMatch::Step::kDone) {
      if (status != nullptr) *status = m.status();
      co_return true;
    }
    auto [ec, n] = co_await socket_.async_read_some(
        asio::buffer(rbuf_.data() + rend_, rbuf_.size() - rend_), kNoThrow);
    if (ec) co_return false;
    rend_ += n;
  }
}

void MirrorLink::compare(const policy::MirrorUnit& unit,
                         std::span<const policy::Outcome> mirror) {
  if (std::equal(mirror.begin(), mirror.end(), unit.primary.begin(), unit.primary.end())) return;
  // Name the first difference: what an operator needs to look for.
  std::string_view kind = "statements";
  const size_t n = std::min(mirror.size(), unit.primary.size());
  for (size_t i = 0; i < n; ++i) {
    const auto& p = unit.primary[i];
    const auto& m = mirror[i];
    if (p == m) continue;
    if (!p.is_error() && m.is_error()) {
      kind = "error_on_mirror";
    } else if (p.is_error() && !m.is_error()) {
      kind = "error_on_primary";
    } else if (p.is_error()) {
      kind = "error_code";
    } else if (protocol::command_tag_name(p.tag) == protocol::command_tag_name(m.tag)) {
      kind = "row_count";
    } else {
      kind = "command";
    }
    break;
  }
  state_.metrics->mirror_divergence(kind, unit.bytes);
  log::warn("mirror divergence", {{"session", context_.session_id},
                                  {"target", state_.targets[target_].name},
                                  {"kind", kind},
                                  {"statement", unit.first_sql},
                                  {"primary", describe(unit.primary)},
                                  {"mirror", describe(mirror)}});
}

bool MirrorLink::refused_on_target(const policy::MirrorUnit& unit,
                                   std::span<const policy::Outcome> mine) {
  for (size_t i = 0; i < mine.size(); ++i) {
    if (mine[i].is_error() && (i >= unit.primary.size() || !unit.primary[i].is_error())) {
      return true;
    }
  }
  return false;
}

void MirrorLink::applied(policy::MirrorUnit& unit) {
  remember_state(unit);
  state_.metrics->mirror_write(MirrorOutcome::kApplied);
  order_done(unit.seq);
}

asio::awaitable<void> MirrorLink::apply() {
  if (!connected_.load(std::memory_order_relaxed)) {
    std::string error;
    if (!co_await connect(&error)) {
      degrade(error.starts_with("login failed") ? "login_failed" : "target_unavailable", error);
      for (auto& unit : in_flight_) journal(unit, degraded_reason_, degraded_detail_, false);
      co_return;
    }
  }
  watch_apply();
  if (reprepare_) {
    const bool prepared = co_await reprepare();
    if (!prepared) {
      connected_.store(false, std::memory_order_release);
      boost::system::error_code ignored;
      socket_.close(ignored);
      degrade("connection_lost", "connection closed while preparing statements");
      for (auto& unit : in_flight_) journal(unit, "connection_lost", degraded_detail_, false);
      co_return;
    }
  }
  // Committed transactions go as one request when they can (policy/mirror/mirror_batch.h): one round
  // trip, one answer to read, instead of one per statement.
  const bool joined = batch_.units() == in_flight_.size() &&
                      (in_flight_.size() > 1 || in_flight_.front().responses > 1);
  const std::string& wire = joined ? batch_.request() : in_flight_.front().bytes;
  // One send straight on the descriptor (Stream::try_send: an Asio write that completes at once
  // still posts its completion, an extra handler and reactor turn per request); the rest, when
  // the target's socket buffer is full, through Asio.
  boost::system::error_code ec;
  std::size_t n = 0;
  if (!socket_.tls()) n = socket_.try_send(wire.data(), wire.size(), ec);
  if (!ec && n < wire.size()) {
    auto [wec, wn] = co_await asio::async_write(
        socket_, asio::buffer(wire.data() + n, wire.size() - n), kNoThrow);
    ec = wec;
    n += wn;
  }
  // (Members, reused: no allocation per request.)
  std::vector<policy::Outcome>& outcomes = outcomes_;
  answers_.start(joined ? 1 : in_flight_.front().responses, &in_flight_, &outcomes);
  bool read_ok = false;
  char status = 'I';
  // read_outcomes()'s loop, written out: a coroutine called once per request allocates its frame
  // each time (Asio's recycling cache of two blocks keeps missing it): ~400 instructions a request.
  while (!ec) {
    const auto step = feed_answers(answers_);
    if (step != policy::AnswerMatch::Step::kMore) {
      read_ok = step == policy::AnswerMatch::Step::kDone;
      if (read_ok) status = answers_.status();
      break;
    }
    auto [rec, rn] = co_await socket_.async_read_some(
        asio::buffer(rbuf_.data() + rend_, rbuf_.size() - rend_), kNoThrow);
    if (rec) break;
    rend_ += rn;
  }
  if (read_ok && joined && status == 'E') {
    // A statement failed: the target skipped the rest of the request and left the transaction
    // block aborted (sent one by one, the COMMIT would have rolled it back). Roll it back.
    std::string rollback;
    protocol::encode(rollback, protocol::Query{"ROLLBACK"});
    auto [rec, rn] = co_await asio::async_write(socket_, asio::buffer(rollback), kNoThrow);
    std::vector<policy::Outcome> ignored;
    policy::AnswerMatch rollback_answer(state_.limits);
    rollback_answer.start(1, nullptr, &ignored);
    read_ok = false;  // (no co_await inside && or ||: GCC 12 miscompiles it)
    if (!rec) read_ok = co_await read_outcomes(rollback_answer, nullptr);
  }
  if (!read_ok) {
    answers_.write_matched();  // what the answers read before the break were
    connected_.store(false, std::memory_order_release);
    boost::system::error_code ignored;
    socket_.close(ignored);
    if (hung_) {
      unresolved(ec ? "the connection broke after the apply timeout"
                    : "no answer after the apply timeout");
      co_return;
    }
    // What the answers read before the break prove settles each unit (mirror_link_timeout.cc).
    settle_lost_answer(ec, n, outcomes);
    co_return;
  }
  if (joined) state_.metrics->mirror_coalesced(in_flight_.size());
  // Each unit's answers, in order: as many outcomes as the primary's (a statement answers with
  // one CommandComplete or one ErrorResponse). After an error the target skipped the rest.
  const auto now = Clock::now();
  // Every answer matched the primary's so far (none written): the answers are the first
  // `matched` outcomes of the units, in order.
  const bool all_matched = answers_.all_matched();
  const size_t answers = all_matched ? answers_.matched() : outcomes.size();
  size_t next = 0;
  bool failed_before = false;
  for (auto& unit : in_flight_) {
    if (failed_before) {
      // Not applied (skipped after the failure): the journal keeps it in the session's order.
      journal(unit, "session_degraded", degraded_reason_ + ": " + degraded_detail_, false);
      continue;
    }
    const size_t take = joined ? std::min(unit.primary.size(), answers - next) : answers - next;
    const std::span<const policy::Outcome> mine =
        all_matched ? std::span<const policy::Outcome>(unit.primary.data(), take)
                    : std::span<const policy::Outcome>(outcomes.data() + next, take);
    next += take;
    worker_.stats().mirror_lag.observe(now - unit.primary_done);
    if (all_matched && take == unit.primary.size()) {
      applied(unit);  // the target answered exactly as the primary did
      continue;
    }
    compare(unit, mine);
    if (refused_on_target(unit, mine)) {
      // The target refused what the primary accepted: the unit did not apply (a unit is one
      // transaction), so it is journaled for an operator or a later replay, and the session's
      // later writes follow it there: applied directly they would overtake it.
      degrade("mirror_error", describe(mine));
      journal(unit, "mirror_error", describe(mine), false);
      failed_before = true;
      continue;
    }
    applied(unit);
  }
}

asio::awaitable<void> MirrorLink::run() {
  auto self = shared_from_this();  // the link lives until its queue is drained
  for (;;) {
    while (queue_.empty() || lent_.load(std::memory_order_acquire)) {
      if (finished_.load(std::memory_order_acquire) && !lent_.load(std::memory_order_acquire) &&
          queue_.empty() && drained()) {
        stop_watch();
        if (connected_.load(std::memory_order_relaxed)) {
          std::string terminate;
          protocol::end_message(terminate,
                                protocol::begin_message(terminate, protocol::frontend::kTerminate));
          co_await asio::async_write(socket_, asio::buffer(terminate), kNoThrow);
          boost::system::error_code ignored;
          socket_.close(ignored);
        }
        co_return;
      }
      // Parked (idle_) until request_intake() resumes it: units, a finish, the socket given back.
      co_await asio::async_initiate<const asio::use_awaitable_t<>&, void()>(
          [this](auto handler) { idle_.emplace(std::move(handler)); }, asio::use_awaitable);
    }
    if (!journaling() && queue_.front().after > state_.mirror.order.done_through()) {
      // Commit order across sessions: what committed on the primary before this transaction
      // began is applied first (policy/mirror/mirror_order.h).
      co_await wait_for_order(queue_.front().after);
      if (queue_.empty() || lent_.load(std::memory_order_acquire)) continue;  // (shutdown)
    }
    busy_ = true;
    in_flight_.clear();
    in_flight_.push_back(std::move(queue_.front()));
    queue_.pop_front();
    int64_t bytes = static_cast<int64_t>(in_flight_.front().bytes.size());
    size_t taken = 1;  // units of this turn: settled at its end
    // (Checked after the wait: a unit journaled before this one in commit order set journaling
    // before it counted as done, so this one follows it into the journal.)
    if (journaling()) {
      const bool journaled =
          journal(in_flight_.front(), "session_degraded",
                  degraded_ ? degraded_reason_ + ": " + degraded_detail_
                            : "mirror backlog being caught up",
                  false, true);
      if (!journaled) {
        // Catch-up is draining the last of the backlog: this unit waits for live mirroring.
        queue_.push_front(std::move(in_flight_.front()));
        in_flight_.clear();
        busy_ = false;
        taken = 0;
        wake_.expires_after(std::chrono::milliseconds(1));
        co_await wake_.async_wait(kNoThrow);
        continue;
      }
    } else {
      // The session's next queued transactions join the request while they can: same protocol,
      // nothing of other sessions' left to wait for, within the batch limits. `covered`: every
      // unit numbered up to it is done or earlier in this request (applied before, in order), so
      // a unit that follows only those may join.
      batch_.clear();
      if (batch_.add(in_flight_.front())) {
        uint64_t covered = state_.mirror.order.done_through();
        if (in_flight_.front().seq == covered + 1) covered = in_flight_.front().seq;
        while (!queue_.empty() && in_flight_.size() < kMaxBatchUnits &&
               batch_.bytes() < kMaxBatchBytes && queue_.front().after <= covered &&
               batch_.add(queue_.front())) {
          if (queue_.front().seq == covered + 1) covered = queue_.front().seq;
          bytes += static_cast<int64_t>(queue_.front().bytes.size());
          in_flight_.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
      }
      taken = in_flight_.size();
      co_await apply();
      end_watch();
    }
    // (Journaled units were moved into their entries: the size was taken before.)
    if (!in_flight_.empty()) account(-bytes);  // empty: journal_pending() accounted for them
    // Applied units go back to the session's capture for their buffers (journaled ones were
    // moved into their entries: nothing to give).
    for (auto& u : in_flight_) {
      if (spent_.size() >= policy::WriteCapture::kSpareUnits) break;
      // (A COPY's buffer is freed here rather than held until the next push.)
      if (!u.bytes.empty() && u.bytes.capacity() <= policy::WriteCapture::kMaxKeptBytes) {
        spent_.push_back(std::move(u));
      }
    }
    in_flight_.clear();
    busy_ = false;
    // Last: once drained() sees it, a lend may take the socket.
    if (taken > 0 && !stopped_) settled(taken);  // (after journal_pending() nothing is pending)
  }
}

}  // namespace pgtandem::proxy

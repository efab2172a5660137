#include "proxy/shadow/shadow_lane.h"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <atomic>
#include <deque>
#include <mutex>
#include <utility>

#include "protocol/message_types.h"
#include "proxy/telemetry/log.h"
#include "proxy/telemetry/metrics.h"
#include "proxy/mirror/mirror_link.h"
#include "policy/route/route_rules.h"
#include "policy/shadow/shadow_policy.h"

namespace pgtandem::proxy {
namespace {

using namespace asio::experimental::awaitable_operators;
using Clock = std::chrono::steady_clock;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
// As pump_backend's: a shadow's DataRow larger than this streams and cannot be digested.
constexpr size_t kKeepLimit = 8 * 1024;
constexpr double kMismatchLogPerSecond = 10;
constexpr size_t kStatementLog = 1024;  // statement bytes in a log line


// "(id=<redacted>, name=<redacted>)" from columns_rendered() ("id:23, name:25"): the shape of a row
// without its values.
std::string redacted_row(const policy::ResultDigest &d, const std::string &row) {
  if (row.empty()) return row;
  const std::string cols = d.columns_rendered();
  std::string out = "(";
  size_t pos = 0;
  bool first = true;
  while (pos < cols.size()) {
    size_t end = cols.find(", ", pos);
    if (end == std::string::npos) end = cols.size();
    std::string_view col = std::string_view(cols).substr(pos, end - pos);
    if (const size_t colon = col.rfind(':'); colon != std::string_view::npos)
      col = col.substr(0, colon);
    if (!first) out += ", ";
    first = false;
    out.append(col);
    out += "=<redacted>";
    pos = end + 2;
  }
  out += ')';
  return out;
}

// Multiset digests: a row of `a` that occurs more often in `a` than in `b`, looked for among the
// rows both samples are known to hold (compare() reports one side's row only; the log shows one of
// each side when the samples have one).
std::string more_often_in(const policy::ResultDigest &a, const policy::ResultDigest &b) {
  if (a.ordered()) return {};
  constexpr uint64_t kAll = ~uint64_t{0};
  const uint64_t bound = std::min(a.sample_complete() ? kAll : a.sample_bound(),
                                  b.sample_complete() ? kAll : b.sample_bound());
  const bool all = bound == kAll;
  for (const auto &row : a.sample()) {
    if (!all && row.hash.a >= bound) continue;
    size_t in_a = 0;
    size_t in_b = 0;
    for (const auto &r : a.sample()) in_a += r.hash == row.hash ? 1 : 0;
    for (const auto &r : b.sample()) in_b += r.hash == row.hash ? 1 : 0;
    if (in_a > in_b) return a.render(row);
  }
  return {};
}

void append_side(std::string &out, std::string_view name, const policy::ResultDigest &d,
                 const std::string &row, bool redact) {
  out += ",\"";
  out += name;
  out += "\":{\"rows\":";
  out += std::to_string(d.row_count());
  out += ",\"digest\":";
  log::append_json_string(out, policy::to_hex(d.ordered() ? d.ordered_digest() : d.rows_digest()));
  if (d.failed()) {
    out += ",\"sqlstate\":";
    log::append_json_string(out, d.sqlstate());
  }
  out += ",\"row\":";
  log::append_json_string(out, redact ? redacted_row(d, row) : row);
  out += '}';
}

// Process-wide: at most kMismatchLogPerSecond lines, appended to the configured file.
class MismatchLog {
 public:
  static MismatchLog &get() {
    static MismatchLog log;
    return log;
  }
  bool admit() {
    std::lock_guard lock(mu_);
    return bucket_.try_take(Clock::now());
  }
  void write_line(const std::string &path, const std::string &line) {
    std::lock_guard lock(mu_);
    if (path != path_) {
      if (file_ != nullptr) std::fclose(file_);
      file_ = std::fopen(path.c_str(), "a");
      path_ = path;
      if (file_ == nullptr) log::warn("cannot open the shadow mismatch log", {{"path", path}});
    }
    if (file_ == nullptr) return;
    std::fwrite(line.data(), 1, line.size(), file_);
    std::fputc('\n', file_);
    std::fflush(file_);
  }

 private:
  MismatchLog() : bucket_(kMismatchLogPerSecond, kMismatchLogPerSecond) {}
  std::mutex mu_;
  policy::TokenBucket bucket_;
  std::string path_;
  FILE *file_ = nullptr;
};

struct ShadowAnswer {
  bool usable = false;    // the connection sits at ReadyForQuery
  bool streamed = false;  // a message was too large to digest
  uint32_t results = 0;
};

// Sends the request on the link's connection and digests the answer up to ReadyForQuery.
asio::awaitable<void> run_on_link(Socket &server, MirrorLink &link, std::string_view request,
                                  policy::ResultDigest &digest, const protocol::Limits &limits,
                                  ShadowAnswer &answer) {
  auto [wec, wn] = co_await asio::async_write(server, asio::buffer(request), kNoThrow);
  if (wec) co_return;
  auto &rbuf = link.read_buffer();
  size_t &rend = link.read_end();
  if (rbuf.size() < 16 * 1024) rbuf.resize(16 * 1024);
  protocol::FrameScanner scanner(protocol::Direction::kBackend, limits, kKeepLimit);
  struct Visitor {
    policy::ResultDigest *digest;
    ShadowAnswer *answer;
    bool ready = false;
    bool on_message(const protocol::Header &h, std::string_view body) {
      switch (h.type) {
        case protocol::backend::kRowDescription:
          digest->on_row_description(body);
          break;
        case protocol::backend::kDataRow:
          digest->on_data_row(body);
          break;
        case protocol::backend::kCommandComplete:
          digest->on_command_complete(body);
          ++answer->results;
          break;
        case protocol::backend::kErrorResponse:
          digest->on_error(body);
          ++answer->results;
          break;
        case protocol::backend::kReadyForQuery:
          ready = true;
          return false;
        default:
          break;
      }
      return true;
    }
    bool on_stream_start(const protocol::Header &) {
      answer->streamed = true;
      return true;
    }
  } v{&digest, &answer};
  for (;;) {
    if (rend > 0) {
      auto r = scanner.scan(std::string_view(rbuf.data(), rend), v);
      if (r.status == protocol::Status::kInvalid) co_return;
      rend -= r.forward;
      if (rend > 0) std::memmove(rbuf.data(), rbuf.data() + r.forward, rend);
      if (v.ready) {
        answer.usable = true;
        co_return;
      }
    }
    if (rend == rbuf.size()) co_return;  // cannot happen: whole messages are at most kKeepLimit
    auto [rec, rn] = co_await server.async_read_some(
        asio::buffer(rbuf.data() + rend, rbuf.size() - rend), kNoThrow);
    if (rec) co_return;
    rend += rn;
  }
}

asio::awaitable<void> deadline(asio::io_context &io, std::chrono::milliseconds d) {
  asio::steady_timer timer(io, d);
  co_await timer.async_wait(kNoThrow);
}

int64_t unix_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// What queued shadow reads hold (their requests), process-wide: past this, samples are dropped
// ("memory"). Per session the lane holds kMaxQueued at most; this bounds many sessions together.
constexpr int64_t kMaxQueuedBytes = 64 << 20;
std::atomic<int64_t> queued_bytes{0};

// Rechecks open two connections each: few at a time, process-wide.
constexpr int kMaxRechecks = 4;
std::atomic<int> rechecks_in_flight{0};

// One side of a recheck: the request on a fresh link to `target` with the session's settings.
asio::awaitable<void> recheck_side(Worker &worker, std::shared_ptr<MirrorLink> link,
                                   const std::string &request, policy::ResultDigest &digest,
                                   ShadowAnswer &answer) {
  std::string error;
  Socket *server = co_await link->lend(&error);
  if (server != nullptr) {
    co_await run_on_link(*server, *link, request, digest, worker.state().limits, answer);
    link->give_back(!answer.usable, false);
  }
  link->finish();
}

// On a mismatch: after the delay, the same request on both targets at once, on connections of
// their own (the session's may be busy or gone): agreeing now means the first answers differed
// because of timing (a write landed between the two runs), not because the data differ.
asio::awaitable<void> recheck(Worker &worker, std::shared_ptr<MirrorLink> model,
                              std::shared_ptr<ShadowRead> read, size_t shadow_target,
                              std::string fingerprint, ShadowRunOptions options) {
  ServerState &state = worker.state();
  asio::steady_timer timer(worker.io(), std::chrono::milliseconds(options.recheck_delay_ms));
  co_await timer.async_wait(kNoThrow);
  const auto snap = state.snapshot.load(std::memory_order_acquire);
  const size_t primary = snap ? snap->primary : state.primary;
  auto on_primary = MirrorLink::start_like(*model, primary);
  auto on_shadow = MirrorLink::start_like(*model, shadow_target);
  policy::ResultDigest p(read->options.get(), read->primary.ordered());
  policy::ResultDigest s(read->options.get(), read->primary.ordered());
  ShadowAnswer pa;
  ShadowAnswer sa;
  auto both = co_await ((recheck_side(worker, on_primary, read->request, p, pa) &&
                         recheck_side(worker, on_shadow, read->request, s, sa)) ||
                        deadline(worker.io(), std::chrono::milliseconds(options.timeout_ms)));
  // Both sides are done (or were cancelled by the deadline, perhaps mid-lend): close them.
  for (const auto &l : {on_primary, on_shadow}) {
    if (l->lent()) l->give_back(true, false);
    l->finish();
  }
  std::string_view result;
  if (both.index() == 1 || !pa.usable || !sa.usable || pa.streamed || sa.streamed) {
    result = "failed";
  } else {
    const bool persistent = policy::compare(p, s).kind != policy::MismatchKind::kNone;
    result = persistent ? "persistent" : "transient";
    state.shadow.mismatches.record_recheck(fingerprint, persistent);
  }
  rechecks_in_flight.fetch_sub(1, std::memory_order_relaxed);
  state.metrics->shadow_recheck(result);
  log::info("shadow mismatch rechecked", {{"result", std::string(result)},
                                          {"fingerprint", fingerprint},
                                          {"target", state.targets[shadow_target].name},
                                          {"rule", read->rule}});
}

void report_mismatch(Worker &worker, const std::shared_ptr<MirrorLink> &link,
                     const std::shared_ptr<ShadowRead> &read, const policy::ResultDigest &shadow,
                     const policy::Comparison &c, size_t target,
                     const ShadowRunOptions &options) {
  ServerState &state = worker.state();
  state.metrics->shadow_mismatch(policy::to_string(c.kind));
  const std::string &target_name = state.targets[target].name;
  const int64_t unix_ms = unix_now_ms();
  // Off the data path: a mismatch costs a parse or two (~10 us).
  const std::string fingerprint = policy::statement_fingerprint(read->statement);
  const std::string normalized = policy::normalize_statement(read->statement);
  const std::string label = state.shadow.mismatches.record(
      fingerprint, c.kind, normalized, c.detail, read->rule, target_name, unix_ms);
  state.metrics->shadow_mismatch_fingerprint(label);
  if (options.recheck_delay_ms > 0 && !fingerprint.empty()) {
    if (rechecks_in_flight.fetch_add(1, std::memory_order_relaxed) < kMaxRechecks) {
      asio::co_spawn(worker.io(), recheck(worker, link, read, target, fingerprint, options),
                     asio::detached);
    } else {
      rechecks_in_flight.fetch_sub(1, std::memory_order_relaxed);
      state.metrics->shadow_recheck("failed");
    }
  }
  if (!MismatchLog::get().admit()) return;
  log::warn("shadow read mismatch",
            {{"target", target_name},
             {"rule", read->rule},
             {"kind", policy::to_string(c.kind)},
             {"fingerprint", fingerprint},
             {"detail", c.detail},
             {"statement", read->statement.substr(0, kStatementLog)}});
  if (options.mismatch_log.empty()) return;
  MismatchLog::get().write_line(options.mismatch_log,
                                mismatch_json(*read, shadow, c, target_name, options.redact_values,
                                              unix_ms, fingerprint, normalized));
}

// Waits (briefly) until the link can run `read`: it may be serving a routed read or an earlier
// shadow read. False when the read cannot be compared any more or cannot run (counted).
asio::awaitable<bool> wait_for_link(Worker &worker, MirrorLink &link, const ShadowRead &read,
                                    Clock::time_point give_up) {
  ServerState &state = worker.state();
  for (;;) {
    if (link.pushed() != read.link_units) {
      // The session wrote or changed a setting after the read: the other target would answer
      // from other data than the primary did.
      state.metrics->shadow_skip("writes_pending");
      co_return false;
    }
    if (link.can_lend()) co_return true;
    if (!link.lent()) {
      state.metrics->shadow_drop("link_unavailable");  // degraded, or the session ended
      co_return false;
    }
    if (Clock::now() >= give_up) {
      state.metrics->shadow_drop("busy");
      co_return false;
    }
    asio::steady_timer timer(worker.io(), std::chrono::milliseconds(2));
    co_await timer.async_wait(kNoThrow);
  }
}

asio::awaitable<void> run_shadow(Worker &worker, std::shared_ptr<MirrorLink> link,
                                 std::shared_ptr<ShadowRead> read, ShadowRunOptions options) {
  ServerState &state = worker.state();
  const auto limit = std::chrono::milliseconds(options.timeout_ms);
  const auto give_up = Clock::now() + limit;
  std::string error;
  Socket *server = nullptr;
  for (;;) {
    const bool ready = co_await wait_for_link(worker, *link, *read, give_up);
    if (!ready) co_return;
    server = co_await link->lend(&error);
    if (server != nullptr) break;
    // The session's thread took the link between the check and the claim (a routed read, a
    // flip), or pushed a write: wait_for_link judges again (busy, or writes_pending).
    if (error == MirrorLink::kLentElsewhere || !link->drained()) continue;
    state.metrics->shadow_drop("connect");
    log::debug("shadow read dropped", {{"reason", "connect"}, {"error", error}});
    co_return;
  }
  const size_t target = link->target();
  policy::ResultDigest shadow(read->options.get(), read->primary.ordered());
  ShadowAnswer answer;
  const auto started = Clock::now();
  bool timed_out = false;
  if (options.mirror_writes) {
    // Never break a link that mirrors writes: wait for the answer, however long.
    co_await run_on_link(*server, *link, read->request, shadow, state.limits, answer);
    timed_out = Clock::now() - started > limit;
  } else {
    auto r = co_await (run_on_link(*server, *link, read->request, shadow, state.limits, answer) ||
                       deadline(worker.io(), limit));
    timed_out = r.index() == 1;
  }
  // A connection left mid-answer is closed; one that only serves routed reads reconnects lazily.
  link->give_back(!answer.usable, options.mirror_writes);
  if (timed_out || !answer.usable) {
    state.metrics->shadow_drop(timed_out ? "timeout" : "connection_lost");
    log::debug("shadow read dropped", {{"reason", timed_out ? "timeout" : "connection_lost"},
                                       {"statement", read->statement.substr(0, kStatementLog)}});
    co_return;
  }
  if (answer.streamed) {
    state.metrics->shadow_skip("row_too_large");
    co_return;
  }
  if (answer.results != 1) {
    state.metrics->shadow_skip("multi_statement");
    co_return;
  }
  const policy::Comparison c = policy::compare(read->primary, shadow);
  const bool mismatch = c.kind != policy::MismatchKind::kNone;
  state.health.breakers.record_shadow(state, target, mismatch, Clock::now());
  if (!mismatch) {
    state.metrics->shadow_read(ShadowOutcome::kMatch);
    co_return;
  }
  report_mismatch(worker, link, read, shadow, c, target, options);
}


}  // namespace

// The session's worker submits, the lane's coroutine (on the link's home) drains: under mu.
struct ShadowLane::State {
  std::mutex mu;
  std::shared_ptr<MirrorLink> link;
  std::deque<std::pair<std::shared_ptr<ShadowRead>, ShadowRunOptions>> queue;
  bool running = false;
  bool closed = false;
};

namespace {
asio::awaitable<void> drain_lane(Worker &home, std::shared_ptr<ShadowLane::State> lane) {
  for (;;) {
    std::shared_ptr<ShadowRead> read;
    ShadowRunOptions options;
    bool closed = false;
    {
      std::lock_guard lock(lane->mu);
      if (lane->queue.empty()) {
        lane->running = false;
        co_return;
      }
      read = std::move(lane->queue.front().first);
      options = std::move(lane->queue.front().second);
      lane->queue.pop_front();
      closed = lane->closed;
    }
    queued_bytes.fetch_sub(static_cast<int64_t>(read->request.size()), std::memory_order_relaxed);
    if (closed) {
      home.state().metrics->shadow_drop("session_closed");
      continue;
    }
    co_await run_shadow(home, lane->link, std::move(read), std::move(options));
  }
}
}  // namespace

ShadowLane::ShadowLane(std::shared_ptr<MirrorLink> link)
    : home_(link->home()), state_(std::make_shared<State>()) {
  state_->link = std::move(link);
}

bool ShadowLane::is_full() const {
  std::lock_guard lock(state_->mu);
  return state_->queue.size() >= kMaxQueued;
}

void ShadowLane::close() {
  std::lock_guard lock(state_->mu);
  state_->closed = true;
}

bool ShadowLane::submit(std::shared_ptr<ShadowRead> read, ShadowRunOptions options) {
  const auto size = static_cast<int64_t>(read->request.size());
  bool start = false;
  {
    std::lock_guard lock(state_->mu);
    if (state_->queue.size() >= kMaxQueued) {
      home_.state().metrics->shadow_drop("queue_full");
      return false;
    }
    if (queued_bytes.fetch_add(size, std::memory_order_relaxed) + size > kMaxQueuedBytes) {
      queued_bytes.fetch_sub(size, std::memory_order_relaxed);
      home_.state().metrics->shadow_drop("memory");
      return false;
    }
    state_->queue.emplace_back(std::move(read), std::move(options));
    start = !state_->running;
    state_->running = true;
  }
  // (co_spawn posts the coroutine's start to the home's io_context: safe from this thread.)
  if (start) asio::co_spawn(home_.io(), drain_lane(home_, state_), asio::detached);
  return true;
}

std::string shadow_status_json(const ServerState &state, size_t limit) {
  const auto &table = state.shadow.mismatches;
  std::string out = "{\"mismatches_total\":" + std::to_string(table.total()) +
                    ",\"other\":" + std::to_string(table.other()) + ",\"table\":[";
  bool first = true;
  for (const auto &e : table.top(limit)) {
    if (!first) out += ',';
    first = false;
    out += "{\"fingerprint\":";
    log::append_json_string(out, e.fingerprint);
    out += ",\"query\":";
    log::append_json_string(out, e.query);
    out += ",\"count\":" + std::to_string(e.count) + ",\"kinds\":{";
    bool first_kind = true;
    for (size_t k = 1; k < e.by_kind.size(); ++k) {
      if (e.by_kind[k] == 0) continue;
      if (!first_kind) out += ',';
      first_kind = false;
      log::append_json_string(out, policy::to_string(static_cast<policy::MismatchKind>(k)));
      out += ':' + std::to_string(e.by_kind[k]);
    }
    out += "},\"persistent\":" + std::to_string(e.persistent) +
           ",\"transient\":" + std::to_string(e.transient) + ",\"first_seen\":";
    log::append_json_string(out, log::utc_timestamp_ms(e.first_seen_ms));
    out += ",\"last_seen\":";
    log::append_json_string(out, log::utc_timestamp_ms(e.last_seen_ms));
    out += ",\"rule\":";
    log::append_json_string(out, e.rule);
    out += ",\"target\":";
    log::append_json_string(out, e.target);
    out += ",\"example\":";
    log::append_json_string(out, e.example);
    out += '}';
  }
  out += "]}";
  return out;
}

void ShadowRead::on_primary(const protocol::Header &h, std::string_view body) {
  switch (h.type) {
    case protocol::backend::kRowDescription:
      primary.on_row_description(body);
      break;
    case protocol::backend::kDataRow:
      primary.on_data_row(body);
      break;
    case protocol::backend::kCommandComplete:
      primary.on_command_complete(body);
      ++results;
      break;
    case protocol::backend::kErrorResponse:
      primary.on_error(body);
      ++results;
      break;
    default:
      break;
  }
}

std::string mismatch_json(const ShadowRead &read, const policy::ResultDigest &shadow,
                          const policy::Comparison &c, std::string_view target, bool redact,
                          int64_t unix_ms, std::string_view fingerprint,
                          std::string_view normalized) {
  std::string out = "{\"time\":";
  log::append_json_string(out, log::utc_timestamp_ms(unix_ms));
  out += ",\"target\":";
  log::append_json_string(out, target);
  out += ",\"rule\":";
  log::append_json_string(out, read.rule);
  out += ",\"fingerprint\":";
  log::append_json_string(out, fingerprint);
  out += ",\"statement\":";
  log::append_json_string(out, std::string_view(read.statement).substr(0, kStatementLog));
  out += ",\"normalized\":";
  log::append_json_string(out, normalized.substr(0, kStatementLog));
  out += ",\"kind\":";
  log::append_json_string(out, policy::to_string(c.kind));
  out += ",\"detail\":";
  log::append_json_string(out, c.detail);
  std::string primary_row = c.primary_row;
  std::string shadow_row = c.shadow_row;
  if (c.evidence == policy::RowEvidence::kOnlyShadow)
    primary_row = more_often_in(read.primary, shadow);
  if (c.evidence == policy::RowEvidence::kOnlyPrimary)
    shadow_row = more_often_in(shadow, read.primary);
  append_side(out, "primary", read.primary, primary_row, redact);
  append_side(out, "shadow", shadow, shadow_row, redact);
  out += '}';
  return out;
}

}  // namespace pgtandem::proxy

// The mirror leg of a session: applies the units WriteCapture released, in order, on a connection
// of its own to the other target, compares each outcome with the primary's, and journals whatever
// it cannot apply. The client never waits for it: units are queued and applied by a coroutine of
// their own, which outlives the client session until its queue is drained.
//
// Threads (docs/design.md 4.2): the link runs on its home, a mirror link thread at a lower
// priority ([mirror] link_threads), or its session's worker when there is none. The session's side
// (push, finish, the drained/lend checks, lend and give_back) runs on the session's worker; the
// link's side (intake, run, apply, the apply timeout, journal_pending) on the home. They meet in
// the inbox (under mu_), a few atomics, and the lend: a lend happens only while the link is
// drained (its coroutine waits and touches nothing the borrower uses), and moves the socket to the
// borrower's io_context by its descriptor (Stream::rehome); give_back moves it home.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <cstdint>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "proxy/auth/backend_login.h"
#include "proxy/mirror/journal.h"
#include "proxy/worker.h"
#include "policy/mirror/answer_match.h"
#include "policy/mirror/mirror_batch.h"
#include "policy/mirror/unit_queue.h"
#include "policy/mirror/write_capture.h"

namespace pgtandem::proxy {

struct MirrorShared;
// A unit numbered `seq` by the commit order is done (or a reserved number went unused): moves the
// watermark and wakes the links waiting for it (any thread; 0 is ignored).
void order_done(MirrorShared& mirror, uint64_t seq);

struct MirrorContext {
  std::string session_id;
  std::string user;
  std::string database;
  std::vector<std::pair<std::string, std::string>> params;  // startup params but user/database
};

class MirrorLink : public std::enable_shared_from_this<MirrorLink> {
 public:
  // Creates the link and starts its coroutine on the worker.
  // Creates the link on `worker`'s mirror home and starts its coroutine there.
  static std::shared_ptr<MirrorLink> start(Worker& worker, MirrorContext context, size_t target);

  // A link to `target` with `model`'s login and session settings (startup parameters and the
  // SET-like units it applied), nothing queued: shadow rechecks run on such short-lived links.
  static std::shared_ptr<MirrorLink> start_like(const MirrorLink& model, size_t target);

  // `home`: where the link runs; `moves`: it is another thread than the sessions' (a lend moves the
  // socket to the borrower's io_context and back).
  MirrorLink(Worker& home, MirrorContext context, size_t target, bool moves);

  // Queues units released by the capture (never blocks; the session's worker). `capture` supplies
  // the Parse messages of the statements the units bind, for journal entries. The units are
  // numbered here, in the session's order, and handed to the link's thread through the inbox;
  // `units` is left empty. `m`: the [mirror] settings of the caller's config snapshot (the session
  // takes a reload between requests; a load of the shared snapshot here cost an atomic
  // shared_ptr copy per transaction).
  void push(std::vector<policy::MirrorUnit>& units, policy::WriteCapture& capture,
            const config::Mirror& m);
  // The client session ended: apply what is queued, then close.
  void finish();
  // pgtandem is stopping: everything not yet applied goes to the journal now (on the home).
  void journal_pending(std::string_view reason);
  // Nothing pushed that is not applied or journaled: every write of the session is on the target.
  // Any thread; once true, what the link's thread did with the socket happened before.
  bool drained() const { return outstanding_.load(std::memory_order_acquire) == 0; }
  bool over_limit() const;
  // The queues would be over a limit of `m` with `more` bytes added (push checks each unit).
  bool over_limit(const config::Mirror& m, uint64_t more) const;
  // After every thread stopped (Server::stop): closes the socket.
  void close();

  // Routed reads (issue 4) borrow the link's connection: it carries the session's replayed state
  // (startup parameters, SET, prepared statements) and, once drained, every write the session
  // made, so a read served on it sees the session's own writes. Only while drained and healthy.
  bool can_lend() const {
    return drained() && !lent_.load(std::memory_order_acquire) && !journaling() &&
           !finished_.load(std::memory_order_acquire);
  }
  bool lent() const { return lent_.load(std::memory_order_acquire); }
  // Connects (and logs in) if needed. nullptr if the target cannot be reached: the link itself is
  // not degraded by that (no write was lost), but the target is marked down for a while. The
  // socket is the borrower's (its io_context's) until give_back. Borrowers on two threads (a
  // routed read on the session's worker, a shadow read on the link's home) may both see
  // can_lend(): one wins, the other gets nullptr with `*error == kLentElsewhere` (not a failure
  // of the target).
  asio::awaitable<Socket*> lend(std::string* error);
  static constexpr std::string_view kLentElsewhere = "the link's connection is lent";
  // Bytes already read from the lent socket beyond the last answer (the borrower continues them).
  std::vector<char>& read_buffer() { return rbuf_; }
  size_t& read_end() { return rend_; }
  // `broken`: the borrower left the connection in an unknown state: it is closed. The next
  // connection has the session's settings replayed but not the statements earlier units
  // prepared, so a link that mirrors writes degrades (its later writes go to the journal); one
  // that only serves routed reads reconnects lazily.
  void give_back(bool broken, bool mirrors_writes);
  // The server's key for the link's connection (to forward cancels once it serves the client).
  const BackendKey& backend_key() const { return key_; }
  size_t target() const { return target_; }
  // The worker the link runs on (its home): shadow reads run there too, off the client's path.
  Worker& home() const { return worker_; }
  // A primary flip swapped connections: the link's (lent) socket is now the session's former
  // primary connection, to `target`, with `key`.
  void retarget(size_t target, BackendKey key) {
    target_ = target;
    key_ = key;
    connected_.store(true, std::memory_order_release);
    ++epoch_;  // another connection: what routed reads prepared is not there
    rend_ = 0;
    if (rbuf_.empty()) rbuf_.resize(16 * 1024);
  }
  bool connected() const { return connected_.load(std::memory_order_acquire); }
  // Incremented at every new connection: what was prepared on the previous one is gone.
  uint64_t epoch() const { return epoch_; }
  // Units ever pushed (writes and session state): a shadow read sampled at one count compares
  // against the data the link holds only while the count stays the same.
  uint64_t pushed() const { return pushed_.load(std::memory_order_acquire); }
  // Called from any thread once the commit order lets the link go on: wakes its wait on its own
  // worker.
  void order_ready();
  // At a stop, after the home's thread has ended: the coroutine parked in its idle wait (idle_)
  // is let go, its frames destroyed with the home's io_context as a pending operation's would be.
  void abandon_idle() { idle_.reset(); }

 private:
  // A unit handed over by push(); `full`: the queues were over their limit with overflow =
  // "journal" (the session degrades there, in order).
  struct Pushed {
    policy::MirrorUnit unit;
    bool full = false;
  };
  // On the link's thread: takes the inbox into the queue (or the journal, as push() once did).
  void intake();
  // Runs intake() on the link's thread: at once when called there, else posted (one post in
  // flight at a time); then resumes run() if it waits idle.
  void request_intake();
  // The posting half of request_intake(), for a caller that set intake_posted_ under mu_ itself.
  void post_intake();
  // `n` pushed units are applied, journaled or marked: drained() counts them no more.
  void settled(size_t n) { outstanding_.fetch_sub(n, std::memory_order_acq_rel); }
  static std::shared_ptr<MirrorLink> start_on(Worker& home, MirrorContext context, size_t target,
                                              bool moves);
  asio::awaitable<void> run();
  asio::awaitable<bool> connect(std::string* error);
  asio::awaitable<bool> replay_state();
  // Applies in_flight_ (one unit, or several joined in batch_) and settles each unit's fate.
  asio::awaitable<void> apply();
  // Waits until every unit numbered up to `after` is done (commit order across sessions,
  // policy/mirror/mirror_order.h), at most kMaxOrderWait; then it gives up on those for every link.
  asio::awaitable<void> wait_for_order(uint64_t after);
  void order_done(uint64_t seq);
  void applied(policy::MirrorUnit& unit);
  // An error in the target's answers that the primary's answers do not have at that place.
  static bool refused_on_target(const policy::MirrorUnit& unit,
                                std::span<const policy::Outcome> mine);
  // Reads the target's answers into `m`, which the caller started (the units it expects, or none),
  // until the request's last ReadyForQuery; false on a lost connection or broken framing.
  // `status`, if given: that ReadyForQuery's transaction status.
  asio::awaitable<bool> read_outcomes(policy::AnswerMatch& m, char* status);
  // Feeds the answers in the read buffer to `m` and drops the bytes it consumed.
  policy::AnswerMatch::Step feed_answers(policy::AnswerMatch& m);
  // Returns false, and leaves the unit alone, only with `may_hold` while catch-up drains and the
  // unit is numbered past its mark (MirrorBacklog): such a unit waits in the queue for live.
  bool journal(policy::MirrorUnit& unit, std::string_view reason, std::string_view detail,
               bool uncertain, bool may_hold = false);
  void degrade(std::string reason, std::string detail);
  void compare(const policy::MirrorUnit& unit, std::span<const policy::Outcome> mirror);
  void remember_state(const policy::MirrorUnit& unit);
  void account(int64_t delta);
  // Whether the link's units go to the journal now: with catch-up, while a backlog exists (for
  // every link); without, once the link degraded (for good).
  bool journaling() const {
    const auto& b = state_.mirror.backlog;
    return b.enabled ? b.journaling.load(std::memory_order_acquire)
                     : degraded_.load(std::memory_order_acquire);
  }
  // Apply timeout ([mirror] apply_timeout_ms; docs/design.md "Apply timeout"): watch_apply() arms
  // the watch when a unit goes out, end_watch() ends it once apply() returned. Past the timeout
  // on_hang() moves the session to the journal (its queue and later units) while the units in
  // flight keep waiting for their answer; past the give-up time the connection is closed, and
  // units that got no answer are marked for repair (unresolved()), neither journaled nor dropped.
  void watch_apply();
  void arm_watch();
  void on_watch();
  void on_hang();
  void give_up_hang();
  void end_watch();
  void stop_watch();  // the link is done: the timer's wait ends now
  void unresolved(std::string_view why);
  // The connection broke before the whole answer to in_flight_ came (the write failed after
  // `written` bytes, or the read did after `outcomes`): units answered in full applied, units the
  // target refused or ended (57P01 at a fast shutdown) and the ones after them did not (journaled),
  // and from the first unit whose answers stop without an error their fate is unknown (marked for
  // repair, as unresolved() does). Leaves in_flight_ to run()'s accounting.
  void settle_lost_answer(const boost::system::error_code& write_ec, std::size_t written,
                          const std::vector<policy::Outcome>& outcomes);
  // Marks in_flight_[from..] for repair (kind: the mark's), done in commit order, counted failed.
  void mark_unknown_fate(std::size_t from, std::string_view kind, std::string_view what);
  // After journaling (or on another connection), the statements the session's units bind may be
  // missing on the link's connection: prepares them ahead of the units in flight.
  asio::awaitable<bool> reprepare();

  Worker& worker_;  // the home: the link's io_context, timers and stats
  const bool moves_;
  ServerState& state_;
  MirrorContext context_;
  std::atomic<size_t> target_;  // written by retarget() while lent (a flip)
  Socket socket_;
  // run()'s waits for the commit order and the journaling path's short pause (intake() ends them).
  asio::steady_timer wake_;
  // run()'s idle wait (an empty queue, or the socket lent): the coroutine's completion handler,
  // parked until request_intake() resumes it. A wait on wake_ did this before: arming and
  // cancelling a timer go through the reactor's timer queue under its lock: ~900 instructions per
  // mirrored transaction more (bench/README.md). Only the link's thread touches it.
  using IdleHandler = asio::detail::awaitable_handler<asio::any_io_executor>;
  std::optional<IdleHandler> idle_;
  // The parked handler, taken out; empty when run() is not idle.
  std::optional<IdleHandler> take_idle() { return std::exchange(idle_, std::nullopt); }
  asio::steady_timer hang_timer_;  // the apply timeout's watch (lazy: see watch_apply())
  static constexpr auto kNoWatch = std::chrono::steady_clock::time_point::max();
  std::chrono::steady_clock::time_point watch_deadline_ = kNoWatch;  // of the apply in flight
  bool watch_armed_ = false;       // hang_timer_ has a wait in progress
  uint64_t watch_gen_ = 0;         // of that wait (one replaced by arm_watch() is ignored)
  bool hung_ = false;              // the unit(s) in flight outlived the apply timeout
  int64_t hung_since_ms_ = 0;      // Unix ms the unit(s) in flight were sent
  std::mutex mu_;
  std::vector<Pushed> inbox_;      // under mu_: pushed, not yet taken in
  bool intake_posted_ = false;     // under mu_
  std::vector<Pushed> intake_;     // the link's thread: the inbox being taken in
  // Applied units on their way back to the session's capture, for their buffers
  // (WriteCapture::give_back): the link's thread collects them (spent_), intake() moves them to
  // returned_ under mu_, and push() takes them into returning_ and gives them back.
  std::vector<policy::MirrorUnit> spent_;
  std::vector<policy::MirrorUnit> returned_;  // under mu_
  std::vector<policy::MirrorUnit> returning_;
  std::atomic<uint64_t> outstanding_{0};  // pushed, not yet settled (drained())
  policy::UnitQueue queue_;  // the link's thread (policy/mirror/unit_queue.h)
  std::atomic<int64_t> queued_bytes_{0};
  bool busy_ = false;                      // the link's thread
  bool stopped_ = false;                   // the link's thread: journal_pending() ran
  std::atomic<bool> lent_{false};
  uint64_t epoch_ = 0;
  // Written by the session's worker only, read by its shadow lane on the home.
  std::atomic<uint64_t> pushed_{0};
  BackendKey key_;
  std::vector<policy::MirrorUnit> in_flight_;  // being applied, in order
  policy::TransactionBatch batch_;              // in_flight_ as one request, when it can be
  std::vector<policy::Outcome> outcomes_;       // the target's answers to in_flight_ (apply)
  policy::AnswerMatch answers_;                 // ... compared as they are read
  std::atomic<bool> finished_{false};
  std::atomic<bool> connected_{false};
  // Once one unit of the session could not be applied, every later one is journaled too, so that
  // replay applies them after it, in the session's order.
  std::atomic<bool> degraded_{false};
  std::mutex degrade_mu_;  // degrade() may run on a borrower's thread (give_back)
  std::string degraded_reason_;
  std::string degraded_detail_;
  std::vector<char> rbuf_;
  size_t rend_ = 0;
  // Session-state units applied so far (journal context), under state_mu_: start_like() copies
  // them on a session's worker.
  mutable std::mutex state_mu_;
  std::vector<std::string> state_units_;
  size_t state_bytes_ = 0;
  // The Parse of every statement the session's units bind (journal entries carry it), as the
  // capture had it at `generation` (WriteCapture::parse_generation: unchanged means still current).
  struct KnownParse {
    std::string name;
    std::string parse;
    uint64_t generation = 0;
  };
  KnownParse* find_parse(std::string_view name);  // under parse_mu_
  std::mutex parse_mu_;  // push() records, the link's thread reads (journal, reprepare)
  std::vector<KnownParse> parses_;
  // push()'s (the session's thread): the names of the last unit whose binds were looked up, and
  // the capture's parse generation then. A unit binding the same names at the same generation
  // (a client running its statements again: the usual case) needs no lookup.
  std::vector<std::string> checked_binds_;
  uint64_t checked_generation_ = 0;
  // Set once the link journaled a unit or reconnected: binds are prepared again (once per name
  // and connection, in reprepared_) before the units that use them.
  bool reprepare_ = false;
  std::vector<std::string> reprepared_;
};

}  // namespace pgtandem::proxy

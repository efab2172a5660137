#include "proxy/mirror/catchup.h"

#include <chrono>
#include <deque>
#include <sstream>
#include <utility>

#include "proxy/mirror/journal.h"
#include "proxy/mirror/replay.h"
#include "proxy/telemetry/log.h"
#include "proxy/worker.h"

namespace pgtandem::proxy {

namespace {
using Clock = std::chrono::steady_clock;
constexpr auto kIdlePoll = std::chrono::milliseconds(5);
// With nothing journaled and nothing to apply, the idle look backs off to this: a pass every 5 ms
// forever was 200 wake-ups a second of an idle proxy (and of one that mirrors live, which is the
// usual state), each a futex pair and the pass's look at the journal. Once sessions journal, the
// look is every kIdlePoll again; the first entries wait at most this long for it.
constexpr auto kIdleMax = std::chrono::milliseconds(100);
constexpr auto kRateWindow = std::chrono::seconds(3);
// Catch-up starts draining once fewer entries than this are left to read.
constexpr uint64_t kDrainBelow = 2048;
}  // namespace

Catchup::Catchup(ServerState& state, const config::Config& cfg) : state_(state), cfg_(cfg) {}

Catchup::~Catchup() { stop(); }

bool Catchup::open(std::string* error) {
  ReplayOptions opts;
  opts.application_name = "pgtandem-catchup";
  opts.max_connections = 64;
  // A hung target must not hold a stop forever; a timed-out batch is retried (the target's record
  // tells what of it was applied).
  opts.unit_timeout = std::chrono::milliseconds(30000);
  opts.login_timeout = std::chrono::milliseconds(cfg_.limits.connect_timeout_ms);
  applier_ = std::make_unique<JournalApplier>(cfg_, cfg_.mirror.journal_path, opts, report_,
                                              &summary_);
  if (!applier_->open(error)) return false;
  const uint64_t last = state_.mirror.journal ? state_.mirror.journal->last_seq() : 0;
  if (last > applier_->recorded_seq()) {
    state_.mirror.backlog.journaling.store(true, std::memory_order_release);
    state_.mirror.backlog.state.store(MirrorBacklog::kJournaling);
    log::warn("mirror journal holds a backlog: sessions journal until catch-up has applied it",
              {{"journal", cfg_.mirror.journal_path},
               {"applied_through", std::to_string(applier_->recorded_seq())},
               {"last_seq", std::to_string(last)}});
  }
  return true;
}

void Catchup::start() {
  if (!applier_ || thread_.joinable()) return;
  thread_ = std::thread([this] { loop(); });
}

void Catchup::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Catchup::wait(std::chrono::milliseconds d) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, d, [this] { return stopping_; });
}

bool Catchup::try_return_to_live(bool progressing) {
  auto& b = state_.mirror.backlog;
  std::unique_lock lock(b.mu);  // no append can happen while it is held
  if (!b.journaling.load(std::memory_order_acquire)) return true;
  if (b.fenced.load()) return false;  // the fence holds the journal
  if (b.hung_links.load(std::memory_order_acquire) > 0) {
    // A link's unit in flight has had no answer past the apply timeout: entries after it wait for
    // its fate, so nothing may be held in memory for a flip that cannot come (nor flip early).
    b.draining.store(false, std::memory_order_release);
    return false;
  }
  const uint64_t last = state_.mirror.journal ? state_.mirror.journal->last_seq() : 0;
  if (applier_->pending() > 0 || last != applier_->read_through()) {
    // Under load the journal keeps growing: once little is left, units numbered from now on wait
    // in their links for live instead of joining the journal (MirrorBacklog::draining).
    const uint64_t unread = last > applier_->read_through() ? last - applier_->read_through() : 0;
    // Only while catch-up is applying (the target is up): units held during an outage would
    // pile up in memory instead of the journal.
    if (progressing && !b.draining.load(std::memory_order_relaxed) &&
        unread + applier_->pending() < kDrainBelow) {
      b.drain_mark.store(state_.mirror.order.last_assigned(), std::memory_order_release);
      b.draining.store(true, std::memory_order_release);
    }
    return false;
  }
  b.journaling.store(false, std::memory_order_release);
  b.draining.store(false, std::memory_order_release);
  b.returns_to_live.fetch_add(1, std::memory_order_relaxed);
  lock.unlock();
  log::info("mirror backlog applied: sessions mirror live again",
            {{"applied_through", std::to_string(applier_->read_through())}});
  return true;
}

void Catchup::publish(double rate) {
  auto& b = state_.mirror.backlog;
  const uint64_t last = state_.mirror.journal ? state_.mirror.journal->last_seq() : 0;
  const uint64_t read = applier_->read_through();
  b.entries.store(applier_->pending() + (last > read ? last - read : 0), std::memory_order_relaxed);
  const uint64_t size = state_.mirror.journal ? state_.mirror.journal->bytes() : 0;
  const uint64_t offset = applier_->file_offset();
  b.bytes.store(applier_->pending_bytes() + (size > offset ? size - offset : 0),
                std::memory_order_relaxed);
  b.oldest_unix.store(applier_->oldest_pending_time(), std::memory_order_relaxed);
  b.rate.store(rate, std::memory_order_relaxed);
}

void Catchup::loop() {
  ApplyHooks hooks;
  hooks.process_tag = state_.process_tag;
  hooks.done_through = [this] { return state_.mirror.order.done_through(); };
  auto& b = state_.mirror.backlog;
  // (pass start, entries) for the rate: a pass's entries over the time since it started (keyed
  // by its end, a first pass of 1024 entries after an idle wait read as 1024 / 0.2 s = 5,120/s).
  std::deque<std::pair<Clock::time_point, uint64_t>> window;
  auto last_failure_log = Clock::time_point{};
  auto last_progress_log = Clock::time_point{};
  std::chrono::milliseconds idle_wait = kIdlePoll;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) break;
    }
    // The mirror fence (mirror_fence.h): nothing is applied while it holds; the fence goes on only
    // once this thread parked with its generation (so no pass that read the journal before it runs).
    const uint64_t gen = b.fence_gen.load();
    if (b.fenced.load()) {
      b.parked_gen.store(gen);
      b.state.store(MirrorBacklog::kFenced, std::memory_order_relaxed);
      publish(0);
      wait(kIdlePoll);
      continue;
    }
    const auto pass_start = Clock::now();
    PassResult r = applier_->pass(&hooks);
    // What the pass reported (divergences, failures), one log line each.
    if (report_.tellp() > 0) {
      std::istringstream lines(report_.str());
      std::string line;
      while (std::getline(lines, line)) {
        if (line.rfind("divergence", 0) == 0) log::warn("mirror catch-up", {{"report", line}});
      }
      report_.str("");
      report_.clear();
    }
    const auto now = Clock::now();
    if (r.applied + r.skipped > 0) window.emplace_back(pass_start, r.applied + r.skipped);
    while (window.size() > 1 && now - window.front().first > kRateWindow) window.pop_front();
    if (!window.empty() && now - window.front().first > 2 * kRateWindow) window.clear();  // idle
    double rate = 0;
    if (!window.empty()) {
      uint64_t n = 0;
      for (const auto& [t, k] : window) n += k;
      const double span = std::max(
          0.01, std::chrono::duration<double>(now - window.front().first).count());
      rate = static_cast<double>(n) / span;
    }
    b.applied.fetch_add(r.applied, std::memory_order_relaxed);
    b.skipped.fetch_add(r.skipped, std::memory_order_relaxed);
    b.groups.fetch_add(r.groups, std::memory_order_relaxed);
    b.groups_retried.fetch_add(r.groups_retried, std::memory_order_relaxed);
    b.divergences.fetch_add(r.divergences, std::memory_order_relaxed);
    for (uint64_t i = 0; i < r.divergences; ++i) state_.metrics->mirror_divergence("catchup");
    publish(rate);
    if (r.failed) {
      if (b.draining.load(std::memory_order_acquire)) {
        // The target is gone again: units go back to the journal rather than waiting in memory.
        std::unique_lock lock(b.mu);
        b.draining.store(false, std::memory_order_release);
      }
      b.state.store(MirrorBacklog::kWaiting, std::memory_order_relaxed);
      if (now - last_failure_log > std::chrono::seconds(10)) {
        last_failure_log = now;
        log::warn("mirror catch-up waits for the target", {{"error", r.failure}});
      }
      wait(std::chrono::milliseconds(std::max<uint32_t>(200, cfg_.mirror.reconnect_interval_ms)));
      continue;
    }
    if (b.journaling.load(std::memory_order_acquire)) {
      if (try_return_to_live(r.applied + r.skipped > 0)) {
        b.state.store(MirrorBacklog::kLive, std::memory_order_relaxed);
        publish(rate);
      } else {
        b.state.store(MirrorBacklog::kCatchingUp, std::memory_order_relaxed);
      }
    } else if (applier_->pending() == 0) {
      b.state.store(MirrorBacklog::kLive, std::memory_order_relaxed);
    }
    if (b.journaling.load(std::memory_order_relaxed) && now - last_progress_log > std::chrono::seconds(5)) {
      last_progress_log = now;
      log::info("mirror catch-up",
                {{"pending", std::to_string(applier_->pending())},
                 {"read_through", std::to_string(applier_->read_through())},
                 {"last_seq", std::to_string(state_.mirror.journal ? state_.mirror.journal->last_seq() : 0)},
                 {"done_through", std::to_string(state_.mirror.order.done_through())},
                 {"last_assigned", std::to_string(state_.mirror.order.last_assigned())},
                 {"applied", std::to_string(b.applied.load())},
                 {"draining", b.draining.load() ? "yes" : "no"}});
    }
    if (r.applied + r.skipped > 0 || b.journaling.load(std::memory_order_acquire)) {
      idle_wait = kIdlePoll;
    } else {
      idle_wait = std::min(idle_wait * 2, kIdleMax);
    }
    if (r.applied + r.skipped == 0) wait(idle_wait);
  }
}

}  // namespace pgtandem::proxy

namespace pgtandem::proxy {

namespace {
const char* fence_state_name(int s) { return s == 1 ? "paused" : s == 2 ? "armed" : "idle"; }
double oldest_age(const MirrorBacklog& b) {
  const int64_t oldest = b.oldest_unix.load(std::memory_order_relaxed);
  if (oldest == 0 || b.entries.load(std::memory_order_relaxed) == 0) return 0;
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  return static_cast<double>(std::max<int64_t>(0, now - oldest));
}
}  // namespace

std::string mirror_backlog_json(const ServerState& state) {
  const MirrorBacklog& b = state.mirror.backlog;
  std::string out = ",\"backlog\":{\"entries\":" + std::to_string(b.entries.load()) +
                    ",\"bytes\":" + std::to_string(b.bytes.load()) +
                    ",\"oldest_age_seconds\":" + std::to_string(static_cast<int64_t>(oldest_age(b))) +
                    "},\"catchup\":{\"enabled\":" + (b.enabled ? "true" : "false") +
                    ",\"state\":\"" + MirrorBacklog::state_name(b.state.load()) + "\"" +
                    ",\"journaling\":" + (b.journaling.load() ? "true" : "false") +
                    ",\"applied\":" + std::to_string(b.applied.load()) +
                    ",\"skipped_already_applied\":" + std::to_string(b.skipped.load()) +
                    ",\"divergences\":" + std::to_string(b.divergences.load()) +
                    ",\"groups\":" + std::to_string(b.groups.load()) +
                    ",\"groups_retried\":" + std::to_string(b.groups_retried.load()) +
                    ",\"rate_per_second\":" + std::to_string(static_cast<int64_t>(b.rate.load())) +
                    ",\"returns_to_live\":" + std::to_string(b.returns_to_live.load()) +
                    "},\"apply_timeout\":{\"timeouts\":" + std::to_string(b.apply_timeouts.load()) +
                    ",\"hung_links\":" + std::to_string(b.hung_links.load()) +
                    ",\"unresolved_units\":" + std::to_string(b.apply_timeout_unresolved.load()) +
                    "},\"lost_answer_unresolved_units\":" +
                    std::to_string(b.lost_answer_unresolved.load()) + ",\"fence\":{\"state\":\"" + fence_state_name(b.fence_state.load()) + "\"" +
                    ",\"through\":" + std::to_string(b.fence_through.load()) +
                    ",\"fences\":" + std::to_string(b.fences.load()) +
                    ",\"expired\":" + std::to_string(b.fences_expired.load()) + "}";
  return out;
}

std::vector<Metrics::Sample> mirror_backlog_samples(const ServerState& state) {
  const MirrorBacklog& b = state.mirror.backlog;
  std::vector<Metrics::Sample> out;
  auto gauge = [&](const char* name, const char* help, double v) {
    out.push_back({name, help, false, "", "", v});
  };
  auto counter = [&](const char* name, const char* help, double v) {
    out.push_back({name, help, true, "", "", v});
  };
  gauge("pgtandem_mirror_backlog_entries", "Journal entries not yet applied on the mirror target",
        static_cast<double>(b.entries.load()));
  gauge("pgtandem_mirror_backlog_bytes", "Journal bytes not yet applied on the mirror target",
        static_cast<double>(b.bytes.load()));
  gauge("pgtandem_mirror_backlog_oldest_age_seconds",
        "Age of the oldest journal entry not yet applied", oldest_age(b));
  counter("pgtandem_mirror_catchup_applied_total", "Journal entries applied by automatic catch-up",
          static_cast<double>(b.applied.load()));
  counter("pgtandem_mirror_catchup_skipped_total",
          "Journal entries catch-up found already applied (recorded on the target)",
          static_cast<double>(b.skipped.load()));
  counter("pgtandem_mirror_catchup_groups_total",
          "Transactions in which catch-up applied several journal entries at once",
          static_cast<double>(b.groups.load()));
  counter("pgtandem_mirror_catchup_groups_retried_total",
          "Catch-up groups rolled back (an entry failed) and applied again one entry at a time",
          static_cast<double>(b.groups_retried.load()));
  gauge("pgtandem_mirror_catchup_rate", "Entries per second catch-up applied (last 3 s)",
        b.rate.load());
  counter("pgtandem_mirror_catchup_returns_to_live_total",
          "Times every session returned to live mirroring after a backlog was applied",
          static_cast<double>(b.returns_to_live.load()));
  counter("pgtandem_mirror_apply_timeouts_total",
          "Times a mirror link's unit had no answer within apply_timeout_ms (the session journaled)",
          static_cast<double>(b.apply_timeouts.load()));
  counter("pgtandem_mirror_apply_timeout_unresolved_total",
          "Mirrored units of unknown fate after an apply timeout (needs-repair mark, not reapplied)",
          static_cast<double>(b.apply_timeout_unresolved.load()));
  counter("pgtandem_mirror_lost_answer_unresolved_total",
          "Mirrored units whose connection broke before their answer said whether they committed "
          "(needs-repair mark, not reapplied)",
          static_cast<double>(b.lost_answer_unresolved.load()));
  gauge("pgtandem_mirror_hung_links",
        "Mirror links waiting past apply_timeout_ms for the answer to their unit in flight",
        static_cast<double>(b.hung_links.load()));
  const int current = b.state.load();
  for (int s = MirrorBacklog::kLive; s <= MirrorBacklog::kFenced; ++s) {
    out.push_back({"pgtandem_mirror_catchup_state",
                   "Catch-up state: live, journaling, catching_up, waiting_for_target, fenced (1 = current)",
                   false, "state", MirrorBacklog::state_name(s), s == current ? 1.0 : 0.0});
  }
  const int fence = b.fence_state.load();
  for (int s = 0; s <= 2; ++s) {
    out.push_back({"pgtandem_mirror_fence_state",
                   "Mirror fence of a snapshot backfill: idle, paused, armed (1 = current)", false,
                   "state", fence_state_name(s), s == fence ? 1.0 : 0.0});
  }
  counter("pgtandem_mirror_fences_total", "Mirror fences armed (snapshot backfills)",
          static_cast<double>(b.fences.load()));
  counter("pgtandem_mirror_fences_expired_total",
          "Mirror fences ended by their lease or the journal's size instead of released",
          static_cast<double>(b.fences_expired.load()));
  return out;
}

}  // namespace pgtandem::proxy

// What keeps mirroring honest about what it may have lost (issue 15), in pgtandem's state directory:
// - the crash window: a marker file (<state_dir>/mirror.running) exists while pgtandem runs and is
//   rewritten once a second, off the data path, with the time since which mirror units have been
//   queued and not yet applied (sampled from the commit-order counters, no per-message work). A
//   clean stop (its queues journaled) removes it; finding it at start means the previous process
//   stopped uncleanly and the mirror target may lack the writes committed in that window;
// - needs-repair marks (<state_dir>/mirror.needs-repair): such a crash window, or the journal
//   reaching journal_max_bytes with journal_full = "stop" (mirroring stopped, writes not mirrored).
//   They survive restarts until an operator clears them (after verify/repair), and while one
//   exists the cutover gate `needs_repair` fails;
// - the journal limit's "stop" state (process-wide: no more writes mirrored).
// Thread-safe; one mutex for the marks, atomics for what the workers read.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace pgtandem::config {
struct Mirror;
}
namespace pgtandem::proxy {

struct MirrorShared;
class Metrics;

struct RepairMark {
  std::string kind;    // "crash_window" | "journal_full" | "apply_timeout"
  std::string target;  // the mirror target the writes may be missing on
  int64_t from_ms = 0;  // Unix milliseconds: crash window start, or when the journal filled
  int64_t to_ms = 0;    // crash window end; 0 for journal_full
  std::string detail;
};

// What the sampler reads once a second (all cheap loads).
struct MirrorSample {
  bool mirroring = false;      // mirror_writes on in the current snapshot
  std::string target;          // the mirror target's name now
  uint64_t last_assigned = 0;  // policy::MirrorOrder::last_assigned()
  uint64_t done_through = 0;   // policy::MirrorOrder::done_through()
  int64_t queue_bytes = 0;     // MirrorShared::queue_bytes
};

// The marker's sampling logic, pure (unit-tested): from successive samples, the time since which
// something has been pending (0 = nothing pending at the last sample).
class PendingTracker {
 public:
  // Returns the time (Unix ms) since which the oldest unapplied unit has been waiting, at most,
  // or 0 when nothing is pending.
  int64_t observe(int64_t now_ms, const MirrorSample& s);

 private:
  struct Point {
    int64_t ms;
    uint64_t last_assigned;
  };
  std::deque<Point> points_;   // increasing; trimmed to those still needed
  int64_t last_drained_ms_ = 0;  // last sample at which nothing was pending
};

class MirrorSafety {
 public:
  static constexpr auto kSampleInterval = std::chrono::milliseconds(1000);
  static constexpr const char* kMarkerName = "mirror.running";
  static constexpr const char* kMarksName = "mirror.needs-repair";

  // Creates state_dir (0700) if missing, checks that it is a writable directory, takes the marker
  // (flock: one pgtandem per state dir), loads the marks, and turns a marker left by an unclean
  // stop into a crash_window mark (logged). nullptr with *error otherwise.
  static std::unique_ptr<MirrorSafety> open(const std::string& state_dir, std::string* error);
  ~MirrorSafety();  // stops the sampler; the marker stays unless clean_stop() ran

  // Starts the once-a-second marker update.
  void start_sampler(std::function<MirrorSample()> sample);
  // Everything queued was applied or journaled: the marker goes (no crash window next start).
  void clean_stop();

  // --- the journal limit ---
  // Mirroring stopped because the journal was full (journal_full = "stop"); a relaxed load.
  bool stopped() const { return stopped_.load(std::memory_order_relaxed); }
  // The journal reached its limit in "stop" mode: mirroring stops now (first call logs and marks).
  void stop_mirroring(const std::string& target, uint64_t journal_bytes, uint64_t limit);
  // A write not mirrored because mirroring stopped (counted, for /status and the log).
  void count_not_mirrored() { not_mirrored_.fetch_add(1, std::memory_order_relaxed); }
  uint64_t not_mirrored() const { return not_mirrored_.load(std::memory_order_relaxed); }

  // --- marks ---
  std::vector<RepairMark> marks() const;
  // Adds a mark and persists it (logged by the caller): e.g. "apply_timeout", units a hung target
  // may or may not have committed.
  void add_mark(RepairMark mark);
  // Removes the marks of `kind` ("" = all) and persists; returns how many went.
  size_t clear(std::string_view kind);
  // Removes, of the marks of `kind` ("" = all), those whose id ("kind|target|from|to", the times
  // as /status shows them: policy/migrate/marks.h MarkView::id) is listed; returns how many went.
  // A clean verify names the marks it saw at its start: one added meanwhile stays.
  size_t clear_listed(std::string_view kind, const std::vector<std::string>& ids);
  // Seconds covered by the pending crash windows (0 = none), for the metric.
  double crash_window_seconds() const;
  // The gate's figure: "" when nothing needs repair.
  std::string needs_repair_summary() const;
  // `"crash_window":...,"needs_repair":[...],"stopped":...` (members of /status's mirror object).
  std::string status_members() const;

  const std::string& state_dir() const { return dir_; }
  // The last pending-since figure the sampler wrote (0 = nothing pending).
  int64_t pending_since_ms() const { return pending_since_.load(std::memory_order_relaxed); }

 private:
  size_t clear_if(std::string_view kind, const std::vector<std::string>* ids);
  MirrorSafety() = default;
  bool save_marks_locked(std::string* error) const;
  void write_marker(int64_t now_ms, int64_t pending_since_ms, const MirrorSample& s);
  void sample_loop();

  std::string dir_;
  std::string marker_path_;
  std::string marks_path_;
  int marker_fd_ = -1;
  int64_t started_ms_ = 0;

  mutable std::mutex mu_;  // marks_
  std::vector<RepairMark> marks_;

  std::atomic<bool> stopped_{false};
  std::atomic<uint64_t> not_mirrored_{0};
  std::atomic<int64_t> pending_since_{0};

  std::function<MirrorSample()> sample_;
  PendingTracker tracker_;
  std::mutex sampler_mu_;
  std::condition_variable sampler_cv_;
  bool sampler_stop_ = false;
  std::thread sampler_;
};

// The journal limit at the two places the mirror link meets it (proxy/mirror/mirror_link_journal.cc
// and mirror_link_handover.cc):
// - before a journal append: true when the journal is at journal_max_bytes and journal_full is
//   "stop": mirroring stops (once: logged, marked), this write is counted as not mirrored
//   (outcome="stopped"), and the caller must not append it. The journal ends at most one entry
//   past the limit (the check is before the append, on the file's size).
bool journal_full_stops(MirrorShared& mirror, const config::Mirror& m, const std::string& target,
                        Metrics& metrics);
// - when a unit is pushed: true when mirroring stopped and the unit writes (session state still
//   goes to the link: reads routed there need the session's settings); counted like the above.
bool stopped_drops(MirrorShared& mirror, bool session_state, Metrics& metrics);

// Parses a marker file's text; false if it is not one. Exposed for tests.
struct MarkerContents {
  int64_t pid = 0;
  int64_t started_ms = 0;
  int64_t sampled_ms = 0;
  int64_t pending_since_ms = 0;  // 0 = nothing pending at the last sample
  bool mirroring = false;
  std::string target;
};
bool parse_marker(std::string_view text, MarkerContents* out);
// The crash window a marker left by an unclean stop stands for: [pending since, or the last sample
// when nothing was pending; the last sample + 2 intervals] (the process died before the next
// sample would have been written, allowing one interval of scheduling delay).
RepairMark crash_window_from_marker(const MarkerContents& m);

}  // namespace pgtandem::proxy

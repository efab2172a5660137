#include "proxy/mirror/mirror_safety.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "config/config.h"
#include "policy/migrate/marks.h"
#include "proxy/mirror/journal.h"
#include "proxy/mirror/mirror_shared.h"
#include "proxy/telemetry/log.h"
#include "proxy/telemetry/metrics.h"

namespace pgtandem::proxy {
namespace {

constexpr size_t kMarkerSize = 512;  // rewritten in place, one block
constexpr size_t kMaxPoints = 100000;
constexpr const char* kMarkerMagic = "pgtandem-mirror-marker 1";

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

bool parse_i64(std::string_view s, int64_t* out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

// Tabs and newlines would break the marks file's lines.
std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
  return s;
}

bool write_all_fd(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t w = ::write(fd, data.data() + off, data.size() - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    off += static_cast<size_t>(w);
  }
  return true;
}

bool fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

std::string window_text(const RepairMark& m) {
  return log::utc_timestamp_ms(m.from_ms) + " .. " + log::utc_timestamp_ms(m.to_ms);
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// PendingTracker

int64_t PendingTracker::observe(int64_t now, const MirrorSample& s) {
  const bool numbers_done = s.done_through >= s.last_assigned;
  if (numbers_done && s.queue_bytes <= 0) {
    last_drained_ms_ = now;
    points_.clear();
    points_.push_back({now, s.last_assigned});
    return 0;
  }
  points_.push_back({now, s.last_assigned});
  if (points_.size() > kMaxPoints) points_.pop_front();
  if (numbers_done) {
    // Bytes queued though every number counts as done: the commit order gave up waiting for a
    // stuck unit (policy/mirror/mirror_order.h). Only the last drained sample bounds it.
    return last_drained_ms_ != 0 ? last_drained_ms_ : points_.front().ms;
  }
  // The oldest unit not done was numbered after the latest sample that had not yet numbered it.
  const uint64_t oldest = s.done_through + 1;
  while (points_.size() >= 2 && points_[1].last_assigned < oldest) points_.pop_front();
  return points_.front().ms;
}

// ------------------------------------------------------------------------------------------------
// Marker

bool parse_marker(std::string_view text, MarkerContents* out) {
  MarkerContents m;
  bool magic = false;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.remove_suffix(1);
    if (line.empty()) continue;
    if (line == kMarkerMagic) {
      magic = true;
      continue;
    }
    const size_t sp = line.find(' ');
    if (sp == std::string_view::npos) continue;
    const std::string_view key = line.substr(0, sp);
    const std::string_view value = line.substr(sp + 1);
    int64_t v = 0;
    if (key == "target") {
      m.target = std::string(value);
    } else if (parse_i64(value, &v)) {
      if (key == "pid") m.pid = v;
      if (key == "started_ms") m.started_ms = v;
      if (key == "sampled_ms") m.sampled_ms = v;
      if (key == "pending_since_ms") m.pending_since_ms = v;
      if (key == "mirroring") m.mirroring = v != 0;
    }
  }
  if (!magic || m.sampled_ms == 0) return false;
  *out = std::move(m);
  return true;
}

RepairMark crash_window_from_marker(const MarkerContents& m) {
  RepairMark mark;
  if (!m.mirroring && m.pending_since_ms == 0) return mark;  // not mirroring, nothing queued
  mark.kind = "crash_window";
  mark.target = m.target.empty() ? "new" : m.target;
  const int64_t interval = MirrorSafety::kSampleInterval.count();
  mark.from_ms = m.pending_since_ms != 0 ? std::min(m.pending_since_ms, m.sampled_ms) : m.sampled_ms;
  mark.to_ms = m.sampled_ms + 2 * interval;
  mark.detail = "pgtandem (pid " + std::to_string(m.pid) + ", started " +
                log::utc_timestamp_ms(m.started_ms) +
                ") stopped without journaling its mirror queue: writes committed on the primary "
                "in this window may be missing on " + mark.target;
  return mark;
}

void MirrorSafety::write_marker(int64_t now, int64_t pending_since, const MirrorSample& s) {
  std::string text = std::string(kMarkerMagic) + "\npid " + std::to_string(::getpid()) +
                     "\nstarted_ms " + std::to_string(started_ms_) + "\nsampled_ms " +
                     std::to_string(now) + "\npending_since_ms " + std::to_string(pending_since) +
                     "\nmirroring " + (s.mirroring ? "1" : "0") + "\ntarget " + one_line(s.target) +
                     "\n";
  if (text.size() > kMarkerSize) text.resize(kMarkerSize);
  text.resize(kMarkerSize, ' ');
  text.back() = '\n';
  // In place, one block: a crash leaves either the previous record or this one.
  if (::pwrite(marker_fd_, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size()) ||
      ::fdatasync(marker_fd_) != 0) {
    std::string err = errno_text("write");
    log::error("mirror crash-window marker not updated", {{"path", marker_path_}, {"error", err}});
  }
}

// ------------------------------------------------------------------------------------------------
// MirrorSafety

std::unique_ptr<MirrorSafety> MirrorSafety::open(const std::string& state_dir, std::string* error) {
  std::unique_ptr<MirrorSafety> s(new MirrorSafety());
  s->dir_ = state_dir;
  s->marker_path_ = state_dir + "/" + kMarkerName;
  s->marks_path_ = state_dir + "/" + kMarksName;
  s->started_ms_ = now_ms();
  const std::string hint =
      ": create it for the user pgtandem runs as (systemd: StateDirectory=pgtandem; the Debian "
      "package: /var/lib/pgtandem owned by pgtandem), or set state_dir in the config";
  if (::mkdir(state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    *error = errno_text("state_dir " + state_dir + " does not exist and cannot be created") + hint;
    return nullptr;
  }
  struct stat st {};
  if (::stat(state_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    *error = "state_dir " + state_dir + " is not a directory" + hint;
    return nullptr;
  }
  if (::access(state_dir.c_str(), W_OK | X_OK) != 0) {
    *error = errno_text("state_dir " + state_dir + " is not writable by this user") + hint;
    return nullptr;
  }
  s->marker_fd_ = ::open(s->marker_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (s->marker_fd_ < 0) {
    *error = errno_text("cannot open " + s->marker_path_);
    return nullptr;
  }
  std::string old(4096, '\0');
  const ssize_t n = ::pread(s->marker_fd_, old.data(), old.size(), 0);
  old.resize(n > 0 ? static_cast<size_t>(n) : 0);
  if (::flock(s->marker_fd_, LOCK_EX | LOCK_NB) != 0) {
    MarkerContents m;
    *error = errno == EWOULDBLOCK
                 ? "state_dir " + state_dir + " is in use by another pgtandem" +
                       (parse_marker(old, &m) ? " (pid " + std::to_string(m.pid) + ")" : "")
                 : errno_text("cannot lock " + s->marker_path_);
    return nullptr;
  }

  // The marks left by earlier processes.
  {
    std::ifstream in(s->marks_path_);
    std::string line;
    while (std::getline(in, line)) {
      std::vector<std::string> f;
      std::stringstream ss(line);
      std::string part;
      while (std::getline(ss, part, '\t')) f.push_back(part);
      RepairMark m;
      if (f.size() < 5 || !parse_i64(f[2], &m.from_ms) || !parse_i64(f[3], &m.to_ms)) continue;
      m.kind = f[0];
      m.target = f[1];
      m.detail = f[4];
      s->marks_.push_back(std::move(m));
    }
  }
  // A marker still there: the previous process did not stop cleanly.
  if (!old.empty()) {
    MarkerContents m;
    RepairMark mark;
    if (parse_marker(old, &m)) {
      mark = crash_window_from_marker(m);
    } else {
      mark.kind = "crash_window";
      mark.target = "new";
      mark.from_ms = st.st_mtime * int64_t{1000};
      struct stat mst {};
      if (::fstat(s->marker_fd_, &mst) == 0) mark.from_ms = mst.st_mtime * int64_t{1000};
      mark.to_ms = mark.from_ms + 2 * kSampleInterval.count();
      mark.detail = "pgtandem stopped uncleanly and its marker is unreadable: the window is a guess "
                    "around the marker's last change";
    }
    if (!mark.kind.empty()) {
      log::error("unclean stop detected: the mirror may lack writes committed in the crash window; "
                 "run pgtandem verify (and repair), then POST /mirror/crash-window/clear",
                 {{"window", window_text(mark)}, {"target", mark.target}, {"detail", mark.detail}});
      std::lock_guard lock(s->mu_);
      s->marks_.push_back(mark);
      std::string why;
      if (!s->save_marks_locked(&why)) {
        *error = why;
        return nullptr;
      }
    } else {
      log::info("unclean stop detected while not mirroring: nothing to repair",
                {{"marker", s->marker_path_}});
    }
  }
  for (const auto& m : s->marks_) {
    log::warn("mirror target needs verify/repair",
              {{"kind", m.kind},
               {"target", m.target},
               {"since", log::utc_timestamp_ms(m.from_ms)},
               {"detail", m.detail}});
  }
  if (::ftruncate(s->marker_fd_, 0) != 0) {
    *error = errno_text("cannot reset " + s->marker_path_);
    return nullptr;
  }
  s->write_marker(s->started_ms_, 0, MirrorSample{});
  fsync_dir(state_dir);
  return s;
}

MirrorSafety::~MirrorSafety() {
  if (sampler_.joinable()) {
    {
      std::lock_guard lock(sampler_mu_);
      sampler_stop_ = true;
    }
    sampler_cv_.notify_all();
    sampler_.join();
  }
  if (marker_fd_ >= 0) ::close(marker_fd_);
}

void MirrorSafety::start_sampler(std::function<MirrorSample()> sample) {
  if (sampler_.joinable()) return;
  sample_ = std::move(sample);
  // The first figure now, so that a kill within the first second already has one.
  const int64_t now = now_ms();
  const MirrorSample s = sample_();
  const int64_t pending = tracker_.observe(now, s);
  pending_since_.store(pending, std::memory_order_relaxed);
  write_marker(now, pending, s);
  sampler_ = std::thread([this] { sample_loop(); });
}

void MirrorSafety::sample_loop() {
  std::unique_lock lock(sampler_mu_);
  for (;;) {
    if (sampler_cv_.wait_for(lock, kSampleInterval, [this] { return sampler_stop_; })) return;
    const int64_t now = now_ms();
    const MirrorSample s = sample_();
    const int64_t pending = tracker_.observe(now, s);
    pending_since_.store(pending, std::memory_order_relaxed);
    write_marker(now, pending, s);
  }
}

void MirrorSafety::clean_stop() {
  if (sampler_.joinable()) {
    {
      std::lock_guard lock(sampler_mu_);
      sampler_stop_ = true;
    }
    sampler_cv_.notify_all();
    sampler_.join();
  }
  if (::unlink(marker_path_.c_str()) != 0) {
    std::string err = errno_text("unlink");
    log::error("mirror crash-window marker not removed", {{"path", marker_path_}, {"error", err}});
    return;
  }
  fsync_dir(dir_);
}

void MirrorSafety::stop_mirroring(const std::string& target, uint64_t journal_bytes,
                                  uint64_t limit) {
  if (stopped_.exchange(true)) return;
  RepairMark m;
  m.kind = "journal_full";
  m.target = target;
  m.from_ms = now_ms();
  m.detail = "the mirror journal reached its limit (" + std::to_string(journal_bytes) + " of " +
             std::to_string(limit) + " bytes, journal_full = \"stop\"): mirroring to " + target +
             " stopped; writes from then on are not on " + target;
  log::error("mirror journal full: mirroring stopped, the target needs verify/repair",
             {{"target", target},
              {"journal_bytes", std::to_string(journal_bytes)},
              {"limit", std::to_string(limit)}});
  std::lock_guard lock(mu_);
  marks_.push_back(std::move(m));
  std::string why;
  if (!save_marks_locked(&why)) log::error("needs-repair mark not saved", {{"error", why}});
}

void MirrorSafety::add_mark(RepairMark mark) {
  std::lock_guard lock(mu_);
  marks_.push_back(std::move(mark));
  std::string why;
  if (!save_marks_locked(&why)) log::error("needs-repair mark not saved", {{"error", why}});
}

bool MirrorSafety::save_marks_locked(std::string* error) const {
  const std::string tmp = marks_path_ + ".tmp";
  std::string text;
  for (const auto& m : marks_) {
    text += one_line(m.kind) + "\t" + one_line(m.target) + "\t" + std::to_string(m.from_ms) + "\t" +
            std::to_string(m.to_ms) + "\t" + one_line(m.detail) + "\n";
  }
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    *error = errno_text("cannot write " + tmp);
    return false;
  }
  const bool ok = write_all_fd(fd, text) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), marks_path_.c_str()) != 0) {
    *error = errno_text("cannot write " + marks_path_);
    return false;
  }
  fsync_dir(dir_);
  return true;
}

std::vector<RepairMark> MirrorSafety::marks() const {
  std::lock_guard lock(mu_);
  return marks_;
}

size_t MirrorSafety::clear(std::string_view kind) { return clear_if(kind, nullptr); }

size_t MirrorSafety::clear_listed(std::string_view kind, const std::vector<std::string>& ids) {
  return clear_if(kind, &ids);
}

size_t MirrorSafety::clear_if(std::string_view kind, const std::vector<std::string>* ids) {
  // The id as the commands form it from /status (MarkView::id: the times as status_members() prints them).
  auto id_of = [](const RepairMark& m) {
    return policy::migrate::MarkView{m.kind, m.target, log::utc_timestamp_ms(m.from_ms),
                                     m.to_ms != 0 ? log::utc_timestamp_ms(m.to_ms) : std::string()}
        .id();
  };
  std::lock_guard lock(mu_);
  const size_t before = marks_.size();
  std::erase_if(marks_, [&](const RepairMark& m) {
    if (!kind.empty() && m.kind != kind) return false;
    return ids == nullptr || std::find(ids->begin(), ids->end(), id_of(m)) != ids->end();
  });
  const size_t cleared = before - marks_.size();
  if (cleared > 0) {
    std::string why;
    if (!save_marks_locked(&why)) log::error("needs-repair marks not saved", {{"error", why}});
    log::info("needs-repair marks cleared by an operator",
              {{"kind", kind.empty() ? std::string_view("all") : kind},
               {"cleared", std::to_string(cleared)}});
  }
  return cleared;
}

double MirrorSafety::crash_window_seconds() const {
  std::lock_guard lock(mu_);
  double total = 0;
  for (const auto& m : marks_)
    if (m.kind == "crash_window") total += static_cast<double>(m.to_ms - m.from_ms) / 1000.0;
  return total;
}

std::string MirrorSafety::needs_repair_summary() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& m : marks_) {
    if (!out.empty()) out += "; ";
    if (m.kind == "crash_window") {
      out += "crash window " + window_text(m) + " on " + m.target +
             " (unclean stop: mirrored writes may be missing; verify/repair, then POST "
             "/mirror/crash-window/clear)";
    } else {
      out += m.kind + " since " + log::utc_timestamp_ms(m.from_ms) + " on " + m.target + " (" +
             m.detail + "; verify/repair, then POST /mirror/needs-repair/clear)";
    }
  }
  return out;
}

std::string MirrorSafety::status_members() const {
  const auto all = marks();
  std::string out = "\"state_dir\":";
  log::append_json_string(out, dir_);
  out += ",\"stopped\":";
  out += stopped() ? "true" : "false";
  out += ",\"not_mirrored\":" + std::to_string(not_mirrored());
  const int64_t pending = pending_since_ms();
  out += ",\"pending_since\":";
  if (pending != 0) {
    log::append_json_string(out, log::utc_timestamp_ms(pending));
  } else {
    out += "null";
  }
  // The crash windows together: the earliest start, the latest end.
  int64_t from = 0;
  int64_t to = 0;
  size_t windows = 0;
  std::string target;
  for (const auto& m : all) {
    if (m.kind != "crash_window") continue;
    from = windows == 0 ? m.from_ms : std::min(from, m.from_ms);
    to = std::max(to, m.to_ms);
    target = m.target;
    ++windows;
  }
  out += ",\"crash_window\":";
  if (windows == 0) {
    out += "null";
  } else {
    out += "{\"from\":";
    log::append_json_string(out, log::utc_timestamp_ms(from));
    out += ",\"to\":";
    log::append_json_string(out, log::utc_timestamp_ms(to));
    out += ",\"target\":";
    log::append_json_string(out, target);
    out += ",\"unclean_stops\":" + std::to_string(windows) + "}";
  }
  out += ",\"needs_repair\":[";
  for (size_t i = 0; i < all.size(); ++i) {
    if (i > 0) out += ',';
    out += "{\"kind\":";
    log::append_json_string(out, all[i].kind);
    out += ",\"target\":";
    log::append_json_string(out, all[i].target);
    out += ",\"from\":";
    log::append_json_string(out, log::utc_timestamp_ms(all[i].from_ms));
    out += ",\"to\":";
    if (all[i].to_ms != 0) {
      log::append_json_string(out, log::utc_timestamp_ms(all[i].to_ms));
    } else {
      out += "null";
    }
    out += ",\"detail\":";
    log::append_json_string(out, all[i].detail);
    out += '}';
  }
  out += ']';
  return out;
}

// ------------------------------------------------------------------------------------------------
// The journal limit, where the mirror link meets it

bool journal_full_stops(MirrorShared& mirror, const config::Mirror& m, const std::string& target,
                        Metrics& metrics) {
  if (!mirror.journal || !mirror.safety || m.journal_full != "stop") return false;
  const uint64_t bytes = mirror.journal->bytes();
  if (bytes < m.journal_max_bytes) return false;
  mirror.safety->stop_mirroring(target, bytes, m.journal_max_bytes);
  mirror.safety->count_not_mirrored();
  metrics.mirror_write(MirrorOutcome::kStopped);
  return true;
}

bool stopped_drops(MirrorShared& mirror, bool session_state, Metrics& metrics) {
  if (session_state || !mirror.safety || !mirror.safety->stopped()) return false;
  mirror.safety->count_not_mirrored();
  metrics.mirror_write(MirrorOutcome::kStopped);
  return true;
}

}  // namespace pgtandem::proxy

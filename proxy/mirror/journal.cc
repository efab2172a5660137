// The mirror journal's writer: appends, the fsync policy and its sync thread, and opening (and
// repairing the tail of) the file; the line format is journal_format.cc's.
#include "proxy/mirror/journal.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "proxy/telemetry/log.h"

namespace pgtandem::proxy {
namespace {

constexpr size_t kTailChunk = 64 * 1024;  // read back from the end when repairing the tail
// ------------------------------------------------------------------------------------------------
// File helpers

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

bool pread_all(int fd, char* buf, size_t n, off_t offset) {
  while (n > 0) {
    ssize_t r = ::pread(fd, buf, n, offset);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    buf += r;
    n -= static_cast<size_t>(r);
    offset += r;
  }
  return true;
}

bool write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// Offset of the last '\n' before `end`, -1 if there is none, -2 on a read error.
off_t last_newline_before(int fd, off_t end) {
  std::string chunk;
  while (end > 0) {
    off_t start = end > static_cast<off_t>(kTailChunk) ? end - static_cast<off_t>(kTailChunk) : 0;
    chunk.resize(static_cast<size_t>(end - start));
    if (!pread_all(fd, chunk.data(), chunk.size(), start)) return -2;
    size_t at = chunk.rfind('\n');
    if (at != std::string::npos) return start + static_cast<off_t>(at);
    end = start;
  }
  return -1;
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// Journal

struct Journal::Impl {
  std::string path;
  int fd = -1;
  FsyncPolicy policy = FsyncPolicy::kInterval;
  std::chrono::milliseconds interval{100};

  std::mutex mu;  // appends: sequence, file offset, partial-write repair
  uint64_t last_seq = 0;
  std::atomic<uint64_t> written{0};
  std::atomic<uint64_t> size{0};
  std::atomic<bool> dirty{false};

  std::mutex sync_mu;  // the interval syncer's sleep
  std::condition_variable sync_cv;
  bool stopping = false;
  std::thread syncer;

  void sync_loop() {
    std::unique_lock lock(sync_mu);
    for (;;) {
      if (sync_cv.wait_for(lock, interval, [this] { return stopping; })) return;
      if (dirty.exchange(false) && ::fdatasync(fd) != 0) {
        std::string err = errno_text("fdatasync");
        log::error("journal fsync failed", {{"path", path}, {"error", err}});
      }
    }
  }
};

Journal::Journal() : impl_(std::make_unique<Impl>()) {}

Journal::~Journal() {
  if (impl_->syncer.joinable()) {
    {
      std::lock_guard lock(impl_->sync_mu);
      impl_->stopping = true;
    }
    impl_->sync_cv.notify_all();
    impl_->syncer.join();
  }
  if (impl_->fd >= 0) {
    if (impl_->policy != FsyncPolicy::kNever && impl_->dirty.load()) ::fdatasync(impl_->fd);
    ::close(impl_->fd);  // also releases the flock
  }
}

std::unique_ptr<Journal> Journal::open(const std::string& path, FsyncPolicy policy,
                                       uint32_t fsync_interval_ms, std::string* error) {
  std::unique_ptr<Journal> j(new Journal());
  Impl& im = *j->impl_;
  im.path = path;
  im.policy = policy;
  im.interval = std::chrono::milliseconds(fsync_interval_ms > 0 ? fsync_interval_ms : 1);
  im.fd = ::open(path.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (im.fd < 0) {
    *error = errno_text("cannot open journal " + path);
    return nullptr;
  }
  // Two writers would hand out the same sequence numbers, which replay relies on to know what it
  // applied; refuse a journal another process has open.
  if (::flock(im.fd, LOCK_EX | LOCK_NB) != 0) {
    *error = errno == EWOULDBLOCK ? "journal " + path + " is in use by another process"
                                  : errno_text("cannot lock journal " + path);
    return nullptr;
  }
  struct stat st {};
  if (::fstat(im.fd, &st) != 0) {
    *error = errno_text("cannot stat journal " + path);
    return nullptr;
  }
  off_t size = st.st_size;
  if (size > 0) {
    off_t nl = last_newline_before(im.fd, size);
    if (nl == -2) {
      *error = errno_text("cannot read journal " + path);
      return nullptr;
    }
    off_t complete = nl + 1;  // 0 when there is no newline at all
    if (complete < size) {
      // A line without its newline was cut by a crash mid-append: it was never acknowledged to
      // the session (append had not returned). Keep its bytes aside for forensics and cut it off,
      // so new entries start on a line of their own and every line in the file is whole.
      size_t torn_size = static_cast<size_t>(size - complete);
      std::string torn(torn_size, '\0');
      std::string torn_path = path + ".torn";
      int tfd = ::open(torn_path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
      bool saved = tfd >= 0 && pread_all(im.fd, torn.data(), torn_size, complete);
      torn += '\n';
      saved = saved && write_all(tfd, torn.data(), torn.size()) && ::fsync(tfd) == 0;
      if (tfd >= 0) ::close(tfd);
      if (!saved) {
        *error = errno_text("cannot save the torn last line of " + path + " to " + torn_path);
        return nullptr;
      }
      if (::ftruncate(im.fd, complete) != 0 || ::fsync(im.fd) != 0) {
        *error = errno_text("cannot cut the torn last line of " + path);
        return nullptr;
      }
      log::warn("journal: torn last line removed",
                {{"path", path}, {"bytes", std::to_string(torn_size)}, {"saved_to", torn_path}});
      size = complete;
    }
    // The last line that parses holds the highest sequence number (lines are appended in order).
    off_t end = size - 1;  // the newline ending the last line
    while (end >= 0) {
      off_t prev = last_newline_before(im.fd, end);
      if (prev == -2) {
        *error = errno_text("cannot read journal " + path);
        return nullptr;
      }
      std::string line(static_cast<size_t>(end - (prev + 1)), '\0');
      if (!pread_all(im.fd, line.data(), line.size(), prev + 1)) {
        *error = errno_text("cannot read journal " + path);
        return nullptr;
      }
      JournalEntry e;
      std::string perr;
      if (!line.empty() && parse_journal_line(line, &e, &perr)) {
        im.last_seq = e.seq;
        break;
      }
      if (!line.empty()) {
        log::warn("journal: skipping an unparseable line while looking for the last entry",
                  {{"path", path}, {"offset", std::to_string(prev + 1)}, {"error", perr}});
      }
      end = prev;
    }
  }
  im.size = static_cast<uint64_t>(size);
  if (policy == FsyncPolicy::kInterval) im.syncer = std::thread([&im] { im.sync_loop(); });
  return j;
}

uint64_t Journal::append(JournalEntry entry) {
  Impl& im = *impl_;
  std::string body = journal_entry_body(entry);  // the expensive part (base64), outside the lock
  std::lock_guard lock(im.mu);
  uint64_t seq = im.last_seq + 1;
  std::string line = journal_line(seq, body);
  line += '\n';
  if (!write_all(im.fd, line.data(), line.size())) {
    std::string err = errno_text("write");
    // Cut a partial line off, or the next entry would be glued to it and both lost.
    if (::ftruncate(im.fd, static_cast<off_t>(im.size.load())) != 0) {
      log::error("journal: cannot remove a partial line", {{"path", im.path}});
    }
    log::error("journal append failed", {{"path", im.path}, {"error", err}});
    return 0;
  }
  im.last_seq = seq;
  im.size += line.size();
  ++im.written;
  switch (im.policy) {
    case FsyncPolicy::kAlways:
      if (::fdatasync(im.fd) != 0) {
        // The line is in the file but may not survive a crash: report the append as failed.
        std::string err = errno_text("fdatasync");
        log::error("journal fsync failed", {{"path", im.path}, {"error", err}});
        return 0;
      }
      break;
    case FsyncPolicy::kInterval:
      im.dirty = true;
      break;
    case FsyncPolicy::kNever:
      break;
  }
  return seq;
}

uint64_t Journal::entries_written() const { return impl_->written.load(); }
uint64_t Journal::bytes() const { return impl_->size.load(); }
uint64_t Journal::last_seq() const {
  std::lock_guard lock(impl_->mu);
  return impl_->last_seq;
}
const std::string& Journal::path() const { return impl_->path; }

}  // namespace pgtandem::proxy

// The crash-window marker and needs-repair marks (proxy/mirror/mirror_safety.h): the sampling
// logic, the marker format, and a state dir across an unclean and a clean stop.
#include "proxy/mirror/mirror_safety.h"

#include "policy/migrate/marks.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace pgtandem::proxy {
namespace {

MirrorSample sample(uint64_t last, uint64_t done, int64_t queued) {
  MirrorSample s;
  s.mirroring = true;
  s.target = "new";
  s.last_assigned = last;
  s.done_through = done;
  s.queue_bytes = queued;
  return s;
}

TEST(PendingTracker, OldestUnappliedIsBoundedBySamples) {
  PendingTracker t;
  EXPECT_EQ(t.observe(1000, sample(0, 0, 0)), 0);  // nothing pending
  EXPECT_EQ(t.observe(2000, sample(5, 5, 0)), 0);  // 5 units, all applied
  // Units 6..9 pushed after the 2000 sample; 6 not applied yet: pending since 2000 at the latest.
  EXPECT_EQ(t.observe(3000, sample(9, 5, 400)), 2000);
  EXPECT_EQ(t.observe(4000, sample(12, 7, 400)), 2000);  // 8 numbered before 3000 (last 9 > 7)
  // 10 is now the oldest: numbered after the 3000 sample (last 9 < 10).
  EXPECT_EQ(t.observe(5000, sample(15, 9, 300)), 3000);
  EXPECT_EQ(t.observe(6000, sample(15, 15, 0)), 0);  // drained
  // Every number done but bytes queued (the commit order gave up waiting): the last drained
  // sample bounds it.
  EXPECT_EQ(t.observe(7000, sample(16, 16, 100)), 6000);
}

TEST(Marker, ParsesAndGivesTheWindow) {
  const std::string text =
      "pgtandem-mirror-marker 1\npid 42\nstarted_ms 1000\nsampled_ms 50000\n"
      "pending_since_ms 47000\nmirroring 1\ntarget new\n      \n";
  MarkerContents m;
  ASSERT_TRUE(parse_marker(text, &m));
  EXPECT_EQ(m.pid, 42);
  EXPECT_EQ(m.pending_since_ms, 47000);
  const RepairMark w = crash_window_from_marker(m);
  EXPECT_EQ(w.kind, "crash_window");
  EXPECT_EQ(w.target, "new");
  EXPECT_EQ(w.from_ms, 47000);
  EXPECT_EQ(w.to_ms, 52000);  // last sample + 2 intervals
  m.pending_since_ms = 0;
  EXPECT_EQ(crash_window_from_marker(m).from_ms, 50000);  // a write after the last sample
  m.mirroring = false;
  EXPECT_TRUE(crash_window_from_marker(m).kind.empty());  // not mirroring, nothing queued
  EXPECT_FALSE(parse_marker("garbage", &m));
}

class StateDir : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pgtandem-safety-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }
  std::string dir_;
};

TEST_F(StateDir, UncleanStopLeavesACrashWindowUntilCleared) {
  std::string error;
  {
    auto s = MirrorSafety::open(dir_ + "/state", &error);  // created
    ASSERT_TRUE(s) << error;
    EXPECT_TRUE(s->marks().empty());
    std::string second_error;
    EXPECT_FALSE(MirrorSafety::open(dir_ + "/state", &second_error));  // locked
    EXPECT_NE(second_error.find("in use by another pgtandem"), std::string::npos) << second_error;
    s->start_sampler([] { return sample(3, 1, 100); });
    // Destroyed without clean_stop(): as after a SIGKILL, the marker stays.
  }
  {
    auto s = MirrorSafety::open(dir_ + "/state", &error);
    ASSERT_TRUE(s) << error;
    ASSERT_EQ(s->marks().size(), 1u);
    EXPECT_EQ(s->marks()[0].kind, "crash_window");
    EXPECT_GT(s->crash_window_seconds(), 0);
    EXPECT_NE(s->needs_repair_summary().find("crash window"), std::string::npos);
    EXPECT_NE(s->status_members().find("\"crash_window\":{\"from\":"), std::string::npos);
    s->start_sampler([] { return sample(0, 0, 0); });
    s->clean_stop();
  }
  {
    auto s = MirrorSafety::open(dir_ + "/state", &error);
    ASSERT_TRUE(s) << error;
    ASSERT_EQ(s->marks().size(), 1u);  // the mark survives restarts until cleared
    s->stop_mirroring("new", 2000, 1000);
    EXPECT_TRUE(s->stopped());
    EXPECT_EQ(s->marks().size(), 2u);
    // A clean verify names the marks it saw, as /status shows them: the ids match what the proxy
    // formats, and a mark it did not name (added later) stays.
    std::string status = "{\"mirror\":{" + s->status_members() + "}}";
    policy::migrate::AdminMarks seen;
    ASSERT_TRUE(policy::migrate::parse_status_marks(status, &seen, &error)) << error;
    ASSERT_EQ(seen.marks.size(), 2u);
    EXPECT_EQ(s->clear_listed("", {seen.marks[1].id(), "crash_window|new|2000-01-01T00:00:00.000Z|"}), 1u);
    ASSERT_EQ(s->marks().size(), 1u);
    EXPECT_EQ(s->marks()[0].kind, seen.marks[0].kind);
    EXPECT_EQ(s->clear("journal_full"), 0u);
    EXPECT_EQ(s->clear(""), 1u);
    EXPECT_EQ(s->needs_repair_summary(), "");
    EXPECT_NE(s->status_members().find("\"crash_window\":null"), std::string::npos);
    s->clean_stop();
  }
}

TEST_F(StateDir, UnusableStateDirIsAClearError) {
  std::ofstream(dir_ + "/file") << "x";
  std::string error;
  EXPECT_FALSE(MirrorSafety::open(dir_ + "/file", &error));
  EXPECT_NE(error.find("is not a directory"), std::string::npos) << error;
  EXPECT_NE(error.find("or set state_dir in the config"), std::string::npos) << error;
  EXPECT_FALSE(MirrorSafety::open(dir_ + "/file/state", &error));
  EXPECT_NE(error.find("does not exist and cannot be created"), std::string::npos) << error;
}

// Run as root (CI is), the checks run in a child that drops to nobody: root writes anywhere.
TEST_F(StateDir, UnwritableStateDirIsAClearError) {
  ASSERT_EQ(chmod(dir_.c_str(), 0555), 0);  // readable and searchable, not writable
  auto checks = [this]() -> std::string {
    std::string error;
    if (MirrorSafety::open(dir_ + "/state", &error)) return "opened " + dir_ + "/state";
    if (error.find("cannot be created") == std::string::npos ||
        error.find("StateDirectory=pgtandem") == std::string::npos) {
      return "creating: " + error;
    }
    if (MirrorSafety::open(dir_, &error)) return "opened " + dir_;
    if (error.find("not writable") == std::string::npos) return "writing: " + error;
    return "";
  };
  if (geteuid() != 0) {
    EXPECT_EQ(checks(), "");
  } else {
    int pipe_fds[2];
    ASSERT_EQ(pipe(pipe_fds), 0);
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      close(pipe_fds[0]);
      std::string out = setgid(65534) == 0 && setuid(65534) == 0 ? checks() : "setuid failed";
      if (write(pipe_fds[1], out.data(), out.size()) < 0) _exit(2);
      _exit(0);
    }
    close(pipe_fds[1]);
    std::string out;
    char buf[512];
    for (ssize_t n; (n = read(pipe_fds[0], buf, sizeof buf)) > 0;) out.append(buf, size_t(n));
    close(pipe_fds[0]);
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    EXPECT_EQ(out, "");
  }
  chmod(dir_.c_str(), 0700);
}

}  // namespace
}  // namespace pgtandem::proxy

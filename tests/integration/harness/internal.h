// Shared by the harness's .cc files only (tests include harness.h): errors, deadlines, dropping
// to the postgres user, and the reaper that outlives a crashed test binary.
#pragma once

#include <sys/types.h>

#include <mutex>
#include <string>

#include "tests/integration/harness/processes.h"

namespace pgtandem::it {

[[noreturn]] void fail(const std::string& what);
std::string errno_text(const std::string& what);
int remaining_ms(Clock::time_point deadline);
// Whether a child must drop to the postgres user, and the ids to use.
bool drop_privileges(bool as_postgres, uid_t* uid, gid_t* gid);

// Reaper: a process forked on first use that outlives a crashed test binary. It reads "track"
// and "untrack" lines over a pipe; at EOF (the test binary exited, however it exited) it stops
// every tracked process and removes every tracked directory.
class Reaper {
 public:
  static Reaper& get();
  void track_pid(pid_t pid, bool postmaster);
  void untrack_pid(pid_t pid);
  void track_dir(const std::string& dir);
  void untrack_dir(const std::string& dir);

 private:
  Reaper();
  void send(const std::string& line);
  [[noreturn]] static void run(int in);

  std::mutex mu_;
  int fd_ = -1;
};

}  // namespace pgtandem::it

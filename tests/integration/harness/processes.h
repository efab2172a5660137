// Integration-test harness: paths and small utilities, temporary directories, and child processes
// (run to completion, or long-running and killed at the end). Everything throws
// std::runtime_error on setup failures; every process and directory is cleaned up on destruction,
// and a reaper process (forked on first use) kills what is left if the test binary dies.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace pgtandem::it {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// ---------------------------------------------------------------------------------------------
// Paths and small utilities

std::string pg_bindir();                       // PGTANDEM_PG_BINDIR (env) or the build default
std::string pg_tool(const std::string& name);  // pg_bindir()/name
std::string pgtandem_binary();                 // PGTANDEM_BIN (env) or the build's $<TARGET_FILE>
uint16_t free_tcp_port();                      // bind 127.0.0.1:0, read the port, close
std::string read_file(const std::string& path);
void write_file(const std::string& path, std::string_view content);
std::string tail(const std::string& text, size_t max_bytes = 4000);
bool running_as_root();
// Printable ASCII as is, everything else as \xNN.
std::string escape_bytes(std::string_view bytes);
// "" if equal, else sizes and the first differing offset with some context, for failure messages.
std::string describe_difference(const std::string& a, const std::string& b);
// Poll `pred` every `step` until it returns true or `timeout` passes; returns the last value.
bool poll_until(const std::function<bool()>& pred, milliseconds timeout,
                milliseconds step = milliseconds(20));
// Resident set size of a process in kB (VmRSS from /proc/PID/status); -1 if unreadable.
long rss_kb(pid_t pid);
// Pids of processes whose command line (the process title for PostgreSQL backends) contains
// `needle`. With parent > 0, only children of that process.
std::vector<pid_t> find_processes(const std::string& needle, pid_t parent = 0);
// True if something is listening on 127.0.0.1:port (reads /proc/net/tcp; makes no connection).
bool tcp_port_listening(uint16_t port);

// A directory under $TMPDIR removed recursively on destruction (kept if PGTANDEM_IT_KEEP=1).
// When running as root it is owned by the `postgres` user, so servers can use it.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// ---------------------------------------------------------------------------------------------
// Subprocesses

struct RunOptions {
  milliseconds timeout{60000};
  std::vector<std::string> env;  // extra "NAME=value" entries
  std::string stdin_data;
  bool as_postgres = false;  // drop to the postgres user when running as root
  std::string cwd;
};

struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal
  int term_signal = 0;
  bool timed_out = false;
  std::string out;
  std::string err;
  double seconds = 0;
  bool ok() const { return exit_code == 0 && !timed_out; }
  std::string describe() const;  // exit status plus tails of stdout/stderr, for failure messages
};

// Run to completion (or kill the whole process group at the timeout) capturing stdout/stderr.
ProcessResult run_process(const std::vector<std::string>& argv, const RunOptions& options = {});

// A long-running child whose stdout and stderr go to one file.
class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  void spawn(const std::vector<std::string>& argv, const std::string& output_file,
             bool as_postgres = false);
  pid_t pid() const { return pid_; }
  bool alive();  // reaps it if it exited
  // Send sig and wait up to timeout for the exit; true if it exited.
  bool signal_and_wait(int sig, milliseconds timeout);
  void kill_and_reap();  // SIGKILL and wait
  bool wait_exit(milliseconds timeout);
  int raw_status() const { return status_; }  // waitpid status once exited
  std::string exit_description() const;

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = 0;
};

}  // namespace pgtandem::it

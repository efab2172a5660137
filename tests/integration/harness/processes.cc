#include "tests/integration/harness/processes.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <algorithm>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "tests/integration/harness/internal.h"

#ifndef PGTANDEM_PG_BINDIR
#define PGTANDEM_PG_BINDIR "/usr/lib/postgresql/15/bin"
#endif
#ifndef PGTANDEM_BINARY
#define PGTANDEM_BINARY ""
#endif

extern char** environ;

namespace pgtandem::it {
namespace {

int remove_entry(const char* path, const struct stat*, int, struct FTW*) {
  ::remove(path);
  return 0;
}

void remove_tree(const std::string& path) {
  if (path.size() < 6) return;  // never anything like "/" or "/tmp"
  nftw(path.c_str(), remove_entry, 32, FTW_DEPTH | FTW_PHYS);
}

// PATH lookup done before fork (execve in the child is async-signal-safe, execvp is not).
std::string resolve_executable(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find(':', start);
    if (end == std::string::npos) end = p.size();
    std::string dir = p.substr(start, end - start);
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return name;
}

std::vector<std::string> build_env(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string entry(*e);
    std::string name = entry.substr(0, entry.find('='));
    bool overridden = false;
    for (const auto& x : extra)
      if (x.substr(0, x.find('=')) == name) overridden = true;
    if (!overridden) env.push_back(entry);
  }
  for (const auto& x : extra) env.push_back(x);
  return env;
}

std::vector<char*> c_strings(std::vector<std::string>& v) {
  std::vector<char*> r;
  for (auto& s : v) r.push_back(s.data());
  r.push_back(nullptr);
  return r;
}

bool keep_temp_dirs() {
  const char* k = std::getenv("PGTANDEM_IT_KEEP");
  return k && *k && std::string(k) != "0";
}

}  // namespace

void fail(const std::string& what) { throw std::runtime_error(what); }

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

struct PostgresIds {
  bool found = false;
  uid_t uid = 0;
  gid_t gid = 0;
};

const PostgresIds& postgres_ids() {
  static const PostgresIds ids = [] {
    PostgresIds r;
    if (struct passwd* pw = getpwnam("postgres")) {
      r.found = true;
      r.uid = pw->pw_uid;
      r.gid = pw->pw_gid;
    }
    return r;
  }();
  return ids;
}

// Whether a child must drop to the postgres user, and the ids to use.
bool drop_privileges(bool as_postgres, uid_t* uid, gid_t* gid) {
  if (!as_postgres || !running_as_root()) return false;
  const auto& ids = postgres_ids();
  if (!ids.found) fail("running as root but there is no `postgres` user to run the server as");
  *uid = ids.uid;
  *gid = ids.gid;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Reaper

Reaper& Reaper::get() {
  static Reaper r;
  return r;
}

void Reaper::track_pid(pid_t pid, bool postmaster) {
  send(std::string(postmaster ? "Q " : "K ") + std::to_string(pid));
}
void Reaper::untrack_pid(pid_t pid) { send("k " + std::to_string(pid)); }
void Reaper::track_dir(const std::string& dir) { send("D " + dir); }
void Reaper::untrack_dir(const std::string& dir) { send("d " + dir); }

Reaper::Reaper() {
  int fds[2];
  if (pipe(fds) != 0) return;
  pid_t pid = fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return;
  }
  if (pid == 0) {
    ::close(fds[1]);
    run(fds[0]);
    _exit(0);
  }
  ::close(fds[0]);
  fcntl(fds[1], F_SETFD, FD_CLOEXEC);
  fd_ = fds[1];
}

void Reaper::send(const std::string& line) {
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ < 0) return;
  std::string l = line + "\n";
  (void)!::write(fd_, l.data(), l.size());  // < PIPE_BUF: atomic
}

void Reaper::run(int in) {
  setsid();  // out of the test's process group and terminal: survives their signals
  signal(SIGINT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  int devnull = open("/dev/null", O_RDWR);
  for (int fd = 0; fd < 3; ++fd) dup2(devnull, fd);
  for (int fd = 3; fd < 4096; ++fd)
    if (fd != in) ::close(fd);
  std::map<pid_t, bool> pids;  // pid -> is a postmaster
  std::set<std::string> dirs;
  std::string pending;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(in, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    pending.append(buf, static_cast<size_t>(n));
    size_t nl;
    while ((nl = pending.find('\n')) != std::string::npos) {
      std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      if (line.size() < 3) continue;
      std::string arg = line.substr(2);
      switch (line[0]) {
        case 'Q':
          pids[std::atoi(arg.c_str())] = true;
          break;
        case 'K':
          pids[std::atoi(arg.c_str())] = false;
          break;
        case 'k':
          pids.erase(std::atoi(arg.c_str()));
          break;
        case 'D':
          dirs.insert(arg);
          break;
        case 'd':
          dirs.erase(arg);
          break;
      }
    }
  }
  if (pids.empty() && dirs.empty()) _exit(0);
  // Immediate shutdown for postmasters (it stops their backends too), SIGKILL for the rest.
  for (auto& [pid, postmaster] : pids) kill(pid, postmaster ? SIGQUIT : SIGKILL);
  for (int i = 0; i < 100; ++i) {
    bool any = false;
    for (auto& [pid, _] : pids)
      if (kill(pid, 0) == 0) any = true;
    if (!any) break;
    usleep(50000);
  }
  for (auto& [pid, _] : pids) kill(pid, SIGKILL);
  usleep(200000);
  for (const auto& d : dirs) remove_tree(d);
  _exit(0);
}

// ---------------------------------------------------------------------------------------------
// Utilities

std::string pg_bindir() {
  if (const char* e = std::getenv("PGTANDEM_PG_BINDIR"); e && *e) return e;
  return PGTANDEM_PG_BINDIR;
}

std::string pg_tool(const std::string& name) { return pg_bindir() + "/" + name; }

std::string pgtandem_binary() {
  if (const char* e = std::getenv("PGTANDEM_BIN"); e && *e) return e;
  return PGTANDEM_BINARY;
}

bool running_as_root() { return geteuid() == 0; }

std::string escape_bytes(std::string_view bytes) {
  std::string r;
  for (char ch : bytes) {
    if (ch >= 32 && ch < 127) {
      r.push_back(ch);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(ch));
      r += buf;
    }
  }
  return r;
}

std::string describe_difference(const std::string& a, const std::string& b) {
  if (a == b) return "";
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  auto around = [&](const std::string& s) {
    size_t from = i < 40 ? 0 : i - 40;
    return escape_bytes(s.substr(from, 80));
  };
  return "sizes " + std::to_string(a.size()) + " vs " + std::to_string(b.size()) +
         ", first difference at " + std::to_string(i) + ":\n  " + around(a) + "\n  " + around(b);
}

namespace {
// Binds a TCP socket to 127.0.0.1:port (0: the kernel picks) and closes it; the port bound, or 0
// when it could not be bound.
uint16_t bind_loopback(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail(errno_text("socket"));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  uint16_t bound = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    socklen_t len = sizeof addr;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) bound = ntohs(addr.sin_port);
  }
  ::close(fd);
  return bound;
}
}  // namespace

// Below the kernel's ephemeral range (scripts/lib/pg.sh does the same): a port the kernel picked
// for `bind(0)` is in that range, where any client socket of a test running beside this one (CI
// runs two shards at once, pgbench opens hundreds) may take it as its local port between this
// call and the server's bind ("Address already in use": a flake seen in CI).
uint16_t free_tcp_port() {
  static std::mutex mu;
  static std::set<uint16_t> given;  // never the same port twice in one run
  static std::mt19937 rng{std::random_device{}()};
  std::lock_guard lock(mu);
  unsigned lo = 32768;
  std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
  range >> lo;
  const unsigned hi = std::min(lo - 1, 32000u);
  if (hi > 15000) {
    std::uniform_int_distribution<unsigned> pick(15000, hi);
    for (int attempt = 0; attempt < 500; ++attempt) {
      const auto port = static_cast<uint16_t>(pick(rng));
      if (given.count(port) != 0 || bind_loopback(port) == 0) continue;
      given.insert(port);
      return port;
    }
  }
  // No room below the ephemeral range: the kernel's pick.
  const uint16_t port = bind_loopback(0);
  if (port == 0) fail(errno_text("bind"));
  return port;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, std::string_view content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) fail("cannot write " + path);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  if (!out) fail("cannot write " + path);
}

std::string tail(const std::string& text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  return "..." + text.substr(text.size() - max_bytes);
}

bool poll_until(const std::function<bool()>& pred, milliseconds timeout, milliseconds step) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (Clock::now() >= deadline) return pred();
    std::this_thread::sleep_for(step);
  }
}

long rss_kb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

std::vector<pid_t> find_processes(const std::string& needle, pid_t parent) {
  std::vector<pid_t> r;
  DIR* d = opendir("/proc");
  if (!d) return r;
  while (struct dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::string cmd = read_file(std::string("/proc/") + e->d_name + "/cmdline");
    for (auto& ch : cmd)
      if (ch == '\0') ch = ' ';
    if (cmd.find(needle) == std::string::npos) continue;
    if (parent > 0) {
      std::string stat = read_file(std::string("/proc/") + e->d_name + "/stat");
      auto close_paren = stat.rfind(')');
      if (close_paren == std::string::npos) continue;
      std::istringstream ss(stat.substr(close_paren + 2));
      std::string state;
      pid_t ppid = 0;
      ss >> state >> ppid;
      if (ppid != parent) continue;
    }
    r.push_back(static_cast<pid_t>(std::atoi(e->d_name)));
  }
  closedir(d);
  return r;
}

bool tcp_port_listening(uint16_t port) {
  for (const char* file : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(file);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream ls(line);
      std::string slot, local, remote, state;
      ls >> slot >> local >> remote >> state;
      auto colon = local.rfind(':');
      if (colon == std::string::npos) continue;
      unsigned long p = std::strtoul(local.c_str() + colon + 1, nullptr, 16);
      if (p == port && state == "0A") return true;
    }
  }
  return false;
}

TempDir::TempDir(const std::string& prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/" + prefix + "-XXXXXX";
  if (!mkdtemp(tmpl.data())) fail(errno_text("mkdtemp " + tmpl));
  path_ = tmpl;
  uid_t uid;
  gid_t gid;
  if (drop_privileges(true, &uid, &gid)) {
    if (chown(path_.c_str(), uid, gid) != 0) fail(errno_text("chown " + path_));
  }
  if (!keep_temp_dirs()) Reaper::get().track_dir(path_);
}

TempDir::~TempDir() {
  if (keep_temp_dirs()) {
    std::fprintf(stderr, "[harness] kept %s\n", path_.c_str());
    return;
  }
  remove_tree(path_);
  Reaper::get().untrack_dir(path_);
}

// ---------------------------------------------------------------------------------------------
// Subprocesses

std::string ProcessResult::describe() const {
  std::ostringstream ss;
  if (timed_out) ss << "timed out after " << seconds << "s; ";
  if (term_signal)
    ss << "killed by signal " << term_signal << "; ";
  else
    ss << "exit code " << exit_code << "; ";
  ss << "stdout:\n" << tail(out, 3000) << "\nstderr:\n" << tail(err, 3000);
  return ss.str();
}

ProcessResult run_process(const std::vector<std::string>& argv_in, const RunOptions& options) {
  ProcessResult result;
  if (argv_in.empty()) fail("run_process: empty argv");
  std::vector<std::string> argv = argv_in;
  argv[0] = resolve_executable(argv[0]);
  if (access(argv[0].c_str(), X_OK) != 0) fail("executable not found: " + argv_in[0]);
  std::vector<std::string> env = build_env(options.env);
  auto c_argv = c_strings(argv);
  auto c_env = c_strings(env);
  uid_t uid = 0;
  gid_t gid = 0;
  bool drop = drop_privileges(options.as_postgres, &uid, &gid);

  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC))
    fail(errno_text("pipe2"));
  auto start = Clock::now();
  pid_t pid = fork();
  if (pid < 0) fail(errno_text("fork"));
  if (pid == 0) {
    setpgid(0, 0);
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    if (!options.cwd.empty() && chdir(options.cwd.c_str()) != 0) _exit(126);
    if (drop && (setgroups(1, &gid) != 0 || setgid(gid) != 0 || setuid(uid) != 0)) _exit(126);
    execve(c_argv[0], c_argv.data(), c_env.data());
    _exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  int in_fd = in[1];
  fcntl(in_fd, F_SETFL, O_NONBLOCK);
  size_t in_off = 0;
  if (options.stdin_data.empty()) {
    ::close(in_fd);
    in_fd = -1;
  }
  auto deadline = start + options.timeout;
  int fds[2] = {out[0], err[0]};
  std::string* sinks[2] = {&result.out, &result.err};
  while (fds[0] >= 0 || fds[1] >= 0) {
    pollfd p[3];
    int n = 0;
    int map[3];
    for (int i = 0; i < 2; ++i)
      if (fds[i] >= 0) {
        p[n] = {fds[i], POLLIN, 0};
        map[n++] = i;
      }
    if (in_fd >= 0) {
      p[n] = {in_fd, POLLOUT, 0};
      map[n++] = 2;
    }
    int left = remaining_ms(deadline);
    if (left == 0) {
      result.timed_out = true;
      kill(-pid, SIGKILL);
      kill(pid, SIGKILL);
      break;
    }
    int r = poll(p, static_cast<nfds_t>(n), left);
    if (r < 0 && errno != EINTR) break;
    for (int i = 0; i < n; ++i) {
      if (!p[i].revents) continue;
      if (map[i] == 2) {
        ssize_t w =
            ::write(in_fd, options.stdin_data.data() + in_off, options.stdin_data.size() - in_off);
        if (w > 0) in_off += static_cast<size_t>(w);
        if (w < 0 && errno != EAGAIN) in_off = options.stdin_data.size();
        if (in_off >= options.stdin_data.size()) {
          ::close(in_fd);
          in_fd = -1;
        }
        continue;
      }
      char buf[65536];
      ssize_t got = ::read(fds[map[i]], buf, sizeof buf);
      if (got > 0) {
        sinks[map[i]]->append(buf, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        ::close(fds[map[i]]);
        fds[map[i]] = -1;
      }
    }
  }
  for (int fd : fds)
    if (fd >= 0) ::close(fd);
  if (in_fd >= 0) ::close(in_fd);
  int status = 0;
  if (result.timed_out) {
    waitpid(pid, &status, 0);
  } else {
    // Output closed; the process may still run (e.g. it closed stdout): honour the deadline.
    for (;;) {
      pid_t w = waitpid(pid, &status, WNOHANG);
      if (w == pid) break;
      if (remaining_ms(deadline) == 0) {
        result.timed_out = true;
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        break;
      }
      std::this_thread::sleep_for(milliseconds(5));
    }
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.term_signal = WTERMSIG(status);
  return result;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !exited_) kill_and_reap();
}

void ChildProcess::spawn(const std::vector<std::string>& argv_in, const std::string& output_file,
                         bool as_postgres) {
  if (pid_ > 0 && !exited_) fail("ChildProcess::spawn: already running");
  std::vector<std::string> argv = argv_in;
  argv[0] = resolve_executable(argv[0]);
  if (access(argv[0].c_str(), X_OK) != 0) fail("executable not found: " + argv_in[0]);
  std::vector<std::string> env = build_env({});
  auto c_argv = c_strings(argv);
  auto c_env = c_strings(env);
  uid_t uid = 0;
  gid_t gid = 0;
  bool drop = drop_privileges(as_postgres, &uid, &gid);
  int out = open(output_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out < 0) fail(errno_text("open " + output_file));
  if (drop) (void)!fchown(out, uid, gid);
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  pid_t pid = fork();
  if (pid < 0) fail(errno_text("fork"));
  if (pid == 0) {
    dup2(devnull, 0);
    dup2(out, 1);
    dup2(out, 2);
    if (drop && (setgroups(1, &gid) != 0 || setgid(gid) != 0 || setuid(uid) != 0)) _exit(126);
    execve(c_argv[0], c_argv.data(), c_env.data());
    _exit(127);
  }
  ::close(out);
  ::close(devnull);
  pid_ = pid;
  exited_ = false;
  status_ = 0;
  Reaper::get().track_pid(pid, as_postgres);
}

bool ChildProcess::alive() {
  if (pid_ <= 0 || exited_) return false;
  int status = 0;
  pid_t w = waitpid(pid_, &status, WNOHANG);
  if (w == pid_) {
    exited_ = true;
    status_ = status;
    Reaper::get().untrack_pid(pid_);
    return false;
  }
  return true;
}

bool ChildProcess::wait_exit(milliseconds timeout) {
  return poll_until([&] { return !alive(); }, timeout, milliseconds(5));
}

bool ChildProcess::signal_and_wait(int sig, milliseconds timeout) {
  if (!alive()) return true;
  kill(pid_, sig);
  return wait_exit(timeout);
}

void ChildProcess::kill_and_reap() {
  if (!alive()) return;
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  exited_ = true;
  status_ = status;
  Reaper::get().untrack_pid(pid_);
}

std::string ChildProcess::exit_description() const {
  if (pid_ <= 0) return "never started";
  if (!exited_) return "running";
  if (WIFEXITED(status_)) return "exited with code " + std::to_string(WEXITSTATUS(status_));
  if (WIFSIGNALED(status_))
    return "killed by signal " + std::to_string(WTERMSIG(status_)) + " (" +
           strsignal(WTERMSIG(status_)) + ")" + (WCOREDUMP(status_) ? ", core dumped" : "");
  return "exited (status " + std::to_string(status_) + ")";
}

}  // namespace pgtandem::it

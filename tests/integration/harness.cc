#include "tests/integration/harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#ifndef PGTANDEM_PG_BINDIR
#define PGTANDEM_PG_BINDIR "/usr/lib/postgresql/15/bin"
#endif
#ifndef PGTANDEM_BINARY
#define PGTANDEM_BINARY ""
#endif

extern char** environ;

namespace pgtandem::it {
namespace {

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what); }

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

// ---------------------------------------------------------------------------------------------
// Reaper: a process forked on first use that outlives a crashed test binary. It reads "track"
// and "untrack" lines over a pipe; at EOF (the test binary exited, however it exited) it stops
// every tracked process and removes every tracked directory.

class Reaper {
 public:
  static Reaper& get() {
    static Reaper r;
    return r;
  }
  void track_pid(pid_t pid, bool postmaster) {
    send(std::string(postmaster ? "Q " : "K ") + std::to_string(pid));
  }
  void untrack_pid(pid_t pid) { send("k " + std::to_string(pid)); }
  void track_dir(const std::string& dir) { send("D " + dir); }
  void untrack_dir(const std::string& dir) { send("d " + dir); }

 private:
  Reaper() {
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

  void send(const std::string& line) {
    std::lock_guard<std::mutex> lock(mu_);
    if (fd_ < 0) return;
    std::string l = line + "\n";
    (void)!::write(fd_, l.data(), l.size());  // < PIPE_BUF: atomic
  }

  [[noreturn]] static void run(int in) {
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

  std::mutex mu_;
  int fd_ = -1;
};

bool keep_temp_dirs() {
  const char* k = std::getenv("PGTANDEM_IT_KEEP");
  return k && *k && std::string(k) != "0";
}

std::string hex(const unsigned char* p, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string r;
  for (size_t i = 0; i < n; ++i) {
    r.push_back(digits[p[i] >> 4]);
    r.push_back(digits[p[i] & 15]);
  }
  return r;
}

std::string md5_hex(const std::string& data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, EVP_md5(), nullptr);
  return hex(out, len);
}

std::string sha256(const std::string& data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string hmac_sha256(const std::string& key, const std::string& data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string base64_encode(const std::string& data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(data.data()),
                          static_cast<int>(data.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string base64_decode(const std::string& text) {
  std::string out(3 * (text.size() / 4) + 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0) return {};
  size_t pad = 0;
  for (size_t i = text.size(); i > 0 && text[i - 1] == '='; --i) ++pad;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

}  // namespace

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

uint16_t free_tcp_port() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail(errno_text("socket"));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    fail(errno_text("bind"));
  }
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
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

// ---------------------------------------------------------------------------------------------
// libpq helpers

std::string Endpoint::conninfo(const std::string& extra, const std::string& dbname,
                               const std::string& user) const {
  std::string s = "host=" + host + " port=" + std::to_string(port) + " dbname=" + dbname +
                  " user=" + user + " connect_timeout=10";
  if (!extra.empty()) s += " " + extra;
  return s;
}

ConnPtr connect_raw(const std::string& conninfo) { return ConnPtr(PQconnectdb(conninfo.c_str())); }

ConnPtr connect(const std::string& conninfo) {
  ConnPtr c = connect_raw(conninfo);
  if (!c || PQstatus(c.get()) != CONNECTION_OK)
    fail("connect(" + conninfo + ") failed: " + (c ? PQerrorMessage(c.get()) : "out of memory"));
  return c;
}

ResultPtr exec(PGconn* c, const std::string& sql) {
  ResultPtr r(PQexec(c, sql.c_str()));
  auto st = PQresultStatus(r.get());
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
    fail("query failed: " + sql + ": " + PQerrorMessage(c));
  return r;
}

std::string query_value(PGconn* c, const std::string& sql) {
  ResultPtr r = exec(c, sql);
  if (PQntuples(r.get()) < 1 || PQnfields(r.get()) < 1) fail("no value from: " + sql);
  return PQgetvalue(r.get(), 0, 0);
}

std::string result_status_name(const PGresult* r) {
  return r ? PQresStatus(PQresultStatus(r)) : "NULL";
}

std::string strip_connection_prefix(std::string e) {
  // libpq: 'connection to server at "127.0.0.1", port 5432 failed: FATAL:  ...'
  auto pos = e.find("failed: ");
  if (e.rfind("connection to server", 0) == 0 && pos != std::string::npos) e = e.substr(pos + 8);
  while (!e.empty() && (e.back() == '\n' || e.back() == ' ')) e.pop_back();
  return e;
}

// ---------------------------------------------------------------------------------------------
// PgCluster

PgCluster::PgCluster(std::string name) : name_(std::move(name)) {}

PgCluster::~PgCluster() {
  try {
    if (postmaster_.alive() && !postmaster_.signal_and_wait(SIGQUIT, milliseconds(10000)))
      postmaster_.kill_and_reap();
  } catch (...) {
  }
}

void PgCluster::init() {
  if (access(pg_tool("initdb").c_str(), X_OK) != 0)
    fail("PostgreSQL binaries not found in " + pg_bindir() + " (set PGTANDEM_PG_BINDIR)");
  dir_ = std::make_unique<TempDir>("pgtandem-it-" + name_);
  uid_t uid;
  gid_t gid;
  bool drop = drop_privileges(true, &uid, &gid);
  if (mkdir(socket_dir().c_str(), 0700) != 0) fail(errno_text("mkdir " + socket_dir()));
  if (drop && chown(socket_dir().c_str(), uid, gid) != 0) fail(errno_text("chown"));
  RunOptions ro;
  ro.as_postgres = true;
  ro.cwd = dir_->path();
  ro.timeout = milliseconds(120000);
  ro.env = {"LC_ALL=C", "LANG=C"};
  auto r = run_process({pg_tool("initdb"), "-D", data_dir(), "-U", "postgres", "--auth=trust",
                        "--no-sync", "-E", "UTF8", "--locale=C", "--no-instructions"},
                       ro);
  if (!r.ok()) fail("initdb failed for " + name_ + ": " + r.describe());
  port_ = free_tcp_port();
  std::string conf = read_file(data_dir() + "/postgresql.conf");
  conf +=
      "\n# pgtandem integration tests\n"
      "listen_addresses = '127.0.0.1'\n"
      "port = " +
      std::to_string(port_) +
      "\n"
      "unix_socket_directories = '" +
      socket_dir() +
      "'\n"
      "max_connections = 100\n"
      "shared_buffers = 16MB\n"
      "fsync = off\n"
      "synchronous_commit = off\n"
      "full_page_writes = off\n"
      "max_wal_size = 512MB\n"
      "log_min_messages = warning\n"
      "log_connections = off\n"
      "log_line_prefix = '%m [%p] %q%u@%d '\n"
      "lc_messages = 'C'\n"
      "dynamic_shared_memory_type = posix\n";
  write_file(data_dir() + "/postgresql.conf", conf);
  std::string hba =
      "# TYPE DATABASE USER ADDRESS METHOD\n"
      "local all scram_user scram-sha-256\n"
      "local all md5_user md5\n"
      "local all pw_user password\n"
      "local all all trust\n"
      "local replication all trust\n"
      "host all scram_user 127.0.0.1/32 scram-sha-256\n"
      "host all md5_user 127.0.0.1/32 md5\n"
      "host all pw_user 127.0.0.1/32 password\n"
      "host all all 127.0.0.1/32 trust\n"
      "host replication all 127.0.0.1/32 trust\n";
  write_file(data_dir() + "/pg_hba.conf", hba);
  start();
  exec(std::string("SET password_encryption = 'scram-sha-256';") + "CREATE ROLE " + kScramUser +
       " LOGIN PASSWORD '" + kScramPassword + "';" + "CREATE ROLE " + kPwUser +
       " LOGIN PASSWORD '" + kPwPassword + "';" + "SET password_encryption = 'md5';" +
       "CREATE ROLE " + kMd5User + " LOGIN PASSWORD '" + kMd5Password + "';" + "CREATE ROLE " +
       kTrustUser + " LOGIN;" + "CREATE SCHEMA foo;");
}

void PgCluster::start() {
  auto deadline = Clock::now() + milliseconds(60000);
  for (;;) {
    size_t log_before = read_file(log_file()).size();
    postmaster_.spawn({pg_tool("postgres"), "-D", data_dir()}, log_file(), /*as_postgres=*/true);
    std::string ping = conninfo() + " connect_timeout=2";
    bool up = poll_until([&] { return !postmaster_.alive() || PQping(ping.c_str()) == PQPING_OK; },
                         milliseconds(remaining_ms(deadline)), milliseconds(20));
    if (up && postmaster_.alive()) return;
    std::string log = read_file(log_file()).substr(log_before);
    if (postmaster_.alive()) {
      postmaster_.kill_and_reap();
      fail("postgres (" + name_ + ") did not accept connections in time; log:\n" + tail(log));
    }
    // After a SIGKILL of the postmaster, orphaned backends hold the old shared memory for a
    // moment: retry until they are gone.
    bool retry = log.find("shared memory block") != std::string::npos ||
                 log.find("lock file") != std::string::npos ||
                 log.find("already in use") != std::string::npos;
    if (!retry || remaining_ms(deadline) == 0)
      fail("postgres (" + name_ + ") " + postmaster_.exit_description() + "; log:\n" + tail(log));
    std::this_thread::sleep_for(milliseconds(200));
  }
}

void PgCluster::stop() {
  if (!postmaster_.alive()) return;
  if (postmaster_.signal_and_wait(SIGINT, milliseconds(30000))) return;
  if (postmaster_.signal_and_wait(SIGQUIT, milliseconds(10000))) return;
  postmaster_.kill_and_reap();
}

void PgCluster::kill_postmaster() { postmaster_.kill_and_reap(); }

bool PgCluster::running() { return postmaster_.alive(); }

void PgCluster::wait_ready(milliseconds timeout) {
  std::string ping = conninfo() + " connect_timeout=2";
  if (!poll_until([&] { return PQping(ping.c_str()) == PQPING_OK; }, timeout, milliseconds(50)))
    fail("cluster " + name_ + " not ready; log:\n" + tail(read_file(log_file())));
}

Endpoint PgCluster::endpoint() const {
  Endpoint e;
  e.name = "direct";
  e.host = host();
  e.port = port_;
  return e;
}

std::string PgCluster::conninfo(const std::string& dbname, const std::string& user) const {
  return "host=" + socket_dir() + " port=" + std::to_string(port_) + " dbname=" + dbname +
         " user=" + user + " connect_timeout=10";
}

ResultPtr PgCluster::exec(const std::string& sql, const std::string& dbname) const {
  ConnPtr c = it::connect(conninfo(dbname));
  return it::exec(c.get(), sql);
}

std::string PgCluster::query_value(const std::string& sql, const std::string& dbname) const {
  ConnPtr c = it::connect(conninfo(dbname));
  return it::query_value(c.get(), sql);
}

void PgCluster::create_database(const std::string& dbname) const {
  exec("CREATE DATABASE " + dbname);
}

void PgCluster::signal_backend(pid_t backend_pid, int sig) const {
  // A backend killed with SIGKILL makes the postmaster end every session and reinitialize;
  // until that cycle is over, a ping can still succeed and the next connection then meets
  // "the database system is in recovery mode". Wait for the cycle's log line, then for readiness.
  auto restarts = [this] {
    const std::string log = read_file(log_file());
    size_t n = 0;
    for (size_t pos = 0; (pos = log.find("all server processes terminated; reinitializing", pos)) !=
                         std::string::npos;
         ++pos) {
      ++n;
    }
    return n;
  };
  const size_t before = sig == SIGKILL ? restarts() : 0;
  if (::kill(backend_pid, sig) != 0)
    fail(errno_text("kill backend " + std::to_string(backend_pid)));
  if (sig != SIGKILL) return;
  if (!poll_until([&] { return restarts() > before; }, milliseconds(60000), milliseconds(50)))
    fail("cluster " + name_ + " did not reinitialize after a backend was killed");
  const std::string ping = conninfo() + " connect_timeout=2";
  if (!poll_until([&] { return PQping(ping.c_str()) == PQPING_OK; }, milliseconds(60000),
                  milliseconds(50)))
    fail("cluster " + name_ + " not ready after crash restart");
}

bool PgCluster::backend_exists(pid_t backend_pid) const {
  return query_value("SELECT count(*) FROM pg_stat_activity WHERE pid = " +
                     std::to_string(backend_pid)) != "0";
}

// ---------------------------------------------------------------------------------------------
// HTTP and metrics

HttpResponse http_get(uint16_t port, const std::string& path, milliseconds timeout) {
  return http_request(port, "GET", path, {}, "", timeout);
}

HttpResponse http_request(uint16_t port, const std::string& method, const std::string& path,
                          const std::vector<std::string>& headers, const std::string& request_body,
                          milliseconds timeout) {
  RawClient c = RawClient::connect_tcp("127.0.0.1", port, timeout);
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" +
                    std::to_string(port) + "\r\nConnection: close\r\nUser-Agent: pgtandem-it\r\n";
  for (const auto& h : headers) req += h + "\r\n";
  if (method != "GET") req += "Content-Length: " + std::to_string(request_body.size()) + "\r\n";
  req += "\r\n" + request_body;
  if (!c.send(req)) fail("http_get: send failed");
  std::string data;
  auto deadline = Clock::now() + timeout;
  HttpResponse resp;
  for (;;) {
    auto chunk = c.read_some(milliseconds(remaining_ms(deadline)));
    if (!chunk) break;
    data += *chunk;
    // Stop early once a Content-Length body is complete (a server may keep the socket open).
    auto hdr_end = data.find("\r\n\r\n");
    if (hdr_end != std::string::npos) {
      std::string lower = data.substr(0, hdr_end);
      for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      auto cl = lower.find("content-length:");
      if (cl != std::string::npos) {
        size_t n = std::strtoul(lower.c_str() + cl + 15, nullptr, 10);
        if (data.size() >= hdr_end + 4 + n) break;
      }
    }
  }
  auto hdr_end = data.find("\r\n\r\n");
  if (hdr_end == std::string::npos) fail("http_get " + path + ": no complete response: " + data);
  std::istringstream hs(data.substr(0, hdr_end));
  std::string line;
  std::getline(hs, line);
  if (line.rfind("HTTP/1.", 0) != 0) fail("http_get: bad status line: " + line);
  resp.status = std::atoi(line.c_str() + 9);
  while (std::getline(hs, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    std::string value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    resp.headers[name] = value;
  }
  std::string body = data.substr(hdr_end + 4);
  if (resp.headers["transfer-encoding"].find("chunked") != std::string::npos) {
    std::string decoded;
    size_t pos = 0;
    while (pos < body.size()) {
      size_t eol = body.find("\r\n", pos);
      if (eol == std::string::npos) break;
      size_t n = std::strtoul(body.substr(pos, eol - pos).c_str(), nullptr, 16);
      if (n == 0) break;
      decoded += body.substr(eol + 2, n);
      pos = eol + 2 + n + 2;
    }
    body = decoded;
  } else if (resp.headers.count("content-length")) {
    body = body.substr(0, std::strtoul(resp.headers["content-length"].c_str(), nullptr, 10));
  }
  resp.body = body;
  return resp;
}

Metrics Metrics::parse(const std::string& text) {
  Metrics m;
  m.text_ = text;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::istringstream ls(line);
      std::string hash, kind, name;
      ls >> hash >> kind >> name;
      if (kind == "TYPE") m.typed_.push_back(name);
      continue;
    }
    Sample s;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    s.name = line.substr(0, i);
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        size_t eq = line.find('=', i);
        if (eq == std::string::npos) break;
        std::string key = line.substr(i, eq - i);
        i = eq + 1;
        std::string value;
        if (i < line.size() && line[i] == '"') {
          ++i;
          while (i < line.size() && line[i] != '"') {
            if (line[i] == '\\' && i + 1 < line.size()) {
              ++i;
              value.push_back(line[i] == 'n' ? '\n' : line[i]);
            } else {
              value.push_back(line[i]);
            }
            ++i;
          }
          ++i;  // closing quote
        }
        s.labels[key] = value;
        if (i < line.size() && line[i] == ',') ++i;
      }
      ++i;  // '}'
    }
    while (i < line.size() && line[i] == ' ') ++i;
    s.value = std::strtod(line.c_str() + i, nullptr);
    m.samples_.push_back(std::move(s));
  }
  return m;
}

bool Metrics::has(const std::string& name) const {
  for (const auto& s : samples_)
    if (s.name == name) return true;
  for (const auto& t : typed_)
    if (t == name) return true;
  return false;
}

double Metrics::sum(const std::string& name,
                    const std::map<std::string, std::string>& labels) const {
  double total = 0;
  for (const auto& s : samples_) {
    if (s.name != name) continue;
    bool match = true;
    for (const auto& [k, v] : labels) {
      auto it = s.labels.find(k);
      if (it == s.labels.end() || it->second != v) match = false;
    }
    if (match) total += s.value;
  }
  return total;
}

// ---------------------------------------------------------------------------------------------
// ProxyProcess

ProxyProcess::ProxyProcess(ProxyOptions options)
    : options_(std::move(options)), dir_("pgtandem-it-proxy") {}

ProxyProcess::~ProxyProcess() {
  try {
    stop(milliseconds(5000));
  } catch (...) {
  }
}

std::string ProxyProcess::config_text() const { return read_file(config_path()); }

Endpoint ProxyProcess::endpoint() const {
  Endpoint e;
  e.name = "pgtandem";
  e.host = "127.0.0.1";
  e.port = port_;
  return e;
}

void ProxyProcess::start() {
  std::string bin = pgtandem_binary();
  if (bin.empty() || access(bin.c_str(), X_OK) != 0)
    fail("pgtandem binary not found (" + (bin.empty() ? std::string("not configured") : bin) +
         "); build the `pgtandem` target or set PGTANDEM_BIN");
  reserve_ports();
  write_config();
  stopped_ = false;
  std::vector<std::string> argv = {
      bin, "--config", options_.config_file.empty() ? config_path() : options_.config_file};
  argv.insert(argv.end(), options_.extra_args.begin(), options_.extra_args.end());
  child_.spawn(argv, log_path());
  wait_listening();
}

void ProxyProcess::send_signal(int sig) {
  // A test that asks pgtandem to exit (SIGTERM, SIGINT) checks the exit itself.
  if (sig == SIGTERM || sig == SIGINT) stopped_ = true;
  if (child_.alive()) ::kill(child_.pid(), sig);
}

void ProxyProcess::reserve_ports() {
  if (port_ == 0) port_ = free_tcp_port();
  if (options_.admin && admin_port_ == 0) admin_port_ = free_tcp_port();
}

void ProxyProcess::write_config() {
  if (options_.unix_socket) mkdir(dir_.file("sock").c_str(), 0755);
  // Write-then-rename, so a watcher never sees a half-written file.
  write_file(config_path() + ".tmp", render_config());
  if (rename((config_path() + ".tmp").c_str(), config_path().c_str()) != 0)
    fail(errno_text("rename config"));
}

std::string ProxyProcess::render_config() const {
  std::ostringstream t;
  auto extra_lines = [&](const std::string& section) {
    auto it = options_.section_lines.find(section);
    if (it != options_.section_lines.end())
      for (const auto& line : it->second) t << line << "\n";
  };
  t << "primary = \"" << options_.primary << "\"\n";
  t << "workers = " << options_.workers << "\n";
  extra_lines("");
  t << "\n[listen]\naddresses = [\"127.0.0.1:" << port_ << "\"]\n";
  if (options_.unix_socket) t << "unix_socket_dir = \"" << dir_.file("sock") << "\"\n";
  extra_lines("listen");
  t << "\n[targets.old]\nhost = \"127.0.0.1\"\nport = " << options_.old_port << "\n";
  extra_lines("targets.old");
  t << "\n[targets.new]\nhost = \"127.0.0.1\"\nport = " << options_.new_port << "\n";
  extra_lines("targets.new");
  t << "\n[limits]\n";
  if (options_.startup_timeout_ms)
    t << "startup_timeout_ms = " << *options_.startup_timeout_ms << "\n";
  if (options_.max_unauthenticated)
    t << "max_unauthenticated = " << *options_.max_unauthenticated << "\n";
  if (options_.max_client_connections)
    t << "max_client_connections = " << *options_.max_client_connections << "\n";
  extra_lines("limits");
  // Port 0 disables the admin listener (otherwise it would default to 9930 and collide).
  t << "\n[admin]\nlisten = \"127.0.0.1:" << (options_.admin ? admin_port_ : 0) << "\"\n";
  extra_lines("admin");
  if (!options_.extra_toml.empty()) t << "\n" << options_.extra_toml << "\n";
  return t.str();
}

void ProxyProcess::wait_listening() {
  std::string sock_file =
      options_.unix_socket ? unix_socket_dir() + "/.s.PGSQL." + std::to_string(port_) : "";
  bool ready = poll_until(
      [&] {
        if (!child_.alive()) return true;
        if (!tcp_port_listening(port_)) return false;
        if (options_.admin && !tcp_port_listening(admin_port_)) return false;
        if (!sock_file.empty() && access(sock_file.c_str(), F_OK) != 0) return false;
        return true;
      },
      milliseconds(15000), milliseconds(10));
  if (!child_.alive())
    fail("pgtandem " + child_.exit_description() + " during startup; config:\n" + config_text() +
         "\nlog:\n" + tail(log_text()));
  if (!ready) {
    child_.kill_and_reap();
    fail("pgtandem did not listen on 127.0.0.1:" + std::to_string(port_) +
         (options_.admin ? " and admin port " + std::to_string(admin_port_) : "") +
         (sock_file.empty() ? "" : " and " + sock_file) + " within 15 s; log:\n" +
         tail(log_text()));
  }
}

bool ProxyProcess::stop(milliseconds timeout) {
  if (!child_.alive()) return true;
  stopped_ = true;
  if (child_.signal_and_wait(SIGTERM, timeout)) return true;
  child_.kill_and_reap();
  return false;
}

void ProxyProcess::kill() {
  stopped_ = true;
  child_.kill_and_reap();
}

Metrics ProxyProcess::metrics() const {
  HttpResponse r = http_get(admin_port_, "/metrics");
  if (r.status != 200) fail("GET /metrics returned " + std::to_string(r.status) + ": " + r.body);
  return Metrics::parse(r.body);
}

// ---------------------------------------------------------------------------------------------
// psql and pgbench

ProcessResult run_psql(const Endpoint& ep, const std::vector<std::string>& args,
                       milliseconds timeout, const std::string& dbname, const std::string& user) {
  std::vector<std::string> argv = {"psql", "-X",    "-v", "ON_ERROR_STOP=1",
                                   "-h",   ep.host, "-p", std::to_string(ep.port),
                                   "-U",   user,    "-d", dbname};
  argv.insert(argv.end(), args.begin(), args.end());
  RunOptions ro;
  ro.timeout = timeout;
  ro.env = {"PGCONNECT_TIMEOUT=10", "LC_ALL=C", "PGAPPNAME=pgtandem-it-psql"};
  return run_process(argv, ro);
}

PgbenchSummary parse_pgbench(const std::string& out) {
  PgbenchSummary s;
  std::istringstream in(out);
  std::string line;
  bool have_processed = false, have_failed = false;
  while (std::getline(in, line)) {
    auto value_after = [&](const std::string& key) -> const char* {
      if (line.rfind(key, 0) != 0) return nullptr;
      return line.c_str() + key.size();
    };
    if (const char* v = value_after("number of transactions actually processed:")) {
      s.processed = std::strtol(v, nullptr, 10);
      have_processed = true;
    } else if (const char* v2 = value_after("number of failed transactions:")) {
      s.failed = std::strtol(v2, nullptr, 10);
      have_failed = true;
    } else if (const char* v3 = value_after("tps = ")) {
      s.tps = std::strtod(v3, nullptr);
    }
  }
  s.parsed = have_processed && have_failed;
  return s;
}

ProcessResult run_pgbench(const Endpoint& ep, const std::vector<std::string>& args,
                          const std::string& dbname, milliseconds timeout) {
  std::vector<std::string> argv = {pg_tool("pgbench"),      "-h", ep.host,   "-p",
                                   std::to_string(ep.port), "-U", "postgres"};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back(dbname);
  RunOptions ro;
  ro.timeout = timeout;
  ro.env = {"PGCONNECT_TIMEOUT=10", "LC_ALL=C"};
  return run_process(argv, ro);
}

// ---------------------------------------------------------------------------------------------
// Raw protocol

std::string be32(uint32_t v) {
  char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
               static_cast<char>(v)};
  return std::string(b, 4);
}

std::string be16(uint16_t v) {
  char b[2] = {static_cast<char>(v >> 8), static_cast<char>(v)};
  return std::string(b, 2);
}

static uint32_t get32(std::string_view s, size_t off) {
  return (static_cast<uint32_t>(static_cast<unsigned char>(s[off])) << 24) |
         (static_cast<uint32_t>(static_cast<unsigned char>(s[off + 1])) << 16) |
         (static_cast<uint32_t>(static_cast<unsigned char>(s[off + 2])) << 8) |
         static_cast<uint32_t>(static_cast<unsigned char>(s[off + 3]));
}

std::string startup_packet(const std::vector<std::pair<std::string, std::string>>& params,
                           uint32_t protocol) {
  std::string body = be32(protocol);
  for (const auto& [k, v] : params) {
    body += k;
    body.push_back('\0');
    body += v;
    body.push_back('\0');
  }
  body.push_back('\0');
  return be32(static_cast<uint32_t>(body.size() + 4)) + body;
}

std::string ssl_request() { return be32(8) + be32(80877103); }
std::string gssenc_request() { return be32(8) + be32(80877104); }
std::string cancel_request(uint32_t pid, uint32_t key) {
  return be32(16) + be32(80877102) + be32(pid) + be32(key);
}

std::string frontend_message(char type, std::string_view body) {
  return std::string(1, type) + be32(static_cast<uint32_t>(body.size() + 4)) + std::string(body);
}

std::string query_message(std::string_view sql) {
  std::string body(sql);
  body.push_back('\0');
  return frontend_message('Q', body);
}

ErrorFields ErrorFields::parse(std::string_view body) {
  ErrorFields f;
  size_t i = 0;
  while (i < body.size() && body[i] != '\0') {
    char code = body[i++];
    size_t end = body.find('\0', i);
    if (end == std::string_view::npos) end = body.size();
    f.fields[code] = std::string(body.substr(i, end - i));
    i = end + 1;
  }
  return f;
}

std::string ErrorFields::get(char code) const {
  auto it = fields.find(code);
  return it == fields.end() ? "" : it->second;
}

std::string ErrorFields::summary() const {
  return severity() + " " + sqlstate() + ": " + message();
}

std::string Outcome::normalized() const {
  std::string s;
  for (const auto& m : messages) {
    if (!s.empty()) s += " ";
    if (m.type == 'E' || m.type == 'N') {
      auto f = ErrorFields::parse(m.body);
      s += std::string(1, m.type) + "(" + f.get('S') + "/" + f.get('V') + " " + f.sqlstate() +
           " \"" + f.message() + "\")";
    } else {
      s += std::string(1, m.type);
    }
  }
  if (!raw.empty()) {
    // Bytes that are not v3 messages (e.g. a protocol-2 error): shown escaped, compared whole.
    s += (s.empty() ? "" : " ") + std::string("raw[") + escape_bytes(raw) + "]";
  }
  s += closed ? (s.empty() ? "close" : " close") : (s.empty() ? "open" : " open");
  return s;
}

const BackendMessage* Outcome::first(char type) const {
  for (const auto& m : messages)
    if (m.type == type) return &m;
  return nullptr;
}

RawClient::~RawClient() { close(); }

RawClient::RawClient(RawClient&& o) noexcept : fd_(o.fd_), buf_(std::move(o.buf_)), eof_(o.eof_) {
  o.fd_ = -1;
}

RawClient& RawClient::operator=(RawClient&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = o.fd_;
    buf_ = std::move(o.buf_);
    eof_ = o.eof_;
    o.fd_ = -1;
  }
  return *this;
}

static int connect_with_timeout(int fd, const sockaddr* addr, socklen_t len, milliseconds timeout) {
  int flags = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  int r = ::connect(fd, addr, len);
  if (r != 0 && errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    r = poll(&p, 1, static_cast<int>(timeout.count()));
    if (r <= 0) {
      errno = r == 0 ? ETIMEDOUT : errno;
      return -1;
    }
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) {
      errno = err;
      return -1;
    }
    r = 0;
  }
  fcntl(fd, F_SETFL, flags);
  return r;
}

RawClient RawClient::connect_tcp(const std::string& host, uint16_t port, milliseconds timeout) {
  RawClient c;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail(errno_text("socket"));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    ::close(fd);
    fail("bad IPv4 address: " + host);
  }
  if (connect_with_timeout(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr, timeout) != 0) {
    std::string e = errno_text("connect " + host + ":" + std::to_string(port));
    ::close(fd);
    fail(e);
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c.fd_ = fd;
  return c;
}

RawClient RawClient::connect_unix(const std::string& path, milliseconds timeout) {
  RawClient c;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail(errno_text("socket"));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) fail("unix socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (connect_with_timeout(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr, timeout) != 0) {
    std::string e = errno_text("connect " + path);
    ::close(fd);
    fail(e);
  }
  c.fd_ = fd;
  return c;
}

RawClient RawClient::connect(const Endpoint& ep) {
  if (ep.is_unix()) return connect_unix(ep.host + "/.s.PGSQL." + std::to_string(ep.port));
  return connect_tcp(ep.host, ep.port);
}

bool RawClient::send(std::string_view bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    off += static_cast<size_t>(n);
  }
  return true;
}

void RawClient::shutdown_write() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

void RawClient::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool RawClient::fill(milliseconds timeout) {
  if (eof_ || fd_ < 0) return false;
  auto deadline = Clock::now() + timeout;
  for (;;) {
    pollfd p{fd_, POLLIN, 0};
    int r = poll(&p, 1, remaining_ms(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    char tmp[65536];
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n > 0) {
      buf_.append(tmp, static_cast<size_t>(n));
      return true;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    eof_ = true;  // orderly close or reset: both mean the peer is gone
    return false;
  }
}

std::optional<std::string> RawClient::read_bytes(size_t n, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (buf_.size() < n) {
    if (!fill(milliseconds(remaining_ms(deadline)))) return std::nullopt;
  }
  std::string r = buf_.substr(0, n);
  buf_.erase(0, n);
  return r;
}

std::optional<std::string> RawClient::read_some(milliseconds timeout) {
  if (buf_.empty() && !fill(timeout)) return std::nullopt;
  std::string r;
  r.swap(buf_);
  return r;
}

std::optional<BackendMessage> RawClient::read_message(milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    if (buf_.size() >= 5) {
      uint32_t len = get32(buf_, 1);
      if (len < 4) {
        // Not a valid backend message; hand back the rest as the body of a pseudo-message.
        BackendMessage m{buf_[0], buf_.substr(1)};
        buf_.clear();
        return m;
      }
      if (buf_.size() >= size_t{len} + 1) {
        BackendMessage m{buf_[0], buf_.substr(5, len - 4)};
        buf_.erase(0, size_t{len} + 1);
        return m;
      }
    }
    if (!fill(milliseconds(remaining_ms(deadline)))) return std::nullopt;
  }
}

Outcome RawClient::read_until_close(milliseconds timeout) {
  Outcome o;
  auto deadline = Clock::now() + timeout;
  for (;;) {
    auto m = read_message(milliseconds(remaining_ms(deadline)));
    if (m) {
      o.messages.push_back(std::move(*m));
      continue;
    }
    if (eof_)
      o.closed = true;
    else
      o.timed_out = true;
    break;
  }
  o.raw = buf_;
  buf_.clear();
  return o;
}

Outcome RawClient::read_until_ready(milliseconds timeout) {
  Outcome o;
  auto deadline = Clock::now() + timeout;
  for (;;) {
    auto m = read_message(milliseconds(remaining_ms(deadline)));
    if (!m) {
      if (eof_)
        o.closed = true;
      else
        o.timed_out = true;
      break;
    }
    char type = m->type;
    o.messages.push_back(std::move(*m));
    if (type == 'Z') break;
  }
  return o;
}

bool RawClient::wait_closed(milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  // At least one (possibly non-blocking) look at the socket, however short the timeout.
  do {
    fill(milliseconds(remaining_ms(deadline)));
  } while (!eof_ && remaining_ms(deadline) > 0);
  return eof_;
}

RawClient::LoginResult RawClient::login(
    const std::string& user, const std::string& password, const std::string& dbname,
    const std::vector<std::pair<std::string, std::string>>& extra, milliseconds timeout) {
  LoginResult res;
  res.auth_method = "trust";
  std::vector<std::pair<std::string, std::string>> params = {{"user", user}, {"database", dbname}};
  params.insert(params.end(), extra.begin(), extra.end());
  if (!send(startup_packet(params))) {
    res.failure = "send of the startup packet failed";
    return res;
  }
  auto deadline = Clock::now() + timeout;
  std::string client_first_bare, server_first, client_final_without_proof, salted_password;
  std::string nonce;
  for (;;) {
    auto m = read_message(milliseconds(remaining_ms(deadline)));
    if (!m) {
      res.failure = eof_ ? "connection closed during login" : "timeout during login";
      return res;
    }
    switch (m->type) {
      case 'R': {
        if (m->body.size() < 4) {
          res.failure = "short authentication message";
          return res;
        }
        uint32_t code = get32(m->body, 0);
        if (code == 0) break;
        if (code == 3) {
          res.auth_method = "cleartext";
          std::string body = password;
          body.push_back('\0');
          send(frontend_message('p', body));
        } else if (code == 5) {
          res.auth_method = "md5";
          std::string salt = m->body.substr(4, 4);
          std::string body = "md5" + md5_hex(md5_hex(password + user) + salt);
          body.push_back('\0');
          send(frontend_message('p', body));
        } else if (code == 10) {
          res.auth_method = "scram-sha-256";
          unsigned char rnd[18];
          RAND_bytes(rnd, sizeof rnd);
          nonce = base64_encode(std::string(reinterpret_cast<char*>(rnd), sizeof rnd));
          client_first_bare = "n=,r=" + nonce;
          std::string first = "n,," + client_first_bare;
          std::string body = std::string("SCRAM-SHA-256") + '\0' +
                             be32(static_cast<uint32_t>(first.size())) + first;
          send(frontend_message('p', body));
        } else if (code == 11) {
          server_first = m->body.substr(4);
          std::string r, s;
          int iterations = 0;
          std::istringstream parts(server_first);
          std::string part;
          while (std::getline(parts, part, ',')) {
            if (part.rfind("r=", 0) == 0) r = part.substr(2);
            if (part.rfind("s=", 0) == 0) s = part.substr(2);
            if (part.rfind("i=", 0) == 0) iterations = std::atoi(part.c_str() + 2);
          }
          if (r.rfind(nonce, 0) != 0 || iterations <= 0) {
            res.failure = "bad SCRAM server-first-message: " + server_first;
            return res;
          }
          std::string salt = base64_decode(s);
          salted_password.resize(32);
          PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                            reinterpret_cast<const unsigned char*>(salt.data()),
                            static_cast<int>(salt.size()), iterations, EVP_sha256(), 32,
                            reinterpret_cast<unsigned char*>(salted_password.data()));
          std::string client_key = hmac_sha256(salted_password, "Client Key");
          std::string stored_key = sha256(client_key);
          client_final_without_proof = "c=biws,r=" + r;
          std::string auth_message =
              client_first_bare + "," + server_first + "," + client_final_without_proof;
          std::string signature = hmac_sha256(stored_key, auth_message);
          std::string proof = client_key;
          for (size_t i = 0; i < proof.size(); ++i)
            proof[i] = static_cast<char>(proof[i] ^ signature[i]);
          send(frontend_message('p', client_final_without_proof + ",p=" + base64_encode(proof)));
        } else if (code == 12) {
          // AuthenticationSASLFinal: check the server signature (proves the server knew the key).
          std::string server_key = hmac_sha256(salted_password, "Server Key");
          std::string auth_message =
              client_first_bare + "," + server_first + "," + client_final_without_proof;
          std::string expected = "v=" + base64_encode(hmac_sha256(server_key, auth_message));
          if (m->body.substr(4) != expected) {
            res.failure = "SCRAM server signature mismatch";
            return res;
          }
        } else {
          res.failure = "unsupported authentication request " + std::to_string(code);
          return res;
        }
        break;
      }
      case 'E':
        res.error = ErrorFields::parse(m->body);
        wait_closed(milliseconds(std::min(remaining_ms(deadline), 2000)));
        return res;
      case 'S': {
        auto nul = m->body.find('\0');
        if (nul != std::string::npos) {
          std::string value = m->body.substr(nul + 1);
          if (!value.empty() && value.back() == '\0') value.pop_back();
          res.parameters[m->body.substr(0, nul)] = value;
        }
        break;
      }
      case 'K':
        if (m->body.size() >= 8) {
          res.backend_pid = get32(m->body, 0);
          res.backend_key = get32(m->body, 4);
        }
        break;
      case 'Z':
        res.ok = true;
        return res;
      default:
        break;  // NoticeResponse, NegotiateProtocolVersion
    }
  }
}

// ---------------------------------------------------------------------------------------------
// HealthySession

HealthySession::HealthySession(std::string conninfo) : conninfo_(std::move(conninfo)) {}

HealthySession::~HealthySession() { stop(); }

void HealthySession::start() {
  conn_ = it::connect(conninfo_);
  thread_ = std::thread([this] { loop(); });
}

void HealthySession::loop() {
  long i = 0;
  while (!stop_) {
    ++i;
    std::string param = std::to_string(i);
    const char* values[1] = {param.c_str()};
    ResultPtr r(PQexecParams(conn_.get(), "SELECT $1::bigint + 1, repeat('h', 100)", 1, nullptr,
                             values, nullptr, nullptr, 0));
    bool good = PQresultStatus(r.get()) == PGRES_TUPLES_OK && PQntuples(r.get()) == 1 &&
                std::string(PQgetvalue(r.get(), 0, 0)) == std::to_string(i + 1);
    if (good) {
      ++ok_;
    } else {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (first_error_.empty())
          first_error_ = result_status_name(r.get()) + ": " + PQerrorMessage(conn_.get());
      }
      ++errors_;
      if (PQstatus(conn_.get()) != CONNECTION_OK) return;
    }
  }
}

bool HealthySession::wait_progress(long n, milliseconds timeout) {
  long target = ok_ + n;
  return poll_until([&] { return errors_ > 0 || ok_ >= target; }, timeout, milliseconds(2)) &&
         errors_ == 0;
}

void HealthySession::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

std::string HealthySession::first_error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return first_error_;
}

// ---------------------------------------------------------------------------------------------
// Env

Env& Env::get() {
  static Env env;
  return env;
}

void Env::set_up() {
  Reaper::get();  // fork it before any thread exists
  old_ = std::make_unique<PgCluster>("old");
  new_ = std::make_unique<PgCluster>("new");
  std::string new_error;
  std::thread t([&] {
    try {
      new_->init();
    } catch (const std::exception& e) {
      new_error = e.what();
    }
  });
  std::string old_error;
  try {
    old_->init();
  } catch (const std::exception& e) {
    old_error = e.what();
  }
  t.join();
  if (!old_error.empty()) fail(old_error);
  if (!new_error.empty()) fail(new_error);
}

void Env::tear_down() {
  proxy_.reset();
  if (old_) old_->stop();
  if (new_) new_->stop();
  old_.reset();
  new_.reset();
}

ProxyOptions Env::default_proxy_options() const {
  ProxyOptions o;
  o.old_port = old_->port();
  o.new_port = new_->port();
  return o;
}

ProxyProcess& Env::proxy() {
  if (!old_ || !new_)
    fail("the clusters were not started (see the environment set-up error above)");
  if (proxy_ && proxy_->alive()) return *proxy_;
  proxy_.reset();
  auto p = std::make_unique<ProxyProcess>(default_proxy_options());
  p->start();
  proxy_ = std::move(p);
  return *proxy_;
}

bool Env::check_proxy_alive(std::string* why) {
  if (!proxy_) return true;
  if (proxy_->alive()) return true;
  if (why)
    *why =
        "the shared pgtandem " + proxy_->exit_description() + "; log:\n" + tail(proxy_->log_text());
  return false;
}

}  // namespace pgtandem::it

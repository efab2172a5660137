// Integration-test harness: real PostgreSQL 15 servers on ephemeral ports, the pgtandem binary as a
// child process, subprocess helpers (psql, pgbench), a raw-socket protocol client, and metrics.
//
// Everything here throws std::runtime_error on setup failures; GoogleTest reports an exception
// escaping a test as a failure, so a missing binary or a server that does not start fails the test
// (it never skips). Every process and directory is cleaned up on destruction, and a reaper process
// (forked on first use) kills what is left and removes the directories if the test binary dies.
#pragma once

#include <libpq-fe.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
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

// ---------------------------------------------------------------------------------------------
// libpq helpers

struct PGconnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct PGresultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using ConnPtr = std::unique_ptr<PGconn, PGconnDeleter>;
using ResultPtr = std::unique_ptr<PGresult, PGresultDeleter>;

// Where a client connects: a cluster directly or pgtandem.
struct Endpoint {
  std::string name;                // "direct" / "pgtandem" (for messages and unique object names)
  std::string host = "127.0.0.1";  // or a directory: the Unix socket <host>/.s.PGSQL.<port>
  uint16_t port = 0;
  bool is_unix() const { return !host.empty() && host[0] == '/'; }
  std::string conninfo(const std::string& extra = "", const std::string& dbname = "postgres",
                       const std::string& user = "postgres") const;
};

ConnPtr connect_raw(const std::string& conninfo);            // never throws; check PQstatus
ConnPtr connect(const std::string& conninfo);                // throws with the libpq message
ResultPtr exec(PGconn* c, const std::string& sql);           // throws unless COMMAND_OK/TUPLES_OK
std::string query_value(PGconn* c, const std::string& sql);  // first column of the first row
std::string result_status_name(const PGresult* r);
// "connection to server at ... failed: FATAL:  msg" -> "FATAL:  msg" (drops the address prefix).
std::string strip_connection_prefix(std::string libpq_error);

// ---------------------------------------------------------------------------------------------
// PostgreSQL cluster

inline constexpr const char* kScramUser = "scram_user";
inline constexpr const char* kScramPassword = "scram_pass";
inline constexpr const char* kMd5User = "md5_user";
inline constexpr const char* kMd5Password = "md5_pass";
inline constexpr const char* kPwUser = "pw_user";
inline constexpr const char* kPwPassword = "pw_pass";
inline constexpr const char* kTrustUser = "trust_user";

class PgCluster {
 public:
  explicit PgCluster(std::string name);
  ~PgCluster();
  PgCluster(const PgCluster&) = delete;
  PgCluster& operator=(const PgCluster&) = delete;

  // initdb, configuration, start, roles. Called once.
  void init();
  void start();            // start the postmaster and wait until it accepts connections
  void stop();             // fast shutdown (SIGINT), waits
  void kill_postmaster();  // SIGKILL the postmaster; backends die on their own
  bool running();
  pid_t postmaster_pid() const { return postmaster_.pid(); }

  const std::string& name() const { return name_; }
  uint16_t port() const { return port_; }
  std::string host() const { return "127.0.0.1"; }
  std::string socket_dir() const { return dir_->file("sock"); }
  std::string data_dir() const { return dir_->file("data"); }
  std::string log_file() const { return dir_->file("postgres.log"); }
  Endpoint endpoint() const;
  std::string conninfo(const std::string& dbname = "postgres",
                       const std::string& user = "postgres") const;  // over the Unix socket

  // Superuser SQL over a fresh connection (throws on error).
  ResultPtr exec(const std::string& sql, const std::string& dbname = "postgres") const;
  std::string query_value(const std::string& sql, const std::string& dbname = "postgres") const;
  void create_database(const std::string& dbname) const;
  // Signal a backend from outside (SIGKILL of a backend makes the postmaster reinitialize: wait
  // with wait_ready() afterwards).
  void signal_backend(pid_t backend_pid, int sig) const;
  void wait_ready(milliseconds timeout = milliseconds(60000));
  bool backend_exists(pid_t backend_pid) const;  // in pg_stat_activity

 private:
  std::string name_;
  std::unique_ptr<TempDir> dir_;
  uint16_t port_ = 0;
  ChildProcess postmaster_;
};

// ---------------------------------------------------------------------------------------------
// pgtandem process

struct ProxyOptions {
  std::string primary = "old";
  uint16_t old_port = 0;
  uint16_t new_port = 0;
  uint32_t workers = 2;
  bool unix_socket = false;  // also listen on a Unix socket in the proxy's temp dir
  bool admin = true;
  std::optional<uint32_t> startup_timeout_ms;
  std::optional<uint32_t> max_unauthenticated;
  std::optional<uint32_t> max_client_connections;
  // Extra "key = value" lines inside the tables the harness writes ("" is the top level; also
  // "listen", "targets.old", "targets.new", "limits", "admin"): TOML forbids reopening a table.
  std::map<std::string, std::vector<std::string>> section_lines;
  std::string extra_toml;  // appended verbatim after everything (new tables)
  // Extra command-line arguments after `--config FILE` (e.g. {"--audit-log", path}).
  std::vector<std::string> extra_args;
  // When set, pgtandem is started with `--config config_file` (which the test prepares, e.g. a
  // ConfigMap-style symlink, with render_config()) instead of the file write_config() writes.
  std::string config_file;
};

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};
HttpResponse http_get(uint16_t port, const std::string& path,
                      milliseconds timeout = milliseconds(5000));
// Any method, with extra header lines ("Name: value") and a body.
HttpResponse http_request(uint16_t port, const std::string& method, const std::string& path,
                          const std::vector<std::string>& headers = {},
                          const std::string& body = "",
                          milliseconds timeout = milliseconds(15000));

// Prometheus text format, parsed into samples.
class Metrics {
 public:
  struct Sample {
    std::string name;
    std::map<std::string, std::string> labels;
    double value = 0;
  };
  static Metrics parse(const std::string& text);
  bool has(const std::string& name) const;  // any sample or a # TYPE line with this name
  // Sum of the samples of `name` whose labels include every given label.
  double sum(const std::string& name, const std::map<std::string, std::string>& labels = {}) const;
  const std::vector<Sample>& samples() const { return samples_; }
  const std::string& text() const { return text_; }

 private:
  std::vector<Sample> samples_;
  std::vector<std::string> typed_;
  std::string text_;
};

class ProxyProcess {
 public:
  explicit ProxyProcess(ProxyOptions options);
  ~ProxyProcess();
  ProxyProcess(const ProxyProcess&) = delete;
  ProxyProcess& operator=(const ProxyProcess&) = delete;

  void start();  // write config, spawn, wait until listening (throws)
  // For reload tests: change options(), write_config(), then send_signal(SIGHUP). Ports stay.
  ProxyOptions& options() { return options_; }
  void write_config();
  // The TOML write_config() writes, for tests that put it somewhere else (config_file).
  std::string render_config() const;
  // Picks the listen and admin ports now (start() keeps them), so render_config() is final.
  void reserve_ports();
  void send_signal(int sig);
  bool stop(milliseconds timeout = milliseconds(10000));  // SIGTERM then SIGKILL; true if clean
  void kill();                                            // SIGKILL
  bool alive() { return child_.alive(); }
  bool stopped_by_test() const { return stopped_; }
  std::string exit_description() const { return child_.exit_description(); }
  int raw_exit_status() const { return child_.raw_status(); }  // waitpid status once exited

  pid_t pid() const { return child_.pid(); }
  uint16_t port() const { return port_; }
  uint16_t admin_port() const { return admin_port_; }
  std::string unix_socket_dir() const { return options_.unix_socket ? dir_.file("sock") : ""; }
  Endpoint endpoint() const;
  std::string config_path() const { return dir_.file("pgtandem.toml"); }
  std::string log_path() const { return dir_.file("pgtandem.log"); }
  std::string log_text() const { return read_file(log_path()); }
  std::string config_text() const;
  Metrics metrics() const;  // GET /metrics (throws unless 200)

 private:
  void wait_listening();
  ProxyOptions options_;
  TempDir dir_;
  uint16_t port_ = 0;
  uint16_t admin_port_ = 0;
  bool stopped_ = false;
  ChildProcess child_;
};

// ---------------------------------------------------------------------------------------------
// Client tools as subprocesses

ProcessResult run_psql(const Endpoint& ep, const std::vector<std::string>& args,
                       milliseconds timeout = milliseconds(60000),
                       const std::string& dbname = "postgres",
                       const std::string& user = "postgres");

struct PgbenchSummary {
  bool parsed = false;
  long processed = -1;  // "number of transactions actually processed"
  long failed = -1;     // "number of failed transactions" (pgbench 15)
  double tps = 0;
};
PgbenchSummary parse_pgbench(const std::string& out);
ProcessResult run_pgbench(const Endpoint& ep, const std::vector<std::string>& args,
                          const std::string& dbname, milliseconds timeout = milliseconds(120000));

// ---------------------------------------------------------------------------------------------
// Raw protocol client

// Frontend message builders.
std::string be32(uint32_t v);
std::string be16(uint16_t v);
std::string startup_packet(const std::vector<std::pair<std::string, std::string>>& params,
                           uint32_t protocol = 196608);
std::string ssl_request();
std::string gssenc_request();
std::string cancel_request(uint32_t pid, uint32_t key);
std::string frontend_message(char type, std::string_view body);
std::string query_message(std::string_view sql);

struct BackendMessage {
  char type = 0;
  std::string body;
};

// Fields of an ErrorResponse/NoticeResponse body.
struct ErrorFields {
  std::map<char, std::string> fields;
  static ErrorFields parse(std::string_view body);
  std::string get(char code) const;
  std::string severity() const { return get('V').empty() ? get('S') : get('V'); }
  std::string sqlstate() const { return get('C'); }
  std::string message() const { return get('M'); }
  std::string summary() const;  // "S/V SQLSTATE: message"
};

// What the peer did after we sent something: the messages it sent and how the stream ended.
struct Outcome {
  std::vector<BackendMessage> messages;
  std::string raw;      // bytes not forming complete messages (e.g. a lone 'N')
  bool closed = false;  // EOF or reset
  bool timed_out = false;
  // Normalized description to compare two servers: message types in order, ErrorResponse and
  // NoticeResponse as severity+SQLSTATE+message, then "close" or "open".
  std::string normalized() const;
  const BackendMessage* first(char type) const;
};

class RawClient {
 public:
  RawClient() = default;
  ~RawClient();
  RawClient(RawClient&& o) noexcept;
  RawClient& operator=(RawClient&& o) noexcept;

  static RawClient connect_tcp(const std::string& host, uint16_t port,
                               milliseconds timeout = milliseconds(5000));
  static RawClient connect_unix(const std::string& path, milliseconds timeout = milliseconds(5000));
  static RawClient connect(const Endpoint& ep);

  bool valid() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  bool send(std::string_view bytes);  // false if the peer is gone (EPIPE/ECONNRESET)
  void shutdown_write();
  void close();

  // Read exactly n raw bytes (for the one-byte SSLRequest answer); nullopt on timeout/EOF.
  std::optional<std::string> read_bytes(size_t n, milliseconds timeout);
  // Whatever arrives next (at least one byte); nullopt on timeout/EOF.
  std::optional<std::string> read_some(milliseconds timeout);
  // Read one typed backend message. nullopt on timeout or EOF (see eof()).
  std::optional<BackendMessage> read_message(milliseconds timeout);
  // Read messages until the peer closes or the timeout passes.
  Outcome read_until_close(milliseconds timeout);
  // Read messages until ReadyForQuery, ErrorResponse followed by close, or timeout.
  Outcome read_until_ready(milliseconds timeout);
  bool eof() const { return eof_; }
  // True once the peer has closed (polls without consuming data beyond the internal buffer).
  bool wait_closed(milliseconds timeout);

  // Startup + authentication (trust, cleartext, md5, SCRAM-SHA-256) up to ReadyForQuery.
  struct LoginResult {
    bool ok = false;
    std::optional<ErrorFields> error;  // ErrorResponse received during login
    uint32_t backend_pid = 0;
    uint32_t backend_key = 0;
    std::map<std::string, std::string> parameters;
    std::string auth_method;  // "trust", "cleartext", "md5", "scram-sha-256"
    std::string failure;      // transport-level or protocol description
  };
  LoginResult login(const std::string& user, const std::string& password = "",
                    const std::string& dbname = "postgres",
                    const std::vector<std::pair<std::string, std::string>>& extra = {},
                    milliseconds timeout = milliseconds(10000));

 private:
  bool fill(milliseconds timeout);  // read more into buf_; false on timeout/EOF
  int fd_ = -1;
  std::string buf_;
  bool eof_ = false;
};

// ---------------------------------------------------------------------------------------------
// A session running queries in a loop on its own thread, to prove another session's trouble
// does not disturb it.

class HealthySession {
 public:
  explicit HealthySession(std::string conninfo);
  ~HealthySession();
  void start();  // connects (throws if it cannot) and starts
  // Wait until `n` more queries have succeeded since the call; false on timeout or error.
  bool wait_progress(long n, milliseconds timeout = milliseconds(10000));
  void stop();
  long ok() const { return ok_; }
  long errors() const { return errors_; }
  std::string first_error() const;

 private:
  void loop();
  std::string conninfo_;
  ConnPtr conn_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<long> ok_{0};
  std::atomic<long> errors_{0};
  mutable std::mutex mu_;
  std::string first_error_;
};

// ---------------------------------------------------------------------------------------------
// The per-binary environment: two clusters ("old", "new") and a shared pgtandem in front of them
// (primary = old), started lazily so a missing binary fails only the tests that need it.

class Env {
 public:
  static Env& get();
  PgCluster& old_cluster() { return *old_; }
  PgCluster& new_cluster() { return *new_; }
  // The shared proxy; (re)started if it is not running. Throws if it cannot start.
  ProxyProcess& proxy();
  // The shared proxy if one was started (running or not), without starting it.
  ProxyProcess* current_proxy() { return proxy_.get(); }
  // True if the shared proxy is running; if it died, returns false and fills `why`.
  bool check_proxy_alive(std::string* why);
  ProxyOptions default_proxy_options() const;

  void set_up();
  void tear_down();

 private:
  std::unique_ptr<PgCluster> old_;
  std::unique_ptr<PgCluster> new_;
  std::unique_ptr<ProxyProcess> proxy_;
  std::string proxy_start_error_;
};

}  // namespace pgtandem::it

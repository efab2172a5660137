#include "tests/integration/harness/proxy_process.h"

#include <signal.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include "tests/integration/harness/internal.h"

namespace pgtandem::it {

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
  // PGTANDEM_TEST_IO_BACKEND=epoll|uring runs the suite on that relay backend (issue 17); unset,
  // the default ("auto": uring where the kernel allows it).
  if (const char* backend = std::getenv("PGTANDEM_TEST_IO_BACKEND"); backend && *backend) {
    t << "io_backend = \"" << backend << "\"\n";
  }
  // pgtandem's state (journal, crash-window marker) in the test's temp dir unless a test gives its
  // own (one that restarts pgtandem on the same state): never the repository or the cwd.
  bool own_state_dir = false;
  if (auto it = options_.section_lines.find(""); it != options_.section_lines.end()) {
    for (const auto& line : it->second)
      if (line.rfind("state_dir", 0) == 0) own_state_dir = true;
  }
  if (!own_state_dir) t << "state_dir = \"" << dir_.file("state") << "\"\n";
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
  // PGTANDEM_TEST_MIRROR_LINK_THREADS=N sets [mirror] link_threads (issue 17: 0 runs the mirror
  // links on their sessions' workers, as before) unless the test sets it itself.
  std::string extra = options_.extra_toml;
  if (const char* n = std::getenv("PGTANDEM_TEST_MIRROR_LINK_THREADS");
      n && *n && extra.find("link_threads") == std::string::npos) {
    const std::string line = std::string("link_threads = ") + n + "\n";
    const size_t at = extra.rfind("[mirror]\n", 0) == 0 ? 0 : extra.find("\n[mirror]\n");
    if (at == std::string::npos) {
      extra += "\n[mirror]\n" + line;
    } else {
      extra.insert(extra.find("[mirror]\n", at) + 9, line);
    }
  }
  if (!extra.empty()) t << "\n" << extra << "\n";
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

}  // namespace pgtandem::it

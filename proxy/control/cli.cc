#include "proxy/control/cli.h"

#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/src.hpp>  // header-only Boost.JSON, compiled into this file only
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "config/config.h"

namespace pgtandem::proxy {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;

constexpr const char* kStatusUsage =
    "Usage: pgtandem status [--admin HOST:PORT] [--config FILE]\n"
    "Prints a summary of a running pgtandem's /status (admin address: --admin, else the\n"
    "config's [admin] listen, else 127.0.0.1:9930).\n";
constexpr const char* kReloadUsage =
    "Usage: pgtandem reload [--admin HOST:PORT] [--config FILE] [--token TOKEN]\n"
    "Asks a running pgtandem to reload its config (POST /reload) and prints the outcome.\n"
    "The token: --token, else the config's [admin] token or token_file.\n";

struct Options {
  std::string admin;
  std::string config;
  std::string token;
  bool token_given = false;
};

// false: usage error.
bool parse_options(int argc, char** argv, bool allow_token, Options* out) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view opt = argv[i];
    if (i + 1 >= argc) return false;
    std::string* slot = opt == "--admin"                  ? &out->admin
                        : opt == "--config"               ? &out->config
                        : (opt == "--token" && allow_token) ? &out->token
                                                          : nullptr;
    if (slot == nullptr || !slot->empty() || argv[i + 1][0] == '\0') return false;
    *slot = argv[++i];
    if (opt == "--token") out->token_given = true;
  }
  return true;
}

bool split_host_port(const std::string& text, std::string* host, std::string* port) {
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 >= text.size()) return false;
  *host = text.substr(0, colon);
  *port = text.substr(colon + 1);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  if (host->empty() || *host == "*" || *host == "0.0.0.0") *host = "127.0.0.1";
  if (*host == "::") *host = "::1";
  return std::all_of(port->begin(), port->end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string trim(std::string s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return {};
  const auto last = s.find_last_not_of(" \t\r\n");
  return s.substr(first, last - first + 1);
}

// Resolves the admin address (and, for reload, the token) from the options and the config.
// 0 ok, else the exit code.
int resolve(Options& o, bool want_token, std::string* host, std::string* port) {
  std::optional<config::Config> cfg;
  if (!o.config.empty()) {
    auto loaded = config::load_file(o.config);
    if (!loaded.ok()) {
      std::fprintf(stderr, "%s is invalid (so pgtandem would reject it too):\n", o.config.c_str());
      for (const auto& e : loaded.errors) std::fprintf(stderr, "%s\n", e.to_string().c_str());
      return 1;
    }
    cfg = std::move(loaded.config);
  }
  std::string address = o.admin;
  if (address.empty() && cfg) {
    if (!cfg->admin.enabled()) {
      std::fprintf(stderr, "%s: the admin endpoint is disabled ([admin] listen = \"\")\n",
                   o.config.c_str());
      return 1;
    }
    address = config::format_host_port(cfg->admin.listen_host, cfg->admin.listen_port);
  }
  if (address.empty()) address = "127.0.0.1:9930";
  if (!split_host_port(address, host, port)) {
    std::fprintf(stderr, "invalid admin address '%s' (expected HOST:PORT)\n", address.c_str());
    return 2;
  }
  if (want_token && !o.token_given && cfg) {
    if (!cfg->admin.token.empty()) {
      o.token = cfg->admin.token;
    } else if (!cfg->admin.token_file.empty()) {
      std::ifstream in(cfg->admin.token_file, std::ios::binary);
      std::ostringstream content;
      if (in) content << in.rdbuf();
      if (!in) {
        std::fprintf(stderr, "cannot read admin.token_file %s: %s\n",
                     cfg->admin.token_file.c_str(), std::strerror(errno));
        return 1;
      }
      o.token = trim(content.str());
    }
  }
  return 0;
}

struct HttpResult {
  int status = 0;
  std::string body;
};

// One request, blocking, with a 30-second socket timeout; nullopt with *error on failure.
std::optional<HttpResult> http_call(const std::string& host, const std::string& port,
                                    http::verb method, const std::string& target,
                                    const std::string& token, std::string* error) {
  try {
    asio::io_context io;
    asio::ip::tcp::resolver resolver(io);
    asio::ip::tcp::socket socket(io);
    asio::connect(socket, resolver.resolve(host, port));
    timeval tv{30, 0};
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, host + ":" + port);
    req.set(http::field::user_agent, "pgtandem-cli");
    if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
    req.keep_alive(false);
    req.prepare_payload();
    http::write(socket, req);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64u << 20);
    http::read(socket, buffer, parser);
    boost::system::error_code ignored;
    socket.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    return HttpResult{static_cast<int>(parser.get().result_int()), parser.get().body()};
  } catch (const boost::system::system_error& e) {
    *error = "admin endpoint " + host + ":" + port + ": " + e.code().message();
  } catch (const std::exception& e) {
    *error = "admin endpoint " + host + ":" + port + ": " + e.what();
  }
  return std::nullopt;
}

// Accessors that tolerate missing or mistyped fields (a newer or older pgtandem).
const json::value* field(const json::value& v, std::string_view key) {
  const auto* o = v.if_object();
  if (o == nullptr) return nullptr;
  return o->if_contains(key);
}
std::string str(const json::value& v, std::string_view key, std::string fallback = "") {
  const auto* f = field(v, key);
  if (f == nullptr) return fallback;
  if (const auto* s = f->if_string()) return std::string(s->data(), s->size());
  return fallback;
}
double num(const json::value& v, std::string_view key) {
  const auto* f = field(v, key);
  if (f == nullptr) return 0;
  if (f->is_int64()) return static_cast<double>(f->as_int64());
  if (f->is_uint64()) return static_cast<double>(f->as_uint64());
  if (f->is_double()) return f->as_double();
  return 0;
}
bool flag(const json::value& v, std::string_view key) {
  const auto* f = field(v, key);
  return f != nullptr && f->is_bool() && f->as_bool();
}
const json::array& arr(const json::value& v, std::string_view key) {
  static const json::array kEmpty;
  const auto* f = field(v, key);
  return f != nullptr && f->is_array() ? f->as_array() : kEmpty;
}

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}
std::string count(double v) { return fmt("%.0f", v); }

std::string bytes(double v) {
  if (v >= 1024.0 * 1024 * 1024) return fmt("%.1f GiB", v / (1024.0 * 1024 * 1024));
  if (v >= 1024.0 * 1024) return fmt("%.1f MiB", v / (1024.0 * 1024));
  if (v >= 1024.0) return fmt("%.1f KiB", v / 1024.0);
  return count(v) + " B";
}

std::string duration(double seconds) {
  const long s = static_cast<long>(seconds);
  char buf[64];
  if (s >= 86400) {
    std::snprintf(buf, sizeof buf, "%ldd%02ldh%02ldm", s / 86400, s % 86400 / 3600, s % 3600 / 60);
  } else if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%ldh%02ldm%02lds", s / 3600, s % 3600 / 60, s % 60);
  } else if (s >= 60) {
    std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%lds", s);
  }
  return buf;
}

std::string pad(std::string s, size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}

std::string one_line(std::string s, size_t max) {
  for (char& c : s) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  if (s.size() > max) s = s.substr(0, max - 3) + "...";
  return s;
}

std::optional<json::value> parse_json(std::string_view text, std::string* error) {
  boost::system::error_code ec;
  json::value v = json::parse(json::string_view(text.data(), text.size()), ec);
  if (ec || !v.is_object()) {
    *error = "unexpected answer (not a JSON object): " + one_line(std::string(text), 200);
    return std::nullopt;
  }
  return v;
}

}  // namespace

std::string render_status(std::string_view text, std::string* error) {
  auto parsed = parse_json(text, error);
  if (!parsed) return {};
  const json::value& v = *parsed;
  std::string out;
  out += "pgtandem " + str(v, "version", "?") + " (pid " + count(num(v, "pid")) + "), up " +
         duration(num(v, "uptime_seconds")) + "\n";
  out += "state:    " + std::string(flag(v, "draining") ? "DRAINING (shutting down)" : "serving") +
         ", " + count(num(v, "clients")) + " client connection(s)\n";
  out += "primary:  " + str(v, "primary", "?") + "\n";
  const json::value* breakers = field(v, "breakers");
  out += "targets:\n";
  for (const auto& t : arr(v, "targets")) {
    const std::string name = str(t, "name");
    std::string breaker = breakers != nullptr ? str(*breakers, name, "-") : "-";
    out += "  " + pad(name, 5) + pad(str(t, "address"), 24) + pad(str(t, "health", "?"), 8) +
           "breaker " + pad(breaker, 10) + (flag(t, "primary") ? "primary" : "") + "\n";
  }
  const json::value* mirror = field(v, "mirror");
  if (mirror != nullptr) {
    if (flag(*mirror, "enabled")) {
      out += "mirror:   on -> " + str(*mirror, "target") + ", " + count(num(*mirror, "applied")) +
             " write(s) applied, avg lag " + fmt("%.3f", num(*mirror, "lag_seconds_avg")) +
             " s, queue " + bytes(num(*mirror, "queue_bytes")) + ", journal " +
             bytes(num(*mirror, "journal_bytes")) + " of " +
             bytes(num(*mirror, "journal_limit_bytes")) + " (" + str(*mirror, "state", "?") + ")\n";
    } else {
      out += "mirror:   off";
      if (num(*mirror, "journal_bytes") > 0) out += " (journal " + bytes(num(*mirror, "journal_bytes")) + ")";
      out += "\n";
    }
    if (const json::value* w = field(*mirror, "crash_window"); w != nullptr && w->is_object()) {
      out += "          CRASH WINDOW " + str(*w, "from") + " .. " + str(*w, "to") + " on " +
             str(*w, "target") + ": verify/repair, then POST /mirror/crash-window/clear\n";
    }
    for (const auto& m : arr(*mirror, "needs_repair")) {
      if (str(m, "kind") == "crash_window") continue;
      out += "          NEEDS REPAIR (" + str(m, "kind") + " since " + str(m, "from") + "): " +
             str(m, "detail") + "\n";
    }
  }
  const auto& rules = arr(v, "rules");
  if (!rules.empty()) {
    out += "rules (reads by target):\n";
    for (const auto& r : rules) {
      std::string line = "  " + pad(str(r, "name"), 20);
      if (const auto* reads = field(r, "reads"); reads != nullptr && reads->is_object()) {
        for (const auto& [target, n] : reads->as_object()) {
          line += " " + std::string(target) + " " + count(n.is_number() ? n.to_number<double>() : 0);
        }
      }
      out += line + "\n";
    }
  }
  if (const json::value* shadow = field(v, "shadow")) {
    const auto& table = arr(*shadow, "table");
    out += "shadow:   " + count(num(*shadow, "mismatches_total")) + " mismatch(es)";
    out += table.empty() ? "\n" : ", top:\n";
    size_t shown = 0;
    for (const auto& m : table) {
      if (++shown > 5) break;
      std::string kinds;
      if (const auto* k = field(m, "kinds"); k != nullptr && k->is_object()) {
        for (const auto& [kind, n] : k->as_object()) {
          if (!kinds.empty()) kinds += ",";
          kinds += std::string(kind) + "=" + count(n.is_number() ? n.to_number<double>() : 0);
        }
      }
      out += "  " + pad(count(num(m, "count")), 7) + pad(kinds, 16) + " " +
             one_line(str(m, "query"), 80) + "  [" + str(m, "fingerprint") + "]\n";
    }
  }
  if (const json::value* k = field(v, "cutover"); k != nullptr && k->is_object()) {
    out += "cutover:  epoch " + count(num(*k, "epoch")) + ", primary " + str(*k, "primary") +
           ", phase " + str(*k, "phase") + ", this replica " + str(*k, "state") +
           (flag(*k, "paused") ? " (paused, " + count(num(*k, "waiting")) + " waiting)" : "") + "\n";
    if (const json::value* l = field(*k, "last"); l != nullptr && l->is_object()) {
      out += "  last:   " + str(*l, "result") + " " + str(*l, "from") + " -> " + str(*l, "to") +
             ", pause " + count(num(*l, "pause_ms")) + " ms";
      const std::string reason = str(*l, "reason");
      out += reason.empty() ? "\n" : ": " + one_line(reason, 100) + "\n";
    }
  }
  if (const json::value* c = field(v, "config")) {
    out += "config:   " + str(*c, "path") + " hash " + str(*c, "hash") + ", generation " +
           count(num(*c, "generation")) + ", loaded " + str(*c, "loaded_at") + "\n";
    if (const json::value* r = field(*c, "last_reload")) {
      out += "reload:   last " + str(*r, "outcome", "?") + " (" + str(*r, "source") + ", " +
             str(*r, "time") + ")\n";
      for (const auto& e : arr(*r, "errors")) {
        if (e.is_string()) out += "  error: " + std::string(e.as_string()) + "\n";
      }
    }
  }
  return out;
}

std::string render_reload(std::string_view text, bool* rejected, std::string* error) {
  *rejected = true;
  auto parsed = parse_json(text, error);
  if (!parsed) return {};
  const json::value& v = *parsed;
  const std::string outcome = str(v, "outcome", "?");
  *rejected = outcome != "applied" && outcome != "unchanged";
  std::string out = "reload: " + outcome;
  if (!*rejected) {
    out += " (hash " + str(v, "hash") + ", generation " + count(num(v, "generation")) + ")";
  } else if (outcome == "rejected") {
    out += ": the running config is unchanged";
  }
  out += "\n";
  for (const auto& c : arr(v, "changes")) {
    if (c.is_string()) out += "  change: " + std::string(c.as_string()) + "\n";
  }
  for (const auto& e : arr(v, "errors")) {
    if (e.is_string()) out += "  error: " + std::string(e.as_string()) + "\n";
  }
  return out;
}

int status_main(int argc, char** argv) {
  Options o;
  if (!parse_options(argc, argv, false, &o)) {
    std::fputs(kStatusUsage, stderr);
    return 2;
  }
  std::string host, port, error;
  if (int rc = resolve(o, false, &host, &port); rc != 0) {
    if (rc == 2) std::fputs(kStatusUsage, stderr);
    return rc;
  }
  auto res = http_call(host, port, http::verb::get, "/status", "", &error);
  if (!res) {
    std::fprintf(stderr, "pgtandem status: %s\n", error.c_str());
    return 1;
  }
  if (res->status != 200) {
    std::fprintf(stderr, "pgtandem status: HTTP %d: %s", res->status, res->body.c_str());
    return 1;
  }
  std::string text = render_status(res->body, &error);
  if (text.empty()) {
    std::fprintf(stderr, "pgtandem status: %s\n", error.c_str());
    return 1;
  }
  std::fputs(text.c_str(), stdout);
  return 0;
}

int reload_main(int argc, char** argv) {
  Options o;
  if (!parse_options(argc, argv, true, &o)) {
    std::fputs(kReloadUsage, stderr);
    return 2;
  }
  std::string host, port, error;
  if (int rc = resolve(o, true, &host, &port); rc != 0) {
    if (rc == 2) std::fputs(kReloadUsage, stderr);
    return rc;
  }
  auto res = http_call(host, port, http::verb::post, "/reload", o.token, &error);
  if (!res) {
    std::fprintf(stderr, "pgtandem reload: %s\n", error.c_str());
    return 1;
  }
  if (res->status != 200 && res->status != 422) {
    std::fprintf(stderr, "pgtandem reload: HTTP %d: %s", res->status, res->body.c_str());
    return 1;
  }
  bool rejected = true;
  std::string text = render_reload(res->body, &rejected, &error);
  if (text.empty()) {
    std::fprintf(stderr, "pgtandem reload: %s\n", error.c_str());
    return 1;
  }
  std::fputs(text.c_str(), rejected ? stderr : stdout);
  return rejected ? 1 : 0;
}

std::string render_cutover(std::string_view text, bool* failed, std::string* error) {
  *failed = true;
  auto parsed = parse_json(text, error);
  if (!parsed) return {};
  const json::value& v = *parsed;
  const std::string result = str(v, "result", "?");
  *failed = result != "ok" && result != "unchanged";
  std::string out;
  for (const auto& g : arr(v, "gates")) {
    out += "  " + pad(str(g, "result", "?"), 5) + " " + pad(str(g, "name"), 18) + " " +
           str(g, "figure") + "\n";
  }
  out += "cutover: " + result + " (" + str(v, "from") + " -> " + str(v, "to") + ", epoch " +
         count(num(v, "epoch")) + (flag(v, "forced") ? ", FORCED" : "") + ")";
  const std::string reason = str(v, "reason");
  if (!reason.empty()) out += ": " + reason;
  out += "\n";
  if (result == "ok" || result == "aborted") {
    out += "  pause " + count(num(v, "pause_ms")) + " ms, " + count(num(v, "in_flight_at_pause")) +
           " transaction(s) in flight at the pause, " + count(num(v, "sequences_synced")) +
           " sequence(s) synced\n";
  }
  for (const auto& r : arr(v, "replicas")) {
    if (r.is_string()) out += "  replica " + std::string(r.as_string()) + "\n";
  }
  return out;
}

int cutover_main(int argc, char** argv) {
  static const char* kUsage =
      "Usage: pgtandem cutover --to new|old [--admin HOST:PORT] [--config FILE] [--token TOKEN]\n"
      "                        [--force] [--timeout-ms N]\n"
      "Moves the primary of every pgtandem replica at once (POST /cutover): gates, pause at\n"
      "transaction boundaries, mirror drain, sequence sync, switch, resume. --force overrides\n"
      "failing gates (audited). --to old is the rollback. See docs/cutover.md.\n";
  Options o;
  std::string to, timeout;
  bool force = false;
  std::vector<char*> rest{argv[0]};
  for (int i = 1; i < argc; ++i) {
    const std::string_view opt = argv[i];
    if (opt == "--force") {
      force = true;
    } else if ((opt == "--to" || opt == "--timeout-ms") && i + 1 < argc) {
      (opt == "--to" ? to : timeout) = argv[++i];
    } else {
      rest.push_back(argv[i]);
    }
  }
  if (to.empty() || !parse_options(static_cast<int>(rest.size()), rest.data(), true, &o) ||
      (!timeout.empty() && timeout.find_first_not_of("0123456789") != std::string::npos)) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  std::string host, port, error;
  if (int rc = resolve(o, true, &host, &port); rc != 0) {
    if (rc == 2) std::fputs(kUsage, stderr);
    return rc;
  }
  std::string target = "/cutover?to=" + to;
  if (force) target += "&force=1";
  if (!timeout.empty()) target += "&timeout_ms=" + timeout;
  auto res = http_call(host, port, http::verb::post, target, o.token, &error);
  if (!res) {
    std::fprintf(stderr, "pgtandem cutover: %s\n", error.c_str());
    return 1;
  }
  if (res->status != 200 && res->status != 409 && res->status != 503) {
    std::fprintf(stderr, "pgtandem cutover: HTTP %d: %s", res->status, res->body.c_str());
    return 1;
  }
  bool failed = true;
  std::string text = render_cutover(res->body, &failed, &error);
  if (text.empty()) {
    std::fprintf(stderr, "pgtandem cutover: HTTP %d: %s", res->status, res->body.c_str());
    return 1;
  }
  std::fputs(text.c_str(), failed ? stderr : stdout);
  return failed ? 1 : 0;
}

}  // namespace pgtandem::proxy

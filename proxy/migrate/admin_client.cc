// The migration commands' side of pgtandem's admin API (issue 13): one blocking HTTP/1.1 request
// per call, the mirror watermark (the barrier), and the needs-repair marks a clean verify clears
// (docs/migration.md, "Needs-repair marks cleared by a clean verify").
#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "proxy/migrate/common.h"

namespace pgtandem::proxy::migrate {

bool admin_request(const std::string& host_port, const std::string& method, const std::string& path,
                   const std::vector<std::string>& headers, const std::string& body, int timeout_ms,
                   int* status, std::string* response_body, std::string* error) {
  const size_t colon = host_port.rfind(':');
  if (colon == std::string::npos) {
    *error = "--admin " + host_port + ": expected HOST:PORT";
    return false;
  }
  std::string host = host_port.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  const std::string port = host_port.substr(colon + 1);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || res == nullptr) {
    *error = "pgtandem admin " + host_port + ": cannot resolve";
    return false;
  }
  const int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  if (fd >= 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
  const bool connected = fd >= 0 && ::connect(fd, res->ai_addr, res->ai_addrlen) == 0;
  freeaddrinfo(res);
  if (!connected) {
    *error = "pgtandem admin " + host_port + ": cannot connect (" + std::strerror(errno) +
             "); is pgtandem running with its admin listener there? (--admin HOST:PORT)";
    if (fd >= 0) ::close(fd);
    return false;
  }
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: " + host_port + "\r\nConnection: close\r\n";
  for (const auto& h : headers) req += h + "\r\n";
  if (!body.empty() || method == "POST")
    req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n" + body;
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    *error = "pgtandem admin " + host_port + ": cannot send";
    ::close(fd);
    return false;
  }
  std::string resp;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    resp.append(buf, n);
    if (resp.size() > 65536) break;
  }
  ::close(fd);
  const size_t head_end = resp.find("\r\n\r\n");
  if (resp.compare(0, 9, "HTTP/1.1 ") != 0 || resp.size() < 12 || head_end == std::string::npos) {
    *error = "pgtandem admin " + host_port + ": " + method + " " + path + ": no HTTP answer";
    return false;
  }
  *status = std::atoi(resp.substr(9, 3).c_str());
  *response_body = resp.substr(head_end + 4);
  return true;
}

bool fetch_watermark(const std::string& host_port, Watermark* out, std::string* error,
                     const std::string& drain_query) {
  int status = 0;
  std::string body;
  const std::string path = drain_query.empty() ? "/mirror/watermark" : "/mirror/watermark?" + drain_query;
  if (!admin_request(host_port, "GET", path, {}, "", 5000, &status, &body, error)) return false;
  if (status != 200) {
    *error = "pgtandem admin " + host_port + ": GET /mirror/watermark answered " + std::to_string(status);
    return false;
  }
  auto j = pm::Json::parse(body);
  const pm::Json* la = j ? j->get("last_assigned") : nullptr;
  const pm::Json* dt = j ? j->get("done_through") : nullptr;
  const pm::Json* pe = j ? j->get("pending") : nullptr;
  if (!la || !dt) {
    *error = "pgtandem admin " + host_port + ": malformed watermark";
    return false;
  }
  out->last_assigned = static_cast<uint64_t>(la->as_int());
  out->done_through = static_cast<uint64_t>(dt->as_int());
  out->pending = pe ? static_cast<uint64_t>(pe->as_int()) : 0;
  const pm::Json* dr = j->get("drain");
  const pm::Json* dd = j->get("drained");
  out->drain_known = dr != nullptr && dd != nullptr;
  out->drain = dr ? static_cast<uint64_t>(dr->as_int()) : 0;
  out->drained = dd != nullptr && dd->as_bool();
  return true;
}

std::vector<pm::AdminMarks> read_marks(const Context& ctx) {
  std::vector<pm::AdminMarks> out;
  for (const auto& a : ctx.report_admins) {
    pm::AdminMarks m;
    m.admin = a;
    int status = 0;
    std::string body, e;
    if (admin_request(a, "GET", "/status", {}, "", 5000, &status, &body, &e) && status == 200)
      pm::parse_status_marks(body, &m, &e);
    m.admin = a;
    out.push_back(std::move(m));
  }
  return out;
}

void clear_marks_after_clean_verify(const Context& ctx, const std::vector<pm::AdminMarks>& at_start,
                                    pm::Json* details) {
  pm::Json cleared_json = pm::Json::array();
  const auto now = read_marks(ctx);
  for (const auto& n : now) {
    pm::AdminMarks start;
    start.admin = n.admin;
    for (const auto& s : at_start)
      if (s.admin == n.admin) start = s;
    if (!n.read) {
      print_check('!', "pgtandem " + n.admin + ": /status not readable: its needs-repair marks (if any) were not cleared");
      continue;
    }
    const pm::ClearPlan plan = pm::plan_clear(start, n);
    for (const auto& k : plan.kept) print_check('!', "pgtandem " + n.admin + ": mark kept: " + k);
    if (plan.path.empty()) continue;
    if (ctx.admin_token.empty()) {
      print_check('!', "pgtandem " + n.admin + ": " + std::to_string(plan.expected) +
                           " needs-repair mark(s) not cleared: no [admin] token (or [migrate] use_admin_token = false); POST " +
                           plan.path + " by hand");
      continue;
    }
    int status = 0;
    std::string body, e;
    pm::Json ids = pm::Json::array();
    for (const auto& id : plan.ids) ids.push(pm::Json::string(id));
    const std::string request = pm::Json::object().set("marks", std::move(ids)).dump();
    if (!admin_request(n.admin, "POST", plan.path, {"Authorization: Bearer " + ctx.admin_token}, request, 5000,
                       &status, &body, &e) ||
        status != 200) {
      print_check('-', "pgtandem " + n.admin + ": POST " + plan.path + " failed: " +
                           (e.empty() ? "status " + std::to_string(status) + " " + body : e));
      continue;
    }
    const auto answer = pm::Json::parse(body);
    const pm::Json* c = answer ? answer->get("cleared") : nullptr;
    const int64_t cleared = c ? c->as_int() : -1;
    print_check('+', "pgtandem " + n.admin + ": the clean verify cleared " + std::to_string(cleared) +
                         " needs-repair mark(s) (POST " + plan.path + ")");
    // Only the listed marks go: one that appeared after the last read of /status stays.
    if (cleared < static_cast<int64_t>(plan.expected))
      print_check('!', "pgtandem " + n.admin + ": " + std::to_string(static_cast<int64_t>(plan.expected) - cleared) +
                           " of the marks went before the clear (cleared by someone else meanwhile)");
    cleared_json.push(pm::Json::object()
                          .set("admin", pm::Json::string(n.admin))
                          .set("path", pm::Json::string(plan.path))
                          .set("cleared", pm::Json::integer(cleared)));
  }
  details->set("marks_cleared", std::move(cleared_json));
}

}  // namespace pgtandem::proxy::migrate

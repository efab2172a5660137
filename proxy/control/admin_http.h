// Admin HTTP endpoint, on its own thread and io_context so that a slow scraper never touches a
// worker: GET /metrics (Prometheus text format), /healthz, /readyz, /status (JSON), and the
// mutating POST /reload and POST /breaker/reset, which need `Authorization: Bearer <token>`.
// No Asio or Beast in this header.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace pgtandem::proxy {

struct AdminReply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

// Called on the admin thread, one request at a time: they must be safe to call concurrently with
// the workers. An exception thrown by a handler becomes a 500 response.
struct AdminHandlers {
  std::function<std::string()> metrics;  // Prometheus text exposition body; unset: /metrics is 404
  std::function<bool()> healthy;         // /healthz: 200 "ok\n" or 503; unset: always healthy
  // /readyz: true = 200 "ready"; false = 503 with *why; unset: /readyz is 404.
  std::function<bool(std::string* why)> ready;
  std::function<std::string()> status;  // /status: a JSON document; unset: 404
  // GET /mirror/watermark: {"last_assigned":N,"done_through":M,"pending":P} (the migration
  // commands wait on it, docs/migration.md); `query` "drain=start" or "drain=T" also starts or
  // checks an answer drain (policy/mirror/answer_drain.h). Unset: 404.
  std::function<std::string(std::string_view query)> mirror_watermark;
  // POST /reload and POST /breaker/reset (query: the part after '?', "" if none), called only
  // once the bearer token matched; unset: 404.
  std::function<AdminReply()> reload;
  std::function<AdminReply(std::string_view query)> breaker_reset;
  // POST /cutover?to=new[&force=1][&timeout_ms=N] (issue 14): runs the coordinated cutover on
  // this thread (blocking: the other admin endpoints wait for it); unset: 404.
  std::function<AdminReply(std::string_view query)> cutover;
  // POST /migrate/progress (issue 13): a migration command's state document (JSON body; needs the
  // bearer token like every POST); unset: 404.
  std::function<AdminReply(std::string_view body)> migrate_progress;
  // POST /mirror/crash-window/clear (the crash-window marks) and POST /mirror/needs-repair/clear
  // (every needs-repair mark), after verify/repair (issue 15); `path` says which. `body`: "" or
  // "{}" clears every mark of that kind; {"marks":["kind|target|from|to",...]} (ids as /status
  // shows them, policy/migrate/marks.h) clears only those. Unset: 404.
  std::function<AdminReply(std::string_view path, std::string_view body)> mirror_clear;
  // POST /mirror/fence?action=pause|arm|renew|release|status&... (issue 13, a snapshot
  // backfill's fence: proxy/mirror/mirror_fence.h); blocking while a pause waits. Unset: 404.
  std::function<AdminReply(std::string_view query)> mirror_fence;
  // The bearer token the POST endpoints require; "" = none configured: they answer 403.
  std::string token;
};

// Calls fn(key, value) for each `key=value` of a query string ("a=1&b=2"; a key without '=' has
// an empty value; no percent-decoding: the endpoints' values are names and numbers).
void for_each_query_param(std::string_view query,
                          const std::function<void(std::string_view key, std::string_view value)>& fn);

// Compares in time that depends only on the length of `given` (never stops at the first
// difference), so a client cannot find the token byte by byte by timing.
bool constant_time_equal(std::string_view given, std::string_view expected);

enum class BearerCheck { kOk, kNotConfigured, kMissing, kWrong };
// `authorization`: the request's Authorization header ("" if absent).
BearerCheck check_bearer(std::string_view authorization, std::string_view token);

class AdminServer {
 public:
  static constexpr size_t kMaxHeaderBytes = 8 * 1024;  // larger request headers get 431 and close
  static constexpr size_t kMaxBodyBytes = 64 * 1024;   // larger request bodies get 413 and close
  static constexpr int kIdleTimeoutSeconds = 30;       // a connection idle this long is closed
  static constexpr size_t kMaxConnections = 64;        // beyond this, new connections are closed

  // host: numeric IPv4/IPv6 (no brackets), "localhost", or "*" / "" for all interfaces.
  // port: 0 picks an ephemeral port (tests); see port().
  AdminServer(std::string host, uint16_t port, AdminHandlers handlers);
  ~AdminServer();  // stops and joins

  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Binds (SO_REUSEADDR), listens, and starts the admin thread. False with *error on failure.
  // Call once.
  bool start(std::string* error);
  uint16_t port() const;  // the bound port once start() succeeded, else 0
  // Closes the listener and every connection, then joins the thread. Idempotent. Not from a
  // handler (it would join its own thread).
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgtandem::proxy

#include "proxy/catalog_loader.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "protocol/message_types.h"
#include "protocol/messages.h"
#include "proxy/backend_login.h"
#include "proxy/upstream.h"

namespace pgtandem::proxy {

namespace {
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr std::string_view kQuery =
    "SELECT n.nspname, p.proname, p.provolatile FROM pg_catalog.pg_proc p "
    "JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace";
}  // namespace

asio::awaitable<std::shared_ptr<const routing::VolatilityCatalog>> load_volatility_catalog(
    ServerState& state, size_t target, std::string* error) {
  const auto& cfg = *state.config;
  const TargetEndpoint& endpoint = state.targets[target];
  const config::Target* t = cfg.find_target(endpoint.name);
  const auto timeout = std::chrono::milliseconds(cfg.limits.connect_timeout_ms);
  Socket socket(co_await asio::this_coro::executor);
  if (auto ec = co_await connect_target(socket, endpoint, timeout)) {
    *error = "connect to " + endpoint.description + ": " + ec.message();
    co_return nullptr;
  }
  LoginParams p;
  p.user = cfg.classifier.catalog_user;
  p.database = cfg.classifier.catalog_database;
  p.application_name = "pgtandem-catalog";
  p.pgpass = state.pgpass.get();
  p.pgpass_host = pgpass_host(*t);
  p.pgpass_port = t->port;
  p.timeout = timeout;
  LoginResult login = co_await login_backend(socket, p);
  if (!login.ok) {
    *error = "login as " + p.user + ": " + login.sqlstate + " " + login.message;
    co_return nullptr;
  }
  std::string query;
  protocol::encode(query, protocol::Query{kQuery});
  if (auto [ec, n] = co_await asio::async_write(socket, asio::buffer(query), kNoThrow); ec) {
    *error = "send: " + ec.message();
    co_return nullptr;
  }
  auto catalog = std::make_shared<routing::VolatilityCatalog>();
  protocol::FrameScanner scanner(protocol::Direction::kBackend, state.limits, 64 * 1024);
  struct Visitor {
    routing::VolatilityCatalog* catalog;
    std::string* error;
    bool done = false;
    bool on_message(const protocol::Header& h, std::string_view body) {
      if (h.type == protocol::backend::kDataRow) {
        protocol::DataRow row;
        if (!protocol::decode(body, row) || row.columns.size() != 3) return true;
        std::string_view cols[3];
        size_t i = 0;
        for (const auto& v : row.columns) cols[i++] = v.data;
        if (!cols[2].empty()) {
          if (auto vol = routing::VolatilityCatalog::from_provolatile(cols[2][0])) {
            catalog->add(cols[0], cols[1], *vol);
          }
        }
      } else if (h.type == protocol::backend::kErrorResponse) {
        protocol::ErrorResponse e;
        if (protocol::decode(body, e)) *error = std::string(e.sqlstate()) + " " + std::string(e.message());
      } else if (h.type == protocol::backend::kReadyForQuery) {
        done = true;
        return false;
      }
      return true;
    }
    bool on_stream_start(const protocol::Header&) { return true; }
  } v{catalog.get(), error};
  std::string buf = login.leftover;
  char tmp[16384];
  while (!v.done) {
    auto r = scanner.scan(buf, v);
    if (r.status == protocol::Status::kInvalid) {
      *error = "malformed answer";
      co_return nullptr;
    }
    buf.erase(0, r.forward);
    if (v.done) break;
    auto [ec, n] = co_await socket.async_read_some(asio::buffer(tmp), kNoThrow);
    if (ec) {
      *error = "read: " + ec.message();
      co_return nullptr;
    }
    buf.append(tmp, n);
  }
  std::string terminate;
  protocol::end_message(terminate, protocol::begin_message(terminate, protocol::frontend::kTerminate));
  co_await asio::async_write(socket, asio::buffer(terminate), kNoThrow);
  if (!error->empty() || catalog->empty()) {
    if (error->empty()) *error = "pg_proc returned no functions";
    co_return nullptr;
  }
  co_return catalog;
}

}  // namespace pgtandem::proxy

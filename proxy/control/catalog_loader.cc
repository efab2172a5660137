#include "proxy/control/catalog_loader.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <string_view>
#include <vector>

#include "protocol/message_types.h"
#include "protocol/messages.h"
#include "proxy/auth/backend_login.h"
#include "proxy/telemetry/log.h"
#include "proxy/net/upstream.h"

namespace pgtandem::proxy {

namespace {
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

// Bounds on what the primary's catalog may make us hold: columns with a default or identity, and
// the text of one default (a longer one is not classified, just flagged).
constexpr size_t kMaxDefaultColumns = 100000;
constexpr size_t kMaxDefaultBytes = 2000;

// Two statements in one Query: functions, then the columns of ordinary user tables (plain,
// partitioned, foreign) that have a default or are identity columns, with the default's text for
// the classifier to judge (now() is STABLE in pg_proc yet differs between servers). Generated
// columns are computed from the row, the same everywhere. An error in the second (a server older
// than 12 has no attgenerated) leaves the first's answer usable.
const std::string kQuery =
    "SELECT n.nspname, p.proname, p.provolatile FROM pg_catalog.pg_proc p "
    "JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace;"
    "SELECT n.nspname, c.relname, a.attname, a.attidentity, "
    "CASE WHEN octet_length(pg_catalog.pg_get_expr(d.adbin, d.adrelid)) <= " +
    std::to_string(kMaxDefaultBytes) +
    " THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid) END "
    "FROM pg_catalog.pg_attribute a "
    "JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
    "WHERE c.relkind IN ('r', 'p', 'f') AND a.attnum > 0 AND NOT a.attisdropped "
    "AND a.attgenerated = '' AND (a.attidentity <> '' OR d.oid IS NOT NULL) "
    "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname !~ '^pg_(toast|temp_)' "
    "LIMIT " +
    std::to_string(kMaxDefaultColumns + 1);

struct DefaultColumn {
  std::string schema;
  std::string table;
  std::string column;
  bool identity = false;
  bool has_text = false;  // NULL when too long to classify
  std::string text;
};
}  // namespace

asio::awaitable<std::shared_ptr<const policy::VolatilityCatalog>> load_volatility_catalog(
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
  p.pgpass = state.mirror.pgpass.get();
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
  auto catalog = std::make_shared<policy::VolatilityCatalog>();
  protocol::FrameScanner scanner(protocol::Direction::kBackend, state.limits, 64 * 1024);
  struct Visitor {
    policy::VolatilityCatalog* catalog;
    std::string* error;
    std::vector<DefaultColumn> defaults;
    std::string defaults_error;
    int completed = 0;  // statements answered: 0 while functions arrive, 1 while columns do
    bool done = false;
    bool on_message(const protocol::Header& h, std::string_view body) {
      if (h.type == protocol::backend::kDataRow) {
        protocol::DataRow row;
        if (!protocol::decode(body, row)) return true;
        std::string_view cols[5];
        bool null[5] = {};
        size_t i = 0;
        for (const auto& v : row.columns) {
          if (i == 5) break;
          null[i] = v.is_null;
          cols[i++] = v.data;
        }
        if (completed == 0 && i == 3) {
          if (!cols[2].empty()) {
            if (auto vol = policy::VolatilityCatalog::from_provolatile(cols[2][0])) {
              catalog->add(cols[0], cols[1], *vol);
            }
          }
        } else if (completed == 1 && i == 5 && defaults.size() <= kMaxDefaultColumns) {
          defaults.push_back({std::string(cols[0]), std::string(cols[1]), std::string(cols[2]),
                              !cols[3].empty(), !null[4], std::string(cols[4])});
        }
      } else if (h.type == protocol::backend::kCommandComplete) {
        ++completed;
      } else if (h.type == protocol::backend::kErrorResponse) {
        protocol::ErrorResponse e;
        std::string message = "error";
        if (protocol::decode(body, e)) {
          message = std::string(e.sqlstate()) + " " + std::string(e.message());
        }
        (completed == 0 ? *error : defaults_error) = std::move(message);
      } else if (h.type == protocol::backend::kReadyForQuery) {
        done = true;
        return false;
      }
      return true;
    }
    bool on_stream_start(const protocol::Header&) { return true; }
  } v{catalog.get(), error, {}, {}};
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
  if (!v.defaults_error.empty()) {
    log::warn("column defaults not learned", {{"error", v.defaults_error}});
    co_return catalog;
  }
  if (v.defaults.size() > kMaxDefaultColumns) {
    v.defaults.resize(kMaxDefaultColumns);
    log::warn("column defaults truncated: INSERTs into the other tables rely on their column lists",
              {{"columns", std::to_string(kMaxDefaultColumns)}});
  }
  // Judged with everything the sessions' classifier knows, the functions just loaded included.
  policy::ClassifierOptions opts;
  opts.functions = &state.mirror.functions;
  opts.catalog = catalog.get();
  opts.unknown_function_is_write = cfg.classifier.unknown_function_is_write;
  policy::ColumnDefaults& flagged = catalog->mutable_column_defaults();
  for (const DefaultColumn& d : v.defaults) {
    if (d.identity || !d.has_text || policy::default_is_nondeterministic(d.text, opts)) {
      flagged.add(d.schema, d.table, d.column);
    }
  }
  log::info("column defaults learned", {{"columns", std::to_string(v.defaults.size())},
                                        {"nondeterministic", std::to_string(flagged.size())}});
  co_return catalog;
}

}  // namespace pgtandem::proxy

#include "proxy/auth/backend_login.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <variant>

#include "protocol/errors.h"
#include "protocol/framing.h"
#include "protocol/messages.h"
#include "protocol/startup.h"

namespace pgtandem::proxy {
namespace {

using namespace asio::experimental::awaitable_operators;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

// Login messages are small (the largest is an ErrorResponse); a bigger one is not a server.
constexpr uint32_t kMaxLoginMessage = 1 << 20;
constexpr size_t kReadChunk = 4096;

LoginResult failure(LoginError error, std::string_view sqlstate, std::string message) {
  LoginResult r;
  r.error = error;
  r.sqlstate = sqlstate;
  r.message = std::move(message);
  return r;
}

bool valid_param(std::string_view s) { return s.find('\0') == std::string_view::npos; }

void set_parameter(std::vector<std::pair<std::string, std::string>>& params, std::string_view name,
                   std::string_view value) {
  for (auto& p : params) {
    if (p.first == name) {
      p.second = value;
      return;
    }
  }
  params.emplace_back(name, value);
}

// The StartupMessage, or an error message if the parameters cannot be sent.
std::string build_startup(const LoginParams& params, std::string* error) {
  std::vector<protocol::StartupParam> list;
  list.emplace_back("user", params.user);
  if (!params.database.empty()) list.emplace_back("database", params.database);
  bool own_app_name = false;
  for (const auto& [name, value] : params.extra) {
    if (name == "user" || name == "database") {
      *error = "startup parameter \"" + name + "\" belongs in LoginParams, not extra";
      return {};
    }
    if (name.empty() || !valid_param(name) || !valid_param(value)) {
      *error = "startup parameter \"" + name + "\" is empty or contains a NUL byte";
      return {};
    }
    own_app_name |= name == "application_name";
  }
  if (!own_app_name && !params.application_name.empty()) {
    list.emplace_back("application_name", params.application_name);
  }
  for (const auto& [name, value] : params.extra) list.emplace_back(name, value);
  if (params.user.empty() || !valid_param(params.user) || !valid_param(params.database) ||
      !valid_param(params.application_name)) {
    *error = "user is empty, or user, database or application_name contains a NUL byte";
    return {};
  }
  std::string out;
  protocol::encode_startup_message(out, list);
  if (out.size() > protocol::kMaxStartupPacketLength) {
    *error = "startup packet of " + std::to_string(out.size()) + " bytes exceeds the server's " +
             std::to_string(protocol::kMaxStartupPacketLength) + "-byte limit";
    return {};
  }
  return out;
}

// The exchange itself, without the deadline.
asio::awaitable<LoginResult> run_login(Socket& socket, const LoginParams& params) {
  std::string error;
  std::string startup = build_startup(params, &error);
  if (startup.empty()) {
    co_return failure(LoginError::kBadParams, protocol::sqlstate::kInvalidParameterValue, error);
  }

  AuthCredentials credentials{params.user, params.password};
  if (!credentials.password && params.pgpass != nullptr) {
    const std::string& db = params.database.empty() ? params.user : params.database;
    if (const config::PgpassEntry* e =
            params.pgpass->lookup(params.pgpass_host, params.pgpass_port, db, params.user)) {
      credentials.password = e->password;
    }
  }
  AuthClient auth(std::move(credentials), params.auth);

  auto [wec, wn] = co_await asio::async_write(socket, asio::buffer(startup), kNoThrow);
  (void)wn;
  if (wec) {
    co_return failure(LoginError::kIo, protocol::sqlstate::kConnectionFailure,
                      "sending the startup packet: " + wec.message());
  }

  LoginResult result;
  const protocol::Limits limits{kMaxLoginMessage};
  std::string buf;
  size_t pos = 0;  // start of the first unprocessed message in buf
  std::string answer;
  std::array<char, kReadChunk> chunk;

  for (;;) {
    // Handle every whole message in the buffer.
    for (;;) {
      protocol::HeaderResult h = protocol::decode_header(std::string_view(buf).substr(pos),
                                                         protocol::Direction::kBackend, limits);
      if (h.status == protocol::Status::kInvalid) {
        co_return failure(LoginError::kProtocol, protocol::sqlstate::kProtocolViolation,
                          "invalid message header from the server during login (type " +
                              std::to_string(static_cast<unsigned char>(h.header.type)) + ")");
      }
      if (h.status == protocol::Status::kNeedMore || buf.size() - pos < h.header.frame_size()) {
        break;
      }
      std::string_view body =
          std::string_view(buf).substr(pos + protocol::kHeaderSize, h.header.body_size());
      pos += h.header.frame_size();

      switch (h.header.type) {
        case protocol::backend::kAuthentication: {
          protocol::Authentication req;
          if (!protocol::decode(body, req)) {
            co_return failure(LoginError::kProtocol, protocol::sqlstate::kProtocolViolation,
                              "malformed Authentication message from the server");
          }
          answer.clear();
          AuthStatus st = auth.on_request(req, answer);
          result.auth_method = auth.method();
          if (st == AuthStatus::kFailed) {
            LoginResult f =
                failure(LoginError::kAuth, protocol::sqlstate::kInvalidAuthorizationSpecification,
                        auth.error());
            f.auth_method = result.auth_method;
            co_return f;
          }
          if (st == AuthStatus::kReply) {
            auto [ec, n] = co_await asio::async_write(socket, asio::buffer(answer), kNoThrow);
            (void)n;
            if (ec) {
              LoginResult f = failure(LoginError::kIo, protocol::sqlstate::kConnectionFailure,
                                      "sending the authentication answer: " + ec.message());
              f.auth_method = result.auth_method;
              co_return f;
            }
          }
          break;
        }
        case protocol::backend::kErrorResponse: {
          protocol::ErrorResponse err;
          LoginResult f;
          f.error = LoginError::kServer;
          f.auth_method = result.auth_method;
          if (protocol::decode(body, err)) {
            f.sqlstate = err.sqlstate();
            f.message = err.message();
          } else {
            f.error = LoginError::kProtocol;
            f.sqlstate = protocol::sqlstate::kProtocolViolation;
            f.message = "malformed ErrorResponse from the server";
          }
          co_return f;
        }
        case protocol::backend::kNoticeResponse:
        case protocol::backend::kNegotiateProtocolVersion:
          // A notice (e.g. a deprecated parameter) or the server's answer to a newer minor
          // version / _pq_ option replayed from a client: the server carries on with 3.0.
          break;
        case protocol::backend::kParameterStatus: {
          protocol::ParameterStatus ps;
          if (!protocol::decode(body, ps)) {
            co_return failure(LoginError::kProtocol, protocol::sqlstate::kProtocolViolation,
                              "malformed ParameterStatus from the server");
          }
          set_parameter(result.parameters, ps.name, ps.value);
          break;
        }
        case protocol::backend::kBackendKeyData: {
          protocol::BackendKeyData kd;
          if (!protocol::decode(body, kd)) {
            co_return failure(LoginError::kProtocol, protocol::sqlstate::kProtocolViolation,
                              "malformed BackendKeyData from the server");
          }
          result.key = BackendKey{true, kd.process_id, kd.secret_key};
          break;
        }
        case protocol::backend::kReadyForQuery: {
          protocol::ReadyForQuery rfq;
          // Why: ReadyForQuery before AuthenticationOk would mean we never authenticated (or
          // never verified the server); it is not a session we may send writes on.
          if (!protocol::decode(body, rfq) || !auth.done()) {
            co_return failure(LoginError::kProtocol, protocol::sqlstate::kProtocolViolation,
                              auth.done() ? "malformed ReadyForQuery from the server"
                                          : "ReadyForQuery before authentication completed");
          }
          result.ok = true;
          result.transaction_status = rfq.status;
          result.leftover = buf.substr(pos);
          co_return result;
        }
        default:
          co_return failure(LoginError::kProtocol, protocol::sqlstate::kProtocolViolation,
                            std::string("unexpected message type '") + h.header.type +
                                "' from the server during login");
      }
    }

    buf.erase(0, pos);
    pos = 0;
    auto [ec, n] = co_await socket.async_read_some(asio::buffer(chunk), kNoThrow);
    if (ec) {
      LoginResult f =
          failure(LoginError::kIo, protocol::sqlstate::kConnectionFailure,
                  ec == asio::error::eof ? "the server closed the connection during login"
                                         : "reading from the server during login: " + ec.message());
      f.auth_method = result.auth_method;
      co_return f;
    }
    buf.append(chunk.data(), n);
  }
}

}  // namespace

const std::string* LoginResult::parameter(std::string_view name) const {
  for (const auto& p : parameters) {
    if (p.first == name) return &p.second;
  }
  return nullptr;
}

asio::awaitable<LoginResult> login_backend(Socket& socket, LoginParams params) {
  asio::steady_timer timer(co_await asio::this_coro::executor, params.timeout);
  auto r = co_await (run_login(socket, params) || timer.async_wait(kNoThrow));
  if (r.index() == 0) co_return std::move(std::get<0>(r));
  co_return failure(
      LoginError::kTimeout, protocol::sqlstate::kConnectionFailure,
      "login did not complete within " + std::to_string(params.timeout.count()) + " ms");
}

}  // namespace pgtandem::proxy

// Logging in to a target with pgtandem's own credentials, for secondary legs (mirror, routed and
// shadow reads; DESIGN.md, "The data path"): StartupMessage, the authentication exchange
// (auth_client.h), then ParameterStatus and BackendKeyData up to the first ReadyForQuery.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/pgpass.h"
#include "proxy/auth/auth_client.h"
#include "proxy/net/stream.h"

namespace pgtandem::proxy {

namespace asio = boost::asio;
using Socket = Stream;  // as in proxy/worker.h

struct LoginParams {
  std::string user;
  std::string database;  // empty: the server's default (the user name)
  // Sent unless `extra` has its own application_name (the client's, replayed).
  std::string application_name = "pgtandem-mirror";
  // More startup parameters, in order: options, search_path, TimeZone, DateStyle, ... replayed
  // from the client's session. "user" and "database" are not allowed here.
  std::vector<std::pair<std::string, std::string>> extra;

  // The password: given directly, or else looked up in `pgpass` (first match for
  // pgpass_host:pgpass_port:database:user, database defaulting to the user name as on the
  // server). With neither, only trust logins succeed.
  std::optional<std::string> password;
  const config::Pgpass* pgpass = nullptr;
  // Matched against the file's hostname field as libpq does: the target's configured host; for
  // a Unix socket its directory, or "localhost" for the default directory /var/run/postgresql.
  std::string pgpass_host;
  uint16_t pgpass_port = 5432;

  // The whole login, from sending the StartupMessage to ReadyForQuery.
  std::chrono::milliseconds timeout{10000};
  AuthClientOptions auth;  // SCRAM randomness and limits (defaults for production)
};

struct BackendKey {
  bool present = false;  // the server sent BackendKeyData
  int32_t process_id = 0;
  int32_t secret_key = 0;
};

// What failed, so callers can tell a refusal by the server from a broken connection.
enum class LoginError : uint8_t {
  kNone,
  kServer,     // ErrorResponse from the server: sqlstate and message are the server's
  kAuth,       // our side of authentication refused to go on (no password, bad server signature)
  kProtocol,   // the server sent something malformed or out of place
  kIo,         // read or write failed, or the server closed the connection
  kTimeout,    // the deadline passed
  kBadParams,  // LoginParams cannot be sent (nothing was written)
};

struct LoginResult {
  bool ok = false;
  std::string sqlstate;  // the server's, or ours: 08006 I/O and timeout, 08P01 protocol,
                         // 28000 client-side authentication, 22023 bad parameters
  std::string message;
  BackendKey key;
  // ParameterStatus values in arrival order; a repeated name keeps its first position and the
  // last value.
  std::vector<std::pair<std::string, std::string>> parameters;

  LoginError error = LoginError::kNone;
  std::string auth_method;      // "trust", "cleartext", "md5", "scram-sha-256" (as far as it got)
  char transaction_status = 0;  // from ReadyForQuery ('I')
  // Bytes read after ReadyForQuery (the server sends none unprompted; kept so none are lost).
  std::string leftover;

  // The value of a ParameterStatus, or nullptr.
  const std::string* parameter(std::string_view name) const;
};

// Logs in on `socket`, which is connected to the target and not yet used. Never throws for I/O,
// protocol or authentication errors: they are values. On failure the connection is in an
// unknown protocol state and should be closed; on timeout the pending operation is cancelled.
// `params` is taken by value (the coroutine may outlive the caller's copy); `params.pgpass` must
// stay valid until the coroutine finishes (hold the config snapshot that owns it).
asio::awaitable<LoginResult> login_backend(Socket& socket, LoginParams params);

}  // namespace pgtandem::proxy

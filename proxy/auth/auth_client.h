// The client side of PostgreSQL authentication, as a pure state machine: Authentication requests
// from the server in, the client's answer ('p' message bytes) out. No sockets, no clock; the
// randomness for SCRAM nonces is injected. Used by secondary legs (mirror, routed and shadow
// reads), which log in with pgtandem's own credentials (DESIGN.md, "The data path").
//
// Methods: trust (AuthenticationOk right away), cleartext password, MD5, and SASL SCRAM-SHA-256
// (RFC 5802, RFC 7677) without channel binding: the gs2 header is "n,," and SCRAM-SHA-256-PLUS
// is never chosen. Kerberos, GSSAPI, SSPI and SCM credentials are refused.
//
// SCRAM verifies the server: the ServerSignature in server-final-message must match, and an
// AuthenticationOk that arrives before it was checked is an error (a server that skips the final
// step has not proven it knows the password's verifier).
//
// SASLprep limit: a pure ASCII password is used as is, which is exactly what SASLprep (and
// PostgreSQL's pg_saslprep) does with it. Non-ASCII passwords are also used as is, without the
// RFC 4013 mapping and NFKC normalization; this matches the server when the password is already
// normalized and has no mapped characters (non-ASCII spaces, soft hyphens, ...), or when SASLprep
// would reject it (PostgreSQL then uses the raw bytes too). Otherwise the login fails with the
// server's 28P01. MD5 and cleartext never apply SASLprep.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "protocol/messages.h"

namespace pgtandem::proxy {

// Fills `out` with random bytes; false on failure. Called only when the server asks for SCRAM.
using RandomSource = std::function<bool(std::span<unsigned char> out)>;

// OpenSSL's RAND_bytes (a CSPRNG).
bool system_random(std::span<unsigned char> out);

struct AuthCredentials {
  std::string user;                     // the startup packet's user
  std::optional<std::string> password;  // nullopt: none known (trust only)
};

struct AuthClientOptions {
  RandomSource random = system_random;
  // Raw nonce bytes before base64; libpq uses 18 (24 nonce characters).
  size_t nonce_bytes = 18;
  // PBKDF2 runs on the caller's thread (a worker's event loop): a server asking for more
  // iterations than this is refused rather than stalling every session of the worker. The
  // PostgreSQL default is 4096; 1M takes ~0.5 s here.
  uint32_t max_scram_iterations = 1'000'000;
};

enum class AuthStatus : uint8_t {
  kReply,   // the answer was appended to `out`: send it, then wait for the next request
  kWait,    // nothing to send; wait for the next request (after a verified SCRAM server-final)
  kOk,      // AuthenticationOk: authenticated
  kFailed,  // error() says why; the exchange cannot continue (close the connection)
};

class AuthClient {
 public:
  explicit AuthClient(AuthCredentials credentials, AuthClientOptions options = {});

  // Handles one Authentication message from the server (decoded by protocol::decode) and appends
  // the whole answer message, if any, to `out`. After kOk or kFailed every call fails.
  AuthStatus on_request(const protocol::Authentication& request, std::string& out);

  // Why the last call returned kFailed.
  const std::string& error() const { return error_; }
  // "trust", "cleartext", "md5", "scram-sha-256", or "" before the first request.
  std::string_view method() const { return method_; }
  bool done() const { return state_ == State::kDone; }

 private:
  enum class State : uint8_t {
    kStart,           // nothing received yet
    kPasswordSent,    // cleartext or MD5 answer sent; only AuthenticationOk may follow
    kScramFirstSent,  // client-first sent; expecting SASLContinue (server-first)
    kScramFinalSent,  // client-final sent; expecting SASLFinal (server-final)
    kScramVerified,   // server signature checked; expecting AuthenticationOk
    kDone,
    kFailed,
  };

  AuthStatus fail(std::string message);
  AuthStatus unsupported(std::string_view method);
  AuthStatus on_sasl(const protocol::Authentication& request, std::string& out);
  AuthStatus on_sasl_continue(std::string_view server_first, std::string& out);
  AuthStatus on_sasl_final(std::string_view server_final);
  bool need_password();

  AuthCredentials credentials_;
  AuthClientOptions options_;
  State state_ = State::kStart;
  std::string method_;
  std::string error_;
  // SCRAM exchange state.
  std::string client_nonce_;
  std::string client_first_bare_;
  std::string expected_server_signature_;  // raw bytes
};

// "md5" + md5hex(md5hex(password + user) + salt): the answer to AuthenticationMD5Password.
std::string md5_password_answer(std::string_view user, std::string_view password,
                                std::string_view salt);

}  // namespace pgtandem::proxy

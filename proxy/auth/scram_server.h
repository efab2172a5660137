// The server side of SCRAM-SHA-256 (RFC 5802, RFC 7677), as PostgreSQL runs it
// (src/backend/libpq/auth-scram.c), for `[auth] mode = "file"`: pgtandem checks a client's
// password against a stored verifier. A pure state machine: the client's SASL messages in, the
// server's answers out; no sockets, no clock; randomness injected.
//
// Channel binding is never offered (pgtandem terminates the connection, so SCRAM-SHA-256-PLUS
// would bind to pgtandem's own TLS, which it does not have): gs2 flag 'n' and 'y' are accepted,
// 'p' is refused, as by a server that does not advertise -PLUS.
//
// Unknown users (`mock`): the exchange runs to the end with a made-up verifier and fails at the
// proof, exactly as for a wrong password, so neither the messages nor the work done tell a
// client whether the user exists (PostgreSQL's mock authentication). The mock salt is derived
// from the user name and a per-process secret, so asking twice gives the same salt, as for a
// real user.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "config/userlist.h"

namespace pgtandem::proxy {

// PostgreSQL's defaults for new verifiers (scram_iterations, SCRAM_DEFAULT_SALT_LEN).
inline constexpr uint32_t kScramDefaultIterations = 4096;
inline constexpr size_t kScramSaltLength = 16;
inline constexpr std::string_view kScramMechanism = "SCRAM-SHA-256";

enum class ScramStep : uint8_t {
  kContinue,   // send the answer (server-first-message), then read the client's next message
  kVerified,   // send the answer (server-final-message), then AuthenticationOk
  kFailed,     // wrong password, unknown user: 28P01 "password authentication failed"
  kMalformed,  // a protocol violation: error() is PostgreSQL's message, sqlstate() its code
};

class ScramServer {
 public:
  struct Options {
    // Fills `out` with random bytes; false on failure.
    std::function<bool(std::span<unsigned char> out)> random;
    size_t nonce_bytes = 18;  // PostgreSQL's SCRAM_RAW_NONCE_LEN
    // Tests only: the server nonce to use instead of a random one.
    std::optional<std::string> fixed_server_nonce;
  };

  // `secret` is the user's verifier; with `mock` (no such user, or a user without a SCRAM
  // verifier) the exchange always ends in kFailed.
  ScramServer(config::ScramSecret secret, bool mock, Options options);

  // The SASLInitialResponse: the mechanism chosen and its data (nullopt: none sent).
  ScramStep on_initial(std::string_view mechanism, std::optional<std::string_view> data,
                       std::string* server_first);
  // A SASLResponse with the client-final-message.
  ScramStep on_final(std::string_view data, std::string* server_final);

  const std::string& error() const { return error_; }
  std::string_view sqlstate() const { return sqlstate_; }

 private:
  enum class State : uint8_t { kInitial, kFinal, kDone };
  ScramStep malformed(std::string message, std::string_view detail = {},
                      std::string_view sqlstate = "08P01");

  config::ScramSecret secret_;
  bool mock_;
  Options options_;
  State state_ = State::kInitial;
  std::string gs2_header_;  // "n,," or "y,,": the client-final's c= must be its base64
  std::string client_first_bare_;
  std::string server_first_;
  std::string nonce_;  // client nonce + server nonce
  std::string error_;
  std::string sqlstate_;
};

// A stable salt for a user without a verifier: HMAC-SHA-256(process_secret, user), truncated to
// kScramSaltLength bytes. Used for mock exchanges and for users with a plain password.
std::string scram_user_salt(std::string_view process_secret, std::string_view user);

// Checks a PasswordMessage answer to AuthenticationMD5Password against an md5 secret
// ("md5" + md5hex(password || user)), in constant time.
bool check_md5_answer(std::string_view md5_secret, std::string_view salt, std::string_view answer);

}  // namespace pgtandem::proxy

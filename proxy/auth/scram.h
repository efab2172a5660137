// SCRAM-SHA-256 and MD5 password math shared by the client side (auth_client.h, pgtandem logging
// in to a target) and the server side (scram_server.h, pgtandem authenticating a client). Pure:
// no sockets, no clock; libcrypto (OpenSSL) does the hashing.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "config/userlist.h"

namespace pgtandem::proxy::scram {

inline constexpr size_t kKeySize = 32;  // SHA-256
using Digest = std::array<unsigned char, kKeySize>;

inline std::string_view as_view(const Digest& d) {
  return std::string_view(reinterpret_cast<const char*>(d.data()), d.size());
}

Digest hmac_sha256(std::string_view key, std::string_view data);
Digest sha256(std::string_view data);
// PBKDF2-HMAC-SHA-256 (SCRAM's Hi()); false if libcrypto fails.
bool salted_password(std::string_view password, std::string_view salt, uint32_t iterations,
                     Digest* out);
// Lowercase hex MD5.
std::string md5_hex(std::string_view data);
// Equal length and equal bytes, in time that depends on the length only.
bool equal_ct(std::string_view a, std::string_view b);
// Overwrites memory that held a secret.
void cleanse(void* p, size_t n);

// The verifier PostgreSQL would store for `password` (StoredKey = H(HMAC(SaltedPassword,
// "Client Key")), ServerKey = HMAC(SaltedPassword, "Server Key")). ASCII passwords are used as
// is, which is what SASLprep does with them (see auth_client.h for the non-ASCII limit).
config::ScramSecret make_secret(std::string_view password, std::string_view salt,
                                uint32_t iterations);
// The secret format of pg_authid.rolpassword: SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>.
std::string format_secret(const config::ScramSecret& secret);

// "md5" + md5hex(password || user): what pg_authid stores for an md5 password.
std::string md5_secret(std::string_view user, std::string_view password);
// The client's answer to AuthenticationMD5Password from an md5 secret ("md5" + 32 hex):
// "md5" + md5hex(hex || salt).
std::string md5_response(std::string_view md5_secret, std::string_view salt);

}  // namespace pgtandem::proxy::scram

#include "proxy/auth/scram.h"
#include "protocol/base64.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "proxy/auth/auth_client.h"

namespace pgtandem::proxy::scram {

Digest hmac_sha256(std::string_view key, std::string_view data) {
  Digest out{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), &len);
  return out;
}

Digest sha256(std::string_view data) {
  Digest out{};
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr);
  return out;
}

bool salted_password(std::string_view password, std::string_view salt, uint32_t iterations,
                     Digest* out) {
  return PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                           reinterpret_cast<const unsigned char*>(salt.data()),
                           static_cast<int>(salt.size()), static_cast<int>(iterations),
                           EVP_sha256(), static_cast<int>(out->size()), out->data()) == 1;
}

std::string md5_hex(std::string_view data) {
  static constexpr char kHex[] = "0123456789abcdef";
  unsigned char digest[16];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_md5(), nullptr);
  std::string out(32, '0');
  for (size_t i = 0; i < 16; ++i) {
    out[2 * i] = kHex[digest[i] >> 4];
    out[2 * i + 1] = kHex[digest[i] & 0xf];
  }
  return out;
}

bool equal_ct(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

void cleanse(void* p, size_t n) { OPENSSL_cleanse(p, n); }

config::ScramSecret make_secret(std::string_view password, std::string_view salt,
                                uint32_t iterations) {
  Digest salted{};
  config::ScramSecret s;
  s.iterations = iterations;
  s.salt.assign(salt);
  if (!salted_password(password, salt, iterations, &salted)) return s;  // empty keys never match
  Digest client_key = hmac_sha256(as_view(salted), "Client Key");
  s.stored_key.assign(as_view(sha256(as_view(client_key))));
  s.server_key.assign(as_view(hmac_sha256(as_view(salted), "Server Key")));
  cleanse(salted.data(), salted.size());
  cleanse(client_key.data(), client_key.size());
  return s;
}

std::string format_secret(const config::ScramSecret& s) {
  return "SCRAM-SHA-256$" + std::to_string(s.iterations) + ":" + protocol::base64_encode(s.salt) + "$" +
         protocol::base64_encode(s.stored_key) + ":" + protocol::base64_encode(s.server_key);
}

std::string md5_secret(std::string_view user, std::string_view password) {
  std::string inner(password);
  inner.append(user);
  std::string out = "md5" + md5_hex(inner);
  cleanse(inner.data(), inner.size());
  return out;
}

std::string md5_response(std::string_view md5_secret, std::string_view salt) {
  std::string outer(md5_secret.substr(md5_secret.size() >= 3 ? 3 : md5_secret.size()));
  outer.append(salt);
  return "md5" + md5_hex(outer);
}

}  // namespace pgtandem::proxy::scram

#include "proxy/auth/auth_client.h"
#include "protocol/base64.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <array>
#include <utility>

#include "config/userlist.h"
#include "proxy/auth/scram.h"

namespace pgtandem::proxy {
namespace {

constexpr std::string_view kScramSha256 = "SCRAM-SHA-256";
// gs2-header "n,,": the client does not support channel binding (so the server must not think it
// stripped -PLUS from the list); "biws" is its base64, sent back in client-final-message.
constexpr std::string_view kGs2Header = "n,,";
constexpr std::string_view kChannelBinding = "biws";
constexpr size_t kMd5SaltSize = 4;

using scram::as_view;
using scram::Digest;
using scram::hmac_sha256;
using scram::sha256;

// RFC 5802 saslname: ',' and '=' are escaped as =2C and =3D.
std::string saslname(std::string_view user) {
  std::string out;
  out.reserve(user.size());
  for (char c : user) {
    if (c == ',') {
      out += "=2C";
    } else if (c == '=') {
      out += "=3D";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// Reads "<name>=<value>" up to the next ',' (consumed) or the end.
bool read_attribute(std::string_view& in, char name, std::string_view& value) {
  if (in.size() < 2 || in[0] != name || in[1] != '=') return false;
  size_t comma = in.find(',');
  value = in.substr(2, comma == std::string_view::npos ? std::string_view::npos : comma - 2);
  in.remove_prefix(comma == std::string_view::npos ? in.size() : comma + 1);
  return true;
}

bool parse_iterations(std::string_view s, uint64_t& out) {
  if (s.empty() || s.size() > 10) return false;
  out = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    out = out * 10 + static_cast<uint64_t>(c - '0');
  }
  return true;
}

}  // namespace

bool system_random(std::span<unsigned char> out) {
  return RAND_bytes(out.data(), static_cast<int>(out.size())) == 1;
}

std::string md5_password_answer(std::string_view user, std::string_view password,
                                std::string_view salt) {
  return scram::md5_response(scram::md5_secret(user, password), salt);
}

AuthClient::AuthClient(AuthCredentials credentials, AuthClientOptions options)
    : credentials_(std::move(credentials)), options_(std::move(options)) {}

AuthStatus AuthClient::fail(std::string message) {
  state_ = State::kFailed;
  error_ = std::move(message);
  return AuthStatus::kFailed;
}

bool AuthClient::need_password() {
  if (credentials_.password) return true;
  fail("the server asked for a password (" + method_ + ") and none is configured for user \"" +
       credentials_.user + "\"");
  return false;
}

AuthStatus AuthClient::unsupported(std::string_view method) {
  return fail("the server asked for " + std::string(method) +
              " authentication, which pgtandem does not support");
}

AuthStatus AuthClient::on_request(const protocol::Authentication& request, std::string& out) {
  if (state_ == State::kDone || state_ == State::kFailed) {
    return fail("authentication request after the exchange ended");
  }
  switch (request.code) {
    case protocol::kAuthOk:
      // Why: with SCRAM, AuthenticationOk is accepted only after the server proved it knows the
      // verifier (checked ServerSignature); a server that skips SASLFinal is not trusted.
      if (state_ == State::kScramFirstSent || state_ == State::kScramFinalSent) {
        return fail("server sent AuthenticationOk before the SCRAM exchange completed");
      }
      if (state_ == State::kStart) method_ = "trust";
      state_ = State::kDone;
      return AuthStatus::kOk;

    case protocol::kAuthCleartextPassword: {
      if (state_ != State::kStart) return fail("unexpected password request");
      method_ = "cleartext";
      if (!need_password()) return AuthStatus::kFailed;
      if (credentials_.password->find('\0') != std::string::npos) {
        return fail("the password contains a NUL byte");
      }
      protocol::encode(out, protocol::PasswordMessage{*credentials_.password});
      state_ = State::kPasswordSent;
      return AuthStatus::kReply;
    }

    case protocol::kAuthMd5Password: {
      if (state_ != State::kStart) return fail("unexpected MD5 password request");
      method_ = "md5";
      if (request.md5_salt().size() != kMd5SaltSize) return fail("malformed MD5 salt");
      if (!need_password()) return AuthStatus::kFailed;
      std::string answer =
          md5_password_answer(credentials_.user, *credentials_.password, request.md5_salt());
      protocol::encode(out, protocol::PasswordMessage{answer});
      state_ = State::kPasswordSent;
      return AuthStatus::kReply;
    }

    case protocol::kAuthSasl:
      if (state_ != State::kStart) return fail("unexpected SASL request");
      return on_sasl(request, out);

    case protocol::kAuthSaslContinue:
      if (state_ != State::kScramFirstSent) return fail("unexpected SASLContinue");
      return on_sasl_continue(request.data, out);

    case protocol::kAuthSaslFinal:
      if (state_ != State::kScramFinalSent) return fail("unexpected SASLFinal");
      return on_sasl_final(request.data);

    case protocol::kAuthKerberosV5:
      return unsupported("Kerberos V5");
    case protocol::kAuthScmCredential:
      return unsupported("SCM credential");
    case protocol::kAuthGss:
    case protocol::kAuthGssContinue:
      return unsupported("GSSAPI");
    case protocol::kAuthSspi:
      return unsupported("SSPI");
    default:
      return unsupported("code " + std::to_string(request.code));
  }
}

AuthStatus AuthClient::on_sasl(const protocol::Authentication& request, std::string& out) {
  method_ = "scram-sha-256";
  bool offered = false;
  std::string offered_list;
  for (std::string_view mechanism : request.sasl_mechanisms()) {
    if (mechanism == kScramSha256) offered = true;
    if (!offered_list.empty()) offered_list += ", ";
    offered_list.append(mechanism);
  }
  if (!offered) {
    return fail("none of the server's SASL mechanisms (" + offered_list +
                ") is supported; pgtandem speaks SCRAM-SHA-256 without channel binding");
  }
  if (!need_password()) return AuthStatus::kFailed;
  if (options_.nonce_bytes == 0) return fail("SCRAM nonce length is zero");
  std::string raw(options_.nonce_bytes, '\0');
  std::span<unsigned char> raw_bytes(reinterpret_cast<unsigned char*>(raw.data()), raw.size());
  if (!options_.random || !options_.random(raw_bytes)) {
    return fail("could not generate a SCRAM nonce");
  }
  client_nonce_ = protocol::base64_encode(raw);
  client_first_bare_ = "n=" + saslname(credentials_.user) + ",r=" + client_nonce_;
  std::string client_first = std::string(kGs2Header) + client_first_bare_;
  protocol::encode(out,
                   protocol::SaslInitialResponse{kScramSha256, protocol::Value::of(client_first)});
  state_ = State::kScramFirstSent;
  return AuthStatus::kReply;
}

AuthStatus AuthClient::on_sasl_continue(std::string_view server_first, std::string& out) {
  std::string_view in = server_first;
  std::string_view nonce, salt_b64, iterations_text;
  if (in.starts_with("m=")) return fail("SCRAM: the server requires an unsupported extension");
  if (!read_attribute(in, 'r', nonce) || !read_attribute(in, 's', salt_b64) ||
      !read_attribute(in, 'i', iterations_text)) {
    return fail("SCRAM: malformed server-first-message");
  }
  // Why: the combined nonce must extend ours, or this answer belongs to another exchange (replay).
  if (nonce.size() <= client_nonce_.size() || !nonce.starts_with(client_nonce_)) {
    return fail("SCRAM: the server nonce does not extend the client nonce");
  }
  for (char c : nonce) {
    if (c < 0x21 || c > 0x7e || c == ',') return fail("SCRAM: invalid character in the nonce");
  }
  std::optional<std::string> salt = protocol::base64_decode(salt_b64);
  if (!salt || salt->empty()) return fail("SCRAM: malformed salt");
  uint64_t iterations = 0;
  if (!parse_iterations(iterations_text, iterations) || iterations == 0) {
    return fail("SCRAM: malformed iteration count");
  }
  if (iterations > options_.max_scram_iterations) {
    return fail("SCRAM: the server asks for " + std::to_string(iterations) +
                " iterations, more than the limit of " +
                std::to_string(options_.max_scram_iterations));
  }

  const std::string& password = *credentials_.password;
  Digest salted{};
  if (!scram::salted_password(password, *salt, static_cast<uint32_t>(iterations), &salted)) {
    return fail("SCRAM: PBKDF2 failed");
  }
  Digest client_key = hmac_sha256(as_view(salted), "Client Key");
  Digest stored_key = sha256(as_view(client_key));
  Digest server_key = hmac_sha256(as_view(salted), "Server Key");

  std::string client_final = "c=" + std::string(kChannelBinding) + ",r=" + std::string(nonce);
  std::string auth_message = client_first_bare_;
  auth_message += ',';
  auth_message.append(server_first);
  auth_message += ',';
  auth_message += client_final;

  Digest client_signature = hmac_sha256(as_view(stored_key), auth_message);
  Digest proof{};
  for (size_t i = 0; i < proof.size(); ++i) proof[i] = client_key[i] ^ client_signature[i];
  Digest server_signature = hmac_sha256(as_view(server_key), auth_message);
  expected_server_signature_.assign(as_view(server_signature));

  client_final += ",p=";
  client_final += protocol::base64_encode(as_view(proof));
  protocol::encode(out, protocol::SaslResponse{client_final});

  OPENSSL_cleanse(salted.data(), salted.size());
  OPENSSL_cleanse(client_key.data(), client_key.size());
  OPENSSL_cleanse(server_key.data(), server_key.size());
  state_ = State::kScramFinalSent;
  return AuthStatus::kReply;
}

AuthStatus AuthClient::on_sasl_final(std::string_view server_final) {
  std::string_view in = server_final;
  std::string_view value;
  if (read_attribute(in, 'e', value)) {
    return fail("SCRAM: the server reported an error: " + std::string(value));
  }
  if (!read_attribute(in, 'v', value) || !in.empty()) {
    return fail("SCRAM: malformed server-final-message");
  }
  std::optional<std::string> signature = protocol::base64_decode(value);
  // Why: this is the server's proof that it holds the verifier for our password; without it a
  // man in the middle could accept any login and read what the mirror sends.
  if (!signature || signature->size() != expected_server_signature_.size() ||
      CRYPTO_memcmp(signature->data(), expected_server_signature_.data(), signature->size()) != 0) {
    return fail("SCRAM: invalid server signature");
  }
  state_ = State::kScramVerified;
  return AuthStatus::kWait;
}

}  // namespace pgtandem::proxy

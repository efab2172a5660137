// libFuzzer target: the SCRAM-SHA-256 server state machine (proxy/auth/scram_server.h), for a
// known user with a verifier (RFC 7677's, password "pencil") and for an unknown user (mock).
// It must never crash, and never accept a wrong proof: whenever it answers kVerified, the proof
// is recomputed here from the password over the exchange's AuthMessage and must match, and the
// server-final must be the server signature over it. With a mock user it never verifies.
//
// Input: flags, length of the client-first-message, client-first, client-final.
//   flags bit 0: unknown user (mock)
//         bit 1: repair the client-final before sending it: c= the gs2 header's base64, r= the
//                exchange's nonce, the last attribute p= the correct proof. The server must then
//                verify (or fail, for a mock user): a correct client is never refused.
//         bit 2: the wrong mechanism (SCRAM-SHA-256-PLUS)
//         bit 3: no data in the SASLInitialResponse
//         bit 4: a random server nonce (from the input) instead of the RFC's fixed one
//         bit 5: the random source fails
//         bit 6: send the client-final before the client-first (a protocol violation)
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/userlist.h"
#include "protocol/base64.h"
#include "proxy/auth/scram.h"
#include "proxy/auth/scram_server.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using namespace pgtandem;
using proxy::ScramServer;
using proxy::ScramStep;
namespace scram = proxy::scram;

constexpr std::string_view kVerifier =
    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";
constexpr std::string_view kServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";

const config::ScramSecret& secret() {
  static const config::ScramSecret s = *config::parse_scram_secret(kVerifier);
  return s;
}

// ClientKey = HMAC(SaltedPassword("pencil"), "Client Key"), computed once (4096 iterations).
const scram::Digest& client_key() {
  static const scram::Digest key = [] {
    scram::Digest salted{};
    FUZZ_CHECK(scram::salted_password("pencil", secret().salt, secret().iterations, &salted));
    return scram::hmac_sha256(scram::as_view(salted), "Client Key");
  }();
  return key;
}

// ClientProof = ClientKey XOR HMAC(H(ClientKey), AuthMessage).
std::string correct_proof(std::string_view auth_message) {
  const scram::Digest stored = scram::sha256(scram::as_view(client_key()));
  FUZZ_CHECK(scram::as_view(stored) == secret().stored_key);
  const scram::Digest signature = scram::hmac_sha256(scram::as_view(stored), auth_message);
  std::string proof(scram::kKeySize, '\0');
  for (size_t i = 0; i < proof.size(); ++i) {
    proof[i] = static_cast<char>(client_key()[i] ^ signature[i]);
  }
  return proof;
}

std::vector<std::string_view> split(std::string_view s) {
  std::vector<std::string_view> out;
  for (;;) {
    const size_t comma = s.find(',');
    out.push_back(s.substr(0, comma));
    if (comma == std::string_view::npos) return out;
    s.remove_prefix(comma + 1);
  }
}

// What a correct client would send, keeping the fuzzer's extensions between r= and p=.
std::optional<std::string> repair(std::string_view client_first, std::string_view server_first,
                                  std::string_view final) {
  std::vector<std::string_view> parts = split(final);
  if (parts.size() < 3 || !parts[0].starts_with("c=") || !parts[1].starts_with("r=") ||
      !parts.back().starts_with("p=")) {
    return std::nullopt;
  }
  const std::string_view nonce = split(server_first)[0];  // "r=..."
  std::string out = "c=" + protocol::base64_encode(client_first.substr(0, 3));
  out += ',';
  out += nonce;
  for (size_t i = 2; i + 1 < parts.size(); ++i) {
    out += ',';
    out += parts[i];
  }
  const std::string auth = std::string(client_first.substr(3)) + "," + std::string(server_first) +
                           "," + out;
  out += ",p=" + protocol::base64_encode(correct_proof(auth));
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t flags = data[0];
  const std::string_view rest(reinterpret_cast<const char*>(data) + 2, size - 2);
  const size_t first_len = data[1] < rest.size() ? data[1] : rest.size();
  const std::string_view client_first = rest.substr(0, first_len);
  std::string final(rest.substr(first_len));

  const bool mock = flags & 1;
  ScramServer::Options options;
  if (flags & 0x10) {
    options.random = [&](std::span<unsigned char> out) {
      if (flags & 0x20) return false;
      for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<unsigned char>(i * 37 + flags);
      return true;
    };
    options.nonce_bytes = first_len % 32;
  } else {
    options.fixed_server_nonce = std::string(kServerNonce);
  }
  config::ScramSecret s = secret();
  if (mock) {
    s.salt = proxy::scram_user_salt("process secret", "nobody");
    s.stored_key.assign(32, '\x01');
    s.server_key.assign(32, '\x02');
  }
  ScramServer server(s, mock, options);
  std::string out;

  if (flags & 0x40) {
    FUZZ_CHECK(server.on_final(final, &out) == ScramStep::kMalformed);
    FUZZ_CHECK(!server.error().empty());
    return 0;
  }

  const std::string_view mechanism = flags & 4 ? "SCRAM-SHA-256-PLUS" : proxy::kScramMechanism;
  std::optional<std::string_view> first_data;
  if (!(flags & 8)) first_data = client_first;
  std::string server_first;
  const ScramStep step = server.on_initial(mechanism, first_data, &server_first);
  FUZZ_CHECK(step == ScramStep::kContinue || step == ScramStep::kMalformed);
  if (step == ScramStep::kMalformed) {
    FUZZ_CHECK(!server.error().empty() && server.sqlstate().size() == 5);
    FUZZ_CHECK(server.on_final(final, &out) == ScramStep::kMalformed);
    return 0;
  }
  FUZZ_CHECK(!(flags & 4) && !(flags & 8) && !((flags & 0x10) && (flags & 0x20)));
  FUZZ_CHECK(client_first.size() >= 3 && client_first[1] == ',' && client_first[2] == ',');
  FUZZ_CHECK(server_first.starts_with("r="));
  // Answering the client-first twice is a protocol violation.
  {
    ScramServer twice(s, mock, options);
    std::string ignored;
    FUZZ_CHECK(twice.on_initial(mechanism, first_data, &ignored) == ScramStep::kContinue);
    FUZZ_CHECK(twice.on_initial(mechanism, first_data, &ignored) == ScramStep::kMalformed);
  }

  std::optional<std::string> repaired;
  if (flags & 2) repaired = repair(client_first, server_first, final);
  if (repaired) final = *repaired;

  std::string server_final;
  const ScramStep done = server.on_final(final, &server_final);
  FUZZ_CHECK(done != ScramStep::kContinue);
  if (done == ScramStep::kVerified) {
    FUZZ_CHECK(!mock);
    const size_t p = final.rfind(",p=");
    FUZZ_CHECK(p != std::string::npos);
    const std::string auth = std::string(client_first.substr(3)) + "," + server_first + "," +
                             final.substr(0, p);
    std::optional<std::string> proof = protocol::base64_decode(std::string_view(final).substr(p + 3));
    FUZZ_CHECK(proof.has_value() && *proof == correct_proof(auth));
    const scram::Digest sig = scram::hmac_sha256(secret().server_key, auth);
    FUZZ_CHECK(server_final == "v=" + protocol::base64_encode(scram::as_view(sig)));
  } else if (done == ScramStep::kFailed) {
    FUZZ_CHECK(server.sqlstate() == "28P01");
  } else {
    FUZZ_CHECK(!server.error().empty() && server.sqlstate().size() == 5);
  }
  if (repaired) FUZZ_CHECK(done == (mock ? ScramStep::kFailed : ScramStep::kVerified));
  // Nothing after the end.
  FUZZ_CHECK(server.on_final(final, &out) == ScramStep::kMalformed);
  return 0;
}

#include "proxy/auth/scram_server.h"
#include "protocol/base64.h"

#include <utility>

#include "proxy/auth/auth_client.h"
#include "proxy/auth/scram.h"

namespace pgtandem::proxy {
namespace {

constexpr std::string_view kMalformed = "malformed SCRAM message";

// Reads "<name>=<value>" up to the next ',' (consumed) or the end.
bool read_attribute(std::string_view& in, char name, std::string_view& value) {
  if (in.size() < 2 || in[0] != name || in[1] != '=') return false;
  const size_t comma = in.find(',');
  value = in.substr(2, comma == std::string_view::npos ? std::string_view::npos : comma - 2);
  in.remove_prefix(comma == std::string_view::npos ? in.size() : comma + 1);
  return true;
}

bool printable_nonce(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < 0x21 || c > 0x7e || c == ',') return false;
  }
  return true;
}

}  // namespace

ScramServer::ScramServer(config::ScramSecret secret, bool mock, Options options)
    : secret_(std::move(secret)), mock_(mock), options_(std::move(options)) {}

ScramStep ScramServer::malformed(std::string message, std::string_view detail,
                                 std::string_view sqlstate) {
  state_ = State::kDone;
  error_ = std::move(message);
  if (!detail.empty()) {
    error_ += ": ";
    error_.append(detail);
  }
  sqlstate_ = sqlstate;
  return ScramStep::kMalformed;
}

ScramStep ScramServer::on_initial(std::string_view mechanism, std::optional<std::string_view> data,
                                  std::string* server_first) {
  if (state_ != State::kInitial) return malformed(std::string(kMalformed), "unexpected message");
  if (mechanism != kScramMechanism) {
    return malformed("client selected an invalid SASL authentication mechanism");
  }
  if (!data || data->empty()) {
    return malformed(std::string(kMalformed), "The message is empty.");
  }
  std::string_view in = *data;
  // gs2-header: cbind-flag "," [authzid] ","
  switch (in[0]) {
    case 'n':
    case 'y':
      // 'y': the client could bind but thinks we cannot, which is true.
      if (in.size() < 2 || in[1] != ',') {
        return malformed(std::string(kMalformed), "Comma expected after the channel-binding flag.");
      }
      in.remove_prefix(2);
      break;
    case 'p':
      return malformed(std::string(kMalformed),
                       "The client selected SCRAM-SHA-256-PLUS, but the SCRAM message does not "
                       "include channel binding data.");
    default:
      return malformed(std::string(kMalformed), "Unexpected channel-binding flag.");
  }
  if (in.starts_with("a=")) {
    return malformed("client uses authorization identity, but it is not supported", {}, "0A000");
  }
  if (in.empty() || in[0] != ',') {
    return malformed(std::string(kMalformed), "Unexpected attribute in client-first-message.");
  }
  in.remove_prefix(1);
  gs2_header_.assign(data->substr(0, data->size() - in.size()));
  client_first_bare_.assign(in);

  if (in.starts_with("m=")) {
    return malformed("client requires an unsupported SCRAM extension", {}, "0A000");
  }
  std::string_view user, client_nonce;
  // The user name is ignored, as by PostgreSQL: the startup packet's user is authenticated.
  if (!read_attribute(in, 'n', user)) {
    return malformed(std::string(kMalformed), "Expected attribute \"n\".");
  }
  if (!read_attribute(in, 'r', client_nonce) || !printable_nonce(client_nonce)) {
    return malformed(std::string(kMalformed), "Expected a printable nonce in attribute \"r\".");
  }
  // Whatever extensions follow are ignored (RFC 5802 allows them).

  std::string server_nonce;
  if (options_.fixed_server_nonce) {
    server_nonce = *options_.fixed_server_nonce;
  } else {
    std::string raw(options_.nonce_bytes == 0 ? 18 : options_.nonce_bytes, '\0');
    std::span<unsigned char> bytes(reinterpret_cast<unsigned char*>(raw.data()), raw.size());
    if (!options_.random || !options_.random(bytes)) {
      return malformed("could not generate random nonce", {}, "XX000");
    }
    server_nonce = protocol::base64_encode(raw);
  }
  nonce_.assign(client_nonce);
  nonce_ += server_nonce;
  server_first_ = "r=" + nonce_ + ",s=" + protocol::base64_encode(secret_.salt) +
                  ",i=" + std::to_string(secret_.iterations);
  *server_first = server_first_;
  state_ = State::kFinal;
  return ScramStep::kContinue;
}

ScramStep ScramServer::on_final(std::string_view data, std::string* server_final) {
  if (state_ != State::kFinal) return malformed(std::string(kMalformed), "unexpected message");
  std::string_view in = data;
  std::string_view cbind, nonce, proof_b64;
  if (!read_attribute(in, 'c', cbind)) {
    return malformed(std::string(kMalformed), "Expected attribute \"c\".");
  }
  // Why: c= must repeat the gs2 header the client sent first; a different one means the two
  // messages were not produced together (or a channel-binding downgrade was attempted).
  if (cbind != protocol::base64_encode(gs2_header_)) {
    return malformed("SCRAM channel binding check failed");
  }
  if (!read_attribute(in, 'r', nonce)) {
    return malformed(std::string(kMalformed), "Expected attribute \"r\".");
  }
  if (nonce != nonce_) return malformed(std::string(kMalformed), "Nonce does not match.");
  // Extensions may precede the proof; the proof is the last attribute.
  const size_t p = data.rfind(",p=");
  if (p == std::string_view::npos || p + 3 > data.size()) {
    return malformed(std::string(kMalformed), "Could not find proof in client-final-message.");
  }
  proof_b64 = data.substr(p + 3);
  std::optional<std::string> proof = protocol::base64_decode(proof_b64);
  if (!proof || proof->size() != scram::kKeySize) {
    return malformed(std::string(kMalformed), "Malformed proof in client-final-message.");
  }
  const std::string_view final_without_proof = data.substr(0, p);
  std::string auth_message = client_first_bare_;
  auth_message += ',';
  auth_message += server_first_;
  auth_message += ',';
  auth_message.append(final_without_proof);
  state_ = State::kDone;

  // ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); the client knows the password iff
  // H(ClientKey) == StoredKey. Both branches do the same work, so a mock exchange costs the same.
  scram::Digest signature = scram::hmac_sha256(secret_.stored_key, auth_message);
  scram::Digest client_key{};
  for (size_t i = 0; i < client_key.size(); ++i) {
    client_key[i] = static_cast<unsigned char>((*proof)[i]) ^ signature[i];
  }
  scram::Digest computed = scram::sha256(scram::as_view(client_key));
  const bool match = scram::equal_ct(scram::as_view(computed), secret_.stored_key);
  scram::cleanse(client_key.data(), client_key.size());
  if (!match || mock_) {
    error_ = "password authentication failed";
    sqlstate_ = "28P01";
    return ScramStep::kFailed;
  }
  scram::Digest server_signature = scram::hmac_sha256(secret_.server_key, auth_message);
  *server_final = "v=" + protocol::base64_encode(std::string(scram::as_view(server_signature)));
  return ScramStep::kVerified;
}

std::string scram_user_salt(std::string_view process_secret, std::string_view user) {
  scram::Digest d = scram::hmac_sha256(process_secret, user);
  return std::string(scram::as_view(d).substr(0, kScramSaltLength));
}

bool check_md5_answer(std::string_view md5_secret, std::string_view salt, std::string_view answer) {
  const std::string expected = scram::md5_response(md5_secret, salt);
  return scram::equal_ct(expected, answer);
}

}  // namespace pgtandem::proxy

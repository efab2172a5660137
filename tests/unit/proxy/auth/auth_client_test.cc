#include "proxy/auth/auth_client.h"

#include <gtest/gtest.h>

#include <cstring>
#include <set>
#include <string>

#include "protocol/base64.h"
#include "protocol/framing.h"
#include "protocol/messages.h"

namespace pgtandem::proxy {
namespace {

using protocol::Authentication;
using protocol::base64_decode;
using protocol::base64_encode;

// RFC 7677, section 3.
constexpr std::string_view kRfcUser = "user";
constexpr std::string_view kRfcPassword = "pencil";
constexpr std::string_view kRfcClientNonce = "rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view kRfcClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view kRfcServerFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr std::string_view kRfcClientFinal =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr std::string_view kRfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

// A random source that hands out fixed bytes (the RFC's nonce, decoded).
AuthClientOptions fixed_nonce(std::string_view nonce_base64) {
  std::string raw = *base64_decode(nonce_base64);
  AuthClientOptions o;
  o.nonce_bytes = raw.size();
  o.random = [raw](std::span<unsigned char> out) {
    if (out.size() != raw.size()) return false;
    std::memcpy(out.data(), raw.data(), raw.size());
    return true;
  };
  return o;
}

Authentication request(int32_t code, std::string_view data = {}) {
  return Authentication{code, data};
}

// Mechanism list as on the wire (each NUL-terminated, without the final empty name).
Authentication sasl(std::string_view list) { return Authentication{protocol::kAuthSasl, list}; }

// The body of the single 'p' message in `out`.
std::string p_body(const std::string& out) {
  protocol::HeaderResult h =
      protocol::decode_header(out, protocol::Direction::kFrontend, protocol::Limits{});
  EXPECT_EQ(h.status, protocol::Status::kComplete);
  EXPECT_EQ(h.header.type, 'p');
  EXPECT_EQ(h.header.frame_size(), out.size()) << "exactly one message";
  return out.substr(protocol::kHeaderSize);
}

std::string password_of(const std::string& out) {
  protocol::PasswordMessage m;
  std::string body = p_body(out);
  EXPECT_TRUE(protocol::decode(body, m));
  return std::string(m.password);
}

std::string sasl_initial_data(const std::string& out, std::string* mechanism) {
  protocol::SaslInitialResponse m;
  std::string body = p_body(out);
  EXPECT_TRUE(protocol::decode(body, m));
  *mechanism = m.mechanism;
  EXPECT_FALSE(m.data.is_null);
  return std::string(m.data.data);
}

std::string sasl_data(const std::string& out) { return p_body(out); }

// Runs the RFC 7677 exchange up to and including client-final-message.
void rfc_to_client_final(AuthClient& c) {
  std::string out, mech;
  ASSERT_EQ(c.on_request(sasl(std::string_view("SCRAM-SHA-256\0", 14)), out), AuthStatus::kReply)
      << c.error();
  EXPECT_EQ(sasl_initial_data(out, &mech), kRfcClientFirst);
  EXPECT_EQ(mech, "SCRAM-SHA-256");
  out.clear();
  ASSERT_EQ(c.on_request(request(protocol::kAuthSaslContinue, kRfcServerFirst), out),
            AuthStatus::kReply)
      << c.error();
  EXPECT_EQ(sasl_data(out), kRfcClientFinal);
}

TEST(AuthClient, ScramRfc7677Vector) {
  AuthClient c({std::string(kRfcUser), std::string(kRfcPassword)}, fixed_nonce(kRfcClientNonce));
  rfc_to_client_final(c);
  std::string out;
  EXPECT_EQ(c.on_request(request(protocol::kAuthSaslFinal, kRfcServerFinal), out),
            AuthStatus::kWait)
      << c.error();
  EXPECT_TRUE(out.empty());
  EXPECT_FALSE(c.done());
  EXPECT_EQ(c.on_request(request(protocol::kAuthOk), out), AuthStatus::kOk);
  EXPECT_TRUE(c.done());
  EXPECT_EQ(c.method(), "scram-sha-256");
}

TEST(AuthClient, ScramWrongServerSignatureIsAnError) {
  AuthClient c({"user", "pencil"}, fixed_nonce(kRfcClientNonce));
  rfc_to_client_final(c);
  std::string bad(kRfcServerFinal);
  bad[5] = bad[5] == 'A' ? 'B' : 'A';
  std::string out;
  EXPECT_EQ(c.on_request(request(protocol::kAuthSaslFinal, bad), out), AuthStatus::kFailed);
  EXPECT_NE(c.error().find("invalid server signature"), std::string::npos) << c.error();
  // Once failed, an AuthenticationOk does not turn it into a success.
  EXPECT_EQ(c.on_request(request(protocol::kAuthOk), out), AuthStatus::kFailed);
}

TEST(AuthClient, ScramSignatureOfTheWrongLengthIsAnError) {
  AuthClient c({"user", "pencil"}, fixed_nonce(kRfcClientNonce));
  rfc_to_client_final(c);
  std::string out;
  EXPECT_EQ(c.on_request(request(protocol::kAuthSaslFinal, "v=6rriTRBjHvrZ"), out),
            AuthStatus::kFailed);
}

TEST(AuthClient, ScramWrongPasswordGivesADifferentProof) {
  AuthClient c({"user", "pencil2"}, fixed_nonce(kRfcClientNonce));
  std::string out, mech;
  ASSERT_EQ(c.on_request(sasl(std::string_view("SCRAM-SHA-256\0", 14)), out), AuthStatus::kReply);
  out.clear();
  ASSERT_EQ(c.on_request(request(protocol::kAuthSaslContinue, kRfcServerFirst), out),
            AuthStatus::kReply);
  EXPECT_NE(sasl_data(out), kRfcClientFinal);
  // And the real server's signature does not verify against it.
  out.clear();
  EXPECT_EQ(c.on_request(request(protocol::kAuthSaslFinal, kRfcServerFinal), out),
            AuthStatus::kFailed);
}

TEST(AuthClient, ScramServerSkippingFinalIsAnError) {
  AuthClient c({"user", "pencil"}, fixed_nonce(kRfcClientNonce));
  rfc_to_client_final(c);
  std::string out;
  EXPECT_EQ(c.on_request(request(protocol::kAuthOk), out), AuthStatus::kFailed);
  EXPECT_NE(c.error().find("before the SCRAM exchange completed"), std::string::npos);

  AuthClient early({"user", "pencil"}, fixed_nonce(kRfcClientNonce));
  ASSERT_EQ(early.on_request(sasl(std::string_view("SCRAM-SHA-256\0", 14)), out),
            AuthStatus::kReply);
  EXPECT_EQ(early.on_request(request(protocol::kAuthOk), out), AuthStatus::kFailed);
}

TEST(AuthClient, ScramServerError) {
  AuthClient c({"user", "pencil"}, fixed_nonce(kRfcClientNonce));
  rfc_to_client_final(c);
  std::string out;
  EXPECT_EQ(c.on_request(request(protocol::kAuthSaslFinal, "e=invalid-proof"), out),
            AuthStatus::kFailed);
  EXPECT_NE(c.error().find("invalid-proof"), std::string::npos) << c.error();
}

TEST(AuthClient, ScramMalformedServerFirst) {
  const std::string nonce = std::string(kRfcClientNonce) + "srv";
  for (std::string server_first : {
           std::string("r=") + nonce + ",s=W22ZaJ0SNY7soEsUEjb6gQ==",         // no i=
           std::string("r=") + nonce + ",i=4096",                             // no s=
           std::string("s=W22ZaJ0SNY7soEsUEjb6gQ==,r=") + nonce + ",i=4096",  // order
           std::string("r=") + nonce + ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0",
           std::string("r=") + nonce + ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1",
           std::string("r=") + nonce + ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4x",
           std::string("r=") + nonce + ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999999",
           std::string("r=") + nonce + ",s=not*base64,i=4096",
           std::string("r=") + nonce + ",s=,i=4096",
           // The server's nonce must extend ours, and add something.
           std::string("r=AAAAAAAAAAAAAAAAAAAAsrv,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"),
           std::string("r=") + std::string(kRfcClientNonce) + ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
           std::string("m=ext,r=") + nonce + ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
           std::string(""),
       }) {
    AuthClient c({"user", "pencil"}, fixed_nonce(kRfcClientNonce));
    std::string out;
    ASSERT_EQ(c.on_request(sasl(std::string_view("SCRAM-SHA-256\0", 14)), out), AuthStatus::kReply);
    out.clear();
    EXPECT_EQ(c.on_request(request(protocol::kAuthSaslContinue, server_first), out),
              AuthStatus::kFailed)
        << server_first;
    EXPECT_TRUE(out.empty()) << server_first;
  }
}

TEST(AuthClient, ScramServerFirstMayCarryExtensions) {
  AuthClient c({"user", "pencil"}, fixed_nonce(kRfcClientNonce));
  std::string out;
  ASSERT_EQ(c.on_request(sasl(std::string_view("SCRAM-SHA-256\0", 14)), out), AuthStatus::kReply);
  out.clear();
  std::string server_first = std::string(kRfcServerFirst) + ",x=future";
  EXPECT_EQ(c.on_request(request(protocol::kAuthSaslContinue, server_first), out),
            AuthStatus::kReply)
      << c.error();
}

TEST(AuthClient, ScramIterationLimit) {
  AuthClientOptions o = fixed_nonce(kRfcClientNonce);
  o.max_scram_iterations = 4095;
  AuthClient c({"user", "pencil"}, o);
  std::string out;
  ASSERT_EQ(c.on_request(sasl(std::string_view("SCRAM-SHA-256\0", 14)), out), AuthStatus::kReply);
  EXPECT_EQ(c.on_request(request(protocol::kAuthSaslContinue, kRfcServerFirst), out),
            AuthStatus::kFailed);
  EXPECT_NE(c.error().find("4096 iterations"), std::string::npos) << c.error();
}

TEST(AuthClient, ScramChoosesPlainScramOverPlus) {
  AuthClient c({"user", "pencil"}, fixed_nonce(kRfcClientNonce));
  std::string out, mech;
  ASSERT_EQ(c.on_request(sasl(std::string_view("SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0", 33)), out),
            AuthStatus::kReply);
  // "n,,": we do not support channel binding, so the server has no downgrade to detect.
  EXPECT_EQ(sasl_initial_data(out, &mech), kRfcClientFirst);
  EXPECT_EQ(mech, "SCRAM-SHA-256");
}

TEST(AuthClient, ScramPlusOnlyIsRefused) {
  AuthClient c({"user", "pencil"}, fixed_nonce(kRfcClientNonce));
  std::string out;
  EXPECT_EQ(c.on_request(sasl(std::string_view("SCRAM-SHA-256-PLUS\0", 19)), out),
            AuthStatus::kFailed);
  EXPECT_NE(c.error().find("SCRAM-SHA-256-PLUS"), std::string::npos) << c.error();
  EXPECT_TRUE(out.empty());
}

TEST(AuthClient, ScramEscapesTheUserName) {
  AuthClient c({"a,b=c", "pw"}, fixed_nonce(kRfcClientNonce));
  std::string out, mech;
  ASSERT_EQ(c.on_request(sasl(std::string_view("SCRAM-SHA-256\0", 14)), out), AuthStatus::kReply);
  EXPECT_EQ(sasl_initial_data(out, &mech), "n,,n=a=2Cb=3Dc,r=rOprNGfwEbeRWgbNEkqO");
}

TEST(AuthClient, ScramDefaultNonceIsRandom) {
  std::set<std::string> nonces;
  for (int i = 0; i < 2; ++i) {
    AuthClient c({"user", "pencil"});
    std::string out, mech;
    ASSERT_EQ(c.on_request(sasl(std::string_view("SCRAM-SHA-256\0", 14)), out), AuthStatus::kReply);
    std::string first = sasl_initial_data(out, &mech);
    ASSERT_EQ(first.rfind("n,,n=user,r=", 0), 0u) << first;
    std::string nonce = first.substr(12);
    EXPECT_EQ(nonce.size(), 24u);  // 18 bytes, as libpq
    nonces.insert(nonce);
  }
  EXPECT_EQ(nonces.size(), 2u);
}

TEST(AuthClient, ScramRandomFailureIsAnError) {
  AuthClientOptions o;
  o.random = [](std::span<unsigned char>) { return false; };
  AuthClient c({"user", "pencil"}, o);
  std::string out;
  EXPECT_EQ(c.on_request(sasl(std::string_view("SCRAM-SHA-256\0", 14)), out), AuthStatus::kFailed);
  EXPECT_NE(c.error().find("nonce"), std::string::npos);
}

TEST(AuthClient, ScramWithoutPassword) {
  AuthClient c({"user", std::nullopt});
  std::string out;
  EXPECT_EQ(c.on_request(sasl(std::string_view("SCRAM-SHA-256\0", 14)), out), AuthStatus::kFailed);
  EXPECT_NE(c.error().find("none is configured for user \"user\""), std::string::npos) << c.error();
}

TEST(AuthClient, ScramOutOfOrder) {
  std::string out;
  AuthClient a({"user", "pencil"});
  EXPECT_EQ(a.on_request(request(protocol::kAuthSaslContinue, kRfcServerFirst), out),
            AuthStatus::kFailed);
  AuthClient b({"user", "pencil"});
  EXPECT_EQ(b.on_request(request(protocol::kAuthSaslFinal, kRfcServerFinal), out),
            AuthStatus::kFailed);
  AuthClient c({"user", "pencil"}, fixed_nonce(kRfcClientNonce));
  ASSERT_EQ(c.on_request(sasl(std::string_view("SCRAM-SHA-256\0", 14)), out), AuthStatus::kReply);
  EXPECT_EQ(c.on_request(request(protocol::kAuthSaslFinal, kRfcServerFinal), out),
            AuthStatus::kFailed);
}

TEST(AuthClient, Trust) {
  AuthClient c({"user", std::nullopt});
  std::string out;
  EXPECT_EQ(c.on_request(request(protocol::kAuthOk), out), AuthStatus::kOk);
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(c.method(), "trust");
  EXPECT_TRUE(c.done());
  // Nothing after the end.
  EXPECT_EQ(c.on_request(request(protocol::kAuthCleartextPassword), out), AuthStatus::kFailed);
}

TEST(AuthClient, Cleartext) {
  AuthClient c({"pw_user", "pw_pass"});
  std::string out;
  ASSERT_EQ(c.on_request(request(protocol::kAuthCleartextPassword), out), AuthStatus::kReply);
  EXPECT_EQ(out, std::string("p\0\0\0\x0cpw_pass\0", 13));
  EXPECT_EQ(c.method(), "cleartext");
  out.clear();
  EXPECT_EQ(c.on_request(request(protocol::kAuthCleartextPassword), out), AuthStatus::kFailed)
      << "a second password request";
}

TEST(AuthClient, CleartextOk) {
  AuthClient c({"pw_user", "pw_pass"});
  std::string out;
  ASSERT_EQ(c.on_request(request(protocol::kAuthCleartextPassword), out), AuthStatus::kReply);
  EXPECT_EQ(c.on_request(request(protocol::kAuthOk), out), AuthStatus::kOk);
  EXPECT_EQ(c.method(), "cleartext");
}

TEST(AuthClient, CleartextWithoutPasswordOrWithNul) {
  std::string out;
  AuthClient none({"pw_user", std::nullopt});
  EXPECT_EQ(none.on_request(request(protocol::kAuthCleartextPassword), out), AuthStatus::kFailed);
  EXPECT_NE(none.error().find("(cleartext)"), std::string::npos) << none.error();
  AuthClient nul({"pw_user", std::string("a\0b", 3)});
  EXPECT_EQ(nul.on_request(request(protocol::kAuthCleartextPassword), out), AuthStatus::kFailed);
  EXPECT_TRUE(out.empty());
}

TEST(AuthClient, Md5KnownValues) {
  // Computed independently: "md5" + md5(md5(password + user).hexdigest() + salt).hexdigest().
  EXPECT_EQ(md5_password_answer("md5_user", "md5_pass", std::string_view("\x01\x02\x03\x04", 4)),
            "md5c6ee6bd10a7adf513019b25f24df0925");
  EXPECT_EQ(md5_password_answer("user", "pencil", "abcd"), "md5d621238dc9a10c6c869b264c13379ee7");
}

TEST(AuthClient, Md5) {
  AuthClient c({"md5_user", "md5_pass"});
  std::string out;
  ASSERT_EQ(c.on_request(
                request(protocol::kAuthMd5Password, std::string_view("\x01\x02\x03\x04", 4)), out),
            AuthStatus::kReply);
  EXPECT_EQ(password_of(out), "md5c6ee6bd10a7adf513019b25f24df0925");
  EXPECT_EQ(c.method(), "md5");
  EXPECT_EQ(c.on_request(request(protocol::kAuthOk), out), AuthStatus::kOk);
}

TEST(AuthClient, Md5WithoutPassword) {
  AuthClient c({"md5_user", std::nullopt});
  std::string out;
  EXPECT_EQ(c.on_request(request(protocol::kAuthMd5Password, "abcd"), out), AuthStatus::kFailed);
  EXPECT_NE(c.error().find("(md5)"), std::string::npos) << c.error();
}

TEST(AuthClient, UnsupportedMethods) {
  for (int32_t code : {protocol::kAuthKerberosV5, protocol::kAuthScmCredential, protocol::kAuthGss,
                       protocol::kAuthGssContinue, protocol::kAuthSspi, 42}) {
    AuthClient c({"user", "pw"});
    std::string out;
    EXPECT_EQ(c.on_request(request(code), out), AuthStatus::kFailed) << code;
    EXPECT_NE(c.error().find("does not support"), std::string::npos) << c.error();
    EXPECT_TRUE(out.empty());
  }
}

TEST(Base64, RoundTripAndStrictness) {
  for (std::string s : {std::string(""), std::string("f"), std::string("fo"), std::string("foo"),
                        std::string("foob"), std::string("fooba"), std::string("foobar"),
                        std::string("\x00\xff\x10", 3)}) {
    std::optional<std::string> back = base64_decode(base64_encode(s));
    ASSERT_TRUE(back) << s;
    EXPECT_EQ(*back, s);
  }
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("n,,"), "biws");
  EXPECT_FALSE(base64_decode("Zm8"));       // no padding
  EXPECT_FALSE(base64_decode("Zm9=Zm8="));  // padding in the middle
  EXPECT_FALSE(base64_decode("Zm8 "));
  EXPECT_FALSE(base64_decode("Zm9="));  // stray bits
  EXPECT_FALSE(base64_decode("====="));
  EXPECT_FALSE(base64_decode("===="));
}

}  // namespace
}  // namespace pgtandem::proxy

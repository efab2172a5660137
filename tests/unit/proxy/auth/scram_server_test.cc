// The server side of SCRAM-SHA-256 and the MD5 check ([auth] mode = "file"): pure, no sockets.
#include "proxy/auth/scram_server.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "config/userlist.h"
#include "proxy/auth/auth_client.h"
#include "proxy/auth/scram.h"

namespace pgtandem::proxy {
namespace {

// RFC 7677, section 3.
constexpr std::string_view kRfcVerifier =
    "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";
constexpr std::string_view kRfcClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
constexpr std::string_view kRfcServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
constexpr std::string_view kRfcServerFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr std::string_view kRfcClientFinal =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr std::string_view kRfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
// What PostgreSQL 15 stored for `CREATE ROLE ... PASSWORD 'pencil'` is checked against a real
// server in tests/integration/file_auth_test.cc.

config::ScramSecret rfc_secret() { return *config::parse_scram_secret(kRfcVerifier); }

ScramServer::Options rfc_options() {
  ScramServer::Options o;
  o.fixed_server_nonce = std::string(kRfcServerNonce);
  return o;
}

TEST(ScramServer, Rfc7677Example) {
  ScramServer server(rfc_secret(), false, rfc_options());
  std::string first, final;
  ASSERT_EQ(server.on_initial("SCRAM-SHA-256", kRfcClientFirst, &first), ScramStep::kContinue)
      << server.error();
  EXPECT_EQ(first, kRfcServerFirst);
  ASSERT_EQ(server.on_final(kRfcClientFinal, &final), ScramStep::kVerified) << server.error();
  EXPECT_EQ(final, kRfcServerFinal);
}

TEST(ScramServer, MakeSecretMatchesTheRfcVerifier) {
  config::ScramSecret s = scram::make_secret("pencil", rfc_secret().salt, 4096);
  EXPECT_EQ(scram::format_secret(s), kRfcVerifier);
}

TEST(ScramServer, WrongProofFails) {
  ScramServer server(rfc_secret(), false, rfc_options());
  std::string first, final;
  ASSERT_EQ(server.on_initial("SCRAM-SHA-256", kRfcClientFirst, &first), ScramStep::kContinue);
  std::string bad(kRfcClientFinal);
  bad[bad.size() - 3] = bad[bad.size() - 3] == 'A' ? 'B' : 'A';
  EXPECT_EQ(server.on_final(bad, &final), ScramStep::kFailed);
  EXPECT_EQ(server.sqlstate(), "28P01");
  EXPECT_TRUE(final.empty());
  // Nothing more is accepted after the end.
  EXPECT_EQ(server.on_final(kRfcClientFinal, &final), ScramStep::kMalformed);
}

TEST(ScramServer, MockExchangeLooksTheSameAndAlwaysFails) {
  ScramServer server(rfc_secret(), /*mock=*/true, rfc_options());
  std::string first, final;
  ASSERT_EQ(server.on_initial("SCRAM-SHA-256", kRfcClientFirst, &first), ScramStep::kContinue);
  EXPECT_EQ(first, kRfcServerFirst);
  EXPECT_EQ(server.on_final(kRfcClientFinal, &final), ScramStep::kFailed);
  EXPECT_TRUE(final.empty());
}

TEST(ScramServer, WorksWithOurOwnClient) {
  // The SCRAM client of the mirror links against the server: random nonces, both directions.
  for (std::string_view password : {"pencil", "s3cr\xc3\xa9t", ""}) {
    config::ScramSecret secret = scram::make_secret(password, "0123456789abcdef", 4096);
    ScramServer::Options so;
    so.random = system_random;
    ScramServer server(secret, false, so);
    AuthClient client({"app", std::string(password)});
    std::string out;
    protocol::Authentication sasl;
    sasl.code = protocol::kAuthSasl;
    std::string mechanisms("SCRAM-SHA-256\0", 14);
    sasl.data = mechanisms;
    ASSERT_EQ(client.on_request(sasl, out), AuthStatus::kReply);
    // out is a whole 'p' message: mechanism\0 int32 len data.
    std::string_view body = std::string_view(out).substr(5);
    protocol::SaslInitialResponse initial;
    ASSERT_TRUE(protocol::decode(body, initial));
    std::string first, final;
    ASSERT_EQ(server.on_initial(initial.mechanism, initial.data.data, &first), ScramStep::kContinue)
        << server.error();
    protocol::Authentication cont;
    cont.code = protocol::kAuthSaslContinue;
    cont.data = first;
    out.clear();
    ASSERT_EQ(client.on_request(cont, out), AuthStatus::kReply) << client.error();
    protocol::SaslResponse response;
    ASSERT_TRUE(protocol::decode(std::string_view(out).substr(5), response));
    ASSERT_EQ(server.on_final(response.data, &final), ScramStep::kVerified) << server.error();
    protocol::Authentication fin;
    fin.code = protocol::kAuthSaslFinal;
    fin.data = final;
    out.clear();
    EXPECT_EQ(client.on_request(fin, out), AuthStatus::kWait) << client.error();
  }
}

struct BadInitial {
  std::string_view mechanism;
  std::string_view data;
  std::string_view sqlstate;
};

TEST(ScramServer, MalformedClientFirstIsAProtocolViolation) {
  const BadInitial cases[] = {
      {"SCRAM-SHA-256-PLUS", kRfcClientFirst, "08P01"},
      {"PLAIN", kRfcClientFirst, "08P01"},
      {"SCRAM-SHA-256", "", "08P01"},
      {"SCRAM-SHA-256", "p=tls-server-end-point,,n=user,r=abc", "08P01"},
      {"SCRAM-SHA-256", "x,,n=user,r=abc", "08P01"},
      {"SCRAM-SHA-256", "n", "08P01"},
      {"SCRAM-SHA-256", "n,a=admin,n=user,r=abc", "0A000"},
      {"SCRAM-SHA-256", "n,,m=ext,n=user,r=abc", "0A000"},
      {"SCRAM-SHA-256", "n,,r=abc", "08P01"},
      {"SCRAM-SHA-256", "n,,n=user", "08P01"},
      {"SCRAM-SHA-256", "n,,n=user,r=", "08P01"},
      {"SCRAM-SHA-256",
       std::string_view("n,,n=user,r=a\x01"
                        "b",
                        15),
       "08P01"},
      {"SCRAM-SHA-256", "n,x,n=user,r=abc", "08P01"},
  };
  for (const auto& c : cases) {
    ScramServer server(rfc_secret(), false, rfc_options());
    std::string first;
    EXPECT_EQ(server.on_initial(c.mechanism, c.data, &first), ScramStep::kMalformed) << c.data;
    EXPECT_EQ(server.sqlstate(), c.sqlstate) << c.data;
    EXPECT_FALSE(server.error().empty());
  }
  ScramServer server(rfc_secret(), false, rfc_options());
  std::string first;
  EXPECT_EQ(server.on_initial("SCRAM-SHA-256", std::nullopt, &first), ScramStep::kMalformed);
}

TEST(ScramServer, ChannelBindingFlagY) {
  // 'y': the client could bind but believes we cannot (true); c= must then be base64("y,,").
  ScramServer server(rfc_secret(), false, rfc_options());
  std::string first, final;
  ASSERT_EQ(server.on_initial("SCRAM-SHA-256", "y,,n=user,r=rOprNGfwEbeRWgbNEkqO", &first),
            ScramStep::kContinue);
  // The RFC's proof was made for "biws" (n,,): with y,, the c= check fails first.
  EXPECT_EQ(server.on_final(kRfcClientFinal, &final), ScramStep::kMalformed);
  EXPECT_EQ(server.error(), "SCRAM channel binding check failed");
}

TEST(ScramServer, MalformedClientFinal) {
  const std::string nonce = "rOprNGfwEbeRWgbNEkqO" + std::string(kRfcServerNonce);
  const std::string cases[] = {
      "",
      "r=" + nonce + ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
      "c=eSws,r=" + nonce + ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
      "c=biws,r=rOprNGfwEbeRWgbNEkqO,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
      "c=biws,r=" + nonce,
      "c=biws,r=" + nonce + ",p=",
      "c=biws,r=" + nonce + ",p=dHzbZapW",
      "c=biws,r=" + nonce + ",p=!!!!",
      "c=biws,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
  };
  for (const auto& c : cases) {
    ScramServer server(rfc_secret(), false, rfc_options());
    std::string first, final;
    ASSERT_EQ(server.on_initial("SCRAM-SHA-256", kRfcClientFirst, &first), ScramStep::kContinue);
    EXPECT_EQ(server.on_final(c, &final), ScramStep::kMalformed) << c;
    EXPECT_EQ(server.sqlstate(), "08P01") << c;
  }
  // Out of order: a final before the first.
  ScramServer server(rfc_secret(), false, rfc_options());
  std::string final;
  EXPECT_EQ(server.on_final(kRfcClientFinal, &final), ScramStep::kMalformed);
}

TEST(ScramServer, RandomNonceAndFailingRandomSource) {
  ScramServer::Options o;
  o.random = [](std::span<unsigned char>) { return false; };
  ScramServer server(rfc_secret(), false, o);
  std::string first;
  EXPECT_EQ(server.on_initial("SCRAM-SHA-256", kRfcClientFirst, &first), ScramStep::kMalformed);
  ScramServer::Options r;
  r.random = system_random;
  ScramServer a(rfc_secret(), false, r), b(rfc_secret(), false, r);
  std::string fa, fb;
  ASSERT_EQ(a.on_initial("SCRAM-SHA-256", kRfcClientFirst, &fa), ScramStep::kContinue);
  ASSERT_EQ(b.on_initial("SCRAM-SHA-256", kRfcClientFirst, &fb), ScramStep::kContinue);
  EXPECT_NE(fa, fb);
  EXPECT_TRUE(fa.starts_with("r=rOprNGfwEbeRWgbNEkqO"));
}

TEST(ScramServer, UserSaltIsStablePerUserAndSecret) {
  EXPECT_EQ(scram_user_salt("k", "alice"), scram_user_salt("k", "alice"));
  EXPECT_NE(scram_user_salt("k", "alice"), scram_user_salt("k", "bob"));
  EXPECT_NE(scram_user_salt("k", "alice"), scram_user_salt("j", "alice"));
  EXPECT_EQ(scram_user_salt("k", "alice").size(), kScramSaltLength);
}

TEST(Md5Check, MatchesPostgresAndLibpq) {
  // md5("secret" || "bob"), as pg_authid stores it.
  const std::string secret = scram::md5_secret("bob", "secret");
  EXPECT_EQ(secret, "md521f3163f8f86fa10bdefbfbd502a8f06");
  const std::string salt("\x01\x02\x03\x04", 4);
  const std::string answer = md5_password_answer("bob", "secret", salt);  // libpq's computation
  EXPECT_TRUE(check_md5_answer(secret, salt, answer));
  EXPECT_FALSE(check_md5_answer(secret, std::string("\x01\x02\x03\x05", 4), answer));
  EXPECT_FALSE(check_md5_answer(secret, salt, md5_password_answer("bob", "wrong", salt)));
  EXPECT_FALSE(check_md5_answer(secret, salt, ""));
  EXPECT_FALSE(check_md5_answer(secret, salt, answer.substr(0, 34)));
}

}  // namespace
}  // namespace pgtandem::proxy

namespace pgtandem::proxy {
namespace {

// No input crashes the SCRAM server or the userlist parser (run under ASan in test.sh --sanitize).
TEST(ScramServer, RandomInputNeverCrashes) {
  uint64_t x = 0x9e3779b97f4a7c15ULL;
  auto next = [&] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  static constexpr char kAlphabet[] = "nyp,=arcmsibiwsSCRAM-SHA-256$:\"\\ \n\x00\xff" "AZaz09+/";
  const std::string alphabet(kAlphabet, sizeof(kAlphabet) - 1);  // with the NUL byte
  auto random_text = [&](size_t max) {
    std::string s(next() % max, '\0');
    for (char& c : s) c = alphabet[next() % alphabet.size()];
    return s;
  };
  for (int i = 0; i < 20000; ++i) {
    ScramServer server(*config::parse_scram_secret(
                           "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"
                           "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
                           "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="),
                       i % 2 == 0, ScramServer::Options{system_random, 18, std::nullopt});
    std::string first, final;
    const std::string a = (i % 3 == 0 ? "n,,n=u,r=" : "") + random_text(64);
    if (server.on_initial(i % 5 == 0 ? "X" : "SCRAM-SHA-256", a, &first) == ScramStep::kContinue) {
      const std::string nonce = first.substr(2, first.find(',') - 2);
      const std::string b =
          (i % 2 == 0 ? "c=biws,r=" + nonce + ",p=" : std::string()) + random_text(64);
      EXPECT_NE(server.on_final(b, &final), ScramStep::kVerified);
    }
    (void)config::parse_userlist(random_text(200));
  }
}

}  // namespace
}  // namespace pgtandem::proxy

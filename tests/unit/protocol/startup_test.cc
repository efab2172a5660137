#include "protocol/startup.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "protocol/messages.h"
#include "test_util.h"

namespace pgtandem::protocol {
namespace {

std::string packet(std::string_view body_after_length) {
  std::string s;
  put_u32(s, static_cast<uint32_t>(body_after_length.size() + 4));
  s.append(body_after_length);
  return s;
}

std::string version(uint16_t major, uint16_t minor) {
  std::string s;
  put_u16(s, major);
  put_u16(s, minor);
  return s;
}

std::string kv(std::string_view k, std::string_view v) {
  std::string s(k);
  s.push_back('\0');
  s.append(v);
  s.push_back('\0');
  return s;
}

TEST(StartupFrame, NeedsLengthThenCode) {
  std::string p;
  encode_startup_message(p, std::vector<StartupParam>{{"user", "u"}});
  for (size_t n = 0; n < 8; ++n) {
    StartupFrame f = decode_startup_frame(std::string_view(p).substr(0, n));
    EXPECT_EQ(f.status, Status::kNeedMore) << n;
  }
  StartupFrame f = decode_startup_frame(std::string_view(p).substr(0, 8));
  EXPECT_EQ(f.status, Status::kComplete);
  EXPECT_EQ(f.length, p.size());
  EXPECT_EQ(f.code, kProtocolVersion3);
}

TEST(StartupFrame, LengthBounds) {
  for (uint32_t len : {0u, 4u, 7u, 10005u, 0x7fffffffu, 0xffffffffu}) {
    std::string s;
    put_u32(s, len);
    StartupFrame f = decode_startup_frame(s);  // reported as soon as the length word is in
    EXPECT_EQ(f.status, Status::kInvalid) << len;
    EXPECT_EQ(f.error, StartupError::kInvalidLength) << len;
  }
  for (uint32_t len : {8u, 9u, 10000u, 10004u}) {
    std::string s;
    put_u32(s, len);
    put_u32(s, kProtocolVersion3);
    EXPECT_EQ(decode_startup_frame(s).status, Status::kComplete) << len;
  }
}

TEST(StartupFrame, CancelRequestMustBe16Bytes) {
  for (uint32_t len : {8u, 12u, 20u}) {
    std::string s;
    put_u32(s, len);
    put_u32(s, kCancelRequestCode);
    StartupFrame f = decode_startup_frame(s);
    EXPECT_EQ(f.error, StartupError::kInvalidLength) << len;
  }
  std::string c;
  encode_cancel_request(c, {1, 2});
  EXPECT_EQ(decode_startup_frame(c).status, Status::kComplete);
}

TEST(StartupKind, SecondRequestIsAStartupMessage) {
  EXPECT_EQ(classify_startup_code(kSslRequestCode, false, false), StartupKind::kSslRequest);
  EXPECT_EQ(classify_startup_code(kSslRequestCode, true, false), StartupKind::kStartupMessage);
  EXPECT_EQ(classify_startup_code(kGssEncRequestCode, false, false), StartupKind::kGssEncRequest);
  EXPECT_EQ(classify_startup_code(kGssEncRequestCode, true, false), StartupKind::kGssEncRequest);
  EXPECT_EQ(classify_startup_code(kGssEncRequestCode, false, true), StartupKind::kStartupMessage);
  EXPECT_EQ(classify_startup_code(kCancelRequestCode, true, true), StartupKind::kCancelRequest);
  EXPECT_EQ(classify_startup_code(kProtocolVersion3, false, false), StartupKind::kStartupMessage);

  std::string twice;
  encode_ssl_request(twice);
  StartupMessage m;
  EXPECT_EQ(parse_startup_message(twice, m), StartupError::kUnsupportedProtocol);
  EXPECT_EQ(m.major, 1234);
  EXPECT_EQ(m.minor, 5679);
}

TEST(StartupKind, DataAfterEncryptionRequest) {
  EXPECT_EQ(check_after_encryption_request(StartupKind::kSslRequest, 0), StartupError::kNone);
  EXPECT_EQ(check_after_encryption_request(StartupKind::kSslRequest, 1),
            StartupError::kDataAfterSslRequest);
  EXPECT_EQ(check_after_encryption_request(StartupKind::kGssEncRequest, 9),
            StartupError::kDataAfterGssEncRequest);
  EXPECT_EQ(check_after_encryption_request(StartupKind::kStartupMessage, 9), StartupError::kNone);
}

TEST(StartupMessage, RoundTrip) {
  std::vector<StartupParam> params = {{"user", "alice"},
                                      {"database", "shop"},
                                      {"options", "-c search_path=app"},
                                      {"application_name", ""},
                                      {"_pq_.compression", "on"}};
  std::string p;
  encode_startup_message(p, params);
  StartupMessage m;
  ASSERT_EQ(parse_startup_message(p, m), StartupError::kNone);
  EXPECT_EQ(m.major, 3);
  EXPECT_EQ(m.minor, 0);
  EXPECT_EQ(m.version(), kProtocolVersion3);
  EXPECT_EQ(m.params, std::vector<StartupParam>(params.begin(), params.end() - 1));
  EXPECT_EQ(m.protocol_options, (std::vector<StartupParam>{{"_pq_.compression", "on"}}));
  EXPECT_EQ(m.user(), "alice");
  EXPECT_EQ(m.database(), "shop");
  EXPECT_EQ(m.find("options"), "-c search_path=app");
  EXPECT_TRUE(m.has("application_name"));
  EXPECT_FALSE(m.has("nope"));
  EXPECT_TRUE(m.needs_negotiation());
  std::string again;
  encode_startup_message(again, m);
  EXPECT_EQ(again, p);
  for (const auto& [k, v] : m.params) {
    EXPECT_TRUE(testing::within(k, p));
    EXPECT_TRUE(testing::within(v, p));
  }
}

TEST(StartupMessage, DatabaseDefaultsToUserAndLastValueWins) {
  std::string p = packet(version(3, 0) + kv("user", "first") + kv("user", "bob") + '\0');
  StartupMessage m;
  ASSERT_EQ(parse_startup_message(p, m), StartupError::kNone);
  EXPECT_EQ(m.user(), "bob");
  EXPECT_EQ(m.database(), "bob");
  EXPECT_FALSE(m.needs_negotiation());
}

TEST(StartupMessage, NewerMinorNeedsNegotiation) {
  std::string p;
  encode_startup_message(p, std::vector<StartupParam>{{"user", "u"}}, 3, 2);
  StartupMessage m;
  ASSERT_EQ(parse_startup_message(p, m), StartupError::kNone);
  EXPECT_EQ(m.minor, 2);
  EXPECT_TRUE(m.needs_negotiation());
  std::string answer;
  encode_negotiation_answer(answer, m);
  NegotiateProtocolVersion npv;
  ASSERT_TRUE(decode(std::string_view(answer).substr(5), npv));
  EXPECT_EQ(npv.newest_version, kProtocolVersion3);
  EXPECT_TRUE(npv.unrecognized_options.empty());
  StartupMessage plain;
  p.clear();
  encode_startup_message(p, std::vector<StartupParam>{{"user", "u"}});
  ASSERT_EQ(parse_startup_message(p, plain), StartupError::kNone);
  answer.clear();
  encode_negotiation_answer(answer, plain);
  EXPECT_TRUE(answer.empty());
}

TEST(StartupMessage, Errors) {
  StartupMessage m;
  // Layout: the last byte must be the terminator, reached exactly.
  EXPECT_EQ(parse_startup_message(packet(version(3, 0) + kv("user", "u")), m),
            StartupError::kMissingTerminator);
  EXPECT_EQ(parse_startup_message(packet(version(3, 0) + kv("user", "u") + '\0' + '\0'), m),
            StartupError::kMissingTerminator);
  EXPECT_EQ(parse_startup_message(packet(version(3, 0) + "user"), m),
            StartupError::kMissingTerminator);
  EXPECT_EQ(parse_startup_message(packet(version(3, 0) + std::string("user\0", 5)), m),
            StartupError::kMissingTerminator);
  EXPECT_EQ(parse_startup_message(packet(version(3, 0) + std::string("user\0u", 6)), m),
            StartupError::kMissingTerminator);
  // No user, or an empty one.
  EXPECT_EQ(parse_startup_message(packet(version(3, 0) + '\0'), m), StartupError::kNoUser);
  EXPECT_EQ(parse_startup_message(packet(version(3, 0) + kv("database", "d") + '\0'), m),
            StartupError::kNoUser);
  EXPECT_EQ(parse_startup_message(packet(version(3, 0) + kv("user", "") + '\0'), m),
            StartupError::kNoUser);
  // A bare version is short of the terminator.
  EXPECT_EQ(parse_startup_message(packet(version(3, 0)), m), StartupError::kMissingTerminator);
  // Versions.
  for (auto [major, minor] :
       {std::pair{2, 0}, std::pair{4, 0}, std::pair{0, 0}, std::pair{1234, 5680}}) {
    EXPECT_EQ(parse_startup_message(packet(version(major, minor) + kv("user", "u") + '\0'), m),
              StartupError::kUnsupportedProtocol);
    EXPECT_EQ(m.major, major);
    EXPECT_EQ(m.minor, minor);
  }
  // Length word disagreeing with the packet.
  std::string p = packet(version(3, 0) + kv("user", "u") + '\0');
  EXPECT_EQ(parse_startup_message(p.substr(0, p.size() - 1), m), StartupError::kInvalidLength);
  EXPECT_EQ(parse_startup_message("", m), StartupError::kInvalidLength);
}

TEST(StartupMessage, Replication) {
  StartupMessage m;
  for (std::string_view ok : {"database", "true", "on", "1", "0", "yes", "no", "f", "OFF", "T"}) {
    EXPECT_EQ(parse_startup_message(
                  packet(version(3, 0) + kv("user", "u") + kv("replication", ok) + '\0'), m),
              StartupError::kNone)
        << ok;
  }
  for (std::string_view bad : {"maybe", "", "o", "2", "truex", "10", "Database"}) {
    std::string p = packet(version(3, 0) + kv("user", "u") + kv("replication", bad) + '\0');
    EXPECT_EQ(parse_startup_message(p, m), StartupError::kInvalidReplication) << bad;
    EXPECT_EQ(m.replication_value, bad);  // a view into p
  }
  // Checked as the packet is read: before the layout and user checks.
  EXPECT_EQ(parse_startup_message(packet(version(3, 0) + kv("replication", "x")), m),
            StartupError::kInvalidReplication);
}

TEST(ServerBool, MatchesParseBool) {
  bool v = false;
  struct Case {
    std::string_view in;
    bool ok;
    bool value;
  };
  for (Case c : {Case{"t", true, true},     Case{"TRUE", true, true},    Case{"tr", true, true},
                 Case{"f", true, false},    Case{"False", true, false},  Case{"y", true, true},
                 Case{"yes", true, true},   Case{"n", true, false},      Case{"no", true, false},
                 Case{"on", true, true},    Case{"of", true, false},     Case{"off", true, false},
                 Case{"1", true, true},     Case{"0", true, false},      Case{"o", false, false},
                 Case{"", false, false},    Case{"truee", false, false}, Case{"yess", false, false},
                 Case{"onn", false, false}, Case{"11", false, false},    Case{"x", false, false}}) {
    EXPECT_EQ(parse_server_bool(c.in, v), c.ok) << c.in;
    if (c.ok) {
      EXPECT_EQ(v, c.value) << c.in;
    }
  }
}

TEST(CancelRequest, RoundTrip) {
  CancelRequest c{123456, -42};
  std::string p;
  encode_cancel_request(p, c);
  EXPECT_EQ(p.size(), 16u);
  CancelRequest back;
  ASSERT_TRUE(parse_cancel_request(p, back));
  EXPECT_EQ(back, c);
  EXPECT_FALSE(parse_cancel_request(p.substr(0, 12), back));
  EXPECT_FALSE(parse_cancel_request(p + "x", back));
  std::string ssl;
  encode_ssl_request(ssl);
  EXPECT_FALSE(parse_cancel_request(ssl + std::string(8, '\0'), back));
}

TEST(Requests, Encoders) {
  std::string s;
  encode_ssl_request(s);
  EXPECT_EQ(s, std::string("\0\0\0\x08\x04\xd2\x16\x2f", 8));
  s.clear();
  encode_gssenc_request(s);
  EXPECT_EQ(s, std::string("\0\0\0\x08\x04\xd2\x16\x30", 8));
  StartupFrame f = decode_startup_frame(s);
  EXPECT_EQ(f.code, kGssEncRequestCode);
  EXPECT_EQ(f.length, 8u);
}

TEST(StartupMessage, CapturedStartups) {
  for (const std::string& name : testing::session_names()) {
    testing::Session s = testing::load_session(name);
    std::string_view fe = s.frontend;
    // Skip the SSLRequest, if any, then parse the StartupMessage the client sent.
    size_t pos = s.backend_typed * 8;
    StartupFrame f = decode_startup_frame(fe.substr(pos));
    ASSERT_EQ(f.status, Status::kComplete) << name;
    StartupMessage m;
    std::string_view p = fe.substr(pos, f.length);
    ASSERT_EQ(parse_startup_message(p, m), StartupError::kNone) << name;
    EXPECT_FALSE(m.user().empty()) << name;
    std::string again;
    encode_startup_message(again, m);
    EXPECT_EQ(again, p) << name;
  }
}

}  // namespace
}  // namespace pgtandem::protocol

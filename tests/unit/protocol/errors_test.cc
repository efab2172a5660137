// The answers in errors.h against what a PostgreSQL 15.20 server sent (data/probe_*).
#include "protocol/errors.h"

#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

#include "protocol/messages.h"
#include "test_util.h"

namespace pgtandem::protocol {
namespace {

using testing::RawMessage;

struct Probe {
  std::string frontend;
  std::string backend;
};

Probe load_probe(const std::string& name) {
  return Probe{testing::read_file(testing::data_dir() + "/probe_" + name + ".fe.bin"),
               testing::read_file(testing::data_dir() + "/probe_" + name + ".be.bin")};
}

// The server's ErrorResponse without the F, L and R fields (source file, line, routine), which
// the answers leave out.
std::string without_location(const RawMessage& m) {
  ErrorResponse e;
  EXPECT_TRUE(decode(m.body, e));
  std::vector<Field> fields;
  for (const Field& f : e.fields) {
    if (f.code != field::kFile && f.code != field::kLine && f.code != field::kRoutine) {
      fields.push_back(f);
    }
  }
  std::string out;
  encode_fields(out, backend::kErrorResponse, fields);
  return out;
}

// The server's last message, which must be an ErrorResponse.
std::string server_error(std::string_view backend) {
  std::vector<RawMessage> msgs = testing::split_messages(backend);
  EXPECT_FALSE(msgs.empty());
  if (msgs.empty()) return {};
  EXPECT_EQ(msgs.back().type, backend::kErrorResponse);
  EXPECT_EQ(msgs.back().whole.data() + msgs.back().whole.size(), backend.data() + backend.size());
  return without_location(msgs.back());
}

// A probe sent after a successful startup: its typed frontend bytes.
std::string_view after_startup(const Probe& p) {
  StartupFrame f = decode_startup_frame(p.frontend);
  EXPECT_EQ(f.status, Status::kComplete);
  return std::string_view(p.frontend).substr(f.length);
}

TEST(EncodeErrorResponse, Fields) {
  std::string out;
  encode_error_response(out, Severity::kError, sqlstate::kConnectionFailure, "primary is gone",
                        "it closed", "retry");
  ErrorResponse e;
  ASSERT_TRUE(decode(std::string_view(out).substr(5), e));
  EXPECT_EQ(e.severity(), "ERROR");
  EXPECT_EQ(e.severity_nonlocalized(), "ERROR");
  EXPECT_EQ(e.sqlstate(), "08006");
  EXPECT_EQ(e.message(), "primary is gone");
  EXPECT_EQ(e.detail(), "it closed");
  EXPECT_EQ(e.hint(), "retry");
  out.clear();
  encode_error_response(out, Severity::kFatal, sqlstate::kAdminShutdown, "bye");
  ASSERT_TRUE(decode(std::string_view(out).substr(5), e));
  EXPECT_FALSE(e.fields.has('D'));
  EXPECT_FALSE(e.fields.has('H'));
  out.clear();
  encode_notice_response(out, Severity::kWarning, "01000", "careful");
  NoticeResponse n;
  ASSERT_EQ(out[0], 'N');
  ASSERT_TRUE(decode(std::string_view(out).substr(5), n));
  EXPECT_EQ(n.severity(), "WARNING");
  for (Severity s : {Severity::kError, Severity::kFatal, Severity::kPanic, Severity::kWarning,
                     Severity::kNotice, Severity::kDebug, Severity::kInfo, Severity::kLog}) {
    EXPECT_FALSE(severity_name(s).empty());
  }
}

TEST(FrameErrorAnswer, UnknownType) {
  for (auto [name, type] : {std::pair{"unknown_type", 'Z'}, std::pair{"unknown_type_high", '\xff'},
                            std::pair{"password_after_auth", 'p'}}) {
    Probe p = load_probe(name);
    std::string_view fe = after_startup(p);
    HeaderResult h = decode_header(fe, Direction::kFrontend, {});
    if (type != 'p') {
      ASSERT_EQ(h.status, Status::kInvalid) << name;
      ASSERT_EQ(h.error, FrameError::kUnknownType) << name;
    } else {
      // 'p' is only valid during authentication; the frame layer lets it through and the
      // server rejects it. A proxy that tracks the phase can give the same answer itself.
      ASSERT_EQ(h.status, Status::kComplete);
    }
    std::string answer;
    EXPECT_EQ(answer_frame_error(FrameError::kUnknownType, Header{type, 0}, answer),
              ServerAnswer::kErrorThenClose);
    EXPECT_EQ(answer, server_error(p.backend)) << name;
  }
}

TEST(FrameErrorAnswer, InvalidLengthClosesSilently) {
  struct Case {
    const char* name;
    FrameError error;
  };
  for (Case c : {Case{"length_too_small", FrameError::kLengthTooSmall},
                 Case{"length_negative", FrameError::kLengthTooLarge},
                 Case{"sync_too_large", FrameError::kLengthTooLarge}}) {
    Probe p = load_probe(c.name);
    testing::ScanOutcome out = testing::scan_whole(after_startup(p), Direction::kFrontend, 0);
    EXPECT_TRUE(out.invalid) << c.name;
    EXPECT_EQ(out.error, c.error) << c.name;
    std::string answer;
    EXPECT_EQ(answer_frame_error(c.error, Header{}, answer), ServerAnswer::kClose);
    EXPECT_TRUE(answer.empty());
    // The server's last words were the ReadyForQuery of the startup; then it closed.
    std::vector<RawMessage> msgs = testing::split_messages(p.backend);
    ASSERT_FALSE(msgs.empty());
    EXPECT_EQ(msgs.back().type, backend::kReadyForQuery) << c.name;
    EXPECT_EQ(msgs.back().whole.data() + msgs.back().whole.size(),
              p.backend.data() + p.backend.size());
  }
  std::string answer;
  EXPECT_EQ(answer_frame_error(FrameError::kNone, Header{}, answer), ServerAnswer::kNone);
}

TEST(FrameErrorAnswer, CapsAreInclusive) {
  // A Close of exactly PQ_SMALL_MESSAGE_LIMIT is read (and then rejected as malformed, an ERROR
  // that does not end the session); a Query above that limit is fine.
  Probe at_cap = load_probe("close_at_cap");
  testing::ScanOutcome out = testing::scan_whole(after_startup(at_cap), Direction::kFrontend);
  EXPECT_FALSE(out.invalid);
  ASSERT_EQ(out.messages.size(), 2u);
  EXPECT_EQ(out.messages[0].length, kSmallMessageLimit);
  bool saw_error = false;
  for (const RawMessage& m : testing::split_messages(at_cap.backend)) {
    if (m.type != backend::kErrorResponse) continue;
    ErrorResponse e;
    ASSERT_TRUE(decode(m.body, e));
    EXPECT_EQ(e.severity(), "ERROR");
    EXPECT_EQ(e.message(), "invalid message format");
    saw_error = true;
  }
  EXPECT_TRUE(saw_error);

  Probe big = load_probe("query_over_small_cap");
  out = testing::scan_whole(after_startup(big), Direction::kFrontend);
  EXPECT_FALSE(out.invalid);
  bool saw_complete = false;
  for (const RawMessage& m : testing::split_messages(big.backend)) {
    CommandComplete c;
    if (m.type == backend::kCommandComplete && decode(m.body, c))
      saw_complete = c.tag == "SELECT 1";
  }
  EXPECT_TRUE(saw_complete);
}

TEST(StartupErrorAnswer, InvalidLengthClosesSilently) {
  for (const char* name : {"startup_length_7", "startup_length_10005", "cancel_short"}) {
    Probe p = load_probe(name);
    StartupFrame f = decode_startup_frame(p.frontend);
    EXPECT_EQ(f.status, Status::kInvalid) << name;
    EXPECT_EQ(f.error, StartupError::kInvalidLength) << name;
    std::string answer;
    EXPECT_EQ(answer_startup_error(f.error, {}, answer), ServerAnswer::kClose);
    EXPECT_TRUE(answer.empty());
    EXPECT_TRUE(p.backend.empty()) << name;
  }
  Probe largest = load_probe("startup_length_10004");
  StartupFrame f = decode_startup_frame(largest.frontend);
  ASSERT_EQ(f.status, Status::kComplete);
  EXPECT_EQ(f.length, 10004u);
  StartupMessage m;
  EXPECT_EQ(parse_startup_message(std::string_view(largest.frontend).substr(0, f.length), m),
            StartupError::kNone);
  ASSERT_FALSE(largest.backend.empty());
  EXPECT_EQ(largest.backend[0], backend::kAuthentication);
}

void expect_startup_answer(const std::string& name, StartupError want) {
  Probe p = load_probe(name);
  StartupFrame f = decode_startup_frame(p.frontend);
  ASSERT_EQ(f.status, Status::kComplete) << name;
  StartupMessage m;
  StartupError error = parse_startup_message(std::string_view(p.frontend).substr(0, f.length), m);
  ASSERT_EQ(error, want) << name;
  std::string answer;
  ASSERT_EQ(answer_startup_error(error, m, answer), ServerAnswer::kErrorThenClose);
  std::vector<RawMessage> msgs = testing::split_messages(p.backend);
  ASSERT_FALSE(msgs.empty()) << name;
  // Everything before the error (a NegotiateProtocolVersion) must match byte for byte.
  std::string expected;
  for (size_t i = 0; i + 1 < msgs.size(); ++i) expected.append(msgs[i].whole);
  expected += server_error(p.backend);
  EXPECT_EQ(answer, expected) << name;
}

TEST(StartupErrorAnswer, MatchesServer) {
  expect_startup_answer("startup_no_terminator", StartupError::kMissingTerminator);
  expect_startup_answer("startup_no_user", StartupError::kNoUser);
  expect_startup_answer("startup_empty_user", StartupError::kNoUser);
  expect_startup_answer("startup_protocol_4", StartupError::kUnsupportedProtocol);
  expect_startup_answer("startup_bad_replication", StartupError::kInvalidReplication);
}

TEST(StartupErrorAnswer, ProtocolTwoGetsAVersionTwoError) {
  Probe p = load_probe("startup_protocol_2");
  StartupMessage m;
  ASSERT_EQ(parse_startup_message(p.frontend, m), StartupError::kUnsupportedProtocol);
  std::string answer;
  ASSERT_EQ(answer_startup_error(StartupError::kUnsupportedProtocol, m, answer),
            ServerAnswer::kErrorThenClose);
  EXPECT_EQ(answer, p.backend);  // byte for byte: the v2 format has no location fields
}

TEST(StartupErrorAnswer, NoUserAfterNegotiation) {
  // The server sends NegotiateProtocolVersion before it checks the user name.
  std::string packet;
  encode_startup_message(packet, std::vector<StartupParam>{{"_pq_.x", "1"}}, 3, 1);
  StartupMessage m;
  ASSERT_EQ(parse_startup_message(packet, m), StartupError::kNoUser);
  std::string answer;
  ASSERT_EQ(answer_startup_error(StartupError::kNoUser, m, answer), ServerAnswer::kErrorThenClose);
  std::vector<RawMessage> msgs = testing::split_messages(answer);
  ASSERT_EQ(msgs.size(), 2u);
  EXPECT_EQ(msgs[0].type, backend::kNegotiateProtocolVersion);
  EXPECT_EQ(msgs[1].type, backend::kErrorResponse);
}

TEST(StartupErrorAnswer, NegotiateProtocolVersionMatchesServer) {
  Probe p = load_probe("startup_negotiate");
  StartupFrame f = decode_startup_frame(p.frontend);
  StartupMessage m;
  ASSERT_EQ(parse_startup_message(std::string_view(p.frontend).substr(0, f.length), m),
            StartupError::kNone);
  EXPECT_EQ(m.minor, 7);
  ASSERT_TRUE(m.needs_negotiation());
  std::string answer;
  encode_negotiation_answer(answer, m);
  std::vector<RawMessage> msgs = testing::split_messages(p.backend);
  ASSERT_FALSE(msgs.empty());
  EXPECT_EQ(answer, msgs[0].whole);
  NegotiateProtocolVersion npv;
  ASSERT_TRUE(decode(msgs[0].body, npv));
  EXPECT_EQ(npv.newest_version, kProtocolVersion3);
  EXPECT_EQ(std::vector<std::string_view>(npv.unrecognized_options.begin(),
                                          npv.unrecognized_options.end()),
            (std::vector<std::string_view>{"_pq_.some_option", "_pq_.other"}));
  EXPECT_EQ(msgs[1].type, backend::kAuthentication);  // then the session goes on
}

// Replays the startup phase of a probe like the server: answers 'N' to each request, checks for
// piggybacked bytes, and parses the StartupMessage. Returns the answer bytes.
std::string replay_startup(std::string_view fe, ServerAnswer& outcome) {
  std::string answer;
  bool ssl_done = false;
  bool gss_done = false;
  size_t pos = 0;
  outcome = ServerAnswer::kNone;
  while (pos < fe.size()) {
    StartupFrame f = decode_startup_frame(fe.substr(pos));
    if (f.status != Status::kComplete) {
      outcome = answer_startup_error(f.error, {}, answer);
      return answer;
    }
    StartupKind kind = classify_startup_code(f.code, ssl_done, gss_done);
    std::string_view packet = fe.substr(pos, f.length);
    pos += f.length;
    if (kind == StartupKind::kSslRequest || kind == StartupKind::kGssEncRequest) {
      answer.push_back('N');
      (kind == StartupKind::kSslRequest ? ssl_done : gss_done) = true;
      continue;
    }
    if (kind == StartupKind::kCancelRequest) {
      CancelRequest c;
      EXPECT_TRUE(parse_cancel_request(packet, c));
      outcome = ServerAnswer::kClose;
      return answer;
    }
    StartupMessage m;
    StartupError e = parse_startup_message(packet, m);
    outcome = answer_startup_error(e, m, answer);
    return answer;
  }
  return answer;
}

TEST(StartupErrorAnswer, DataAfterEncryptionRequest) {
  for (auto [name, kind, error] :
       {std::tuple{"ssl_piggyback", StartupKind::kSslRequest, StartupError::kDataAfterSslRequest},
        std::tuple{"gss_piggyback", StartupKind::kGssEncRequest,
                   StartupError::kDataAfterGssEncRequest}}) {
    Probe p = load_probe(name);
    StartupFrame f = decode_startup_frame(p.frontend);
    ASSERT_EQ(classify_startup_code(f.code, false, false), kind);
    size_t buffered = p.frontend.size() - f.length;
    ASSERT_GT(buffered, 0u);
    StartupError e = check_after_encryption_request(kind, buffered);
    ASSERT_EQ(e, error);
    std::string answer = "N";
    ASSERT_EQ(answer_startup_error(e, {}, answer), ServerAnswer::kErrorThenClose);
    ASSERT_EQ(p.backend[0], 'N');
    EXPECT_EQ(answer, "N" + server_error(std::string_view(p.backend).substr(1))) << name;
  }
}

TEST(StartupErrorAnswer, SecondRequestFailsTheVersionCheck) {
  for (const char* name : {"ssl_twice", "gss_twice"}) {
    Probe p = load_probe(name);
    ServerAnswer outcome;
    std::string answer = replay_startup(p.frontend, outcome);
    EXPECT_EQ(outcome, ServerAnswer::kErrorThenClose) << name;
    ASSERT_EQ(p.backend[0], 'N');
    EXPECT_EQ(answer, "N" + server_error(std::string_view(p.backend).substr(1))) << name;
  }
}

TEST(StartupErrorAnswer, RequestsInEitherOrder) {
  for (const char* name : {"ssl_then_startup", "gss_then_ssl_then_startup"}) {
    Probe p = load_probe(name);
    ServerAnswer outcome;
    std::string answer = replay_startup(p.frontend, outcome);
    EXPECT_EQ(outcome, ServerAnswer::kNone) << name;
    EXPECT_EQ(p.backend.substr(0, answer.size()), answer) << name;
    EXPECT_EQ(p.backend[answer.size()], backend::kAuthentication) << name;
  }
}

TEST(StartupErrorAnswer, CancelRequestGetsNoAnswer) {
  Probe p = load_probe("cancel_bad_key");
  CancelRequest c;
  ASSERT_TRUE(parse_cancel_request(p.frontend, c));
  EXPECT_EQ(c.process_id, 1);
  EXPECT_EQ(c.secret_key, 2);
  EXPECT_TRUE(p.backend.empty());
}

TEST(AuthAnswer, UnexpectedMessageType) {
  for (auto [name, exchange] : {std::pair{"auth_md5_wrong_type", AuthExchange::kPassword},
                                std::pair{"auth_scram_wrong_type", AuthExchange::kSasl}}) {
    Probe p = load_probe(name);
    std::string_view fe = after_startup(p);
    std::string answer;
    ASSERT_EQ(answer_unexpected_auth_message(exchange, fe[0], answer),
              ServerAnswer::kErrorThenClose);
    EXPECT_EQ(answer, server_error(p.backend)) << name;
  }
}

TEST(AuthAnswer, MessageTooLarge) {
  Probe md5 = load_probe("auth_md5_too_large");
  std::string answer;
  EXPECT_EQ(answer_auth_message_too_large(AuthExchange::kPassword, "md5user", answer),
            ServerAnswer::kClose);
  EXPECT_TRUE(answer.empty());
  std::vector<RawMessage> msgs = testing::split_messages(md5.backend);
  ASSERT_EQ(msgs.size(), 1u);  // the AuthenticationMD5Password request, then silence
  EXPECT_EQ(msgs[0].type, backend::kAuthentication);
  HeaderResult h = decode_header(after_startup(md5), Direction::kFrontend, {});
  EXPECT_EQ(h.error, FrameError::kLengthTooLarge);

  Probe scram = load_probe("auth_scram_too_large");
  answer.clear();
  EXPECT_EQ(answer_auth_message_too_large(AuthExchange::kSasl, "scramuser", answer),
            ServerAnswer::kErrorThenClose);
  EXPECT_EQ(answer, server_error(scram.backend));
  HeaderResult sasl = decode_header(after_startup(scram), Direction::kFrontend,
                                    {.max_message_size = kMaxSaslMessageLength});
  EXPECT_EQ(sasl.error, FrameError::kLengthTooLarge);

  answer.clear();
  answer_auth_message_too_large(AuthExchange::kSasl, std::string(100, 'u'), answer);
  ErrorResponse e;
  ASSERT_TRUE(decode(std::string_view(answer).substr(5), e));
  EXPECT_EQ(e.message(),
            "password authentication failed for user \"" + std::string(63, 'u') + "\"");
}

}  // namespace
}  // namespace pgtandem::protocol

#include "protocol/framing.h"

#include <gtest/gtest.h>

#include <string>

#include "protocol/message_types.h"
#include "protocol/messages.h"
#include "protocol/startup.h"
#include "test_util.h"

namespace pgtandem::protocol {
namespace {

using testing::Message;
using testing::scan_chunks;
using testing::scan_whole;
using testing::ScanOutcome;

std::string header(char type, uint32_t length) {
  std::string s(1, type);
  put_u32(s, length);
  return s;
}

std::string message(char type, std::string_view body) {
  std::string s = header(type, static_cast<uint32_t>(body.size() + 4));
  s.append(body);
  return s;
}

TEST(FrontendCap, MatchesSocketBackend) {
  Limits limits;
  for (char t : std::string("QFBPd")) {
    EXPECT_EQ(frontend_message_cap(t, limits), kLargeMessageLimit) << t;
  }
  for (char t : std::string("CDEHSXcf")) {
    EXPECT_EQ(frontend_message_cap(t, limits), kSmallMessageLimit) << t;
  }
  EXPECT_EQ(frontend_message_cap('p', limits), kMaxAuthTokenLength);
  for (int t = 0; t < 256; ++t) {
    char c = static_cast<char>(t);
    if (std::string("QFBPdCDEHSXcfp").find(c) != std::string::npos) continue;
    EXPECT_EQ(frontend_message_cap(c, limits), 0u) << t;
  }
}

TEST(FrontendCap, BoundedByLimits) {
  Limits limits{.max_message_size = 5000};
  EXPECT_EQ(frontend_message_cap('Q', limits), 5000u);
  EXPECT_EQ(frontend_message_cap('S', limits), 5000u);
  EXPECT_EQ(frontend_message_cap('p', limits), 5000u);
  limits.max_message_size = 20000;
  EXPECT_EQ(frontend_message_cap('S', limits), kSmallMessageLimit);
  EXPECT_EQ(frontend_message_cap('Q', limits), 20000u);
}

TEST(BackendCap, AllProtocol3Types) {
  Limits limits{.max_message_size = 123456};
  const std::string known = "RK23CdcGHWDIEVvnNAtS1sZT";
  for (int t = 0; t < 256; ++t) {
    char c = static_cast<char>(t);
    bool is_known = known.find(c) != std::string::npos;
    EXPECT_EQ(backend_message_cap(c, limits), is_known ? 123456u : 0u) << t;
    EXPECT_EQ(message_name(Direction::kBackend, c) != "Unknown", is_known) << t;
  }
}

// decode_header reads the caps from a table built from the two functions' switches: for every
// type byte, both directions and two limits, it accepts exactly up to the cap they give, and
// rejects an unknown type before its length.
TEST(DecodeHeader, TableAgreesWithTheCapFunctions) {
  for (uint32_t max : {kLargeMessageLimit, uint32_t{5000}}) {
    Limits limits{.max_message_size = max};
    for (int t = 0; t < 256; ++t) {
      const char c = static_cast<char>(t);
      for (Direction dir : {Direction::kFrontend, Direction::kBackend}) {
        SCOPED_TRACE(std::to_string(t) + (dir == Direction::kFrontend ? " frontend" : " backend"));
        const uint32_t cap = dir == Direction::kFrontend ? frontend_message_cap(c, limits)
                                                         : backend_message_cap(c, limits);
        auto at_cap = decode_header(header(c, cap == 0 ? 4 : cap), dir, limits);
        if (cap == 0) {
          EXPECT_EQ(at_cap.status, Status::kInvalid);
          EXPECT_EQ(at_cap.error, FrameError::kUnknownType);
          EXPECT_EQ(decode_header(std::string(1, c), dir, limits).status, Status::kInvalid);
          continue;
        }
        EXPECT_EQ(at_cap.status, Status::kComplete);
        EXPECT_EQ(at_cap.header.length, cap);
        auto over = decode_header(header(c, cap + 1), dir, limits);
        EXPECT_EQ(over.status, Status::kInvalid);
        EXPECT_EQ(over.error, FrameError::kLengthTooLarge);
        EXPECT_EQ(decode_header(header(c, 3), dir, limits).error, FrameError::kLengthTooSmall);
        EXPECT_EQ(decode_header(std::string(1, c), dir, limits).status, Status::kNeedMore);
      }
    }
  }
}

TEST(DecodeHeader, NeedsFiveBytes) {
  std::string h = header('Q', 10);
  for (size_t n = 0; n < kHeaderSize; ++n) {
    HeaderResult r = decode_header(std::string_view(h).substr(0, n), Direction::kFrontend, {});
    EXPECT_EQ(r.status, Status::kNeedMore) << n;
  }
  HeaderResult r = decode_header(h, Direction::kFrontend, {});
  EXPECT_EQ(r.status, Status::kComplete);
  EXPECT_EQ(r.header.type, 'Q');
  EXPECT_EQ(r.header.length, 10u);
  EXPECT_EQ(r.header.frame_size(), 11u);
  EXPECT_EQ(r.header.body_size(), 6u);
}

TEST(DecodeHeader, UnknownTypeIsJudgedBeforeTheLength) {
  // The server rejects the type byte before it reads the length word.
  HeaderResult r = decode_header("Z", Direction::kFrontend, {});
  EXPECT_EQ(r.status, Status::kInvalid);
  EXPECT_EQ(r.error, FrameError::kUnknownType);
  EXPECT_EQ(r.header.type, 'Z');
  r = decode_header(header('\xff', 4), Direction::kFrontend, {});
  EXPECT_EQ(r.error, FrameError::kUnknownType);
  r = decode_header(header('Q', 8), Direction::kBackend, {});
  EXPECT_EQ(r.error, FrameError::kUnknownType);
  r = decode_header(header('Z', 5), Direction::kBackend, {});
  EXPECT_EQ(r.status, Status::kComplete);
}

TEST(DecodeHeader, LengthTooSmall) {
  for (uint32_t len : {0u, 1u, 3u}) {
    HeaderResult r = decode_header(header('S', len), Direction::kFrontend, {});
    EXPECT_EQ(r.status, Status::kInvalid);
    EXPECT_EQ(r.error, FrameError::kLengthTooSmall) << len;
    r = decode_header(header('Z', len), Direction::kBackend, {});
    EXPECT_EQ(r.error, FrameError::kLengthTooSmall) << len;
  }
  EXPECT_EQ(decode_header(header('S', 4), Direction::kFrontend, {}).status, Status::kComplete);
}

TEST(DecodeHeader, LengthTooLarge) {
  struct Case {
    char type;
    uint32_t ok;
  };
  for (Case c :
       {Case{'S', kSmallMessageLimit}, Case{'X', kSmallMessageLimit}, Case{'Q', kLargeMessageLimit},
        Case{'d', kLargeMessageLimit}, Case{'p', kMaxAuthTokenLength}}) {
    EXPECT_EQ(decode_header(header(c.type, c.ok), Direction::kFrontend, {}).status,
              Status::kComplete)
        << c.type;
    HeaderResult r = decode_header(header(c.type, c.ok + 1), Direction::kFrontend, {});
    EXPECT_EQ(r.status, Status::kInvalid) << c.type;
    EXPECT_EQ(r.error, FrameError::kLengthTooLarge) << c.type;
    EXPECT_EQ(r.header.length, c.ok + 1);
  }
  // A negative int32 on the wire.
  EXPECT_EQ(decode_header(header('Q', 0xffffffffu), Direction::kFrontend, {}).error,
            FrameError::kLengthTooLarge);
  Limits small{.max_message_size = 100};
  EXPECT_EQ(decode_header(header('D', 100), Direction::kBackend, small).status, Status::kComplete);
  EXPECT_EQ(decode_header(header('D', 101), Direction::kBackend, small).error,
            FrameError::kLengthTooLarge);
  EXPECT_EQ(decode_header(header('D', kLargeMessageLimit), Direction::kBackend, {}).status,
            Status::kComplete);
}

TEST(FrameScanner, TwoMessagesInOneBuffer) {
  std::string data = message('Q', std::string("SELECT 1") + '\0') + message('S', "");
  ScanOutcome out = scan_whole(data, Direction::kFrontend, 0);
  ASSERT_EQ(out.messages.size(), 2u);
  EXPECT_EQ(out.messages[0], (Message{'Q', 13, std::string("SELECT 1") + '\0', false}));
  EXPECT_EQ(out.messages[1], (Message{'S', 4, "", false}));
  EXPECT_EQ(out.forwarded, data.size());
  EXPECT_TRUE(out.pending.empty());
}

TEST(FrameScanner, ManyMessagesAndATail) {
  std::string data;
  for (int i = 0; i < 1000; ++i) data += message('d', std::string(i % 17, 'x'));
  std::string tail = message('c', "").substr(0, 3);
  ScanOutcome out = scan_whole(data + tail, Direction::kFrontend, 64);
  EXPECT_EQ(out.messages.size(), 1000u);
  EXPECT_EQ(out.forwarded, data.size());
  EXPECT_EQ(out.pending, tail);
  EXPECT_TRUE(out.at_boundary);
}

TEST(FrameScanner, SmallPartialMessageIsKeptBack) {
  std::string data = message('Q', std::string(50, 'a') + '\0');
  FrameScanner scanner(Direction::kFrontend, {}, 1024);
  testing::Recorder rec;
  FrameScanner::Result r = scanner.scan(std::string_view(data).substr(0, 20), rec);
  EXPECT_EQ(r.status, Status::kComplete);
  EXPECT_EQ(r.forward, 0u);
  EXPECT_TRUE(rec.messages.empty());
  r = scanner.scan(data, rec);
  EXPECT_EQ(r.forward, data.size());
  ASSERT_EQ(rec.messages.size(), 1u);
  EXPECT_FALSE(rec.messages[0].streamed);
}

TEST(FrameScanner, LargePartialMessageIsStreamedOnce) {
  std::string big = message('d', std::string(5000, 'z'));
  std::string data = big + message('c', "");
  FrameScanner scanner(Direction::kFrontend, {}, 100);
  testing::Recorder rec;
  size_t forwarded = 0;
  std::string pending;
  for (size_t pos = 0; pos < data.size(); pos += 7) {
    pending.append(std::string_view(data).substr(pos, 7));
    FrameScanner::Result r = scanner.scan(pending, rec);
    forwarded += r.forward;
    pending.erase(0, r.forward);
  }
  EXPECT_EQ(forwarded, data.size());
  ASSERT_EQ(rec.messages.size(), 2u);
  EXPECT_EQ(rec.messages[0], (Message{'d', 5004, "", true}));
  EXPECT_EQ(rec.messages[1], (Message{'c', 4, "", false}));
  EXPECT_TRUE(scanner.at_boundary());
}

TEST(FrameScanner, VisitorStops) {
  std::string data = message('S', "") + message('H', "") + message('S', "");
  FrameScanner scanner(Direction::kFrontend, {}, 1024);
  testing::Recorder rec;
  rec.stop_after = 1;
  FrameScanner::Result r = scanner.scan(data, rec);
  EXPECT_TRUE(r.stopped);
  EXPECT_EQ(r.forward, 5u);
  rec.stop_after = SIZE_MAX;
  r = scanner.scan(std::string_view(data).substr(5), rec);
  EXPECT_FALSE(r.stopped);
  EXPECT_EQ(r.forward, 10u);
  EXPECT_EQ(rec.messages.size(), 3u);
}

TEST(FrameScanner, InvalidAfterGoodMessages) {
  std::string good = message('S', "") + message('H', "");
  struct Case {
    std::string bad;
    FrameError error;
  };
  for (const Case& c :
       {Case{header('S', 3), FrameError::kLengthTooSmall},
        Case{header('S', 10001), FrameError::kLengthTooLarge}, Case{"Z", FrameError::kUnknownType},
        Case{header('\0', 4), FrameError::kUnknownType}}) {
    FrameScanner scanner(Direction::kFrontend, {}, 1024);
    testing::Recorder rec;
    FrameScanner::Result r = scanner.scan(good + c.bad, rec);
    EXPECT_EQ(r.status, Status::kInvalid);
    EXPECT_EQ(r.error, c.error);
    EXPECT_EQ(r.forward, good.size());  // what came before may still be sent on
    EXPECT_EQ(r.bad_header.type, c.bad[0]);
    EXPECT_EQ(rec.messages.size(), 2u);
  }
}

// The split-stream property over real sessions: whatever the chunking, the scanner reports the
// same messages; a message is whole unless it was larger than keep_limit and cut by a chunk
// boundary, and then only its header is reported, once.
void expect_same_messages(const std::vector<Message>& reference, const ScanOutcome& out,
                          size_t keep_limit, const std::string& what) {
  ASSERT_FALSE(out.invalid) << what;
  ASSERT_EQ(out.messages.size(), reference.size()) << what;
  for (size_t i = 0; i < reference.size(); ++i) {
    const Message& got = out.messages[i];
    const Message& want = reference[i];
    ASSERT_EQ(got.type, want.type) << what << " #" << i;
    ASSERT_EQ(got.length, want.length) << what << " #" << i;
    if (got.streamed) {
      ASSERT_GT(size_t{got.length} + 1, keep_limit) << what << " #" << i;
    } else {
      ASSERT_EQ(got.body, want.body) << what << " #" << i;
    }
  }
  ASSERT_TRUE(out.pending.empty()) << what;
  ASSERT_TRUE(out.at_boundary) << what;
}

class CapturedSession : public ::testing::TestWithParam<std::string> {};

TEST_P(CapturedSession, EveryMessageIsReported) {
  testing::Session s = testing::load_session(GetParam());
  for (Direction dir : {Direction::kFrontend, Direction::kBackend}) {
    std::string_view data =
        dir == Direction::kFrontend ? s.frontend_messages() : s.backend_messages();
    ScanOutcome whole = scan_whole(data, dir);
    ASSERT_FALSE(whole.invalid) << s.name;
    EXPECT_EQ(whole.forwarded, data.size()) << s.name;
    EXPECT_EQ(whole.messages.size(), testing::split_messages(data).size()) << s.name;
    EXPECT_FALSE(whole.messages.empty()) << s.name;
  }
}

TEST_P(CapturedSession, SplitAtEveryByte) {
  testing::Session s = testing::load_session(GetParam());
  for (Direction dir : {Direction::kFrontend, Direction::kBackend}) {
    std::string_view data =
        dir == Direction::kFrontend ? s.frontend_messages() : s.backend_messages();
    std::vector<Message> reference = scan_whole(data, dir).messages;
    for (size_t keep_limit : {size_t{0}, size_t{16}, size_t{1} << 20}) {
      for (size_t cut = 0; cut <= data.size(); ++cut) {
        ScanOutcome out = scan_chunks({data.substr(0, cut), data.substr(cut)}, dir, keep_limit);
        expect_same_messages(reference, out, keep_limit,
                             s.name + (dir == Direction::kFrontend ? " fe" : " be") + " keep=" +
                                 std::to_string(keep_limit) + " cut=" + std::to_string(cut));
        if (HasFatalFailure()) return;
      }
    }
  }
}

TEST_P(CapturedSession, SmallChunks) {
  testing::Session s = testing::load_session(GetParam());
  for (Direction dir : {Direction::kFrontend, Direction::kBackend}) {
    std::string_view data =
        dir == Direction::kFrontend ? s.frontend_messages() : s.backend_messages();
    std::vector<Message> reference = scan_whole(data, dir).messages;
    for (size_t chunk = 1; chunk <= 9; ++chunk) {
      std::vector<std::string_view> chunks;
      for (size_t pos = 0; pos < data.size(); pos += chunk) {
        chunks.push_back(data.substr(pos, chunk));
      }
      for (size_t keep_limit : {size_t{0}, size_t{32}, size_t{1} << 20}) {
        ScanOutcome out = scan_chunks(chunks, dir, keep_limit);
        expect_same_messages(
            reference, out, keep_limit,
            s.name + " chunk=" + std::to_string(chunk) + " keep=" + std::to_string(keep_limit));
        if (HasFatalFailure()) return;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Captures, CapturedSession, ::testing::ValuesIn(testing::session_names()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

TEST(CapturedSessions, AreThere) {
  // simple query, extended/binary, COPY, NOTICE and errors, auth, replication.
  EXPECT_GE(testing::session_names().size(), 10u);
}

}  // namespace
}  // namespace pgtandem::protocol

// Random and mutated input for every decoder and the scanner: nothing crashes, every view stays
// inside its input, every count agrees with what iteration yields. Fixed seed, 100,000 rounds.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "protocol/errors.h"
#include "protocol/framing.h"
#include "protocol/messages.h"
#include "protocol/startup.h"
#include "test_util.h"

namespace pgtandem::protocol {
namespace {

using testing::within;

class Checker {
 public:
  explicit Checker(std::string_view in) : in_(in) {}

  void view(std::string_view v) { EXPECT_TRUE(within(v, in_)); }

  void values(const ValueList& l) {
    view(l.raw());
    size_t n = 0;
    for (const Value& v : l) {
      view(v.data);
      if (v.is_null) {
        EXPECT_TRUE(v.data.empty());
      }
      ++n;
    }
    EXPECT_EQ(n, l.size());
  }
  void int16s(const Int16List& l) {
    view(l.raw());
    EXPECT_EQ(l.raw().size() % 2, 0u);
    for (size_t i = 0; i < l.size(); ++i) (void)l[i];
  }
  void uint32s(const Uint32List& l) {
    view(l.raw());
    EXPECT_EQ(l.raw().size() % 4, 0u);
    for (size_t i = 0; i < l.size(); ++i) (void)l[i];
  }
  void strings(const StringList& l) {
    view(l.raw());
    size_t n = 0;
    for (std::string_view s : l) {
      view(s);
      ++n;
    }
    EXPECT_EQ(n, l.size());
  }
  void fields(const FieldList& l) {
    view(l.raw());
    for (const Field& f : l) {
      EXPECT_NE(f.code, '\0');
      view(f.value);
    }
    view(l.find('M'));
  }

  // Runs every decoder over `body` and checks what the successful ones return.
  void all_decoders() {
    std::string_view body = in_;
    std::string out;
    auto reencode = [&](const auto& m) {
      out.clear();
      encode(out, m);
      EXPECT_EQ(std::string_view(out).substr(kHeaderSize), body);
    };
    {
      Authentication m;
      if (decode(body, m)) {
        view(m.data);
        strings(m.sasl_mechanisms());
        reencode(m);
      }
    }
    {
      BackendKeyData m;
      if (decode(body, m)) reencode(m);
    }
    {
      CommandComplete m;
      if (decode(body, m)) {
        view(m.tag);
        uint64_t rows;
        command_tag_rows(m.tag, rows);
        view(command_tag_name(m.tag));
        reencode(m);
      }
    }
    {
      CopyData m;
      if (decode(body, m)) {
        view(m.data);
        reencode(m);
      }
    }
    {
      CopyInResponse m;
      if (decode(body, m)) {
        int16s(m.column_formats);
        reencode(m);
      }
    }
    {
      CopyOutResponse m;
      if (decode(body, m)) {
        int16s(m.column_formats);
        reencode(m);
      }
    }
    {
      CopyBothResponse m;
      if (decode(body, m)) {
        int16s(m.column_formats);
        reencode(m);
      }
    }
    {
      DataRow m;
      if (decode(body, m)) {
        values(m.columns);
        reencode(m);
      }
    }
    {
      ErrorResponse m;
      if (decode(body, m)) {
        fields(m.fields);
        view(m.severity_nonlocalized());
        view(m.sqlstate());
        reencode(m);
      }
    }
    {
      NoticeResponse m;
      if (decode(body, m)) {
        fields(m.fields);
        reencode(m);
      }
    }
    {
      FunctionCallResponse m;
      if (decode(body, m)) {
        view(m.result.data);
        reencode(m);
      }
    }
    {
      NegotiateProtocolVersion m;
      if (decode(body, m)) {
        strings(m.unrecognized_options);
        reencode(m);
      }
    }
    {
      NotificationResponse m;
      if (decode(body, m)) {
        view(m.channel);
        view(m.payload);
        reencode(m);
      }
    }
    {
      ParameterDescription m;
      if (decode(body, m)) {
        uint32s(m.type_oids);
        reencode(m);
      }
    }
    {
      ParameterStatus m;
      if (decode(body, m)) {
        view(m.name);
        view(m.value);
        reencode(m);
      }
    }
    {
      ReadyForQuery m;
      if (decode(body, m)) reencode(m);
    }
    {
      RowDescription m;
      if (decode(body, m)) {
        view(m.raw());
        size_t n = 0;
        for (const ColumnDescription& c : m) {
          view(c.name);
          ++n;
        }
        EXPECT_EQ(n, m.size());
        reencode(m);
      }
    }
    {
      Bind m;
      if (decode(body, m)) {
        view(m.portal);
        view(m.statement);
        int16s(m.param_formats);
        values(m.params);
        int16s(m.result_formats);
        reencode(m);
      }
    }
    {
      Close m;
      if (decode(body, m)) {
        view(m.name);
        reencode(m);
      }
    }
    {
      Describe m;
      if (decode(body, m)) {
        view(m.name);
        reencode(m);
      }
    }
    {
      CopyFail m;
      if (decode(body, m)) {
        view(m.message);
        reencode(m);
      }
    }
    {
      Execute m;
      if (decode(body, m)) {
        view(m.portal);
        reencode(m);
      }
    }
    {
      FunctionCall m;
      if (decode(body, m)) {
        int16s(m.arg_formats);
        values(m.args);
        reencode(m);
      }
    }
    {
      Parse m;
      if (decode(body, m)) {
        view(m.name);
        view(m.query);
        uint32s(m.param_types);
        reencode(m);
      }
    }
    {
      Query m;
      if (decode(body, m)) {
        view(m.sql);
        reencode(m);
      }
    }
    {
      PasswordMessage m;
      if (decode(body, m)) {
        view(m.password);
        reencode(m);
      }
    }
    {
      SaslInitialResponse m;
      if (decode(body, m)) {
        view(m.mechanism);
        view(m.data.data);
        reencode(m);
      }
    }
    {
      SaslResponse m;
      if (decode(body, m)) reencode(m);
    }
    {
      GssResponse m;
      if (decode(body, m)) reencode(m);
    }
    {
      Sync m;
      if (decode(body, m)) reencode(m);
    }
    for (int t = 0; t < 256; ++t) {
      well_formed(Direction::kFrontend, static_cast<char>(t), body);
      well_formed(Direction::kBackend, static_cast<char>(t), body);
    }
  }

  void startup() {
    std::string_view buf = in_;
    StartupFrame f = decode_startup_frame(buf);
    if (f.status == Status::kComplete) {
      EXPECT_GE(f.length, kMinStartupPacketLength);
      EXPECT_LE(f.length, kMaxStartupPacketWireLength);
    }
    StartupMessage m;
    StartupError e = parse_startup_message(buf, m);
    for (const auto& [k, v] : m.params) {
      view(k);
      view(v);
    }
    for (const auto& [k, v] : m.protocol_options) {
      view(k);
      view(v);
      EXPECT_TRUE(k.starts_with("_pq_."));
    }
    view(m.replication_value);
    std::string answer;
    answer_startup_error(e, m, answer);
    if (e == StartupError::kNone) {
      std::string again;
      encode_startup_message(again, m);
      EXPECT_EQ(again.size(), buf.size());
    }
    CancelRequest c;
    if (parse_cancel_request(buf, c)) {
      std::string again;
      encode_cancel_request(again, c);
      EXPECT_EQ(again, buf);
    }
  }

  void headers() {
    for (Direction dir : {Direction::kFrontend, Direction::kBackend}) {
      for (Limits limits : {Limits{}, Limits{.max_message_size = 64}}) {
        HeaderResult h = decode_header(in_, dir, limits);
        if (h.status == Status::kComplete) {
          EXPECT_GE(h.header.length, 4u);
          EXPECT_LE(h.header.length, limits.max_message_size);
        }
        std::string answer;
        answer_frame_error(h.error, h.header, answer);
      }
    }
  }

 private:
  std::string_view in_;
};

// Scans `stream` in random chunks and checks the scanner's bookkeeping.
void scan_randomly(std::string_view stream, Direction dir, size_t keep_limit, std::mt19937& rng) {
  FrameScanner scanner(dir, Limits{.max_message_size = 1u << 20}, keep_limit);
  std::string pending;
  size_t pos = 0;
  size_t forwarded = 0;
  struct Visitor {
    std::string_view* data;
    bool on_message(const Header& h, std::string_view body) {
      EXPECT_TRUE(within(body, *data));
      EXPECT_EQ(body.size(), h.body_size());
      return true;
    }
    bool on_stream_start(const Header& h) {
      EXPECT_GE(h.length, 4u);
      return true;
    }
  };
  while (pos < stream.size()) {
    size_t n = std::uniform_int_distribution<size_t>(1, 64)(rng);
    pending.append(stream.substr(pos, n));
    pos += n;
    std::string_view data = pending;
    Visitor v{&data};
    FrameScanner::Result r = scanner.scan(data, v);
    ASSERT_LE(r.forward, pending.size());
    forwarded += r.forward;
    pending.erase(0, r.forward);
    if (r.status == Status::kInvalid) return;
    // Nothing kept back may be a whole message, or a partial one larger than keep_limit.
    if (pending.size() >= kHeaderSize && scanner.at_boundary()) {
      HeaderResult h = decode_header(pending, dir, Limits{.max_message_size = 1u << 20});
      ASSERT_EQ(h.status, Status::kComplete);
      ASSERT_LT(pending.size(), h.header.frame_size());
      ASSERT_LE(h.header.frame_size(), keep_limit);
    }
  }
  EXPECT_LE(forwarded, stream.size());
}

std::string mutate(std::string s, std::mt19937& rng) {
  std::uniform_int_distribution<int> byte(0, 255);
  int edits = std::uniform_int_distribution<int>(1, 4)(rng);
  for (int i = 0; i < edits; ++i) {
    int op = std::uniform_int_distribution<int>(0, 5)(rng);
    size_t at = s.empty() ? 0 : std::uniform_int_distribution<size_t>(0, s.size() - 1)(rng);
    switch (op) {
      case 0:
        if (!s.empty()) s[at] = static_cast<char>(byte(rng));
        break;
      case 1:
        s.insert(s.begin() + static_cast<std::ptrdiff_t>(at), static_cast<char>(byte(rng)));
        break;
      case 2:
        if (!s.empty()) s.erase(at, 1);
        break;
      case 3:
        s.resize(at);
        break;
      case 4:  // interesting values: NUL, -1 lengths, big lengths
        if (s.size() >= at + 4) {
          static const char* kWords[] = {"\xff\xff\xff\xff", "\x7f\xff\xff\xff", "\0\0\0\0",
                                         "\xff\xff\xff\xfe", "\0\0\xff\xff"};
          s.replace(at, 4, kWords[std::uniform_int_distribution<int>(0, 4)(rng)], 4);
        }
        break;
      default:
        if (!s.empty()) s[at] = '\0';
        break;
    }
  }
  return s;
}

TEST(Random, HundredThousandInputs) {
  std::mt19937 rng(20261121);
  // Seeds: every captured message body and stream, plus the startup packets.
  std::vector<std::string> bodies;
  std::vector<std::string> streams;
  std::vector<std::string> packets;
  for (const std::string& name : testing::session_names()) {
    testing::Session s = testing::load_session(name);
    streams.emplace_back(s.frontend_messages());
    streams.emplace_back(s.backend_messages());
    packets.push_back(s.frontend.substr(0, s.frontend_typed));
    for (const auto& m : testing::split_messages(s.frontend_messages()))
      bodies.emplace_back(m.body);
    for (const auto& m : testing::split_messages(s.backend_messages())) bodies.emplace_back(m.body);
  }
  ASSERT_FALSE(bodies.empty());
  std::uniform_int_distribution<int> byte(0, 255);

  for (int i = 0; i < 100000; ++i) {
    std::string input;
    int kind = i % 4;
    if (kind == 0) {
      size_t n = std::uniform_int_distribution<size_t>(0, 48)(rng);
      for (size_t j = 0; j < n; ++j) input.push_back(static_cast<char>(byte(rng)));
    } else if (kind == 1 || kind == 2) {
      input = mutate(bodies[std::uniform_int_distribution<size_t>(0, bodies.size() - 1)(rng)], rng);
    } else {
      const std::string& p =
          packets[std::uniform_int_distribution<size_t>(0, packets.size() - 1)(rng)];
      input = mutate(p.substr(p.size() > 8 && (i & 8) ? 8 : 0), rng);
    }
    // An exact-size heap copy, so that AddressSanitizer catches any read past the end.
    std::unique_ptr<char[]> exact(new char[input.size() ? input.size() : 1]);
    std::memcpy(exact.get(), input.data(), input.size());
    Checker checker(std::string_view(exact.get(), input.size()));
    checker.all_decoders();
    checker.startup();
    checker.headers();
    if (HasFailure()) {
      ADD_FAILURE() << "round " << i;
      return;
    }
    if (i % 50 == 0) {
      std::string stream =
          mutate(streams[std::uniform_int_distribution<size_t>(0, streams.size() - 1)(rng)], rng);
      for (Direction dir : {Direction::kFrontend, Direction::kBackend}) {
        scan_randomly(stream, dir, std::uniform_int_distribution<size_t>(0, 200)(rng), rng);
      }
      std::string noise;
      for (int j = 0; j < 200; ++j) noise.push_back(static_cast<char>(byte(rng)));
      scan_randomly(noise, Direction::kBackend, 64, rng);
      if (HasFailure()) return;
    }
  }
}

}  // namespace
}  // namespace pgtandem::protocol

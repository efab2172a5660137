// libFuzzer target: the wire codec must not crash, read out of range, or break its invariants on
// any input. The first byte picks what the rest is fed to:
//   0: a frontend stream (FrameScanner, then every decoder for each whole message)
//   1: a backend stream (same)
//   2: the startup phase (decode_startup_frame, parse_startup_message, CancelRequest, answers)
//   3: one message body, to every decoder
// The second byte of modes 0 and 1 seeds the chunking and keep_limit.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "protocol/errors.h"
#include "protocol/framing.h"
#include "protocol/messages.h"
#include "protocol/startup.h"

namespace pgtandem::protocol {
namespace {

#define FUZZ_CHECK(cond)                                                     \
  do {                                                                       \
    if (!(cond)) {                                                           \
      std::fprintf(stderr, "check failed: %s (line %d)\n", #cond, __LINE__); \
      std::abort();                                                          \
    }                                                                        \
  } while (0)

std::string_view g_input;

void view(std::string_view v) {
  if (v.empty()) return;
  FUZZ_CHECK(v.data() >= g_input.data() && v.data() + v.size() <= g_input.data() + g_input.size());
}

void values(const ValueList& l) {
  view(l.raw());
  size_t n = 0;
  for (const Value& v : l) {
    view(v.data);
    ++n;
  }
  FUZZ_CHECK(n == l.size());
}

void strings(const StringList& l) {
  view(l.raw());
  size_t n = 0;
  for (std::string_view s : l) {
    view(s);
    ++n;
  }
  FUZZ_CHECK(n == l.size());
}

template <typename T>
void reencodes(std::string_view body, const T& m) {
  std::string out;
  encode(out, m);
  FUZZ_CHECK(out.size() == body.size() + kHeaderSize);
  FUZZ_CHECK(std::string_view(out).substr(kHeaderSize) == body);
}

void all_decoders(std::string_view body) {
  if (Authentication m; decode(body, m)) {
    view(m.data);
    strings(m.sasl_mechanisms());
    reencodes(body, m);
  }
  if (BackendKeyData m; decode(body, m)) reencodes(body, m);
  if (CommandComplete m; decode(body, m)) {
    uint64_t rows;
    command_tag_rows(m.tag, rows);
    view(command_tag_name(m.tag));
    reencodes(body, m);
  }
  if (CopyInResponse m; decode(body, m)) reencodes(body, m);
  if (CopyBothResponse m; decode(body, m)) reencodes(body, m);
  if (DataRow m; decode(body, m)) {
    values(m.columns);
    reencodes(body, m);
  }
  if (ErrorResponse m; decode(body, m)) {
    for (const Field& f : m.fields) view(f.value);
    view(m.sqlstate());
    reencodes(body, m);
  }
  if (FunctionCallResponse m; decode(body, m)) reencodes(body, m);
  if (NegotiateProtocolVersion m; decode(body, m)) {
    strings(m.unrecognized_options);
    reencodes(body, m);
  }
  if (NotificationResponse m; decode(body, m)) reencodes(body, m);
  if (ParameterDescription m; decode(body, m)) {
    for (size_t i = 0; i < m.type_oids.size(); ++i) (void)m.type_oids[i];
    reencodes(body, m);
  }
  if (ParameterStatus m; decode(body, m)) reencodes(body, m);
  if (ReadyForQuery m; decode(body, m)) reencodes(body, m);
  if (RowDescription m; decode(body, m)) {
    size_t n = 0;
    for (const ColumnDescription& c : m) {
      view(c.name);
      ++n;
    }
    FUZZ_CHECK(n == m.size());
    reencodes(body, m);
  }
  if (Bind m; decode(body, m)) {
    values(m.params);
    for (size_t i = 0; i < m.param_formats.size(); ++i) (void)m.param_formats[i];
    reencodes(body, m);
  }
  if (Close m; decode(body, m)) reencodes(body, m);
  if (Describe m; decode(body, m)) reencodes(body, m);
  if (CopyFail m; decode(body, m)) reencodes(body, m);
  if (Execute m; decode(body, m)) reencodes(body, m);
  if (FunctionCall m; decode(body, m)) {
    values(m.args);
    reencodes(body, m);
  }
  if (Parse m; decode(body, m)) {
    for (size_t i = 0; i < m.param_types.size(); ++i) (void)m.param_types[i];
    reencodes(body, m);
  }
  if (Query m; decode(body, m)) reencodes(body, m);
  if (PasswordMessage m; decode(body, m)) reencodes(body, m);
  if (SaslInitialResponse m; decode(body, m)) {
    view(m.data.data);
    reencodes(body, m);
  }
  if (Sync m; decode(body, m)) reencodes(body, m);
}

struct Visitor {
  Direction dir;
  std::string_view chunk;
  bool on_message(const Header& h, std::string_view body) {
    FUZZ_CHECK(body.size() == h.body_size());
    FUZZ_CHECK(body.empty() || (body.data() >= chunk.data() &&
                                body.data() + body.size() <= chunk.data() + chunk.size()));
    // Decode from an exact copy so that AddressSanitizer sees any overrun.
    std::string copy(body);
    std::string_view saved = g_input;
    g_input = copy;
    well_formed(dir, h.type, copy);
    all_decoders(copy);
    g_input = saved;
    return true;
  }
  bool on_stream_start(const Header& h) {
    FUZZ_CHECK(h.length >= 4);
    return true;
  }
};

void scan_stream(Direction dir, uint8_t seed, std::string_view data) {
  Limits limits{.max_message_size = 1u << 16};
  size_t keep_limit = (seed & 0x0f) * 64;
  FrameScanner scanner(dir, limits, keep_limit);
  std::string pending;
  size_t pos = 0;
  uint32_t rng = seed * 2654435761u + 1;
  while (pos < data.size()) {
    rng = rng * 1103515245u + 12345u;
    size_t n = 1 + (rng >> 16) % 97;
    pending.append(data.substr(pos, n));
    pos += n;
    Visitor v{dir, pending};
    FrameScanner::Result r = scanner.scan(pending, v);
    FUZZ_CHECK(r.forward <= pending.size());
    if (r.status == Status::kInvalid) {
      FUZZ_CHECK(r.error != FrameError::kNone);
      std::string answer;
      answer_frame_error(r.error, r.bad_header, answer);
      return;
    }
    pending.erase(0, r.forward);
    if (scanner.at_boundary() && pending.size() >= kHeaderSize) {
      HeaderResult h = decode_header(pending, dir, limits);
      FUZZ_CHECK(h.status == Status::kComplete);
      FUZZ_CHECK(h.header.frame_size() > pending.size());
      FUZZ_CHECK(h.header.frame_size() <= keep_limit);
    }
  }
}

void startup_phase(std::string_view data) {
  StartupFrame f = decode_startup_frame(data);
  std::string answer;
  if (f.status != Status::kComplete) {
    answer_startup_error(f.error, {}, answer);
    return;
  }
  FUZZ_CHECK(f.length >= kMinStartupPacketLength && f.length <= kMaxStartupPacketWireLength);
  std::string_view packet = data.substr(0, f.length);
  StartupKind kind = classify_startup_code(f.code, data.size() & 1, data.size() & 2);
  check_after_encryption_request(kind, data.size() - packet.size());
  CancelRequest c;
  if (parse_cancel_request(packet, c)) {
    std::string again;
    encode_cancel_request(again, c);
    FUZZ_CHECK(again == packet);
  }
  StartupMessage m;
  StartupError e = parse_startup_message(packet, m);
  for (const auto& [k, v] : m.params) {
    view(k);
    view(v);
  }
  for (const auto& [k, v] : m.protocol_options) {
    view(k);
    view(v);
  }
  view(m.replication_value);
  view(m.database());
  answer_startup_error(e, m, answer);
  if (e == StartupError::kNone) {
    std::string again;
    encode_startup_message(again, m);
    FUZZ_CHECK(again.size() == packet.size());
    encode_negotiation_answer(answer, m);
  }
}

}  // namespace
}  // namespace pgtandem::protocol

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace pgtandem::protocol;
  if (size < 2) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data) + 2, size - 2);
  g_input = rest;
  switch (data[0] & 3) {
    case 0:
      scan_stream(Direction::kFrontend, data[1], rest);
      break;
    case 1:
      scan_stream(Direction::kBackend, data[1], rest);
      break;
    case 2:
      startup_phase(rest);
      break;
    default:
      for (Direction dir : {Direction::kFrontend, Direction::kBackend}) {
        decode_header(rest, dir, {});
        well_formed(dir, static_cast<char>(data[1]), rest);
      }
      all_decoders(rest);
      break;
  }
  return 0;
}

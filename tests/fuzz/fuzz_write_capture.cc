// libFuzzer target: WriteCapture (policy/mirror/write_capture.h) fed a session's frontend and
// backend messages, interleaved as the input says. It must not crash, and:
//   - every unit released is made of whole frontend messages, each one the client sent (or the
//     Sync / ROLLBACK the capture adds), and is released only by a ReadyForQuery;
//   - a unit expects at least one ReadyForQuery and no more than its Query and Sync messages
//     produce (Query, Sync, FunctionCall), so the mirror never waits for an answer that cannot come;
//   - on_backend() reports every release and skip; at most kMaxPendingSkips skips are kept;
//   - stats().released counts the units released; counters never go down;
//   - in_transaction() follows the last ReadyForQuery's status.
//
// Input: the first byte sets options (bit 0: standard_conforming_strings off, bit 1: a cache,
// bit 2: unknown functions are reads). Then records: a tag byte, [a raw type byte], a length byte
// (two with tag bit 5), the body.
//   tag bit 7: backend (else frontend); bit 6: the type is the next byte (else from a table of
//   the types that matter, by the tag's low bits); a backend message the session would pass as an
//   ErrorResponse whose body was too large to see (on_stream_start) when the tag's bit 4 is set.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "policy/mirror/write_capture.h"
#include "policy/sql/classifier_cache.h"
#include "protocol/framing.h"
#include "protocol/message_types.h"
#include "protocol/messages.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using namespace pgtandem;
namespace fe = protocol::frontend;
namespace be = protocol::backend;

constexpr char kFrontendTypes[] = {fe::kQuery,       fe::kParse,    fe::kBind,  fe::kExecute,
                                   fe::kDescribe,    fe::kSync,     fe::kFlush, fe::kClose,
                                   fe::kCopyData,    fe::kCopyDone, fe::kCopyFail,
                                   fe::kFunctionCall, fe::kTerminate};
// What the session hands to on_backend (proxy/session/session.cc).
constexpr char kBackendTypes[] = {be::kReadyForQuery, be::kCommandComplete, be::kErrorResponse,
                                  be::kParseComplete, be::kCloseComplete,   be::kCopyInResponse};

struct Totals {
  policy::CaptureStats last{};
  uint64_t units = 0;
};

// Splits `bytes` into whole frontend messages; each must be one the client sent or one the
// capture makes. Returns how many ReadyForQuery answers they produce (Query and Sync).
uint32_t check_messages(std::string_view bytes, const std::set<std::string>& sent) {
  std::string sync, rollback;
  protocol::encode(sync, protocol::Sync{});
  protocol::encode(rollback, protocol::Query{"ROLLBACK"});
  uint32_t answers = 0;
  while (!bytes.empty()) {
    protocol::HeaderResult h = protocol::decode_header(bytes, protocol::Direction::kFrontend, {});
    FUZZ_CHECK(h.status == protocol::Status::kComplete);
    FUZZ_CHECK(h.header.frame_size() <= bytes.size());
    const std::string message(bytes.substr(0, h.header.frame_size()));
    FUZZ_CHECK(message == sync || message == rollback || sent.count(message) == 1);
    if (h.header.type == fe::kQuery || h.header.type == fe::kSync ||
        h.header.type == fe::kFunctionCall) {
      ++answers;
    }
    bytes.remove_prefix(h.header.frame_size());
  }
  return answers;
}

void check_stats(const policy::WriteCapture& c, Totals& t) {
  const policy::CaptureStats& s = c.stats();
  FUZZ_CHECK(s.released >= t.last.released && s.skipped_rollback >= t.last.skipped_rollback &&
             s.skipped_read >= t.last.skipped_read && s.nondeterministic >= t.last.nondeterministic &&
             s.skipped_primary_only >= t.last.skipped_primary_only);
  FUZZ_CHECK(s.released == t.units);
  FUZZ_CHECK(s.nondeterministic <= s.released);
  t.last = s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t options = data[0];
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);

  policy::ClassificationCache cache;
  policy::WriteCapture::Options o;
  o.classifier.standard_conforming_strings = !(options & 1);
  o.classifier.unknown_function_is_write = !(options & 4);
  if (options & 2) o.cache = &cache;
  o.max_sql_in_unit = 16 + options % 64;
  policy::WriteCapture capture(o);

  std::set<std::string> sent;
  Totals totals;
  std::optional<char> status;  // the last ReadyForQuery's, once one decoded
  const auto now = std::chrono::steady_clock::now();
  while (in.size() >= 2) {
    const uint8_t tag = static_cast<uint8_t>(in[0]);
    in.remove_prefix(1);
    const bool backend = tag & 0x80;
    char type;
    if (tag & 0x40) {
      type = in[0];
      in.remove_prefix(1);
    } else if (backend) {
      type = kBackendTypes[(tag & 0x0f) % sizeof(kBackendTypes)];
    } else {
      type = kFrontendTypes[(tag & 0x0f) % sizeof(kFrontendTypes)];
    }
    if (in.empty()) break;
    size_t len = static_cast<uint8_t>(in[0]);
    in.remove_prefix(1);
    if ((tag & 0x20) && !in.empty()) {
      len = len << 8 | static_cast<uint8_t>(in[0]);
      in.remove_prefix(1);
    }
    if (len > in.size()) len = in.size();
    const std::string_view body = in.substr(0, len);
    in.remove_prefix(len);

    protocol::Header h{type, static_cast<uint32_t>(body.size() + 4)};
    if (!backend) {
      std::string message(1, type);
      const uint32_t length = h.length;
      for (int shift = 24; shift >= 0; shift -= 8) message += static_cast<char>(length >> shift);
      message.append(body);
      sent.insert(message);
      capture.on_frontend(h, message);
      FUZZ_CHECK(capture.take().empty());  // only a ReadyForQuery releases
      check_stats(capture, totals);
      continue;
    }
    const bool stream_start = (tag & 0x10) && type == be::kErrorResponse;
    // A copy, so that AddressSanitizer sees any read past the body.
    const std::string copy(stream_start ? std::string_view{} : body);
    const bool reported = capture.on_backend(h, copy, type == be::kReadyForQuery ? now
                                                                                : decltype(now){});
    std::vector<policy::MirrorUnit> units = capture.take();
    std::vector<policy::PrimaryOnlySkip> skips = capture.take_skips();
    FUZZ_CHECK(skips.size() <= policy::WriteCapture::kMaxPendingSkips);
    if (!units.empty() || !skips.empty()) FUZZ_CHECK(reported);
    if (!units.empty()) FUZZ_CHECK(type == be::kReadyForQuery);
    for (const policy::MirrorUnit& u : units) {
      FUZZ_CHECK(u.responses >= 1);
      FUZZ_CHECK(check_messages(u.bytes, sent) >= u.responses);
      FUZZ_CHECK(u.primary_done == now);
      FUZZ_CHECK(!(u.session_state && u.writes));
    }
    totals.units += units.size();
    check_stats(capture, totals);
    if (type == be::kReadyForQuery) {
      protocol::ReadyForQuery z;
      if (protocol::decode(copy, z)) status = z.status;
    }
    if (status) FUZZ_CHECK(capture.in_transaction() == (*status != 'I'));
  }
  return 0;
}

// libFuzzer target: AnswerMatch (policy/mirror/answer_match.h), the mirror link's reading of the
// target's answers, fed any bytes as a server would send them. It must not crash, and:
//   - fed in pieces (cut where the input says, what was not used fed again with the next piece),
//     it reads exactly what it reads fed the whole: the same step, bytes used, answers, status;
//   - it never uses more bytes than it was given, and stops right after the last ReadyForQuery;
//   - expecting the very answers it read (as one unit, or spread over several), they all match and
//     nothing is written; expecting them with one changed, they differ from that one on, and what
//     is written is every answer read, in order.
//
// Input: byte 0: the ReadyForQuery count to wait for (1-4, low 2 bits), how many units the
// expected answers are spread over (bits 2-3), which answer to change (bits 4-7, 15: none);
// byte 1 seeds where the pieces are cut; the rest is the server's bytes.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "policy/mirror/answer_match.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using namespace pgtandem;
using policy::AnswerMatch;
using policy::MirrorUnit;
using policy::Outcome;

struct Read {
  AnswerMatch::Step step = AnswerMatch::Step::kMore;
  size_t used = 0;
  std::vector<Outcome> out;
  bool all_matched = false;
  size_t matched = 0;
  char status = 'I';
};

Read read(std::string_view bytes, uint32_t responses, const std::vector<MirrorUnit>* expected,
          uint8_t cut_seed) {
  AnswerMatch m{protocol::Limits{}};
  Read r;
  m.start(responses, expected, &r.out);
  std::string buffer;
  size_t at = 0;
  uint32_t x = cut_seed | 1u;
  while (true) {
    size_t piece = bytes.size() - at;
    if (cut_seed != 0) {
      x = x * 1103515245u + 12345u;
      piece = std::min<size_t>(piece, 1 + (x >> 16) % 64);
    }
    buffer.append(bytes.substr(at, piece));
    at += piece;
    size_t used = 0;
    r.step = m.feed(buffer, &used);
    FUZZ_CHECK(used <= buffer.size());
    r.used += used;
    buffer.erase(0, used);
    if (r.step != AnswerMatch::Step::kMore || at == bytes.size()) break;
  }
  r.all_matched = m.all_matched();
  r.matched = m.matched();
  r.status = m.status();
  return r;
}

// `answers` spread over `units` units, in order (the last takes what is left).
std::vector<MirrorUnit> spread(const std::vector<Outcome>& answers, size_t units) {
  std::vector<MirrorUnit> out(units);
  for (size_t i = 0; i < answers.size(); ++i) {
    out[(i * units) / (answers.size() + 1)].primary.push_back(answers[i]);
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint32_t responses = 1 + (data[0] & 3);
  const size_t units = 1 + ((data[0] >> 2) & 3);
  const size_t change = data[0] >> 4;
  const uint8_t cut_seed = data[1];
  // At most kKeepLimit bytes: a message larger than that is then streamed whole or cut alike (one
  // that fits in a read is decoded, one that does not is only its header: an error that large
  // counts as XX000 either way only when it is streamed, which the pieces could not match).
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 2,
                               std::min(size - 2, AnswerMatch::kKeepLimit));

  // Every answer written: what the server said.
  const Read whole = read(bytes, responses, nullptr, 0);
  FUZZ_CHECK(whole.used <= bytes.size());
  FUZZ_CHECK(!whole.all_matched);
  const Read pieces = read(bytes, responses, nullptr, cut_seed);
  FUZZ_CHECK(pieces.step == whole.step);
  FUZZ_CHECK(pieces.used == whole.used);
  FUZZ_CHECK(pieces.out == whole.out);
  FUZZ_CHECK(pieces.status == whole.status);

  // Expecting exactly those answers: all match, nothing written.
  const std::vector<MirrorUnit> same = spread(whole.out, units);
  const Read matched = read(bytes, responses, &same, cut_seed);
  FUZZ_CHECK(matched.step == whole.step);
  FUZZ_CHECK(matched.all_matched);
  FUZZ_CHECK(matched.out.empty());
  FUZZ_CHECK(matched.matched == whole.out.size());

  // One of them changed: every answer is written, the same as without expectations.
  if (change < whole.out.size()) {
    std::vector<Outcome> other = whole.out;
    Outcome& o = other[change];
    if (o.is_error()) {
      o.sqlstate += "0";
    } else {
      o.tag += "?";
    }
    const std::vector<MirrorUnit> changed = spread(other, units);
    const Read differs = read(bytes, responses, &changed, cut_seed);
    FUZZ_CHECK(differs.step == whole.step);
    FUZZ_CHECK(!differs.all_matched);
    FUZZ_CHECK(differs.out == whole.out);
  }
  return 0;
}

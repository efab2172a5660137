// The mirror target's answers to one request, read as they arrive and compared with the primary's.
//
// A request the mirror link sends (one unit, or several joined: policy/mirror/mirror_batch.h) is
// answered with one outcome per statement (a CommandComplete tag, or an ErrorResponse's SQLSTATE)
// and ends with its last ReadyForQuery. Given the units the request applies, each answer is
// compared with the next outcome the primary had, as it is read, and answers are written out only
// from the first difference on (the matched ones first): a request whose answers all match, the
// usual case, builds nothing. Without units to expect, every answer is written.
//
// Pure: the link (proxy/mirror/mirror_link.cc) reads the socket and feeds the bytes. The scan is a
// plain loop over whole messages, out of the link's coroutine frame, and compares the usual answer
// (the primary's tag) without decoding it first: ~1.1k instructions per mirrored TPC-B transaction
// where the link's generic scan inside its coroutine took ~1.8k (BM_AnswersTpcbPrepared in
// bench/micro/write_capture_bench.cc measures it alone).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "policy/mirror/write_capture.h"
#include "protocol/framing.h"

namespace pgtandem::policy {

class AnswerMatch {
 public:
  // A message larger than this that is not whole in the bytes fed is streamed: its header is read
  // and its body skipped as it arrives (an error that large counts as SQLSTATE XX000). Smaller
  // ones are kept back until whole, so the caller's buffer must hold at least this much.
  static constexpr size_t kKeepLimit = 8 * 1024;

  explicit AnswerMatch(protocol::Limits limits) : limits_(limits) {}

  // A new request, answered by `responses` ReadyForQuery messages. `expected`: the units whose
  // primary outcomes the answers should equal, in order; nullptr: none (every answer is written).
  // `out` is cleared, and must outlive the request; so must `expected`.
  void start(uint32_t responses, const std::vector<MirrorUnit>* expected,
             std::vector<Outcome>* out);

  enum class Step : uint8_t { kMore, kDone, kInvalid };
  // Reads the whole messages at the start of `data` (and what it holds of a streamed one);
  // `*used`: the bytes consumed, the rest must be fed again, followed by what comes next. kDone
  // once the last ReadyForQuery was read (nothing after it is consumed); kInvalid when the framing
  // is broken (a type byte no server sends, a length out of bounds).
  Step feed(std::string_view data, size_t* used);

  bool done() const { return remaining_ == 0; }
  char status() const { return status_; }  // of the last ReadyForQuery read; 'I' before one
  // True while every answer read equals the expected one at its place: `out` then holds nothing,
  // and the answers are the first matched() expected outcomes, in order.
  bool all_matched() const { return !written_; }
  size_t matched() const { return matched_; }
  // Writes the matched answers to `out`, and every later one goes there too: what the answers
  // read before a break were. Once only; nothing when a difference already wrote them.
  void write_matched();

 private:
  // True, and counted, when the answer is the next expected one (the caller writes it otherwise).
  bool take_expected(std::string_view tag, std::string_view sqlstate);
  void answer(std::string_view tag, std::string_view sqlstate);
  const Outcome* next_expected();

  protocol::Limits limits_;
  const std::vector<MirrorUnit>* expected_ = nullptr;
  std::vector<Outcome>* out_ = nullptr;
  size_t unit_ = 0;   // the next expected outcome: (*expected_)[unit_].primary[index_]
  size_t index_ = 0;
  size_t matched_ = 0;
  bool written_ = true;
  char status_ = 'I';
  uint32_t remaining_ = 0;  // ReadyForQuery messages still to come
  uint64_t skip_ = 0;       // bytes of a streamed message still to come
};

}  // namespace pgtandem::policy

// AnswerMatch (policy/mirror/answer_match.h): the target's answers, compared as they are read.
#include "policy/mirror/answer_match.h"

#include <cstring>

#include "protocol/message_types.h"
#include "protocol/messages.h"

namespace pgtandem::policy {

namespace be = protocol::backend;

namespace {

// a == b, for the short strings a command tag is: two 8-byte loads each up to 16 bytes (what
// memcmp costs in a call is most of the comparison here), memcmp beyond.
bool same(std::string_view a, std::string_view b) {
  const size_t n = a.size();
  if (n != b.size()) return false;
  if (n < 8) {
    for (size_t i = 0; i < n; ++i)
      if (a[i] != b[i]) return false;
    return true;
  }
  if (n > 16) return std::memcmp(a.data(), b.data(), n) == 0;
  uint64_t x0, y0, x1, y1;
  std::memcpy(&x0, a.data(), 8);
  std::memcpy(&y0, b.data(), 8);
  std::memcpy(&x1, a.data() + n - 8, 8);
  std::memcpy(&y1, b.data() + n - 8, 8);
  return ((x0 ^ y0) | (x1 ^ y1)) == 0;
}

}  // namespace

void AnswerMatch::start(uint32_t responses, const std::vector<MirrorUnit>* expected,
                        std::vector<Outcome>* out) {
  expected_ = expected;
  out_ = out;
  out_->clear();
  unit_ = 0;
  index_ = 0;
  matched_ = 0;
  written_ = expected == nullptr;
  status_ = 'I';
  remaining_ = responses;
  skip_ = 0;
}

const Outcome* AnswerMatch::next_expected() {
  while (unit_ < expected_->size()) {
    const auto& primary = (*expected_)[unit_].primary;
    if (index_ < primary.size()) return &primary[index_];
    ++unit_;
    index_ = 0;
  }
  return nullptr;
}

// (Inlined: the loop in feed() calls it once per answer.)
[[gnu::always_inline]] inline bool AnswerMatch::take_expected(std::string_view tag,
                                                               std::string_view sqlstate) {
  const Outcome* x = next_expected();
  if (x == nullptr || !same(x->tag, tag) || !same(x->sqlstate, sqlstate)) return false;
  ++index_;
  ++matched_;
  return true;
}

void AnswerMatch::answer(std::string_view tag, std::string_view sqlstate) {
  if (!written_) {
    if (take_expected(tag, sqlstate)) return;
    write_matched();
  }
  Outcome& o = out_->emplace_back();  // (built in place: no temporary to move)
  if (sqlstate.empty()) {
    o.tag.assign(tag);
  } else {
    o.sqlstate.assign(sqlstate);
  }
}

void AnswerMatch::write_matched() {
  if (written_) return;
  written_ = true;
  out_->clear();
  size_t left = matched_;
  for (const auto& unit : *expected_) {
    for (const auto& o : unit.primary) {
      if (left == 0) return;
      out_->push_back(o);
      --left;
    }
  }
}

AnswerMatch::Step AnswerMatch::feed(std::string_view data, size_t* used) {
  if (remaining_ == 0) {
    *used = 0;
    return Step::kDone;
  }
  const char* const p = data.data();
  const size_t n = data.size();
  size_t pos = 0;
  while (pos < n) {
    if (skip_ > 0) {  // the rest of a streamed message
      const size_t take = skip_ < n - pos ? skip_ : n - pos;
      pos += take;
      skip_ -= take;
      continue;
    }
    const protocol::HeaderResult h = protocol::decode_header(
        std::string_view(p + pos, n - pos), protocol::Direction::kBackend, limits_);
    if (h.status == protocol::Status::kNeedMore) break;
    if (h.status == protocol::Status::kInvalid) {
      *used = pos;
      return Step::kInvalid;
    }
    const size_t frame = h.header.frame_size();
    if (n - pos < frame) {
      if (frame <= kKeepLimit) break;  // small: kept back until it is whole
      if (h.header.type == be::kErrorResponse) answer({}, "XX000");
      skip_ = frame - (n - pos);
      pos = n;
      break;
    }
    const std::string_view body(p + pos + protocol::kHeaderSize, frame - protocol::kHeaderSize);
    pos += frame;
    switch (h.header.type) {
      case be::kCommandComplete: {
        // The usual answer: the tag the primary had. An expected tag holds no NUL (the capture
        // decoded it as below), so one equal to the body before its final NUL is a whole tag, and
        // the decode's search for a NUL inside it is not needed.
        if (!written_ && !body.empty() && body.back() == '\0' &&
            take_expected(std::string_view(body.data(), body.size() - 1), {})) {
          break;
        }
        protocol::CommandComplete cc;
        if (protocol::decode(body, cc)) answer(cc.tag, {});
        break;
      }
      case be::kErrorResponse: {
        // An error without a SQLSTATE (or one that does not decode) still counts as an error.
        protocol::ErrorResponse e;
        std::string_view code = protocol::decode(body, e) ? e.sqlstate() : std::string_view{};
        answer({}, code.empty() ? std::string_view("XX000") : code);
        break;
      }
      case be::kReadyForQuery:
        status_ = body.empty() ? 'I' : body[0];
        if (--remaining_ == 0) {
          *used = pos;
          return Step::kDone;
        }
        break;
      default:
        break;  // BindComplete, DataRow, NoticeResponse ...: not outcomes
    }
  }
  *used = pos;
  return Step::kMore;
}

}  // namespace pgtandem::policy

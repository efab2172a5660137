// Shared by the write_capture_*_test.cc files: how a capture is driven (one whole message at a
// time, as the session does), the table of client sequences and what they must release, the
// primary's whole answers, and reading bytes back. Message builders: tests/support/messages.h.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "policy/mirror/write_capture.h"
#include "protocol/framing.h"
#include "protocol/message_types.h"
#include "protocol/messages.h"
#include "tests/support/messages.h"
#include "tests/support/pgbench.h"

namespace pgtandem::policy::capture_test {

namespace proto = protocol;
using namespace pgtandem::test;  // NOLINT: the message builders
using Clock = std::chrono::steady_clock;

// ------------------------------------------------------------------------------------------------
// Whole answers of the primary

// The primary's whole answer to one simple Query: CommandComplete tags, then ReadyForQuery.
inline std::string done(std::string_view tag, char status) {
  return command_complete(tag) + ready(status);
}
inline std::string failed(std::string_view sqlstate, char status) {
  return error_response(sqlstate) + ready(status);
}
inline std::string rows(std::string_view value, char status) {
  return row_description("v") + data_row(value) + command_complete("SELECT 1") + ready(status);
}
// Answers to query_params / query_prepared / prepare.
inline std::string ext_done(std::string_view tag, char status) {
  return parse_complete() + bind_complete() + no_data() + done(tag, status);
}
inline std::string prepared_done(std::string_view tag, char status) {
  return bind_complete() + no_data() + done(tag, status);
}
inline std::string prepared_rows(std::string_view value, char status) {
  return bind_complete() + row_description("v") + data_row(value) + command_complete("SELECT 1") +
         ready(status);
}
inline std::string prepare_done(char status) { return parse_complete() + ready(status); }

inline Outcome ok(std::string tag) { return Outcome{std::move(tag), {}}; }
inline Outcome err(std::string sqlstate) { return Outcome{{}, std::move(sqlstate)}; }

// ------------------------------------------------------------------------------------------------
// Reading bytes back

struct Message {
  proto::Header header;
  std::string_view whole;
  std::string_view body;
};

// Whole messages of one direction; false if the bytes do not split into whole messages.
inline bool split(std::string_view bytes, proto::Direction dir, std::vector<Message>* out) {
  while (!bytes.empty()) {
    auto h = proto::decode_header(bytes, dir, proto::Limits{});
    if (h.status != proto::Status::kComplete || bytes.size() < h.header.frame_size()) return false;
    out->push_back(Message{h.header, bytes.substr(0, h.header.frame_size()),
                           bytes.substr(proto::kHeaderSize, h.header.body_size())});
    bytes.remove_prefix(h.header.frame_size());
  }
  return true;
}

// Frontend bytes as a readable line, for failure messages.
inline std::string render(std::string_view bytes) {
  std::vector<Message> messages;
  const bool whole = split(bytes, proto::Direction::kFrontend, &messages);
  std::string out;
  for (const auto& m : messages) {
    if (!out.empty()) out += ' ';
    switch (m.header.type) {
      case proto::frontend::kQuery: {
        proto::Query q;
        out += proto::decode(m.body, q) ? "Q(" + std::string(q.sql) + ")" : "Q(?)";
        break;
      }
      case proto::frontend::kParse: {
        proto::Parse p;
        out += proto::decode(m.body, p)
                   ? "P(" + std::string(p.name) + ": " + std::string(p.query) + ")"
                   : "P(?)";
        break;
      }
      case proto::frontend::kBind: {
        proto::Bind b;
        std::string params;
        if (proto::decode(m.body, b)) {
          for (const auto& v : b.params) params += "," + std::string(v.data);
          out += "B(" + std::string(b.statement) + params + ")";
        } else {
          out += "B(?)";
        }
        break;
      }
      case proto::frontend::kClose: {
        proto::Close c;
        out += proto::decode(m.body, c)
                   ? "C(" + std::string(1, c.target) + ":" + std::string(c.name) + ")"
                   : "C(?)";
        break;
      }
      case proto::frontend::kCopyData:
        out += "d(" + std::string(m.body) + ")";
        break;
      default:
        out += std::string(1, m.header.type);
        break;
    }
  }
  if (!whole) out += " <not whole messages>";
  return out;
}

inline std::string render(const std::vector<Outcome>& outcomes) {
  std::string out;
  for (const auto& o : outcomes) {
    if (!out.empty()) out += ", ";
    out += o.is_error() ? "E:" + o.sqlstate : o.tag;
  }
  return "[" + out + "]";
}

// ------------------------------------------------------------------------------------------------
// Driving a capture the way the session does: one whole message at a time, taking released units
// after every backend message.

inline const Clock::time_point kNow = Clock::time_point(std::chrono::seconds(1000));

struct Step {
  enum Kind { kFrontend, kBackend, kCheck } kind;
  std::string bytes;
  std::function<void(const WriteCapture&)> check;
};
inline Step fe(std::string bytes) { return Step{Step::kFrontend, std::move(bytes), nullptr}; }
inline Step be(std::string bytes) { return Step{Step::kBackend, std::move(bytes), nullptr}; }
inline Step check(std::function<void(const WriteCapture&)> f) {
  return Step{Step::kCheck, {}, std::move(f)};
}
// A whole request and its answer.
inline std::vector<Step> exchange(std::string request, std::string answer) {
  return {fe(std::move(request)), be(std::move(answer))};
}

class Driver {
 public:
  explicit Driver(WriteCapture::Options options = {}) : capture(std::move(options)) {}

  void run(const Step& step) {
    if (step.kind == Step::kCheck) {
      step.check(capture);
      return;
    }
    const bool frontend = step.kind == Step::kFrontend;
    std::vector<Message> messages;
    ASSERT_TRUE(split(step.bytes,
                      frontend ? proto::Direction::kFrontend : proto::Direction::kBackend,
                      &messages));
    for (const auto& m : messages) {
      if (frontend) {
        capture.on_frontend(m.header, m.whole);
        continue;
      }
      if (m.header.type == proto::backend::kReadyForQuery) {
        ++ready_seen;
        // Every ReadyForQuery answers a request the capture knows about.
        if (capture.outstanding() == 0) ++ready_unmatched;
      }
      const bool released = capture.on_backend(m.header, m.body, now);
      auto units = capture.take();
      auto skips = capture.take_skips();
      EXPECT_EQ(released, !units.empty() || !skips.empty());
      for (auto& u : units) this->units.push_back(std::move(u));
      for (auto& k : skips) this->skips.push_back(std::move(k));
    }
  }
  void run(const std::vector<Step>& steps) {
    for (const auto& s : steps) run(s);
  }

  WriteCapture capture;
  Clock::time_point now = kNow;
  std::vector<MirrorUnit> units;
  std::vector<PrimaryOnlySkip> skips;
  size_t ready_seen = 0;
  size_t ready_unmatched = 0;
};

// ------------------------------------------------------------------------------------------------
// The table

struct ExpectedUnit {
  std::string bytes;
  uint32_t responses = 1;
  std::vector<Outcome> primary = {};
  std::vector<std::string> binds = {};
  bool transaction = false;
  bool session_state = false;
  bool nondeterministic = false;
};

struct Case {
  std::string name;
  std::vector<Step> steps;
  std::vector<ExpectedUnit> units;
  CaptureStats stats;
  bool in_transaction = false;  // after the last step
  std::vector<PrimaryOnlySkip> skips = {};
};

inline std::vector<Step> operator+(std::vector<Step> a, const std::vector<Step>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}
inline std::vector<Step> operator+(std::vector<Step> a, Step b) {
  a.push_back(std::move(b));
  return a;
}

inline CaptureStats stats(uint64_t released, uint64_t skipped_rollback, uint64_t skipped_read,
                   uint64_t nondeterministic = 0, uint64_t skipped_primary_only = 0) {
  CaptureStats s;
  s.released = released;
  s.skipped_rollback = skipped_rollback;
  s.skipped_read = skipped_read;
  s.nondeterministic = nondeterministic;
  s.skipped_primary_only = skipped_primary_only;
  return s;
}


// Statements as the applications send them.
inline constexpr std::string_view kInsert = "INSERT INTO accounts (id, balance) VALUES (1, 100)";
inline constexpr std::string_view kInsert2 = "INSERT INTO accounts (id, balance) VALUES (2, 200)";
inline constexpr std::string_view kInsertParam = "INSERT INTO accounts (id, balance) VALUES ($1, $2)";
inline constexpr std::string_view kUpdate = "UPDATE accounts SET balance = balance + 1 WHERE id = 1";
inline constexpr std::string_view kUpdateParam =
    "UPDATE accounts SET balance = balance + $1 WHERE id = $2";
inline constexpr std::string_view kSelect = "SELECT balance FROM accounts WHERE id = 1";
inline constexpr std::string_view kSelectParam = "SELECT balance FROM accounts WHERE id = $1";
inline constexpr std::string_view kCopy = "COPY accounts (id, balance) FROM STDIN";

// pgbench's built-in TPC-B script: test::kTpcb (tests/support/pgbench.h).

// The table of client sequences, one function per group (write_capture_*_test.cc); all_cases()
// in write_capture_test.cc runs them all.
std::vector<Case> simple_protocol_cases();
std::vector<Case> session_state_cases();
std::vector<Case> nondeterministic_cases();
std::vector<Case> extended_protocol_cases();
std::vector<Case> pipelining_cases();
std::vector<Case> copy_cases();
std::vector<Case> other_cases();
std::vector<Case> primary_only_cases();

}  // namespace pgtandem::policy::capture_test

// Helpers shared by the protocol tests: captured sessions and a FrameScanner driver.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/framing.h"
#include "protocol/startup.h"

namespace pgtandem::protocol::testing {

inline std::string data_dir() { return PGTANDEM_TEST_DATA_DIR; }

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A session captured by data/capture.py: both directions, and where the typed messages start
// (after the untyped startup packets and the one-byte answers to SSL/GSS requests).
struct Session {
  std::string name;
  std::string frontend;
  std::string backend;
  size_t frontend_typed = 0;
  size_t backend_typed = 0;

  std::string_view frontend_messages() const {
    return std::string_view(frontend).substr(frontend_typed);
  }
  std::string_view backend_messages() const {
    return std::string_view(backend).substr(backend_typed);
  }
};

inline Session load_session(const std::string& name) {
  Session s;
  s.name = name;
  s.frontend = read_file(data_dir() + "/" + name + ".fe.bin");
  s.backend = read_file(data_dir() + "/" + name + ".be.bin");
  // Requests answered with one byte each, then the StartupMessage.
  size_t pos = 0;
  size_t answers = 0;
  bool ssl_done = false;
  bool gss_done = false;
  for (;;) {
    StartupFrame f = decode_startup_frame(std::string_view(s.frontend).substr(pos));
    if (f.status != Status::kComplete) break;
    StartupKind kind = classify_startup_code(f.code, ssl_done, gss_done);
    pos += f.length;
    if (kind == StartupKind::kSslRequest) {
      ssl_done = true;
      ++answers;
    } else if (kind == StartupKind::kGssEncRequest) {
      gss_done = true;
      ++answers;
    } else {
      break;
    }
  }
  s.frontend_typed = pos;
  s.backend_typed = answers;
  return s;
}

// The captured sessions (not the probes).
inline std::vector<std::string> session_names() {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(data_dir())) {
    std::string file = entry.path().filename().string();
    const std::string suffix = ".fe.bin";
    if (file.size() <= suffix.size() ||
        file.compare(file.size() - suffix.size(), suffix.size(), suffix) != 0) {
      continue;
    }
    if (file.rfind("probe_", 0) == 0) continue;
    names.push_back(file.substr(0, file.size() - suffix.size()));
  }
  std::sort(names.begin(), names.end());
  return names;
}

// A message split into header and body, for stream comparisons.
struct Message {
  char type = 0;
  uint32_t length = 0;
  std::string body;  // empty for a streamed message
  bool streamed = false;
  bool operator==(const Message&) const = default;
};

inline std::ostream& operator<<(std::ostream& os, const Message& m) {
  return os << "'" << m.type << "' len=" << m.length << (m.streamed ? " streamed" : "");
}

struct Recorder {
  std::vector<Message> messages;
  size_t stop_after = SIZE_MAX;

  bool on_message(const Header& h, std::string_view body) {
    messages.push_back(Message{h.type, h.length, std::string(body), false});
    return messages.size() < stop_after;
  }
  bool on_stream_start(const Header& h) {
    messages.push_back(Message{h.type, h.length, {}, true});
    return messages.size() < stop_after;
  }
};

// Drives a FrameScanner the way a session does: append each chunk to the unforwarded bytes,
// scan, drop what may be forwarded.
struct ScanOutcome {
  std::vector<Message> messages;
  size_t forwarded = 0;
  std::string pending;  // kept back at the end
  bool invalid = false;
  FrameError error = FrameError::kNone;
  bool at_boundary = true;
};

inline ScanOutcome scan_chunks(const std::vector<std::string_view>& chunks, Direction dir,
                               size_t keep_limit, Limits limits = {}) {
  FrameScanner scanner(dir, limits, keep_limit);
  Recorder rec;
  ScanOutcome out;
  for (std::string_view chunk : chunks) {
    out.pending.append(chunk);
    FrameScanner::Result r = scanner.scan(out.pending, rec);
    EXPECT_LE(r.forward, out.pending.size());
    out.forwarded += r.forward;
    out.pending.erase(0, r.forward);
    if (r.status == Status::kInvalid) {
      out.invalid = true;
      out.error = r.error;
      break;
    }
  }
  out.messages = std::move(rec.messages);
  out.at_boundary = scanner.at_boundary();
  return out;
}

inline ScanOutcome scan_whole(std::string_view data, Direction dir, size_t keep_limit = SIZE_MAX) {
  return scan_chunks({data}, dir, keep_limit);
}

// Every message of a stream known to be well framed.
struct RawMessage {
  char type;
  std::string_view body;
  std::string_view whole;
};

inline std::vector<RawMessage> split_messages(std::string_view data) {
  std::vector<RawMessage> out;
  size_t pos = 0;
  while (data.size() - pos >= kHeaderSize) {
    uint32_t len = read_u32(data.data() + pos + 1);
    if (len < 4 || data.size() - pos - 1 < len) break;
    out.push_back(RawMessage{data[pos], data.substr(pos + kHeaderSize, len - 4),
                             data.substr(pos, size_t{len} + 1)});
    pos += size_t{len} + 1;
  }
  return out;
}

inline bool within(std::string_view inner, std::string_view outer) {
  if (inner.empty()) return true;
  return inner.data() >= outer.data() && inner.data() + inner.size() <= outer.data() + outer.size();
}

}  // namespace pgtandem::protocol::testing

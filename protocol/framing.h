// Wire framing for the PostgreSQL v3 protocol: message headers, per-type size caps, and a scanner
// that tracks message boundaries across the chunks of a forwarded byte stream.
// Pure: bytes in, {Complete | NeedMore | Invalid, consumed} out. No sockets, no allocation.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace pgtandem::protocol {

enum class Status { kComplete, kNeedMore, kInvalid };

// Why a frame was rejected. Each maps to the answer the server itself would give (errors.h).
enum class FrameError : uint8_t {
  kNone,
  kLengthTooSmall,   // length field < 4
  kLengthTooLarge,   // length field > the cap for this message type
  kUnknownType,      // frontend message type the server does not know
};

// Server limits (src/include/libpq/libpq.h): PQ_SMALL_MESSAGE_LIMIT and PQ_LARGE_MESSAGE_LIMIT.
inline constexpr uint32_t kSmallMessageLimit = 10000;
inline constexpr uint32_t kLargeMessageLimit = 0x3fffffff - 1;  // MaxAllocSize - 1
inline constexpr uint32_t kMaxStartupPacketLength = 10000;      // MAX_STARTUP_PACKET_LENGTH
inline constexpr size_t kHeaderSize = 5;                        // type byte + int32 length

struct Limits {
  // Largest message accepted in either direction (the server's own cap by default).
  uint32_t max_message_size = kLargeMessageLimit;
};

inline uint32_t read_u32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return __builtin_bswap32(v);
}
inline uint16_t read_u16(const char* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return __builtin_bswap16(v);
}

// The cap the server applies to a frontend message of this type (SocketBackend in postgres.c),
// further bounded by limits.max_message_size; 0 means the type is not a valid frontend message.
uint32_t frontend_message_cap(char type, const Limits& limits);
// Backend messages: anything up to limits.max_message_size; 0 for types the server never sends.
uint32_t backend_message_cap(char type, const Limits& limits);

struct Header {
  char type = 0;
  uint32_t length = 0;  // as on the wire: includes the 4 length bytes, excludes the type byte
  size_t frame_size() const { return size_t{length} + 1; }
  size_t body_size() const { return size_t{length} - 4; }
};

struct HeaderResult {
  Status status = Status::kNeedMore;
  Header header;
  FrameError error = FrameError::kNone;
};

enum class Direction : uint8_t { kFrontend, kBackend };  // frontend: client->server

namespace detail {
// frontend_message_cap and backend_message_cap as a table, for decode_header: which cap applies to
// each type byte (one load per message instead of a call and a switch), and the cap of each kind
// before limits.max_message_size bounds it. Built in framing.cc from the same switches.
enum CapKind : uint8_t { kCapNone, kCapLarge, kCapSmall, kCapAuth, kCapAny };
extern const std::array<std::array<uint8_t, 256>, 2> kCapKinds;  // [Direction][type byte]
extern const std::array<uint32_t, 5> kCapLimits;                   // [CapKind]
}  // namespace detail

// Decode the 5-byte header at the start of `buf`. kNeedMore if fewer than 5 bytes. Inline: every
// message of the relay, the capture and the mirror link passes here.
inline HeaderResult decode_header(std::string_view buf, Direction dir, const Limits& limits) {
  HeaderResult r;
  if (buf.empty()) return r;
  r.header.type = buf[0];
  // Like the server, judge the type byte before the length: once sync is lost, the length word
  // is garbage and must not decide anything.
  const uint8_t kind =
      detail::kCapKinds[static_cast<uint8_t>(dir)][static_cast<unsigned char>(buf[0])];
  if (kind == detail::kCapNone) {
    r.status = Status::kInvalid;
    r.error = FrameError::kUnknownType;
    return r;
  }
  if (buf.size() < kHeaderSize) return r;
  r.header.length = read_u32(buf.data() + 1);
  const uint32_t cap = detail::kCapLimits[kind] < limits.max_message_size
                           ? detail::kCapLimits[kind]
                           : limits.max_message_size;
  if (r.header.length < 4) {
    r.status = Status::kInvalid;
    r.error = FrameError::kLengthTooSmall;
  } else if (r.header.length > cap) {
    // Also a negative int32 on the wire, which the server reports the same way.
    r.status = Status::kInvalid;
    r.error = FrameError::kLengthTooLarge;
  } else {
    r.status = Status::kComplete;
  }
  return r;
}

// Tracks message boundaries over a stream forwarded in chunks.
//
// The caller reads into a buffer and calls scan() on the unforwarded bytes. Whole messages are
// handed to the visitor; a message that does not fit the chunk is either kept back (it is small:
// the caller keeps the tail and reads more, so the visitor later sees it whole) or streamed (it is
// larger than keep_limit: the visitor sees only its header, and its body passes through untouched
// over the following chunks). `forward` bytes from the start may be sent on; the rest must be kept.
//
// Visitor: bool on_message(const Header&, std::string_view body)  -- whole message
//          bool on_stream_start(const Header&)                     -- header of a streamed message
// Returning false stops the scan after that message (it is included in `forward`).
class FrameScanner {
 public:
  struct Result {
    Status status;  // kComplete: chunk consumed up to `forward`; kInvalid: see error
    size_t forward;
    FrameError error;
    Header bad_header;  // the rejected header when status == kInvalid
    bool stopped;       // the visitor asked to stop
  };

  FrameScanner(Direction dir, Limits limits, size_t keep_limit)
      : dir_(dir), limits_(limits), keep_limit_(keep_limit) {}

  template <typename Visitor>
  Result scan(std::string_view data, Visitor&& visitor) {
    size_t pos = 0;
    const size_t n = data.size();
    while (pos < n) {
      if (stream_remaining_ > 0) {
        size_t take = stream_remaining_ < n - pos ? stream_remaining_ : n - pos;
        pos += take;
        stream_remaining_ -= take;
        continue;
      }
      HeaderResult h = decode_header(data.substr(pos), dir_, limits_);
      if (h.status == Status::kNeedMore) break;
      if (h.status == Status::kInvalid) {
        return Result{Status::kInvalid, pos, h.error, h.header, false};
      }
      size_t frame = h.header.frame_size();
      if (n - pos >= frame) {
        bool go = visitor.on_message(h.header, data.substr(pos + kHeaderSize, frame - kHeaderSize));
        pos += frame;
        if (!go) return Result{Status::kComplete, pos, FrameError::kNone, {}, true};
        continue;
      }
      if (frame <= keep_limit_) break;  // small: keep it back until it is whole
      bool go = visitor.on_stream_start(h.header);
      stream_remaining_ = frame - (n - pos);
      pos = n;
      if (!go) return Result{Status::kComplete, pos, FrameError::kNone, {}, true};
    }
    return Result{Status::kComplete, pos, FrameError::kNone, {}, false};
  }

  // True when the stream sits at a message boundary (nothing of a streamed message is pending).
  bool at_boundary() const { return stream_remaining_ == 0; }
  size_t keep_limit() const { return keep_limit_; }

 private:
  Direction dir_;
  Limits limits_;
  size_t keep_limit_;
  uint64_t stream_remaining_ = 0;
};

}  // namespace pgtandem::protocol

// The untyped startup phase: StartupMessage, SSLRequest, GSSENCRequest, CancelRequest.
//
// Every packet of this phase is an Int32 length (counting itself) and an Int32 code, with no type
// byte. The checks mirror ProcessStartupPacket() in PostgreSQL 15 (src/backend/postmaster/
// postmaster.c); the answer the server gives to each StartupError is in errors.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/framing.h"
#include "protocol/message_types.h"

namespace pgtandem::protocol {

// PG_MAX_AUTH_TOKEN_LENGTH (auth.c): cap on a password or GSS 'p' message.
inline constexpr uint32_t kMaxAuthTokenLength = 65535;
// PG_MAX_SASL_MESSAGE_LENGTH (auth-sasl.c): cap on a 'p' message inside a SASL exchange.
inline constexpr uint32_t kMaxSaslMessageLength = 1024;
// The server's length check subtracts the length word first: it accepts length words of
// 8 .. MAX_STARTUP_PACKET_LENGTH + 4 (10004).
inline constexpr uint32_t kMinStartupPacketLength = 8;
inline constexpr uint32_t kMaxStartupPacketWireLength = kMaxStartupPacketLength + 4;
inline constexpr uint32_t kCancelRequestLength = 16;
inline constexpr uint16_t kSupportedMajor = 3;
inline constexpr uint16_t kSupportedMinor = 0;  // PG_PROTOCOL_LATEST of PostgreSQL 15 is 3.0

enum class StartupError : uint8_t {
  kNone,
  // Length word outside 8..10004, or a CancelRequest whose length is not 16.
  // "invalid length of startup packet": logged only; the server closes without answering.
  kInvalidLength,
  // Major version other than 3 (also a second SSLRequest/GSSENCRequest, whose code then reads
  // as version 1234.5679/1234.5680). FATAL 0A000.
  kUnsupportedProtocol,
  // FATAL 08P01 "invalid startup packet layout: expected terminator as last byte".
  kMissingTerminator,
  // FATAL 22023 "invalid value for parameter "replication": ..." (not a boolean or "database").
  kInvalidReplication,
  // FATAL 28000 "no PostgreSQL user name specified in startup packet" (missing or empty).
  kNoUser,
  // Bytes that arrived with an SSLRequest/GSSENCRequest, before the answer byte was sent:
  // FATAL 08P01 "received unencrypted data after SSL request" (resp. GSSAPI encryption request).
  kDataAfterSslRequest,
  kDataAfterGssEncRequest,
};

struct StartupFrame {
  Status status = Status::kNeedMore;
  uint32_t length = 0;  // the length word: the whole packet, length word included
  uint32_t code = 0;    // protocol version or request code
  StartupError error = StartupError::kNone;
};

// Decodes the length word and code at the start of `buf`. kNeedMore until 8 bytes are there,
// except that an invalid length word is reported as soon as its 4 bytes are (the server gives up
// at that point). kComplete does not mean the whole packet is in `buf`: it needs `length` bytes.
StartupFrame decode_startup_frame(std::string_view buf);

enum class StartupKind : uint8_t { kStartupMessage, kCancelRequest, kSslRequest, kGssEncRequest };

// How the server treats a packet with this code. An SSLRequest after SSL was already negotiated
// (or refused) is no longer a request: it is read as a StartupMessage of version 1234.5679 and
// fails the version check. Likewise for GSSENCRequest.
StartupKind classify_startup_code(uint32_t code, bool ssl_done, bool gss_done);

// The answer to a refused SSLRequest/GSSENCRequest is one byte, 'N'; bytes the client sent with
// the request, before reading that byte, make the server give up.
// `buffered` is the number of bytes that arrived after the request and before the answer.
StartupError check_after_encryption_request(StartupKind kind, size_t buffered);

using StartupParam = std::pair<std::string_view, std::string_view>;

struct StartupMessage {
  uint16_t major = 0;
  uint16_t minor = 0;
  std::vector<StartupParam> params;            // in wire order, without _pq_. options
  std::vector<StartupParam> protocol_options;  // _pq_.* in wire order
  std::string_view replication_value;          // the rejected value for kInvalidReplication

  uint32_t version() const { return (uint32_t{major} << 16) | minor; }
  // The value of the last parameter with this name (the server keeps the last one); empty if
  // absent.
  std::string_view find(std::string_view name) const;
  bool has(std::string_view name) const;
  std::string_view user() const { return find("user"); }
  // "database", defaulting to the user name like the server.
  std::string_view database() const;
  // True when the server would answer with NegotiateProtocolVersion: a newer minor version than
  // 3.0 was asked for, or there are _pq_. options (PostgreSQL 15 recognises none).
  bool needs_negotiation() const { return minor > kSupportedMinor || !protocol_options.empty(); }
};

// Parses a whole StartupMessage packet (length word included; decode_startup_frame() has
// accepted its length and it is not a CancelRequest/SSLRequest/GSSENCRequest in its kind).
// The views in `out` point into `packet`. On error, `out` holds what the server had read when it
// gave up (version, and replication_value for kInvalidReplication).
StartupError parse_startup_message(std::string_view packet, StartupMessage& out);

struct CancelRequest {
  int32_t process_id = 0;
  int32_t secret_key = 0;
  bool operator==(const CancelRequest&) const = default;
};

// A whole CancelRequest packet; false unless it is exactly 16 bytes with the cancel code.
bool parse_cancel_request(std::string_view packet, CancelRequest& out);

void encode_startup_message(std::string& out, std::span<const StartupParam> params,
                            uint16_t major = kSupportedMajor, uint16_t minor = kSupportedMinor);
// Parameters, then protocol options.
void encode_startup_message(std::string& out, const StartupMessage& m);
void encode_ssl_request(std::string& out);
void encode_gssenc_request(std::string& out);
void encode_cancel_request(std::string& out, const CancelRequest& m);

// What PostgreSQL 15 sends when StartupMessage::needs_negotiation(): a NegotiateProtocolVersion
// with version 3.0 and the _pq_. option names. Appends nothing otherwise.
void encode_negotiation_answer(std::string& out, const StartupMessage& m);
// NegotiateProtocolVersion itself (a typed backend message) is in messages.h:
// decode(body, NegotiateProtocolVersion&), encode(), encode_negotiate_protocol_version().

// The server's parse_bool() (case-insensitive unique prefixes of true/false/yes/no/on/off, 1, 0).
bool parse_server_bool(std::string_view value, bool& result);

}  // namespace pgtandem::protocol

// ErrorResponse encoding, and the exact answer PostgreSQL 15 gives to each malformed input.
//
// "Same answer as the server" (DESIGN.md, Bad input): for every FrameError and StartupError this
// says whether the server closes the connection silently or sends an ErrorResponse (FATAL) first,
// and appends those bytes. Texts and SQLSTATEs are the server's (postgres.c SocketBackend,
// pqcomm.c pq_getmessage, postmaster.c ProcessStartupPacket, auth.c, auth-sasl.c) and were
// checked against a PostgreSQL 15.20 server: tests/unit/protocol/data/probe_*.be.bin.
// The server also sends F (file), L (line) and R (routine) fields; these answers leave them out.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/framing.h"
#include "protocol/startup.h"

namespace pgtandem::protocol {

enum class Severity : uint8_t { kError, kFatal, kPanic, kWarning, kNotice, kDebug, kInfo, kLog };

// "ERROR", "FATAL", ... (the untranslated names the server puts in S and V).
std::string_view severity_name(Severity severity);

namespace sqlstate {
inline constexpr std::string_view kProtocolViolation = "08P01";
inline constexpr std::string_view kConnectionException = "08000";
inline constexpr std::string_view kConnectionFailure = "08006";
inline constexpr std::string_view kFeatureNotSupported = "0A000";
inline constexpr std::string_view kInvalidParameterValue = "22023";
inline constexpr std::string_view kInvalidAuthorizationSpecification = "28000";
inline constexpr std::string_view kInvalidPassword = "28P01";
inline constexpr std::string_view kTooManyConnections = "53300";
inline constexpr std::string_view kQueryCanceled = "57014";
inline constexpr std::string_view kAdminShutdown = "57P01";
inline constexpr std::string_view kCannotConnectNow = "57P03";
inline constexpr std::string_view kInternalError = "XX000";
}  // namespace sqlstate

// Appends an ErrorResponse with S and V = severity, C, M, and D/H when not empty. Texts must not
// contain NUL (such a field is left out).
void encode_error_response(std::string& out, Severity severity, std::string_view sqlstate,
                           std::string_view message, std::string_view detail = {},
                           std::string_view hint = {});
// The same as a NoticeResponse (severity WARNING, NOTICE, ...).
void encode_notice_response(std::string& out, Severity severity, std::string_view sqlstate,
                            std::string_view message, std::string_view detail = {},
                            std::string_view hint = {});

enum class ServerAnswer : uint8_t {
  kNone,            // not an error: nothing to do
  kClose,           // close the connection without sending anything
  kErrorThenClose,  // send what was appended to `out`, then close
};

// A frontend FrameError (decode_header / FrameScanner on the client's stream, after startup):
// - kUnknownType: FATAL 08P01 "invalid frontend message type %d" (the byte as 0..255);
// - kLengthTooSmall, kLengthTooLarge: pq_getmessage() logs "invalid message length" as a
//   COMMERROR, which is never sent, and the backend exits: kClose.
ServerAnswer answer_frame_error(FrameError error, const Header& bad_header, std::string& out);

// A StartupError. `startup` is what parse_startup_message() filled in (version, replication
// value, _pq_. options); it is ignored for errors found before parsing.
// - kInvalidLength: "invalid length of startup packet" is a COMMERROR: kClose;
// - kUnsupportedProtocol: FATAL 0A000 "unsupported frontend protocol %u.%u: server supports 3.0
//   to 3.0". For a major version below 3 the server answers in the version-2 format: 'E', then
//   "FATAL:  <message>\n" and a NUL, with no length word;
// - kMissingTerminator: FATAL 08P01;
// - kInvalidReplication: FATAL 22023 with the server's hint;
// - kNoUser: FATAL 28000, preceded by the NegotiateProtocolVersion the server sends first when
//   startup.needs_negotiation();
// - kDataAfterSslRequest / kDataAfterGssEncRequest: FATAL 08P01 with the server's detail (the
//   'N' answering the request itself is not included: it was sent before the check).
ServerAnswer answer_startup_error(StartupError error, const StartupMessage& startup,
                                  std::string& out);

// During authentication the server reads nothing but 'p'. Another type byte ends the session:
// FATAL 08P01 "expected password response, got message type %d" (cleartext and MD5), or
// "expected SASL response, got message type %d" (SCRAM). GSSAPI/SSPI are not covered: their
// answer differs between minor releases and could not be checked here.
enum class AuthExchange : uint8_t { kPassword, kSasl };
ServerAnswer answer_unexpected_auth_message(AuthExchange exchange, char type, std::string& out);

// A 'p' longer than the exchange allows (kMaxAuthTokenLength for passwords,
// kMaxSaslMessageLength inside SASL). Passwords: the server treats it as the client going away
// and closes silently. SASL: the exchange fails, and the server answers FATAL 28P01
// "password authentication failed for user "<user>"".
ServerAnswer answer_auth_message_too_large(AuthExchange exchange, std::string_view user,
                                           std::string& out);

}  // namespace pgtandem::protocol

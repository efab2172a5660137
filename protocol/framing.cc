#include "protocol/framing.h"

#include "protocol/message_types.h"
#include "protocol/startup.h"

namespace pgtandem::protocol {

namespace {

using detail::CapKind;

// The table is SocketBackend() in src/backend/tcop/postgres.c (PostgreSQL 14+, unchanged in 15):
// Q F B P d get PQ_LARGE_MESSAGE_LIMIT; X C D E H S c f get PQ_SMALL_MESSAGE_LIMIT; any other type
// is "invalid frontend message type %d" (FATAL) before the length word is read.
// 'p' never reaches SocketBackend: the authentication exchange reads it with
// pq_getmessage(PG_MAX_AUTH_TOKEN_LENGTH) for passwords and GSS (auth.c), and with
// PG_MAX_SASL_MESSAGE_LENGTH (1024) inside a SASL exchange (auth-sasl.c). The larger cap is used
// here; after authentication the server rejects 'p' as an invalid type.
// Both were also checked against a PostgreSQL 15.20 server (tests/unit/protocol/data/probe_*).
constexpr CapKind frontend_cap_kind(char type) {
  switch (type) {
    case frontend::kQuery:
    case frontend::kFunctionCall:
    case frontend::kBind:
    case frontend::kParse:
    case frontend::kCopyData:
      return detail::kCapLarge;
    case frontend::kTerminate:
    case frontend::kClose:
    case frontend::kDescribe:
    case frontend::kExecute:
    case frontend::kFlush:
    case frontend::kSync:
    case frontend::kCopyDone:
    case frontend::kCopyFail:
      return detail::kCapSmall;
    case frontend::kPassword:
      return detail::kCapAuth;
    default:
      return detail::kCapNone;
  }
}

// Backend messages: the types of protocol 3, anything up to the limit.
constexpr CapKind backend_cap_kind(char type) {
  switch (type) {
    case backend::kAuthentication:
    case backend::kBackendKeyData:
    case backend::kBindComplete:
    case backend::kCloseComplete:
    case backend::kCommandComplete:
    case backend::kCopyData:
    case backend::kCopyDone:
    case backend::kCopyInResponse:
    case backend::kCopyOutResponse:
    case backend::kCopyBothResponse:
    case backend::kDataRow:
    case backend::kEmptyQueryResponse:
    case backend::kErrorResponse:
    case backend::kFunctionCallResponse:
    case backend::kNegotiateProtocolVersion:
    case backend::kNoData:
    case backend::kNoticeResponse:
    case backend::kNotificationResponse:
    case backend::kParameterDescription:
    case backend::kParameterStatus:
    case backend::kParseComplete:
    case backend::kPortalSuspended:
    case backend::kReadyForQuery:
    case backend::kRowDescription:
      return detail::kCapAny;
    default:
      return detail::kCapNone;
  }
}

constexpr std::array<std::array<uint8_t, 256>, 2> build_cap_kinds() {
  std::array<std::array<uint8_t, 256>, 2> t{};
  for (int b = 0; b < 256; ++b) {
    t[static_cast<int>(Direction::kFrontend)][b] = frontend_cap_kind(static_cast<char>(b));
    t[static_cast<int>(Direction::kBackend)][b] = backend_cap_kind(static_cast<char>(b));
  }
  return t;
}

}  // namespace

namespace detail {
// Constant-initialized at compile time from the switches above: no code runs at start-up.
extern constexpr std::array<std::array<uint8_t, 256>, 2> kCapKinds = build_cap_kinds();
extern constexpr std::array<uint32_t, 5> kCapLimits = {0, kLargeMessageLimit, kSmallMessageLimit,
                                                       kMaxAuthTokenLength, UINT32_MAX};
}  // namespace detail

namespace {
uint32_t bounded(CapKind kind, const Limits& limits) {
  const uint32_t cap = detail::kCapLimits[kind];
  return cap < limits.max_message_size ? cap : limits.max_message_size;
}
}  // namespace

uint32_t frontend_message_cap(char type, const Limits& limits) {
  const CapKind kind = frontend_cap_kind(type);
  return kind == detail::kCapNone ? 0 : bounded(kind, limits);
}

uint32_t backend_message_cap(char type, const Limits& limits) {
  const CapKind kind = backend_cap_kind(type);
  return kind == detail::kCapNone ? 0 : bounded(kind, limits);
}

}  // namespace pgtandem::protocol

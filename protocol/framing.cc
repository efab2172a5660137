#include "protocol/framing.h"

#include "protocol/message_types.h"
#include "protocol/startup.h"

namespace pgtandem::protocol {

namespace {

uint32_t bounded(uint32_t cap, const Limits& limits) {
  return cap < limits.max_message_size ? cap : limits.max_message_size;
}

}  // namespace

// The table is SocketBackend() in src/backend/tcop/postgres.c (PostgreSQL 14+, unchanged in 15):
// Q F B P d get PQ_LARGE_MESSAGE_LIMIT; X C D E H S c f get PQ_SMALL_MESSAGE_LIMIT; any other type
// is "invalid frontend message type %d" (FATAL) before the length word is read.
// 'p' never reaches SocketBackend: the authentication exchange reads it with
// pq_getmessage(PG_MAX_AUTH_TOKEN_LENGTH) for passwords and GSS (auth.c), and with
// PG_MAX_SASL_MESSAGE_LENGTH (1024) inside a SASL exchange (auth-sasl.c). The larger cap is used
// here; after authentication the server rejects 'p' as an invalid type.
// Both were also checked against a PostgreSQL 15.20 server (tests/unit/protocol/data/probe_*).
uint32_t frontend_message_cap(char type, const Limits& limits) {
  switch (type) {
    case frontend::kQuery:
    case frontend::kFunctionCall:
    case frontend::kBind:
    case frontend::kParse:
    case frontend::kCopyData:
      return bounded(kLargeMessageLimit, limits);
    case frontend::kTerminate:
    case frontend::kClose:
    case frontend::kDescribe:
    case frontend::kExecute:
    case frontend::kFlush:
    case frontend::kSync:
    case frontend::kCopyDone:
    case frontend::kCopyFail:
      return bounded(kSmallMessageLimit, limits);
    case frontend::kPassword:
      return bounded(kMaxAuthTokenLength, limits);
    default:
      return 0;
  }
}

uint32_t backend_message_cap(char type, const Limits& limits) {
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
      return limits.max_message_size;
    default:
      return 0;
  }
}

HeaderResult decode_header(std::string_view buf, Direction dir, const Limits& limits) {
  HeaderResult r;
  if (buf.empty()) return r;
  r.header.type = buf[0];
  // Like the server, judge the type byte before the length: once sync is lost, the length word
  // is garbage and must not decide anything.
  uint32_t cap = dir == Direction::kFrontend ? frontend_message_cap(r.header.type, limits)
                                             : backend_message_cap(r.header.type, limits);
  if (cap == 0) {
    r.status = Status::kInvalid;
    r.error = FrameError::kUnknownType;
    return r;
  }
  if (buf.size() < kHeaderSize) return r;
  r.header.length = read_u32(buf.data() + 1);
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

}  // namespace pgtandem::protocol

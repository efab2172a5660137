#include "protocol/messages.h"

namespace pgtandem::protocol {

// ------------------------------------------------------------------------------------------------
// By type byte

namespace {

template <typename T>
bool decodes(std::string_view body) {
  T m;
  return decode(body, m);
}

}  // namespace

bool well_formed(Direction dir, char type, std::string_view body) {
  if (dir == Direction::kFrontend) {
    switch (type) {
      case frontend::kBind:
        return decodes<Bind>(body);
      case frontend::kClose:
        return decodes<Close>(body);
      case frontend::kCopyData:
        return decodes<CopyData>(body);
      case frontend::kCopyDone:
        return decodes<CopyDone>(body);
      case frontend::kCopyFail:
        return decodes<CopyFail>(body);
      case frontend::kDescribe:
        return decodes<Describe>(body);
      case frontend::kExecute:
        return decodes<Execute>(body);
      case frontend::kFlush:
        return decodes<Flush>(body);
      case frontend::kFunctionCall:
        return decodes<FunctionCall>(body);
      case frontend::kParse:
        return decodes<Parse>(body);
      case frontend::kPassword:
        return decodes<GssResponse>(body);  // opaque bytes: always
      case frontend::kQuery:
        return decodes<Query>(body);
      case frontend::kSync:
        return decodes<Sync>(body);
      case frontend::kTerminate:
        return decodes<Terminate>(body);
      default:
        return false;
    }
  }
  switch (type) {
    case backend::kAuthentication:
      return decodes<Authentication>(body);
    case backend::kBackendKeyData:
      return decodes<BackendKeyData>(body);
    case backend::kBindComplete:
      return decodes<BindComplete>(body);
    case backend::kCloseComplete:
      return decodes<CloseComplete>(body);
    case backend::kCommandComplete:
      return decodes<CommandComplete>(body);
    case backend::kCopyData:
      return decodes<CopyData>(body);
    case backend::kCopyDone:
      return decodes<CopyDone>(body);
    case backend::kCopyInResponse:
      return decodes<CopyInResponse>(body);
    case backend::kCopyOutResponse:
      return decodes<CopyOutResponse>(body);
    case backend::kCopyBothResponse:
      return decodes<CopyBothResponse>(body);
    case backend::kDataRow:
      return decodes<DataRow>(body);
    case backend::kEmptyQueryResponse:
      return decodes<EmptyQueryResponse>(body);
    case backend::kErrorResponse:
      return decodes<ErrorResponse>(body);
    case backend::kFunctionCallResponse:
      return decodes<FunctionCallResponse>(body);
    case backend::kNegotiateProtocolVersion:
      return decodes<NegotiateProtocolVersion>(body);
    case backend::kNoData:
      return decodes<NoData>(body);
    case backend::kNoticeResponse:
      return decodes<NoticeResponse>(body);
    case backend::kNotificationResponse:
      return decodes<NotificationResponse>(body);
    case backend::kParameterDescription:
      return decodes<ParameterDescription>(body);
    case backend::kParameterStatus:
      return decodes<ParameterStatus>(body);
    case backend::kParseComplete:
      return decodes<ParseComplete>(body);
    case backend::kPortalSuspended:
      return decodes<PortalSuspended>(body);
    case backend::kReadyForQuery:
      return decodes<ReadyForQuery>(body);
    case backend::kRowDescription:
      return decodes<RowDescription>(body);
    default:
      return false;
  }
}

std::string_view message_name(Direction dir, char type) {
  if (dir == Direction::kFrontend) {
    switch (type) {
      case frontend::kBind:
        return "Bind";
      case frontend::kClose:
        return "Close";
      case frontend::kCopyData:
        return "CopyData";
      case frontend::kCopyDone:
        return "CopyDone";
      case frontend::kCopyFail:
        return "CopyFail";
      case frontend::kDescribe:
        return "Describe";
      case frontend::kExecute:
        return "Execute";
      case frontend::kFlush:
        return "Flush";
      case frontend::kFunctionCall:
        return "FunctionCall";
      case frontend::kParse:
        return "Parse";
      case frontend::kPassword:
        return "PasswordMessage";
      case frontend::kQuery:
        return "Query";
      case frontend::kSync:
        return "Sync";
      case frontend::kTerminate:
        return "Terminate";
      default:
        return "Unknown";
    }
  }
  switch (type) {
    case backend::kAuthentication:
      return "Authentication";
    case backend::kBackendKeyData:
      return "BackendKeyData";
    case backend::kBindComplete:
      return "BindComplete";
    case backend::kCloseComplete:
      return "CloseComplete";
    case backend::kCommandComplete:
      return "CommandComplete";
    case backend::kCopyData:
      return "CopyData";
    case backend::kCopyDone:
      return "CopyDone";
    case backend::kCopyInResponse:
      return "CopyInResponse";
    case backend::kCopyOutResponse:
      return "CopyOutResponse";
    case backend::kCopyBothResponse:
      return "CopyBothResponse";
    case backend::kDataRow:
      return "DataRow";
    case backend::kEmptyQueryResponse:
      return "EmptyQueryResponse";
    case backend::kErrorResponse:
      return "ErrorResponse";
    case backend::kFunctionCallResponse:
      return "FunctionCallResponse";
    case backend::kNegotiateProtocolVersion:
      return "NegotiateProtocolVersion";
    case backend::kNoData:
      return "NoData";
    case backend::kNoticeResponse:
      return "NoticeResponse";
    case backend::kNotificationResponse:
      return "NotificationResponse";
    case backend::kParameterDescription:
      return "ParameterDescription";
    case backend::kParameterStatus:
      return "ParameterStatus";
    case backend::kParseComplete:
      return "ParseComplete";
    case backend::kPortalSuspended:
      return "PortalSuspended";
    case backend::kReadyForQuery:
      return "ReadyForQuery";
    case backend::kRowDescription:
      return "RowDescription";
    default:
      return "Unknown";
  }
}

bool decode_bind_names(std::string_view body, std::string_view* portal,
                       std::string_view* statement) {
  // Names are short (at most NAMEDATALEN - 1 bytes on the server) and the portal's is usually
  // empty: a byte loop, not two memchr calls, on every Bind of the relay and the capture.
  size_t p = 0;
  while (p < body.size() && body[p] != '\0') ++p;
  if (p == body.size()) return false;
  size_t q = p + 1;
  while (q < body.size() && body[q] != '\0') ++q;
  if (q == body.size()) return false;
  *portal = body.substr(0, p);
  *statement = body.substr(p + 1, q - p - 1);
  return true;
}

}  // namespace pgtandem::protocol

#include "protocol/errors.h"

#include <array>
#include <string>

#include "protocol/messages.h"

namespace pgtandem::protocol {

namespace {

void encode_report(std::string& out, char type, Severity severity, std::string_view sqlstate,
                   std::string_view message, std::string_view detail, std::string_view hint) {
  std::string_view name = severity_name(severity);
  std::array<Field, 6> fields{};
  size_t n = 0;
  fields[n++] = {field::kSeverity, name};
  fields[n++] = {field::kSeverityNonLocalized, name};
  fields[n++] = {field::kSqlState, sqlstate};
  fields[n++] = {field::kMessage, message};
  if (!detail.empty()) fields[n++] = {field::kDetail, detail};
  if (!hint.empty()) fields[n++] = {field::kHint, hint};
  encode_fields(out, type, std::span<const Field>(fields.data(), n));
}

void fatal(std::string& out, std::string_view sqlstate, std::string_view message,
           std::string_view detail = {}, std::string_view hint = {}) {
  encode_error_response(out, Severity::kFatal, sqlstate, message, detail, hint);
}

// The type byte as the server prints it: pq_getbyte() returns it as an unsigned char.
std::string type_number(char type) {
  return std::to_string(static_cast<unsigned>(static_cast<unsigned char>(type)));
}

constexpr std::string_view kMitmDetail =
    "This could be either a client-software bug or evidence of an attempted man-in-the-middle "
    "attack.";

}  // namespace

std::string_view severity_name(Severity severity) {
  switch (severity) {
    case Severity::kError:
      return "ERROR";
    case Severity::kFatal:
      return "FATAL";
    case Severity::kPanic:
      return "PANIC";
    case Severity::kWarning:
      return "WARNING";
    case Severity::kNotice:
      return "NOTICE";
    case Severity::kDebug:
      return "DEBUG";
    case Severity::kInfo:
      return "INFO";
    case Severity::kLog:
      return "LOG";
  }
  return "ERROR";
}

void encode_error_response(std::string& out, Severity severity, std::string_view sqlstate,
                           std::string_view message, std::string_view detail,
                           std::string_view hint) {
  encode_report(out, backend::kErrorResponse, severity, sqlstate, message, detail, hint);
}

void encode_notice_response(std::string& out, Severity severity, std::string_view sqlstate,
                            std::string_view message, std::string_view detail,
                            std::string_view hint) {
  encode_report(out, backend::kNoticeResponse, severity, sqlstate, message, detail, hint);
}

ServerAnswer answer_frame_error(FrameError error, const Header& bad_header, std::string& out) {
  switch (error) {
    case FrameError::kNone:
      return ServerAnswer::kNone;
    case FrameError::kUnknownType:
      fatal(out, sqlstate::kProtocolViolation,
            "invalid frontend message type " + type_number(bad_header.type));
      return ServerAnswer::kErrorThenClose;
    case FrameError::kLengthTooSmall:
    case FrameError::kLengthTooLarge:
      return ServerAnswer::kClose;
  }
  return ServerAnswer::kClose;
}

ServerAnswer answer_startup_error(StartupError error, const StartupMessage& startup,
                                  std::string& out) {
  switch (error) {
    case StartupError::kNone:
      return ServerAnswer::kNone;
    case StartupError::kInvalidLength:
      return ServerAnswer::kClose;
    case StartupError::kUnsupportedProtocol: {
      std::string message = "unsupported frontend protocol " + std::to_string(startup.major) + "." +
                            std::to_string(startup.minor) + ": server supports " +
                            std::to_string(kSupportedMajor) + ".0 to " +
                            std::to_string(kSupportedMajor) + "." + std::to_string(kSupportedMinor);
      if (startup.major < kSupportedMajor) {
        // The server answers in the format the client asked for (send_message_to_frontend).
        out.push_back(backend::kErrorResponse);
        out.append("FATAL:  ");
        out.append(message);
        out.append("\n");
        out.push_back('\0');
      } else {
        fatal(out, sqlstate::kFeatureNotSupported, message);
      }
      return ServerAnswer::kErrorThenClose;
    }
    case StartupError::kMissingTerminator:
      fatal(out, sqlstate::kProtocolViolation,
            "invalid startup packet layout: expected terminator as last byte");
      return ServerAnswer::kErrorThenClose;
    case StartupError::kInvalidReplication:
      fatal(out, sqlstate::kInvalidParameterValue,
            "invalid value for parameter \"replication\": \"" +
                std::string(startup.replication_value) + "\"",
            {}, "Valid values are: \"false\", 0, \"true\", 1, \"database\".");
      return ServerAnswer::kErrorThenClose;
    case StartupError::kNoUser:
      encode_negotiation_answer(out, startup);
      fatal(out, sqlstate::kInvalidAuthorizationSpecification,
            "no PostgreSQL user name specified in startup packet");
      return ServerAnswer::kErrorThenClose;
    case StartupError::kDataAfterSslRequest:
      fatal(out, sqlstate::kProtocolViolation, "received unencrypted data after SSL request",
            kMitmDetail);
      return ServerAnswer::kErrorThenClose;
    case StartupError::kDataAfterGssEncRequest:
      fatal(out, sqlstate::kProtocolViolation,
            "received unencrypted data after GSSAPI encryption request", kMitmDetail);
      return ServerAnswer::kErrorThenClose;
  }
  return ServerAnswer::kClose;
}

ServerAnswer answer_unexpected_auth_message(AuthExchange exchange, char type, std::string& out) {
  std::string_view what = exchange == AuthExchange::kSasl ? "SASL" : "password";
  fatal(out, sqlstate::kProtocolViolation,
        "expected " + std::string(what) + " response, got message type " + type_number(type));
  return ServerAnswer::kErrorThenClose;
}

ServerAnswer answer_auth_message_too_large(AuthExchange exchange, std::string_view user,
                                           std::string& out) {
  if (exchange == AuthExchange::kPassword) return ServerAnswer::kClose;
  // The server truncates the user name to NAMEDATALEN - 1 bytes before it gets this far.
  constexpr size_t kMaxNameBytes = 63;
  if (user.size() > kMaxNameBytes) user = user.substr(0, kMaxNameBytes);
  fatal(out, sqlstate::kInvalidPassword,
        "password authentication failed for user \"" + std::string(user) + "\"");
  return ServerAnswer::kErrorThenClose;
}

}  // namespace pgtandem::protocol

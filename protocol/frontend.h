// Frontend messages (client -> server), decoded into views and encoded whole: the conventions in
// protocol/messages.h (which includes this header).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "protocol/message_types.h"
#include "protocol/wire.h"

namespace pgtandem::protocol {

// ------------------------------------------------------------------------------------------------
// Frontend messages (client -> server)

struct Bind {
  static constexpr char kType = frontend::kBind;
  std::string_view portal;
  std::string_view statement;
  Int16List param_formats;  // none: all text; one: applies to all; else one per parameter
  ValueList params;
  Int16List result_formats;
  bool operator==(const Bind&) const = default;
};
bool decode(std::string_view body, Bind& out);
// Only a Bind's portal and statement names (no parameter decoding): what routing needs per Bind.
bool decode_bind_names(std::string_view body, std::string_view* portal,
                       std::string_view* statement);
void encode(std::string& out, const Bind& m);
void encode_bind(std::string& out, std::string_view portal, std::string_view statement,
                 std::span<const int16_t> param_formats, std::span<const Value> params,
                 std::span<const int16_t> result_formats);

// Close and Describe target a prepared statement ('S') or a portal ('P').
inline constexpr char kTargetStatement = 'S';
inline constexpr char kTargetPortal = 'P';

struct Close {
  static constexpr char kType = frontend::kClose;
  char target = kTargetStatement;
  std::string_view name;
  bool operator==(const Close&) const = default;
};
bool decode(std::string_view body, Close& out);
void encode(std::string& out, const Close& m);

struct CopyFail {
  static constexpr char kType = frontend::kCopyFail;
  std::string_view message;
  bool operator==(const CopyFail&) const = default;
};
bool decode(std::string_view body, CopyFail& out);
void encode(std::string& out, const CopyFail& m);

struct Describe {
  static constexpr char kType = frontend::kDescribe;
  char target = kTargetStatement;
  std::string_view name;
  bool operator==(const Describe&) const = default;
};
bool decode(std::string_view body, Describe& out);
void encode(std::string& out, const Describe& m);

struct Execute {
  static constexpr char kType = frontend::kExecute;
  std::string_view portal;
  int32_t max_rows = 0;  // 0: no limit
  bool operator==(const Execute&) const = default;
};
bool decode(std::string_view body, Execute& out);
void encode(std::string& out, const Execute& m);

struct FunctionCall {
  static constexpr char kType = frontend::kFunctionCall;
  uint32_t function_oid = 0;
  Int16List arg_formats;
  ValueList args;
  int16_t result_format = 0;
  bool operator==(const FunctionCall&) const = default;
};
bool decode(std::string_view body, FunctionCall& out);
void encode(std::string& out, const FunctionCall& m);
void encode_function_call(std::string& out, uint32_t function_oid,
                          std::span<const int16_t> arg_formats, std::span<const Value> args,
                          int16_t result_format);

struct Parse {
  static constexpr char kType = frontend::kParse;
  std::string_view name;  // empty: the unnamed statement
  std::string_view query;
  Uint32List param_types;  // 0: unspecified
  bool operator==(const Parse&) const = default;
};
bool decode(std::string_view body, Parse& out);
void encode(std::string& out, const Parse& m);
void encode_parse(std::string& out, std::string_view name, std::string_view query,
                  std::span<const uint32_t> param_types);

struct Query {
  static constexpr char kType = frontend::kQuery;
  std::string_view sql;
  bool operator==(const Query&) const = default;
};
bool decode(std::string_view body, Query& out);
void encode(std::string& out, const Query& m);

// 'p' carries one of four bodies; which one depends on the authentication exchange in progress.
struct PasswordMessage {
  static constexpr char kType = frontend::kPassword;
  std::string_view password;  // cleartext, or "md5" + hex digest
  bool operator==(const PasswordMessage&) const = default;
};
bool decode(std::string_view body, PasswordMessage& out);
void encode(std::string& out, const PasswordMessage& m);

struct SaslInitialResponse {
  static constexpr char kType = frontend::kPassword;
  std::string_view mechanism;
  Value data;  // NULL: no initial response
  bool operator==(const SaslInitialResponse&) const = default;
};
bool decode(std::string_view body, SaslInitialResponse& out);
void encode(std::string& out, const SaslInitialResponse& m);

struct SaslResponse {
  static constexpr char kType = frontend::kPassword;
  std::string_view data;
  bool operator==(const SaslResponse&) const = default;
};
bool decode(std::string_view body, SaslResponse& out);
void encode(std::string& out, const SaslResponse& m);

struct GssResponse {
  static constexpr char kType = frontend::kPassword;
  std::string_view data;
  bool operator==(const GssResponse&) const = default;
};
bool decode(std::string_view body, GssResponse& out);
void encode(std::string& out, const GssResponse& m);

}  // namespace pgtandem::protocol

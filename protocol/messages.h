// Decode and encode every typed message of protocol 3.0, in both directions.
//
// Decoding takes a message body (the bytes after the 5-byte header, as FrameScanner hands them
// out) and fills a small struct of views into that body: no allocation, no copy, so the body must
// outlive the struct. A decoder returns false on any malformed body and never reads out of range;
// it requires the body to be consumed exactly, as the server does (pq_getmsgend).
//
// Encoding appends a whole message (type byte, length, body) to a caller-provided std::string.
// decode() followed by encode() reproduces the original bytes.
//
// Message formats: https://www.postgresql.org/docs/15/protocol-message-formats.html
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "protocol/framing.h"
#include "protocol/message_types.h"

namespace pgtandem::protocol {

// ------------------------------------------------------------------------------------------------
// Building blocks

// Appends the type byte and a placeholder length; returns the offset end_message() needs.
size_t begin_message(std::string& out, char type);
// Patches the length of the message begun at `start` to cover everything appended since.
void end_message(std::string& out, size_t start);

void put_u8(std::string& out, uint8_t v);
void put_i16(std::string& out, int16_t v);
void put_u16(std::string& out, uint16_t v);
void put_i32(std::string& out, int32_t v);
void put_u32(std::string& out, uint32_t v);
void put_cstring(std::string& out, std::string_view s);  // s must not contain NUL
void put_bytes(std::string& out, std::string_view s);

// Bounds-checked reader over a message body. Every getter returns false (and consumes nothing)
// when the body is too short.
class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}

  size_t remaining() const { return data_.size() - pos_; }
  bool at_end() const { return pos_ == data_.size(); }
  size_t position() const { return pos_; }

  bool u8(uint8_t& v);
  bool i16(int16_t& v);
  bool u16(uint16_t& v);
  bool i32(int32_t& v);
  bool u32(uint32_t& v);
  bool bytes(size_t n, std::string_view& v);
  bool cstring(std::string_view& v);  // up to the next NUL, which is consumed; false if none
  std::string_view rest();            // everything left

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

// A parameter, column or function argument: bytes, or NULL (length -1 on the wire).
// NULL is distinct from empty.
struct Value {
  bool is_null = false;
  std::string_view data;

  static Value null() { return Value{true, {}}; }
  static Value of(std::string_view d) { return Value{false, d}; }
  bool operator==(const Value&) const = default;
};

// Int16 values on the wire (format codes).
class Int16List {
 public:
  Int16List() = default;
  explicit Int16List(std::string_view raw) : raw_(raw) {}
  size_t size() const { return raw_.size() / 2; }
  int16_t operator[](size_t i) const { return static_cast<int16_t>(read_u16(raw_.data() + 2 * i)); }
  std::string_view raw() const { return raw_; }
  bool operator==(const Int16List&) const = default;

 private:
  std::string_view raw_;
};

// Int32 values on the wire (type OIDs).
class Uint32List {
 public:
  Uint32List() = default;
  explicit Uint32List(std::string_view raw) : raw_(raw) {}
  size_t size() const { return raw_.size() / 4; }
  uint32_t operator[](size_t i) const { return read_u32(raw_.data() + 4 * i); }
  std::string_view raw() const { return raw_; }
  bool operator==(const Uint32List&) const = default;

 private:
  std::string_view raw_;
};

// Length-prefixed values (Bind parameters, FunctionCall arguments, DataRow columns).
// Iteration never reads past raw(); decoders have already checked that raw() holds size() values.
class ValueList {
 public:
  class Iterator {
   public:
    using value_type = Value;
    using difference_type = std::ptrdiff_t;
    Iterator() = default;
    Iterator(std::string_view rest, size_t left) : rest_(rest), left_(left) { load(); }
    const Value& operator*() const { return current_; }
    const Value* operator->() const { return &current_; }
    Iterator& operator++();
    Iterator operator++(int) {
      Iterator copy = *this;
      ++*this;
      return copy;
    }
    bool operator==(const Iterator& o) const { return left_ == o.left_; }

   private:
    void load();
    std::string_view rest_;
    size_t left_ = 0;
    size_t consumed_ = 0;
    Value current_;
  };

  ValueList() = default;
  ValueList(uint16_t count, std::string_view raw) : count_(count), raw_(raw) {}
  size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  Iterator begin() const { return Iterator(raw_, count_); }
  Iterator end() const { return Iterator(); }
  // The value at index i by walking the list (O(i)); false if out of range.
  bool at(size_t i, Value& v) const;
  std::string_view raw() const { return raw_; }
  bool operator==(const ValueList&) const = default;

 private:
  uint16_t count_ = 0;
  std::string_view raw_;
};

// NUL-terminated strings one after the other (SASL mechanisms, NegotiateProtocolVersion options).
class StringList {
 public:
  class Iterator {
   public:
    using value_type = std::string_view;
    using difference_type = std::ptrdiff_t;
    Iterator() = default;
    explicit Iterator(std::string_view rest) : rest_(rest) { load(); }
    std::string_view operator*() const { return current_; }
    Iterator& operator++();
    Iterator operator++(int) {
      Iterator copy = *this;
      ++*this;
      return copy;
    }
    bool operator==(const Iterator& o) const {
      return done_ == o.done_ && (done_ || rest_.data() == o.rest_.data());
    }

   private:
    void load();
    std::string_view rest_;
    std::string_view current_;
    bool done_ = true;
  };

  StringList() = default;
  StringList(uint32_t count, std::string_view raw) : count_(count), raw_(raw) {}
  size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  Iterator begin() const { return Iterator(raw_); }
  Iterator end() const { return Iterator(); }
  std::string_view raw() const { return raw_; }
  bool operator==(const StringList&) const = default;

 private:
  uint32_t count_ = 0;
  std::string_view raw_;
};

// ------------------------------------------------------------------------------------------------
// Messages without a body

template <char Type>
struct EmptyMessage {
  static constexpr char kType = Type;
  bool operator==(const EmptyMessage&) const = default;
};
using BindComplete = EmptyMessage<backend::kBindComplete>;
using CloseComplete = EmptyMessage<backend::kCloseComplete>;
using NoData = EmptyMessage<backend::kNoData>;
using ParseComplete = EmptyMessage<backend::kParseComplete>;
using PortalSuspended = EmptyMessage<backend::kPortalSuspended>;
using EmptyQueryResponse = EmptyMessage<backend::kEmptyQueryResponse>;
using CopyDone = EmptyMessage<frontend::kCopyDone>;  // both directions
using Flush = EmptyMessage<frontend::kFlush>;
using Sync = EmptyMessage<frontend::kSync>;
using Terminate = EmptyMessage<frontend::kTerminate>;

template <char Type>
bool decode(std::string_view body, EmptyMessage<Type>&) {
  return body.empty();
}
template <char Type>
void encode(std::string& out, const EmptyMessage<Type>&) {
  end_message(out, begin_message(out, Type));
}

// ------------------------------------------------------------------------------------------------
// Backend messages (server -> client)

// Authentication request codes.
inline constexpr int32_t kAuthOk = 0;
inline constexpr int32_t kAuthKerberosV5 = 2;
inline constexpr int32_t kAuthCleartextPassword = 3;
inline constexpr int32_t kAuthMd5Password = 5;
inline constexpr int32_t kAuthScmCredential = 6;
inline constexpr int32_t kAuthGss = 7;
inline constexpr int32_t kAuthGssContinue = 8;
inline constexpr int32_t kAuthSspi = 9;
inline constexpr int32_t kAuthSasl = 10;
inline constexpr int32_t kAuthSaslContinue = 11;
inline constexpr int32_t kAuthSaslFinal = 12;

struct Authentication {
  static constexpr char kType = backend::kAuthentication;
  int32_t code = kAuthOk;
  // MD5: the 4-byte salt. SASL: the mechanism list as on the wire, without the final empty
  // string. GSSContinue, SASLContinue, SASLFinal: the payload. Otherwise empty.
  std::string_view data;

  std::string_view md5_salt() const { return code == kAuthMd5Password ? data : std::string_view(); }
  StringList sasl_mechanisms() const;  // empty unless code == kAuthSasl
  bool operator==(const Authentication&) const = default;
};
bool decode(std::string_view body, Authentication& out);
void encode(std::string& out, const Authentication& m);
void encode_authentication_sasl(std::string& out, std::span<const std::string_view> mechanisms);
// Appends the AuthenticationSASL `body` (without its header) re-encoded without `mechanism`, as a
// whole message. False, appending nothing, when the body is not a SASL request offering it.
// (A proxy terminating TLS hides SCRAM-SHA-256-PLUS: channel binding cannot hold across it.)
bool encode_sasl_without_mechanism(std::string& out, std::string_view body,
                                   std::string_view mechanism);

struct BackendKeyData {
  static constexpr char kType = backend::kBackendKeyData;
  int32_t process_id = 0;
  int32_t secret_key = 0;
  bool operator==(const BackendKeyData&) const = default;
};
bool decode(std::string_view body, BackendKeyData& out);
void encode(std::string& out, const BackendKeyData& m);

struct CommandComplete {
  static constexpr char kType = backend::kCommandComplete;
  std::string_view tag;  // "INSERT 0 5", "UPDATE 3", "SELECT 7", "CREATE TABLE", ...
  bool operator==(const CommandComplete&) const = default;
};
bool decode(std::string_view body, CommandComplete& out);
void encode(std::string& out, const CommandComplete& m);

// The row count a CommandComplete tag carries (INSERT oid n, DELETE/UPDATE/MERGE/SELECT/MOVE/
// FETCH/COPY n); false for tags without one ("CREATE TABLE", "BEGIN") or a malformed count.
bool command_tag_rows(std::string_view tag, uint64_t& rows);
// The command part of a tag: "INSERT 0 5" -> "INSERT", "CREATE TABLE" -> "CREATE TABLE".
std::string_view command_tag_name(std::string_view tag);

// CopyData, both directions.
struct CopyData {
  static constexpr char kType = frontend::kCopyData;
  std::string_view data;
  bool operator==(const CopyData&) const = default;
};
bool decode(std::string_view body, CopyData& out);
void encode(std::string& out, const CopyData& m);

// CopyInResponse ('G'), CopyOutResponse ('H'), CopyBothResponse ('W') share one layout.
template <char Type>
struct CopyResponse {
  static constexpr char kType = Type;
  uint8_t format = 0;  // 0 text, 1 binary
  Int16List column_formats;
  bool operator==(const CopyResponse&) const = default;
};
using CopyInResponse = CopyResponse<backend::kCopyInResponse>;
using CopyOutResponse = CopyResponse<backend::kCopyOutResponse>;
using CopyBothResponse = CopyResponse<backend::kCopyBothResponse>;
bool decode_copy_response(std::string_view body, uint8_t& format, Int16List& column_formats);
void encode_copy_response(std::string& out, char type, uint8_t format,
                          std::span<const int16_t> column_formats);
template <char Type>
bool decode(std::string_view body, CopyResponse<Type>& out) {
  return decode_copy_response(body, out.format, out.column_formats);
}
void encode_copy_response_raw(std::string& out, char type, uint8_t format,
                              const Int16List& formats);
template <char Type>
void encode(std::string& out, const CopyResponse<Type>& m) {
  encode_copy_response_raw(out, Type, m.format, m.column_formats);
}

struct DataRow {
  static constexpr char kType = backend::kDataRow;
  ValueList columns;
  bool operator==(const DataRow&) const = default;
};
bool decode(std::string_view body, DataRow& out);
void encode(std::string& out, const DataRow& m);
void encode_data_row(std::string& out, std::span<const Value> columns);

// One field of an ErrorResponse or NoticeResponse.
struct Field {
  char code = 0;
  std::string_view value;
  bool operator==(const Field&) const = default;
};

// Field codes (https://www.postgresql.org/docs/15/protocol-error-fields.html).
namespace field {
inline constexpr char kSeverity = 'S';
inline constexpr char kSeverityNonLocalized = 'V';
inline constexpr char kSqlState = 'C';
inline constexpr char kMessage = 'M';
inline constexpr char kDetail = 'D';
inline constexpr char kHint = 'H';
inline constexpr char kPosition = 'P';
inline constexpr char kInternalPosition = 'p';
inline constexpr char kInternalQuery = 'q';
inline constexpr char kWhere = 'W';
inline constexpr char kSchema = 's';
inline constexpr char kTable = 't';
inline constexpr char kColumn = 'c';
inline constexpr char kDataType = 'd';
inline constexpr char kConstraint = 'n';
inline constexpr char kFile = 'F';
inline constexpr char kLine = 'L';
inline constexpr char kRoutine = 'R';
}  // namespace field

// The (code, value) pairs of an ErrorResponse/NoticeResponse, without the final terminator.
class FieldList {
 public:
  class Iterator {
   public:
    using value_type = Field;
    using difference_type = std::ptrdiff_t;
    Iterator() = default;
    explicit Iterator(std::string_view rest) : rest_(rest) { load(); }
    const Field& operator*() const { return current_; }
    const Field* operator->() const { return &current_; }
    Iterator& operator++();
    Iterator operator++(int) {
      Iterator copy = *this;
      ++*this;
      return copy;
    }
    bool operator==(const Iterator& o) const {
      return done_ == o.done_ && (done_ || rest_.data() == o.rest_.data());
    }

   private:
    void load();
    std::string_view rest_;
    Field current_;
    bool done_ = true;
  };

  FieldList() = default;
  explicit FieldList(std::string_view raw) : raw_(raw) {}
  Iterator begin() const { return Iterator(raw_); }
  Iterator end() const { return Iterator(); }
  // The value of the first field with this code, or empty.
  std::string_view find(char code) const;
  bool has(char code) const;
  std::string_view raw() const { return raw_; }
  bool operator==(const FieldList&) const = default;

 private:
  std::string_view raw_;
};

template <char Type>
struct FieldsMessage {
  static constexpr char kType = Type;
  FieldList fields;

  std::string_view severity() const { return fields.find(field::kSeverity); }
  // 'V' (PostgreSQL 9.6+): never localized; falls back to 'S'.
  std::string_view severity_nonlocalized() const {
    return fields.has(field::kSeverityNonLocalized) ? fields.find(field::kSeverityNonLocalized)
                                                    : severity();
  }
  std::string_view sqlstate() const { return fields.find(field::kSqlState); }
  std::string_view message() const { return fields.find(field::kMessage); }
  std::string_view detail() const { return fields.find(field::kDetail); }
  std::string_view hint() const { return fields.find(field::kHint); }
  std::string_view position() const { return fields.find(field::kPosition); }
  std::string_view internal_position() const { return fields.find(field::kInternalPosition); }
  std::string_view internal_query() const { return fields.find(field::kInternalQuery); }
  std::string_view where() const { return fields.find(field::kWhere); }
  std::string_view schema() const { return fields.find(field::kSchema); }
  std::string_view table() const { return fields.find(field::kTable); }
  std::string_view column() const { return fields.find(field::kColumn); }
  std::string_view data_type() const { return fields.find(field::kDataType); }
  std::string_view constraint() const { return fields.find(field::kConstraint); }
  std::string_view file() const { return fields.find(field::kFile); }
  std::string_view line() const { return fields.find(field::kLine); }
  std::string_view routine() const { return fields.find(field::kRoutine); }
  bool operator==(const FieldsMessage&) const = default;
};
using ErrorResponse = FieldsMessage<backend::kErrorResponse>;
using NoticeResponse = FieldsMessage<backend::kNoticeResponse>;
bool decode_fields(std::string_view body, FieldList& out);
template <char Type>
bool decode(std::string_view body, FieldsMessage<Type>& out) {
  return decode_fields(body, out.fields);
}
void encode_fields_raw(std::string& out, char type, const FieldList& fields);
template <char Type>
void encode(std::string& out, const FieldsMessage<Type>& m) {
  encode_fields_raw(out, Type, m.fields);
}
// An ErrorResponse ('E') or NoticeResponse ('N') from fields; a field with code 0 or a value
// containing NUL is skipped (it cannot be represented).
void encode_fields(std::string& out, char type, std::span<const Field> fields);

struct FunctionCallResponse {
  static constexpr char kType = backend::kFunctionCallResponse;
  Value result;
  bool operator==(const FunctionCallResponse&) const = default;
};
bool decode(std::string_view body, FunctionCallResponse& out);
void encode(std::string& out, const FunctionCallResponse& m);

struct NegotiateProtocolVersion {
  static constexpr char kType = backend::kNegotiateProtocolVersion;
  uint32_t newest_version = kProtocolVersion3;  // major << 16 | newest supported minor
  StringList unrecognized_options;              // _pq_. options the server did not recognise
  bool operator==(const NegotiateProtocolVersion&) const = default;
};
bool decode(std::string_view body, NegotiateProtocolVersion& out);
void encode(std::string& out, const NegotiateProtocolVersion& m);
void encode_negotiate_protocol_version(std::string& out, uint32_t newest_version,
                                       std::span<const std::string_view> unrecognized_options);

struct NotificationResponse {
  static constexpr char kType = backend::kNotificationResponse;
  int32_t process_id = 0;
  std::string_view channel;
  std::string_view payload;
  bool operator==(const NotificationResponse&) const = default;
};
bool decode(std::string_view body, NotificationResponse& out);
void encode(std::string& out, const NotificationResponse& m);

struct ParameterDescription {
  static constexpr char kType = backend::kParameterDescription;
  Uint32List type_oids;
  bool operator==(const ParameterDescription&) const = default;
};
bool decode(std::string_view body, ParameterDescription& out);
void encode(std::string& out, const ParameterDescription& m);
void encode_parameter_description(std::string& out, std::span<const uint32_t> type_oids);

struct ParameterStatus {
  static constexpr char kType = backend::kParameterStatus;
  std::string_view name;
  std::string_view value;
  bool operator==(const ParameterStatus&) const = default;
};
bool decode(std::string_view body, ParameterStatus& out);
void encode(std::string& out, const ParameterStatus& m);

// ReadyForQuery transaction status.
inline constexpr char kTxIdle = 'I';
inline constexpr char kTxInBlock = 'T';
inline constexpr char kTxFailed = 'E';

struct ReadyForQuery {
  static constexpr char kType = backend::kReadyForQuery;
  char status = kTxIdle;  // I, T or E; anything else does not decode
  bool operator==(const ReadyForQuery&) const = default;
};
bool decode(std::string_view body, ReadyForQuery& out);
void encode(std::string& out, const ReadyForQuery& m);

struct ColumnDescription {
  std::string_view name;
  uint32_t table_oid = 0;
  int16_t column_number = 0;
  uint32_t type_oid = 0;
  int16_t type_size = 0;
  int32_t type_modifier = 0;
  int16_t format = 0;
  bool operator==(const ColumnDescription&) const = default;
};

class RowDescription {
 public:
  static constexpr char kType = backend::kRowDescription;

  class Iterator {
   public:
    using value_type = ColumnDescription;
    using difference_type = std::ptrdiff_t;
    Iterator() = default;
    Iterator(std::string_view rest, size_t left) : rest_(rest), left_(left) { load(); }
    const ColumnDescription& operator*() const { return current_; }
    const ColumnDescription* operator->() const { return &current_; }
    Iterator& operator++();
    Iterator operator++(int) {
      Iterator copy = *this;
      ++*this;
      return copy;
    }
    bool operator==(const Iterator& o) const { return left_ == o.left_; }

   private:
    void load();
    std::string_view rest_;
    size_t left_ = 0;
    size_t consumed_ = 0;
    ColumnDescription current_;
  };

  RowDescription() = default;
  RowDescription(uint16_t count, std::string_view raw) : count_(count), raw_(raw) {}
  size_t size() const { return count_; }
  Iterator begin() const { return Iterator(raw_, count_); }
  Iterator end() const { return Iterator(); }
  std::string_view raw() const { return raw_; }
  bool operator==(const RowDescription&) const = default;

 private:
  uint16_t count_ = 0;
  std::string_view raw_;
};
bool decode(std::string_view body, RowDescription& out);
void encode(std::string& out, const RowDescription& m);
void encode_row_description(std::string& out, std::span<const ColumnDescription> columns);

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

// ------------------------------------------------------------------------------------------------
// By type byte

// Whether `body` decodes as the message `type` of that direction ('p': any of its four forms).
// False for types that do not exist in that direction.
bool well_formed(Direction dir, char type, std::string_view body);
// "Bind", "ErrorResponse", ...; "Unknown" for types that do not exist in that direction.
std::string_view message_name(Direction dir, char type);

}  // namespace pgtandem::protocol

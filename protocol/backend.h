// Backend messages (server -> client), decoded into views and encoded whole: the conventions in
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
// Inline: with mirroring on, every statement's answer passes here twice (the capture reads the
// primary's, the mirror link the target's). The body is the tag and its NUL, nothing else.
inline bool decode(std::string_view body, CommandComplete& out) {
  if (body.empty() || body.back() != '\0') return false;
  const std::string_view tag(body.data(), body.size() - 1);
  if (tag.find('\0') != std::string_view::npos) return false;
  out.tag = tag;
  return true;
}
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

}  // namespace pgtandem::protocol

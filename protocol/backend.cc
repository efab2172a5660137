#include "protocol/backend.h"

#include "protocol/wire_detail.h"

namespace pgtandem::protocol {

using namespace detail;  // NOLINT

// Views into backend messages

void FieldList::Iterator::load() {
  done_ = true;
  if (rest_.empty() || rest_[0] == '\0') return;
  size_t nul = rest_.find('\0', 1);
  if (nul == std::string_view::npos) return;
  current_ = Field{rest_[0], rest_.substr(1, nul - 1)};
  done_ = false;
}

FieldList::Iterator& FieldList::Iterator::operator++() {
  if (done_) return *this;
  rest_.remove_prefix(current_.value.size() + 2);
  load();
  return *this;
}

std::string_view FieldList::find(char code) const {
  for (const Field& f : *this) {
    if (f.code == code) return f.value;
  }
  return {};
}

bool FieldList::has(char code) const {
  for (const Field& f : *this) {
    if (f.code == code) return true;
  }
  return false;
}

void RowDescription::Iterator::load() {
  if (left_ == 0) return;
  Reader r(rest_);
  ColumnDescription c;
  if (!r.cstring(c.name) || !r.u32(c.table_oid) || !r.i16(c.column_number) || !r.u32(c.type_oid) ||
      !r.i16(c.type_size) || !r.i32(c.type_modifier) || !r.i16(c.format)) {
    left_ = 0;
    return;
  }
  current_ = c;
  consumed_ = r.position();
}

RowDescription::Iterator& RowDescription::Iterator::operator++() {
  if (left_ == 0) return *this;
  rest_.remove_prefix(consumed_);
  --left_;
  load();
  return *this;
}

// ------------------------------------------------------------------------------------------------
// Backend messages

StringList Authentication::sasl_mechanisms() const {
  if (code != kAuthSasl) return {};
  uint32_t count = 0;
  for (char c : data) count += c == '\0';
  return StringList(count, data);
}

bool decode(std::string_view body, Authentication& out) {
  Reader r(body);
  int32_t code;
  if (!r.i32(code)) return false;
  std::string_view data = r.rest();
  switch (code) {
    case kAuthOk:
    case kAuthKerberosV5:
    case kAuthCleartextPassword:
    case kAuthScmCredential:
    case kAuthGss:
    case kAuthSspi:
      if (!data.empty()) return false;
      break;
    case kAuthMd5Password:
      if (data.size() != 4) return false;
      break;
    case kAuthSasl: {
      // Mechanism names, each NUL-terminated, then an empty name.
      Reader list(data);
      std::string_view name;
      do {
        if (!list.cstring(name)) return false;
      } while (!name.empty());
      if (!list.at_end()) return false;
      data.remove_suffix(1);
      break;
    }
    default:  // GSSContinue, SASLContinue, SASLFinal: opaque payloads
      break;
  }
  out.code = code;
  out.data = data;
  return true;
}

void encode(std::string& out, const Authentication& m) {
  size_t start = begin_message(out, Authentication::kType);
  put_i32(out, m.code);
  put_bytes(out, m.data);
  if (m.code == kAuthSasl) out.push_back('\0');
  end_message(out, start);
}

void encode_authentication_sasl(std::string& out, std::span<const std::string_view> mechanisms) {
  size_t start = begin_message(out, Authentication::kType);
  put_i32(out, kAuthSasl);
  for (std::string_view m : mechanisms) put_cstring(out, m);
  out.push_back('\0');
  end_message(out, start);
}

bool encode_sasl_without_mechanism(std::string& out, std::string_view body,
                                   std::string_view mechanism) {
  Authentication auth;
  if (!decode(body, auth) || auth.code != kAuthSasl) return false;
  bool found = false;
  for (std::string_view m : auth.sasl_mechanisms()) found = found || m == mechanism;
  if (!found) return false;
  size_t start = begin_message(out, Authentication::kType);
  put_i32(out, kAuthSasl);
  for (std::string_view m : auth.sasl_mechanisms()) {
    if (m != mechanism) put_cstring(out, m);
  }
  out.push_back('\0');
  end_message(out, start);
  return true;
}

bool decode(std::string_view body, BackendKeyData& out) {
  Reader r(body);
  BackendKeyData m;
  if (!r.i32(m.process_id) || !r.i32(m.secret_key) || !r.at_end()) return false;
  out = m;
  return true;
}

void encode(std::string& out, const BackendKeyData& m) {
  size_t start = begin_message(out, BackendKeyData::kType);
  put_i32(out, m.process_id);
  put_i32(out, m.secret_key);
  end_message(out, start);
}

void encode(std::string& out, const CommandComplete& m) {
  size_t start = begin_message(out, CommandComplete::kType);
  put_cstring(out, m.tag);
  end_message(out, start);
}

bool command_tag_rows(std::string_view tag, uint64_t& rows) {
  size_t space = tag.rfind(' ');
  if (space == std::string_view::npos) return false;
  uint64_t n;
  if (!parse_u64(tag.substr(space + 1), n)) return false;
  std::string_view command = tag.substr(0, space);
  if (command.starts_with("INSERT ")) {
    // "INSERT oid rows"; the oid is always 0 since PostgreSQL 12.
    if (!is_digits(command.substr(7))) return false;
  } else if (command != "DELETE" && command != "UPDATE" && command != "MERGE" &&
             command != "SELECT" && command != "MOVE" && command != "FETCH" && command != "COPY") {
    return false;
  }
  rows = n;
  return true;
}

std::string_view command_tag_name(std::string_view tag) {
  for (;;) {
    size_t space = tag.rfind(' ');
    if (space == std::string_view::npos || !is_digits(tag.substr(space + 1))) return tag;
    tag = tag.substr(0, space);
  }
}

bool decode(std::string_view body, CopyData& out) {
  out.data = body;
  return true;
}

void encode(std::string& out, const CopyData& m) {
  size_t start = begin_message(out, CopyData::kType);
  put_bytes(out, m.data);
  end_message(out, start);
}

bool decode_copy_response(std::string_view body, uint8_t& format, Int16List& column_formats) {
  Reader r(body);
  uint8_t f;
  Int16List formats;
  if (!r.u8(f) || !read_int16_list(r, formats) || !r.at_end()) return false;
  format = f;
  column_formats = formats;
  return true;
}

void encode_copy_response(std::string& out, char type, uint8_t format,
                          std::span<const int16_t> column_formats) {
  size_t start = begin_message(out, type);
  put_u8(out, format);
  put_int16_span(out, column_formats);
  end_message(out, start);
}

void encode_copy_response_raw(std::string& out, char type, uint8_t format,
                              const Int16List& formats) {
  size_t start = begin_message(out, type);
  put_u8(out, format);
  put_int16_list(out, formats);
  end_message(out, start);
}

bool decode(std::string_view body, DataRow& out) {
  Reader r(body);
  uint16_t n;
  ValueList columns;
  if (!r.u16(n) || !read_values(r, body, n, columns) || !r.at_end()) return false;
  out.columns = columns;
  return true;
}

void encode(std::string& out, const DataRow& m) {
  size_t start = begin_message(out, DataRow::kType);
  put_u16(out, static_cast<uint16_t>(m.columns.size()));
  put_bytes(out, m.columns.raw());
  end_message(out, start);
}

void encode_data_row(std::string& out, std::span<const Value> columns) {
  size_t start = begin_message(out, DataRow::kType);
  put_values(out, columns);
  end_message(out, start);
}

bool decode_fields(std::string_view body, FieldList& out) {
  Reader r(body);
  for (;;) {
    uint8_t code;
    if (!r.u8(code)) return false;
    if (code == 0) break;
    std::string_view value;
    if (!r.cstring(value)) return false;
  }
  if (!r.at_end()) return false;
  out = FieldList(body.substr(0, body.size() - 1));
  return true;
}

void encode_fields_raw(std::string& out, char type, const FieldList& fields) {
  size_t start = begin_message(out, type);
  put_bytes(out, fields.raw());
  out.push_back('\0');
  end_message(out, start);
}

void encode_fields(std::string& out, char type, std::span<const Field> fields) {
  size_t start = begin_message(out, type);
  for (const Field& f : fields) {
    if (f.code == '\0' || f.value.find('\0') != std::string_view::npos) continue;
    out.push_back(f.code);
    put_cstring(out, f.value);
  }
  out.push_back('\0');
  end_message(out, start);
}

bool decode(std::string_view body, FunctionCallResponse& out) {
  Reader r(body);
  Value v;
  if (!read_value(r, v) || !r.at_end()) return false;
  out.result = v;
  return true;
}

void encode(std::string& out, const FunctionCallResponse& m) {
  size_t start = begin_message(out, FunctionCallResponse::kType);
  put_value(out, m.result);
  end_message(out, start);
}

bool decode(std::string_view body, NegotiateProtocolVersion& out) {
  Reader r(body);
  uint32_t version, count;
  if (!r.u32(version) || !r.u32(count)) return false;
  size_t start = r.position();
  std::string_view name;
  // Each name takes at least one byte, which bounds the loop by the body size.
  if (count > r.remaining()) return false;
  for (uint32_t i = 0; i < count; ++i) {
    if (!r.cstring(name)) return false;
  }
  if (!r.at_end()) return false;
  out.newest_version = version;
  out.unrecognized_options = StringList(count, body.substr(start));
  return true;
}

void encode(std::string& out, const NegotiateProtocolVersion& m) {
  size_t start = begin_message(out, NegotiateProtocolVersion::kType);
  put_u32(out, m.newest_version);
  put_u32(out, static_cast<uint32_t>(m.unrecognized_options.size()));
  put_bytes(out, m.unrecognized_options.raw());
  end_message(out, start);
}

void encode_negotiate_protocol_version(std::string& out, uint32_t newest_version,
                                       std::span<const std::string_view> unrecognized_options) {
  size_t start = begin_message(out, NegotiateProtocolVersion::kType);
  put_u32(out, newest_version);
  put_u32(out, static_cast<uint32_t>(unrecognized_options.size()));
  for (std::string_view o : unrecognized_options) put_cstring(out, o);
  end_message(out, start);
}

bool decode(std::string_view body, NotificationResponse& out) {
  Reader r(body);
  NotificationResponse m;
  if (!r.i32(m.process_id) || !r.cstring(m.channel) || !r.cstring(m.payload) || !r.at_end()) {
    return false;
  }
  out = m;
  return true;
}

void encode(std::string& out, const NotificationResponse& m) {
  size_t start = begin_message(out, NotificationResponse::kType);
  put_i32(out, m.process_id);
  put_cstring(out, m.channel);
  put_cstring(out, m.payload);
  end_message(out, start);
}

bool decode(std::string_view body, ParameterDescription& out) {
  Reader r(body);
  Uint32List oids;
  if (!read_uint32_list(r, oids) || !r.at_end()) return false;
  out.type_oids = oids;
  return true;
}

void encode(std::string& out, const ParameterDescription& m) {
  size_t start = begin_message(out, ParameterDescription::kType);
  put_u16(out, static_cast<uint16_t>(m.type_oids.size()));
  put_bytes(out, m.type_oids.raw());
  end_message(out, start);
}

void encode_parameter_description(std::string& out, std::span<const uint32_t> type_oids) {
  size_t start = begin_message(out, ParameterDescription::kType);
  put_u16(out, static_cast<uint16_t>(type_oids.size()));
  for (uint32_t oid : type_oids) put_u32(out, oid);
  end_message(out, start);
}

bool decode(std::string_view body, ParameterStatus& out) {
  Reader r(body);
  ParameterStatus m;
  if (!r.cstring(m.name) || !r.cstring(m.value) || !r.at_end()) return false;
  out = m;
  return true;
}

void encode(std::string& out, const ParameterStatus& m) {
  size_t start = begin_message(out, ParameterStatus::kType);
  put_cstring(out, m.name);
  put_cstring(out, m.value);
  end_message(out, start);
}

bool decode(std::string_view body, ReadyForQuery& out) {
  if (body.size() != 1) return false;
  char s = body[0];
  if (s != kTxIdle && s != kTxInBlock && s != kTxFailed) return false;
  out.status = s;
  return true;
}

void encode(std::string& out, const ReadyForQuery& m) {
  size_t start = begin_message(out, ReadyForQuery::kType);
  out.push_back(m.status);
  end_message(out, start);
}

bool decode(std::string_view body, RowDescription& out) {
  Reader r(body);
  uint16_t n;
  if (!r.u16(n)) return false;
  size_t start = r.position();
  ColumnDescription c;
  for (uint16_t i = 0; i < n; ++i) {
    if (!r.cstring(c.name) || !r.u32(c.table_oid) || !r.i16(c.column_number) ||
        !r.u32(c.type_oid) || !r.i16(c.type_size) || !r.i32(c.type_modifier) || !r.i16(c.format)) {
      return false;
    }
  }
  if (!r.at_end()) return false;
  out = RowDescription(n, body.substr(start));
  return true;
}

void encode(std::string& out, const RowDescription& m) {
  size_t start = begin_message(out, RowDescription::kType);
  put_u16(out, static_cast<uint16_t>(m.size()));
  put_bytes(out, m.raw());
  end_message(out, start);
}

void encode_row_description(std::string& out, std::span<const ColumnDescription> columns) {
  size_t start = begin_message(out, RowDescription::kType);
  put_u16(out, static_cast<uint16_t>(columns.size()));
  for (const ColumnDescription& c : columns) {
    put_cstring(out, c.name);
    put_u32(out, c.table_oid);
    put_i16(out, c.column_number);
    put_u32(out, c.type_oid);
    put_i16(out, c.type_size);
    put_i32(out, c.type_modifier);
    put_i16(out, c.format);
  }
  end_message(out, start);
}

}  // namespace pgtandem::protocol

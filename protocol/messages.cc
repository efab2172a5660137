#include "protocol/messages.h"

namespace pgtandem::protocol {

// ------------------------------------------------------------------------------------------------
// Building blocks

size_t begin_message(std::string& out, char type) {
  size_t start = out.size();
  out.push_back(type);
  out.append(4, '\0');
  return start;
}

void end_message(std::string& out, size_t start) {
  uint32_t length = static_cast<uint32_t>(out.size() - start - 1);
  uint32_t be = __builtin_bswap32(length);
  std::memcpy(out.data() + start + 1, &be, 4);
}

void put_u8(std::string& out, uint8_t v) { out.push_back(static_cast<char>(v)); }
void put_i16(std::string& out, int16_t v) { put_u16(out, static_cast<uint16_t>(v)); }
void put_u16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xff));
}
void put_i32(std::string& out, int32_t v) { put_u32(out, static_cast<uint32_t>(v)); }
void put_u32(std::string& out, uint32_t v) {
  uint32_t be = __builtin_bswap32(v);
  out.append(reinterpret_cast<const char*>(&be), 4);
}
void put_cstring(std::string& out, std::string_view s) {
  out.append(s);
  out.push_back('\0');
}
void put_bytes(std::string& out, std::string_view s) { out.append(s); }

bool Reader::u8(uint8_t& v) {
  if (remaining() < 1) return false;
  v = static_cast<uint8_t>(data_[pos_]);
  pos_ += 1;
  return true;
}
bool Reader::i16(int16_t& v) {
  uint16_t u;
  if (!u16(u)) return false;
  v = static_cast<int16_t>(u);
  return true;
}
bool Reader::u16(uint16_t& v) {
  if (remaining() < 2) return false;
  v = read_u16(data_.data() + pos_);
  pos_ += 2;
  return true;
}
bool Reader::i32(int32_t& v) {
  uint32_t u;
  if (!u32(u)) return false;
  v = static_cast<int32_t>(u);
  return true;
}
bool Reader::u32(uint32_t& v) {
  if (remaining() < 4) return false;
  v = read_u32(data_.data() + pos_);
  pos_ += 4;
  return true;
}
bool Reader::bytes(size_t n, std::string_view& v) {
  if (remaining() < n) return false;
  v = data_.substr(pos_, n);
  pos_ += n;
  return true;
}
bool Reader::cstring(std::string_view& v) {
  size_t nul = data_.find('\0', pos_);
  if (nul == std::string_view::npos) return false;
  v = data_.substr(pos_, nul - pos_);
  pos_ = nul + 1;
  return true;
}
std::string_view Reader::rest() {
  std::string_view v = data_.substr(pos_);
  pos_ = data_.size();
  return v;
}

namespace {

// Reads a length-prefixed value (-1 = NULL).
bool read_value(Reader& r, Value& v) {
  int32_t len;
  if (!r.i32(len)) return false;
  if (len == -1) {
    v = Value::null();
    return true;
  }
  if (len < 0) return false;
  v.is_null = false;
  return r.bytes(static_cast<size_t>(len), v.data);
}

// Reads `count` length-prefixed values and returns the bytes they span.
bool read_values(Reader& r, std::string_view body, uint16_t count, ValueList& out) {
  size_t start = r.position();
  Value v;
  for (uint16_t i = 0; i < count; ++i) {
    if (!read_value(r, v)) return false;
  }
  out = ValueList(count, body.substr(start, r.position() - start));
  return true;
}

bool read_int16_list(Reader& r, Int16List& out) {
  uint16_t n;
  std::string_view raw;
  if (!r.u16(n) || !r.bytes(size_t{n} * 2, raw)) return false;
  out = Int16List(raw);
  return true;
}

bool read_uint32_list(Reader& r, Uint32List& out) {
  uint16_t n;
  std::string_view raw;
  if (!r.u16(n) || !r.bytes(size_t{n} * 4, raw)) return false;
  out = Uint32List(raw);
  return true;
}

void put_value(std::string& out, const Value& v) {
  if (v.is_null) {
    put_i32(out, -1);
    return;
  }
  put_i32(out, static_cast<int32_t>(v.data.size()));
  put_bytes(out, v.data);
}

// Counts are Int16 on the wire; the list sizes below always come from one.
void put_int16_list(std::string& out, const Int16List& l) {
  put_u16(out, static_cast<uint16_t>(l.size()));
  put_bytes(out, l.raw());
}
void put_int16_span(std::string& out, std::span<const int16_t> l) {
  put_u16(out, static_cast<uint16_t>(l.size()));
  for (int16_t v : l) put_i16(out, v);
}
void put_values(std::string& out, std::span<const Value> values) {
  put_u16(out, static_cast<uint16_t>(values.size()));
  for (const Value& v : values) put_value(out, v);
}

bool is_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

bool parse_u64(std::string_view s, uint64_t& v) {
  if (!is_digits(s)) return false;
  uint64_t acc = 0;
  for (char c : s) {
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (acc > (UINT64_MAX - d) / 10) return false;
    acc = acc * 10 + d;
  }
  v = acc;
  return true;
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// Views

void ValueList::Iterator::load() {
  if (left_ == 0) return;
  if (rest_.size() < 4) {
    left_ = 0;
    return;
  }
  int32_t len = static_cast<int32_t>(read_u32(rest_.data()));
  if (len == -1) {
    current_ = Value::null();
    consumed_ = 4;
    return;
  }
  if (len < 0 || static_cast<size_t>(len) > rest_.size() - 4) {
    left_ = 0;
    return;
  }
  current_ = Value::of(rest_.substr(4, static_cast<size_t>(len)));
  consumed_ = 4 + static_cast<size_t>(len);
}

ValueList::Iterator& ValueList::Iterator::operator++() {
  if (left_ == 0) return *this;
  rest_.remove_prefix(consumed_);
  --left_;
  load();
  return *this;
}

bool ValueList::at(size_t i, Value& v) const {
  size_t index = 0;
  for (const Value& each : *this) {
    if (index++ == i) {
      v = each;
      return true;
    }
  }
  return false;
}

void StringList::Iterator::load() {
  size_t nul = rest_.find('\0');
  done_ = rest_.empty() || nul == std::string_view::npos;
  current_ = done_ ? std::string_view() : rest_.substr(0, nul);
}

StringList::Iterator& StringList::Iterator::operator++() {
  if (done_) return *this;
  rest_.remove_prefix(current_.size() + 1);
  load();
  return *this;
}

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

bool decode(std::string_view body, CommandComplete& out) {
  Reader r(body);
  std::string_view tag;
  if (!r.cstring(tag) || !r.at_end()) return false;
  out.tag = tag;
  return true;
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

// ------------------------------------------------------------------------------------------------
// Frontend messages

bool decode(std::string_view body, Bind& out) {
  Reader r(body);
  Bind m;
  uint16_t nparams;
  if (!r.cstring(m.portal) || !r.cstring(m.statement) || !read_int16_list(r, m.param_formats) ||
      !r.u16(nparams) || !read_values(r, body, nparams, m.params) ||
      !read_int16_list(r, m.result_formats) || !r.at_end()) {
    return false;
  }
  out = m;
  return true;
}

void encode(std::string& out, const Bind& m) {
  size_t start = begin_message(out, Bind::kType);
  put_cstring(out, m.portal);
  put_cstring(out, m.statement);
  put_int16_list(out, m.param_formats);
  put_u16(out, static_cast<uint16_t>(m.params.size()));
  put_bytes(out, m.params.raw());
  put_int16_list(out, m.result_formats);
  end_message(out, start);
}

void encode_bind(std::string& out, std::string_view portal, std::string_view statement,
                 std::span<const int16_t> param_formats, std::span<const Value> params,
                 std::span<const int16_t> result_formats) {
  size_t start = begin_message(out, Bind::kType);
  put_cstring(out, portal);
  put_cstring(out, statement);
  put_int16_span(out, param_formats);
  put_values(out, params);
  put_int16_span(out, result_formats);
  end_message(out, start);
}

namespace {

bool decode_target(std::string_view body, char& target, std::string_view& name) {
  Reader r(body);
  uint8_t t;
  std::string_view n;
  if (!r.u8(t) || !r.cstring(n) || !r.at_end()) return false;
  if (t != kTargetStatement && t != kTargetPortal) return false;
  target = static_cast<char>(t);
  name = n;
  return true;
}

void encode_target(std::string& out, char type, char target, std::string_view name) {
  size_t start = begin_message(out, type);
  out.push_back(target);
  put_cstring(out, name);
  end_message(out, start);
}

bool decode_cstring_body(std::string_view body, std::string_view& s) {
  Reader r(body);
  std::string_view v;
  if (!r.cstring(v) || !r.at_end()) return false;
  s = v;
  return true;
}

void encode_cstring_body(std::string& out, char type, std::string_view s) {
  size_t start = begin_message(out, type);
  put_cstring(out, s);
  end_message(out, start);
}

void encode_raw_body(std::string& out, char type, std::string_view s) {
  size_t start = begin_message(out, type);
  put_bytes(out, s);
  end_message(out, start);
}

}  // namespace

bool decode(std::string_view body, Close& out) { return decode_target(body, out.target, out.name); }
void encode(std::string& out, const Close& m) {
  encode_target(out, Close::kType, m.target, m.name);
}

bool decode(std::string_view body, Describe& out) {
  return decode_target(body, out.target, out.name);
}
void encode(std::string& out, const Describe& m) {
  encode_target(out, Describe::kType, m.target, m.name);
}

bool decode(std::string_view body, CopyFail& out) { return decode_cstring_body(body, out.message); }
void encode(std::string& out, const CopyFail& m) {
  encode_cstring_body(out, CopyFail::kType, m.message);
}

bool decode(std::string_view body, Execute& out) {
  Reader r(body);
  Execute m;
  if (!r.cstring(m.portal) || !r.i32(m.max_rows) || !r.at_end()) return false;
  out = m;
  return true;
}

void encode(std::string& out, const Execute& m) {
  size_t start = begin_message(out, Execute::kType);
  put_cstring(out, m.portal);
  put_i32(out, m.max_rows);
  end_message(out, start);
}

bool decode(std::string_view body, FunctionCall& out) {
  Reader r(body);
  FunctionCall m;
  uint16_t nargs;
  if (!r.u32(m.function_oid) || !read_int16_list(r, m.arg_formats) || !r.u16(nargs) ||
      !read_values(r, body, nargs, m.args) || !r.i16(m.result_format) || !r.at_end()) {
    return false;
  }
  out = m;
  return true;
}

void encode(std::string& out, const FunctionCall& m) {
  size_t start = begin_message(out, FunctionCall::kType);
  put_u32(out, m.function_oid);
  put_int16_list(out, m.arg_formats);
  put_u16(out, static_cast<uint16_t>(m.args.size()));
  put_bytes(out, m.args.raw());
  put_i16(out, m.result_format);
  end_message(out, start);
}

void encode_function_call(std::string& out, uint32_t function_oid,
                          std::span<const int16_t> arg_formats, std::span<const Value> args,
                          int16_t result_format) {
  size_t start = begin_message(out, FunctionCall::kType);
  put_u32(out, function_oid);
  put_int16_span(out, arg_formats);
  put_values(out, args);
  put_i16(out, result_format);
  end_message(out, start);
}

bool decode(std::string_view body, Parse& out) {
  Reader r(body);
  Parse m;
  if (!r.cstring(m.name) || !r.cstring(m.query) || !read_uint32_list(r, m.param_types) ||
      !r.at_end()) {
    return false;
  }
  out = m;
  return true;
}

void encode(std::string& out, const Parse& m) {
  size_t start = begin_message(out, Parse::kType);
  put_cstring(out, m.name);
  put_cstring(out, m.query);
  put_u16(out, static_cast<uint16_t>(m.param_types.size()));
  put_bytes(out, m.param_types.raw());
  end_message(out, start);
}

void encode_parse(std::string& out, std::string_view name, std::string_view query,
                  std::span<const uint32_t> param_types) {
  size_t start = begin_message(out, Parse::kType);
  put_cstring(out, name);
  put_cstring(out, query);
  put_u16(out, static_cast<uint16_t>(param_types.size()));
  for (uint32_t oid : param_types) put_u32(out, oid);
  end_message(out, start);
}

bool decode(std::string_view body, Query& out) { return decode_cstring_body(body, out.sql); }
void encode(std::string& out, const Query& m) { encode_cstring_body(out, Query::kType, m.sql); }

bool decode(std::string_view body, PasswordMessage& out) {
  return decode_cstring_body(body, out.password);
}
void encode(std::string& out, const PasswordMessage& m) {
  encode_cstring_body(out, PasswordMessage::kType, m.password);
}

bool decode(std::string_view body, SaslInitialResponse& out) {
  Reader r(body);
  SaslInitialResponse m;
  if (!r.cstring(m.mechanism) || !read_value(r, m.data) || !r.at_end()) return false;
  out = m;
  return true;
}

void encode(std::string& out, const SaslInitialResponse& m) {
  size_t start = begin_message(out, SaslInitialResponse::kType);
  put_cstring(out, m.mechanism);
  put_value(out, m.data);
  end_message(out, start);
}

bool decode(std::string_view body, SaslResponse& out) {
  out.data = body;
  return true;
}
void encode(std::string& out, const SaslResponse& m) {
  encode_raw_body(out, SaslResponse::kType, m.data);
}

bool decode(std::string_view body, GssResponse& out) {
  out.data = body;
  return true;
}
void encode(std::string& out, const GssResponse& m) {
  encode_raw_body(out, GssResponse::kType, m.data);
}

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
  const size_t p = body.find('\0');
  if (p == std::string_view::npos) return false;
  const size_t q = body.find('\0', p + 1);
  if (q == std::string_view::npos) return false;
  *portal = body.substr(0, p);
  *statement = body.substr(p + 1, q - p - 1);
  return true;
}

}  // namespace pgtandem::protocol

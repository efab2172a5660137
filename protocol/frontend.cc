#include "protocol/frontend.h"

#include "protocol/wire_detail.h"

namespace pgtandem::protocol {

using namespace detail;  // NOLINT

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

}  // namespace pgtandem::protocol

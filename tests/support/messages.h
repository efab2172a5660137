// Test message builders: whole protocol messages (type byte, length, body) as clients and servers
// send them, built with protocol/'s own encoders. One set for every unit test; header-only.
//
// Names end in _msg where the short name is also a POSIX function (sync, close) or a word tests
// like to use for something else (bind).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/errors.h"
#include "protocol/framing.h"
#include "protocol/message_types.h"
#include "protocol/messages.h"

namespace pgtandem::test {

// Any body under a type byte and its length (also bodies no real message has).
inline std::string frame(char type, std::string_view body) {
  std::string out;
  const size_t begin = protocol::begin_message(out, type);
  out += body;
  protocol::end_message(out, begin);
  return out;
}

// ------------------------------------------------------------------------------------------------
// Frontend messages, whole, as a client sends them

inline std::string query(std::string_view sql) {
  std::string out;
  protocol::encode(out, protocol::Query{sql});
  return out;
}
inline std::string parse(std::string_view name, std::string_view sql,
                         std::initializer_list<uint32_t> param_types = {}) {
  std::string out;
  protocol::encode_parse(out, name, sql,
                         std::span<const uint32_t>(param_types.begin(), param_types.size()));
  return out;
}
// A Bind of text parameters with no parameter format codes (all text). By default one result
// format code (text), as libpq sends it.
inline std::string bind_msg(std::string_view portal, std::string_view statement,
                            std::initializer_list<std::string_view> params = {},
                            std::initializer_list<int16_t> result_formats = {0}) {
  std::vector<protocol::Value> values;
  for (auto p : params) values.push_back(protocol::Value::of(p));
  std::string out;
  protocol::encode_bind(out, portal, statement, {}, values,
                        std::span<const int16_t>(result_formats.begin(), result_formats.size()));
  return out;
}
// JDBC's Bind of binary parameters: one format code per parameter, no result format codes.
inline std::string bind_binary(std::string_view statement,
                               std::initializer_list<std::string_view> params) {
  std::vector<protocol::Value> values;
  std::vector<int16_t> formats;
  for (auto p : params) {
    values.push_back(protocol::Value::of(p));
    formats.push_back(1);
  }
  std::string out;
  protocol::encode_bind(out, "", statement, formats, values, {});
  return out;
}
inline std::string describe(char target, std::string_view name = "") {
  std::string out;
  protocol::encode(out, protocol::Describe{target, name});
  return out;
}
inline std::string execute(std::string_view portal = "", int32_t max_rows = 0) {
  std::string out;
  protocol::encode(out, protocol::Execute{portal, max_rows});
  return out;
}
inline std::string sync_msg() {
  std::string out;
  protocol::encode(out, protocol::Sync{});
  return out;
}
inline std::string flush() {
  std::string out;
  protocol::encode(out, protocol::Flush{});
  return out;
}
inline std::string close_msg(char target, std::string_view name) {
  std::string out;
  protocol::encode(out, protocol::Close{target, name});
  return out;
}
inline std::string copy_data(std::string_view data) {
  std::string out;
  protocol::encode(out, protocol::CopyData{data});
  return out;
}
inline std::string copy_done() {
  std::string out;
  protocol::encode(out, protocol::CopyDone{});
  return out;
}
inline std::string copy_fail(std::string_view message) {
  std::string out;
  protocol::encode(out, protocol::CopyFail{message});
  return out;
}
inline std::string function_call(uint32_t oid, std::initializer_list<std::string_view> args) {
  std::vector<protocol::Value> values;
  for (auto a : args) values.push_back(protocol::Value::of(a));
  std::string out;
  protocol::encode_function_call(out, oid, {}, values, 0);
  return out;
}
inline std::string terminate() {
  std::string out;
  protocol::encode(out, protocol::Terminate{});
  return out;
}

// libpq: PQsendQueryParams (pgbench -M extended), PQsendQueryPrepared (-M prepared), PQprepare.
inline std::string query_params(std::string_view sql,
                                std::initializer_list<std::string_view> params = {}) {
  return parse("", sql) + bind_msg("", "", params) + describe(protocol::kTargetPortal) +
         execute() + sync_msg();
}
inline std::string query_prepared(std::string_view name,
                                  std::initializer_list<std::string_view> params = {}) {
  return bind_msg("", name, params) + describe(protocol::kTargetPortal) + execute() + sync_msg();
}
inline std::string prepare(std::string_view name, std::string_view sql) {
  return parse(name, sql) + sync_msg();
}

// ------------------------------------------------------------------------------------------------
// Backend messages, as a server answers

inline std::string parse_complete() {
  std::string out;
  protocol::encode(out, protocol::ParseComplete{});
  return out;
}
inline std::string bind_complete() {
  std::string out;
  protocol::encode(out, protocol::BindComplete{});
  return out;
}
inline std::string close_complete() {
  std::string out;
  protocol::encode(out, protocol::CloseComplete{});
  return out;
}
inline std::string no_data() {
  std::string out;
  protocol::encode(out, protocol::NoData{});
  return out;
}
inline std::string row_description(std::span<const protocol::ColumnDescription> columns) {
  std::string out;
  protocol::encode_row_description(out, columns);
  return out;
}
// One int4 column.
inline std::string row_description(std::string_view column) {
  protocol::ColumnDescription c;
  c.name = column;
  c.type_oid = 23;
  c.type_size = 4;
  c.type_modifier = -1;
  return row_description(std::span<const protocol::ColumnDescription>(&c, 1));
}
// One column.
inline std::string data_row(std::string_view value) {
  const protocol::Value v = protocol::Value::of(value);
  std::string out;
  protocol::encode_data_row(out, std::span<const protocol::Value>(&v, 1));
  return out;
}
// Any number of columns; nullopt is NULL.
inline std::string data_row_of(const std::vector<std::optional<std::string>>& cells) {
  std::vector<protocol::Value> values;
  for (const auto& c : cells) values.push_back(c ? protocol::Value::of(*c) : protocol::Value::null());
  std::string out;
  protocol::encode_data_row(out, values);
  return out;
}
inline std::string command_complete(std::string_view tag) {
  std::string out;
  protocol::encode(out, protocol::CommandComplete{tag});
  return out;
}
// Fields S, V, C, M.
inline std::string error_response(std::string_view sqlstate, std::string_view message = "boom") {
  std::string out;
  protocol::encode_error_response(out, protocol::Severity::kError, sqlstate, message);
  return out;
}
inline std::string warning(std::string_view sqlstate, std::string_view message = "careful") {
  std::string out;
  protocol::encode_notice_response(out, protocol::Severity::kWarning, sqlstate, message);
  return out;
}
inline std::string ready(char status) {
  std::string out;
  protocol::encode(out, protocol::ReadyForQuery{status});
  return out;
}
inline std::string copy_in_response() {
  const int16_t text = 0;
  std::string out;
  protocol::encode_copy_response(out, protocol::backend::kCopyInResponse, 0,
                                 std::span<const int16_t>(&text, 1));
  return out;
}
inline std::string function_call_response(std::string_view value) {
  std::string out;
  protocol::encode(out, protocol::FunctionCallResponse{protocol::Value::of(value)});
  return out;
}
inline std::string parameter_status(std::string_view name, std::string_view value) {
  std::string out;
  protocol::encode(out, protocol::ParameterStatus{name, value});
  return out;
}

// A message's body, without its type byte and length.
inline std::string body_of(const std::string& message) {
  return message.substr(protocol::kHeaderSize);
}

}  // namespace pgtandem::test

// Internal to protocol/'s message codecs (wire.cc, backend.cc, frontend.cc): reading and writing
// values and format-code lists. Not for users of protocol/.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "protocol/wire.h"

namespace pgtandem::protocol::detail {

// Reads a length-prefixed value (-1 = NULL).
inline bool read_value(Reader& r, Value& v) {
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
inline bool read_values(Reader& r, std::string_view body, uint16_t count, ValueList& out) {
  size_t start = r.position();
  Value v;
  for (uint16_t i = 0; i < count; ++i) {
    if (!read_value(r, v)) return false;
  }
  out = ValueList(count, body.substr(start, r.position() - start));
  return true;
}

inline bool read_int16_list(Reader& r, Int16List& out) {
  uint16_t n;
  std::string_view raw;
  if (!r.u16(n) || !r.bytes(size_t{n} * 2, raw)) return false;
  out = Int16List(raw);
  return true;
}

inline bool read_uint32_list(Reader& r, Uint32List& out) {
  uint16_t n;
  std::string_view raw;
  if (!r.u16(n) || !r.bytes(size_t{n} * 4, raw)) return false;
  out = Uint32List(raw);
  return true;
}

inline void put_value(std::string& out, const Value& v) {
  if (v.is_null) {
    put_i32(out, -1);
    return;
  }
  put_i32(out, static_cast<int32_t>(v.data.size()));
  put_bytes(out, v.data);
}

// Counts are Int16 on the wire; the list sizes below always come from one.
inline void put_int16_list(std::string& out, const Int16List& l) {
  put_u16(out, static_cast<uint16_t>(l.size()));
  put_bytes(out, l.raw());
}
inline void put_int16_span(std::string& out, std::span<const int16_t> l) {
  put_u16(out, static_cast<uint16_t>(l.size()));
  for (int16_t v : l) put_i16(out, v);
}
inline void put_values(std::string& out, std::span<const Value> values) {
  put_u16(out, static_cast<uint16_t>(values.size()));
  for (const Value& v : values) put_value(out, v);
}

inline bool is_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

inline bool parse_u64(std::string_view s, uint64_t& v) {
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

}  // namespace pgtandem::protocol::detail

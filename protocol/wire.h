// The building blocks of every message (protocol/messages.h): writing a message (begin/end, put_*),
// the bounds-checked Reader, values and the lists of them as views, and the messages without a
// body. Messages themselves: protocol/frontend.h (client -> server), protocol/backend.h (server ->
// client); protocol/messages.h includes all three.
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

}  // namespace pgtandem::protocol

#include "protocol/wire.h"

#include "protocol/wire_detail.h"

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

using namespace detail;  // NOLINT

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

}  // namespace pgtandem::protocol

#include "protocol/base64.h"

#include <cstdint>

namespace pgtandem::protocol {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int value_of(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

void append_base64(std::string& out, std::string_view raw) {
  out.reserve(out.size() + (raw.size() + 2) / 3 * 4);
  auto byte = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(raw[k])); };
  size_t i = 0;
  for (; i + 3 <= raw.size(); i += 3) {
    const uint32_t v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  const size_t left = raw.size() - i;
  if (left > 0) {
    uint32_t v = byte(i) << 16;
    if (left == 2) v |= byte(i + 1) << 8;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(left == 2 ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
}

std::string base64_encode(std::string_view raw) {
  std::string out;
  append_base64(out, raw);
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    const int a = value_of(text[i]);
    const int b = value_of(text[i + 1]);
    if (a < 0 || b < 0) return std::nullopt;
    uint32_t v = (uint32_t(a) << 18) | (uint32_t(b) << 12);
    if (last && text[i + 2] == '=' && text[i + 3] == '=') {
      if (b & 0xf) return std::nullopt;  // non-canonical: stray bits
      out.push_back(static_cast<char>(v >> 16));
      break;
    }
    const int c = value_of(text[i + 2]);
    if (c < 0) return std::nullopt;
    v |= uint32_t(c) << 6;
    if (last && text[i + 3] == '=') {
      if (c & 0x3) return std::nullopt;
      out.push_back(static_cast<char>(v >> 16));
      out.push_back(static_cast<char>((v >> 8) & 0xff));
      break;
    }
    const int d = value_of(text[i + 3]);
    if (d < 0) return std::nullopt;
    v |= uint32_t(d);
    out.push_back(static_cast<char>(v >> 16));
    out.push_back(static_cast<char>((v >> 8) & 0xff));
    out.push_back(static_cast<char>(v & 0xff));
  }
  return out;
}

}  // namespace pgtandem::protocol

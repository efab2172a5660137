#include "protocol/startup.h"

#include "protocol/messages.h"

namespace pgtandem::protocol {

namespace {

char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// pg_strncasecmp(value, word, n) == 0 for a value without NULs: the first n characters match,
// where running past the end of either string compares as NUL.
bool prefix_casecmp(std::string_view value, std::string_view word, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    char a = i < value.size() ? ascii_lower(value[i]) : '\0';
    char b = i < word.size() ? word[i] : '\0';
    if (a != b) return false;
    if (a == '\0') return true;
  }
  return true;
}

// The string starting at `offset` of `body`, as strlen() sees it in the server's buffer, which
// has one zero byte past the end of the packet.
std::string_view server_cstring(std::string_view body, size_t offset) {
  size_t nul = body.find('\0', offset);
  return body.substr(offset, (nul == std::string_view::npos ? body.size() : nul) - offset);
}

uint32_t code_of(std::string_view packet) { return read_u32(packet.data() + 4); }

}  // namespace

StartupFrame decode_startup_frame(std::string_view buf) {
  StartupFrame f;
  if (buf.size() < 4) return f;
  f.length = read_u32(buf.data());
  if (f.length < kMinStartupPacketLength || f.length > kMaxStartupPacketWireLength) {
    f.status = Status::kInvalid;
    f.error = StartupError::kInvalidLength;
    return f;
  }
  if (buf.size() < 8) return f;
  f.code = read_u32(buf.data() + 4);
  if (f.code == kCancelRequestCode && f.length != kCancelRequestLength) {
    f.status = Status::kInvalid;
    f.error = StartupError::kInvalidLength;
    return f;
  }
  f.status = Status::kComplete;
  return f;
}

StartupKind classify_startup_code(uint32_t code, bool ssl_done, bool gss_done) {
  if (code == kCancelRequestCode) return StartupKind::kCancelRequest;
  if (code == kSslRequestCode && !ssl_done) return StartupKind::kSslRequest;
  if (code == kGssEncRequestCode && !gss_done) return StartupKind::kGssEncRequest;
  return StartupKind::kStartupMessage;
}

StartupError check_after_encryption_request(StartupKind kind, size_t buffered) {
  if (buffered == 0) return StartupError::kNone;
  if (kind == StartupKind::kSslRequest) return StartupError::kDataAfterSslRequest;
  if (kind == StartupKind::kGssEncRequest) return StartupError::kDataAfterGssEncRequest;
  return StartupError::kNone;
}

std::string_view StartupMessage::find(std::string_view name) const {
  for (auto it = params.rbegin(); it != params.rend(); ++it) {
    if (it->first == name) return it->second;
  }
  return {};
}

bool StartupMessage::has(std::string_view name) const {
  for (const StartupParam& p : params) {
    if (p.first == name) return true;
  }
  return false;
}

std::string_view StartupMessage::database() const {
  std::string_view db = find("database");
  return db.empty() ? user() : db;
}

namespace {

bool set(bool& result, bool value) {
  result = value;
  return true;
}

}  // namespace

bool parse_server_bool(std::string_view value, bool& result) {
  if (value.empty() || value.find('\0') != std::string_view::npos) return false;
  size_t len = value.size();
  switch (value[0]) {
    case 't':
    case 'T':
      if (prefix_casecmp(value, "true", len)) return set(result, true);
      break;
    case 'f':
    case 'F':
      if (prefix_casecmp(value, "false", len)) return set(result, false);
      break;
    case 'y':
    case 'Y':
      if (prefix_casecmp(value, "yes", len)) return set(result, true);
      break;
    case 'n':
    case 'N':
      if (prefix_casecmp(value, "no", len)) return set(result, false);
      break;
    case 'o':
    case 'O':
      // "o" alone is ambiguous.
      if (prefix_casecmp(value, "on", len > 2 ? len : 2)) return set(result, true);
      if (prefix_casecmp(value, "off", len > 2 ? len : 2)) return set(result, false);
      break;
    case '1':
      if (len == 1) return set(result, true);
      break;
    case '0':
      if (len == 1) return set(result, false);
      break;
    default:
      break;
  }
  return false;
}

StartupError parse_startup_message(std::string_view packet, StartupMessage& out) {
  out = StartupMessage{};
  if (packet.size() < kMinStartupPacketLength || packet.size() > kMaxStartupPacketWireLength ||
      read_u32(packet.data()) != packet.size()) {
    return StartupError::kInvalidLength;
  }
  uint32_t code = code_of(packet);
  out.major = static_cast<uint16_t>(code >> 16);
  out.minor = static_cast<uint16_t>(code & 0xffff);
  if (out.major != kSupportedMajor) return StartupError::kUnsupportedProtocol;

  // Offsets below are the server's: into the packet after its length word, starting past the
  // version. The loop is ProcessStartupPacket's, including where it stops.
  std::string_view body = packet.substr(4);
  const size_t len = body.size();
  size_t offset = 4;
  while (offset < len) {
    std::string_view name = server_cstring(body, offset);
    if (name.empty()) break;  // the terminator
    size_t value_offset = offset + name.size() + 1;
    if (value_offset >= len) break;  // missing value: reported as a layout error below
    std::string_view value = server_cstring(body, value_offset);
    if (name == "replication" && value != "database") {
      bool ignored;
      if (!parse_server_bool(value, ignored)) {
        out.replication_value = value;
        return StartupError::kInvalidReplication;
      }
    }
    if (name.starts_with("_pq_.")) {
      out.protocol_options.emplace_back(name, value);
    } else {
      out.params.emplace_back(name, value);
    }
    offset = value_offset + value.size() + 1;
  }
  if (offset != len - 1) return StartupError::kMissingTerminator;
  if (out.user().empty()) return StartupError::kNoUser;
  return StartupError::kNone;
}

bool parse_cancel_request(std::string_view packet, CancelRequest& out) {
  if (packet.size() != kCancelRequestLength || read_u32(packet.data()) != kCancelRequestLength ||
      code_of(packet) != kCancelRequestCode) {
    return false;
  }
  out.process_id = static_cast<int32_t>(read_u32(packet.data() + 8));
  out.secret_key = static_cast<int32_t>(read_u32(packet.data() + 12));
  return true;
}

namespace {

// Untyped packets: a length word, then the body.
size_t begin_packet(std::string& out) {
  size_t start = out.size();
  out.append(4, '\0');
  return start;
}

void end_packet(std::string& out, size_t start) {
  uint32_t be = __builtin_bswap32(static_cast<uint32_t>(out.size() - start));
  std::memcpy(out.data() + start, &be, 4);
}

void encode_params(std::string& out, std::span<const StartupParam> params) {
  for (const StartupParam& p : params) {
    put_cstring(out, p.first);
    put_cstring(out, p.second);
  }
}

void encode_code_only(std::string& out, uint32_t code) {
  put_u32(out, 8);
  put_u32(out, code);
}

}  // namespace

void encode_startup_message(std::string& out, std::span<const StartupParam> params, uint16_t major,
                            uint16_t minor) {
  size_t start = begin_packet(out);
  put_u16(out, major);
  put_u16(out, minor);
  encode_params(out, params);
  out.push_back('\0');
  end_packet(out, start);
}

void encode_startup_message(std::string& out, const StartupMessage& m) {
  size_t start = begin_packet(out);
  put_u16(out, m.major);
  put_u16(out, m.minor);
  encode_params(out, m.params);
  encode_params(out, m.protocol_options);
  out.push_back('\0');
  end_packet(out, start);
}

void encode_ssl_request(std::string& out) { encode_code_only(out, kSslRequestCode); }
void encode_gssenc_request(std::string& out) { encode_code_only(out, kGssEncRequestCode); }

void encode_cancel_request(std::string& out, const CancelRequest& m) {
  put_u32(out, kCancelRequestLength);
  put_u32(out, kCancelRequestCode);
  put_i32(out, m.process_id);
  put_i32(out, m.secret_key);
}

void encode_negotiation_answer(std::string& out, const StartupMessage& m) {
  if (!m.needs_negotiation()) return;
  size_t start = begin_message(out, NegotiateProtocolVersion::kType);
  put_u32(out, kProtocolVersion3);
  put_u32(out, static_cast<uint32_t>(m.protocol_options.size()));
  for (const StartupParam& o : m.protocol_options) put_cstring(out, o.first);
  end_message(out, start);
}

}  // namespace pgtandem::protocol

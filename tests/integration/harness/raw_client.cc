#include "tests/integration/harness/raw_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "tests/integration/harness/internal.h"

namespace pgtandem::it {
namespace {

std::string hex(const unsigned char* p, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string r;
  for (size_t i = 0; i < n; ++i) {
    r.push_back(digits[p[i] >> 4]);
    r.push_back(digits[p[i] & 15]);
  }
  return r;
}

std::string md5_hex(const std::string& data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, EVP_md5(), nullptr);
  return hex(out, len);
}

std::string sha256(const std::string& data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string hmac_sha256(const std::string& key, const std::string& data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string base64_encode(const std::string& data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(data.data()),
                          static_cast<int>(data.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string base64_decode(const std::string& text) {
  std::string out(3 * (text.size() / 4) + 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0) return {};
  size_t pad = 0;
  for (size_t i = text.size(); i > 0 && text[i - 1] == '='; --i) ++pad;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Raw protocol

std::string be32(uint32_t v) {
  char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
               static_cast<char>(v)};
  return std::string(b, 4);
}

std::string be16(uint16_t v) {
  char b[2] = {static_cast<char>(v >> 8), static_cast<char>(v)};
  return std::string(b, 2);
}

static uint32_t get32(std::string_view s, size_t off) {
  return (static_cast<uint32_t>(static_cast<unsigned char>(s[off])) << 24) |
         (static_cast<uint32_t>(static_cast<unsigned char>(s[off + 1])) << 16) |
         (static_cast<uint32_t>(static_cast<unsigned char>(s[off + 2])) << 8) |
         static_cast<uint32_t>(static_cast<unsigned char>(s[off + 3]));
}

std::string startup_packet(const std::vector<std::pair<std::string, std::string>>& params,
                           uint32_t protocol) {
  std::string body = be32(protocol);
  for (const auto& [k, v] : params) {
    body += k;
    body.push_back('\0');
    body += v;
    body.push_back('\0');
  }
  body.push_back('\0');
  return be32(static_cast<uint32_t>(body.size() + 4)) + body;
}

std::string ssl_request() { return be32(8) + be32(80877103); }
std::string gssenc_request() { return be32(8) + be32(80877104); }
std::string cancel_request(uint32_t pid, uint32_t key) {
  return be32(16) + be32(80877102) + be32(pid) + be32(key);
}

std::string frontend_message(char type, std::string_view body) {
  return std::string(1, type) + be32(static_cast<uint32_t>(body.size() + 4)) + std::string(body);
}

std::string query_message(std::string_view sql) {
  std::string body(sql);
  body.push_back('\0');
  return frontend_message('Q', body);
}

ErrorFields ErrorFields::parse(std::string_view body) {
  ErrorFields f;
  size_t i = 0;
  while (i < body.size() && body[i] != '\0') {
    char code = body[i++];
    size_t end = body.find('\0', i);
    if (end == std::string_view::npos) end = body.size();
    f.fields[code] = std::string(body.substr(i, end - i));
    i = end + 1;
  }
  return f;
}

std::string ErrorFields::get(char code) const {
  auto it = fields.find(code);
  return it == fields.end() ? "" : it->second;
}

std::string ErrorFields::summary() const {
  return severity() + " " + sqlstate() + ": " + message();
}

std::string Outcome::normalized() const {
  std::string s;
  for (const auto& m : messages) {
    if (!s.empty()) s += " ";
    if (m.type == 'E' || m.type == 'N') {
      auto f = ErrorFields::parse(m.body);
      s += std::string(1, m.type) + "(" + f.get('S') + "/" + f.get('V') + " " + f.sqlstate() +
           " \"" + f.message() + "\")";
    } else {
      s += std::string(1, m.type);
    }
  }
  if (!raw.empty()) {
    // Bytes that are not v3 messages (e.g. a protocol-2 error): shown escaped, compared whole.
    s += (s.empty() ? "" : " ") + std::string("raw[") + escape_bytes(raw) + "]";
  }
  s += closed ? (s.empty() ? "close" : " close") : (s.empty() ? "open" : " open");
  return s;
}

const BackendMessage* Outcome::first(char type) const {
  for (const auto& m : messages)
    if (m.type == type) return &m;
  return nullptr;
}

RawClient::~RawClient() { close(); }

RawClient::RawClient(RawClient&& o) noexcept : fd_(o.fd_), buf_(std::move(o.buf_)), eof_(o.eof_) {
  o.fd_ = -1;
}

RawClient& RawClient::operator=(RawClient&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = o.fd_;
    buf_ = std::move(o.buf_);
    eof_ = o.eof_;
    o.fd_ = -1;
  }
  return *this;
}

static int connect_with_timeout(int fd, const sockaddr* addr, socklen_t len, milliseconds timeout) {
  int flags = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  int r = ::connect(fd, addr, len);
  if (r != 0 && errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    r = poll(&p, 1, static_cast<int>(timeout.count()));
    if (r <= 0) {
      errno = r == 0 ? ETIMEDOUT : errno;
      return -1;
    }
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) {
      errno = err;
      return -1;
    }
    r = 0;
  }
  fcntl(fd, F_SETFL, flags);
  return r;
}

RawClient RawClient::connect_tcp(const std::string& host, uint16_t port, milliseconds timeout) {
  RawClient c;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail(errno_text("socket"));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    ::close(fd);
    fail("bad IPv4 address: " + host);
  }
  if (connect_with_timeout(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr, timeout) != 0) {
    std::string e = errno_text("connect " + host + ":" + std::to_string(port));
    ::close(fd);
    fail(e);
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c.fd_ = fd;
  return c;
}

RawClient RawClient::connect_unix(const std::string& path, milliseconds timeout) {
  RawClient c;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail(errno_text("socket"));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) fail("unix socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (connect_with_timeout(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr, timeout) != 0) {
    std::string e = errno_text("connect " + path);
    ::close(fd);
    fail(e);
  }
  c.fd_ = fd;
  return c;
}

RawClient RawClient::connect(const Endpoint& ep) {
  if (ep.is_unix()) return connect_unix(ep.host + "/.s.PGSQL." + std::to_string(ep.port));
  return connect_tcp(ep.host, ep.port);
}

bool RawClient::send(std::string_view bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    off += static_cast<size_t>(n);
  }
  return true;
}

void RawClient::shutdown_write() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

void RawClient::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool RawClient::fill(milliseconds timeout) {
  if (eof_ || fd_ < 0) return false;
  auto deadline = Clock::now() + timeout;
  for (;;) {
    pollfd p{fd_, POLLIN, 0};
    int r = poll(&p, 1, remaining_ms(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    char tmp[65536];
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n > 0) {
      buf_.append(tmp, static_cast<size_t>(n));
      return true;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    eof_ = true;  // orderly close or reset: both mean the peer is gone
    return false;
  }
}

std::optional<std::string> RawClient::read_bytes(size_t n, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (buf_.size() < n) {
    if (!fill(milliseconds(remaining_ms(deadline)))) return std::nullopt;
  }
  std::string r = buf_.substr(0, n);
  buf_.erase(0, n);
  return r;
}

std::optional<std::string> RawClient::read_some(milliseconds timeout) {
  if (buf_.empty() && !fill(timeout)) return std::nullopt;
  std::string r;
  r.swap(buf_);
  return r;
}

std::optional<BackendMessage> RawClient::read_message(milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    if (buf_.size() >= 5) {
      uint32_t len = get32(buf_, 1);
      if (len < 4) {
        // Not a valid backend message; hand back the rest as the body of a pseudo-message.
        BackendMessage m{buf_[0], buf_.substr(1)};
        buf_.clear();
        return m;
      }
      if (buf_.size() >= size_t{len} + 1) {
        BackendMessage m{buf_[0], buf_.substr(5, len - 4)};
        buf_.erase(0, size_t{len} + 1);
        return m;
      }
    }
    if (!fill(milliseconds(remaining_ms(deadline)))) return std::nullopt;
  }
}

Outcome RawClient::read_until_close(milliseconds timeout) {
  Outcome o;
  auto deadline = Clock::now() + timeout;
  for (;;) {
    auto m = read_message(milliseconds(remaining_ms(deadline)));
    if (m) {
      o.messages.push_back(std::move(*m));
      continue;
    }
    if (eof_)
      o.closed = true;
    else
      o.timed_out = true;
    break;
  }
  o.raw = buf_;
  buf_.clear();
  return o;
}

Outcome RawClient::read_until_ready(milliseconds timeout) {
  Outcome o;
  auto deadline = Clock::now() + timeout;
  for (;;) {
    auto m = read_message(milliseconds(remaining_ms(deadline)));
    if (!m) {
      if (eof_)
        o.closed = true;
      else
        o.timed_out = true;
      break;
    }
    char type = m->type;
    o.messages.push_back(std::move(*m));
    if (type == 'Z') break;
  }
  return o;
}

bool RawClient::wait_closed(milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  // At least one (possibly non-blocking) look at the socket, however short the timeout.
  do {
    fill(milliseconds(remaining_ms(deadline)));
  } while (!eof_ && remaining_ms(deadline) > 0);
  return eof_;
}

RawClient::LoginResult RawClient::login(
    const std::string& user, const std::string& password, const std::string& dbname,
    const std::vector<std::pair<std::string, std::string>>& extra, milliseconds timeout) {
  LoginResult res;
  res.auth_method = "trust";
  std::vector<std::pair<std::string, std::string>> params = {{"user", user}, {"database", dbname}};
  params.insert(params.end(), extra.begin(), extra.end());
  if (!send(startup_packet(params))) {
    res.failure = "send of the startup packet failed";
    return res;
  }
  auto deadline = Clock::now() + timeout;
  std::string client_first_bare, server_first, client_final_without_proof, salted_password;
  std::string nonce;
  for (;;) {
    auto m = read_message(milliseconds(remaining_ms(deadline)));
    if (!m) {
      res.failure = eof_ ? "connection closed during login" : "timeout during login";
      return res;
    }
    switch (m->type) {
      case 'R': {
        if (m->body.size() < 4) {
          res.failure = "short authentication message";
          return res;
        }
        uint32_t code = get32(m->body, 0);
        if (code == 0) break;
        if (code == 3) {
          res.auth_method = "cleartext";
          std::string body = password;
          body.push_back('\0');
          send(frontend_message('p', body));
        } else if (code == 5) {
          res.auth_method = "md5";
          std::string salt = m->body.substr(4, 4);
          std::string body = "md5" + md5_hex(md5_hex(password + user) + salt);
          body.push_back('\0');
          send(frontend_message('p', body));
        } else if (code == 10) {
          res.auth_method = "scram-sha-256";
          unsigned char rnd[18];
          RAND_bytes(rnd, sizeof rnd);
          nonce = base64_encode(std::string(reinterpret_cast<char*>(rnd), sizeof rnd));
          client_first_bare = "n=,r=" + nonce;
          std::string first = "n,," + client_first_bare;
          std::string body = std::string("SCRAM-SHA-256") + '\0' +
                             be32(static_cast<uint32_t>(first.size())) + first;
          send(frontend_message('p', body));
        } else if (code == 11) {
          server_first = m->body.substr(4);
          std::string r, s;
          int iterations = 0;
          std::istringstream parts(server_first);
          std::string part;
          while (std::getline(parts, part, ',')) {
            if (part.rfind("r=", 0) == 0) r = part.substr(2);
            if (part.rfind("s=", 0) == 0) s = part.substr(2);
            if (part.rfind("i=", 0) == 0) iterations = std::atoi(part.c_str() + 2);
          }
          if (r.rfind(nonce, 0) != 0 || iterations <= 0) {
            res.failure = "bad SCRAM server-first-message: " + server_first;
            return res;
          }
          std::string salt = base64_decode(s);
          salted_password.resize(32);
          PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                            reinterpret_cast<const unsigned char*>(salt.data()),
                            static_cast<int>(salt.size()), iterations, EVP_sha256(), 32,
                            reinterpret_cast<unsigned char*>(salted_password.data()));
          std::string client_key = hmac_sha256(salted_password, "Client Key");
          std::string stored_key = sha256(client_key);
          client_final_without_proof = "c=biws,r=" + r;
          std::string auth_message =
              client_first_bare + "," + server_first + "," + client_final_without_proof;
          std::string signature = hmac_sha256(stored_key, auth_message);
          std::string proof = client_key;
          for (size_t i = 0; i < proof.size(); ++i)
            proof[i] = static_cast<char>(proof[i] ^ signature[i]);
          send(frontend_message('p', client_final_without_proof + ",p=" + base64_encode(proof)));
        } else if (code == 12) {
          // AuthenticationSASLFinal: check the server signature (proves the server knew the key).
          std::string server_key = hmac_sha256(salted_password, "Server Key");
          std::string auth_message =
              client_first_bare + "," + server_first + "," + client_final_without_proof;
          std::string expected = "v=" + base64_encode(hmac_sha256(server_key, auth_message));
          if (m->body.substr(4) != expected) {
            res.failure = "SCRAM server signature mismatch";
            return res;
          }
        } else {
          res.failure = "unsupported authentication request " + std::to_string(code);
          return res;
        }
        break;
      }
      case 'E':
        res.error = ErrorFields::parse(m->body);
        wait_closed(milliseconds(std::min(remaining_ms(deadline), 2000)));
        return res;
      case 'S': {
        auto nul = m->body.find('\0');
        if (nul != std::string::npos) {
          std::string value = m->body.substr(nul + 1);
          if (!value.empty() && value.back() == '\0') value.pop_back();
          res.parameters[m->body.substr(0, nul)] = value;
        }
        break;
      }
      case 'K':
        if (m->body.size() >= 8) {
          res.backend_pid = get32(m->body, 0);
          res.backend_key = get32(m->body, 4);
        }
        break;
      case 'Z':
        res.ok = true;
        return res;
      default:
        break;  // NoticeResponse, NegotiateProtocolVersion
    }
  }
}

}  // namespace pgtandem::it

// Integration-test harness: a raw-socket protocol client (startup, SSLRequest, any bytes, login
// with trust, cleartext, md5 or SCRAM-SHA-256) and what it reads back.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tests/integration/harness/libpq_client.h"
#include "tests/integration/harness/processes.h"

namespace pgtandem::it {

// ---------------------------------------------------------------------------------------------
// Raw protocol client

// Frontend message builders.
std::string be32(uint32_t v);
std::string be16(uint16_t v);
std::string startup_packet(const std::vector<std::pair<std::string, std::string>>& params,
                           uint32_t protocol = 196608);
std::string ssl_request();
std::string gssenc_request();
std::string cancel_request(uint32_t pid, uint32_t key);
std::string frontend_message(char type, std::string_view body);
std::string query_message(std::string_view sql);

struct BackendMessage {
  char type = 0;
  std::string body;
};

// Fields of an ErrorResponse/NoticeResponse body.
struct ErrorFields {
  std::map<char, std::string> fields;
  static ErrorFields parse(std::string_view body);
  std::string get(char code) const;
  std::string severity() const { return get('V').empty() ? get('S') : get('V'); }
  std::string sqlstate() const { return get('C'); }
  std::string message() const { return get('M'); }
  std::string summary() const;  // "S/V SQLSTATE: message"
};

// What the peer did after we sent something: the messages it sent and how the stream ended.
struct Outcome {
  std::vector<BackendMessage> messages;
  std::string raw;      // bytes not forming complete messages (e.g. a lone 'N')
  bool closed = false;  // EOF or reset
  bool timed_out = false;
  // Normalized description to compare two servers: message types in order, ErrorResponse and
  // NoticeResponse as severity+SQLSTATE+message, then "close" or "open".
  std::string normalized() const;
  const BackendMessage* first(char type) const;
};

class RawClient {
 public:
  RawClient() = default;
  ~RawClient();
  RawClient(RawClient&& o) noexcept;
  RawClient& operator=(RawClient&& o) noexcept;

  static RawClient connect_tcp(const std::string& host, uint16_t port,
                               milliseconds timeout = milliseconds(5000));
  static RawClient connect_unix(const std::string& path, milliseconds timeout = milliseconds(5000));
  static RawClient connect(const Endpoint& ep);

  bool valid() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  bool send(std::string_view bytes);  // false if the peer is gone (EPIPE/ECONNRESET)
  void shutdown_write();
  void close();

  // Read exactly n raw bytes (for the one-byte SSLRequest answer); nullopt on timeout/EOF.
  std::optional<std::string> read_bytes(size_t n, milliseconds timeout);
  // Whatever arrives next (at least one byte); nullopt on timeout/EOF.
  std::optional<std::string> read_some(milliseconds timeout);
  // Read one typed backend message. nullopt on timeout or EOF (see eof()).
  std::optional<BackendMessage> read_message(milliseconds timeout);
  // Read messages until the peer closes or the timeout passes.
  Outcome read_until_close(milliseconds timeout);
  // Read messages until ReadyForQuery, ErrorResponse followed by close, or timeout.
  Outcome read_until_ready(milliseconds timeout);
  bool eof() const { return eof_; }
  // True once the peer has closed (polls without consuming data beyond the internal buffer).
  bool wait_closed(milliseconds timeout);

  // Startup + authentication (trust, cleartext, md5, SCRAM-SHA-256) up to ReadyForQuery.
  struct LoginResult {
    bool ok = false;
    std::optional<ErrorFields> error;  // ErrorResponse received during login
    uint32_t backend_pid = 0;
    uint32_t backend_key = 0;
    std::map<std::string, std::string> parameters;
    std::string auth_method;  // "trust", "cleartext", "md5", "scram-sha-256"
    std::string failure;      // transport-level or protocol description
  };
  LoginResult login(const std::string& user, const std::string& password = "",
                    const std::string& dbname = "postgres",
                    const std::vector<std::pair<std::string, std::string>>& extra = {},
                    milliseconds timeout = milliseconds(10000));

 private:
  bool fill(milliseconds timeout);  // read more into buf_; false on timeout/EOF
  int fd_ = -1;
  std::string buf_;
  bool eof_ = false;
};

}  // namespace pgtandem::it

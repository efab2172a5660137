#include "tests/integration/harness/http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include "tests/integration/harness/internal.h"
#include "tests/integration/harness/raw_client.h"

namespace pgtandem::it {

// ---------------------------------------------------------------------------------------------
// HTTP and metrics

HttpResponse http_get(uint16_t port, const std::string& path, milliseconds timeout) {
  return http_request(port, "GET", path, {}, "", timeout);
}

HttpResponse http_request(uint16_t port, const std::string& method, const std::string& path,
                          const std::vector<std::string>& headers, const std::string& request_body,
                          milliseconds timeout) {
  RawClient c = RawClient::connect_tcp("127.0.0.1", port, timeout);
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" +
                    std::to_string(port) + "\r\nConnection: close\r\nUser-Agent: pgtandem-it\r\n";
  for (const auto& h : headers) req += h + "\r\n";
  if (method != "GET") req += "Content-Length: " + std::to_string(request_body.size()) + "\r\n";
  req += "\r\n" + request_body;
  if (!c.send(req)) fail("http_get: send failed");
  std::string data;
  auto deadline = Clock::now() + timeout;
  HttpResponse resp;
  for (;;) {
    auto chunk = c.read_some(milliseconds(remaining_ms(deadline)));
    if (!chunk) break;
    data += *chunk;
    // Stop early once a Content-Length body is complete (a server may keep the socket open).
    auto hdr_end = data.find("\r\n\r\n");
    if (hdr_end != std::string::npos) {
      std::string lower = data.substr(0, hdr_end);
      for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      auto cl = lower.find("content-length:");
      if (cl != std::string::npos) {
        size_t n = std::strtoul(lower.c_str() + cl + 15, nullptr, 10);
        if (data.size() >= hdr_end + 4 + n) break;
      }
    }
  }
  auto hdr_end = data.find("\r\n\r\n");
  if (hdr_end == std::string::npos) fail("http_get " + path + ": no complete response: " + data);
  std::istringstream hs(data.substr(0, hdr_end));
  std::string line;
  std::getline(hs, line);
  if (line.rfind("HTTP/1.", 0) != 0) fail("http_get: bad status line: " + line);
  resp.status = std::atoi(line.c_str() + 9);
  while (std::getline(hs, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    std::string value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    resp.headers[name] = value;
  }
  std::string body = data.substr(hdr_end + 4);
  if (resp.headers["transfer-encoding"].find("chunked") != std::string::npos) {
    std::string decoded;
    size_t pos = 0;
    while (pos < body.size()) {
      size_t eol = body.find("\r\n", pos);
      if (eol == std::string::npos) break;
      size_t n = std::strtoul(body.substr(pos, eol - pos).c_str(), nullptr, 16);
      if (n == 0) break;
      decoded += body.substr(eol + 2, n);
      pos = eol + 2 + n + 2;
    }
    body = decoded;
  } else if (resp.headers.count("content-length")) {
    body = body.substr(0, std::strtoul(resp.headers["content-length"].c_str(), nullptr, 10));
  }
  resp.body = body;
  return resp;
}

Metrics Metrics::parse(const std::string& text) {
  Metrics m;
  m.text_ = text;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::istringstream ls(line);
      std::string hash, kind, name;
      ls >> hash >> kind >> name;
      if (kind == "TYPE") m.typed_.push_back(name);
      continue;
    }
    Sample s;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    s.name = line.substr(0, i);
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        size_t eq = line.find('=', i);
        if (eq == std::string::npos) break;
        std::string key = line.substr(i, eq - i);
        i = eq + 1;
        std::string value;
        if (i < line.size() && line[i] == '"') {
          ++i;
          while (i < line.size() && line[i] != '"') {
            if (line[i] == '\\' && i + 1 < line.size()) {
              ++i;
              value.push_back(line[i] == 'n' ? '\n' : line[i]);
            } else {
              value.push_back(line[i]);
            }
            ++i;
          }
          ++i;  // closing quote
        }
        s.labels[key] = value;
        if (i < line.size() && line[i] == ',') ++i;
      }
      ++i;  // '}'
    }
    while (i < line.size() && line[i] == ' ') ++i;
    s.value = std::strtod(line.c_str() + i, nullptr);
    m.samples_.push_back(std::move(s));
  }
  return m;
}

bool Metrics::has(const std::string& name) const {
  for (const auto& s : samples_)
    if (s.name == name) return true;
  for (const auto& t : typed_)
    if (t == name) return true;
  return false;
}

double Metrics::sum(const std::string& name,
                    const std::map<std::string, std::string>& labels) const {
  double total = 0;
  for (const auto& s : samples_) {
    if (s.name != name) continue;
    bool match = true;
    for (const auto& [k, v] : labels) {
      auto it = s.labels.find(k);
      if (it == s.labels.end() || it->second != v) match = false;
    }
    if (match) total += s.value;
  }
  return total;
}

}  // namespace pgtandem::it

#include "proxy/control/admin_http.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace pgtandem::proxy {
namespace {

constexpr const char* kMetricsBody = "# TYPE pgtandem_up gauge\npgtandem_up 1\n";

// A blocking loopback client with a receive timeout, so that a server bug fails a test instead
// of hanging it.
class Client {
 public:
  explicit Client(uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{5, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~Client() {
    if (fd_ >= 0) close(fd_);
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return connected_; }

  bool send_all(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      const ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  struct Response {
    int status = 0;
    std::map<std::string, std::string> headers;  // lower-case names
    std::string body;
  };

  // Reads one response framed by Content-Length. status 0 when the connection closed first.
  Response read_response() {
    Response r;
    size_t header_end;
    while ((header_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) return r;
    }
    const std::string head = buffer_.substr(0, header_end);
    buffer_.erase(0, header_end + 4);
    size_t line_end = head.find("\r\n");
    const std::string status_line = head.substr(0, line_end);
    r.status = std::stoi(status_line.substr(status_line.find(' ') + 1, 3));
    while (line_end != std::string::npos) {
      const size_t start = line_end + 2;
      line_end = head.find("\r\n", start);
      const std::string line =
          head.substr(start, line_end == std::string::npos ? std::string::npos : line_end - start);
      const size_t colon = line.find(':');
      std::string name = line.substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::string value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      r.headers[name] = value;
    }
    const size_t length = std::stoul(r.headers["content-length"]);
    while (buffer_.size() < length) {
      if (!fill()) return Response{};
    }
    r.body = buffer_.substr(0, length);
    buffer_.erase(0, length);
    return r;
  }

  // True when the server closed the connection (EOF or reset) within the receive timeout.
  bool closed_by_server() {
    char c;
    for (;;) {
      const ssize_t n = recv(fd_, &c, 1, 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
    }
  }

  // Everything the server sends until it closes (or the receive timeout).
  std::string read_until_close() {
    while (fill()) {
    }
    return std::move(buffer_);
  }

  Response get(const std::string& target) {
    send_all("GET " + target + " HTTP/1.1\r\nHost: test\r\n\r\n");
    return read_response();
  }

 private:
  bool fill() {
    char chunk[4096];
    const ssize_t n = recv(fd_, chunk, sizeof(chunk), 0);
    if (n <= 0) return false;
    buffer_.append(chunk, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buffer_;
};

class AdminHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    AdminHandlers handlers;
    handlers.metrics = [this] {
      ++scrapes_;
      if (metrics_throw_) throw std::runtime_error("registry gone");
      return std::string(kMetricsBody);
    };
    handlers.healthy = [this] { return healthy_.load(); };
    server_ = std::make_unique<AdminServer>("127.0.0.1", 0, std::move(handlers));
    std::string error;
    ASSERT_TRUE(server_->start(&error)) << error;
    ASSERT_NE(server_->port(), 0);
  }

  std::unique_ptr<AdminServer> server_;
  std::atomic<bool> healthy_{true};
  std::atomic<bool> metrics_throw_{false};
  std::atomic<int> scrapes_{0};
};

TEST_F(AdminHttpTest, MetricsAndHealthzOnOneKeepAliveConnection) {
  Client c(server_->port());
  ASSERT_TRUE(c.connected());

  auto r = c.get("/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(r.body, kMetricsBody);

  r = c.get("/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok\n");

  healthy_ = false;
  r = c.get("/healthz");
  EXPECT_EQ(r.status, 503);

  r = c.get("/metrics?name[]=pgtandem_up");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(scrapes_.load(), 2);
}

TEST_F(AdminHttpTest, PipelinedRequestsAreAnsweredInOrder) {
  Client c(server_->port());
  ASSERT_TRUE(
      c.send_all("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /nope HTTP/1.1\r\n"
                 "Host: t\r\n\r\nGET /metrics HTTP/1.1\r\nHost: t\r\n\r\n"));
  EXPECT_EQ(c.read_response().status, 200);
  EXPECT_EQ(c.read_response().status, 404);
  EXPECT_EQ(c.read_response().body, kMetricsBody);
}

TEST_F(AdminHttpTest, UnknownPathIs404) {
  Client c(server_->port());
  EXPECT_EQ(c.get("/").status, 404);
  EXPECT_EQ(c.get("/metricsx").status, 404);
  EXPECT_EQ(c.get("/healthz/").status, 404);
  // Still usable after 404s.
  EXPECT_EQ(c.get("/healthz").status, 200);
}

TEST_F(AdminHttpTest, NonGetIs405WithAllow) {
  Client c(server_->port());
  ASSERT_TRUE(c.send_all("POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"));
  auto r = c.read_response();
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.headers["allow"], "GET");
  ASSERT_TRUE(c.send_all("DELETE /healthz HTTP/1.1\r\nHost: t\r\n\r\n"));
  EXPECT_EQ(c.read_response().status, 405);
  EXPECT_EQ(c.get("/healthz").status, 200);
  EXPECT_EQ(scrapes_.load(), 0);
}

TEST_F(AdminHttpTest, HeadIs405WithoutBodyAndCloses) {
  Client c(server_->port());
  ASSERT_TRUE(c.send_all("HEAD /metrics HTTP/1.1\r\nHost: t\r\n\r\n"));
  const std::string all = c.read_until_close();
  EXPECT_EQ(all.rfind("HTTP/1.1 405 ", 0), 0u) << all;
  // Headers only: nothing after the blank line.
  EXPECT_EQ(all.find("\r\n\r\n"), all.size() - 4) << all;
}

TEST_F(AdminHttpTest, OversizedHeaderGets431AndClose) {
  Client c(server_->port());
  const std::string big(AdminServer::kMaxHeaderBytes + 100, 'a');
  ASSERT_TRUE(c.send_all("GET /metrics HTTP/1.1\r\nHost: t\r\nX-Big: " + big + "\r\n\r\n"));
  auto r = c.read_response();
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(r.headers["connection"], "close");
  EXPECT_TRUE(c.closed_by_server());
  // A header just under the limit is fine.
  Client ok(server_->port());
  const std::string medium(AdminServer::kMaxHeaderBytes - 200, 'a');
  ASSERT_TRUE(ok.send_all("GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + medium + "\r\n\r\n"));
  EXPECT_EQ(ok.read_response().status, 200);
}

TEST_F(AdminHttpTest, OversizedBodyGets413AndClose) {
  Client c(server_->port());
  ASSERT_TRUE(c.send_all("POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n"));
  EXPECT_EQ(c.read_response().status, 413);
  EXPECT_TRUE(c.closed_by_server());
}

TEST_F(AdminHttpTest, MalformedRequestGets400AndClose) {
  Client c(server_->port());
  ASSERT_TRUE(c.send_all("this is not http\r\n\r\n"));
  EXPECT_EQ(c.read_response().status, 400);
  EXPECT_TRUE(c.closed_by_server());
}

TEST_F(AdminHttpTest, Http10ClosesAfterResponse) {
  Client c(server_->port());
  ASSERT_TRUE(c.send_all("GET /healthz HTTP/1.0\r\n\r\n"));
  EXPECT_EQ(c.read_response().status, 200);
  EXPECT_TRUE(c.closed_by_server());
}

TEST_F(AdminHttpTest, HandlerExceptionGives500) {
  metrics_throw_ = true;
  Client c(server_->port());
  EXPECT_EQ(c.get("/metrics").status, 500);
  metrics_throw_ = false;
  EXPECT_EQ(c.get("/metrics").status, 200);
}

TEST_F(AdminHttpTest, ConcurrentConnectionsWhileOneStalls) {
  // A client that sends half a request must not hold up anyone else.
  Client stalled(server_->port());
  ASSERT_TRUE(stalled.send_all("GET /metrics HTTP/1.1\r\nHo"));

  constexpr int kClients = 16;
  constexpr int kRequests = 25;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      Client c(server_->port());
      if (!c.connected()) return;
      for (int j = 0; j < kRequests; ++j) {
        const auto r = c.get((i + j) % 2 == 0 ? "/metrics" : "/healthz");
        if (r.status == 200) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kClients * kRequests);

  // The stalled client can still finish its request.
  ASSERT_TRUE(stalled.send_all("st: t\r\n\r\n"));
  EXPECT_EQ(stalled.read_response().status, 200);
}

TEST_F(AdminHttpTest, ConnectionsBeyondTheCapAreClosed) {
  std::vector<std::unique_ptr<Client>> clients;
  for (size_t i = 0; i < AdminServer::kMaxConnections; ++i) {
    clients.push_back(std::make_unique<Client>(server_->port()));
    // A served request proves the server holds this connection.
    ASSERT_EQ(clients.back()->get("/healthz").status, 200) << i;
  }
  Client extra(server_->port());
  EXPECT_TRUE(extra.closed_by_server());
  clients.pop_back();
  // Once a slot frees up, new connections are served again.
  for (int attempt = 0; attempt < 50; ++attempt) {
    Client again(server_->port());
    if (again.get("/healthz").status == 200) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ADD_FAILURE() << "no connection served after one was released";
}

TEST_F(AdminHttpTest, StopClosesOpenConnectionsPromptly) {
  Client idle(server_->port());
  ASSERT_EQ(idle.get("/healthz").status, 200);
  Client partial(server_->port());
  ASSERT_TRUE(partial.send_all("GET /metr"));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));

  const auto start = std::chrono::steady_clock::now();
  server_->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_TRUE(idle.closed_by_server());
  EXPECT_TRUE(partial.closed_by_server());
  server_->stop();  // idempotent
  Client refused(server_->port());
  EXPECT_FALSE(refused.connected());
}

TEST(AdminServer, BindConflictIsReported) {
  AdminServer first("127.0.0.1", 0, {});
  std::string error;
  ASSERT_TRUE(first.start(&error)) << error;
  AdminServer second("127.0.0.1", first.port(), {});
  EXPECT_FALSE(second.start(&error));
  EXPECT_NE(error.find("bind"), std::string::npos) << error;
  EXPECT_FALSE(first.start(&error));
  EXPECT_NE(error.find("already started"), std::string::npos) << error;
}

TEST(AdminServer, InvalidAddressIsReported) {
  AdminServer server("not-an-ip", 0, {});
  std::string error;
  EXPECT_FALSE(server.start(&error));
  EXPECT_NE(error.find("invalid address 'not-an-ip'"), std::string::npos) << error;
}

TEST(AdminServer, UnsetHandlers) {
  AdminServer server("localhost", 0, {});
  std::string error;
  ASSERT_TRUE(server.start(&error)) << error;
  Client c(server.port());
  EXPECT_EQ(c.get("/metrics").status, 404);
  EXPECT_EQ(c.get("/mirror/watermark").status, 404);
  auto r = c.get("/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok\n");
}

TEST(AdminServer, AllInterfaces) {
  AdminServer server("*", 0, {});
  std::string error;
  ASSERT_TRUE(server.start(&error)) << error;
  Client c(server.port());  // IPv4 loopback reaches a dual-stack or IPv4 wildcard listener
  EXPECT_EQ(c.get("/healthz").status, 200);
}

// The migration commands' barrier (docs/migration.md) reads the mirror's watermark.
TEST(AdminServer, MirrorWatermark) {
  AdminHandlers handlers;
  handlers.mirror_watermark = [](std::string_view) { return std::string("{\"last_assigned\":7,\"done_through\":5,\"pending\":2}"); };
  AdminServer server("127.0.0.1", 0, std::move(handlers));
  std::string error;
  ASSERT_TRUE(server.start(&error)) << error;
  Client c(server.port());
  auto r = c.get("/mirror/watermark");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["content-type"], "application/json");
  EXPECT_EQ(r.body, "{\"last_assigned\":7,\"done_through\":5,\"pending\":2}");
}

TEST(AdminServer, DestructorWithoutStartOrStop) {
  { AdminServer never_started("127.0.0.1", 0, {}); }
  AdminServer server("127.0.0.1", 0, {});
  std::string error;
  ASSERT_TRUE(server.start(&error)) << error;
  Client c(server.port());
  EXPECT_EQ(c.get("/healthz").status, 200);
}

}  // namespace
}  // namespace pgtandem::proxy

namespace pgtandem::proxy {
namespace {

TEST(AdminAuth, ConstantTimeEqual) {
  EXPECT_TRUE(constant_time_equal("s3cret", "s3cret"));
  EXPECT_FALSE(constant_time_equal("s3cres", "s3cret"));
  EXPECT_FALSE(constant_time_equal("s3cre", "s3cret"));
  EXPECT_FALSE(constant_time_equal("s3crett", "s3cret"));
  EXPECT_FALSE(constant_time_equal("", "s3cret"));
  EXPECT_FALSE(constant_time_equal("s3cret", ""));
  // A prefix repeated to the expected length is no match either.
  EXPECT_FALSE(constant_time_equal("abab", "ab"));
}

TEST(AdminAuth, CheckBearer) {
  EXPECT_EQ(check_bearer("Bearer tok", ""), BearerCheck::kNotConfigured);
  EXPECT_EQ(check_bearer("", "tok"), BearerCheck::kMissing);
  EXPECT_EQ(check_bearer("Bearer tok", "tok"), BearerCheck::kOk);
  EXPECT_EQ(check_bearer("bearer  tok ", "tok"), BearerCheck::kOk);
  EXPECT_EQ(check_bearer("Bearer TOK", "tok"), BearerCheck::kWrong);
  EXPECT_EQ(check_bearer("Basic dG9rOnRvaw==", "tok"), BearerCheck::kWrong);
  EXPECT_EQ(check_bearer("Bearer", "tok"), BearerCheck::kWrong);
  EXPECT_EQ(check_bearer("tok", "tok"), BearerCheck::kWrong);
}

class AdminPostTest : public ::testing::Test {
 protected:
  void start(std::string token) {
    AdminHandlers handlers;
    handlers.reload = [this] {
      ++reloads_;
      return AdminReply{200, "application/json", "{\"outcome\":\"applied\"}"};
    };
    handlers.breaker_reset = [this](std::string_view query) {
      last_query_ = std::string(query);
      return AdminReply{200, "application/json", "{}"};
    };
    handlers.ready = [](std::string* why) {
      *why = "draining";
      return false;
    };
    handlers.status = [] { return std::string("{\"version\":\"x\"}"); };
    handlers.token = std::move(token);
    server_ = std::make_unique<AdminServer>("127.0.0.1", 0, std::move(handlers));
    std::string error;
    ASSERT_TRUE(server_->start(&error)) << error;
  }
  std::string post(const std::string& path, const std::string& auth) {
    Client c(server_->port());
    std::string req = "POST " + path + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n";
    if (!auth.empty()) req += "Authorization: " + auth + "\r\n";
    req += "Content-Length: 0\r\n\r\n";
    EXPECT_TRUE(c.send_all(req));
    return c.read_until_close();
  }
  std::unique_ptr<AdminServer> server_;
  std::atomic<int> reloads_{0};
  std::string last_query_;
};

TEST_F(AdminPostTest, TokenEnforced) {
  start("s3cret");
  std::string r = post("/reload", "");
  EXPECT_EQ(r.rfind("HTTP/1.1 401 ", 0), 0u) << r;
  EXPECT_NE(r.find("WWW-Authenticate: Bearer"), std::string::npos) << r;
  r = post("/reload", "Bearer wrong");
  EXPECT_EQ(r.rfind("HTTP/1.1 401 ", 0), 0u) << r;
  EXPECT_EQ(reloads_.load(), 0);
  r = post("/reload", "Bearer s3cret");
  EXPECT_EQ(r.rfind("HTTP/1.1 200 ", 0), 0u) << r;
  EXPECT_EQ(reloads_.load(), 1);
  r = post("/breaker/reset?target=new", "Bearer s3cret");
  EXPECT_EQ(r.rfind("HTTP/1.1 200 ", 0), 0u) << r;
  EXPECT_EQ(last_query_, "target=new");
  Client c(server_->port());
  auto g = c.get("/reload");
  EXPECT_EQ(g.status, 405);
}

TEST_F(AdminPostTest, NoTokenConfiguredIs403) {
  start("");
  std::string r = post("/reload", "Bearer anything");
  EXPECT_EQ(r.rfind("HTTP/1.1 403 ", 0), 0u) << r;
  EXPECT_NE(r.find("token"), std::string::npos) << r;
  EXPECT_EQ(reloads_.load(), 0);
}

TEST_F(AdminPostTest, ReadyzAndStatus) {
  start("");
  Client c(server_->port());
  auto r = c.get("/readyz");
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("draining"), std::string::npos);
  r = c.get("/status");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "{\"version\":\"x\"}");
}

}  // namespace
}  // namespace pgtandem::proxy

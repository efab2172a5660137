// Malformed client input gets the server's own answer (same severity, SQLSTATE and message, or
// the same silent close), and never disturbs another session.
#include "tests/integration/fixture.h"

namespace pgtandem::it {
namespace {

using Params = std::vector<std::pair<std::string, std::string>>;
const Params kLogin = {{"user", "postgres"}, {"database", "postgres"}};

class MalformedTest : public ViaTest {
 protected:
  // Runs `scenario` against the server directly and against the endpoint under test while a
  // healthy session keeps querying the endpoint; compares the two outcomes.
  void compare(const std::function<std::string(const Endpoint&)>& scenario,
               const std::string& must_contain = "") {
    HealthySession healthy(ep().conninfo("application_name=it_healthy"));
    ASSERT_NO_THROW(healthy.start());
    ASSERT_TRUE(healthy.wait_progress(10)) << healthy.first_error();
    std::string expected = scenario(direct());
    // Under `direct` this runs the scenario twice on the server: it must be deterministic.
    std::string actual = scenario(ep());
    std::fprintf(stderr, "[%s] server: %s\n", ep().name.c_str(), tail(expected, 300).c_str());
    EXPECT_EQ(actual, expected);
    if (!must_contain.empty()) {
      EXPECT_NE(expected.find(must_contain), std::string::npos) << expected;
    }
    EXPECT_TRUE(healthy.wait_progress(20))
        << "healthy session disturbed: " << healthy.first_error();
    healthy.stop();
    EXPECT_EQ(healthy.errors(), 0) << healthy.first_error();
    // And the endpoint still takes new sessions.
    ConnPtr c = connect_raw(ep().conninfo());
    EXPECT_EQ(PQstatus(c.get()), CONNECTION_OK) << PQerrorMessage(c.get());
  }

  // Send bytes on a fresh connection, return what the peer did.
  static std::string send_raw(const Endpoint& e, const std::string& bytes) {
    RawClient c = RawClient::connect(e);
    c.send(bytes);
    return c.read_until_close(milliseconds(5000)).normalized();
  }

  // Log in, send bytes, return what the peer did; also check the backend went away.
  std::string after_login(const Endpoint& e, const std::string& bytes,
                          bool shutdown_write = false) {
    RawClient c = RawClient::connect(e);
    auto login = c.login("postgres");
    if (!login.ok) return "login failed: " + login.failure;
    c.send(bytes);
    if (shutdown_write) c.shutdown_write();
    std::string outcome = c.read_until_close(milliseconds(5000)).normalized();
    pid_t pid = static_cast<pid_t>(login.backend_pid);
    bool gone = poll_until([&] { return !old_cluster().backend_exists(pid); }, milliseconds(10000));
    return outcome + (gone ? "" : " (backend still running)");
  }
};
PGTANDEM_INSTANTIATE_VIA(MalformedTest);

TEST_P(MalformedTest, StartupLengthTooLarge) {
  // The server's limit is on the length without its own 4 bytes: 10004 is the largest accepted.
  compare(
      [](const Endpoint& e) {
        return send_raw(e, be32(10005) + be32(196608) + std::string(200, 'a'));
      },
      "close");
}

TEST_P(MalformedTest, StartupLengthHuge) {
  compare([](const Endpoint& e) { return send_raw(e, be32(0x7fffffff) + be32(196608) + "user"); });
}

TEST_P(MalformedTest, StartupLengthTooSmall) {
  compare([](const Endpoint& e) { return send_raw(e, be32(7) + "abc"); });
  compare([](const Endpoint& e) { return send_raw(e, be32(0) + be32(196608)); });
}

TEST_P(MalformedTest, StartupMissingFinalNul) {
  compare(
      [](const Endpoint& e) {
        std::string p = startup_packet(kLogin);
        p.pop_back();  // drop the terminator, fix the length
        return send_raw(e, be32(static_cast<uint32_t>(p.size())) + p.substr(4));
      },
      "08P01");
}

TEST_P(MalformedTest, StartupParameterWithoutValue) {
  compare([](const Endpoint& e) {
    std::string body =
        be32(196608) + std::string("user\0postgres\0database\0", 23) + std::string(1, '\0');
    return send_raw(e, be32(static_cast<uint32_t>(body.size() + 4)) + body);
  });
}

TEST_P(MalformedTest, StartupWithoutUser) {
  compare(
      [](const Endpoint& e) {
        return send_raw(e, startup_packet({{"database", "postgres"}}));
      },
      "28000");
}

TEST_P(MalformedTest, UnsupportedProtocol2) {
  compare([](const Endpoint& e) { return send_raw(e, startup_packet(kLogin, 0x00020000)); },
          "unsupported frontend protocol 2.0");
}

TEST_P(MalformedTest, UnsupportedProtocol4) {
  compare([](const Endpoint& e) { return send_raw(e, startup_packet(kLogin, 0x00040000)); },
          "unsupported frontend protocol 4.0");
}

TEST_P(MalformedTest, MinorVersionNegotiated) {
  // 3.5 with a _pq_ option: NegotiateProtocolVersion (byte for byte), then a normal login.
  compare(
      [](const Endpoint& e) {
        RawClient c = RawClient::connect(e);
        Params p = kLogin;
        p.emplace_back("_pq_.nonexistent", "1");
        c.send(startup_packet(p, 0x00030005));
        Outcome o = c.read_until_ready(milliseconds(5000));
        const BackendMessage* v = o.first('v');
        std::string s = o.normalized();
        if (v) {
          for (unsigned char ch : v->body) s += " " + std::to_string(ch);
        }
        return s;
      },
      "v R");
}

TEST_P(MalformedTest, SecondSslRequest) {
  compare(
      [](const Endpoint& e) {
        RawClient c = RawClient::connect(e);
        c.send(ssl_request());
        auto answer = c.read_bytes(1, milliseconds(5000));
        c.send(ssl_request());
        return "answer=" + answer.value_or("none") + " then " +
               c.read_until_close(milliseconds(5000)).normalized();
      },
      "answer=N");
}

TEST_P(MalformedTest, SslRequestWithPiggybackedData) {
  compare([](const Endpoint& e) {
    RawClient c = RawClient::connect(e);
    c.send(ssl_request() + startup_packet(kLogin));
    auto answer = c.read_bytes(1, milliseconds(5000));
    return "answer=" + answer.value_or("none") + " then " +
           c.read_until_close(milliseconds(5000)).normalized();
  });
}

// GSSENCRequest is where pgtandem knowingly differs: the server (built with GSSAPI) answers 'G'
// over TCP and starts GSSAPI; pgtandem does not terminate GSSAPI encryption and answers 'N', which
// clients take as "go on unencrypted" (libpq only asks when it has Kerberos credentials).
TEST_P(MalformedTest, GssEncRequest) {
  RawClient c = RawClient::connect(ep());
  ASSERT_TRUE(c.send(gssenc_request()));
  auto answer = c.read_bytes(1, milliseconds(5000));
  ASSERT_TRUE(answer);
  if (!via_proxy()) {
    EXPECT_TRUE(*answer == "G" || *answer == "N") << *answer;
    return;
  }
  EXPECT_EQ(*answer, "N");
  auto login = c.login("postgres");
  EXPECT_TRUE(login.ok) << login.failure;
}

TEST_P(MalformedTest, SslRequestThenGssEncRequest) {
  RawClient c = RawClient::connect(ep());
  ASSERT_TRUE(c.send(ssl_request()));
  EXPECT_EQ(c.read_bytes(1, milliseconds(5000)).value_or("none"), "N");
  ASSERT_TRUE(c.send(gssenc_request()));
  auto answer = c.read_bytes(1, milliseconds(5000));
  ASSERT_TRUE(answer);
  if (!via_proxy()) return;  // 'G' from a server built with GSSAPI
  EXPECT_EQ(*answer, "N");
  auto login = c.login("postgres");
  EXPECT_TRUE(login.ok) << login.failure;
}

TEST_P(MalformedTest, CancelRequestWithBadLength) {
  compare([](const Endpoint& e) { return send_raw(e, be32(12) + be32(80877102) + be32(1)); });
}

TEST_P(MalformedTest, MessageLengthBelowFour) {
  compare([this](const Endpoint& e) { return after_login(e, "Q" + be32(3)); });
}

TEST_P(MalformedTest, OversizedLengthForSmallType) {
  compare([this](const Endpoint& e) {
    return after_login(e, "S" + be32(20000) + std::string(100, '\0'));
  });
}

TEST_P(MalformedTest, UnknownMessageType) {
  compare([this](const Endpoint& e) { return after_login(e, "z" + be32(4)); }, "08P01");
}

TEST_P(MalformedTest, TruncatedMessageThenClose) {
  compare([this](const Endpoint& e) {
    return after_login(e, "Q" + be32(100) + "SELECT", /*shutdown_write=*/true);
  });
}

TEST_P(MalformedTest, QueryWithoutTerminator) {
  // An ERROR, not FATAL: the session goes on with the next query.
  compare(
      [](const Endpoint& e) {
        RawClient c = RawClient::connect(e);
        if (!c.login("postgres").ok) return std::string("login failed");
        c.send(frontend_message('Q', "SELECT 1") + query_message("SELECT 2"));
        Outcome a = c.read_until_ready(milliseconds(5000));
        Outcome b = c.read_until_ready(milliseconds(5000));
        return a.normalized() + " | " + b.normalized();
      },
      "08P01");
}

TEST_P(MalformedTest, StartupLengthAtServerLimit) {
  // 10004 is accepted by the server (and the long application_name truncated); 10005 is not.
  for (uint32_t total : {10004u, 10005u}) {
    compare(
        [total](const Endpoint& e) {
          std::string base = startup_packet(
              {{"user", "postgres"}, {"database", "postgres"}, {"application_name", ""}});
          std::string name(total - base.size(), 'a');
          std::string p = startup_packet(
              {{"user", "postgres"}, {"database", "postgres"}, {"application_name", name}});
          if (p.size() != total) return std::string("bad packet size");
          RawClient c = RawClient::connect(e);
          c.send(p);
          return c.read_until_ready(milliseconds(5000)).normalized();
        },
        total == 10004 ? "K Z open" : "close");
  }
}

TEST_P(MalformedTest, StartupLengthEight) {
  compare([](const Endpoint& e) { return send_raw(e, be32(8) + be32(196608)); });
}

TEST_P(MalformedTest, StartupAndQueryOneByteAtATime) {
  compare(
      [](const Endpoint& e) {
        RawClient c = RawClient::connect(e);
        std::string bytes = ssl_request();
        for (char ch : bytes) {
          c.send(std::string(1, ch));
          std::this_thread::sleep_for(milliseconds(2));
        }
        auto answer = c.read_bytes(1, milliseconds(5000));
        bytes = startup_packet(kLogin);
        for (char ch : bytes) {
          c.send(std::string(1, ch));
          std::this_thread::sleep_for(milliseconds(1));
        }
        Outcome login = c.read_until_ready(milliseconds(5000));
        bytes = query_message("SELECT 'slow', 42");
        for (char ch : bytes) {
          c.send(std::string(1, ch));
          std::this_thread::sleep_for(milliseconds(1));
        }
        Outcome q = c.read_until_ready(milliseconds(5000));
        const BackendMessage* row = q.first('D');
        return "answer=" + answer.value_or("none") + " login: " + login.normalized() +
               " query: " + q.normalized() +
               " row=" + (row ? escape_bytes(row->body) : std::string("none"));
      },
      "T D C Z open");
}

TEST_P(MalformedTest, WrongMessageDuringAuthentication) {
  for (const char* user : {kScramUser, kMd5User, kPwUser}) {
    compare(
        [user](const Endpoint& e) {
          RawClient c = RawClient::connect(e);
          c.send(startup_packet({{"user", user}, {"database", "postgres"}}));
          auto auth = c.read_message(milliseconds(5000));
          if (!auth || auth->type != 'R') return std::string("no auth request");
          c.send(query_message("SELECT 1"));
          return c.read_until_close(milliseconds(5000)).normalized();
        },
        "08P01");
  }
}

TEST_P(MalformedTest, LengthAboveServerMaximum) {
  compare(
      [this](const Endpoint& e) { return after_login(e, "Q" + be32(0x40000000) + "SELECT 1"); });
}

TEST_P(MalformedTest, SyncWithBody) {
  compare([](const Endpoint& e) {
    RawClient c = RawClient::connect(e);
    if (!c.login("postgres").ok) return std::string("login failed");
    c.send(frontend_message('S', "abc") + query_message("SELECT 3"));
    Outcome a = c.read_until_ready(milliseconds(5000));
    Outcome b = c.read_until_ready(milliseconds(5000));
    return a.normalized() + " | " + b.normalized();
  });
}

TEST_P(MalformedTest, ManyMessagesInOneWrite) {
  compare(
      [](const Endpoint& e) {
        RawClient c = RawClient::connect(e);
        if (!c.login("postgres").ok) return std::string("login failed");
        std::string batch;
        for (int i = 0; i < 500; ++i) batch += query_message("SELECT " + std::to_string(i));
        c.send(batch);
        int complete = 0;
        std::string last;
        for (int i = 0; i < 500; ++i) {
          Outcome o = c.read_until_ready(milliseconds(5000));
          if (o.normalized() == "T D C Z open" && o.first('D')->body.substr(6) == std::to_string(i))
            ++complete;
          else
            last = o.normalized();
        }
        return std::to_string(complete) + " of 500 answered in order " + last;
      },
      "500 of 500");
}

TEST_P(MalformedTest, TerminateMessageEndsBackend) {
  compare([this](const Endpoint& e) { return after_login(e, frontend_message('X', "")); }, "close");
}

TEST_P(MalformedTest, BindToMissingStatementThenSync) {
  // Protocol-valid but semantically wrong extended-protocol traffic: error, skip to Sync, go on.
  compare(
      [](const Endpoint& e) {
        RawClient c = RawClient::connect(e);
        auto login = c.login("postgres");
        if (!login.ok) return std::string("login failed");
        std::string bind = std::string("\0nosuch\0", 8) + be16(0) + be16(0) + be16(0);
        std::string execute = std::string("\0", 1) + be32(0);
        c.send(frontend_message('B', bind) + frontend_message('E', execute) +
               frontend_message('S', "") + query_message("SELECT 1"));
        Outcome a = c.read_until_ready(milliseconds(5000));
        Outcome b = c.read_until_ready(milliseconds(5000));
        return a.normalized() + " | " + b.normalized();
      },
      "26000");
}

}  // namespace
}  // namespace pgtandem::it

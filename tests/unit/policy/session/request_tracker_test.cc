// The request tracker (policy/session/request_tracker.h) driven as pump_frontend drives it: bytes
// arrive in reads, each read is scanned (FrameScanner + tracker), a diverted request is taken out
// and the scan goes on behind it. A recording host stands in for the session: its answers are set
// per case, and what the tracker asked it is compared with the expected event log.
#include "policy/session/request_tracker.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/framing.h"
#include "protocol/message_types.h"
#include "protocol/messages.h"

namespace pgtandem::policy {
namespace {

using protocol::Header;

// --- Message builders (whole frontend messages, header included).

std::string query(std::string_view sql) {
  std::string out;
  protocol::encode(out, protocol::Query{sql});
  return out;
}
std::string parse(std::string_view name, std::string_view sql) {
  std::string out;
  protocol::encode_parse(out, name, sql, {});
  return out;
}
std::string bind(std::string_view portal, std::string_view statement) {
  std::string out;
  protocol::encode_bind(out, portal, statement, {}, {}, {});
  return out;
}
std::string describe(char target, std::string_view name) {
  std::string out;
  protocol::encode(out, protocol::Describe{target, name});
  return out;
}
std::string execute(std::string_view portal = {}) {
  std::string out;
  protocol::encode(out, protocol::Execute{portal, 0});
  return out;
}
std::string close_statement(std::string_view name) {
  std::string out;
  protocol::encode(out, protocol::Close{protocol::kTargetStatement, name});
  return out;
}
template <typename M>
std::string empty() {
  std::string out;
  protocol::encode(out, M{});
  return out;
}
std::string sync() { return empty<protocol::Sync>(); }
std::string flush() { return empty<protocol::Flush>(); }
std::string terminate() { return empty<protocol::Terminate>(); }
std::string copy_done() { return empty<protocol::CopyDone>(); }
std::string copy_data(std::string_view data) {
  std::string out;
  protocol::encode(out, protocol::CopyData{data});
  return out;
}
std::string copy_fail(std::string_view why) {
  std::string out;
  protocol::encode(out, protocol::CopyFail{why});
  return out;
}
std::string function_call() {
  std::string out;
  protocol::encode_function_call(out, 1234, {}, {}, 0);
  return out;
}
// A message with any type and body (for bodies no encoder writes: undecodable ones).
std::string raw(char type, std::string_view body) {
  std::string out;
  const size_t at = protocol::begin_message(out, type);
  out.append(body);
  protocol::end_message(out, at);
  return out;
}
// The unnamed statement's full extended-protocol read: Parse, Bind, Describe portal, Execute, Sync.
std::string extended(std::string_view sql) {
  return parse("", sql) + bind("", "") + describe(protocol::kTargetPortal, "") + execute() + sync();
}

// The message types of a run of whole messages ("PBDES").
std::string types(std::string_view bytes) {
  std::string out;
  size_t pos = 0;
  while (pos + protocol::kHeaderSize <= bytes.size()) {
    out += bytes[pos];
    pos += 1 + protocol::read_u32(bytes.data() + pos + 1);
  }
  return out;
}

// --- The recording host.

struct Host final : RequestTrackerHost {
  // Answers.
  bool logging = false;
  bool is_pinned = false;
  bool shadowing = false;
  bool to_secondary = true;
  std::map<std::string, std::string, std::less<>> prepared;  // known plain reads: name -> text
  // What was asked.
  std::vector<std::string> events;
  uint64_t frontend_messages = 0;

  void on_frontend(const Header& h, std::string_view message) override {
    ++frontend_messages;
    EXPECT_EQ(message.size(), h.frame_size());
    EXPECT_EQ(message[0], h.type);
  }
  void on_first_outstanding() override { events.push_back("clock"); }
  bool log_statements() const override { return logging; }
  void log_statement(std::string_view sql) override { events.push_back("log:" + std::string(sql)); }
  void on_request_begin() override {}
  StatementVerdict classify(std::string_view sql) override {
    events.push_back("classify:" + std::string(sql));
    StatementVerdict v;
    v.routable = sql.starts_with("SELECT");
    v.shadow_cursor = shadowing && sql.starts_with("DECLARE");
    if (sql.starts_with("LOCK")) is_pinned = true;  // as a pinning statement pins the session
    return v;
  }
  void statement_redefined(std::string_view name) override {
    events.push_back("redefined:" + std::string(name));
  }
  bool prepared_read(std::string_view name, std::string_view* sql) override {
    auto it = prepared.find(name);
    if (it == prepared.end()) return false;
    if (sql != nullptr) *sql = it->second;
    return true;
  }
  bool pinned() const override { return is_pinned; }
  bool route_to_secondary(std::string_view sql) override {
    events.push_back("route:" + std::string(sql));
    return to_secondary;
  }
  void kept_on_primary(std::string_view request, std::string_view sql, bool cursor) override {
    events.push_back(cursor ? "kept-cursor:" + std::string(sql)
                            : "kept:" + types(request) + ":" + std::string(sql));
  }
};

// --- The driver: pump_frontend's loop without sockets.

struct Driver {
  Host host;
  RequestTracker tracker{host};
  protocol::FrameScanner scanner;
  std::string buf;  // read, not yet forwarded
  bool stopped = false;

  explicit Driver(size_t keep_limit = 8 * 1024)
      : scanner(protocol::Direction::kFrontend, protocol::Limits{}, keep_limit) {}

  // One read from the client: scanned (again after each diverted request) until all of it that
  // is whole is forwarded or diverted.
  void read(std::string_view bytes, bool routing) {
    buf.append(bytes);
    for (;;) {
      tracker.begin_scan(buf.data(), routing);
      auto r = scanner.scan(buf, tracker);
      if (r.status == protocol::Status::kInvalid) {
        host.events.push_back("invalid");
        stopped = true;
        return;
      }
      if (tracker.divert()) {
        const size_t begin = tracker.divert_begin();
        if (begin > 0) host.events.push_back("forward:" + types(buf.substr(0, begin)));
        host.events.push_back("divert:" + types(buf.substr(begin, r.forward - begin)));
      }
      if (tracker.terminate()) {  // the session ends here (no end_scan)
        host.events.push_back("terminate");
        stopped = true;
        return;
      }
      tracker.end_scan();
      buf.erase(0, r.forward);
      if (!tracker.divert() || buf.empty()) return;
    }
  }
};

// --- The table.

struct Case {
  const char* name;
  std::vector<std::string> reads;  // what the client sends, read by read
  std::vector<std::string> events;  // what the tracker asked the host (and diverted), in order
  uint32_t outstanding = 0;
  bool batch_started_earlier = false;
  bool routing = true;
  // Host answers.
  bool to_secondary = true;
  bool pinned = false;
  bool shadowing = false;
  bool logging = false;
  std::string routed_statement = {};
  size_t keep_limit = 8 * 1024;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

std::map<std::string, std::string, std::less<>> known_reads() {
  return {{"s1", "SELECT 2"}, {"s2", "SELECT 3"}};
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += s + "\n";
  return out;
}

const std::string kLarge(300, 'x');  // past the 64-byte keep limit of the streaming cases

std::vector<Case> cases() {
  return {
      // Simple queries.
      {"QueryRoutedAway", {query("SELECT 1")},
       {"clock", "classify:SELECT 1", "route:SELECT 1", "divert:Q"}, 1},
      {"QueryKeptOnPrimary", {query("SELECT 1")},
       {"clock", "classify:SELECT 1", "route:SELECT 1", "kept:Q:SELECT 1"}, 1, false, true, false},
      {"QueryWithoutRouting", {query("SELECT 1")}, {"clock"}, 1, false, false},
      {"WriteIsNotRouted", {query("INSERT INTO t VALUES (1)")},
       {"clock", "classify:INSERT INTO t VALUES (1)"}, 1},
      {"PinnedSessionAsksNoRoute", {query("SELECT 1")}, {"clock", "classify:SELECT 1"}, 1, false,
       true, true, true},
      {"PinningStatementPinsAtItsEnd", {query("LOCK t"), query("SELECT 1")},
       {"clock", "classify:LOCK t", "classify:SELECT 1"}, 2},
      {"LoggedWithoutRouting", {query("SELECT 1"), parse("", "SELECT 2") + bind("", "") + sync()},
       {"clock", "log:SELECT 1", "log:SELECT 2"}, 2, false, false, true, false, false, true},
      {"CursorIsShadowSkipOnly", {query("DECLARE c CURSOR FOR SELECT 1")},
       {"clock", "classify:DECLARE c CURSOR FOR SELECT 1", "route:DECLARE c CURSOR FOR SELECT 1",
        "kept-cursor:DECLARE c CURSOR FOR SELECT 1"},
       1, false, true, true, false, true},
      {"CursorWithoutShadowingIsNothing", {query("DECLARE c CURSOR FOR SELECT 1")},
       {"clock", "classify:DECLARE c CURSOR FOR SELECT 1"}, 1},

      // Extended protocol, unnamed and named statements.
      {"UnnamedBatchRoutedAway", {extended("SELECT 1")},
       {"classify:SELECT 1", "clock", "route:SELECT 1", "divert:PBDES"}, 1},
      {"UnnamedBatchKept", {extended("SELECT 1")},
       {"classify:SELECT 1", "clock", "route:SELECT 1", "kept:PBDES:SELECT 1"}, 1, false, true,
       false},
      {"NamedParseStaysOnPrimary", {parse("q", "SELECT 1") + bind("", "q") + execute() + sync()},
       {"classify:SELECT 1", "redefined:q", "clock"}, 1},
      {"BindToKnownReadRoutedAway", {bind("", "s1") + execute() + sync()},
       {"clock", "route:SELECT 2", "divert:BES"}, 1, false, true, true, false, false, false, "s1"},
      {"DescribeAndBindSameStatement",
       {describe(protocol::kTargetStatement, "s1") + bind("", "s1") + execute() + sync()},
       {"clock", "route:SELECT 2", "divert:DBES"}, 1, false, true, true, false, false, false, "s1"},
      {"TwoStatementsInOneRequest", {bind("", "s1") + execute() + bind("", "s2") + execute() + sync()},
       {"clock"}, 1, false, true, true, false, false, false, "s1"},
      {"BindToUnknownStatement", {bind("", "nope") + execute() + sync()}, {"clock"}, 1},
      {"BindToUnnamedWithoutParse", {bind("", "") + execute() + sync()}, {"clock"}, 1},
      {"NamedPortal", {parse("", "SELECT 1") + bind("p", "") + execute("p") + sync()},
       {"classify:SELECT 1", "clock"}, 1},
      {"DescribeNamedPortal",
       {parse("", "SELECT 1") + bind("", "") + describe(protocol::kTargetPortal, "p") + sync()},
       {"classify:SELECT 1", "clock"}, 1},
      {"UnnamedWriteInBatch", {extended("UPDATE t SET a = 1")},
       {"classify:UPDATE t SET a = 1", "clock"}, 1},

      // Pipelines: several requests in one read.
      {"PipelinedQueriesKept", {query("SELECT 1") + query("SELECT 2")},
       {"clock", "classify:SELECT 1", "route:SELECT 1", "kept:Q:SELECT 1", "classify:SELECT 2",
        "route:SELECT 2", "kept:Q:SELECT 2"},
       2, false, true, false},
      {"PipelinedBatchesDivertedInTurn", {extended("SELECT 1") + extended("SELECT 2")},
       {"classify:SELECT 1", "clock", "route:SELECT 1", "divert:PBDES", "classify:SELECT 2",
        "route:SELECT 2", "divert:PBDES"},
       2},
      {"WriteThenReadInOneRead", {extended("UPDATE t SET a = 1") + extended("SELECT 2")},
       {"classify:UPDATE t SET a = 1", "clock", "classify:SELECT 2", "route:SELECT 2",
        "forward:PBDES", "divert:PBDES"},
       2},

      // A batch split across reads belongs to the primary.
      {"BatchSplitAcrossReads", {parse("", "SELECT 1") + bind("", ""), execute() + sync()},
       {"classify:SELECT 1", "clock"}, 1},
      {"BatchLeftOpen", {parse("", "SELECT 1") + bind("", "")}, {"classify:SELECT 1"}, 0, true},
      {"PartialMessageKeptBack",
       {extended("SELECT 1").substr(0, 10), extended("SELECT 1").substr(10)},
       {"classify:SELECT 1", "clock", "route:SELECT 1", "divert:PBDES"}, 1},
      {"BatchSplitMidMessage",
       {extended("SELECT 1").substr(0, 20), extended("SELECT 1").substr(20)},
       {"classify:SELECT 1", "clock"}, 1},
      {"NextBatchAfterSplitOneRoutes",
       {parse("", "SELECT 1"), sync() + extended("SELECT 2")},
       {"classify:SELECT 1", "clock", "classify:SELECT 2", "route:SELECT 2", "forward:S",
        "divert:PBDES"},
       2},

      // COPY, Close, Flush: not part of a routable read.
      {"CopyDataMakesUnroutable",
       {query("COPY t FROM STDIN"), copy_data("1\n") + copy_done() + query("SELECT 1")},
       {"clock", "classify:COPY t FROM STDIN"}, 2},
      {"CopyFailMakesUnroutable", {copy_fail("stop") + sync()}, {"clock"}, 1},
      {"CopyLeavesTheRequestOpen", {copy_data("1\n")}, {}, 0, true},
      {"CloseMakesUnroutable", {close_statement("s1") + sync()}, {"clock"}, 1},
      {"FlushMakesUnroutable",
       {parse("", "SELECT 1") + bind("", "") + execute() + flush() + sync()},
       {"classify:SELECT 1", "clock"}, 1},

      // Terminate and function calls.
      {"TerminateStopsTheScan", {query("SELECT 1") + terminate() + query("SELECT 2")},
       {"clock", "classify:SELECT 1", "route:SELECT 1", "kept:Q:SELECT 1", "terminate"}, 1,
       false, true, false},
      {"FunctionCallCounted", {function_call() + function_call()}, {"clock"}, 2},

      // Streamed (too large to keep) messages.
      {"StreamedQueryCountedNotLookedAt",
       {query("SELECT '" + kLarge + "'").substr(0, 100),
        query("SELECT '" + kLarge + "'").substr(100) + query("SELECT 1")},
       {"clock", "classify:SELECT 1", "route:SELECT 1", "kept:Q:SELECT 1"}, 2, false, true,
       false, false, false, false, "", 64},
      {"LargeMessageSeenWholeIsNotStreamed", {query("SELECT '" + kLarge + "'")},
       {"clock", "classify:SELECT '" + kLarge + "'", "route:SELECT '" + kLarge + "'", "divert:Q"},
       1, false, true, true, false, false, false, "", 64},
      {"StreamedParseMakesUnroutable",
       {parse("", "SELECT '" + kLarge + "'").substr(0, 100),
        parse("", "SELECT '" + kLarge + "'").substr(100) + bind("", "") + execute() + sync()},
       {"clock"}, 1, false, true, true, false, false, false, "", 64},

      // Bad or undecodable messages: forwarded, never routed.
      {"UndecodableBind", {raw(protocol::frontend::kBind, "no terminator") + execute() + sync()},
       {"clock"}, 1},
      {"UndecodableParse", {raw(protocol::frontend::kParse, "q") + sync()}, {"clock"}, 1},
      {"UndecodableDescribe",
       {parse("", "SELECT 1") + bind("", "") + raw(protocol::frontend::kDescribe, "") + sync()},
       {"classify:SELECT 1", "clock"}, 1},
      {"InvalidFrame", {query("SELECT 1") + raw('?', "")},
       {"clock", "classify:SELECT 1", "route:SELECT 1", "kept:Q:SELECT 1", "invalid"}, 1, false,
       true, false},
  };
}

class RequestTrackerTable : public ::testing::TestWithParam<Case> {};

TEST_P(RequestTrackerTable, Events) {
  const Case& c = GetParam();
  Driver d(c.keep_limit);
  d.host.to_secondary = c.to_secondary;
  d.host.is_pinned = c.pinned;
  d.host.shadowing = c.shadowing;
  d.host.logging = c.logging;
  d.host.prepared = known_reads();
  for (const auto& r : c.reads) {
    if (d.stopped) break;
    d.read(r, c.routing);
  }
  EXPECT_EQ(join(d.host.events), join(c.events));
  EXPECT_EQ(d.tracker.outstanding(), c.outstanding);
  EXPECT_EQ(d.tracker.batch_started_earlier(), c.batch_started_earlier);
  EXPECT_EQ(d.tracker.routed_statement(), c.routed_statement);
}

INSTANTIATE_TEST_SUITE_P(Cases, RequestTrackerTable, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& i) { return i.param.name; });

// Errors mid-batch: the server skips to the Sync and answers it with one ReadyForQuery, so the
// count of requests in flight drops by one per Sync, whatever failed inside the batch.
TEST(RequestTracker, OutstandingFollowsReadyForQuery) {
  Driver d;
  d.read(extended("SELECT 1") + parse("", "SELEC oops") + bind("", "") + execute() + sync() +
             query("SELECT 3"),
         false);
  EXPECT_EQ(d.tracker.outstanding(), 3u);
  EXPECT_FALSE(d.tracker.answered());
  EXPECT_FALSE(d.tracker.answered());  // the failed batch's one ReadyForQuery
  EXPECT_TRUE(d.tracker.answered());
  EXPECT_FALSE(d.tracker.answered());  // nothing outstanding: no underflow
  EXPECT_EQ(d.tracker.outstanding(), 0u);
  // The latency clock starts with the first request after idle only.
  EXPECT_EQ(std::count(d.host.events.begin(), d.host.events.end(), "clock"), 1);
  d.read(query("SELECT 4"), false);
  EXPECT_EQ(std::count(d.host.events.begin(), d.host.events.end(), "clock"), 2);
}

TEST(RequestTracker, EveryWholeMessageReachesTheHost) {
  Driver d;
  d.read(extended("SELECT 1") + query("SELECT 2") + flush(), true);
  EXPECT_EQ(d.host.frontend_messages, 7u);
}

TEST(RequestTracker, MessagesCountedPerScan) {
  Driver d;
  d.host.to_secondary = false;
  d.read(extended("SELECT 1") + query("SELECT 2"), true);
  EXPECT_EQ(d.tracker.messages(), 6u);
}

// A routed statement is forgotten when the next request begins.
TEST(RequestTracker, RoutedStatementPerRequest) {
  Driver d;
  d.host.prepared = known_reads();
  d.read(bind("", "s1") + execute() + sync(), true);
  EXPECT_EQ(d.tracker.routed_statement(), "s1");
  d.read(query("SELECT 1"), true);
  EXPECT_EQ(d.tracker.routed_statement(), "");
}

// The diverted request's offset is relative to the scanned buffer.
TEST(RequestTracker, DivertBeginsAtTheRequest) {
  Host host;
  RequestTracker tracker(host);
  protocol::FrameScanner scanner(protocol::Direction::kFrontend, protocol::Limits{}, 8 * 1024);
  const std::string write = query("INSERT INTO t VALUES (1)");
  const std::string bytes = write + query("SELECT 1") + query("SELECT 2");
  tracker.begin_scan(bytes.data(), true);
  auto r = scanner.scan(bytes, tracker);
  EXPECT_TRUE(r.stopped);
  EXPECT_TRUE(tracker.divert());
  EXPECT_EQ(tracker.divert_begin(), write.size());
  EXPECT_EQ(r.forward, write.size() + query("SELECT 1").size());
  tracker.end_scan();
  EXPECT_FALSE(tracker.batch_started_earlier());
}

}  // namespace
}  // namespace pgtandem::policy

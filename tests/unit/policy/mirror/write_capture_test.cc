// WriteCapture driven by the message sequences real clients send (psql, libpq, pgbench in its
// three modes, JDBC) and by what the primary answers, asserting exactly which MirrorUnits come
// out: their bytes, expected ReadyForQuery count, the primary's outcomes, flags and counters.
#include "policy/mirror/write_capture.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/errors.h"
#include "protocol/framing.h"
#include "protocol/message_types.h"
#include "protocol/messages.h"

namespace pgtandem::policy {
namespace {

namespace proto = protocol;
using Clock = std::chrono::steady_clock;

// ------------------------------------------------------------------------------------------------
// Frontend messages, whole, as a client sends them

std::string query(std::string_view sql) {
  std::string out;
  proto::encode(out, proto::Query{sql});
  return out;
}
std::string parse(std::string_view name, std::string_view sql) {
  std::string out;
  proto::encode_parse(out, name, sql, {});
  return out;
}
// libpq's Bind: no parameter format codes (all text) and one result format code (text).
std::string bind_msg(std::string_view portal, std::string_view statement,
                     std::initializer_list<std::string_view> params = {}) {
  std::vector<proto::Value> values;
  for (auto p : params) values.push_back(proto::Value::of(p));
  const int16_t text = 0;
  std::string out;
  proto::encode_bind(out, portal, statement, {}, values, std::span<const int16_t>(&text, 1));
  return out;
}
// JDBC's Bind of binary parameters: one format code per parameter.
std::string bind_binary(std::string_view statement,
                        std::initializer_list<std::string_view> params) {
  std::vector<proto::Value> values;
  std::vector<int16_t> formats;
  for (auto p : params) {
    values.push_back(proto::Value::of(p));
    formats.push_back(1);
  }
  std::string out;
  proto::encode_bind(out, "", statement, formats, values, {});
  return out;
}
std::string describe(char target, std::string_view name = "") {
  std::string out;
  proto::encode(out, proto::Describe{target, name});
  return out;
}
std::string execute(std::string_view portal = "", int32_t max_rows = 0) {
  std::string out;
  proto::encode(out, proto::Execute{portal, max_rows});
  return out;
}
std::string sync_msg() {
  std::string out;
  proto::encode(out, proto::Sync{});
  return out;
}
std::string flush() {
  std::string out;
  proto::encode(out, proto::Flush{});
  return out;
}
std::string close_msg(char target, std::string_view name) {
  std::string out;
  proto::encode(out, proto::Close{target, name});
  return out;
}
std::string copy_data(std::string_view data) {
  std::string out;
  proto::encode(out, proto::CopyData{data});
  return out;
}
std::string copy_done() {
  std::string out;
  proto::encode(out, proto::CopyDone{});
  return out;
}
std::string copy_fail(std::string_view message) {
  std::string out;
  proto::encode(out, proto::CopyFail{message});
  return out;
}
std::string function_call(uint32_t oid, std::initializer_list<std::string_view> args) {
  std::vector<proto::Value> values;
  for (auto a : args) values.push_back(proto::Value::of(a));
  std::string out;
  proto::encode_function_call(out, oid, {}, values, 0);
  return out;
}
std::string terminate() {
  std::string out;
  proto::encode(out, proto::Terminate{});
  return out;
}

// libpq: PQsendQueryParams (pgbench -M extended) and PQsendQueryPrepared (-M prepared).
std::string query_params(std::string_view sql,
                         std::initializer_list<std::string_view> params = {}) {
  return parse("", sql) + bind_msg("", "", params) + describe(proto::kTargetPortal) + execute() +
         sync_msg();
}
std::string query_prepared(std::string_view name,
                           std::initializer_list<std::string_view> params = {}) {
  return bind_msg("", name, params) + describe(proto::kTargetPortal) + execute() + sync_msg();
}
std::string prepare(std::string_view name, std::string_view sql) {  // PQprepare
  return parse(name, sql) + sync_msg();
}

// ------------------------------------------------------------------------------------------------
// Backend messages, as the primary answers

std::string parse_complete() {
  std::string out;
  proto::encode(out, proto::ParseComplete{});
  return out;
}
std::string bind_complete() {
  std::string out;
  proto::encode(out, proto::BindComplete{});
  return out;
}
std::string close_complete() {
  std::string out;
  proto::encode(out, proto::CloseComplete{});
  return out;
}
std::string no_data() {
  std::string out;
  proto::encode(out, proto::NoData{});
  return out;
}
std::string row_description(std::string_view column) {
  proto::ColumnDescription c;
  c.name = column;
  c.type_oid = 23;
  c.type_size = 4;
  c.type_modifier = -1;
  std::string out;
  proto::encode_row_description(out, std::span<const proto::ColumnDescription>(&c, 1));
  return out;
}
std::string data_row(std::string_view value) {
  const proto::Value v = proto::Value::of(value);
  std::string out;
  proto::encode_data_row(out, std::span<const proto::Value>(&v, 1));
  return out;
}
std::string command_complete(std::string_view tag) {
  std::string out;
  proto::encode(out, proto::CommandComplete{tag});
  return out;
}
std::string error(std::string_view sqlstate) {
  std::string out;
  proto::encode_error_response(out, proto::Severity::kError, sqlstate, "boom");
  return out;
}
std::string warning(std::string_view sqlstate) {
  std::string out;
  proto::encode_notice_response(out, proto::Severity::kWarning, sqlstate, "careful");
  return out;
}
std::string ready(char status) {
  std::string out;
  proto::encode(out, proto::ReadyForQuery{status});
  return out;
}
std::string copy_in_response() {
  const int16_t text = 0;
  std::string out;
  proto::encode_copy_response(out, proto::backend::kCopyInResponse, 0,
                              std::span<const int16_t>(&text, 1));
  return out;
}
std::string function_call_response(std::string_view value) {
  std::string out;
  proto::encode(out, proto::FunctionCallResponse{proto::Value::of(value)});
  return out;
}
std::string parameter_status(std::string_view name, std::string_view value) {
  std::string out;
  proto::encode(out, proto::ParameterStatus{name, value});
  return out;
}

// The primary's whole answer to one simple Query: CommandComplete tags, then ReadyForQuery.
std::string done(std::string_view tag, char status) {
  return command_complete(tag) + ready(status);
}
std::string failed(std::string_view sqlstate, char status) {
  return error(sqlstate) + ready(status);
}
std::string rows(std::string_view value, char status) {
  return row_description("v") + data_row(value) + command_complete("SELECT 1") + ready(status);
}
// Answers to query_params / query_prepared / prepare.
std::string ext_done(std::string_view tag, char status) {
  return parse_complete() + bind_complete() + no_data() + done(tag, status);
}
std::string prepared_done(std::string_view tag, char status) {
  return bind_complete() + no_data() + done(tag, status);
}
std::string prepared_rows(std::string_view value, char status) {
  return bind_complete() + row_description("v") + data_row(value) + command_complete("SELECT 1") +
         ready(status);
}
std::string prepare_done(char status) { return parse_complete() + ready(status); }

Outcome ok(std::string tag) { return Outcome{std::move(tag), {}}; }
Outcome err(std::string sqlstate) { return Outcome{{}, std::move(sqlstate)}; }

// ------------------------------------------------------------------------------------------------
// Reading bytes back

struct Message {
  proto::Header header;
  std::string_view whole;
  std::string_view body;
};

// Whole messages of one direction; false if the bytes do not split into whole messages.
bool split(std::string_view bytes, proto::Direction dir, std::vector<Message>* out) {
  while (!bytes.empty()) {
    auto h = proto::decode_header(bytes, dir, proto::Limits{});
    if (h.status != proto::Status::kComplete || bytes.size() < h.header.frame_size()) return false;
    out->push_back(Message{h.header, bytes.substr(0, h.header.frame_size()),
                           bytes.substr(proto::kHeaderSize, h.header.body_size())});
    bytes.remove_prefix(h.header.frame_size());
  }
  return true;
}

// Frontend bytes as a readable line, for failure messages.
std::string render(std::string_view bytes) {
  std::vector<Message> messages;
  const bool whole = split(bytes, proto::Direction::kFrontend, &messages);
  std::string out;
  for (const auto& m : messages) {
    if (!out.empty()) out += ' ';
    switch (m.header.type) {
      case proto::frontend::kQuery: {
        proto::Query q;
        out += proto::decode(m.body, q) ? "Q(" + std::string(q.sql) + ")" : "Q(?)";
        break;
      }
      case proto::frontend::kParse: {
        proto::Parse p;
        out += proto::decode(m.body, p)
                   ? "P(" + std::string(p.name) + ": " + std::string(p.query) + ")"
                   : "P(?)";
        break;
      }
      case proto::frontend::kBind: {
        proto::Bind b;
        std::string params;
        if (proto::decode(m.body, b)) {
          for (const auto& v : b.params) params += "," + std::string(v.data);
          out += "B(" + std::string(b.statement) + params + ")";
        } else {
          out += "B(?)";
        }
        break;
      }
      case proto::frontend::kClose: {
        proto::Close c;
        out += proto::decode(m.body, c)
                   ? "C(" + std::string(1, c.target) + ":" + std::string(c.name) + ")"
                   : "C(?)";
        break;
      }
      case proto::frontend::kCopyData:
        out += "d(" + std::string(m.body) + ")";
        break;
      default:
        out += std::string(1, m.header.type);
        break;
    }
  }
  if (!whole) out += " <not whole messages>";
  return out;
}

std::string render(const std::vector<Outcome>& outcomes) {
  std::string out;
  for (const auto& o : outcomes) {
    if (!out.empty()) out += ", ";
    out += o.is_error() ? "E:" + o.sqlstate : o.tag;
  }
  return "[" + out + "]";
}

// ------------------------------------------------------------------------------------------------
// Driving a capture the way the session does: one whole message at a time, taking released units
// after every backend message.

const Clock::time_point kNow = Clock::time_point(std::chrono::seconds(1000));

struct Step {
  enum Kind { kFrontend, kBackend, kCheck } kind;
  std::string bytes;
  std::function<void(const WriteCapture&)> check;
};
Step fe(std::string bytes) { return Step{Step::kFrontend, std::move(bytes), nullptr}; }
Step be(std::string bytes) { return Step{Step::kBackend, std::move(bytes), nullptr}; }
Step check(std::function<void(const WriteCapture&)> f) {
  return Step{Step::kCheck, {}, std::move(f)};
}
// A whole request and its answer.
std::vector<Step> exchange(std::string request, std::string answer) {
  return {fe(std::move(request)), be(std::move(answer))};
}

class Driver {
 public:
  explicit Driver(WriteCapture::Options options = {}) : capture(std::move(options)) {}

  void run(const Step& step) {
    if (step.kind == Step::kCheck) {
      step.check(capture);
      return;
    }
    const bool frontend = step.kind == Step::kFrontend;
    std::vector<Message> messages;
    ASSERT_TRUE(split(step.bytes,
                      frontend ? proto::Direction::kFrontend : proto::Direction::kBackend,
                      &messages));
    for (const auto& m : messages) {
      if (frontend) {
        capture.on_frontend(m.header, m.whole);
        continue;
      }
      if (m.header.type == proto::backend::kReadyForQuery) {
        ++ready_seen;
        // Every ReadyForQuery answers a request the capture knows about.
        if (capture.outstanding() == 0) ++ready_unmatched;
      }
      const bool released = capture.on_backend(m.header, m.body, now);
      auto units = capture.take();
      auto skips = capture.take_skips();
      EXPECT_EQ(released, !units.empty() || !skips.empty());
      for (auto& u : units) this->units.push_back(std::move(u));
      for (auto& k : skips) this->skips.push_back(std::move(k));
    }
  }
  void run(const std::vector<Step>& steps) {
    for (const auto& s : steps) run(s);
  }

  WriteCapture capture;
  Clock::time_point now = kNow;
  std::vector<MirrorUnit> units;
  std::vector<PrimaryOnlySkip> skips;
  size_t ready_seen = 0;
  size_t ready_unmatched = 0;
};

// ------------------------------------------------------------------------------------------------
// The table

struct ExpectedUnit {
  std::string bytes;
  uint32_t responses = 1;
  std::vector<Outcome> primary = {};
  std::vector<std::string> binds = {};
  bool transaction = false;
  bool session_state = false;
  bool nondeterministic = false;
};

struct Case {
  std::string name;
  std::vector<Step> steps;
  std::vector<ExpectedUnit> units;
  CaptureStats stats;
  bool in_transaction = false;  // after the last step
  std::vector<PrimaryOnlySkip> skips = {};
};

std::vector<Step> operator+(std::vector<Step> a, const std::vector<Step>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}
std::vector<Step> operator+(std::vector<Step> a, Step b) {
  a.push_back(std::move(b));
  return a;
}

CaptureStats stats(uint64_t released, uint64_t skipped_rollback, uint64_t skipped_read,
                   uint64_t nondeterministic = 0, uint64_t skipped_primary_only = 0) {
  CaptureStats s;
  s.released = released;
  s.skipped_rollback = skipped_rollback;
  s.skipped_read = skipped_read;
  s.nondeterministic = nondeterministic;
  s.skipped_primary_only = skipped_primary_only;
  return s;
}

// Statements as the applications send them.
constexpr std::string_view kInsert = "INSERT INTO accounts (id, balance) VALUES (1, 100)";
constexpr std::string_view kInsert2 = "INSERT INTO accounts (id, balance) VALUES (2, 200)";
constexpr std::string_view kInsertParam = "INSERT INTO accounts (id, balance) VALUES ($1, $2)";
constexpr std::string_view kUpdate = "UPDATE accounts SET balance = balance + 1 WHERE id = 1";
constexpr std::string_view kUpdateParam =
    "UPDATE accounts SET balance = balance + $1 WHERE id = $2";
constexpr std::string_view kSelect = "SELECT balance FROM accounts WHERE id = 1";
constexpr std::string_view kSelectParam = "SELECT balance FROM accounts WHERE id = $1";
constexpr std::string_view kCopy = "COPY accounts (id, balance) FROM STDIN";

// pgbench's built-in TPC-B script, as -M extended/prepared send it (pgbench 15: P_0 .. P_6).
constexpr std::string_view kTpcb[] = {
    "BEGIN;",
    "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;",
    "SELECT abalance FROM pgbench_accounts WHERE aid = $1;",
    "UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2;",
    "UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2;",
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, "
    "CURRENT_TIMESTAMP);",
    "END;",
};

std::vector<Case> simple_protocol_cases() {
  std::vector<Case> c;
  c.push_back({"AutocommitInsert",
               exchange(query(kInsert), done("INSERT 0 1", 'I')),
               {{.bytes = query(kInsert), .responses = 1, .primary = {ok("INSERT 0 1")}}},
               stats(1, 0, 0)});
  c.push_back({"AutocommitInsertFails",
               exchange(query(kInsert), failed("23505", 'I')),
               {},
               stats(0, 1, 0)});
  c.push_back({"AutocommitSelect", exchange(query(kSelect), rows("100", 'I')), {}, stats(0, 0, 1)});
  c.push_back({"EmptyQuery",
               exchange(query(""),
                        [] {
                          std::string out;
                          proto::encode(out, proto::EmptyQueryResponse{});
                          return out + ready('I');
                        }()),
               {},
               stats(0, 0, 1)});
  c.push_back({"TransactionCommitted",
               exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(query(kInsert), done("INSERT 0 1", 'T')) +
                   exchange(query(kUpdate), done("UPDATE 1", 'T')) +
                   exchange(query(kSelect), rows("101", 'T')) +
                   exchange(query("COMMIT"), done("COMMIT", 'I')),
               {{.bytes = query("BEGIN") + query(kInsert) + query(kUpdate) + query("COMMIT"),
                 .responses = 4,
                 .primary = {ok("BEGIN"), ok("INSERT 0 1"), ok("UPDATE 1"), ok("COMMIT")},
                 .transaction = true}},
               stats(1, 0, 1)});
  c.push_back({"TransactionRolledBack",
               exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(query(kInsert), done("INSERT 0 1", 'T')) +
                   exchange(query(kUpdate), done("UPDATE 1", 'T')) +
                   exchange(query(kSelect), rows("101", 'T')) +
                   exchange(query("ROLLBACK"), done("ROLLBACK", 'I')),
               {},
               stats(0, 1, 1)});
  c.push_back({"ExplicitTransactionHeldUntilItEnds",
               exchange(query("START TRANSACTION"), done("START TRANSACTION", 'T')) +
                   exchange(query(kInsert), done("INSERT 0 1", 'T')),
               {},
               stats(0, 0, 0),
               /*in_transaction=*/true});
  c.push_back({"CommitOfFailedTransactionIsRollback",
               exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(query(kInsert), done("INSERT 0 1", 'T')) +
                   exchange(query(kInsert), failed("23505", 'E')) +
                   exchange(query(kSelect), failed("25P02", 'E')) +
                   exchange(query("COMMIT"), done("ROLLBACK", 'I')),
               {},
               stats(0, 1, 1)});
  c.push_back({"EndAndAbortSpellings",
               exchange(query("begin work"), done("BEGIN", 'T')) +
                   exchange(query(kInsert), done("INSERT 0 1", 'T')) +
                   exchange(query("end"), done("COMMIT", 'I')) +
                   exchange(query("begin"), done("BEGIN", 'T')) +
                   exchange(query(kInsert2), done("INSERT 0 1", 'T')) +
                   exchange(query("abort"), done("ROLLBACK", 'I')),
               {{.bytes = query("begin work") + query(kInsert) + query("end"),
                 .responses = 3,
                 .primary = {ok("BEGIN"), ok("INSERT 0 1"), ok("COMMIT")},
                 .transaction = true}},
               stats(1, 1, 0)});
  c.push_back({"SavepointRollbackToThenCommit",
               exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(query("SAVEPOINT s1"), done("SAVEPOINT", 'T')) +
                   exchange(query(kInsert), failed("23505", 'E')) +
                   exchange(query("ROLLBACK TO SAVEPOINT s1"), done("ROLLBACK", 'T')) +
                   exchange(query(kInsert2), done("INSERT 0 1", 'T')) +
                   exchange(query("RELEASE SAVEPOINT s1"), done("RELEASE", 'T')) +
                   exchange(query("COMMIT"), done("COMMIT", 'I')),
               {{.bytes = query("BEGIN") + query("SAVEPOINT s1") + query(kInsert) +
                          query("ROLLBACK TO SAVEPOINT s1") + query(kInsert2) +
                          query("RELEASE SAVEPOINT s1") + query("COMMIT"),
                 .responses = 7,
                 .primary = {ok("BEGIN"), ok("SAVEPOINT"), err("23505"), ok("ROLLBACK"),
                             ok("INSERT 0 1"), ok("RELEASE"), ok("COMMIT")},
                 .transaction = true}},
               stats(1, 0, 0)});
  c.push_back({"SavepointThenWholeRollback",
               exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(query("SAVEPOINT s1"), done("SAVEPOINT", 'T')) +
                   exchange(query(kInsert), done("INSERT 0 1", 'T')) +
                   exchange(query("ROLLBACK TO SAVEPOINT s1"), done("ROLLBACK", 'T')) +
                   exchange(query("ROLLBACK"), done("ROLLBACK", 'I')),
               {},
               stats(0, 1, 0)});
  c.push_back(
      {"WholeTransactionInOneQuery",
       exchange(query(std::string("BEGIN; ") + std::string(kInsert) + "; COMMIT"),
                command_complete("BEGIN") + command_complete("INSERT 0 1") + done("COMMIT", 'I')),
       {{.bytes = query(std::string("BEGIN; ") + std::string(kInsert) + "; COMMIT"),
         .responses = 1,
         .primary = {ok("BEGIN"), ok("INSERT 0 1"), ok("COMMIT")},
         .transaction = true}},
       stats(1, 0, 0)});
  c.push_back(
      {"RolledBackTransactionInOneQuery",
       exchange(query(std::string("BEGIN; ") + std::string(kInsert) + "; ROLLBACK"),
                command_complete("BEGIN") + command_complete("INSERT 0 1") + done("ROLLBACK", 'I')),
       {},
       stats(0, 1, 0)});
  // An implicit transaction block: ROLLBACK (with a warning) discards the INSERT.
  c.push_back({"ImplicitBlockRolledBack",
               exchange(query(std::string(kInsert) + "; ROLLBACK"),
                        command_complete("INSERT 0 1") + warning("25P01") + done("ROLLBACK", 'I')),
               {},
               stats(0, 1, 0)});
  c.push_back({"MultiStatementAutocommitFailsAsAWhole",
               exchange(query(std::string(kInsert) + "; " + std::string(kInsert2)),
                        command_complete("INSERT 0 1") + failed("23505", 'I')),
               {},
               stats(0, 1, 0)});
  c.push_back({"ReadsInsideTransactionNotMirrored",
               exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(query(kSelect), rows("1", 'T')) +
                   exchange(query(kUpdate), done("UPDATE 1", 'T')) +
                   exchange(query(kSelect), rows("2", 'T')) +
                   exchange(query("COMMIT"), done("COMMIT", 'I')),
               {{.bytes = query("BEGIN") + query(kUpdate) + query("COMMIT"),
                 .responses = 3,
                 .primary = {ok("BEGIN"), ok("UPDATE 1"), ok("COMMIT")},
                 .transaction = true}},
               stats(1, 0, 2)});
  c.push_back({"TwoTransactionsTwoUnits",
               exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(query(kInsert), done("INSERT 0 1", 'T')) +
                   exchange(query("COMMIT"), done("COMMIT", 'I')) +
                   exchange(query(kUpdate), done("UPDATE 1", 'I')) +
                   exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(query(kInsert2), done("INSERT 0 1", 'T')) +
                   exchange(query("COMMIT"), done("COMMIT", 'I')),
               {{.bytes = query("BEGIN") + query(kInsert) + query("COMMIT"),
                 .responses = 3,
                 .primary = {ok("BEGIN"), ok("INSERT 0 1"), ok("COMMIT")},
                 .transaction = true},
                {.bytes = query(kUpdate), .responses = 1, .primary = {ok("UPDATE 1")}},
                {.bytes = query("BEGIN") + query(kInsert2) + query("COMMIT"),
                 .responses = 3,
                 .primary = {ok("BEGIN"), ok("INSERT 0 1"), ok("COMMIT")},
                 .transaction = true}},
               stats(3, 0, 0)});
  return c;
}

std::vector<Case> session_state_cases() {
  std::vector<Case> c;
  c.push_back({"SetSearchPathAutocommit",
               exchange(query("SET search_path TO app, public"), done("SET", 'I')),
               {{.bytes = query("SET search_path TO app, public"),
                 .responses = 1,
                 .primary = {ok("SET")},
                 .session_state = true}},
               stats(1, 0, 0)});
  c.push_back({"SetApplicationNameReportsParameterStatus",
               exchange(query("SET application_name = 'billing'"),
                        command_complete("SET") + parameter_status("application_name", "billing") +
                            ready('I')),
               {{.bytes = query("SET application_name = 'billing'"),
                 .responses = 1,
                 .primary = {ok("SET")},
                 .session_state = true}},
               stats(1, 0, 0)});
  c.push_back({"FailedSetNotMirrored",
               exchange(query("SET search_path TO app, public"), failed("22023", 'I')),
               {},
               stats(0, 1, 0)});
  c.push_back({"SetInRolledBackTransaction",
               exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(query("SET search_path TO app"), done("SET", 'T')) +
                   exchange(query("ROLLBACK"), done("ROLLBACK", 'I')),
               {},
               stats(0, 1, 0)});
  c.push_back({"SetInCommittedTransaction",
               exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(query("SET search_path TO app"), done("SET", 'T')) +
                   exchange(query("COMMIT"), done("COMMIT", 'I')),
               {{.bytes = query("BEGIN") + query("SET search_path TO app") + query("COMMIT"),
                 .responses = 3,
                 .primary = {ok("BEGIN"), ok("SET"), ok("COMMIT")},
                 .transaction = true,
                 .session_state = true}},
               stats(1, 0, 0)});
  // A unit with data changes is not session state: the proxy replays session-state units on a
  // new mirror connection and before journal entries, which would apply the INSERT twice.
  c.push_back({"SetAndWriteInCommittedTransactionIsNotSessionState",
               exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(query("SET search_path TO app"), done("SET", 'T')) +
                   exchange(query(kInsert), done("INSERT 0 1", 'T')) +
                   exchange(query("COMMIT"), done("COMMIT", 'I')),
               {{.bytes = query("BEGIN") + query("SET search_path TO app") + query(kInsert) +
                          query("COMMIT"),
                 .responses = 4,
                 .primary = {ok("BEGIN"), ok("SET"), ok("INSERT 0 1"), ok("COMMIT")},
                 .transaction = true,
                 .session_state = false}},
               stats(1, 0, 0)});
  c.push_back(
      {"SqlPrepareAndExecute",
       exchange(query("PREPARE ins (int, int) AS INSERT INTO accounts (id, balance) "
                      "VALUES ($1, $2)"),
                done("PREPARE", 'I')) +
           exchange(query("EXECUTE ins(5, 50)"), done("INSERT 0 1", 'I')) +
           exchange(query("PREPARE sel AS SELECT balance FROM accounts"), done("PREPARE", 'I')) +
           exchange(query("EXECUTE sel"), rows("50", 'I')) + check([](const WriteCapture& w) {
             ASSERT_NE(w.prepared().find("ins"), nullptr);
             EXPECT_EQ(w.prepared().find("ins")->kind, StatementKind::kWrite);
             ASSERT_NE(w.prepared().find("sel"), nullptr);
             EXPECT_EQ(w.prepared().find("sel")->kind, StatementKind::kRead);
           }) +
           exchange(query("DEALLOCATE ins"), done("DEALLOCATE", 'I')) +
           check([](const WriteCapture& w) {
             EXPECT_EQ(w.prepared().find("ins"), nullptr);
             EXPECT_NE(w.prepared().find("sel"), nullptr);
           }),
       {{.bytes = query("PREPARE ins (int, int) AS INSERT INTO accounts (id, balance) "
                        "VALUES ($1, $2)"),
         .responses = 1,
         .primary = {ok("PREPARE")},
         .session_state = true},
        {.bytes = query("EXECUTE ins(5, 50)"), .responses = 1, .primary = {ok("INSERT 0 1")}},
        {.bytes = query("PREPARE sel AS SELECT balance FROM accounts"),
         .responses = 1,
         .primary = {ok("PREPARE")},
         .session_state = true},
        {.bytes = query("DEALLOCATE ins"),
         .responses = 1,
         .primary = {ok("DEALLOCATE")},
         .session_state = true}},
       stats(4, 0, 1)});
  c.push_back({"DiscardAllForgetsStatements",
               exchange(prepare("s1", kInsertParam), prepare_done('I')) +
                   exchange(query("DISCARD ALL"), done("DISCARD ALL", 'I')) +
                   check([](const WriteCapture& w) {
                     EXPECT_EQ(w.prepared().size(), 0u);
                     EXPECT_EQ(w.parse_message("s1"), nullptr);
                   }),
               {{.bytes = prepare("s1", kInsertParam), .responses = 1, .session_state = true},
                {.bytes = query("DISCARD ALL"),
                 .responses = 1,
                 .primary = {ok("DISCARD ALL")},
                 .session_state = true}},
               stats(2, 0, 0)});
  return c;
}

std::vector<Case> nondeterministic_cases() {
  std::vector<Case> c;
  c.push_back(
      {"InsertNow",
       exchange(query("INSERT INTO events (id, at) VALUES (1, now())"), done("INSERT 0 1", 'I')),
       {{.bytes = query("INSERT INTO events (id, at) VALUES (1, now())"),
         .responses = 1,
         .primary = {ok("INSERT 0 1")},
         .nondeterministic = true}},
       stats(1, 0, 0, 1)});
  c.push_back({"SelectNextval",
               exchange(query("SELECT nextval('orders_id_seq')"), rows("7", 'I')),
               {{.bytes = query("SELECT nextval('orders_id_seq')"),
                 .responses = 1,
                 .primary = {ok("SELECT 1")},
                 .nondeterministic = true}},
               stats(1, 0, 0, 1)});
  c.push_back({"InsertNextvalInTransaction",
               exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(query("INSERT INTO orders (id, item) VALUES "
                                  "(nextval('orders_id_seq'), 'x')"),
                            done("INSERT 0 1", 'T')) +
                   exchange(query(kUpdate), done("UPDATE 1", 'T')) +
                   exchange(query("COMMIT"), done("COMMIT", 'I')),
               {{.bytes = query("BEGIN") +
                          query("INSERT INTO orders (id, item) VALUES "
                                "(nextval('orders_id_seq'), 'x')") +
                          query(kUpdate) + query("COMMIT"),
                 .responses = 4,
                 .primary = {ok("BEGIN"), ok("INSERT 0 1"), ok("UPDATE 1"), ok("COMMIT")},
                 .transaction = true,
                 .nondeterministic = true}},
               stats(1, 0, 0, 1)});
  c.push_back(
      {"NondeterministicRolledBackNotCounted",
       exchange(query("INSERT INTO events (id, at) VALUES (1, now())"), failed("23505", 'I')),
       {},
       stats(0, 1, 0, 0)});
  // Preparing is not executing: only the Bind makes the request nondeterministic.
  c.push_back({"ExtendedNowOnlyWhenBound",
               exchange(prepare("ev", "INSERT INTO events (id, at) VALUES ($1, now())"),
                        prepare_done('I')) +
                   exchange(query_prepared("ev", {"1"}), prepared_done("INSERT 0 1", 'I')),
               {{.bytes = prepare("ev", "INSERT INTO events (id, at) VALUES ($1, now())"),
                 .responses = 1,
                 .session_state = true},
                {.bytes = query_prepared("ev", {"1"}),
                 .responses = 1,
                 .primary = {ok("INSERT 0 1")},
                 .binds = {"ev"},
                 .nondeterministic = true}},
               stats(2, 0, 0, 1)});
  return c;
}

std::vector<Case> extended_protocol_cases() {
  std::vector<Case> c;
  // pgbench -M extended: every statement is Parse(unnamed)/Bind/Describe/Execute/Sync.
  c.push_back({"PgbenchExtendedAutocommitUpdate",
               exchange(query_params(kUpdateParam, {"5", "1"}), ext_done("UPDATE 1", 'I')),
               {{.bytes = query_params(kUpdateParam, {"5", "1"}),
                 .responses = 1,
                 .primary = {ok("UPDATE 1")}}},
               stats(1, 0, 0)});
  c.push_back({"PgbenchExtendedSelect",
               exchange(query_params(kSelectParam, {"1"}),
                        parse_complete() + bind_complete() + row_description("balance") +
                            data_row("100") + command_complete("SELECT 1") + ready('I')),
               {},
               stats(0, 0, 1)});
  c.push_back({"PgbenchExtendedFailingUpdate",
               exchange(query_params(kUpdateParam, {"x", "1"}),
                        parse_complete() + bind_complete() + failed("22P02", 'I')),
               {},
               stats(0, 1, 0)});
  {
    std::vector<Step> steps;
    std::string unit;
    const std::vector<std::vector<std::string_view>> params = {
        {}, {"-3", "17"}, {"17"}, {"-3", "1"}, {"-3", "1"}, {"1", "1", "17", "-3"}, {}};
    for (size_t i = 0; i < std::size(kTpcb); ++i) {
      std::vector<proto::Value> values;
      std::string request = parse("", kTpcb[i]);
      {
        std::vector<proto::Value> vs;
        for (auto p : params[i]) vs.push_back(proto::Value::of(p));
        const int16_t text = 0;
        proto::encode_bind(request, "", "", {}, vs, std::span<const int16_t>(&text, 1));
      }
      request += describe(proto::kTargetPortal) + execute() + sync_msg();
      std::string answer;
      switch (i) {
        case 0:
          answer = ext_done("BEGIN", 'T');
          break;
        case 2:
          answer = parse_complete() + bind_complete() + row_description("abalance") +
                   data_row("0") + command_complete("SELECT 1") + ready('T');
          break;
        case 5:
          answer = ext_done("INSERT 0 1", 'T');
          break;
        case 6:
          answer = ext_done("COMMIT", 'I');
          break;
        default:
          answer = ext_done("UPDATE 1", 'T');
          break;
      }
      if (i != 2) unit += request;
      steps = steps + exchange(request, answer);
    }
    c.push_back({"PgbenchExtendedTpcbTransaction",
                 steps,
                 {{.bytes = unit,
                   .responses = 6,
                   .primary = {ok("BEGIN"), ok("UPDATE 1"), ok("UPDATE 1"), ok("UPDATE 1"),
                               ok("INSERT 0 1"), ok("COMMIT")},
                   .transaction = true,
                   .nondeterministic = true}},
                 stats(1, 0, 1, 1)});
  }
  // The brief's -M prepared shape: PQprepare outside a transaction, then executions inside one.
  c.push_back(
      {"PreparedOutsideThenBoundInsideTransaction",
       exchange(prepare("upd", kUpdateParam), prepare_done('I')) + check([](const WriteCapture& w) {
         ASSERT_NE(w.parse_message("upd"), nullptr);
         EXPECT_EQ(*w.parse_message("upd"), parse("upd", kUpdateParam));
         ASSERT_NE(w.prepared().find("upd"), nullptr);
         EXPECT_EQ(w.prepared().find("upd")->kind, StatementKind::kWrite);
       }) + exchange(query("BEGIN"), done("BEGIN", 'T')) +
           exchange(query_prepared("upd", {"5", "1"}), prepared_done("UPDATE 1", 'T')) +
           exchange(query_prepared("upd", {"-5", "2"}), prepared_done("UPDATE 1", 'T')) +
           exchange(query("END"), done("COMMIT", 'I')) +
           exchange(close_msg(proto::kTargetStatement, "upd") + sync_msg(),
                    close_complete() + ready('I')) +
           check([](const WriteCapture& w) {
             EXPECT_EQ(w.parse_message("upd"), nullptr);
             EXPECT_EQ(w.prepared().find("upd"), nullptr);
           }),
       {{.bytes = prepare("upd", kUpdateParam), .responses = 1, .session_state = true},
        {.bytes = query("BEGIN") + query_prepared("upd", {"5", "1"}) +
                  query_prepared("upd", {"-5", "2"}) + query("END"),
         .responses = 4,
         .primary = {ok("BEGIN"), ok("UPDATE 1"), ok("UPDATE 1"), ok("COMMIT")},
         .binds = {"upd", "upd"},
         .transaction = true},
        {.bytes = close_msg(proto::kTargetStatement, "upd") + sync_msg(),
         .responses = 1,
         .session_state = true}},
       stats(3, 0, 0)});
  // pgbench 15 -M prepared, as it really runs (checked with pgbench -d against PostgreSQL 15):
  // each statement is prepared right before its first execution, so P_1..P_6 are parsed inside
  // the first transaction. A second transaction only binds.
  {
    std::vector<Step> steps;
    std::string first;
    std::string second;
    std::vector<std::string> first_binds;
    for (int txn = 0; txn < 2; ++txn) {
      for (size_t i = 0; i < std::size(kTpcb); ++i) {
        const std::string name = "P_" + std::to_string(i);
        const char before = (i == 0) ? 'I' : 'T';
        const char after = (i == 6) ? 'I' : 'T';
        std::string& unit = txn == 0 ? first : second;
        if (txn == 0) {
          steps = steps + exchange(prepare(name, kTpcb[i]), prepare_done(before));
          if (i == 0) {
            // Prepared outside any transaction: its own session-state unit.
          } else if (i != 2) {
            unit += prepare(name, kTpcb[i]);
          }
        }
        std::string request;
        switch (i) {
          case 1:
            request = query_prepared(name, {"-3", "17"});
            break;
          case 2:
            request = query_prepared(name, {"17"});
            break;
          case 3:
          case 4:
            request = query_prepared(name, {"-3", "1"});
            break;
          case 5:
            request = query_prepared(name, {"1", "1", "17", "-3"});
            break;
          default:
            request = query_prepared(name);
            break;
        }
        std::string answer;
        switch (i) {
          case 0:
            answer = prepared_done("BEGIN", after);
            break;
          case 2:
            answer = prepared_rows("0", after);
            break;
          case 5:
            answer = prepared_done("INSERT 0 1", after);
            break;
          case 6:
            answer = prepared_done("COMMIT", after);
            break;
          default:
            answer = prepared_done("UPDATE 1", after);
            break;
        }
        steps = steps + exchange(request, answer);
        if (i != 2) {
          unit += request;
          if (txn == 0) first_binds.push_back(name);
        }
      }
    }
    steps = steps + std::vector<Step>{check([](const WriteCapture& w) {
              for (size_t i = 0; i < std::size(kTpcb); ++i) {
                const std::string name = "P_" + std::to_string(i);
                ASSERT_NE(w.parse_message(name), nullptr) << name;
                EXPECT_EQ(*w.parse_message(name), parse(name, kTpcb[i]));
              }
              EXPECT_EQ(w.prepared().size(), std::size(kTpcb));
            })};
    const std::vector<Outcome> primary = {ok("BEGIN"),    ok("UPDATE 1"),   ok("UPDATE 1"),
                                          ok("UPDATE 1"), ok("INSERT 0 1"), ok("COMMIT")};
    c.push_back({"Pgbench15PreparedTpcb",
                 steps,
                 {{.bytes = prepare("P_0", kTpcb[0]), .responses = 1, .session_state = true},
                  {.bytes = first,
                   .responses = 11,
                   .primary = primary,
                   .binds = first_binds,
                   .transaction = true,
                   .nondeterministic = true},
                  {.bytes = second,
                   .responses = 6,
                   .primary = primary,
                   .binds = first_binds,
                   .transaction = true,
                   .nondeterministic = true}},
                 stats(3, 0, 3, 2)});
  }
  // JDBC with autocommit off: BEGIN rides in the first batch, named statements, binary
  // parameters, one Sync per batch.
  {
    const std::string batch1 =
        parse("", "BEGIN") + bind_msg("", "") + execute() + parse("S_1", kInsertParam) +
        bind_binary("S_1", {std::string_view("\0\0\0\1", 4), std::string_view("\0\0\0\144", 4)}) +
        describe(proto::kTargetPortal) + execute() + sync_msg();
    const std::string answer1 = parse_complete() + bind_complete() + command_complete("BEGIN") +
                                parse_complete() + bind_complete() + no_data() +
                                done("INSERT 0 1", 'T');
    const std::string batch2 =
        bind_binary("S_1", {std::string_view("\0\0\0\2", 4), std::string_view("\0\0\0\310", 4)}) +
        describe(proto::kTargetPortal) + execute() + sync_msg();
    const std::string commit = parse("", "COMMIT") + bind_msg("", "") + execute() + sync_msg();
    c.push_back({"JdbcTransactionBatches",
                 exchange(batch1, answer1) +
                     exchange(batch2, bind_complete() + no_data() + done("INSERT 0 1", 'T')) +
                     exchange(commit, parse_complete() + bind_complete() + done("COMMIT", 'I')),
                 {{.bytes = batch1 + batch2 + commit,
                   .responses = 3,
                   .primary = {ok("BEGIN"), ok("INSERT 0 1"), ok("INSERT 0 1"), ok("COMMIT")},
                   .binds = {"S_1", "S_1"},
                   .transaction = true}},
                 stats(1, 0, 0)});
  }
  // Named statements are not transactional: one the primary accepted inside a transaction that
  // rolled back still exists there, so the mirror must get its Parse, or every later Bind of it
  // fails on the mirror. It gets it lazily, just before the first released unit that binds it
  // (the statement may refer to objects the rolled-back transaction created); a Close of a
  // statement the mirror has goes at once.
  {
    const std::string batch = parse("S_1", kInsertParam) + bind_msg("", "S_1", {"1", "100"}) +
                              describe(proto::kTargetPortal) + execute() + sync_msg();
    c.push_back(
        {"JdbcStatementParsedInRolledBackTransaction",
         exchange(query("BEGIN"), done("BEGIN", 'T')) +
             exchange(batch,
                      parse_complete() + bind_complete() + no_data() + done("INSERT 0 1", 'T')) +
             exchange(close_msg(proto::kTargetStatement, "S_0") + sync_msg(),
                      close_complete() + ready('T')) +
             exchange(query("ROLLBACK"), done("ROLLBACK", 'I')) +
             exchange(query("BEGIN"), done("BEGIN", 'T')) +
             exchange(query_prepared("S_1", {"2", "200"}), prepared_done("INSERT 0 1", 'T')) +
             exchange(query("COMMIT"), done("COMMIT", 'I')) + check([](const WriteCapture& w) {
               ASSERT_NE(w.parse_message("S_1"), nullptr);
               EXPECT_EQ(*w.parse_message("S_1"), parse("S_1", kInsertParam));
             }),
         {{.bytes = close_msg(proto::kTargetStatement, "S_0") + sync_msg(),
           .responses = 1,
           .session_state = true},
          {.bytes = parse("S_1", kInsertParam) + sync_msg(),
           .responses = 1,
           .session_state = true},
          {.bytes = query("BEGIN") + query_prepared("S_1", {"2", "200"}) + query("COMMIT"),
           .responses = 3,
           .primary = {ok("BEGIN"), ok("INSERT 0 1"), ok("COMMIT")},
           .binds = {"S_1"},
           .transaction = true}},
         stats(3, 1, 0)});
  }
  {
    const std::string batch = parse("S_2", kInsertParam) + bind_msg("", "S_2", {"1", "100"}) +
                              describe(proto::kTargetPortal) + execute() + sync_msg();
    c.push_back(
        {"StatementParsedInFailedAutocommitBatch",
         exchange(batch, parse_complete() + bind_complete() + no_data() + failed("23505", 'I')),
         {},  // S_2 reaches the mirror with the first released unit that binds it
         stats(0, 1, 0)});
  }
  // Issue 15: what psycopg does after its prepare threshold. The statement refers to a table the
  // rolled-back transaction created: preparing it on the mirror would fail there (42P01) and was
  // counted as a divergence. It never reaches the mirror unless a released unit binds it.
  {
    constexpr std::string_view kInsertT = "INSERT INTO t VALUES ($1)";
    const std::string batch = parse("_pg3_0", kInsertT) + bind_msg("", "_pg3_0", {"1"}) +
                              describe(proto::kTargetPortal) + execute() + sync_msg();
    c.push_back(
        {"StatementOfRolledBackTableNeverReachesTheMirror",
         exchange(query("BEGIN"), done("BEGIN", 'T')) +
             exchange(query("CREATE TABLE t (a int)"), done("CREATE TABLE", 'T')) +
             exchange(batch,
                      parse_complete() + bind_complete() + no_data() + done("INSERT 0 1", 'T')) +
             exchange(query("ROLLBACK"), done("ROLLBACK", 'I')) +
             exchange(query(kInsert), done("INSERT 0 1", 'I')),
         {{.bytes = query(kInsert), .responses = 1, .primary = {ok("INSERT 0 1")}}},
         stats(1, 1, 0)});
    // Closing a deferred statement needs nothing from the mirror but a harmless Close; a later
    // statement of the same name is a new one, not the deferred one.
    c.push_back(
        {"DeferredStatementClosedThenPreparedAgain",
         exchange(query("BEGIN"), done("BEGIN", 'T')) +
             exchange(batch,
                      parse_complete() + bind_complete() + no_data() + done("INSERT 0 1", 'T')) +
             exchange(query("ROLLBACK"), done("ROLLBACK", 'I')) +
             exchange(close_msg(proto::kTargetStatement, "_pg3_0") + sync_msg(),
                      close_complete() + ready('I')) +
             exchange(parse("_pg3_0", kInsertParam) + bind_msg("", "_pg3_0", {"1", "2"}) +
                          execute() + sync_msg(),
                      parse_complete() + bind_complete() + done("INSERT 0 1", 'I')),
         {{.bytes = close_msg(proto::kTargetStatement, "_pg3_0") + sync_msg(),
           .responses = 1,
           .session_state = true},
          {.bytes = parse("_pg3_0", kInsertParam) + bind_msg("", "_pg3_0", {"1", "2"}) +
                    execute() + sync_msg(),
           .responses = 1,
           .primary = {ok("INSERT 0 1")},
           .binds = {"_pg3_0"}}},
         stats(2, 1, 0)});
  }
  // A Parse the primary refused (the transaction had failed) created nothing.
  c.push_back({"StatementRefusedInFailedTransaction",
               exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(query(kInsert), failed("23505", 'E')) +
                   exchange(parse("S_3", kInsertParam) + bind_msg("", "S_3", {"1", "1"}) +
                                execute() + sync_msg(),
                            failed("25P02", 'E')) +
                   exchange(query("ROLLBACK"), done("ROLLBACK", 'I')),
               {},
               stats(0, 1, 0)});
  c.push_back({"UnnamedParseAloneIsSessionState",
               exchange(parse("", kUpdateParam) + describe(proto::kTargetStatement) + sync_msg(),
                        parse_complete() + no_data() + ready('I')),
               {{.bytes = parse("", kUpdateParam) + describe(proto::kTargetStatement) + sync_msg(),
                 .responses = 1,
                 .session_state = true}},
               stats(1, 0, 0)});
  // Preparing BEGIN is not starting a transaction.
  c.push_back({"PreparedBeginIsNotATransaction",
               exchange(prepare("b", "BEGIN"), prepare_done('I')),
               {{.bytes = prepare("b", "BEGIN"), .responses = 1, .session_state = true}},
               stats(1, 0, 0)});
  c.push_back({"ReadStatementPreparedAndBoundNeverMirrored",
               exchange(prepare("sel", kSelectParam), prepare_done('I')) +
                   exchange(query_prepared("sel", {"1"}), prepared_rows("100", 'I')),
               {},
               stats(0, 0, 2)});
  c.push_back({"BindOfUnknownStatementIsAWrite",
               exchange(query_prepared("nobody_parsed_me", {"1"}), prepared_done("DELETE 1", 'I')),
               {{.bytes = query_prepared("nobody_parsed_me", {"1"}),
                 .responses = 1,
                 .primary = {ok("DELETE 1")},
                 .binds = {"nobody_parsed_me"}}},
               stats(1, 0, 0)});
  c.push_back({"BareSyncIsARead", exchange(sync_msg(), ready('I')), {}, stats(0, 0, 1)});
  // Results before the Sync: the client flushed and the server answered the batch so far.
  c.push_back({"FlushThenSync",
               {fe(parse("", kUpdateParam) + bind_msg("", "", {"1", "1"}) +
                   describe(proto::kTargetPortal) + execute() + flush()),
                be(parse_complete() + bind_complete() + no_data() + command_complete("UPDATE 1")),
                fe(sync_msg()), be(ready('I'))},
               {{.bytes = parse("", kUpdateParam) + bind_msg("", "", {"1", "1"}) +
                          describe(proto::kTargetPortal) + execute() + flush() + sync_msg(),
                 .responses = 1,
                 .primary = {ok("UPDATE 1")}}},
               stats(1, 0, 0)});
  c.push_back(
      {"FlushThenErrorThenSync",
       {fe(parse("", kInsertParam) + bind_msg("", "", {"1", "1"}) + execute() + flush()),
        be(parse_complete() + bind_complete() + error("23505")), fe(sync_msg()), be(ready('I'))},
       {},
       stats(0, 1, 0)});
  // A Query while an extended batch is open: one ReadyForQuery answers both.
  c.push_back(
      {"QueryClosesOpenWriteBatch",
       {fe(parse("", kUpdateParam) + bind_msg("", "", {"1", "1"}) + execute()),
        fe(query("SELECT 1")), check([](const WriteCapture& w) { EXPECT_EQ(w.outstanding(), 1u); }),
        be(parse_complete() + bind_complete() + command_complete("UPDATE 1") + rows("1", 'I'))},
       {{.bytes =
             parse("", kUpdateParam) + bind_msg("", "", {"1", "1"}) + execute() + query("SELECT 1"),
         .responses = 1,
         .primary = {ok("UPDATE 1"), ok("SELECT 1")}}},
       stats(1, 0, 0)});
  c.push_back(
      {"WriteQueryClosesOpenReadBatch",
       {fe(parse("", kSelectParam) + bind_msg("", "", {"1"}) + execute()), fe(query(kInsert)),
        be(parse_complete() + bind_complete() + data_row("1") + command_complete("SELECT 1") +
           done("INSERT 0 1", 'I'))},
       {{.bytes = parse("", kSelectParam) + bind_msg("", "", {"1"}) + execute() + query(kInsert),
         .responses = 1,
         .primary = {ok("SELECT 1"), ok("INSERT 0 1")}}},
       stats(1, 0, 0)});
  c.push_back(
      {"ReadQueryClosesOpenReadBatch",
       {fe(parse("", kSelectParam) + bind_msg("", "", {"1"}) + execute()), fe(query(kSelect)),
        be(parse_complete() + bind_complete() + data_row("1") + command_complete("SELECT 1") +
           rows("1", 'I'))},
       {},
       stats(0, 0, 1)});
  return c;
}

std::vector<Case> pipelining_cases() {
  std::vector<Case> c;
  const std::string batch1 =
      parse("ins", kInsertParam) + bind_msg("", "ins", {"1", "100"}) + execute() + sync_msg();
  const std::string batch2 = bind_msg("", "ins", {"2", "200"}) + execute() + sync_msg();
  c.push_back({"TwoSyncBatchesBeforeAnyAnswer",
               {fe(batch1), fe(batch2),
                check([](const WriteCapture& w) { EXPECT_EQ(w.outstanding(), 2u); }),
                be(parse_complete() + bind_complete() + done("INSERT 0 1", 'I')),
                check([](const WriteCapture& w) { EXPECT_EQ(w.outstanding(), 1u); }),
                be(bind_complete() + done("INSERT 0 1", 'I'))},
               {{.bytes = batch1, .responses = 1, .primary = {ok("INSERT 0 1")}, .binds = {"ins"}},
                {.bytes = batch2, .responses = 1, .primary = {ok("INSERT 0 1")}, .binds = {"ins"}}},
               stats(2, 0, 0)});
  // The first batch fails after its Parse was accepted: the statement exists on the primary and
  // the second batch uses it.
  c.push_back(
      {"PipelineFirstBatchFails",
       {fe(batch1), fe(batch2), be(parse_complete() + bind_complete() + failed("23505", 'I')),
        be(bind_complete() + done("INSERT 0 1", 'I'))},
       {{.bytes = parse("ins", kInsertParam) + sync_msg(), .responses = 1, .session_state = true},
        {.bytes = batch2, .responses = 1, .primary = {ok("INSERT 0 1")}, .binds = {"ins"}}},
       stats(2, 1, 0)});
  // A read statement parsed in the first batch: the second batch is a read too.
  c.push_back(
      {"PipelineOfReads",
       {fe(parse("sel", kSelectParam) + bind_msg("", "sel", {"1"}) + execute() + sync_msg()),
        fe(bind_msg("", "sel", {"2"}) + execute() + sync_msg()),
        be(parse_complete() + bind_complete() + data_row("1") + command_complete("SELECT 1") +
           ready('I')),
        be(bind_complete() + data_row("2") + command_complete("SELECT 1") + ready('I'))},
       {},
       stats(0, 0, 2)});
  // libpq pipeline mode inside a transaction: BEGIN, two writes and COMMIT, each with its Sync.
  c.push_back({"PipelinedTransaction",
               {fe(query_params("BEGIN") + query_params(kInsertParam, {"1", "1"}) +
                   query_params(kUpdateParam, {"1", "1"}) + query_params("COMMIT")),
                check([](const WriteCapture& w) { EXPECT_EQ(w.outstanding(), 4u); }),
                be(ext_done("BEGIN", 'T') + ext_done("INSERT 0 1", 'T') +
                   ext_done("UPDATE 1", 'T') + ext_done("COMMIT", 'I'))},
               {{.bytes = query_params("BEGIN") + query_params(kInsertParam, {"1", "1"}) +
                          query_params(kUpdateParam, {"1", "1"}) + query_params("COMMIT"),
                 .responses = 4,
                 .primary = {ok("BEGIN"), ok("INSERT 0 1"), ok("UPDATE 1"), ok("COMMIT")},
                 .transaction = true}},
               stats(1, 0, 0)});
  // A statement closed and re-parsed under the same name before either answer came back.
  c.push_back(
      {"PipelineCloseAndReparse",
       {fe(prepare("s", kSelectParam)),
        fe(close_msg(proto::kTargetStatement, "s") + parse("s", kUpdateParam) + sync_msg()),
        fe(query_prepared("s", {"1", "1"})), be(prepare_done('I')),
        be(close_complete() + parse_complete() + ready('I')), be(prepared_done("UPDATE 1", 'I')),
        // Close then Parse in one request: the statement exists afterwards, and a later Bind of
        // it is known to be a write.
        check([](const WriteCapture& w) {
          ASSERT_NE(w.prepared().find("s"), nullptr);
          EXPECT_EQ(w.prepared().find("s")->kind, StatementKind::kWrite);
          ASSERT_NE(w.parse_message("s"), nullptr);
          EXPECT_EQ(*w.parse_message("s"), parse("s", kUpdateParam));
        })},
       {{.bytes = close_msg(proto::kTargetStatement, "s") + parse("s", kUpdateParam) + sync_msg(),
         .responses = 1,
         .session_state = true},
        {.bytes = query_prepared("s", {"1", "1"}),
         .responses = 1,
         .primary = {ok("UPDATE 1")},
         .binds = {"s"}}},
       stats(2, 0, 1)});
  // A one-shot named statement: Parse, Bind, Execute, Close, Sync. Gone afterwards.
  const std::string one_shot = parse("tmp", kUpdateParam) + bind_msg("", "tmp", {"1", "1"}) +
                               execute() + close_msg(proto::kTargetStatement, "tmp") + sync_msg();
  c.push_back(
      {"ParseThenCloseInOneBatch",
       exchange(one_shot, parse_complete() + bind_complete() + command_complete("UPDATE 1") +
                              close_complete() + ready('I')) +
           check([](const WriteCapture& w) {
             EXPECT_EQ(w.prepared().find("tmp"), nullptr);
             EXPECT_EQ(w.parse_message("tmp"), nullptr);
           }),
       {{.bytes = one_shot, .responses = 1, .primary = {ok("UPDATE 1")}, .binds = {"tmp"}}},
       stats(1, 0, 0)});
  return c;
}

std::vector<Case> copy_cases() {
  std::vector<Case> c;
  c.push_back(
      {"PsqlCopyFromStdin",
       {fe(query(kCopy)), be(copy_in_response()),
        fe(copy_data("1\t100\n") + copy_data("2\t200\n") + copy_done()), be(done("COPY 2", 'I'))},
       {{.bytes = query(kCopy) + copy_data("1\t100\n") + copy_data("2\t200\n") + copy_done(),
         .responses = 1,
         .primary = {ok("COPY 2")}}},
       stats(1, 0, 0)});
  c.push_back(
      {"CopyFail",
       {fe(query(kCopy)), be(copy_in_response()),
        fe(copy_data("1\t100\n") + copy_fail("canceled by user")), be(failed("57014", 'I'))},
       {},
       stats(0, 1, 0)});
  c.push_back({"CopyBadDataFails",
               {fe(query(kCopy)), be(copy_in_response()), fe(copy_data("x\n")), be(error("22P02")),
                fe(copy_done()), be(ready('I'))},
               {},
               stats(0, 1, 0)});
  c.push_back(
      {"CopyInCommittedTransaction",
       exchange(query("BEGIN"), done("BEGIN", 'T')) +
           std::vector<Step>{fe(query(kCopy)), be(copy_in_response()),
                             fe(copy_data("1\t100\n") + copy_done()), be(done("COPY 1", 'T'))} +
           exchange(query("COMMIT"), done("COMMIT", 'I')),
       {{.bytes =
             query("BEGIN") + query(kCopy) + copy_data("1\t100\n") + copy_done() + query("COMMIT"),
         .responses = 3,
         .primary = {ok("BEGIN"), ok("COPY 1"), ok("COMMIT")},
         .transaction = true}},
       stats(1, 0, 0)});
  c.push_back({"CopyToStdoutIsARead",
               {fe(query("COPY accounts TO STDOUT")), be([] {
                  std::string out;
                  proto::encode_copy_response(out, proto::backend::kCopyOutResponse, 0, {});
                  proto::encode(out, proto::CopyData{"1\t100\n"});
                  proto::encode(out, proto::CopyDone{});
                  return out + done("COPY 1", 'I');
                }())},
               {},
               stats(0, 0, 1)});
  // libpq's PQexecParams("COPY ... FROM STDIN") (checked with PQtrace against PostgreSQL 15):
  // Parse/Bind/Describe/Execute/Sync, then CopyData/CopyDone/Sync. The server ignores the first
  // Sync during COPY IN, so one ReadyForQuery answers everything.
  const std::string ext =
      parse("", kCopy) + bind_msg("", "") + describe(proto::kTargetPortal) + execute() + sync_msg();
  c.push_back({"ExtendedCopyFromStdin",
               std::vector<Step>{
                   fe(ext), be(parse_complete() + bind_complete() + no_data() + copy_in_response()),
                   fe(copy_data("1\t100\n") + copy_done() + sync_msg()), be(done("COPY 1", 'I')),
                   check([](const WriteCapture& w) { EXPECT_EQ(w.outstanding(), 0u); })} +
                   exchange(query(kInsert2), done("INSERT 0 1", 'I')),
               {{.bytes = ext + copy_data("1\t100\n") + copy_done() + sync_msg(),
                 .responses = 1,
                 .primary = {ok("COPY 1")}},
                {.bytes = query(kInsert2), .responses = 1, .primary = {ok("INSERT 0 1")}}},
               stats(2, 0, 0)});
  c.push_back(
      {"ExtendedCopyFail",
       std::vector<Step>{
           fe(ext), be(parse_complete() + bind_complete() + no_data() + copy_in_response()),
           fe(copy_data("1\t100\n") + copy_fail("nope") + sync_msg()), be(failed("57014", 'I')),
           check([](const WriteCapture& w) { EXPECT_EQ(w.outstanding(), 0u); })} +
           exchange(query(kInsert2), done("INSERT 0 1", 'I')),
       {{.bytes = query(kInsert2), .responses = 1, .primary = {ok("INSERT 0 1")}}},
       stats(1, 1, 0)});
  // The COPY itself failed (no such table): no COPY IN, the Sync was answered, the client sends
  // no data.
  c.push_back(
      {"ExtendedCopyRefused",
       std::vector<Step>{fe(ext), be(parse_complete() + bind_complete() + failed("42P01", 'I'))} +
           exchange(query(kInsert2), done("INSERT 0 1", 'I')),
       {{.bytes = query(kInsert2), .responses = 1, .primary = {ok("INSERT 0 1")}}},
       stats(1, 1, 0)});
  // A client that waits for CopyInResponse before sending Sync.
  c.push_back({"ExtendedCopyWithoutEarlySync",
               {fe(parse("", kCopy) + bind_msg("", "") + execute() + flush()),
                be(parse_complete() + bind_complete() + copy_in_response()),
                fe(copy_data("1\t100\n") + copy_done() + sync_msg()), be(done("COPY 1", 'I'))},
               {{.bytes = parse("", kCopy) + bind_msg("", "") + execute() + flush() +
                          copy_data("1\t100\n") + copy_done() + sync_msg(),
                 .responses = 1,
                 .primary = {ok("COPY 1")}}},
               stats(1, 0, 0)});
  return c;
}

std::vector<Case> other_cases() {
  std::vector<Case> c;
  // The fast-path interface (lo_write and friends): anything can happen, so it is a write.
  c.push_back({"FunctionCallIsAWrite",
               exchange(function_call(955 /* lowrite */, {"\0\0\0\0", "abc"}),
                        function_call_response("3") + ready('I')),
               {{.bytes = function_call(955, {"\0\0\0\0", "abc"}), .responses = 1}},
               stats(1, 0, 0)});
  c.push_back({"FunctionCallFails",
               exchange(function_call(955, {"x"}), failed("42704", 'I')),
               {},
               stats(0, 1, 0)});
  c.push_back({"FunctionCallInTransaction",
               exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(function_call(955, {"x"}), function_call_response("1") + ready('T')) +
                   exchange(query("COMMIT"), done("COMMIT", 'I')),
               {{.bytes = query("BEGIN") + function_call(955, {"x"}) + query("COMMIT"),
                 .responses = 3,
                 .primary = {ok("BEGIN"), ok("COMMIT")},
                 .transaction = true}},
               stats(1, 0, 0)});
  c.push_back({"TerminateAndStrayMessagesIgnored",
               {fe(terminate()), fe(std::string("p\0\0\0\x0asecret", 11))},
               {},
               stats(0, 0, 0)});
  // Several transactions in one simple Query: what committed before an error stays committed
  // (checked against PostgreSQL 15), so the mirror runs the same text and fails the same way.
  const std::string committed_then_error = std::string("BEGIN; ") + std::string(kInsert) +
                                           "; COMMIT; INSERT INTO missing (id) VALUES (1)";
  c.push_back({"CommitThenErrorInOneQuery",
               exchange(query(committed_then_error),
                        command_complete("BEGIN") + command_complete("INSERT 0 1") +
                            command_complete("COMMIT") + failed("42P01", 'I')),
               {{.bytes = query(committed_then_error),
                 .responses = 1,
                 .primary = {ok("BEGIN"), ok("INSERT 0 1"), ok("COMMIT"), err("42P01")},
                 .transaction = true}},
               stats(1, 0, 0)});
  const std::string committed_then_failed_txn = std::string("BEGIN; ") + std::string(kInsert) +
                                                "; COMMIT; BEGIN; INSERT INTO missing (id) VALUES "
                                                "(1); COMMIT";
  c.push_back(
      {"CommitThenFailedTransactionInOneQuery",
       exchange(query(committed_then_failed_txn),
                command_complete("BEGIN") + command_complete("INSERT 0 1") +
                    command_complete("COMMIT") + command_complete("BEGIN") + failed("42P01", 'E')) +
           exchange(query("ROLLBACK"), done("ROLLBACK", 'I')),
       {{.bytes = query(committed_then_failed_txn),
         .responses = 1,
         .primary = {ok("BEGIN"), ok("INSERT 0 1"), ok("COMMIT"), ok("BEGIN"), err("42P01")},
         .transaction = true},
        // The mirror is inside the failed transaction too: it needs the ROLLBACK.
        {.bytes = query("ROLLBACK"),
         .responses = 1,
         .primary = {ok("ROLLBACK")},
         .transaction = true}},
       stats(2, 0, 0)});
  c.push_back({"CommitThenErrorInsideTransaction",
               exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(query(kInsert), done("INSERT 0 1", 'T')) +
                   exchange(query("COMMIT; INSERT INTO missing (id) VALUES (1)"),
                            command_complete("COMMIT") + failed("42P01", 'I')),
               {{.bytes = query("BEGIN") + query(kInsert) +
                          query("COMMIT; INSERT INTO missing (id) VALUES (1)"),
                 .responses = 3,
                 .primary = {ok("BEGIN"), ok("INSERT 0 1"), ok("COMMIT"), err("42P01")},
                 .transaction = true}},
               stats(1, 0, 0)});
  c.push_back({"CommitAndChainThenCommit",
               exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(query(kInsert), done("INSERT 0 1", 'T')) +
                   exchange(query("COMMIT AND CHAIN"), done("COMMIT", 'T')) +
                   exchange(query(kInsert2), done("INSERT 0 1", 'T')) +
                   exchange(query("COMMIT"), done("COMMIT", 'I')),
               {{.bytes = query("BEGIN") + query(kInsert) + query("COMMIT AND CHAIN"),
                 .responses = 3,
                 .primary = {ok("BEGIN"), ok("INSERT 0 1"), ok("COMMIT")},
                 .transaction = true},
                {.bytes = query(kInsert2) + query("COMMIT"),
                 .responses = 2,
                 .primary = {ok("INSERT 0 1"), ok("COMMIT")},
                 .transaction = true}},
               stats(2, 0, 0)});
  // The chained transaction is already open on the mirror: its ROLLBACK must reach it.
  c.push_back({"CommitAndChainThenRollback",
               exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(query(kInsert), done("INSERT 0 1", 'T')) +
                   exchange(query("COMMIT AND CHAIN"), done("COMMIT", 'T')) +
                   exchange(query(kInsert2), done("INSERT 0 1", 'T')) +
                   exchange(query("ROLLBACK"), done("ROLLBACK", 'I')) +
                   exchange(query(kUpdate), done("UPDATE 1", 'I')),
               {{.bytes = query("BEGIN") + query(kInsert) + query("COMMIT AND CHAIN"),
                 .responses = 3,
                 .primary = {ok("BEGIN"), ok("INSERT 0 1"), ok("COMMIT")},
                 .transaction = true},
                {.bytes = query(kInsert2) + query("ROLLBACK"),
                 .responses = 2,
                 .primary = {ok("INSERT 0 1"), ok("ROLLBACK")},
                 .transaction = true},
                {.bytes = query(kUpdate), .responses = 1, .primary = {ok("UPDATE 1")}}},
               stats(3, 0, 0)});
  c.push_back({"TwoPhaseCommit",
               exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(query(kInsert), done("INSERT 0 1", 'T')) +
                   exchange(query("PREPARE TRANSACTION 'tx1'"), done("PREPARE TRANSACTION", 'I')) +
                   exchange(query("COMMIT PREPARED 'tx1'"), done("COMMIT PREPARED", 'I')),
               {{.bytes = query("BEGIN") + query(kInsert) + query("PREPARE TRANSACTION 'tx1'"),
                 .responses = 3,
                 .primary = {ok("BEGIN"), ok("INSERT 0 1"), ok("PREPARE TRANSACTION")},
                 .transaction = true},
                {.bytes = query("COMMIT PREPARED 'tx1'"),
                 .responses = 1,
                 .primary = {ok("COMMIT PREPARED")},
                 .transaction = true}},
               stats(2, 0, 0)});
  return c;
}

// Primary-only calls (pg_terminate_backend(pid) ...) never reach the mirror: requests making only
// them are skipped (their named-statement messages aside); one that also writes is skipped with
// what it writes, and inside an explicit transaction the whole transaction is.
std::vector<Case> primary_only_cases() {
  std::vector<Case> c;
  constexpr std::string_view kKill = "SELECT pg_terminate_backend(12345)";
  constexpr std::string_view kKillParam = "SELECT pg_terminate_backend($1)";
  const std::string insert_and_cancel = std::string(kInsert) + "; SELECT pg_cancel_backend(42)";
  c.push_back({"TerminateBackendIsNotMirrored",
               exchange(query(kKill), rows("t", 'I')),
               {},
               stats(0, 0, 0, 0, 1),
               false,
               {{std::string(kKill), false}}});
  c.push_back({"FailedTerminateBackendIsNotMirroredEither",
               exchange(query(kKill), failed("42501", 'I')),
               {},
               stats(0, 0, 0, 0, 1),
               false,
               {{std::string(kKill), false}}});
  c.push_back({"ReloadConfInMixedCase",
               exchange(query("select PG_CATALOG.PG_RELOAD_CONF()"), rows("t", 'I')),
               {},
               stats(0, 0, 0, 0, 1),
               false,
               {{"select PG_CATALOG.PG_RELOAD_CONF()", false}}});
  c.push_back({"UnnamedStatementExtendedProtocol",
               exchange(query_params(kKillParam, {"12345"}),
                        parse_complete() + bind_complete() + row_description("v") + data_row("t") +
                            command_complete("SELECT 1") + ready('I')),
               {},
               stats(0, 0, 0, 0, 1),
               false,
               {{std::string(kKillParam), false}}});
  // The named statement's Parse still reaches the mirror (a later Close or Parse of the same name
  // must find it there), its execution does not.
  c.push_back({"NamedStatementPreparedAndExecutedInOneBatch",
               exchange(parse("kill", kKillParam) + bind_msg("", "kill", {"12345"}) + execute() +
                            sync_msg(),
                        parse_complete() + bind_complete() + data_row("t") +
                            command_complete("SELECT 1") + ready('I')),
               {{.bytes = parse("kill", kKillParam) + sync_msg(), .session_state = true}},
               stats(1, 0, 0, 0, 1),
               false,
               {{std::string(kKillParam), false}}});
  c.push_back(
      {"NamedStatementPreparedThenExecuted",
       exchange(prepare("kill", kKillParam), prepare_done('I')) +
           exchange(query_prepared("kill", {"12345"}), prepared_rows("t", 'I')) +
           exchange(close_msg(proto::kTargetStatement, "kill") + sync_msg(),
                    close_complete() + ready('I')),
       {{.bytes = prepare("kill", kKillParam), .session_state = true},
        {.bytes = close_msg(proto::kTargetStatement, "kill") + sync_msg(), .session_state = true}},
       stats(2, 0, 0, 0, 1),
       false,
       {{std::string(kKillParam), false}}});
  c.push_back(
      {"SqlPrepareIsMirroredItsExecuteIsNot",
       exchange(query("PREPARE kill (int) AS SELECT pg_terminate_backend($1)"),
                done("PREPARE", 'I')) +
           exchange(query("EXECUTE kill(12345)"), rows("t", 'I')) +
           exchange(query("DEALLOCATE kill"), done("DEALLOCATE", 'I')),
       {{.bytes = query("PREPARE kill (int) AS SELECT pg_terminate_backend($1)"),
         .primary = {ok("PREPARE")},
         .session_state = true},
        {.bytes = query("DEALLOCATE kill"), .primary = {ok("DEALLOCATE")}, .session_state = true}},
       stats(2, 0, 0, 0, 1),
       false,
       {{"EXECUTE kill(12345)", false}}});
  // Alone in a transaction, the call is left out and the rest of the transaction is mirrored.
  c.push_back({"AloneInsideATransaction",
               exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(query(kInsert), done("INSERT 0 1", 'T')) +
                   exchange(query(kKill), rows("t", 'T')) +
                   exchange(query("COMMIT"), done("COMMIT", 'I')),
               {{.bytes = query("BEGIN") + query(kInsert) + query("COMMIT"),
                 .responses = 3,
                 .primary = {ok("BEGIN"), ok("INSERT 0 1"), ok("COMMIT")},
                 .transaction = true}},
               stats(1, 0, 0, 0, 1),
               false,
               {{std::string(kKill), false}}});
  c.push_back({"MixedWithAWriteInAutocommit",
               exchange(query(insert_and_cancel), command_complete("INSERT 0 1") +
                                                      row_description("v") + data_row("t") +
                                                      command_complete("SELECT 1") + ready('I')),
               {},
               stats(0, 0, 0, 0, 1),
               false,
               {{insert_and_cancel, true}}});
  c.push_back(
      {"MixedInsideATransactionLeavesAllOfItOut",
       exchange(query("BEGIN"), done("BEGIN", 'T')) +
           exchange(query(kUpdate), done("UPDATE 1", 'T')) +
           exchange(query(insert_and_cancel),
                    command_complete("INSERT 0 1") + command_complete("SELECT 1") + ready('T')) +
           exchange(query(kInsert2), done("INSERT 0 1", 'T')) +
           exchange(query("COMMIT"), done("COMMIT", 'I')) +
           exchange(query(kInsert), done("INSERT 0 1", 'I')),
       {{.bytes = query(kInsert), .primary = {ok("INSERT 0 1")}}},
       stats(1, 0, 0, 0, 1),
       false,
       {{insert_and_cancel, true}}});
  const std::string whole_txn =
      "BEGIN; " + std::string(kInsert) + "; SELECT pg_reload_conf(); COMMIT";
  c.push_back(
      {"MixedWholeTransactionInOneQuery",
       exchange(query(whole_txn), command_complete("BEGIN") + command_complete("INSERT 0 1") +
                                      command_complete("SELECT 1") + done("COMMIT", 'I')),
       {},
       stats(0, 0, 0, 0, 1),
       false,
       {{whole_txn, true}}});
  c.push_back({"MixedRequestOpensTheTransaction",
               exchange(query("BEGIN; SELECT pg_cancel_backend(42)"),
                        command_complete("BEGIN") + command_complete("SELECT 1") + ready('T')) +
                   exchange(query(kInsert), done("INSERT 0 1", 'T')) +
                   exchange(query("COMMIT"), done("COMMIT", 'I')),
               {},
               stats(0, 0, 0, 0, 1),
               false,
               {{"BEGIN; SELECT pg_cancel_backend(42)", true}}});
  c.push_back(
      {"MixedTransactionRolledBackCountsOnce",
       exchange(query("BEGIN"), done("BEGIN", 'T')) +
           exchange(query(insert_and_cancel),
                    command_complete("INSERT 0 1") + command_complete("SELECT 1") + ready('T')) +
           exchange(query("ROLLBACK"), done("ROLLBACK", 'I')),
       {},
       stats(0, 0, 0, 0, 1),
       false,
       {{insert_and_cancel, true}}});
  // After COMMIT AND CHAIN the mirror is inside the chained transaction: it is rolled back there.
  c.push_back(
      {"MixedAfterCommitAndChainRollsTheMirrorBack",
       exchange(query("BEGIN"), done("BEGIN", 'T')) +
           exchange(query(kInsert), done("INSERT 0 1", 'T')) +
           exchange(query("COMMIT AND CHAIN"), done("COMMIT", 'T')) +
           exchange(query(kInsert2), done("INSERT 0 1", 'T')) +
           exchange(query(insert_and_cancel),
                    command_complete("INSERT 0 1") + command_complete("SELECT 1") + ready('T')) +
           exchange(query("COMMIT"), done("COMMIT", 'I')),
       {{.bytes = query("BEGIN") + query(kInsert) + query("COMMIT AND CHAIN"),
         .responses = 3,
         .primary = {ok("BEGIN"), ok("INSERT 0 1"), ok("COMMIT")},
         .transaction = true},
        {.bytes = query("ROLLBACK"), .primary = {ok("ROLLBACK")}, .transaction = true}},
       stats(2, 0, 0, 0, 1),
       false,
       {{insert_and_cancel, true}}});
  // A Bind of a statement whose text also writes: the batch is lost to the mirror.
  const std::string cte =
      "WITH d AS (DELETE FROM sessions RETURNING pid) "
      "SELECT pg_terminate_backend(pid) FROM d";
  c.push_back(
      {"SingleStatementWritingAndTerminating",
       exchange(query_params(cte), parse_complete() + bind_complete() + row_description("v") +
                                       data_row("t") + command_complete("SELECT 1") + ready('I')),
       {},
       stats(0, 0, 0, 0, 1),
       false,
       {{cte, true}}});
  c.push_back({"FastPathCallOfPgTerminateBackend",
               exchange(function_call(2096 /* pg_terminate_backend */, {"12345"}),
                        function_call_response("t") + ready('I')),
               {},
               stats(0, 0, 0, 0, 1),
               false,
               {{"fast-path call of function 2096", false}}});
  return c;
}

std::vector<Case> all_cases() {
  std::vector<Case> all;
  for (auto part : {simple_protocol_cases(), session_state_cases(), nondeterministic_cases(),
                    extended_protocol_cases(), pipelining_cases(), copy_cases(), other_cases(),
                    primary_only_cases()}) {
    for (auto& c : part) all.push_back(std::move(c));
  }
  return all;
}

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class WriteCaptureSequence : public ::testing::TestWithParam<Case> {};

TEST_P(WriteCaptureSequence, ReleasesExactlyTheCommittedWrites) {
  const Case& c = GetParam();
  Driver d;
  d.run(c.steps);
  if (HasFatalFailure()) return;

  ASSERT_EQ(d.units.size(), c.units.size()) << [&] {
    std::string out = "released:";
    for (const auto& u : d.units) out += "\n  " + render(u.bytes);
    return out;
  }();
  for (size_t i = 0; i < c.units.size(); ++i) {
    SCOPED_TRACE("unit " + std::to_string(i));
    const MirrorUnit& got = d.units[i];
    const ExpectedUnit& want = c.units[i];
    EXPECT_EQ(render(got.bytes), render(want.bytes));
    EXPECT_EQ(got.bytes, want.bytes);
    EXPECT_EQ(got.responses, want.responses);
    EXPECT_EQ(render(got.primary), render(want.primary));
    EXPECT_EQ(got.binds, want.binds);
    EXPECT_EQ(got.transaction, want.transaction);
    EXPECT_EQ(got.session_state, want.session_state);
    EXPECT_EQ(got.nondeterministic, want.nondeterministic);
    EXPECT_EQ(got.primary_done, kNow);
  }
  const CaptureStats& s = d.capture.stats();
  EXPECT_EQ(s.released, c.stats.released);
  EXPECT_EQ(s.skipped_rollback, c.stats.skipped_rollback);
  EXPECT_EQ(s.skipped_read, c.stats.skipped_read);
  EXPECT_EQ(s.nondeterministic, c.stats.nondeterministic);
  EXPECT_EQ(s.skipped_primary_only, c.stats.skipped_primary_only);
  ASSERT_EQ(d.skips.size(), c.skips.size());
  for (size_t i = 0; i < c.skips.size(); ++i) {
    EXPECT_EQ(d.skips[i].first_sql, c.skips[i].first_sql) << "skip " << i;
    EXPECT_EQ(d.skips[i].lost_writes, c.skips[i].lost_writes) << "skip " << i;
  }
  EXPECT_EQ(d.capture.in_transaction(), c.in_transaction);
  EXPECT_EQ(d.capture.outstanding(), 0u);
  EXPECT_EQ(d.ready_unmatched, 0u);
}

INSTANTIATE_TEST_SUITE_P(Clients, WriteCaptureSequence, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return info.param.name;
                         });

// ------------------------------------------------------------------------------------------------
// Single behaviours

TEST(WriteCapture, UnitsAreStampedWithTheTimeOfTheReadyForQuery) {
  Driver d;
  d.run(fe(query(kInsert)));
  d.now = kNow + std::chrono::milliseconds(5);
  d.run(be(command_complete("INSERT 0 1")));
  d.now = kNow + std::chrono::milliseconds(9);
  d.run(be(ready('I')));
  ASSERT_EQ(d.units.size(), 1u);
  EXPECT_EQ(d.units[0].primary_done, kNow + std::chrono::milliseconds(9));
}

TEST(WriteCapture, FirstSqlIsTruncated) {
  WriteCapture::Options options;
  options.max_sql_in_unit = 11;
  Driver d(options);
  d.run(exchange(query(kInsert), done("INSERT 0 1", 'I')));
  ASSERT_EQ(d.units.size(), 1u);
  EXPECT_EQ(d.units[0].first_sql, "INSERT INTO");
}

TEST(WriteCapture, FirstSqlOfATransactionIsItsFirstStatement) {
  Driver d;
  d.run(exchange(query("BEGIN"), done("BEGIN", 'T')) +
        exchange(query(kInsert), done("INSERT 0 1", 'T')) +
        exchange(query("COMMIT"), done("COMMIT", 'I')));
  ASSERT_EQ(d.units.size(), 1u);
  EXPECT_EQ(d.units[0].first_sql, "BEGIN");
}

TEST(WriteCapture, TakeEmptiesTheReleasedUnits) {
  WriteCapture w({});
  std::vector<Message> messages;
  const std::string f = query(kInsert);
  const std::string b = done("INSERT 0 1", 'I');
  ASSERT_TRUE(split(f, proto::Direction::kFrontend, &messages));
  ASSERT_TRUE(split(b, proto::Direction::kBackend, &messages));
  w.on_frontend(messages[0].header, messages[0].whole);
  EXPECT_EQ(w.outstanding(), 1u);
  EXPECT_FALSE(w.on_backend(messages[1].header, messages[1].body, kNow));
  EXPECT_TRUE(w.on_backend(messages[2].header, messages[2].body, kNow));
  EXPECT_EQ(w.take().size(), 1u);
  EXPECT_TRUE(w.take().empty());
  EXPECT_EQ(w.outstanding(), 0u);
}

// The session feeds an ErrorResponse too large to see whole with an empty body.
TEST(WriteCapture, StreamedErrorStillCountsAsAnError) {
  WriteCapture w({});
  const std::string insert = query(kInsert);
  const std::string z = ready('I');
  std::vector<Message> messages;
  ASSERT_TRUE(split(insert, proto::Direction::kFrontend, &messages));
  ASSERT_TRUE(split(z, proto::Direction::kBackend, &messages));
  w.on_frontend(messages[0].header, messages[0].whole);
  w.on_backend(proto::Header{proto::backend::kErrorResponse, 100000}, {}, kNow);
  EXPECT_FALSE(w.on_backend(messages[1].header, messages[1].body, kNow));
  EXPECT_EQ(w.stats().skipped_rollback, 1u);
  EXPECT_TRUE(w.take().empty());
}

TEST(WriteCapture, ReadyForQueryWithNothingOutstandingOnlyTracksStatus) {
  Driver d;
  d.run(be(ready('T')));
  EXPECT_TRUE(d.capture.in_transaction());
  d.run(be(ready('I')));
  EXPECT_FALSE(d.capture.in_transaction());
  EXPECT_TRUE(d.units.empty());
}

TEST(WriteCapture, ClassificationCacheIsUsed) {
  ClassificationCache cache;
  WriteCapture::Options options;
  options.cache = &cache;
  Driver d(options);
  d.run(exchange(query(kInsert), done("INSERT 0 1", 'I')) +
        exchange(query(kInsert), done("INSERT 0 1", 'I')));
  EXPECT_EQ(d.units.size(), 2u);
  EXPECT_GE(cache.hits(), 1u);
}

// ------------------------------------------------------------------------------------------------
// Randomized: sequences of valid requests and the answers a PostgreSQL server gives them, with
// pipelining. The capture must never lose track of which ReadyForQuery answers what, must release
// every write the primary committed and none it rolled back.

class ServerModel {
 public:
  explicit ServerModel(uint32_t seed) : rng_(seed) {}

  struct Request {
    std::string frontend;
    std::string backend;
    // Interleaved (COPY, or a batch flushed before its Sync): after `backend` the client sends
    // `frontend_after`, then the server answers `backend_after`. Never pipelined.
    bool interleaved = false;
    std::string frontend_after;
    std::string backend_after;
    size_t requests_before = 1;  // requests the capture holds after `frontend`
    size_t requests_after = 1;   // ... after `frontend_after` (an extended COPY has two Syncs)
  };

  // Writes by marker: what the primary committed, and what it rolled back with nothing of it
  // reaching the mirror. Writes undone by ROLLBACK TO SAVEPOINT, or inside a transaction the
  // mirror already runs (COMMIT AND CHAIN), may reach the mirror either way.
  std::set<std::string> must_appear;
  std::set<std::string> must_not_appear;
  char status = 'I';

  Request next(bool allow_interleaved) {
    for (;;) {
      switch (rng_() % 22) {
        case 0:
          return simple_write();
        case 1:
          return simple_read();
        case 2:
          return begin();
        case 3:
          return commit();
        case 4:
          return rollback();
        case 5:
          return set_command();
        case 6:
          return extended("", "", false, false);
        case 7: {
          const std::string name = "s" + std::to_string(++names_);
          return extended(name, name, true, false);
        }
        case 8:
          if (statements_.empty()) continue;
          return extended("", statements_[rng_() % statements_.size()], true, false);
        case 9:
          return prepare_only();
        case 10:
          if (statements_.empty()) continue;
          return close_statement();
        case 11:
          return extended_read();
        case 12:
          return fastpath();
        case 13:
          if (!allow_interleaved) continue;
          return copy(false);
        case 14:
          if (!allow_interleaved) continue;
          return copy(true);
        case 15:
          if (!allow_interleaved) continue;
          return extended("", "", false, true);
        case 16:
          return savepoint();
        case 17:
          return rollback_to();
        case 18:
          return commit_and_chain();
        case 19:
          return commit_then_error();
        default:
          return simple_write();
      }
    }
  }

 private:
  std::string marker() {
    char buf[16];
    std::snprintf(buf, sizeof buf, "m%07u", ++markers_);
    return buf;
  }
  bool fails() { return rng_() % 6 == 0; }

  // A write's fate: autocommit settles it now, a transaction when it ends.
  void wrote(const std::string& m, bool ok) {
    if (status == 'I') {
      (ok ? must_appear : must_not_appear).insert(m);
    } else {
      (savepoint_ ? since_savepoint_ : pending_).push_back(m);
    }
  }
  void settle(std::vector<std::string>& markers, std::set<std::string>* fate) {
    if (fate != nullptr) fate->insert(markers.begin(), markers.end());
    markers.clear();
  }
  void end_transaction(bool committed) {
    std::set<std::string>* fate =
        committed ? &must_appear : (chained_ ? nullptr : &must_not_appear);
    settle(pending_, fate);
    settle(since_savepoint_, fate);
    savepoint_ = false;
    chained_ = false;
  }
  // The state after a statement failed.
  char after_error() const { return status == 'I' ? 'I' : 'E'; }
  Request answer(std::string frontend, std::string backend) {
    Request r;
    r.frontend = std::move(frontend);
    r.backend = std::move(backend) + ready(status);
    return r;
  }

  Request simple_write() {
    const std::string m = marker();
    const bool ok = status != 'E' && !fails();
    std::string backend =
        ok ? command_complete("INSERT 0 1") : error(status == 'E' ? "25P02" : "23505");
    wrote(m, ok);
    if (!ok) status = after_error();
    return answer(query("INSERT INTO t (a) VALUES ('" + m + "')"), backend);
  }
  Request simple_read() {
    return answer(
        query("SELECT a FROM t"),
        status == 'E' ? error("25P02") : row_description("a") + command_complete("SELECT 0"));
  }
  Request begin() {
    std::string backend;
    if (status == 'E') {
      backend = error("25P02");
    } else {
      backend = (status == 'T' ? warning("25001") : std::string()) + command_complete("BEGIN");
      status = 'T';
    }
    return answer(query("BEGIN"), backend);
  }
  Request commit() {
    std::string backend = status == 'I' ? warning("25P01") + command_complete("COMMIT")
                                        : command_complete(status == 'E' ? "ROLLBACK" : "COMMIT");
    end_transaction(status == 'T');
    status = 'I';
    return answer(query("COMMIT"), backend);
  }
  Request rollback() {
    end_transaction(false);
    status = 'I';
    return answer(query("ROLLBACK"), command_complete("ROLLBACK"));
  }
  Request savepoint() {
    std::string backend;
    if (status == 'T') {
      backend = command_complete("SAVEPOINT");
      // Writes since an older savepoint of the same name stay: ROLLBACK TO goes to the newest.
      for (auto& m : since_savepoint_) pending_.push_back(m);
      since_savepoint_.clear();
      savepoint_ = true;
    } else {
      backend = error(status == 'E' ? "25P02" : "25P01");
    }
    return answer(query("SAVEPOINT s"), backend);
  }
  Request rollback_to() {
    std::string backend;
    if (status != 'I' && savepoint_) {
      backend = command_complete("ROLLBACK");
      settle(since_savepoint_, nullptr);  // undone, on the mirror too
      status = 'T';
    } else {
      backend = error(status == 'I' ? "25P01" : "3B001");
      status = after_error();
    }
    return answer(query("ROLLBACK TO SAVEPOINT s"), backend);
  }
  Request commit_and_chain() {
    std::string backend;
    if (status == 'I') {
      backend = error("25P01");
    } else if (status == 'T') {
      backend = command_complete("COMMIT");
      end_transaction(true);
      chained_ = true;
    } else {
      // A failed transaction: rolled back, and a new one starts. What the capture holds of the
      // failed one may reach the mirror with the next one, where it fails and is undone again.
      backend = command_complete("ROLLBACK");
      settle(pending_, nullptr);
      settle(since_savepoint_, nullptr);
      savepoint_ = false;
      status = 'T';
    }
    return answer(query("COMMIT AND CHAIN"), backend);
  }
  // Several transactions in one simple Query, the last statement failing.
  Request commit_then_error() {
    const std::string m = marker();
    const std::string sql =
        "BEGIN; INSERT INTO t (a) VALUES ('" + m + "'); COMMIT; INSERT INTO missing (a) VALUES (1)";
    std::string backend;
    if (status == 'E') {
      backend = error("25P02");
      wrote(m, false);
    } else {
      backend = (status == 'T' ? warning("25001") : std::string()) + command_complete("BEGIN") +
                command_complete("INSERT 0 1") + command_complete("COMMIT") + error("42P01");
      status = 'T';
      wrote(m, true);
      end_transaction(true);
      status = 'I';
    }
    return answer(query(sql), backend);
  }
  Request set_command() {
    return answer(query("SET search_path TO s" + std::to_string(rng_() % 5)),
                  status == 'E' ? error("25P02") : command_complete("SET"));
  }
  // Parse/Bind/Execute/Sync of one write. No `parse_name` with `named_sql`: bind an existing
  // statement. `flush`: the client flushes and reads the answer before sending Sync.
  Request extended(const std::string& parse_name, const std::string& bind_name, bool named_sql,
                   bool flush_first) {
    const std::string m = marker();
    const bool parses = !parse_name.empty() || !named_sql;
    const std::string sql = named_sql ? std::string("INSERT INTO t (a) VALUES ($1)")
                                      : "INSERT INTO t (a) VALUES ('" + m + "')";
    Request r;
    if (parses) r.frontend += parse(named_sql ? parse_name : "", sql);
    r.frontend += bind_msg("", bind_name, {m}) + execute();
    if (status == 'E') {
      r.backend = error("25P02");
      wrote(m, false);
    } else {
      if (parses) {
        r.backend += parse_complete();
        if (named_sql) statements_.push_back(parse_name);
      }
      const bool ok = !fails();
      r.backend += bind_complete() + (ok ? command_complete("INSERT 0 1") : error("23505"));
      wrote(m, ok);
      if (!ok) status = after_error();
    }
    if (flush_first) {
      r.interleaved = true;
      r.frontend += flush();
      r.requests_before = 0;
      r.frontend_after = sync_msg();
      r.backend_after = ready(status);
    } else {
      r.frontend += sync_msg();
      r.backend += ready(status);
    }
    return r;
  }
  Request prepare_only() {
    const std::string name = "s" + std::to_string(++names_);
    std::string backend = error("25P02");
    if (status != 'E') {
      backend = parse_complete();
      statements_.push_back(name);
    }
    return answer(prepare(name, "INSERT INTO t (a) VALUES ($1)"), backend);
  }
  Request close_statement() {
    const size_t i = rng_() % statements_.size();
    Request r = answer(close_msg(proto::kTargetStatement, statements_[i]) + sync_msg(),
                       close_complete());  // allowed in a failed transaction too
    statements_.erase(statements_.begin() + static_cast<std::ptrdiff_t>(i));
    return r;
  }
  Request extended_read() {
    return answer(query_params("SELECT a FROM t WHERE a = $1", {"x"}),
                  status == 'E' ? error("25P02")
                                : parse_complete() + bind_complete() + row_description("a") +
                                      command_complete("SELECT 0"));
  }
  Request fastpath() {
    const std::string m = marker();
    const bool ok = status != 'E' && !fails();
    std::string backend =
        ok ? function_call_response("1") : error(status == 'E' ? "25P02" : "42704");
    wrote(m, ok);
    if (!ok) status = after_error();
    return answer(function_call(955, {m}), backend);
  }
  Request copy(bool extended_protocol) {
    const std::string m = marker();
    Request r;
    const std::string sql = "COPY t (a) FROM STDIN";
    r.frontend = extended_protocol ? parse("", sql) + bind_msg("", "") +
                                         describe(proto::kTargetPortal) + execute() + sync_msg()
                                   : query(sql);
    if (status == 'E') {
      r.backend = error("25P02") + ready('E');  // refused: the client sends no data
      wrote(m, false);
      return r;
    }
    r.interleaved = true;
    if (extended_protocol) r.backend = parse_complete() + bind_complete() + no_data();
    r.backend += copy_in_response();
    const bool ok = !fails();
    r.frontend_after = copy_data(m + "\n") + (ok ? copy_done() : copy_fail("cancelled"));
    if (extended_protocol) {
      r.frontend_after += sync_msg();
      r.requests_after = 2;
    }
    r.backend_after = ok ? command_complete("COPY 1") : error("57014");
    wrote(m, ok);
    if (!ok) status = after_error();
    r.backend_after += ready(status);
    return r;
  }

  std::mt19937 rng_;
  uint32_t markers_ = 0;
  uint32_t names_ = 0;
  std::vector<std::string> statements_;
  std::vector<std::string> pending_;
  std::vector<std::string> since_savepoint_;
  bool savepoint_ = false;
  bool chained_ = false;
};

// Every Query, FunctionCall and Sync of a unit is answered by one ReadyForQuery, except a Sync the
// server ignored because COPY IN had started (the next message is COPY data).
size_t expected_responses(const std::vector<Message>& messages) {
  size_t n = 0;
  for (size_t i = 0; i < messages.size(); ++i) {
    const char t = messages[i].header.type;
    if (t == proto::frontend::kQuery || t == proto::frontend::kFunctionCall) ++n;
    if (t == proto::frontend::kSync) {
      const bool swallowed =
          i + 1 < messages.size() && (messages[i + 1].header.type == proto::frontend::kCopyData ||
                                      messages[i + 1].header.type == proto::frontend::kCopyDone ||
                                      messages[i + 1].header.type == proto::frontend::kCopyFail);
      if (!swallowed) ++n;
    }
  }
  return n;
}

TEST(WriteCaptureRandom, ValidSequencesKeepRequestsAndAnswersInStep) {
  size_t units = 0;
  size_t must = 0;
  size_t must_not = 0;
  for (uint32_t seed = 1; seed <= 300; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    ServerModel model(seed);
    Driver d;
    std::mt19937 rng(seed * 7919);
    size_t requests = 0;
    for (int round = 0; round < 60; ++round) {
      // A window of pipelined requests; interleaved ones alone (the client waits for answers).
      const size_t window = 1 + rng() % 4;
      std::vector<ServerModel::Request> sent;
      size_t held = 0;
      for (size_t i = 0; i < window; ++i) {
        sent.push_back(model.next(/*allow_interleaved=*/window == 1));
        d.run(fe(sent.back().frontend));
        held += sent.back().requests_before;
      }
      ASSERT_EQ(d.capture.outstanding(), held);
      for (auto& r : sent) {
        d.run(be(r.backend));
        if (r.interleaved) {
          d.run(fe(r.frontend_after));
          ASSERT_EQ(d.capture.outstanding(), r.requests_after);
          d.run(be(r.backend_after));
        }
        ++requests;
      }
      ASSERT_EQ(d.capture.outstanding(), 0u);
      ASSERT_EQ(d.ready_unmatched, 0u);
      ASSERT_EQ(d.capture.in_transaction(), model.status != 'I');
    }
    ASSERT_EQ(d.ready_seen, requests);

    std::string mirrored;
    for (const auto& u : d.units) {
      std::vector<Message> messages;
      ASSERT_TRUE(split(u.bytes, proto::Direction::kFrontend, &messages)) << render(u.bytes);
      ASSERT_FALSE(messages.empty());
      EXPECT_EQ(u.responses, expected_responses(messages)) << render(u.bytes);
      mirrored += u.bytes;
    }
    for (const auto& m : model.must_appear) {
      EXPECT_NE(mirrored.find(m), std::string::npos) << m << " committed but not mirrored";
    }
    for (const auto& m : model.must_not_appear) {
      EXPECT_EQ(mirrored.find(m), std::string::npos) << m << " rolled back but mirrored";
    }
    EXPECT_EQ(d.capture.stats().released, d.units.size());
    units += d.units.size();
    must += model.must_appear.size();
    must_not += model.must_not_appear.size();
  }
  // The model is not degenerate: plenty of both fates.
  EXPECT_GT(units, 3000u);
  EXPECT_GT(must, 3000u);
  EXPECT_GT(must_not, 1000u);
  std::printf("random: %zu units, %zu committed writes, %zu rolled back\n", units, must, must_not);
}

// Random frontend bytes that frame as whole messages, and random backend answers: nothing a
// client or server sends may crash the capture or leave it believing in answers never asked for.
TEST(WriteCaptureRandom, ArbitraryWholeMessagesNeverCrash) {
  const char frontend_types[] = {'Q', 'P', 'B', 'E', 'D', 'C', 'S',
                                 'H', 'F', 'd', 'c', 'f', 'X', 'p'};
  const char backend_types[] = {'C', 'E', 'Z', '1', '2', '3', 'G', 'H', 'W',
                                'n', 'T', 'D', 'I', 'N', 'S', 's', 'V'};
  for (uint32_t seed = 1; seed <= 200; ++seed) {
    std::mt19937 rng(seed);
    Driver d;
    size_t syncs = 0;
    for (int i = 0; i < 400; ++i) {
      std::string body;
      const size_t n = rng() % 24;
      for (size_t k = 0; k < n; ++k)
        body += static_cast<char>(rng() % 4 == 0 ? 0 : 'a' + rng() % 26);
      if (rng() % 2 == 0) {
        const char t = frontend_types[rng() % std::size(frontend_types)];
        std::string m;
        const size_t start = proto::begin_message(m, t);
        m += body;
        proto::end_message(m, start);
        if (t == 'Q' || t == 'S' || t == 'F') ++syncs;
        d.run(fe(m));
      } else {
        char t = backend_types[rng() % std::size(backend_types)];
        std::string m;
        if (t == 'Z') {
          m = ready("ITE"[rng() % 3]);
        } else {
          const size_t start = proto::begin_message(m, t);
          m += body;
          proto::end_message(m, start);
        }
        d.run(be(m));
      }
    }
    // Whatever it was fed, it holds at most one request per Query, FunctionCall or Sync.
    EXPECT_LE(d.capture.outstanding(), syncs);
    for (const auto& u : d.units) {
      std::vector<Message> messages;
      EXPECT_TRUE(split(u.bytes, proto::Direction::kFrontend, &messages));
    }
  }
}

}  // namespace
}  // namespace pgtandem::policy

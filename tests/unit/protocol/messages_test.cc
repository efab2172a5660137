#include "protocol/messages.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "test_util.h"

namespace pgtandem::protocol {
namespace {

using testing::RawMessage;
using testing::split_messages;

std::string_view body_of(const std::string& wire) { return std::string_view(wire).substr(5); }

// encode -> decode -> equal; decode -> encode -> same bytes; and no strict prefix (or the body
// plus a byte) decodes, unless the body is opaque.
template <typename T>
void check_round_trip(const T& m, bool opaque = false) {
  std::string wire;
  encode(wire, m);
  ASSERT_GE(wire.size(), kHeaderSize);
  EXPECT_EQ(wire[0], T::kType);
  EXPECT_EQ(read_u32(wire.data() + 1), wire.size() - 1);
  T decoded{};
  ASSERT_TRUE(decode(body_of(wire), decoded));
  EXPECT_TRUE(decoded == m);
  std::string again;
  encode(again, decoded);
  EXPECT_EQ(again, wire);
  if (opaque) return;
  std::string_view body = body_of(wire);
  for (size_t n = 0; n < body.size(); ++n) {
    T partial{};
    EXPECT_FALSE(decode(body.substr(0, n), partial)) << "prefix " << n << " of " << T::kType;
  }
  T longer{};
  EXPECT_FALSE(decode(std::string(body) + '\0', longer)) << T::kType;
}

// A message built by a list encoder: decode it, re-encode it, same bytes; prefixes fail.
template <typename T>
T decode_built(const std::string& wire) {
  T m{};
  EXPECT_EQ(wire[0], T::kType);
  EXPECT_EQ(read_u32(wire.data() + 1), wire.size() - 1);
  EXPECT_TRUE(decode(body_of(wire), m));
  std::string again;
  encode(again, m);
  EXPECT_EQ(again, wire);
  std::string_view body = body_of(wire);
  for (size_t n = 0; n < body.size(); ++n) {
    T partial{};
    EXPECT_FALSE(decode(body.substr(0, n), partial)) << "prefix " << n << " of " << T::kType;
  }
  return m;
}

std::vector<Value> values_of(const ValueList& l) { return {l.begin(), l.end()}; }
std::vector<int16_t> int16s_of(const Int16List& l) {
  std::vector<int16_t> v;
  for (size_t i = 0; i < l.size(); ++i) v.push_back(l[i]);
  return v;
}
std::vector<uint32_t> uint32s_of(const Uint32List& l) {
  std::vector<uint32_t> v;
  for (size_t i = 0; i < l.size(); ++i) v.push_back(l[i]);
  return v;
}
std::vector<std::string_view> strings_of(const StringList& l) { return {l.begin(), l.end()}; }

// ------------------------------------------------------------------------------------------------
// Round trips, backend

TEST(RoundTrip, EmptyMessages) {
  check_round_trip(BindComplete{});
  check_round_trip(CloseComplete{});
  check_round_trip(NoData{});
  check_round_trip(ParseComplete{});
  check_round_trip(PortalSuspended{});
  check_round_trip(EmptyQueryResponse{});
  check_round_trip(CopyDone{});
  check_round_trip(Flush{});
  check_round_trip(Sync{});
  check_round_trip(Terminate{});
  Sync s;
  EXPECT_FALSE(decode("x", s));
}

TEST(RoundTrip, Authentication) {
  for (int32_t code : {kAuthOk, kAuthKerberosV5, kAuthCleartextPassword, kAuthScmCredential,
                       kAuthGss, kAuthSspi}) {
    check_round_trip(Authentication{code, {}});
  }
  check_round_trip(Authentication{kAuthMd5Password, std::string_view("\x01\x02\x03\x04", 4)});
  check_round_trip(Authentication{kAuthSaslContinue, "r=abc,s=salt,i=4096"}, true);
  check_round_trip(Authentication{kAuthSaslFinal, "v=signature"}, true);
  check_round_trip(Authentication{kAuthGssContinue, std::string_view("\0tok\0", 5)}, true);
  check_round_trip(Authentication{kAuthSaslContinue, ""}, true);

  Authentication bad;
  EXPECT_FALSE(decode(std::string_view("\0\0\0\x05\x01\x02\x03", 7), bad));  // short salt
  EXPECT_FALSE(decode(std::string_view("\0\0\0\0x", 5), bad));               // AuthOk with data
}

TEST(RoundTrip, AuthenticationSasl) {
  std::vector<std::string_view> mechanisms = {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"};
  std::string wire;
  encode_authentication_sasl(wire, mechanisms);
  Authentication m = decode_built<Authentication>(wire);
  EXPECT_EQ(m.code, kAuthSasl);
  EXPECT_EQ(strings_of(m.sasl_mechanisms()), mechanisms);
  EXPECT_EQ(m.sasl_mechanisms().size(), 2u);
  check_round_trip(m);
  Authentication bad;
  // Missing the final empty name.
  EXPECT_FALSE(decode(std::string_view("\0\0\0\x0aSCRAM-SHA-256\0", 18), bad));
  EXPECT_TRUE(Authentication{}.sasl_mechanisms().empty());
}

TEST(RoundTrip, BackendKeyData) {
  check_round_trip(BackendKeyData{12345, -987654321});
  check_round_trip(BackendKeyData{0, 0});
}

TEST(RoundTrip, CommandComplete) {
  check_round_trip(CommandComplete{"INSERT 0 5"});
  check_round_trip(CommandComplete{""});
}

TEST(CommandTag, RowCounts) {
  uint64_t rows = 0;
  EXPECT_TRUE(command_tag_rows("INSERT 0 5", rows));
  EXPECT_EQ(rows, 5u);
  EXPECT_TRUE(command_tag_rows("UPDATE 3", rows));
  EXPECT_EQ(rows, 3u);
  EXPECT_TRUE(command_tag_rows("SELECT 7", rows));
  EXPECT_EQ(rows, 7u);
  EXPECT_TRUE(command_tag_rows("DELETE 0", rows));
  EXPECT_EQ(rows, 0u);
  for (std::string_view t : {"MERGE 2", "MOVE 2", "FETCH 2", "COPY 2"}) {
    rows = 0;
    EXPECT_TRUE(command_tag_rows(t, rows)) << t;
    EXPECT_EQ(rows, 2u) << t;
  }
  EXPECT_TRUE(command_tag_rows("SELECT 18446744073709551615", rows));
  EXPECT_EQ(rows, UINT64_MAX);
  for (std::string_view t :
       {"CREATE TABLE", "BEGIN", "INSERT 5", "INSERT x 5", "UPDATE", "UPDATE -1", "UPDATE 1x",
        "SELECT 18446744073709551616", "", " 5", "CREATE TABLE 5", "UPDATE  5"}) {
    EXPECT_FALSE(command_tag_rows(t, rows)) << t;
  }
  EXPECT_EQ(command_tag_name("INSERT 0 5"), "INSERT");
  EXPECT_EQ(command_tag_name("UPDATE 3"), "UPDATE");
  EXPECT_EQ(command_tag_name("CREATE TABLE"), "CREATE TABLE");
  EXPECT_EQ(command_tag_name(""), "");
}

TEST(RoundTrip, CopyData) {
  check_round_trip(CopyData{std::string_view("1\tone\n\0", 7)}, true);
  check_round_trip(CopyData{""}, true);
}

TEST(RoundTrip, CopyResponses) {
  std::vector<int16_t> formats = {0, 1, 1};
  std::string wire;
  encode_copy_response(wire, backend::kCopyInResponse, 1, formats);
  CopyInResponse in = decode_built<CopyInResponse>(wire);
  EXPECT_EQ(in.format, 1);
  EXPECT_EQ(int16s_of(in.column_formats), formats);
  check_round_trip(in);
  wire.clear();
  encode_copy_response(wire, backend::kCopyOutResponse, 0, {});
  CopyOutResponse out = decode_built<CopyOutResponse>(wire);
  EXPECT_EQ(out.column_formats.size(), 0u);
  wire.clear();
  encode_copy_response(wire, backend::kCopyBothResponse, 0, formats);
  CopyBothResponse both = decode_built<CopyBothResponse>(wire);
  EXPECT_EQ(int16s_of(both.column_formats), formats);
}

TEST(RoundTrip, DataRow) {
  std::vector<Value> columns = {Value::of("42"), Value::null(), Value::of(""),
                                Value::of(std::string_view("\0\xff", 2))};
  std::string wire;
  encode_data_row(wire, columns);
  DataRow row = decode_built<DataRow>(wire);
  ASSERT_EQ(row.columns.size(), 4u);
  EXPECT_EQ(values_of(row.columns), columns);
  Value v;
  ASSERT_TRUE(row.columns.at(1, v));
  EXPECT_TRUE(v.is_null);
  ASSERT_TRUE(row.columns.at(2, v));
  EXPECT_FALSE(v.is_null);  // empty is not NULL
  EXPECT_TRUE(v.data.empty());
  EXPECT_FALSE(row.columns.at(4, v));
  check_round_trip(row);
  wire.clear();
  encode_data_row(wire, {});
  EXPECT_EQ(decode_built<DataRow>(wire).columns.size(), 0u);
  DataRow bad;
  EXPECT_FALSE(decode(std::string_view("\0\x01\xff\xff\xff\xfe", 6), bad));  // length -2
}

TEST(RoundTrip, ErrorAndNotice) {
  std::vector<Field> fields = {
      {'S', "ERROR"},  {'V', "ERROR"},  {'C', "22012"},  {'M', "division by zero"},
      {'D', "detail"}, {'H', "hint"},   {'P', "8"},      {'q', "internal"},
      {'p', "3"},      {'W', "where"},  {'s', "public"}, {'t', "tbl"},
      {'c', "col"},    {'d', "int4"},   {'n', "t_pkey"}, {'F', "int.c"},
      {'L', "841"},    {'R', "int4div"}};
  std::string wire;
  encode_fields(wire, backend::kErrorResponse, fields);
  ErrorResponse e = decode_built<ErrorResponse>(wire);
  EXPECT_EQ(std::vector<Field>(e.fields.begin(), e.fields.end()), fields);
  EXPECT_EQ(e.severity(), "ERROR");
  EXPECT_EQ(e.severity_nonlocalized(), "ERROR");
  EXPECT_EQ(e.sqlstate(), "22012");
  EXPECT_EQ(e.message(), "division by zero");
  EXPECT_EQ(e.detail(), "detail");
  EXPECT_EQ(e.hint(), "hint");
  EXPECT_EQ(e.position(), "8");
  EXPECT_EQ(e.internal_position(), "3");
  EXPECT_EQ(e.internal_query(), "internal");
  EXPECT_EQ(e.where(), "where");
  EXPECT_EQ(e.schema(), "public");
  EXPECT_EQ(e.table(), "tbl");
  EXPECT_EQ(e.column(), "col");
  EXPECT_EQ(e.data_type(), "int4");
  EXPECT_EQ(e.constraint(), "t_pkey");
  EXPECT_EQ(e.file(), "int.c");
  EXPECT_EQ(e.line(), "841");
  EXPECT_EQ(e.routine(), "int4div");
  check_round_trip(e);

  std::vector<Field> notice_fields = {{'S', "AVISO"}, {'C', "00000"}, {'M', "hello"}};
  wire.clear();
  encode_fields(wire, backend::kNoticeResponse, notice_fields);
  NoticeResponse n = decode_built<NoticeResponse>(wire);
  EXPECT_EQ(n.severity(), "AVISO");
  EXPECT_EQ(n.severity_nonlocalized(), "AVISO");  // no V: falls back to S
  EXPECT_TRUE(n.detail().empty());
  EXPECT_FALSE(n.fields.has('D'));

  // Unrepresentable fields are skipped.
  wire.clear();
  std::vector<Field> odd = {{'\0', "x"}, {'M', std::string_view("a\0b", 3)}, {'C', "XX000"}};
  encode_fields(wire, backend::kErrorResponse, odd);
  ErrorResponse only_c = decode_built<ErrorResponse>(wire);
  EXPECT_EQ(std::vector<Field>(only_c.fields.begin(), only_c.fields.end()),
            (std::vector<Field>{{'C', "XX000"}}));
  ErrorResponse empty;
  EXPECT_TRUE(decode(std::string_view("\0", 1), empty));
  EXPECT_FALSE(decode("", empty));
  EXPECT_FALSE(decode("Sx", empty));
}

TEST(RoundTrip, FunctionCallResponse) {
  check_round_trip(FunctionCallResponse{Value::of(std::string_view("\0\0\0\x2a", 4))});
  check_round_trip(FunctionCallResponse{Value::null()});
  check_round_trip(FunctionCallResponse{Value::of("")});
}

TEST(RoundTrip, NegotiateProtocolVersion) {
  std::vector<std::string_view> options = {"_pq_.a", "_pq_.b"};
  std::string wire;
  encode_negotiate_protocol_version(wire, kProtocolVersion3, options);
  NegotiateProtocolVersion m = decode_built<NegotiateProtocolVersion>(wire);
  EXPECT_EQ(m.newest_version, kProtocolVersion3);
  EXPECT_EQ(strings_of(m.unrecognized_options), options);
  EXPECT_EQ(m.unrecognized_options.size(), 2u);
  check_round_trip(m);
  wire.clear();
  encode_negotiate_protocol_version(wire, kProtocolVersion3, {});
  EXPECT_TRUE(decode_built<NegotiateProtocolVersion>(wire).unrecognized_options.empty());
  NegotiateProtocolVersion bad;
  EXPECT_FALSE(decode(std::string_view("\0\3\0\0\xff\xff\xff\xff", 8), bad));
}

TEST(RoundTrip, NotificationResponse) {
  check_round_trip(NotificationResponse{4242, "channel", "payload"});
  check_round_trip(NotificationResponse{-1, "", ""});
}

TEST(RoundTrip, ParameterDescription) {
  std::vector<uint32_t> oids = {23, 25, 0, 4294967295u};
  std::string wire;
  encode_parameter_description(wire, oids);
  ParameterDescription m = decode_built<ParameterDescription>(wire);
  EXPECT_EQ(uint32s_of(m.type_oids), oids);
  check_round_trip(m);
}

TEST(RoundTrip, ParameterStatus) {
  check_round_trip(ParameterStatus{"server_version", "15.20"});
  check_round_trip(ParameterStatus{"application_name", ""});
}

TEST(RoundTrip, ReadyForQuery) {
  for (char s : {kTxIdle, kTxInBlock, kTxFailed}) check_round_trip(ReadyForQuery{s});
  ReadyForQuery r;
  EXPECT_FALSE(decode("X", r));
  EXPECT_FALSE(decode("", r));
}

TEST(RoundTrip, RowDescription) {
  std::vector<ColumnDescription> columns = {
      {"id", 16384, 1, 23, 4, -1, 0},
      {"", 0, 0, 25, -1, -1, 1},
      {"payload", 4294967295u, -5, 17, -1, 0x7fffffff, 0},
  };
  std::string wire;
  encode_row_description(wire, columns);
  RowDescription m = decode_built<RowDescription>(wire);
  EXPECT_EQ(std::vector<ColumnDescription>(m.begin(), m.end()), columns);
  EXPECT_EQ(m.size(), 3u);
  check_round_trip(m);
}

// ------------------------------------------------------------------------------------------------
// Round trips, frontend

TEST(RoundTrip, Bind) {
  std::vector<int16_t> param_formats = {1, 0};
  std::vector<Value> params = {Value::of(std::string_view("\0\0\0\x2a", 4)), Value::null(),
                               Value::of("")};
  std::vector<int16_t> result_formats = {1};
  std::string wire;
  encode_bind(wire, "portal", "stmt", param_formats, params, result_formats);
  Bind m = decode_built<Bind>(wire);
  EXPECT_EQ(m.portal, "portal");
  EXPECT_EQ(m.statement, "stmt");
  EXPECT_EQ(int16s_of(m.param_formats), param_formats);
  EXPECT_EQ(values_of(m.params), params);
  EXPECT_EQ(int16s_of(m.result_formats), result_formats);
  check_round_trip(m);
  wire.clear();
  encode_bind(wire, "", "", {}, {}, {});
  Bind unnamed = decode_built<Bind>(wire);
  EXPECT_TRUE(unnamed.params.empty());
}

TEST(RoundTrip, CloseAndDescribe) {
  check_round_trip(Close{kTargetStatement, "s1"});
  check_round_trip(Close{kTargetPortal, ""});
  check_round_trip(Describe{kTargetStatement, ""});
  check_round_trip(Describe{kTargetPortal, "p1"});
  Close c;
  EXPECT_FALSE(decode(std::string_view("Xs1\0", 4), c));
  Describe d;
  EXPECT_FALSE(decode(std::string_view("\0\0", 2), d));
}

TEST(RoundTrip, CopyFail) { check_round_trip(CopyFail{"client gave up"}); }

TEST(RoundTrip, Execute) {
  check_round_trip(Execute{"", 0});
  check_round_trip(Execute{"p1", 2});
  check_round_trip(Execute{"p1", -1});
}

TEST(RoundTrip, FunctionCall) {
  std::vector<int16_t> formats = {1};
  std::vector<Value> args = {Value::of(std::string_view("\0\0\0\x28", 4)),
                             Value::of(std::string_view("\0\0\0\x02", 4)), Value::null()};
  std::string wire;
  encode_function_call(wire, 177, formats, args, 1);
  FunctionCall m = decode_built<FunctionCall>(wire);
  EXPECT_EQ(m.function_oid, 177u);
  EXPECT_EQ(int16s_of(m.arg_formats), formats);
  EXPECT_EQ(values_of(m.args), args);
  EXPECT_EQ(m.result_format, 1);
  check_round_trip(m);
}

TEST(RoundTrip, Parse) {
  std::vector<uint32_t> types = {23, 0, 25};
  std::string wire;
  encode_parse(wire, "s1", "SELECT $1, $2, $3", types);
  Parse m = decode_built<Parse>(wire);
  EXPECT_EQ(m.name, "s1");
  EXPECT_EQ(m.query, "SELECT $1, $2, $3");
  EXPECT_EQ(uint32s_of(m.param_types), types);
  check_round_trip(m);
  wire.clear();
  encode_parse(wire, "", "", {});
  EXPECT_TRUE(decode_built<Parse>(wire).query.empty());
}

TEST(RoundTrip, Query) {
  check_round_trip(Query{"SELECT 1"});
  check_round_trip(Query{""});
}

TEST(RoundTrip, AuthenticationResponses) {
  check_round_trip(PasswordMessage{"md5a3556571e93b0d20722ba62be61e8c2d"});
  check_round_trip(SaslInitialResponse{"SCRAM-SHA-256", Value::of("n,,n=,r=nonce")});
  check_round_trip(SaslInitialResponse{"SCRAM-SHA-256", Value::null()});
  check_round_trip(SaslResponse{"c=biws,r=nonce,p=proof"}, true);
  check_round_trip(GssResponse{std::string_view("\x60\x00\x01", 3)}, true);
}

TEST(ByType, NamesAndWellFormed) {
  EXPECT_EQ(message_name(Direction::kFrontend, 'Q'), "Query");
  EXPECT_EQ(message_name(Direction::kBackend, 'C'), "CommandComplete");
  EXPECT_EQ(message_name(Direction::kFrontend, 'C'), "Close");
  EXPECT_EQ(message_name(Direction::kFrontend, 'Z'), "Unknown");
  EXPECT_TRUE(well_formed(Direction::kFrontend, 'S', ""));
  EXPECT_FALSE(well_formed(Direction::kFrontend, 'S', "x"));
  EXPECT_TRUE(well_formed(Direction::kBackend, 'Z', "I"));
  EXPECT_FALSE(well_formed(Direction::kBackend, 'Q', std::string_view("x\0", 2)));
  EXPECT_FALSE(well_formed(Direction::kFrontend, 'Z', "I"));
  for (int t = 0; t < 256; ++t) {
    char c = static_cast<char>(t);
    bool fe_known = message_name(Direction::kFrontend, c) != "Unknown";
    EXPECT_EQ(fe_known, frontend_message_cap(c, {}) != 0) << t;
  }
}

// ------------------------------------------------------------------------------------------------
// Captured sessions: every message decodes and re-encodes to the same bytes.

template <typename T>
bool reencodes(std::string_view body, std::string_view whole) {
  T m{};
  if (!decode(body, m)) return false;
  std::string out;
  encode(out, m);
  return out == whole;
}

bool reencodes(Direction dir, const RawMessage& msg) {
  if (dir == Direction::kFrontend) {
    switch (msg.type) {
      case 'B':
        return reencodes<Bind>(msg.body, msg.whole);
      case 'C':
        return reencodes<Close>(msg.body, msg.whole);
      case 'd':
        return reencodes<CopyData>(msg.body, msg.whole);
      case 'c':
        return reencodes<CopyDone>(msg.body, msg.whole);
      case 'f':
        return reencodes<CopyFail>(msg.body, msg.whole);
      case 'D':
        return reencodes<Describe>(msg.body, msg.whole);
      case 'E':
        return reencodes<Execute>(msg.body, msg.whole);
      case 'H':
        return reencodes<Flush>(msg.body, msg.whole);
      case 'F':
        return reencodes<FunctionCall>(msg.body, msg.whole);
      case 'P':
        return reencodes<Parse>(msg.body, msg.whole);
      case 'Q':
        return reencodes<Query>(msg.body, msg.whole);
      case 'S':
        return reencodes<Sync>(msg.body, msg.whole);
      case 'X':
        return reencodes<Terminate>(msg.body, msg.whole);
      case 'p': {
        bool any = reencodes<GssResponse>(msg.body, msg.whole);
        PasswordMessage pw;
        if (decode(msg.body, pw)) any = any && reencodes<PasswordMessage>(msg.body, msg.whole);
        SaslInitialResponse sasl;
        if (decode(msg.body, sasl)) {
          any = any && reencodes<SaslInitialResponse>(msg.body, msg.whole);
        }
        return any;
      }
      default:
        return false;
    }
  }
  switch (msg.type) {
    case 'R':
      return reencodes<Authentication>(msg.body, msg.whole);
    case 'K':
      return reencodes<BackendKeyData>(msg.body, msg.whole);
    case '2':
      return reencodes<BindComplete>(msg.body, msg.whole);
    case '3':
      return reencodes<CloseComplete>(msg.body, msg.whole);
    case 'C':
      return reencodes<CommandComplete>(msg.body, msg.whole);
    case 'd':
      return reencodes<CopyData>(msg.body, msg.whole);
    case 'c':
      return reencodes<CopyDone>(msg.body, msg.whole);
    case 'G':
      return reencodes<CopyInResponse>(msg.body, msg.whole);
    case 'H':
      return reencodes<CopyOutResponse>(msg.body, msg.whole);
    case 'W':
      return reencodes<CopyBothResponse>(msg.body, msg.whole);
    case 'D':
      return reencodes<DataRow>(msg.body, msg.whole);
    case 'I':
      return reencodes<EmptyQueryResponse>(msg.body, msg.whole);
    case 'E':
      return reencodes<ErrorResponse>(msg.body, msg.whole);
    case 'V':
      return reencodes<FunctionCallResponse>(msg.body, msg.whole);
    case 'v':
      return reencodes<NegotiateProtocolVersion>(msg.body, msg.whole);
    case 'n':
      return reencodes<NoData>(msg.body, msg.whole);
    case 'N':
      return reencodes<NoticeResponse>(msg.body, msg.whole);
    case 'A':
      return reencodes<NotificationResponse>(msg.body, msg.whole);
    case 't':
      return reencodes<ParameterDescription>(msg.body, msg.whole);
    case 'S':
      return reencodes<ParameterStatus>(msg.body, msg.whole);
    case '1':
      return reencodes<ParseComplete>(msg.body, msg.whole);
    case 's':
      return reencodes<PortalSuspended>(msg.body, msg.whole);
    case 'Z':
      return reencodes<ReadyForQuery>(msg.body, msg.whole);
    case 'T':
      return reencodes<RowDescription>(msg.body, msg.whole);
    default:
      return false;
  }
}

// All messages of all captured sessions, per direction and type.
struct Corpus {
  std::map<std::string, std::vector<RawMessage>> frontend;  // by session
  std::map<std::string, std::vector<RawMessage>> backend;
  std::vector<testing::Session> sessions;

  Corpus() {
    for (const std::string& name : testing::session_names()) {
      sessions.push_back(testing::load_session(name));
    }
    for (const testing::Session& s : sessions) {
      frontend[s.name] = split_messages(s.frontend_messages());
      backend[s.name] = split_messages(s.backend_messages());
    }
  }

  template <typename T>
  std::vector<T> all(const std::string& session, Direction dir) const {
    std::vector<T> out;
    const auto& msgs = dir == Direction::kFrontend ? frontend.at(session) : backend.at(session);
    for (const RawMessage& m : msgs) {
      if (m.type != T::kType) continue;
      T decoded{};
      if (decode(m.body, decoded)) out.push_back(decoded);
    }
    return out;
  }
};

const Corpus& corpus() {
  static const Corpus* c = new Corpus();
  return *c;
}

TEST(Captured, EveryMessageDecodesAndReencodes) {
  std::set<char> fe_types, be_types;
  size_t count = 0;
  for (const auto& [name, msgs] : corpus().frontend) {
    for (const RawMessage& m : msgs) {
      EXPECT_TRUE(well_formed(Direction::kFrontend, m.type, m.body)) << name << " " << m.type;
      EXPECT_TRUE(reencodes(Direction::kFrontend, m)) << name << " " << m.type;
      fe_types.insert(m.type);
      ++count;
    }
  }
  for (const auto& [name, msgs] : corpus().backend) {
    for (const RawMessage& m : msgs) {
      EXPECT_TRUE(well_formed(Direction::kBackend, m.type, m.body)) << name << " " << m.type;
      EXPECT_TRUE(reencodes(Direction::kBackend, m)) << name << " " << m.type;
      be_types.insert(m.type);
      ++count;
    }
  }
  EXPECT_GT(count, 300u);
  // The captures cover every frontend type and every backend type PostgreSQL 15 sends in these
  // scenarios.
  EXPECT_EQ(std::string(fe_types.begin(), fe_types.end()), "BCDEFHPQSXcdfp");
  EXPECT_EQ(std::string(be_types.begin(), be_types.end()), "123ACDEGHIKNRSTVWZcdnst");
}

TEST(Captured, SimpleQuery) {
  const std::string s = "simple_query";
  auto notices = corpus().all<NoticeResponse>(s, Direction::kBackend);
  ASSERT_FALSE(notices.empty());
  EXPECT_EQ(notices[0].severity(), "NOTICE");
  EXPECT_EQ(notices[0].severity_nonlocalized(), "NOTICE");
  EXPECT_EQ(notices[0].sqlstate(), "00000");
  EXPECT_EQ(notices[0].message(), "hello from capture");
  EXPECT_EQ(notices[0].detail(), "a detail");
  EXPECT_EQ(notices[0].hint(), "a hint");

  auto errors = corpus().all<ErrorResponse>(s, Direction::kBackend);
  std::vector<std::string_view> states;
  for (const auto& e : errors) states.push_back(e.sqlstate());
  EXPECT_EQ(states, (std::vector<std::string_view>{"22012", "42P01", "23505"}));
  EXPECT_EQ(errors[0].message(), "division by zero");
  EXPECT_EQ(errors[0].severity(), "ERROR");
  EXPECT_EQ(errors[1].position(), "15");
  EXPECT_EQ(errors[2].constraint(), "t_pkey");
  EXPECT_EQ(errors[2].table(), "t");

  std::vector<std::string_view> tags;
  for (const auto& c : corpus().all<CommandComplete>(s, Direction::kBackend)) tags.push_back(c.tag);
  auto has = [&](std::string_view t) {
    return std::find(tags.begin(), tags.end(), t) != tags.end();
  };
  EXPECT_TRUE(has("INSERT 0 5"));
  EXPECT_TRUE(has("UPDATE 3"));
  EXPECT_TRUE(has("DELETE 1"));
  EXPECT_TRUE(has("SELECT 12"));
  EXPECT_TRUE(has("ROLLBACK"));

  std::string statuses;
  for (const auto& z : corpus().all<ReadyForQuery>(s, Direction::kBackend)) statuses += z.status;
  EXPECT_NE(statuses.find('I'), std::string::npos);
  EXPECT_NE(statuses.find('T'), std::string::npos);
  EXPECT_NE(statuses.find('E'), std::string::npos);

  auto notifications = corpus().all<NotificationResponse>(s, Direction::kBackend);
  ASSERT_EQ(notifications.size(), 2u);
  EXPECT_EQ(notifications[0].channel, "capture_channel");
  EXPECT_EQ(notifications[0].payload, "payload one");
  EXPECT_EQ(notifications[1].payload, "payload two");
  auto keys = corpus().all<BackendKeyData>(s, Direction::kBackend);
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(notifications[0].process_id, keys[0].process_id);

  // SELECT 1 AS one, NULL::text, ''::text, 'x', 2.5::numeric: NULL and empty stay distinct.
  auto rows = corpus().all<DataRow>(s, Direction::kBackend);
  ASSERT_FALSE(rows.empty());
  EXPECT_EQ(values_of(rows[0].columns),
            (std::vector<Value>{Value::of("1"), Value::null(), Value::of(""), Value::of("x"),
                                Value::of("2.5")}));
  auto descriptions = corpus().all<RowDescription>(s, Direction::kBackend);
  ASSERT_FALSE(descriptions.empty());
  std::vector<ColumnDescription> cols(descriptions[0].begin(), descriptions[0].end());
  ASSERT_EQ(cols.size(), 5u);
  EXPECT_EQ(cols[0].name, "one");
  EXPECT_EQ(cols[0].type_oid, 23u);
  EXPECT_EQ(cols[1].type_oid, 25u);
  EXPECT_EQ(cols[4].type_oid, 1700u);

  bool saw_version = false;
  for (const auto& p : corpus().all<ParameterStatus>(s, Direction::kBackend)) {
    if (p.name == "server_version") saw_version = p.value.starts_with("15.");
  }
  EXPECT_TRUE(saw_version);
  auto queries = corpus().all<Query>(s, Direction::kFrontend);
  ASSERT_FALSE(queries.empty());
  EXPECT_EQ(queries[0].sql, "SET application_name = 'capture_simple';");
}

TEST(Captured, Copy) {
  const std::string s = "copy";
  auto ins = corpus().all<CopyInResponse>(s, Direction::kBackend);
  auto outs = corpus().all<CopyOutResponse>(s, Direction::kBackend);
  ASSERT_EQ(ins.size(), 3u);
  ASSERT_EQ(outs.size(), 3u);
  EXPECT_EQ(ins[0].format, 0);
  EXPECT_EQ(ins[0].column_formats.size(), 3u);
  EXPECT_EQ(outs[2].format, 1);  // FORMAT binary
  EXPECT_EQ(int16s_of(outs[2].column_formats), (std::vector<int16_t>{1, 1}));
  EXPECT_FALSE(corpus().all<CopyData>(s, Direction::kFrontend).empty());
  EXPECT_FALSE(corpus().all<CopyData>(s, Direction::kBackend).empty());
  EXPECT_EQ(corpus().all<CopyDone>(s, Direction::kFrontend).size(), 3u);
  EXPECT_EQ(corpus().all<CopyDone>(s, Direction::kBackend).size(), 3u);
  std::vector<std::string_view> tags;
  for (const auto& c : corpus().all<CommandComplete>(s, Direction::kBackend)) tags.push_back(c.tag);
  EXPECT_NE(std::find(tags.begin(), tags.end(), "COPY 3"), tags.end());
  uint64_t rows = 0;
  EXPECT_TRUE(command_tag_rows("COPY 3", rows));
}

TEST(Captured, LibpqBinaryParameters) {
  const std::string s = "libpq_binary";
  auto binds = corpus().all<Bind>(s, Direction::kFrontend);
  ASSERT_FALSE(binds.empty());
  const Bind& b = binds[0];
  EXPECT_EQ(int16s_of(b.param_formats), (std::vector<int16_t>{1, 1, 1, 0, 1}));
  std::vector<Value> params = values_of(b.params);
  ASSERT_EQ(params.size(), 5u);
  EXPECT_EQ(params[0].data, std::string_view("\0\0\0\x2a", 4));
  EXPECT_EQ(params[1].data, std::string_view("\xff\xff\xff\xff\xff\xff\xff\xf9", 8));
  EXPECT_EQ(params[2].data, std::string_view("\x00\x01\xff", 3));
  EXPECT_EQ(params[3].data, "text value");
  EXPECT_TRUE(params[4].is_null);
  EXPECT_EQ(int16s_of(b.result_formats), (std::vector<int16_t>{1}));
  auto parses = corpus().all<Parse>(s, Direction::kFrontend);
  ASSERT_FALSE(parses.empty());
  EXPECT_EQ(uint32s_of(parses[0].param_types), (std::vector<uint32_t>{23, 20, 17, 25, 25}));
  bool named = false;
  for (const Parse& p : parses) named = named || p.name == "stmt1";
  EXPECT_TRUE(named);
  auto calls = corpus().all<FunctionCall>(s, Direction::kFrontend);
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].args.size(), 2u);
  auto results = corpus().all<FunctionCallResponse>(s, Direction::kBackend);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].result.data, std::string_view("\0\0\0\x2a", 4));
  EXPECT_FALSE(corpus().all<ParameterDescription>(s, Direction::kBackend).empty());
}

TEST(Captured, RawExtended) {
  const std::string s = "raw_extended";
  EXPECT_EQ(corpus().all<PortalSuspended>(s, Direction::kBackend).size(), 1u);
  EXPECT_EQ(corpus().all<EmptyQueryResponse>(s, Direction::kBackend).size(), 1u);
  EXPECT_FALSE(corpus().all<NoData>(s, Direction::kBackend).empty());
  EXPECT_EQ(corpus().all<CloseComplete>(s, Direction::kBackend).size(), 2u);
  auto executes = corpus().all<Execute>(s, Direction::kFrontend);
  ASSERT_FALSE(executes.empty());
  EXPECT_EQ(executes[0].portal, "p1");
  EXPECT_EQ(executes[0].max_rows, 2);
  auto fails = corpus().all<CopyFail>(s, Direction::kFrontend);
  ASSERT_EQ(fails.size(), 1u);
  EXPECT_EQ(fails[0].message, "client gave up");
  auto errors = corpus().all<ErrorResponse>(s, Direction::kBackend);
  ASSERT_FALSE(errors.empty());
  EXPECT_EQ(errors[0].sqlstate(), "57014");
  auto results = corpus().all<FunctionCallResponse>(s, Direction::kBackend);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].result.data, std::string_view("\0\0\0\x2a", 4));
  auto describes = corpus().all<Describe>(s, Direction::kFrontend);
  ASSERT_GE(describes.size(), 2u);
  EXPECT_EQ(describes[0].target, kTargetStatement);
  EXPECT_EQ(describes[1].target, kTargetPortal);
}

TEST(Captured, Replication) {
  auto both = corpus().all<CopyBothResponse>("replication", Direction::kBackend);
  ASSERT_EQ(both.size(), 1u);
  EXPECT_EQ(both[0].format, 0);
}

TEST(Captured, Authentication) {
  auto md5 = corpus().all<Authentication>("auth_md5", Direction::kBackend);
  ASSERT_GE(md5.size(), 2u);
  EXPECT_EQ(md5[0].code, kAuthMd5Password);
  EXPECT_EQ(md5[0].md5_salt().size(), 4u);
  EXPECT_EQ(md5.back().code, kAuthOk);
  auto pw = corpus().all<PasswordMessage>("auth_md5", Direction::kFrontend);
  ASSERT_EQ(pw.size(), 1u);
  EXPECT_TRUE(pw[0].password.starts_with("md5"));
  EXPECT_EQ(pw[0].password.size(), 35u);

  auto clear = corpus().all<PasswordMessage>("auth_password", Direction::kFrontend);
  ASSERT_EQ(clear.size(), 1u);
  EXPECT_EQ(clear[0].password, "plainpw");

  auto scram = corpus().all<Authentication>("auth_scram", Direction::kBackend);
  ASSERT_EQ(scram.size(), 4u);
  EXPECT_EQ(scram[0].code, kAuthSasl);
  EXPECT_EQ(strings_of(scram[0].sasl_mechanisms()),
            (std::vector<std::string_view>{"SCRAM-SHA-256"}));
  EXPECT_EQ(scram[1].code, kAuthSaslContinue);
  EXPECT_TRUE(scram[1].data.starts_with("r="));
  EXPECT_EQ(scram[2].code, kAuthSaslFinal);
  EXPECT_TRUE(scram[2].data.starts_with("v="));
  EXPECT_EQ(scram[3].code, kAuthOk);
  const auto& fe = corpus().frontend.at("auth_scram");
  ASSERT_GE(fe.size(), 2u);
  SaslInitialResponse first;
  ASSERT_TRUE(decode(fe[0].body, first));
  EXPECT_EQ(first.mechanism, "SCRAM-SHA-256");
  EXPECT_TRUE(first.data.data.starts_with("n,,n=,r="));
  SaslResponse second;
  ASSERT_TRUE(decode(fe[1].body, second));
  EXPECT_TRUE(second.data.starts_with("c=biws,r="));
}

TEST(Captured, SslRequestAnsweredN) {
  // auth_scram ran with sslmode=prefer over TCP: an SSLRequest, answered 'N' (ssl=off).
  testing::Session s = testing::load_session("auth_scram");
  EXPECT_EQ(s.frontend_typed, 8u + read_u32(s.frontend.data() + 8));
  ASSERT_EQ(s.backend_typed, 1u);
  EXPECT_EQ(s.backend[0], 'N');
}

}  // namespace
}  // namespace pgtandem::protocol

namespace {

TEST(SaslWithoutMechanism, RemovesPlusAndKeepsTheRest) {
  using namespace pgtandem::protocol;
  std::string offered;
  const std::string_view both[] = {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"};
  encode_authentication_sasl(offered, both);
  std::string out = "x";
  ASSERT_TRUE(encode_sasl_without_mechanism(out, std::string_view(offered).substr(5),
                                            "SCRAM-SHA-256-PLUS"));
  std::string expected = "x";
  const std::string_view one[] = {"SCRAM-SHA-256"};
  encode_authentication_sasl(expected, one);
  EXPECT_EQ(out, expected);
}

TEST(SaslWithoutMechanism, LeavesOtherMessagesAlone) {
  using namespace pgtandem::protocol;
  std::string offered;
  const std::string_view plain[] = {"SCRAM-SHA-256"};
  encode_authentication_sasl(offered, plain);
  std::string out;
  EXPECT_FALSE(encode_sasl_without_mechanism(out, std::string_view(offered).substr(5),
                                             "SCRAM-SHA-256-PLUS"));
  EXPECT_FALSE(encode_sasl_without_mechanism(out, std::string_view("\0\0\0\0", 4),
                                             "SCRAM-SHA-256-PLUS"));
  EXPECT_FALSE(encode_sasl_without_mechanism(out, "", "SCRAM-SHA-256-PLUS"));
  EXPECT_TRUE(out.empty());
}

}  // namespace

// The mirror journal: JSON-lines format and parser, concurrent appends, reopening, torn last
// lines, fsync policies; and replay's handling of the journal that needs no server (dry run,
// torn tail, order and applied-state checks).
#include "proxy/mirror/journal.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "proxy/mirror/replay.h"
#include "tests/support/messages.h"

namespace pgtandem::proxy {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "pgtandem-journal-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data()) != nullptr ? tmpl : std::string();
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void append_raw(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::app);
  out << bytes;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1)
    lines.push_back(text.substr(start, nl - start));
  return lines;
}

std::string all_bytes() {
  std::string s;
  for (int i = 0; i < 256; ++i) s.push_back(static_cast<char>(i));
  return s;
}

JournalEntry rich_entry() {
  JournalEntry e;
  e.seq = 42;
  e.target = "new";
  e.reason = "connection_lost";
  e.detail = "server closed the connection \"unexpectedly\"\n\tat C:\\path\r\x01\x1f\x7f";
  e.uncertain = true;
  e.session.id = "1714567890123-7";
  e.session.user = "app \"user\"";
  e.session.database = "d\u00e9j\u00e0 vu \u20ac \U0001F600";  // é, à, €, 😀
  e.session.params = {{"application_name", "psql\nline2"},
                      {"options", "-c search_path=a,b"},
                      {"client_encoding", "LATIN1"},
                      {"empty", ""}};
  e.session.state = {test::query("SET search_path = a"), all_bytes(), ""};
  e.session.prepared = {{"s1", std::string("P\0\0\0\x0bs1\0x\0\0\0", 12)},
                        {"weird \"name\"", all_bytes()}};
  e.unit.bytes = all_bytes() + std::string("\0\0\xff\xfe\"\\\n", 7) + all_bytes();
  e.unit.responses = 3;
  e.unit.primary = {{"BEGIN", ""}, {"INSERT 0 1", ""}, {"", "23505"}, {"COMMIT", ""}};
  e.unit.binds = {"s1", "weird \"name\""};
  e.unit.session_state = true;
  e.unit.transaction = true;
  e.unit.nondeterministic = true;
  // Invalid UTF-8 (a character cut by truncation, a Latin-1 byte) must round-trip too.
  e.unit.first_sql = "INSERT INTO t VALUES ('caf\xc3\xa9', '\xe9', '\xe2\x82')";
  return e;
}

void expect_same(const JournalEntry& a, const JournalEntry& b) {
  EXPECT_EQ(a.seq, b.seq);
  EXPECT_EQ(a.target, b.target);
  EXPECT_EQ(a.reason, b.reason);
  EXPECT_EQ(a.detail, b.detail);
  EXPECT_EQ(a.uncertain, b.uncertain);
  EXPECT_EQ(a.session.id, b.session.id);
  EXPECT_EQ(a.session.user, b.session.user);
  EXPECT_EQ(a.session.database, b.session.database);
  EXPECT_EQ(a.session.params, b.session.params);
  EXPECT_EQ(a.session.state, b.session.state);
  EXPECT_EQ(a.session.prepared, b.session.prepared);
  EXPECT_EQ(a.unit.bytes, b.unit.bytes);
  EXPECT_EQ(a.unit.responses, b.unit.responses);
  EXPECT_EQ(a.unit.primary, b.unit.primary);
  EXPECT_EQ(a.unit.binds, b.unit.binds);
  EXPECT_EQ(a.unit.session_state, b.unit.session_state);
  EXPECT_EQ(a.unit.transaction, b.unit.transaction);
  EXPECT_EQ(a.unit.nondeterministic, b.unit.nondeterministic);
  EXPECT_EQ(a.unit.first_sql, b.unit.first_sql);
}

TEST(JournalFormat, RoundTripsEveryField) {
  JournalEntry e = rich_entry();
  std::string line = format_journal_line(e);
  EXPECT_EQ(line.rfind("{\"seq\":42,\"ts\":\"", 0), 0u) << line;
  for (char c : line) {
    ASSERT_FALSE(static_cast<unsigned char>(c) < 0x20) << "raw control character in " << line;
  }
  JournalEntry back;
  std::string error;
  ASSERT_TRUE(parse_journal_line(line, &back, &error)) << error << "\n" << line;
  expect_same(e, back);
  // Formatting the parsed entry again gives the same line except for the timestamp.
  std::string again = format_journal_line(back);
  auto after_ts = [](const std::string& l) { return l.substr(l.find("\"target\"")); };
  EXPECT_EQ(after_ts(line), after_ts(again));
}

TEST(JournalFormat, DefaultEntryRoundTrips) {
  JournalEntry e;
  e.unit.bytes = std::string("S\0\0\0\x04", 5);
  JournalEntry back;
  std::string error;
  ASSERT_TRUE(parse_journal_line(format_journal_line(e), &back, &error)) << error;
  expect_same(e, back);
}

TEST(JournalFormat, TimestampIsUtcIsoWithMilliseconds) {
  std::string line = format_journal_line(rich_entry());
  size_t at = line.find("\"ts\":\"") + 6;
  std::string ts = line.substr(at, line.find('"', at) - at);
  ASSERT_EQ(ts.size(), 24u) << ts;  // 2024-05-01T12:34:56.789Z
  EXPECT_EQ(ts[4], '-');
  EXPECT_EQ(ts[10], 'T');
  EXPECT_EQ(ts[19], '.');
  EXPECT_EQ(ts[23], 'Z');
}

TEST(JournalFormat, ReaderAcceptsStandardEscapesAndWhitespace) {
  std::string line =
      " { \"seq\" : 7 , \"target\" : \"new\" , \"detail\" : "
      "\"\\u00e9\\u20ac\\ud83d\\ude00\\/\\b\\f\" ,"
      " \"unit\" : { \"bytes\" : \"UwAAAAQ=\" , \"responses\" : 1 , \"extra\" : [1, null, {}] } ,"
      " \"future_field\" : { \"x\" : [ ] } } ";
  JournalEntry e;
  std::string error;
  ASSERT_TRUE(parse_journal_line(line, &e, &error)) << error;
  EXPECT_EQ(e.seq, 7u);
  EXPECT_EQ(e.detail, "\u00e9\u20ac\U0001F600/\b\f");
  EXPECT_EQ(e.unit.bytes, std::string("S\0\0\0\x04", 5));
  EXPECT_EQ(e.unit.responses, 1u);
}

TEST(JournalFormat, EveryPrefixOfALineIsRejected) {
  std::string line = format_journal_line(rich_entry());
  JournalEntry e;
  std::string error;
  for (size_t n = 0; n < line.size(); ++n) {
    error.clear();
    EXPECT_FALSE(parse_journal_line(line.substr(0, n), &e, &error)) << "prefix of " << n;
    EXPECT_FALSE(error.empty()) << "prefix of " << n;
  }
}

TEST(JournalFormat, RejectsMalformedLines) {
  const std::string unit = "\"unit\":{\"bytes\":\"UwAAAAQ=\",\"responses\":1}";
  const std::vector<std::string> bad = {
      "",
      "[]",
      "{\"target\":\"new\"," + unit + "}",                               // no seq
      "{\"seq\":1,\"target\":\"new\"}",                                  // no unit
      "{\"seq\":-1,\"target\":\"new\"," + unit + "}",                    // negative
      "{\"seq\":1.5,\"target\":\"new\"," + unit + "}",                   // fraction
      "{\"seq\":01,\"target\":\"new\"," + unit + "}",                    // leading zero
      "{\"seq\":18446744073709551616,\"target\":\"new\"," + unit + "}",  // overflow
      "{\"seq\":\"1\",\"target\":\"new\"," + unit + "}",                 // wrong type
      "{\"seq\":1,\"seq\":2,\"target\":\"new\"," + unit + "}",           // duplicate key
      "{\"seq\":1,\"target\":\"new\",\"unit\":{\"bytes\":\"UwAAAA=\",\"responses\":1}}",  // b64
      "{\"seq\":1,\"target\":\"new\",\"unit\":{\"bytes\":\"UwAA AAQ=\",\"responses\":1}}",
      "{\"seq\":1,\"target\":\"new\",\"unit\":{\"bytes\":\"UwAAAAQ=\",\"responses\":4294967296}}",
      "{\"seq\":1,\"target\":\"n\new\"," + unit + "}",    // raw newline in a string
      "{\"seq\":1,\"target\":\"\\x\"," + unit + "}",      // bad escape
      "{\"seq\":1,\"target\":\"\\ud800\"," + unit + "}",  // lone surrogate
      "{\"seq\":1,\"target\":\"new\"," + unit + "} x",    // trailing data
      "{\"seq\":1,\"target\":\"new\",\"session\":{\"params\":[[\"a\"]]}," + unit + "}",
      "{\"seq\":1,\"target\":\"new\",\"session\":{\"state\":[\"@@@@\"]}," + unit + "}",
      "{\"seq\":1,\"target\":\"new\",\"uncertain\":1," + unit + "}",
      "{\"seq\":1,\"target\":\"new\",\"x\":[[[[[[[[[[[[]]]]]]]]]]]]," + unit + "}",  // depth
  };
  for (const auto& line : bad) {
    JournalEntry e;
    std::string error;
    EXPECT_FALSE(parse_journal_line(line, &e, &error)) << line;
    EXPECT_FALSE(error.empty()) << line;
  }
}

TEST(Journal, CreatesFilePrivateAndAppendsLines) {
  TempDir dir;
  std::string path = dir.file("j.journal");
  std::string error;
  auto j = Journal::open(path, FsyncPolicy::kNever, 100, &error);
  ASSERT_NE(j, nullptr) << error;
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(j->append(rich_entry()), 1u);
  EXPECT_EQ(j->append(rich_entry()), 2u);
  EXPECT_EQ(j->entries_written(), 2u);
  EXPECT_EQ(j->path(), path);
  std::string text = read_all(path);
  EXPECT_EQ(j->bytes(), text.size());
  auto lines = lines_of(text);
  ASSERT_EQ(lines.size(), 2u);
  for (size_t i = 0; i < lines.size(); ++i) {
    JournalEntry e;
    ASSERT_TRUE(parse_journal_line(lines[i], &e, &error)) << error;
    EXPECT_EQ(e.seq, i + 1);
    JournalEntry want = rich_entry();
    want.seq = i + 1;
    expect_same(want, e);
  }
}

TEST(Journal, ConcurrentAppendsGetUniqueIncreasingSeqs) {
  TempDir dir;
  std::string path = dir.file("j.journal");
  std::string error;
  auto j = Journal::open(path, FsyncPolicy::kInterval, 5, &error);
  ASSERT_NE(j, nullptr) << error;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 250;
  std::vector<std::vector<uint64_t>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        JournalEntry e = rich_entry();
        e.session.id = "thread-" + std::to_string(t);
        e.unit.first_sql = std::to_string(i);
        uint64_t seq = j->append(std::move(e));
        got[t].push_back(seq);
      }
    });
  }
  for (auto& t : threads) t.join();
  std::set<uint64_t> all;
  for (const auto& v : got) {
    for (size_t i = 1; i < v.size(); ++i) EXPECT_LT(v[i - 1], v[i]);  // per thread: increasing
    all.insert(v.begin(), v.end());
  }
  EXPECT_EQ(all.size(), size_t{kThreads * kPerThread});
  EXPECT_EQ(*all.begin(), 1u);
  EXPECT_EQ(*all.rbegin(), uint64_t{kThreads * kPerThread});
  EXPECT_EQ(j->entries_written(), uint64_t{kThreads * kPerThread});

  auto lines = lines_of(read_all(path));
  ASSERT_EQ(lines.size(), size_t{kThreads * kPerThread});
  uint64_t prev = 0;
  std::vector<int> next_index(kThreads, 0);
  for (const auto& line : lines) {
    JournalEntry e;
    ASSERT_TRUE(parse_journal_line(line, &e, &error)) << error;
    EXPECT_EQ(e.seq, prev + 1);  // file order is seq order
    prev = e.seq;
    int t = e.session.id.back() - '0';
    EXPECT_EQ(e.unit.first_sql, std::to_string(next_index[t]++));  // per thread: in order
  }
}

TEST(Journal, ReopenContinuesTheSequence) {
  TempDir dir;
  std::string path = dir.file("j.journal");
  std::string error;
  {
    auto j = Journal::open(path, FsyncPolicy::kAlways, 100, &error);
    ASSERT_NE(j, nullptr) << error;
    for (int i = 0; i < 3; ++i) EXPECT_EQ(j->append(rich_entry()), uint64_t(i + 1));
  }
  {
    auto j = Journal::open(path, FsyncPolicy::kAlways, 100, &error);
    ASSERT_NE(j, nullptr) << error;
    EXPECT_EQ(j->bytes(), read_all(path).size());
    EXPECT_EQ(j->append(rich_entry()), 4u);
    EXPECT_EQ(j->entries_written(), 1u);
  }
  EXPECT_EQ(lines_of(read_all(path)).size(), 4u);
}

TEST(Journal, ReopenFindsTheLastSeqBehindALargeLine) {
  // The last line is larger than the tail chunk open() reads at a time.
  TempDir dir;
  std::string path = dir.file("j.journal");
  std::string error;
  {
    auto j = Journal::open(path, FsyncPolicy::kNever, 100, &error);
    ASSERT_NE(j, nullptr) << error;
    JournalEntry big = rich_entry();
    big.unit.bytes = std::string(300 * 1024, 'x');
    EXPECT_EQ(j->append(rich_entry()), 1u);
    EXPECT_EQ(j->append(big), 2u);
  }
  auto j = Journal::open(path, FsyncPolicy::kNever, 100, &error);
  ASSERT_NE(j, nullptr) << error;
  EXPECT_EQ(j->append(rich_entry()), 3u);
}

TEST(Journal, TornLastLineIsCutOffAndKeptAside) {
  TempDir dir;
  std::string path = dir.file("j.journal");
  std::string error;
  {
    auto j = Journal::open(path, FsyncPolicy::kAlways, 100, &error);
    ASSERT_NE(j, nullptr) << error;
    EXPECT_EQ(j->append(rich_entry()), 1u);
    EXPECT_EQ(j->append(rich_entry()), 2u);
  }
  JournalEntry third = rich_entry();
  third.seq = 3;
  std::string line = format_journal_line(third);
  std::string torn = line.substr(0, line.size() / 2);  // a crash mid-append
  append_raw(path, torn);
  {
    auto j = Journal::open(path, FsyncPolicy::kAlways, 100, &error);
    ASSERT_NE(j, nullptr) << error;
    EXPECT_EQ(j->append(rich_entry()), 3u);
  }
  auto lines = lines_of(read_all(path));
  ASSERT_EQ(lines.size(), 3u);
  for (size_t i = 0; i < lines.size(); ++i) {
    JournalEntry e;
    ASSERT_TRUE(parse_journal_line(lines[i], &e, &error)) << i << ": " << error;
    EXPECT_EQ(e.seq, i + 1);
  }
  EXPECT_EQ(read_all(path + ".torn"), torn + "\n");
}

TEST(Journal, FileWithOnlyATornLineStartsAtOne) {
  TempDir dir;
  std::string path = dir.file("j.journal");
  append_raw(path, "{\"seq\":9,\"ts\":\"2024-");
  std::string error;
  auto j = Journal::open(path, FsyncPolicy::kNever, 100, &error);
  ASSERT_NE(j, nullptr) << error;
  EXPECT_EQ(j->bytes(), 0u);
  EXPECT_EQ(j->append(rich_entry()), 1u);
}

TEST(Journal, UnparseableLastLineFallsBackToThePreviousEntry) {
  TempDir dir;
  std::string path = dir.file("j.journal");
  std::string error;
  {
    auto j = Journal::open(path, FsyncPolicy::kNever, 100, &error);
    ASSERT_NE(j, nullptr) << error;
    EXPECT_EQ(j->append(rich_entry()), 1u);
    EXPECT_EQ(j->append(rich_entry()), 2u);
  }
  append_raw(path, "garbage\n\n");
  auto j = Journal::open(path, FsyncPolicy::kNever, 100, &error);
  ASSERT_NE(j, nullptr) << error;
  EXPECT_EQ(j->append(rich_entry()), 3u);
}

TEST(Journal, SecondWriterIsRefused) {
  TempDir dir;
  std::string path = dir.file("j.journal");
  std::string error;
  auto j = Journal::open(path, FsyncPolicy::kNever, 100, &error);
  ASSERT_NE(j, nullptr) << error;
  auto second = Journal::open(path, FsyncPolicy::kNever, 100, &error);
  EXPECT_EQ(second, nullptr);
  EXPECT_NE(error.find("in use"), std::string::npos) << error;
}

TEST(Journal, OpenFailsForAMissingDirectory) {
  std::string error;
  auto j = Journal::open("/nonexistent-dir-pgtandem/j.journal", FsyncPolicy::kNever, 100, &error);
  EXPECT_EQ(j, nullptr);
  EXPECT_NE(error.find("cannot open journal"), std::string::npos) << error;
}

TEST(Journal, EveryFsyncPolicyWritesWholeLines) {
  for (FsyncPolicy policy : {FsyncPolicy::kAlways, FsyncPolicy::kInterval, FsyncPolicy::kNever}) {
    TempDir dir;
    std::string path = dir.file("j.journal");
    std::string error;
    {
      auto j = Journal::open(path, policy, 2, &error);
      ASSERT_NE(j, nullptr) << error;
      std::vector<std::thread> threads;
      for (int t = 0; t < 2; ++t) {
        threads.emplace_back([&] {
          for (int i = 0; i < 20; ++i) {
            EXPECT_GT(j->append(rich_entry()), 0u);
            if (i % 5 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(3));
          }
        });
      }
      for (auto& t : threads) t.join();
    }
    auto lines = lines_of(read_all(path));
    ASSERT_EQ(lines.size(), 40u);
    for (const auto& line : lines) {
      JournalEntry e;
      EXPECT_TRUE(parse_journal_line(line, &e, &error)) << error;
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Replay without a server

config::Config replay_config() {
  config::Config cfg;
  cfg.targets = {{"old", "127.0.0.1", 1, ""}, {"new", "127.0.0.1", 1, ""}};
  cfg.limits.connect_timeout_ms = 2000;
  return cfg;
}

void write_entries(const std::string& path, int n) {
  std::string error;
  auto j = Journal::open(path, FsyncPolicy::kNever, 100, &error);
  ASSERT_NE(j, nullptr) << error;
  for (int i = 0; i < n; ++i) {
    JournalEntry e = rich_entry();
    e.session.state.clear();
    e.session.prepared.clear();
    e.unit.first_sql = "INSERT " + std::to_string(i + 1);
    e.unit.bytes = test::query(e.unit.first_sql);
    e.unit.responses = 1;
    ASSERT_GT(j->append(e), 0u);
  }
}

TEST(ReplayJournal, DryRunListsEntriesAndWritesNothing) {
  TempDir dir;
  std::string path = dir.file("j.journal");
  write_entries(path, 3);
  ReplayOptions opts;
  opts.dry_run = true;
  std::ostringstream report;
  ReplaySummary s;
  EXPECT_EQ(run_replay(replay_config(), path, opts, report, &s), 0) << report.str();
  EXPECT_EQ(s.entries_read, 3u);
  EXPECT_EQ(s.applied, 3u);
  EXPECT_EQ(s.failures, 0u);
  EXPECT_NE(report.str().find("would apply: seq=2 target=new"), std::string::npos) << report.str();
  EXPECT_NE(report.str().find("to apply:                       3"), std::string::npos)
      << report.str();
  EXPECT_FALSE(fs::exists(applied_state_path(path)));
}

TEST(ReplayJournal, TornLastLineIsReportedAndNotApplied) {
  TempDir dir;
  std::string path = dir.file("j.journal");
  write_entries(path, 2);
  append_raw(path, "{\"seq\":3,\"ts\":");
  ReplayOptions opts;
  opts.dry_run = true;
  std::ostringstream report;
  ReplaySummary s;
  EXPECT_EQ(run_replay(replay_config(), path, opts, report, &s), 2) << report.str();
  EXPECT_TRUE(s.torn_tail);
  EXPECT_EQ(s.applied, 2u);
  EXPECT_NE(report.str().find("torn last line: line 3"), std::string::npos) << report.str();
}

TEST(ReplayJournal, MalformedLineInTheMiddleStopsReplay) {
  TempDir dir;
  std::string path = dir.file("j.journal");
  write_entries(path, 1);
  append_raw(path, "not json\n");
  ReplayOptions opts;
  opts.dry_run = true;
  std::ostringstream report;
  ReplaySummary s;
  EXPECT_EQ(run_replay(replay_config(), path, opts, report, &s), 1) << report.str();
  EXPECT_EQ(s.applied, 1u);
  EXPECT_NE(report.str().find("failure: line 2 is malformed"), std::string::npos) << report.str();
}

TEST(ReplayJournal, OutOfOrderSeqStopsReplay) {
  TempDir dir;
  std::string path = dir.file("j.journal");
  write_entries(path, 2);
  JournalEntry e = rich_entry();
  e.seq = 1;
  append_raw(path, format_journal_line(e) + "\n");
  ReplayOptions opts;
  opts.dry_run = true;
  std::ostringstream report;
  EXPECT_EQ(run_replay(replay_config(), path, opts, report), 1) << report.str();
  EXPECT_NE(report.str().find("seq 1 does not follow seq 2"), std::string::npos) << report.str();
}

TEST(ReplayJournal, AppliedStateOfAnotherJournalIsRefused) {
  TempDir dir;
  std::string path = dir.file("j.journal");
  write_entries(path, 3);
  append_raw(applied_state_path(path),
             "pgtandem replay applied-state v1\nseq 2\nfingerprint 0123456789abcdef\n");
  ReplayOptions opts;
  opts.dry_run = true;
  std::ostringstream report;
  ReplaySummary s;
  EXPECT_EQ(run_replay(replay_config(), path, opts, report, &s), 1) << report.str();
  EXPECT_EQ(s.applied, 0u);
  EXPECT_NE(report.str().find("not the entry with that seq"), std::string::npos) << report.str();

  // A record beyond the end of a (replaced, shorter) journal is refused too.
  fs::remove(applied_state_path(path));
  append_raw(applied_state_path(path),
             "pgtandem replay applied-state v1\nseq 10\nfingerprint 0123456789abcdef\n");
  std::ostringstream report2;
  EXPECT_EQ(run_replay(replay_config(), path, opts, report2, &s), 1) << report2.str();

  fs::remove(applied_state_path(path));
  append_raw(applied_state_path(path), "something else\n");
  std::ostringstream report3;
  EXPECT_EQ(run_replay(replay_config(), path, opts, report3, &s), 1) << report3.str();
  EXPECT_NE(report3.str().find("is not a pgtandem replay applied-state file"), std::string::npos)
      << report3.str();
}

TEST(ReplayJournal, UnreachableTargetFailsWithoutRecording) {
  TempDir dir;
  std::string path = dir.file("j.journal");
  write_entries(path, 2);
  std::ostringstream report;
  ReplaySummary s;
  EXPECT_EQ(run_replay(replay_config(), path, ReplayOptions{}, report, &s), 1) << report.str();
  EXPECT_EQ(s.applied, 0u);
  EXPECT_EQ(s.failures, 1u);
  EXPECT_EQ(s.not_attempted, 1u);
  EXPECT_NE(report.str().find("failure: seq=1 target=new"), std::string::npos) << report.str();
  EXPECT_NE(report.str().find("cannot connect"), std::string::npos) << report.str();
  EXPECT_FALSE(fs::exists(applied_state_path(path)));
}

TEST(ReplayJournal, MissingJournalIsAFailure) {
  TempDir dir;
  std::ostringstream report;
  EXPECT_EQ(run_replay(replay_config(), dir.file("none"), ReplayOptions{}, report), 1);
  EXPECT_NE(report.str().find("cannot open journal"), std::string::npos) << report.str();
}

}  // namespace
}  // namespace pgtandem::proxy

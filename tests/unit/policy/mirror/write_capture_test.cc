// WriteCapture driven by the message sequences real clients send (psql, libpq, pgbench in its
// three modes, JDBC) and by what the primary answers, asserting exactly which MirrorUnits come
// out: their bytes, expected ReadyForQuery count, the primary's outcomes, flags and counters.
// The table of cases lives in write_capture_{simple,extended,copy}_test.cc, randomized sequences
// in write_capture_random_test.cc, shared machinery in write_capture_support.h.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "policy/mirror/mirror_batch.h"
#include "tests/unit/policy/mirror/write_capture_support.h"

namespace pgtandem::policy::capture_test {

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

// The request ends a unit records (MirrorUnit::sync_ends) let the mirror's batch join it without
// reading its messages: each end follows a Sync, the messages before are extended-protocol ones,
// and the batch takes or refuses the unit exactly as it does reading the messages (the unit
// without its ends), alone and behind itself.
TEST_P(WriteCaptureSequence, RecordedSyncEndsJoinAsTheMessagesDo) {
  const Case& c = GetParam();
  Driver d;
  d.run(c.steps);
  if (HasFatalFailure()) return;
  for (size_t i = 0; i < d.units.size(); ++i) {
    SCOPED_TRACE("unit " + std::to_string(i) + ": " + render(d.units[i].bytes));
    const MirrorUnit& recorded = d.units[i];
    if (!recorded.sync_ends.empty()) {
      EXPECT_EQ(recorded.sync_ends.size(), recorded.responses);
      std::vector<Message> messages;
      ASSERT_TRUE(split(recorded.bytes, proto::Direction::kFrontend, &messages));
      size_t at = 0;
      size_t next_end = 0;
      for (const auto& m : messages) {
        at += m.whole.size();
        const bool ends_request =
            next_end < recorded.sync_ends.size() && at == recorded.sync_ends[next_end];
        EXPECT_EQ(m.header.type == proto::frontend::kSync, ends_request) << "at byte " << at;
        EXPECT_NE(std::string_view("PBDECHS").find(m.header.type), std::string_view::npos)
            << "message " << m.header.type;
        if (ends_request) ++next_end;
      }
      EXPECT_EQ(next_end, recorded.sync_ends.size());
    }
    MirrorUnit walked = recorded;
    walked.sync_ends.clear();
    for (int copies : {1, 2}) {
      TransactionBatch fast;
      TransactionBatch slow;
      bool fast_took = true;
      bool slow_took = true;
      for (int k = 0; k < copies; ++k) {
        fast_took = fast.add(recorded) && fast_took;
        slow_took = slow.add(walked) && slow_took;
      }
      EXPECT_EQ(fast_took, slow_took) << copies << " copies";
      EXPECT_EQ(fast.units(), slow.units());
      EXPECT_EQ(fast.kind(), slow.kind());
      EXPECT_EQ(render(fast.request()), render(slow.request()));
      EXPECT_EQ(fast.request(), slow.request());
    }
  }
}

// pgbench -M prepared's TPC-B transaction: its unit records where each of its six mirrored
// requests ends (the SELECT is a read, left out), and joins the batch by them.
TEST(WriteCapture, APreparedTransactionRecordsItsRequestEnds) {
  Driver d;
  std::vector<Step> steps;
  for (size_t i = 0; i < std::size(kTpcb); ++i) {
    steps = steps + exchange(prepare("P0_" + std::to_string(i), kTpcb[i]), prepare_done('I'));
  }
  const char* tags[] = {"BEGIN", "UPDATE 1", "SELECT 1", "UPDATE 1", "UPDATE 1", "INSERT 0 1",
                        "COMMIT"};
  for (size_t i = 0; i < std::size(kTpcb); ++i) {
    const char status = i + 1 == std::size(kTpcb) ? 'I' : 'T';
    const std::string name = "P0_" + std::to_string(i);
    steps = steps + exchange(query_prepared(name, {"1", "2"}),
                             i == 2 ? prepared_rows("5", status) : prepared_done(tags[i], status));
  }
  d.run(steps);
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_FALSE(d.units.empty());
  const MirrorUnit& u = d.units.back();
  ASSERT_EQ(u.responses, 6u);
  ASSERT_EQ(u.sync_ends.size(), 6u);
  EXPECT_EQ(u.sync_ends.back(), u.bytes.size());
  TransactionBatch batch;
  ASSERT_TRUE(batch.add(u));
  std::vector<Message> joined;
  ASSERT_TRUE(split(batch.request(), proto::Direction::kFrontend, &joined));
  size_t syncs = 0;
  for (const auto& m : joined) syncs += m.header.type == proto::frontend::kSync ? 1 : 0;
  EXPECT_EQ(syncs, 1u);
  EXPECT_EQ(batch.request().size(), u.bytes.size() - 5 * 5);  // five Syncs of 5 bytes left out

  // A recorded end that does not follow a Sync (it cannot come from the capture) is not trusted:
  // the batch reads the messages instead, and refuses nothing it would take.
  MirrorUnit shifted = u;
  shifted.sync_ends[2] -= 1;
  TransactionBatch read;
  ASSERT_TRUE(read.add(shifted));
  EXPECT_EQ(read.request(), batch.request());
}

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

// The commit order rests on lone COMMITs (policy/mirror/mirror_order.h): forwarded() tells the
// session when one is on its way, and the unit says whether it ended with one.
// Feeds one request, says it is forwarded (returns what forwarded() said), then its answer.
bool feed_request(WriteCapture& w, const std::string& front, const std::string& back) {
  std::vector<Message> f, b;
  EXPECT_TRUE(split(front, proto::Direction::kFrontend, &f));
  EXPECT_TRUE(split(back, proto::Direction::kBackend, &b));
  for (const auto& m : f) w.on_frontend(m.header, m.whole);
  const bool lone = w.forwarded();
  for (const auto& m : b) w.on_backend(m.header, m.body, kNow);
  return lone;
}

TEST(WriteCapture, LoneCommitsAreToldAtTheirForwardAndMarkedOnTheirUnit) {
  WriteCapture w({});
  auto request = [&](const std::string& front, const std::string& back) {
    return feed_request(w, front, back);
  };
  EXPECT_FALSE(request(query("BEGIN"), done("BEGIN", 'T')));
  EXPECT_FALSE(request(query(kInsert), done("INSERT 0 1", 'T')));
  EXPECT_TRUE(request(query("COMMIT"), done("COMMIT", 'I')));
  EXPECT_FALSE(request(query(kInsert), done("INSERT 0 1", 'I')));  // autocommit
  EXPECT_FALSE(request(query("BEGIN; " + std::string(kInsert) + "; COMMIT"),
                       command_complete("BEGIN") + command_complete("INSERT 0 1") +
                           done("COMMIT", 'I')));
  EXPECT_FALSE(request(query("BEGIN"), done("BEGIN", 'T')));
  EXPECT_FALSE(request(query(std::string(kInsert) + "; COMMIT"),
                       command_complete("INSERT 0 1") + done("COMMIT", 'I')));
  EXPECT_FALSE(request(query("BEGIN"), done("BEGIN", 'T')));
  EXPECT_FALSE(request(query("ROLLBACK"), done("ROLLBACK", 'I')));  // not a COMMIT
  EXPECT_FALSE(request(query("COMMIT"), done("COMMIT", 'I')));  // no transaction open
  auto units = w.take();
  ASSERT_EQ(units.size(), 5u);
  EXPECT_TRUE(units[0].lone_commit);
  EXPECT_FALSE(units[1].lone_commit);
  EXPECT_FALSE(units[2].lone_commit);  // the write and the COMMIT in one request
  EXPECT_FALSE(units[3].lone_commit);
  EXPECT_FALSE(units[4].lone_commit);  // the stray COMMIT: released, but it writes nothing
  EXPECT_FALSE(units[4].writes);
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

// Units given back (the mirror link's, for their buffers) are filled again by the next releases:
// with the same buffers, and with nothing else of what they carried.
TEST(WriteCapture, UnitsGivenBackAreReusedWithNothingOfTheirPast) {
  WriteCapture w({});
  auto request = [&](const std::string& front, const std::string& back) {
    feed_request(w, front, back);
  };
  const std::string long_insert = std::string(kInsert) + " -- " + std::string(400, 'x');
  request(query("BEGIN"), done("BEGIN", 'T'));
  request(query(long_insert), done("INSERT 0 1", 'T'));
  request(query("COMMIT"), done("COMMIT", 'I'));
  std::vector<MirrorUnit> units = w.take();
  ASSERT_EQ(units.size(), 1u);
  EXPECT_TRUE(units[0].transaction);
  EXPECT_TRUE(units[0].writes);
  EXPECT_TRUE(units[0].lone_commit);
  // What the proxy sets on a unit, and what the link leaves in it.
  units[0].seq = 7;
  units[0].after = 6;
  units[0].forward_mark = 5;
  units[0].nondeterministic = true;
  units[0].binds.push_back("s1");
  const char* buffer = units[0].bytes.data();
  w.give_back(units);
  EXPECT_TRUE(units.empty());

  request(query("SET search_path = public"), done("SET", 'I'));
  std::vector<MirrorUnit> again = w.take();
  ASSERT_EQ(again.size(), 1u);
  const MirrorUnit& u = again[0];
  EXPECT_EQ(u.bytes.data(), buffer);  // the same buffer, filled again
  EXPECT_EQ(u.bytes, query("SET search_path = public"));
  EXPECT_EQ(u.responses, 1u);
  ASSERT_EQ(u.primary.size(), 1u);
  EXPECT_EQ(u.primary[0].tag, "SET");
  EXPECT_TRUE(u.binds.empty());
  EXPECT_TRUE(u.session_state);
  EXPECT_FALSE(u.transaction);
  EXPECT_FALSE(u.writes);
  EXPECT_FALSE(u.nondeterministic);
  EXPECT_FALSE(u.lone_commit);
  EXPECT_EQ(u.seq, 0u);
  EXPECT_EQ(u.after, 0u);
  EXPECT_EQ(u.forward_mark, 0u);
  EXPECT_EQ(u.first_sql, "SET search_path = public");

  // At most kSpareUnits are kept; the rest are freed.
  std::vector<MirrorUnit> many(WriteCapture::kSpareUnits + 5);
  for (auto& m : many) m.bytes.assign(100, 'q');
  w.give_back(many);
  EXPECT_TRUE(many.empty());
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
  // Cached at its second sighting (the doorkeeper, classifier_cache.h), found at the third.
  d.run(exchange(query(kInsert), done("INSERT 0 1", 'I')) +
        exchange(query(kInsert), done("INSERT 0 1", 'I')) +
        exchange(query(kInsert), done("INSERT 0 1", 'I')));
  EXPECT_EQ(d.units.size(), 3u);
  EXPECT_GE(cache.hits(), 1u);
}

}  // namespace pgtandem::policy::capture_test

// AnswerMatch: the mirror target's answers read as they arrive, compared with the primary's.
#include "policy/mirror/answer_match.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "tests/support/messages.h"

namespace pgtandem::policy {
namespace {

using test::bind_complete;
using test::command_complete;
using test::data_row;
using test::error_response;
using test::ready;
using Step = AnswerMatch::Step;

Outcome ok(std::string tag) { return Outcome{std::move(tag), {}}; }
Outcome error(std::string sqlstate) { return Outcome{{}, std::move(sqlstate)}; }

MirrorUnit unit(std::vector<Outcome> primary) {
  MirrorUnit u;
  u.primary = std::move(primary);
  return u;
}

// What a read of the whole answer gives: the step, the bytes used, the answers written.
struct Read {
  Step step;
  size_t used;
  std::vector<Outcome> out;
  bool all_matched;
  size_t matched;
  char status;
};

Read read_whole(std::string_view bytes, uint32_t responses, const std::vector<MirrorUnit>* units) {
  AnswerMatch m{protocol::Limits{}};
  Read r{};
  m.start(responses, units, &r.out);
  r.step = m.feed(bytes, &r.used);
  r.all_matched = m.all_matched();
  r.matched = m.matched();
  r.status = m.status();
  return r;
}

// The same answer fed in pieces as a socket delivers them: the caller keeps what was not used and
// appends the next piece (cuts: where each piece ends).
Read read_in_pieces(std::string_view bytes, uint32_t responses,
                    const std::vector<MirrorUnit>* units, const std::vector<size_t>& cuts) {
  AnswerMatch m{protocol::Limits{}};
  Read r{};
  m.start(responses, units, &r.out);
  std::string buffer;
  size_t at = 0;
  size_t consumed = 0;
  r.step = Step::kMore;
  for (size_t i = 0; i <= cuts.size() && r.step == Step::kMore; ++i) {
    const size_t end = i < cuts.size() ? cuts[i] : bytes.size();
    buffer.append(bytes.substr(at, end - at));
    at = end;
    size_t used = 0;
    r.step = m.feed(buffer, &used);
    consumed += used;
    buffer.erase(0, used);
  }
  r.used = consumed;
  r.all_matched = m.all_matched();
  r.matched = m.matched();
  r.status = m.status();
  return r;
}

TEST(AnswerMatch, AnswersEqualToThePrimarysBuildNothing) {
  const std::vector<MirrorUnit> units = {unit({ok("BEGIN"), ok("UPDATE 1")}),
                                         unit({ok("INSERT 0 1"), ok("COMMIT")})};
  const std::string answers = bind_complete() + command_complete("BEGIN") + bind_complete() +
                              command_complete("UPDATE 1") + data_row("7") +
                              command_complete("INSERT 0 1") + command_complete("COMMIT") +
                              ready('I');
  const std::string after = ready('I');  // a later request's: not this one's
  const Read r = read_whole(answers + after, 1, &units);
  EXPECT_EQ(r.step, Step::kDone);
  EXPECT_EQ(r.used, answers.size());
  EXPECT_TRUE(r.all_matched);
  EXPECT_EQ(r.matched, 4u);
  EXPECT_TRUE(r.out.empty());
  EXPECT_EQ(r.status, 'I');
}

TEST(AnswerMatch, AFirstDifferenceWritesTheMatchedAnswersThenEveryLaterOne) {
  const std::vector<MirrorUnit> units = {unit({ok("BEGIN"), ok("UPDATE 1"), ok("COMMIT")})};
  const std::string answers = command_complete("BEGIN") + command_complete("UPDATE 0") +
                              command_complete("COMMIT") + ready('I');
  const Read r = read_whole(answers, 1, &units);
  EXPECT_EQ(r.step, Step::kDone);
  EXPECT_FALSE(r.all_matched);
  EXPECT_EQ(r.out, (std::vector<Outcome>{ok("BEGIN"), ok("UPDATE 0"), ok("COMMIT")}));
}

TEST(AnswerMatch, ErrorsMatchByTheirSqlstateAndDifferFromATag) {
  const std::vector<MirrorUnit> units = {unit({ok("BEGIN"), error("23505")})};
  const Read same = read_whole(command_complete("BEGIN") + error_response("23505") + ready('E'),
                               1, &units);
  EXPECT_TRUE(same.all_matched);
  EXPECT_EQ(same.matched, 2u);
  EXPECT_EQ(same.status, 'E');

  const Read other = read_whole(command_complete("BEGIN") + error_response("40001") + ready('E'),
                                1, &units);
  EXPECT_FALSE(other.all_matched);
  EXPECT_EQ(other.out, (std::vector<Outcome>{ok("BEGIN"), error("40001")}));

  // A tag where the primary had an error, and an error where it had a tag.
  const std::vector<MirrorUnit> tag_first = {unit({ok("UPDATE 1")})};
  EXPECT_EQ(read_whole(error_response("23505") + ready('I'), 1, &tag_first).out,
            std::vector<Outcome>{error("23505")});
  EXPECT_EQ(read_whole(command_complete("") + ready('I'), 1, &units).out,
            std::vector<Outcome>{ok("")});
}

TEST(AnswerMatch, MoreAnswersThanThePrimaryHadAreWritten) {
  const std::vector<MirrorUnit> units = {unit({ok("UPDATE 1")})};
  const Read r =
      read_whole(command_complete("UPDATE 1") + command_complete("UPDATE 2") + ready('I'), 1,
                 &units);
  EXPECT_FALSE(r.all_matched);
  EXPECT_EQ(r.out, (std::vector<Outcome>{ok("UPDATE 1"), ok("UPDATE 2")}));
}

TEST(AnswerMatch, FewerAnswersMatchAsFarAsTheyGo) {
  // The target skipped the rest after an error the primary also had: the caller compares counts.
  const std::vector<MirrorUnit> units = {unit({error("22012"), ok("COMMIT")})};
  const Read r = read_whole(error_response("22012") + ready('E'), 1, &units);
  EXPECT_TRUE(r.all_matched);
  EXPECT_EQ(r.matched, 1u);
}

TEST(AnswerMatch, WithoutUnitsEveryAnswerIsWritten) {
  const Read r = read_whole(command_complete("SET") + error_response("42P01") + ready('I') +
                                command_complete("DEALLOCATE") + ready('T'),
                            2, nullptr);
  EXPECT_EQ(r.step, Step::kDone);
  EXPECT_FALSE(r.all_matched);
  EXPECT_EQ(r.out, (std::vector<Outcome>{ok("SET"), error("42P01"), ok("DEALLOCATE")}));
  EXPECT_EQ(r.status, 'T');
}

TEST(AnswerMatch, AnErrorWithoutASqlstateCountsAsXX000) {
  std::string no_code;
  protocol::encode_fields(no_code, 'E', std::vector<protocol::Field>{{'M', "no code"}});
  const Read r = read_whole(no_code + ready('I'), 1, nullptr);
  EXPECT_EQ(r.out, std::vector<Outcome>{error("XX000")});
}

TEST(AnswerMatch, TagsOfEveryLengthCompareExactly) {
  // Short, 8 to 16 bytes, and longer: one byte off anywhere is a difference.
  for (size_t n = 0; n <= 40; ++n) {
    std::string tag;
    for (size_t i = 0; i < n; ++i) tag += static_cast<char>('A' + i % 26);
    const std::vector<MirrorUnit> units = {unit({ok(tag)})};
    EXPECT_TRUE(read_whole(command_complete(tag) + ready('I'), 1, &units).all_matched) << n;
    for (size_t i = 0; i < n; ++i) {
      std::string other = tag;
      other[i] = 'z';
      const Read r = read_whole(command_complete(other) + ready('I'), 1, &units);
      EXPECT_FALSE(r.all_matched) << n << " " << i;
      EXPECT_EQ(r.out, std::vector<Outcome>{ok(other)});
    }
    const Read longer = read_whole(command_complete(tag + "1") + ready('I'), 1, &units);
    EXPECT_FALSE(longer.all_matched) << n;
  }
}

TEST(AnswerMatch, ATagWithANulInsideIsNoTag) {
  // What the primary's capture could not have recorded: ignored, as the decode ignores it.
  std::string body = "UPDATE 1";
  body += '\0';
  body += "x";
  body += '\0';
  std::string bad = "C";
  protocol::put_u32(bad, static_cast<uint32_t>(4 + body.size()));
  bad += body;
  const std::vector<MirrorUnit> units = {unit({ok("UPDATE 1")})};
  const Read r = read_whole(bad + command_complete("UPDATE 1") + ready('I'), 1, &units);
  EXPECT_TRUE(r.all_matched);
  EXPECT_EQ(r.matched, 1u);
}

TEST(AnswerMatch, BrokenFramingIsInvalid) {
  std::string bad = command_complete("BEGIN");
  bad += "\x01\x00\x00\x00\x05";  // a type byte no server sends
  const Read r = read_whole(bad, 1, nullptr);
  EXPECT_EQ(r.step, Step::kInvalid);
  EXPECT_EQ(r.used, command_complete("BEGIN").size());

  std::string short_length = "C";
  protocol::put_u32(short_length, 3);
  EXPECT_EQ(read_whole(short_length, 1, nullptr).step, Step::kInvalid);
}

TEST(AnswerMatch, NothingToReadWhenNoAnswerIsDue) {
  const Read r = read_whole(ready('I'), 0, nullptr);
  EXPECT_EQ(r.step, Step::kDone);
  EXPECT_EQ(r.used, 0u);
}

TEST(AnswerMatch, ALargeRowIsSkippedAsItArrivesAndALargeErrorCountsAsXX000) {
  const std::string big(3 * AnswerMatch::kKeepLimit, 'x');
  std::string big_error;
  protocol::encode_error_response(big_error, protocol::Severity::kError, "23505", big);
  const std::vector<MirrorUnit> units = {unit({ok("SELECT 1"), error("XX000")})};
  const std::string answers =
      data_row(big) + command_complete("SELECT 1") + big_error + ready('E');
  // Fed in pieces smaller than the large messages (as the link's 16 KiB reads deliver them).
  std::vector<size_t> cuts;
  for (size_t at = 4096; at < answers.size(); at += 4096) cuts.push_back(at);
  const Read r = read_in_pieces(answers, 1, &units, cuts);
  EXPECT_EQ(r.step, Step::kDone);
  EXPECT_EQ(r.used, answers.size());
  EXPECT_TRUE(r.all_matched);
  EXPECT_EQ(r.matched, 2u);
}

TEST(AnswerMatch, AnyCutOfTheBytesReadsTheSameAsTheWhole) {
  // Random answers (matching, differing, errors, rows) cut at random places: every piece
  // boundary inside a header or a body is resumed exactly.
  std::mt19937 rng(20261207);
  const std::vector<std::string> tags = {"BEGIN", "UPDATE 1", "UPDATE 10", "INSERT 0 1", "COMMIT",
                                         "SELECT 123456789", "CREATE TEXT SEARCH CONFIGURATION"};
  for (int round = 0; round < 2000; ++round) {
    std::vector<MirrorUnit> units(1 + rng() % 3);
    std::string answers;
    const uint32_t responses = 1 + rng() % 3;
    for (uint32_t z = 0; z < responses; ++z) {
      const int statements = static_cast<int>(rng() % 4);
      for (int s = 0; s < statements; ++s) {
        auto& primary = units[rng() % units.size()].primary;
        const bool err = rng() % 5 == 0;
        const std::string tag = tags[rng() % tags.size()];
        if (rng() % 3 == 0) answers += bind_complete();
        if (rng() % 4 == 0) answers += data_row(std::string(rng() % 40, 'r'));
        if (err) {
          answers += error_response(rng() % 2 ? "23505" : "40001");
          primary.push_back(error(rng() % 4 ? "23505" : "40001"));
        } else {
          answers += command_complete(tag);
          primary.push_back(ok(rng() % 8 ? tag : tags[rng() % tags.size()]));
        }
      }
      answers += ready(z + 1 == responses ? 'I' : 'T');
    }
    const Read whole = read_whole(answers, responses, &units);
    std::vector<size_t> cuts;
    for (size_t at = 0; at < answers.size();) {
      at += 1 + rng() % 12;
      if (at < answers.size()) cuts.push_back(at);
    }
    const Read pieces = read_in_pieces(answers, responses, &units, cuts);
    ASSERT_EQ(whole.step, Step::kDone);
    ASSERT_EQ(pieces.step, Step::kDone);
    EXPECT_EQ(pieces.used, whole.used);
    EXPECT_EQ(pieces.out, whole.out);
    EXPECT_EQ(pieces.all_matched, whole.all_matched);
    EXPECT_EQ(pieces.matched, whole.matched);
    EXPECT_EQ(pieces.status, whole.status);
  }
}

TEST(AnswerMatch, WriteMatchedGivesTheAnswersReadBeforeABreak) {
  const std::vector<MirrorUnit> units = {unit({ok("BEGIN"), ok("UPDATE 1")}),
                                         unit({ok("COMMIT")})};
  AnswerMatch m{protocol::Limits{}};
  std::vector<Outcome> out = {ok("stale")};
  m.start(1, &units, &out);
  EXPECT_TRUE(out.empty());
  size_t used = 0;
  const std::string part = command_complete("BEGIN") + command_complete("UPDATE 1");
  EXPECT_EQ(m.feed(part, &used), Step::kMore);
  EXPECT_EQ(used, part.size());
  EXPECT_TRUE(out.empty());
  m.write_matched();
  EXPECT_EQ(out, (std::vector<Outcome>{ok("BEGIN"), ok("UPDATE 1")}));
  m.write_matched();  // once
  EXPECT_EQ(out.size(), 2u);
}

}  // namespace
}  // namespace pgtandem::policy

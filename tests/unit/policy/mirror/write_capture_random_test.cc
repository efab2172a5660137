// WriteCapture, randomized: sequences of valid requests and a model of the server's answers, and
// arbitrary whole messages.
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "tests/unit/policy/mirror/write_capture_support.h"

namespace pgtandem::policy::capture_test {

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
        ok ? command_complete("INSERT 0 1") : error_response(status == 'E' ? "25P02" : "23505");
    wrote(m, ok);
    if (!ok) status = after_error();
    return answer(query("INSERT INTO t (a) VALUES ('" + m + "')"), backend);
  }
  Request simple_read() {
    return answer(
        query("SELECT a FROM t"),
        status == 'E' ? error_response("25P02") : row_description("a") + command_complete("SELECT 0"));
  }
  Request begin() {
    std::string backend;
    if (status == 'E') {
      backend = error_response("25P02");
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
      backend = error_response(status == 'E' ? "25P02" : "25P01");
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
      backend = error_response(status == 'I' ? "25P01" : "3B001");
      status = after_error();
    }
    return answer(query("ROLLBACK TO SAVEPOINT s"), backend);
  }
  Request commit_and_chain() {
    std::string backend;
    if (status == 'I') {
      backend = error_response("25P01");
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
      backend = error_response("25P02");
      wrote(m, false);
    } else {
      backend = (status == 'T' ? warning("25001") : std::string()) + command_complete("BEGIN") +
                command_complete("INSERT 0 1") + command_complete("COMMIT") + error_response("42P01");
      status = 'T';
      wrote(m, true);
      end_transaction(true);
      status = 'I';
    }
    return answer(query(sql), backend);
  }
  Request set_command() {
    return answer(query("SET search_path TO s" + std::to_string(rng_() % 5)),
                  status == 'E' ? error_response("25P02") : command_complete("SET"));
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
      r.backend = error_response("25P02");
      wrote(m, false);
    } else {
      if (parses) {
        r.backend += parse_complete();
        if (named_sql) statements_.push_back(parse_name);
      }
      const bool ok = !fails();
      r.backend += bind_complete() + (ok ? command_complete("INSERT 0 1") : error_response("23505"));
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
    std::string backend = error_response("25P02");
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
                  status == 'E' ? error_response("25P02")
                                : parse_complete() + bind_complete() + row_description("a") +
                                      command_complete("SELECT 0"));
  }
  Request fastpath() {
    const std::string m = marker();
    const bool ok = status != 'E' && !fails();
    std::string backend =
        ok ? function_call_response("1") : error_response(status == 'E' ? "25P02" : "42704");
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
      r.backend = error_response("25P02") + ready('E');  // refused: the client sends no data
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
    r.backend_after = ok ? command_complete("COPY 1") : error_response("57014");
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

}  // namespace pgtandem::policy::capture_test

// The mirror's policy work per mirrored TPC-B transaction, without sockets or threads: what the
// session's worker does for it (WriteCapture reading every message both ways, releasing the
// committed transaction as a unit, taking its buffers back) and what the link's thread does before
// sending it (TransactionBatch joining the unit into one request). bench/mirror-instructions.sh
// measures the same work end to end, with the relay, Asio and the link's I/O around it, and a run
// to run spread of a few hundred instructions per transaction; this one is exact enough to measure
// a change of the capture alone:
//
//   valgrind --tool=callgrind build-rel/bench/pgtandem_micro_bench
//     --benchmark_filter=BM_CaptureTpcbPrepared --benchmark_min_time=0.02  (one line)
//   (instructions per transaction: in `callgrind_annotate --inclusive=yes --tree=caller`, run()'s
//   caller line from the benchmark's loop: its count divided by its calls)
#include <benchmark/benchmark.h>

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "policy/mirror/answer_match.h"
#include "policy/mirror/mirror_batch.h"
#include "policy/mirror/write_capture.h"
#include "policy/sql/classifier_cache.h"
#include "protocol/framing.h"
#include "tests/support/messages.h"
#include "tests/support/pgbench.h"

namespace {

using namespace pgtandem;        // NOLINT
using namespace pgtandem::test;  // NOLINT: the message builders

constexpr int kCount = static_cast<int>(std::size(kTpcb));  // tests/support/pgbench.h

// The same transaction as -M simple sends it: the parameters written into the text.
std::string simple_text(int i, int n) {
  const std::string a = std::to_string(1 + n % 100000), d = std::to_string(n % 5000 - 2500);
  switch (i) {
    case 0: return "BEGIN;";
    case 1:
      return "UPDATE pgbench_accounts SET abalance = abalance + " + d + " WHERE aid = " + a + ";";
    case 2: return "SELECT abalance FROM pgbench_accounts WHERE aid = " + a + ";";
    case 3: return "UPDATE pgbench_tellers SET tbalance = tbalance + " + d + " WHERE tid = 3;";
    case 4: return "UPDATE pgbench_branches SET bbalance = bbalance + " + d + " WHERE bid = 1;";
    case 5:
      return "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (3, 1, " + a + ", " +
             d + ", CURRENT_TIMESTAMP);";
    default: return "END;";
  }
}

struct Message {
  protocol::Header header;
  std::string_view whole;
  std::string_view body;
};

// Whole messages of `bytes` (which must outlive them).
std::vector<Message> split(std::string_view bytes, protocol::Direction dir) {
  std::vector<Message> out;
  while (!bytes.empty()) {
    auto h = protocol::decode_header(bytes, dir, protocol::Limits{});
    out.push_back({h.header, bytes.substr(0, h.header.frame_size()),
                   bytes.substr(protocol::kHeaderSize, h.header.body_size())});
    bytes.remove_prefix(h.header.frame_size());
  }
  return out;
}

// One transaction's requests and answers, as the session sees them: a request is forwarded, then
// its answer read.
struct Transaction {
  std::vector<std::string> requests;
  std::vector<std::string> answers;
  std::vector<std::vector<Message>> fe;
  std::vector<std::vector<Message>> be;
  void index() {
    for (const auto& r : requests) fe.push_back(split(r, protocol::Direction::kFrontend));
    for (const auto& a : answers) be.push_back(split(a, protocol::Direction::kBackend));
  }
};

std::string answer(int i, bool prepared) {
  const char status = i == kCount - 1 ? 'I' : 'T';
  std::string out = prepared ? bind_complete() : std::string();
  if (i == 2) out += (prepared ? std::string() : row_description("abalance")) + data_row("0");
  return out + command_complete(kTpcbTags[i]) + ready(status);
}

Transaction prepared_transaction() {
  Transaction t;
  for (int i = 0; i < kCount; ++i) {
    const std::string name = "P_" + std::to_string(i);
    std::string r;
    if (i == 0 || i == kCount - 1) {
      r = bind_msg("", name);
    } else if (i == 2) {
      r = bind_msg("", name, {"12345"});
    } else if (i == 5) {
      r = bind_msg("", name, {"3", "1", "12345", "-417"});
    } else {
      r = bind_msg("", name, {"-417", "12345"});
    }
    r += execute() + sync_msg();
    t.requests.push_back(std::move(r));
    t.answers.push_back(answer(i, true));
  }
  t.index();
  return t;
}

Transaction simple_transaction(int n) {
  Transaction t;
  for (int i = 0; i < kCount; ++i) {
    t.requests.push_back(query(simple_text(i, n)));
    t.answers.push_back(answer(i, false));
  }
  t.index();
  return t;
}

const auto kNow = std::chrono::steady_clock::time_point(std::chrono::seconds(1000));

// Runs `t` through the capture as the session does; returns the units released.
size_t run(policy::WriteCapture& capture, const Transaction& t,
           std::vector<policy::MirrorUnit>& units) {
  size_t released = 0;
  for (size_t i = 0; i < t.fe.size(); ++i) {
    for (const auto& m : t.fe[i]) capture.on_frontend(m.header, m.whole);
    capture.forwarded();
    for (const auto& m : t.be[i]) {
      if (capture.on_backend(m.header, m.body, kNow)) {
        capture.take(units);
        released += units.size();
        capture.give_back(units);
      }
    }
  }
  return released;
}

// The capture as it is after a while: its spare buffers allocated (the measured loop is the steady
// state; callgrind_annotate's caller tree separates run()'s calls from here from the loop's).
[[gnu::noinline]] void warm(policy::WriteCapture& capture, const Transaction& t,
                            std::vector<policy::MirrorUnit>& units) {
  for (int i = 0; i < 16; ++i) run(capture, t, units);
}

policy::WriteCapture::Options options(policy::ClassificationCache* cache) {
  policy::WriteCapture::Options o;
  o.cache = cache;
  return o;
}

// What the capture knows once pgbench prepared its statements (each Parse answered).
void prepare(policy::WriteCapture& capture) {
  Transaction t;
  for (int i = 0; i < kCount; ++i) {
    t.requests.push_back(parse("P_" + std::to_string(i), kTpcb[i]) + sync_msg());
    t.answers.push_back(parse_complete() + ready('I'));
  }
  t.index();
  std::vector<policy::MirrorUnit> units;
  run(capture, t, units);
}

// The measured loop: `transaction(n)` is the n-th transaction to run (after each one warmed).
template <typename Transactions>
void measure(benchmark::State& state, policy::WriteCapture& capture, size_t count,
             Transactions transaction) {
  std::vector<policy::MirrorUnit> units;
  for (size_t i = 0; i < count; ++i) warm(capture, transaction(i), units);
  size_t released = 0;
  size_t n = 0;
  for (auto _ : state) released += run(capture, transaction(n++ % count), units);
  if (released != static_cast<size_t>(state.iterations())) {
    state.SkipWithError("not one unit per transaction");
  }
}

void BM_CaptureTpcbPrepared(benchmark::State& state) {
  policy::ClassificationCache cache;
  policy::WriteCapture capture(options(&cache));
  prepare(capture);
  const Transaction t = prepared_transaction();
  measure(state, capture, 1, [&](size_t) -> const Transaction& { return t; });
}
BENCHMARK(BM_CaptureTpcbPrepared);

void BM_CaptureTpcbSimple(benchmark::State& state) {
  policy::ClassificationCache cache;
  policy::WriteCapture capture(options(&cache));
  // Texts that differ in their numbers, as pgbench's do (they share the cache's entries).
  std::vector<Transaction> ts;
  for (int n = 0; n < 64; ++n) ts.push_back(simple_transaction(n * 7919));
  measure(state, capture, ts.size(), [&](size_t i) -> const Transaction& { return ts[i]; });
}
BENCHMARK(BM_CaptureTpcbSimple);

// Autocommit writes, what most applications send between their transactions: pgbench's account
// update alone, -M prepared, each released as a unit of its own.
void BM_CaptureAutocommitPrepared(benchmark::State& state) {
  policy::ClassificationCache cache;
  policy::WriteCapture capture(options(&cache));
  prepare(capture);
  Transaction t;
  t.requests.push_back(bind_msg("", "P_1", {"-417", "12345"}) + execute() + sync_msg());
  t.answers.push_back(bind_complete() + command_complete("UPDATE 1") + ready('I'));
  t.index();
  measure(state, capture, 1, [&](size_t) -> const Transaction& { return t; });
}
BENCHMARK(BM_CaptureAutocommitPrepared);

// What the link receives: pgbench's TPC-B transaction (-M prepared) released by the capture as
// one unit (the session forwards each request and reads its answer). False if it was not.
bool released_tpcb(std::vector<policy::MirrorUnit>& units) {
  policy::ClassificationCache cache;
  policy::WriteCapture capture(options(&cache));
  prepare(capture);
  const Transaction t = prepared_transaction();
  for (size_t i = 0; i < t.fe.size(); ++i) {
    for (const auto& m : t.fe[i]) capture.on_frontend(m.header, m.whole);
    capture.forwarded();
    for (const auto& m : t.be[i]) capture.on_backend(m.header, m.body, kNow);
  }
  capture.take(units);
  return units.size() == 1;
}

// The link's side: the released unit joined into one request (as MirrorLink::run does for each
// unit it takes from its queue).
void BM_BatchTpcbPrepared(benchmark::State& state) {
  std::vector<policy::MirrorUnit> units;
  if (!released_tpcb(units)) {
    state.SkipWithError("the transaction was not released as one unit");
    return;
  }
  policy::TransactionBatch batch;
  size_t bytes = 0;
  for (auto _ : state) {
    batch.clear();
    batch.add(units[0]);
    bytes += batch.request().size();
  }
  benchmark::DoNotOptimize(bytes);
}
BENCHMARK(BM_BatchTpcbPrepared);

// The link's side again: the target's answers to that request (each statement's BindComplete and
// CommandComplete, one ReadyForQuery at the end of the joined request; the SELECT is a read, never
// mirrored) read and compared with the primary's outcomes, as MirrorLink::apply feeds them.
void BM_AnswersTpcbPrepared(benchmark::State& state) {
  std::vector<policy::MirrorUnit> units;
  if (!released_tpcb(units)) {
    state.SkipWithError("the transaction was not released as one unit");
    return;
  }
  std::string answers;
  for (int i = 0; i < kCount; ++i) {
    if (i != 2) answers += bind_complete() + command_complete(kTpcbTags[i]);
  }
  answers += ready('I');
  policy::AnswerMatch match{protocol::Limits{}};
  std::vector<policy::Outcome> out;
  size_t matched = 0;
  for (auto _ : state) {
    match.start(1, &units, &out);
    size_t used = 0;
    if (match.feed(answers, &used) != policy::AnswerMatch::Step::kDone || !match.all_matched()) {
      state.SkipWithError("the answers did not all match");
      return;
    }
    matched += match.matched();
  }
  benchmark::DoNotOptimize(matched);
}
BENCHMARK(BM_AnswersTpcbPrepared);

}  // namespace

// FrameScanner throughput: the per-chunk work every forwarded byte goes through on the data path.
//
// The caller is simulated the way a session uses the scanner: bytes arrive in chunks of a fixed
// size (one recv), the scanner reports how much may be forwarded, and the unforwarded tail stays
// in place until the next chunk completes it.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/framing.h"
#include "protocol/message_types.h"

namespace {

using pgtandem::protocol::Direction;
using pgtandem::protocol::FrameScanner;
using pgtandem::protocol::Header;
using pgtandem::protocol::Limits;
using pgtandem::protocol::Status;
namespace backend = pgtandem::protocol::backend;
namespace frontend = pgtandem::protocol::frontend;

constexpr size_t kKeepLimit = 8192;

void put_u32(std::string& out, uint32_t v) {
  out.push_back(static_cast<char>(v >> 24));
  out.push_back(static_cast<char>(v >> 16));
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v));
}
void put_u16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v));
}

void put_message(std::string& out, char type, std::string_view body) {
  out.push_back(type);
  put_u32(out, static_cast<uint32_t>(body.size() + 4));
  out.append(body);
}

// DataRow with the given column values (text format).
std::string data_row(std::initializer_list<std::string_view> columns) {
  std::string body;
  put_u16(body, static_cast<uint16_t>(columns.size()));
  for (auto c : columns) {
    put_u32(body, static_cast<uint32_t>(c.size()));
    body.append(c);
  }
  return body;
}

// What a backend sends for a small SELECT returning a few short rows, repeated:
// RowDescription-sized DataRows, CommandComplete, ReadyForQuery. ~24-byte messages.
std::string small_backend_stream(size_t target_bytes) {
  std::string out;
  std::string row = data_row({"42", "3171", "some short text"});
  while (out.size() < target_bytes) {
    for (int i = 0; i < 8; ++i) put_message(out, backend::kDataRow, row);
    put_message(out, backend::kCommandComplete, std::string_view("SELECT 8\0", 9));
    put_message(out, backend::kReadyForQuery, "I");
  }
  return out;
}

// What pgbench -M prepared sends per statement: Bind, Execute, Sync (~40 bytes in all).
std::string small_frontend_stream(size_t target_bytes) {
  std::string out;
  std::string bind;
  bind.append(std::string_view("\0P0_1\0", 6));  // portal "", statement "P0_1"
  put_u16(bind, 0);                               // parameter format codes
  put_u16(bind, 1);                               // one parameter
  put_u32(bind, 5);
  bind.append("31337");
  put_u16(bind, 0);  // result format codes
  std::string execute(std::string_view("\0\0\0\0\0", 5));  // portal "", no row limit
  while (out.size() < target_bytes) {
    put_message(out, frontend::kBind, bind);
    put_message(out, frontend::kExecute, execute);
    put_message(out, frontend::kSync, "");
  }
  return out;
}

// A result of `rows` DataRows of one column of `row_bytes` bytes each.
std::string large_row_stream(size_t row_bytes, size_t rows) {
  std::string out;
  std::string value(row_bytes, 'x');
  std::string row = data_row({value});
  for (size_t i = 0; i < rows; ++i) put_message(out, backend::kDataRow, row);
  put_message(out, backend::kCommandComplete, std::string_view("SELECT 1\0", 9));
  put_message(out, backend::kReadyForQuery, "I");
  return out;
}

struct CountingVisitor {
  uint64_t messages = 0;
  uint64_t streamed = 0;
  uint64_t body_bytes = 0;
  bool on_message(const Header& h, std::string_view body) {
    ++messages;
    body_bytes += body.size();
    benchmark::DoNotOptimize(h.type);
    return true;
  }
  bool on_stream_start(const Header& h) {
    ++streamed;
    benchmark::DoNotOptimize(h.type);
    return true;
  }
};

// Scan `stream` as it would arrive in recv chunks of `chunk` bytes. Returns false on kInvalid.
bool scan_in_chunks(FrameScanner& scanner, std::string_view stream, size_t chunk,
                    CountingVisitor& visitor) {
  size_t start = 0;  // first unforwarded byte
  size_t end = 0;    // bytes received so far
  while (start < stream.size()) {
    end = end + chunk < stream.size() ? end + chunk : stream.size();
    auto r = scanner.scan(stream.substr(start, end - start), visitor);
    if (r.status == Status::kInvalid) return false;
    start += r.forward;
    if (end == stream.size() && r.forward == 0) return false;  // truncated stream
  }
  return true;
}

void run(benchmark::State& state, Direction dir, const std::string& stream, size_t chunk) {
  CountingVisitor visitor;
  uint64_t scans = 0;
  for (auto _ : state) {
    FrameScanner scanner(dir, Limits{}, kKeepLimit);
    if (!scan_in_chunks(scanner, stream, chunk, visitor)) {
      state.SkipWithError("scanner rejected the stream");
      return;
    }
    ++scans;
  }
  state.SetBytesProcessed(static_cast<int64_t>(scans * stream.size()));
  state.SetItemsProcessed(static_cast<int64_t>(visitor.messages + visitor.streamed));
  state.counters["msgs_per_scan"] =
      scans ? static_cast<double>(visitor.messages + visitor.streamed) / scans : 0;
}

// Many small backend messages in one buffer; arg 0: recv chunk size.
void BM_ScanSmallBackend(benchmark::State& state) {
  static const std::string stream = small_backend_stream(256 * 1024);
  run(state, Direction::kBackend, stream, static_cast<size_t>(state.range(0)));
}
BENCHMARK(BM_ScanSmallBackend)->Arg(1460)->Arg(16 * 1024)->Arg(256 * 1024);

// Many small frontend messages (Bind/Execute/Sync); arg 0: recv chunk size.
void BM_ScanSmallFrontend(benchmark::State& state) {
  static const std::string stream = small_frontend_stream(256 * 1024);
  run(state, Direction::kFrontend, stream, static_cast<size_t>(state.range(0)));
}
BENCHMARK(BM_ScanSmallFrontend)->Arg(1460)->Arg(16 * 1024)->Arg(256 * 1024);

// A stream of large DataRows; arg 0: row size, arg 1: recv chunk size. Rows larger than the keep
// limit are streamed (header seen, body passed through); smaller ones are kept back until whole.
void BM_ScanLargeDataRows(benchmark::State& state) {
  const size_t row_bytes = static_cast<size_t>(state.range(0));
  const size_t rows = (8u << 20) / row_bytes;  // 8 MiB of rows per scan
  const std::string stream = large_row_stream(row_bytes, rows);
  run(state, Direction::kBackend, stream, static_cast<size_t>(state.range(1)));
}
BENCHMARK(BM_ScanLargeDataRows)
    ->Args({4 * 1024, 64 * 1024})
    ->Args({64 * 1024, 64 * 1024})
    ->Args({1024 * 1024, 64 * 1024})
    ->Args({1024 * 1024, 256 * 1024});

}  // namespace

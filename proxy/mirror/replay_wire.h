// The replay engine's wire exchange (proxy/mirror/replay.cc): on a logged-in connection, send
// messages and read the answers up to a number of ReadyForQuery, one exchange at a time or
// pipelined (the next batch written while the answers to the last are read). Internal to the
// engine (replay.cc, replay_wire.cc).
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "policy/mirror/write_capture.h"
#include "protocol/backend.h"
#include "proxy/worker.h"

namespace pgtandem::proxy::replay_detail {

using policy::Outcome;

struct Exchange {
  bool ok = false;
  std::string error;                // I/O or protocol failure
  std::vector<Outcome> outcomes;    // per statement, as the primary's are recorded
  std::vector<std::string> errors;  // "SQLSTATE: message" of each ErrorResponse
  char status = protocol::kTxIdle;  // of the last ReadyForQuery
  uint32_t ready = 0;
  // At each ReadyForQuery: how many outcomes came before it, and its status (pipelined batches
  // split their answers by these).
  std::vector<std::pair<size_t, char>> readies;
  std::vector<std::string> first_values;  // the first column of each DataRow
};

// Sends `out` and reads until `want` ReadyForQuery (or `timeout`, 0 = none).
asio::awaitable<Exchange> exchange(Socket& s, std::string& buf, std::string_view out, uint32_t want,
                                   std::chrono::milliseconds timeout);

// A pipelined exchange: sends `out` (the next batch) while reading the answers to what was sent
// before it, up to `want` ReadyForQuery. The answers to `out` itself stay in `buf` for the next
// call. Reading goes on until the write is done, whatever `want` is: a server blocked writing
// answers we do not read would stop reading what we write.
asio::awaitable<Exchange> exchange_pipelined(Socket& s, std::string& buf, std::string& chunk,
                                             std::string_view out, uint32_t want,
                                             std::chrono::milliseconds timeout);

}  // namespace pgtandem::proxy::replay_detail

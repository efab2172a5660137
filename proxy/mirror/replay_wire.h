// The replay engine's wire exchange (proxy/mirror/replay.cc): on a logged-in connection, send
// messages and read the answers up to a number of ReadyForQuery. Internal to the engine.
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

// Sends `out` while reading until `want` ReadyForQuery (or `timeout`, 0 = none, has passed).
asio::awaitable<Exchange> exchange(Socket& s, std::string& buf, std::string_view out, uint32_t want,
                                   std::chrono::milliseconds timeout);

}  // namespace pgtandem::proxy::replay_detail

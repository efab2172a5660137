// One read request served on a secondary connection instead of the primary (issue 4).
//
// The answer is held back until it commits: until the first message that is neither a
// preliminary (ParseComplete, BindComplete, ParameterDescription, RowDescription, NoData, notices)
// nor an error. An error or a lost connection before that point leaves the client untouched, so
// the caller can run the same request on the primary instead (a read has no effect to undo); after
// it, the answer streams to the client as it comes, as the primary's would.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/framing.h"
#include "proxy/worker.h"

namespace pgtandem::proxy {

// Sees every backend message of the answer the client receives (for the session's bookkeeping).
class BackendObserver {
 public:
  virtual void on_backend(const protocol::Header& header, std::string_view body) = 0;

 protected:
  ~BackendObserver() = default;
};

enum class RoutedReadOutcome : uint8_t {
  kServed,       // the client has the whole answer, up to ReadyForQuery
  kRetry,        // nothing reached the client: run it on the primary (reason/sqlstate say why)
  kClientGone,   // writing to the client failed
  kBrokenAfterCommit,  // the secondary failed mid-answer: the client saw part of it
};

struct RoutedReadResult {
  RoutedReadOutcome outcome = RoutedReadOutcome::kServed;
  std::string_view reason;  // kRetry: "connection_lost" | "unavailable" | "error"
  std::string sqlstate;     // the secondary's error, if it sent one
  bool connection_usable = true;  // the secondary sits at ReadyForQuery (give it back unbroken)
  bool error_in_answer = false;   // kServed, but the answer held an ErrorResponse
};

// `rbuf`/`rend`: the secondary connection's read buffer and the bytes already in it.
// `injected`: how many ParseComplete/CloseComplete answer messages pgtandem prefixed to the
// client's request (statements prepared lazily on the secondary): they are not the client's.
// `retry_errors` false: an error answer commits like any other (the client sees it).
asio::awaitable<RoutedReadResult> serve_routed_read(Socket& server, std::vector<char>& rbuf,
                                                    size_t& rend, std::string_view request,
                                                    uint32_t injected, bool retry_errors,
                                                    Socket& client,
                                                    const protocol::Limits& limits,
                                                    BackendObserver& observer);

// A connection or availability failure (class 08, 57P0x, 53, 3D000...) rather than the query's.
bool is_availability_error(std::string_view sqlstate);

}  // namespace pgtandem::proxy

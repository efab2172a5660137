// Request tracking for the client side of a session (issue 12): what pump_frontend decides about
// the messages of one scan, as a state machine the session feeds and acts on.
//
// Fed the client's messages (a FrameScanner visitor), it decides where each request begins and
// ends (Query, Sync and FunctionCall end one; Terminate stops the scan), counts the requests in
// flight (`outstanding`), and, when the session routes reads, whether the request just ended may
// leave the primary: its statement (the rules look at it), the named statement a diverted request
// binds, and at its end whether to stop the scan there so the session serves it elsewhere.
//
// Everything that needs the session (the write capture's classification and prepared statements,
// the route decision, shadow reads, metrics, the statement log) goes through RequestTrackerHost,
// which the session implements. Pure: no I/O, no allocation per message (the routed statement's
// name reuses its buffer).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/framing.h"

namespace pgtandem::policy {

// What the host says about one statement text of a request (route_candidate in the session).
struct StatementVerdict {
  bool routable = false;      // a plain read that may leave the primary
  bool shadow_cursor = false;  // a cursor, and the session shadows reads (counted as a skip)
};

class RequestTrackerHost {
 public:
  // Every whole message, before the tracker looks at it (`message` includes its header).
  virtual void on_frontend(const protocol::Header& h, std::string_view message) = 0;
  // A request was counted while nothing was outstanding: its latency clock starts.
  virtual void on_first_outstanding() = 0;
  // [log] statements: whether on, and one line per statement (a Query's, a Parse's).
  virtual bool log_statements() const = 0;
  virtual void log_statement(std::string_view sql) = 0;
  // A new request begins: forget what was classified for the last one.
  virtual void on_request_begin() = 0;
  // Classifies a statement text of the request (also for its side effects: pinning).
  virtual StatementVerdict classify(std::string_view sql) = 0;
  // A named statement is being (re)defined on the primary: its copy elsewhere is stale.
  virtual void statement_redefined(std::string_view name) = 0;
  // Whether `name` is a prepared plain read whose Parse message is known; if so and `sql` is not
  // null, *sql is set to its text (when it can be decoded).
  virtual bool prepared_read(std::string_view name, std::string_view* sql) = 0;
  // Whether the session is pinned to the primary now (checked at each request's end).
  virtual bool pinned() const = 0;
  // The route decision for a request that ended: true if it goes to the secondary.
  virtual bool route_to_secondary(std::string_view sql) = 0;
  // The request ended and stays on the primary: `request` is its bytes (empty for a cursor).
  virtual void kept_on_primary(std::string_view request, std::string_view sql, bool cursor) = 0;

 protected:
  ~RequestTrackerHost() = default;
};

class RequestTracker {
 public:
  explicit RequestTracker(RequestTrackerHost& host) : host_(&host) {}

  // Before each scan: `base` is the start of the scanned buffer (request offsets are relative to
  // it); `routing`: some rule may route this session's reads, so look at each request.
  void begin_scan(const char* base, bool routing);
  // After the scan: an extended-protocol batch left open (its first messages go to the primary
  // now) makes the next request, its continuation, unroutable.
  void end_scan();

  // FrameScanner visitor.
  bool on_message(const protocol::Header& h, std::string_view body);
  bool on_stream_start(const protocol::Header& h);

  // Of the last scan.
  uint64_t messages() const { return messages_; }
  bool terminate() const { return terminate_; }
  bool in_request() const { return in_request_; }
  bool divert() const { return divert_; }
  size_t divert_begin() const { return divert_begin_; }

  // Across scans.
  bool batch_started_earlier() const { return batch_started_earlier_; }
  // The named statement the diverted request binds ("" if none).
  const std::string& routed_statement() const { return routed_statement_; }
  uint32_t outstanding() const { return outstanding_; }
  // A ReadyForQuery answered one request: true if that was the last outstanding one.
  bool answered() { return outstanding_ > 0 && --outstanding_ == 0; }

 private:
  void count_request();
  void begin(std::string_view body);
  bool end_request(std::string_view last);
  void classify(std::string_view sql);
  void on_query(std::string_view body);
  void on_parse(std::string_view body);
  void on_bind(std::string_view body);
  void on_describe(std::string_view body);

  RequestTrackerHost* host_;
  const char* base_ = nullptr;
  bool routing_ = false;
  uint64_t messages_ = 0;
  bool terminate_ = false;
  // The request being scanned: where it began in the buffer, and whether it may be routed.
  size_t request_begin_ = 0;
  bool in_request_ = false;
  bool routable_ = true;
  bool parsed_unnamed_ = false;
  bool shadow_cursor_ = false;  // the last statement classified was a cursor (shadowing on)
  std::string_view sql_;        // of the request's statement, for rules that look at it
  // Set when the scan stopped at the end of a request to serve on the secondary.
  bool divert_ = false;
  size_t divert_begin_ = 0;

  bool batch_started_earlier_ = false;
  std::string routed_statement_;
  uint32_t outstanding_ = 0;
};

}  // namespace pgtandem::policy

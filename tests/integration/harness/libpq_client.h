// Integration-test harness: libpq connections and queries, where a client connects (Endpoint),
// and a session running queries in a loop on its own thread.
#pragma once

#include <libpq-fe.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "tests/integration/harness/processes.h"

namespace pgtandem::it {

// ---------------------------------------------------------------------------------------------
// libpq helpers

struct PGconnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct PGresultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using ConnPtr = std::unique_ptr<PGconn, PGconnDeleter>;
using ResultPtr = std::unique_ptr<PGresult, PGresultDeleter>;

// Where a client connects: a cluster directly or pgtandem.
struct Endpoint {
  std::string name;                // "direct" / "pgtandem" (for messages and unique object names)
  std::string host = "127.0.0.1";  // or a directory: the Unix socket <host>/.s.PGSQL.<port>
  uint16_t port = 0;
  bool is_unix() const { return !host.empty() && host[0] == '/'; }
  std::string conninfo(const std::string& extra = "", const std::string& dbname = "postgres",
                       const std::string& user = "postgres") const;
};

ConnPtr connect_raw(const std::string& conninfo);            // never throws; check PQstatus
ConnPtr connect(const std::string& conninfo);                // throws with the libpq message
ResultPtr exec(PGconn* c, const std::string& sql);           // throws unless COMMAND_OK/TUPLES_OK
std::string query_value(PGconn* c, const std::string& sql);  // first column of the first row
std::string result_status_name(const PGresult* r);
// "connection to server at ... failed: FATAL:  msg" -> "FATAL:  msg" (drops the address prefix).
std::string strip_connection_prefix(std::string libpq_error);

// ---------------------------------------------------------------------------------------------
// A session running queries in a loop on its own thread, to prove another session's trouble
// does not disturb it.

class HealthySession {
 public:
  explicit HealthySession(std::string conninfo);
  ~HealthySession();
  void start();  // connects (throws if it cannot) and starts
  // Wait until `n` more queries have succeeded since the call; false on timeout or error.
  bool wait_progress(long n, milliseconds timeout = milliseconds(10000));
  void stop();
  long ok() const { return ok_; }
  long errors() const { return errors_; }
  std::string first_error() const;

 private:
  void loop();
  std::string conninfo_;
  ConnPtr conn_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<long> ok_{0};
  std::atomic<long> errors_{0};
  mutable std::mutex mu_;
  std::string first_error_;
};

}  // namespace pgtandem::it

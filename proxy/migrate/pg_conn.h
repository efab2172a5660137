// libpq for the migration commands (issue 13): an RAII connection with the few things they do:
// run SQL, read rows as text, COPY out of one server (into memory while a chunk fits, streamed
// beyond) into COPY in on the other (PQgetCopyData -> PQputCopyData, no row parsing except the
// last line's key), and pipelined
// queries (PQenterPipelineMode: verify's per-chunk hash queries in one round trip).
// Blocking calls; each command's worker threads own their connections.
#pragma once

#include <libpq-fe.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pgtandem::proxy::migrate {

struct ConnSpec {
  std::string label;  // "old (127.0.0.1:5432)": for messages
  std::string host;   // or the Unix socket directory
  uint16_t port = 5432;
  std::string dbname;
  std::string user;
  std::string password;  // "" = none
  std::string sslmode = "prefer";
  std::string sslrootcert, sslcert, sslkey;
  std::string application_name = "pgtandem-migrate";
  int connect_timeout_s = 10;
};

using Row = std::vector<std::optional<std::string>>;
struct Rows {
  std::vector<Row> rows;
  const std::string& at(size_t r, size_t c) const;  // "" for NULL
};

class PgConn {
 public:
  // Connects and applies the commands' session settings (policy/migrate/sql.h). nullptr with
  // *error ("old (127.0.0.1:5432): connection refused ...") on failure.
  static std::unique_ptr<PgConn> open(const ConnSpec& spec, std::string* error);
  ~PgConn();
  PgConn(const PgConn&) = delete;
  PgConn& operator=(const PgConn&) = delete;

  PGconn* raw() { return conn_; }
  const ConnSpec& spec() const { return spec_; }
  bool ok() const { return PQstatus(conn_) == CONNECTION_OK; }

  // One or more statements (simple protocol); false with *error ("label: message").
  bool exec(const std::string& sql, std::string* error);
  // One statement; rows as text.
  bool query(const std::string& sql, Rows* out, std::string* error);
  // Queries sent in one pipeline (extended protocol, one Sync), results in order.
  bool pipeline(const std::vector<std::string>& sqls, std::vector<Rows>* out, std::string* error);

  // COPY out into memory: `copy_out_sql`'s rows appended to *data until the COPY ends
  // (*complete = true) or *data holds more than max_bytes (*complete = false: the COPY stays open;
  // copy_buffer_to sends the rest). *last_row_at: where the last row starts in *data.
  // *out_started: when the COPY began answering (its snapshot was taken before).
  bool copy_out_buffered(const std::string& copy_out_sql, size_t max_bytes, std::string* data,
                         int64_t* rows, size_t* last_row_at, bool* complete,
                         std::chrono::steady_clock::time_point* out_started, std::string* error);
  // `copy_in_sql` (COPY ... FROM STDIN) on `dest`, fed `data`, then, when `rest_open`, the rest
  // of this connection's open COPY out (counted in *rows, *bytes; its last row in *last_line).
  bool copy_buffer_to(PgConn& dest, const std::string& copy_in_sql, const std::string& data,
                      bool rest_open, int64_t* rows, int64_t* bytes, std::string* last_line,
                      std::string* error);

  // A snapshot backfill's copy: `copy_in_sql` (COPY ... FROM STDIN) opened on every connection
  // of `dests`, then `copy_out_sql` here, streamed row by row into them, batches of rows to each
  // in turn: one read of the table (the table path, a sequential scan) feeds several backends on
  // the other side, which is where a load spends its CPU. `binary`: both are FORMAT binary (each
  // destination gets a header and a trailer of its own). `tick(rows, bytes)` runs every few
  // thousand rows and at the end with the rows and bytes since its last call (progress, the rate
  // cap); if it returns false the copy stops (its error). *rows, *bytes: the totals.
  bool copy_fanout_to(const std::vector<PgConn*>& dests, const std::string& copy_out_sql,
                      const std::string& copy_in_sql, bool binary,
                      const std::function<bool(int64_t rows, int64_t bytes, std::string* error)>& tick,
                      int64_t* rows, int64_t* bytes, std::string* error);

  std::string server_version();  // "15.4"

 private:
  PgConn(PGconn* c, ConnSpec spec) : conn_(c), spec_(std::move(spec)) {}
  std::string err(const std::string& what) const;
  // The next row of this connection's COPY out: > 0 its length (*buf, for PQfreemem); 0 the COPY
  // ended and its result was read; -1 an error (*error).
  int next_copy_row(char** buf, std::string* error);
  bool drain_results(std::string* error);
  PGconn* conn_;
  ConnSpec spec_;
};

}  // namespace pgtandem::proxy::migrate

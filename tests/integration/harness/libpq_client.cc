#include "tests/integration/harness/libpq_client.h"

#include <stdexcept>
#include <string>

#include "tests/integration/harness/internal.h"

namespace pgtandem::it {

std::string Endpoint::conninfo(const std::string& extra, const std::string& dbname,
                               const std::string& user) const {
  std::string s = "host=" + host + " port=" + std::to_string(port) + " dbname=" + dbname +
                  " user=" + user + " connect_timeout=10";
  if (!extra.empty()) s += " " + extra;
  return s;
}

ConnPtr connect_raw(const std::string& conninfo) { return ConnPtr(PQconnectdb(conninfo.c_str())); }

ConnPtr connect(const std::string& conninfo) {
  ConnPtr c = connect_raw(conninfo);
  if (!c || PQstatus(c.get()) != CONNECTION_OK)
    fail("connect(" + conninfo + ") failed: " + (c ? PQerrorMessage(c.get()) : "out of memory"));
  return c;
}

ResultPtr exec(PGconn* c, const std::string& sql) {
  ResultPtr r(PQexec(c, sql.c_str()));
  auto st = PQresultStatus(r.get());
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
    fail("query failed: " + sql + ": " + PQerrorMessage(c));
  return r;
}

std::string query_value(PGconn* c, const std::string& sql) {
  ResultPtr r = exec(c, sql);
  if (PQntuples(r.get()) < 1 || PQnfields(r.get()) < 1) fail("no value from: " + sql);
  return PQgetvalue(r.get(), 0, 0);
}

std::string result_status_name(const PGresult* r) {
  return r ? PQresStatus(PQresultStatus(r)) : "NULL";
}

std::string strip_connection_prefix(std::string e) {
  // libpq: 'connection to server at "127.0.0.1", port 5432 failed: FATAL:  ...'
  auto pos = e.find("failed: ");
  if (e.rfind("connection to server", 0) == 0 && pos != std::string::npos) e = e.substr(pos + 8);
  while (!e.empty() && (e.back() == '\n' || e.back() == ' ')) e.pop_back();
  return e;
}

// ---------------------------------------------------------------------------------------------
// HealthySession

HealthySession::HealthySession(std::string conninfo) : conninfo_(std::move(conninfo)) {}

HealthySession::~HealthySession() { stop(); }

void HealthySession::start() {
  conn_ = it::connect(conninfo_);
  thread_ = std::thread([this] { loop(); });
}

void HealthySession::loop() {
  long i = 0;
  while (!stop_) {
    ++i;
    std::string param = std::to_string(i);
    const char* values[1] = {param.c_str()};
    ResultPtr r(PQexecParams(conn_.get(), "SELECT $1::bigint + 1, repeat('h', 100)", 1, nullptr,
                             values, nullptr, nullptr, 0));
    bool good = PQresultStatus(r.get()) == PGRES_TUPLES_OK && PQntuples(r.get()) == 1 &&
                std::string(PQgetvalue(r.get(), 0, 0)) == std::to_string(i + 1);
    if (good) {
      ++ok_;
    } else {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (first_error_.empty())
          first_error_ = result_status_name(r.get()) + ": " + PQerrorMessage(conn_.get());
      }
      ++errors_;
      if (PQstatus(conn_.get()) != CONNECTION_OK) return;
    }
  }
}

bool HealthySession::wait_progress(long n, milliseconds timeout) {
  long target = ok_ + n;
  return poll_until([&] { return errors_ > 0 || ok_ >= target; }, timeout, milliseconds(2)) &&
         errors_ == 0;
}

void HealthySession::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

std::string HealthySession::first_error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return first_error_;
}

}  // namespace pgtandem::it

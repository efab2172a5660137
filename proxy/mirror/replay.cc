// `pgtandem replay`: applies a journal's unapplied entries in order on fresh connections and
// records what it applied. Size: ~970 lines, one command read top to bottom (sessions rebuilt
// from journal state, apply loop, applied-state file, report); the apply loop is what automatic
// catch-up (issue 15) will share, and the seam to split along then.
#include "proxy/mirror/replay.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

#include "config/pgpass.h"
#include "protocol/framing.h"
#include "protocol/messages.h"
#include "proxy/auth/backend_login.h"
#include "proxy/mirror/journal.h"
#include "proxy/telemetry/log.h"
#include "proxy/net/upstream.h"

namespace pgtandem::proxy {
namespace {

using namespace asio::experimental::awaitable_operators;
using policy::Outcome;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr size_t kReadChunk = 16 * 1024;
constexpr size_t kMaxSqlInReport = 120;
constexpr const char* kAppliedHeader = "pgtandem replay applied-state v1";
constexpr size_t kSummaryWidth = 31;  // the longest label plus one

// ------------------------------------------------------------------------------------------------
// Small helpers

uint64_t fnv1a64(std::string_view s) {
  uint64_t h = 14695981039346656037ull;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

std::string hex16(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

// Printable for a one-line report: control characters escaped, long text cut.
std::string printable(std::string_view s, size_t max = kMaxSqlInReport) {
  std::string out;
  for (char ch : s.substr(0, max)) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '\n' || c == '\r' || c == '\t') {
      out += ' ';
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  if (s.size() > max) out += "...";
  return out;
}

std::string describe(const std::vector<Outcome>& outcomes) {
  std::string out = "[";
  for (size_t i = 0; i < outcomes.size(); ++i) {
    if (i > 0) out += ", ";
    out += outcomes[i].is_error() ? "ERROR " + outcomes[i].sqlstate : outcomes[i].tag;
  }
  return out + "]";
}

// Runs `op` to completion on `io`. Nothing on these paths throws; should something (allocation)
// escape anyway, `on_exception` is returned.
template <typename T>
T run_sync(asio::io_context& io, asio::awaitable<T> op, T on_exception) {
  std::optional<T> result;
  asio::co_spawn(io, std::move(op), [&result](std::exception_ptr e, T value) {
    if (!e) result = std::move(value);
  });
  io.restart();
  io.run();
  return result ? std::move(*result) : std::move(on_exception);
}

// ------------------------------------------------------------------------------------------------
// What a unit's frontend messages need from, and do to, the connection's named statements.

struct UnitScan {
  uint32_t requests = 0;  // Query and Sync messages: each is answered by one ReadyForQuery
  // Named statements bound or described before the unit parses or closes them: they must exist.
  std::vector<std::string> needs;
  // Named statements the unit parses before using them otherwise: they must not exist yet (the
  // Parse succeeded on the primary), though an earlier entry may have prepared them here.
  std::vector<std::string> parses_first;
  // Named statements the unit parses or closes: unknown afterwards (the Parse may have failed).
  std::vector<std::string> touched;
  bool may_deallocate = false;  // a simple Query that may DEALLOCATE or DISCARD
  // Only Parse/Close/Describe/Sync/Flush: the mirror keeps such a session-state unit out of the
  // session's state (prepared statements travel in `prepared`).
  bool only_prepares = true;
};

bool contains_word_ci(std::string_view text, std::string_view word) {
  if (text.size() < word.size()) return false;
  for (size_t i = 0; i + word.size() <= text.size(); ++i) {
    size_t k = 0;
    while (k < word.size() && std::tolower(static_cast<unsigned char>(text[i + k])) == word[k]) ++k;
    if (k == word.size()) return true;
  }
  return false;
}

bool scan_unit(std::string_view bytes, UnitScan* out, std::string* error) {
  using protocol::Direction;
  using protocol::Status;
  *out = UnitScan{};
  if (bytes.empty()) {
    *error = "no messages";
    return false;
  }
  std::set<std::string> seen;
  size_t pos = 0;
  while (pos < bytes.size()) {
    auto h = protocol::decode_header(bytes.substr(pos), Direction::kFrontend, protocol::Limits{});
    if (h.status == Status::kInvalid) {
      *error = "invalid message at offset " + std::to_string(pos);
      return false;
    }
    if (h.status == Status::kNeedMore || bytes.size() - pos < h.header.frame_size()) {
      *error = "truncated message at offset " + std::to_string(pos);
      return false;
    }
    std::string_view body = bytes.substr(pos + protocol::kHeaderSize, h.header.body_size());
    bool ok = true;
    const char type = h.header.type;
    if (type != protocol::frontend::kParse && type != protocol::frontend::kClose &&
        type != protocol::frontend::kDescribe && type != protocol::frontend::kSync &&
        type != protocol::frontend::kFlush)
      out->only_prepares = false;
    switch (type) {
      case protocol::frontend::kQuery: {
        protocol::Query q;
        ok = protocol::decode(body, q);
        ++out->requests;
        if (ok && (contains_word_ci(q.sql, "deallocate") || contains_word_ci(q.sql, "discard")))
          out->may_deallocate = true;
        break;
      }
      case protocol::frontend::kSync:
        ++out->requests;
        break;
      case protocol::frontend::kParse: {
        protocol::Parse p;
        ok = protocol::decode(body, p);
        if (ok && !p.name.empty()) {
          std::string name(p.name);
          if (seen.insert(name).second) out->parses_first.push_back(name);
          out->touched.push_back(std::move(name));
        }
        break;
      }
      case protocol::frontend::kClose: {
        protocol::Close c;
        ok = protocol::decode(body, c);
        if (ok && c.target == protocol::kTargetStatement && !c.name.empty()) {
          seen.emplace(c.name);
          out->touched.emplace_back(c.name);
        }
        break;
      }
      case protocol::frontend::kBind: {
        protocol::Bind b;
        ok = protocol::decode(body, b);
        if (ok && !b.statement.empty() && seen.emplace(b.statement).second)
          out->needs.emplace_back(b.statement);
        break;
      }
      case protocol::frontend::kDescribe: {
        protocol::Describe d;
        ok = protocol::decode(body, d);
        if (ok && d.target == protocol::kTargetStatement && !d.name.empty() &&
            seen.emplace(d.name).second)
          out->needs.emplace_back(d.name);
        break;
      }
      case protocol::frontend::kTerminate:
      case protocol::frontend::kPassword:
        *error = std::string("unexpected ") +
                 std::string(protocol::message_name(Direction::kFrontend, h.header.type)) +
                 " message";
        return false;
      default:
        break;
    }
    if (!ok) {
      *error = "malformed " +
               std::string(protocol::message_name(Direction::kFrontend, h.header.type)) +
               " message at offset " + std::to_string(pos);
      return false;
    }
    pos += h.header.frame_size();
  }
  return true;
}

// The stored Parse of a named statement must be exactly one Parse message of that name.
bool check_prepared(const std::string& name, std::string_view bytes, std::string* error) {
  auto h = protocol::decode_header(bytes, protocol::Direction::kFrontend, protocol::Limits{});
  protocol::Parse p;
  if (h.status != protocol::Status::kComplete || h.header.type != protocol::frontend::kParse ||
      h.header.frame_size() != bytes.size() ||
      !protocol::decode(bytes.substr(protocol::kHeaderSize), p) || p.name != name) {
    *error = "prepared statement \"" + name + "\" is not a single Parse message of that name";
    return false;
  }
  return true;
}

// ------------------------------------------------------------------------------------------------
// One exchange on a logged-in connection: send messages, read until `want` ReadyForQuery.

struct Exchange {
  bool ok = false;
  std::string error;                // I/O or protocol failure
  std::vector<Outcome> outcomes;    // per statement, as the primary's are recorded
  std::vector<std::string> errors;  // "SQLSTATE: message" of each ErrorResponse
  char status = protocol::kTxIdle;  // of the last ReadyForQuery
  uint32_t ready = 0;
};

asio::awaitable<void> send_part(Socket& s, std::string_view out, boost::system::error_code* ec) {
  auto [e, n] = co_await asio::async_write(s, asio::buffer(out.data(), out.size()), kNoThrow);
  (void)n;
  *ec = e;
  if (e) {
    boost::system::error_code ignored;
    s.cancel(ignored);  // wake the reader
  }
}

// Why reading stopped; wakes the writer, which would otherwise wait for a server that is gone.
void receive_failed(Socket& s, Exchange* r, std::string what) {
  r->error = std::move(what);
  boost::system::error_code ignored;
  s.cancel(ignored);
}

// Consumes the whole messages at the start of `buf`; true once `want` ReadyForQuery arrived or
// on a failure (r->error).
bool consume_answers(Socket& s, std::string& buf, uint32_t want, Exchange* r) {
  const protocol::Limits limits;
  size_t pos = 0;
  bool done = false;
  while (!done) {
    auto h = protocol::decode_header(std::string_view(buf).substr(pos),
                                     protocol::Direction::kBackend, limits);
    if (h.status == protocol::Status::kInvalid) {
      receive_failed(s, r, "invalid message from the server");
      return true;
    }
    if (h.status == protocol::Status::kNeedMore || buf.size() - pos < h.header.frame_size()) break;
    std::string_view body(buf.data() + pos + protocol::kHeaderSize, h.header.body_size());
    pos += h.header.frame_size();
    switch (h.header.type) {
      case protocol::backend::kCommandComplete: {
        protocol::CommandComplete c;
        if (!protocol::decode(body, c)) {
          receive_failed(s, r, "malformed CommandComplete from the server");
          return true;
        }
        r->outcomes.push_back(Outcome{std::string(c.tag), ""});
        break;
      }
      case protocol::backend::kErrorResponse: {
        protocol::ErrorResponse e;
        if (!protocol::decode(body, e)) {
          receive_failed(s, r, "malformed ErrorResponse from the server");
          return true;
        }
        r->outcomes.push_back(Outcome{"", std::string(e.sqlstate())});
        r->errors.push_back(std::string(e.sqlstate()) + ": " + std::string(e.message()));
        break;
      }
      case protocol::backend::kReadyForQuery: {
        protocol::ReadyForQuery z;
        if (!protocol::decode(body, z)) {
          receive_failed(s, r, "malformed ReadyForQuery from the server");
          return true;
        }
        r->status = z.status;
        if (++r->ready == want) {
          r->ok = true;
          done = true;
        }
        break;
      }
      default:
        break;  // ParseComplete, DataRow, NoticeResponse, CopyInResponse, ...: not outcomes
    }
  }
  buf.erase(0, pos);
  return done;
}

asio::awaitable<void> receive_part(Socket& s, std::string& buf, uint32_t want, Exchange* r) {
  std::string chunk(kReadChunk, '\0');
  while (!consume_answers(s, buf, want, r)) {
    auto [ec, n] = co_await s.async_read_some(asio::buffer(chunk), kNoThrow);
    if (ec) {
      receive_failed(
          s, r,
          ec == asio::error::eof ? "the server closed the connection" : "read: " + ec.message());
      co_return;
    }
    buf.append(chunk.data(), n);
  }
}

asio::awaitable<Exchange> exchange(Socket& s, std::string& buf, std::string_view out, uint32_t want,
                                   std::chrono::milliseconds timeout) {
  Exchange r;
  boost::system::error_code wec;
  // Sending and reading at once: a unit with many statements can produce more answers than the
  // socket buffers hold before the server has read all of it.
  if (timeout.count() > 0) {
    asio::steady_timer timer(co_await asio::this_coro::executor, timeout);
    auto v = co_await ((send_part(s, out, &wec) && receive_part(s, buf, want, &r)) ||
                       timer.async_wait(kNoThrow));
    if (v.index() == 1) {
      r.ok = false;
      r.error = "timed out after " + std::to_string(timeout.count()) + " ms";
      co_return r;
    }
  } else {
    co_await (send_part(s, out, &wec) && receive_part(s, buf, want, &r));
  }
  if (wec) {
    r.ok = false;
    r.error = "write: " + wec.message();
  }
  co_return r;
}

// ------------------------------------------------------------------------------------------------
// Applied-state file

struct AppliedState {
  uint64_t seq = 0;
  uint64_t fingerprint = 0;
};

bool read_applied(const std::string& path, AppliedState* out, std::string* error) {
  *out = AppliedState{};
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return true;  // nothing applied yet
    *error = errno_text("cannot read " + path);
    return false;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = errno_text("cannot read " + path);
    return false;
  }
  std::string header, seq_word, fp_word, seq_text, fp_text;
  std::getline(in, header);
  in >> seq_word >> seq_text >> fp_word >> fp_text;
  auto number = [](const std::string& text, int base, uint64_t* v) {
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *v, base);
    return ec == std::errc() && end == text.data() + text.size() && !text.empty();
  };
  if (header != kAppliedHeader || seq_word != "seq" || fp_word != "fingerprint" ||
      fp_text.size() != 16 || !number(seq_text, 10, &out->seq) ||
      !number(fp_text, 16, &out->fingerprint)) {
    *out = AppliedState{};
    *error = path + " is not a pgtandem replay applied-state file";
    return false;
  }
  return true;
}

bool write_applied(const std::string& path, const AppliedState& state, std::string* error) {
  std::string text = std::string(kAppliedHeader) + "\nseq " + std::to_string(state.seq) +
                     "\nfingerprint " + hex16(state.fingerprint) + "\n";
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    *error = errno_text("cannot create " + tmp);
    return false;
  }
  const char* p = text.data();
  size_t left = text.size();
  while (left > 0) {
    ssize_t w = ::write(fd, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      *error = errno_text("cannot write " + tmp);
      ::close(fd);
      return false;
    }
    p += w;
    left -= static_cast<size_t>(w);
  }
  if (::fsync(fd) != 0) {
    *error = errno_text("cannot fsync " + tmp);
    ::close(fd);
    return false;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    *error = errno_text("cannot rename " + tmp + " to " + path);
    return false;
  }
  // The rename is durable only once the directory is synced.
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || ::fsync(dfd) != 0) {
    *error = errno_text("cannot fsync directory " + dir);
    if (dfd >= 0) ::close(dfd);
    return false;
  }
  ::close(dfd);
  return true;
}

// ------------------------------------------------------------------------------------------------
// The replayer

struct Connection {
  std::unique_ptr<Socket> socket;
  std::string buf;                                // bytes read and not yet consumed
  std::vector<std::string> state;                 // state units run on it, in order
  std::map<std::string, std::string> statements;  // named statements we prepared -> Parse bytes
  uint64_t last_use = 0;
};

// How applying one entry went.
enum class Applied { kMatched, kDiverged, kFailed };

class Replayer {
 public:
  Replayer(const config::Config& cfg, const std::string& journal_path, const ReplayOptions& opts,
           std::ostream& report, ReplaySummary* summary)
      : cfg_(cfg), path_(journal_path), opts_(opts), report_(report), s_(*summary) {}

  ~Replayer() {
    for (auto& [key, conn] : connections_) close(*conn);
  }

  int run() {
    const std::string applied_path = applied_state_path(path_);
    report_ << "pgtandem replay" << (opts_.dry_run ? " (dry run)" : "") << ": journal " << path_
            << "\n";
    std::string error;
    AppliedState applied;
    if (!read_applied(applied_path, &applied, &error)) return finish_with_failure(error);
    s_.last_applied_seq = applied.seq;
    report_ << "applied-state " << applied_path << ": "
            << (applied.seq == 0
                    ? std::string("nothing applied yet")
                    : "entries up to seq " + std::to_string(applied.seq) + " already applied")
            << "\n";
    if (!opts_.dry_run && !prepare_targets(&error)) return finish_with_failure(error);

    std::ifstream in(path_, std::ios::binary);
    if (!in) return finish_with_failure(errno_text("cannot open journal " + path_));

    std::string line;
    uint64_t line_no = 0;
    uint64_t prev_seq = 0;
    bool matched = applied.seq == 0;
    while (std::getline(in, line)) {
      ++line_no;
      if (in.eof()) {
        // No newline: pgtandem crashed mid-append (or is appending right now). The entry was
        // never acknowledged and pgtandem cuts it off when it reopens the journal.
        s_.torn_tail = true;
        report_ << "torn last line: line " << line_no << " (" << line.size()
                << " bytes, no newline) is incomplete and was not applied\n";
        break;
      }
      if (line.empty()) continue;
      JournalEntry entry;
      if (!parse_journal_line(line, &entry, &error)) {
        fail_entry("line " + std::to_string(line_no) + " is malformed: " + error);
        break;
      }
      ++s_.entries_read;
      if (entry.seq <= prev_seq) {
        fail_entry("line " + std::to_string(line_no) + ": seq " + std::to_string(entry.seq) +
                   " does not follow seq " + std::to_string(prev_seq));
        break;
      }
      prev_seq = entry.seq;
      const uint64_t fingerprint = fnv1a64(line);
      if (entry.seq <= applied.seq) {
        if (entry.seq == applied.seq) {
          if (fingerprint != applied.fingerprint) {
            fail_entry(mismatch_text(applied_path, applied.seq));
            break;
          }
          matched = true;
        }
        ++s_.already_applied;
        continue;
      }
      if (!matched && s_.already_applied > 0) {
        fail_entry(mismatch_text(applied_path, applied.seq));
        break;
      }
      matched = true;
      if (opts_.dry_run) {
        UnitScan scan;
        std::vector<UnitScan> state_scans;
        if (!validate(entry, &scan, &state_scans, &error)) {
          fail_entry(entry_label(entry) + ": " + error);
          break;
        }
        report_ << "would apply: seq=" << entry.seq << " target=" << entry.target
                << " session=" << entry.session.id << (entry.uncertain ? " uncertain" : "")
                << " sql=\"" << printable(entry.unit.first_sql) << "\"\n";
        ++s_.applied;
        continue;
      }
      Applied result = apply(entry);
      if (result == Applied::kFailed) break;
      ++s_.applied;
      if (entry.uncertain) ++s_.uncertain;
      if (result == Applied::kDiverged) ++s_.divergences;
      AppliedState now{entry.seq, fingerprint};
      if (!write_applied(applied_path, now, &error)) {
        fail_entry("seq " + std::to_string(entry.seq) + " was applied but could not be recorded: " +
                   error + " (it will be applied again by the next run)");
        break;
      }
      applied = now;
      s_.last_applied_seq = now.seq;
    }
    if (in.bad() && s_.failures == 0) fail_entry(errno_text("cannot read journal " + path_));
    if (s_.failures > 0) {
      // What the failure left for the next run: the rest of the journal, not looked at.
      while (std::getline(in, line)) {
        if (!in.eof() && !line.empty()) ++s_.not_attempted;
      }
    }
    if (s_.failures == 0 && !matched && s_.already_applied > 0)
      fail_entry(mismatch_text(applied_path, applied.seq));
    return finish();
  }

 private:
  std::string mismatch_text(const std::string& applied_path, uint64_t seq) {
    return applied_path + " records seq " + std::to_string(seq) +
           ", which is not the entry with that seq in this journal: the journal was replaced "
           "or edited. Remove " +
           applied_path + " only if none of its entries were applied";
  }

  void fail_entry(const std::string& what) {
    ++s_.failures;
    report_ << "failure: " << what << "\n";
  }

  int finish_with_failure(const std::string& what) {
    fail_entry(what);
    return finish();
  }

  int finish() {
    auto row = [this](std::string_view label, const std::string& value) {
      report_ << "  " << label << ":" << std::string(kSummaryWidth - label.size(), ' ') << value
              << "\n";
    };
    report_ << "summary:\n";
    row("entries read", std::to_string(s_.entries_read));
    row(opts_.dry_run ? "to apply" : "applied", std::to_string(s_.applied));
    row("skipped (already applied)", std::to_string(s_.already_applied));
    row("divergences", std::to_string(s_.divergences));
    row("failures", std::to_string(s_.failures));
    if (s_.not_attempted > 0)
      row("not attempted (after failure)", std::to_string(s_.not_attempted));
    if (s_.uncertain > 0) row("uncertain (sent again)", std::to_string(s_.uncertain));
    if (s_.torn_tail) row("torn last line", "1 (not applied)");
    row("last applied seq", std::to_string(s_.last_applied_seq));
    if (s_.failures > 0) return 1;
    if (s_.divergences > 0 || s_.torn_tail) return 2;
    return 0;
  }

  bool prepare_targets(std::string* error) {
    if (!resolve_targets(cfg_, &endpoints_, error)) return false;
    if (!cfg_.mirror.credentials_file.empty()) {
      config::PgpassLoadResult r = config::load_pgpass_file(cfg_.mirror.credentials_file);
      if (!r.ok()) {
        *error = "cannot use credentials file " + cfg_.mirror.credentials_file;
        for (const auto& e : r.errors) *error += "; " + e.to_string();
        return false;
      }
      pgpass_ = std::move(r.pgpass);
    }
    return true;
  }

  std::string entry_label(const JournalEntry& e) const {
    return "seq=" + std::to_string(e.seq) + " target=" + e.target + " session=" + e.session.id;
  }

  // Reports a failure for `e` and closes its connection (its protocol state is unknown).
  Applied failed(const JournalEntry& e, const std::string& key, const std::string& what) {
    fail_entry(entry_label(e) + ": " + what + "; replay stopped here");
    auto it = connections_.find(key);
    if (it != connections_.end()) {
      close(*it->second);
      connections_.erase(it);
    }
    return Applied::kFailed;
  }

  void close(Connection& c) {
    if (!c.socket || !c.socket->is_open()) return;
    std::string terminate;
    protocol::encode(terminate, protocol::Terminate{});
    boost::system::error_code ignored;
    asio::write(*c.socket, asio::buffer(terminate), ignored);
    c.socket->close(ignored);
  }

  Exchange run_exchange(Connection& c, std::string_view bytes, uint32_t want) {
    Exchange fallback;
    fallback.error = "internal error";
    return run_sync(io_, exchange(*c.socket, c.buf, bytes, want, opts_.unit_timeout), fallback);
  }

  // After a unit or state unit ran: what it did to the named statements we track.
  static void forget_statements(Connection& c, const UnitScan& scan) {
    if (scan.may_deallocate) c.statements.clear();
    for (const auto& name : scan.touched) c.statements.erase(name);
  }

  // A unit must leave no transaction open, or the next one would run inside it.
  bool end_transaction(Connection& c, const Exchange& x, std::vector<std::string>* notes,
                       std::string* error) {
    if (x.status == protocol::kTxIdle) return true;
    notes->push_back(std::string("left a transaction open on the target (status ") + x.status +
                     "), rolled back");
    std::string rollback;
    protocol::encode(rollback, protocol::Query{"ROLLBACK"});
    Exchange r = run_exchange(c, rollback, 1);
    if (!r.ok) {
      *error = "ROLLBACK after the unit: " + r.error;
      return false;
    }
    return true;
  }

  Connection* open_connection(const JournalEntry& e, const std::string& key,
                              const TargetEndpoint& te, const config::Target& t,
                              std::string* error) {
    if (connections_.size() >= opts_.max_connections && !connections_.empty()) {
      auto lru = connections_.begin();
      for (auto it = connections_.begin(); it != connections_.end(); ++it)
        if (it->second->last_use < lru->second->last_use) lru = it;
      close(*lru->second);
      connections_.erase(lru);
    }
    auto c = std::make_unique<Connection>();
    c->socket = std::make_unique<Socket>(io_);
    boost::system::error_code ec = run_sync(
        io_,
        connect_target(*c->socket, te, std::chrono::milliseconds(cfg_.limits.connect_timeout_ms)),
        boost::system::error_code(asio::error::fault));
    if (ec) {
      *error = "cannot connect to target " + t.name + " at " + te.description + ": " +
               ec.message() + " (not applied)";
      return nullptr;
    }
    LoginParams p;
    p.user = e.session.user;
    p.database = e.session.database;
    p.application_name = opts_.application_name;
    for (const auto& [name, value] : e.session.params) {
      // user and database have their own fields; replication and protocol options do not apply
      // to a replayed session.
      if (name == "user" || name == "database" || name == "replication" ||
          name.rfind("_pq_.", 0) == 0)
        continue;
      p.extra.emplace_back(name, value);
    }
    p.pgpass = pgpass_ ? &*pgpass_ : nullptr;
    p.pgpass_host = pgpass_host(t);
    p.pgpass_port = t.port;
    p.timeout = opts_.login_timeout;
    LoginResult failed_login;
    failed_login.message = "internal error";
    LoginResult login = run_sync(io_, login_backend(*c->socket, p), failed_login);
    if (!login.ok) {
      *error = "cannot log in to target " + t.name + " at " + te.description + " as \"" + p.user +
               "\" (database \"" + p.database + "\"): " + login.sqlstate + " " + login.message +
               " (not applied)";
      boost::system::error_code ignored;
      c->socket->close(ignored);
      return nullptr;
    }
    c->buf = std::move(login.leftover);
    Connection* raw = c.get();
    connections_[key] = std::move(c);
    return raw;
  }

  // Runs the entry's state units that the connection has not run yet; false on a failure.
  bool run_state(Connection& c, const JournalEntry& e, size_t from,
                 const std::vector<UnitScan>& scans, std::vector<std::string>* notes,
                 std::string* error) {
    for (size_t i = from; i < e.session.state.size(); ++i) {
      Exchange x = run_exchange(c, e.session.state[i], scans[i].requests);
      if (!x.ok) {
        *error = "session state unit " + std::to_string(i + 1) + ": " + x.error + " (not applied)";
        return false;
      }
      forget_statements(c, scans[i]);
      for (const auto& err : x.errors)
        notes->push_back("session state unit " + std::to_string(i + 1) + " failed: " + err);
      if (!end_transaction(c, x, notes, error)) return false;
      c.state.push_back(e.session.state[i]);
    }
    return true;
  }

  // The entry's messages are whole and of the kinds a unit may hold; the target exists.
  bool validate(const JournalEntry& e, UnitScan* scan, std::vector<UnitScan>* state_scans,
                std::string* error) {
    if (!scan_unit(e.unit.bytes, scan, error)) {
      *error = "malformed unit: " + *error + " (not applied)";
      return false;
    }
    state_scans->assign(e.session.state.size(), UnitScan{});
    for (size_t i = 0; i < e.session.state.size(); ++i) {
      if (!scan_unit(e.session.state[i], &(*state_scans)[i], error)) {
        *error = "malformed session state unit " + std::to_string(i + 1) + ": " + *error +
                 " (not applied)";
        return false;
      }
    }
    for (const auto& [name, parse] : e.session.prepared) {
      if (!check_prepared(name, parse, error)) {
        *error = "malformed entry: " + *error + " (not applied)";
        return false;
      }
    }
    if (cfg_.find_target(e.target) == nullptr) {
      *error = "no target named \"" + e.target + "\" in the config (not applied)";
      return false;
    }
    return true;
  }

  Applied apply(const JournalEntry& e) {
    const std::string key = e.session.id + '\0' + e.target;
    std::string error;

    // Check everything before sending anything: a malformed entry must not reach the target.
    UnitScan scan;
    std::vector<UnitScan> state_scans;
    if (!validate(e, &scan, &state_scans, &error)) return failed(e, key, error);
    const config::Target* target = cfg_.find_target(e.target);
    const TargetEndpoint* te = nullptr;
    for (const auto& candidate : endpoints_)
      if (candidate.name == e.target) te = &candidate;
    if (target == nullptr || te == nullptr)
      return failed(e, key, "no target named \"" + e.target + "\" in the config (not applied)");

    std::vector<std::string> notes;
    Connection* c = nullptr;
    size_t state_done = 0;
    auto it = connections_.find(key);
    if (it != connections_.end()) {
      // Reuse the session's connection if what it ran is where this entry's session state
      // starts; otherwise the states disagree and only a fresh connection is certain.
      const auto& ran = it->second->state;
      bool prefix = ran.size() <= e.session.state.size() &&
                    std::equal(ran.begin(), ran.end(), e.session.state.begin());
      if (prefix) {
        c = it->second.get();
        state_done = ran.size();
      } else {
        close(*it->second);
        connections_.erase(it);
      }
    }
    if (c == nullptr) {
      c = open_connection(e, key, *te, *target, &error);
      if (c == nullptr) return failed(e, key, error);
    }
    c->last_use = ++use_clock_;
    if (!run_state(*c, e, state_done, state_scans, &notes, &error)) return failed(e, key, error);

    // (Re)prepare what the unit binds without parsing it itself, and make room for what it
    // parses first. Close of a statement that does not exist is not an error.
    std::string batch;
    std::vector<std::pair<std::string, std::string>> preparing;
    for (const auto& name : scan.parses_first) {
      protocol::encode(batch, protocol::Close{protocol::kTargetStatement, name});
      c->statements.erase(name);
    }
    for (const auto& name : scan.needs) {
      const std::string* parse = nullptr;
      for (const auto& [pname, pbytes] : e.session.prepared)
        if (pname == name) parse = &pbytes;
      if (parse == nullptr) continue;  // not journaled: the target answers as it will
      auto known = c->statements.find(name);
      if (known != c->statements.end() && known->second == *parse) continue;
      protocol::encode(batch, protocol::Close{protocol::kTargetStatement, name});
      batch += *parse;
      preparing.emplace_back(name, *parse);
    }
    if (!batch.empty()) {
      protocol::encode(batch, protocol::Sync{});
      Exchange x = run_exchange(*c, batch, 1);
      if (!x.ok) return failed(e, key, "preparing statements: " + x.error + " (not applied)");
      if (x.errors.empty()) {
        for (auto& [name, parse] : preparing) c->statements[name] = std::move(parse);
      } else {
        for (const auto& [name, parse] : preparing) c->statements.erase(name);
        for (const auto& err : x.errors) notes.push_back("preparing statements failed: " + err);
      }
    }

    // Each request of the unit is answered by one ReadyForQuery; the journal's count is the
    // primary's, the scan's the same unless the entry was built by hand without it.
    uint32_t want = e.unit.responses > 0 ? e.unit.responses : scan.requests;
    Exchange x = run_exchange(*c, e.unit.bytes, want);
    if (!x.ok) {
      return failed(e, key,
                    x.error +
                        " (the unit was sent: it may have been applied; the next "
                        "run applies it again)");
    }
    forget_statements(*c, scan);
    if (!end_transaction(*c, x, &notes, &error)) return failed(e, key, error);
    // The mirror adds a session-state unit to the state of the session's later entries even when
    // the unit itself was journaled: this connection has run it now, and must not run it again
    // as state (a second PREPARE or DEALLOCATE would fail).
    if (e.unit.session_state && !scan.only_prepares) c->state.push_back(e.unit.bytes);
    if (x.outcomes != e.unit.primary) {
      std::string d = "primary=" + describe(e.unit.primary) + " target=" + describe(x.outcomes);
      for (const auto& err : x.errors) d += " (" + printable(err) + ")";
      notes.insert(notes.begin(), d);
    }
    if (notes.empty()) return Applied::kMatched;
    report_ << "divergence: " << entry_label(e)
            << (e.uncertain ? " (uncertain: the target may "
                              "have applied it before)"
                            : "")
            << ":";
    for (size_t i = 0; i < notes.size(); ++i) report_ << (i > 0 ? ";" : "") << " " << notes[i];
    report_ << " sql=\"" << printable(e.unit.first_sql) << "\"\n";
    return Applied::kDiverged;
  }

  const config::Config& cfg_;
  std::string path_;
  const ReplayOptions& opts_;
  std::ostream& report_;
  ReplaySummary& s_;
  asio::io_context io_{1};
  std::vector<TargetEndpoint> endpoints_;
  std::optional<config::Pgpass> pgpass_;
  std::map<std::string, std::unique_ptr<Connection>> connections_;  // by session id and target
  uint64_t use_clock_ = 0;
};

constexpr const char* kReplayUsage =
    "Usage: pgtandem replay --config FILE --journal FILE [--dry-run]\n"
    "\n"
    "Applies the mirror journal to its targets in order and reports what it did. What was\n"
    "applied is recorded in FILE.applied, so running it again never applies an entry twice.\n"
    "\n"
    "Exit status: 0 all applied as on the primary; 1 a failure stopped replay; 2 applied, with\n"
    "divergences or a torn last line; 64 usage error.\n";

}  // namespace

std::string applied_state_path(const std::string& journal_path) {
  return journal_path + ".applied";
}

int run_replay(const config::Config& cfg, const std::string& journal_path,
               const ReplayOptions& opts, std::ostream& report, ReplaySummary* summary) {
  ReplaySummary local;
  ReplaySummary* s = summary != nullptr ? summary : &local;
  *s = ReplaySummary{};
  Replayer replayer(cfg, journal_path, opts, report, s);
  int code = replayer.run();
  report.flush();
  return code;
}

int run_replay(const config::Config& cfg, const std::string& journal_path,
               const ReplayOptions& opts, std::ostream& report) {
  return run_replay(cfg, journal_path, opts, report, nullptr);
}

int replay_main(int argc, char** argv) {
  std::string config_path;
  std::string journal_path;
  ReplayOptions opts;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kReplayUsage, stdout);
      return 0;
    }
    if (arg == "--dry-run") {
      opts.dry_run = true;
    } else if (arg == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (arg == "--journal" && i + 1 < argc) {
      journal_path = argv[++i];
    } else {
      std::fprintf(stderr, "pgtandem replay: unexpected argument \"%s\"\n\n%s", argv[i],
                   kReplayUsage);
      return 64;
    }
  }
  if (config_path.empty() || journal_path.empty()) {
    std::fputs(kReplayUsage, stderr);
    return 64;
  }
  config::LoadResult loaded = config::load_file(config_path);
  if (!loaded.ok()) {
    for (const auto& e : loaded.errors) std::fprintf(stderr, "%s\n", e.to_string().c_str());
    return 1;
  }
  log::Level level = log::Level::kWarn;
  log::parse_level(loaded.config->log.level, &level);
  log::configure(level,
                 loaded.config->log.format == "json" ? log::Format::kJson : log::Format::kLogfmt);
  return run_replay(*loaded.config, journal_path, opts, std::cout);
}

}  // namespace pgtandem::proxy

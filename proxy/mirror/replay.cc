// `pgtandem replay` and the engine automatic catch-up shares (JournalApplier): applies a journal's
// unapplied entries in commit order on pipelined connections and records what it applied. This
// file: reading the journal (lines, entries, commit order, what is pending), the applied-state and
// the target's record of what was applied (group commit, flushed before the state moves), the
// report, and the command. The engine's connections: replay_connections.cc; its apply:
// replay_apply.cc; the class and its helpers: replay_applier.h. Beside it: the wire exchange
// (replay_wire.cc), the applied-state file (replay_state.cc), and what an entry's messages are and
// how they are sent (replay_units.cc, text only).
#include "proxy/mirror/replay_applier.h"

#include <boost/asio/experimental/awaitable_operators.hpp>

namespace pgtandem::proxy {

using namespace replay_detail;  // the engine's helpers, the wire exchange, the unit scan
using namespace asio::experimental::awaitable_operators;

JournalApplier::Impl::~Impl() {
  for (auto& [key, conn] : connections_) close(*conn);
  if (fd_ >= 0) ::close(fd_);
}

bool JournalApplier::Impl::open(std::string* error) {
  applied_path_ = applied_state_path(path_);
  if (!read_applied(applied_path_, &applied_, error)) return false;
  s_.last_applied_seq = applied_.seq;
  matched_ = applied_.seq == 0;
  if (!opts_.dry_run && !prepare_targets(error)) return false;
  fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) {
    *error = errno_text("cannot open journal " + path_);
    return false;
  }
  return true;
}

PassResult JournalApplier::Impl::pass(const ApplyHooks* hooks) {
  PassResult r;
  std::string error;
  // A malformed line stops reading there; the entries before it are still applied.
  PassResult read;
  const bool read_ok = read_new(hooks, &read);
  // Commit order: by process (in the order they wrote to the journal), then by the number each
  // unit got when the primary's answer to its COMMIT reached pgtandem, then by file position.
  std::stable_sort(pending_.begin(), pending_.end(), [](const Pending& a, const Pending& b) {
    if (a.epoch != b.epoch) return a.epoch < b.epoch;
    if (a.e.unit.seq != b.e.unit.seq) return a.e.unit.seq < b.e.unit.seq;
    return a.e.seq < b.e.seq;
  });
  // The running process's entries wait until every unit numbered before them is settled
  // (applied live or journaled): a lower-numbered one may still be on its way to the journal.
  size_t ready = pending_.size();
  if (hooks != nullptr && hooks->done_through) {
    const uint64_t done = hooks->done_through();
    for (size_t i = 0; i < pending_.size(); ++i) {
      const Pending& p = pending_[i];
      if (p.process == hooks->process_tag && p.e.unit.seq > done) {
        ready = i;
        break;
      }
    }
  }
  size_t next = 0;
  singles_until_ = 0;
  // Catch-up returns now and then (its metrics, a stop request); the command applies it all.
  const uint64_t most = hooks != nullptr ? kMaxPerPass : UINT64_MAX;
  while (next < ready && r.failure.empty() && r.applied + r.skipped < most) {
    next = apply_batch(next, ready, &r);
  }
  pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(next));
  // Group commit: at the end of the command, else at most every kFlushEvery (the target's
  // record covers the rest).
  const bool flush_now = hooks == nullptr ||
                         Clock::now() - last_flush_ >= kFlushEvery;
  if (flush_now && !record(&error)) r.failure = error;
  if (!read_ok && r.failure.empty()) r.failure = read.failure;
  r.failed = !r.failure.empty();
  return r;
}

int JournalApplier::Impl::run() {
  report_ << "pgtandem replay" << (opts_.dry_run ? " (dry run)" : "") << ": journal " << path_
          << "\n";
  std::string error;
  if (!open(&error)) {
    if (fd_ < 0 && applied_path_.empty()) applied_path_ = applied_state_path(path_);
    return finish_with_failure(error);
  }
  report_ << "applied-state " << applied_path_ << ": "
          << (applied_.seq == 0
                  ? std::string("nothing applied yet")
                  : "entries up to seq " + std::to_string(applied_.seq) + " already applied")
          << "\n";
  PassResult r = pass(nullptr);
  if (!r.failure.empty() && s_.failures == 0) fail_entry(r.failure);
  // (The entry that failed is the first pending one.)
  if (s_.failures > 0 && !pending_.empty()) s_.not_attempted += pending_.size() - 1;
  if (!partial_.empty()) {
    s_.torn_tail = true;
    report_ << "torn last line: line " << line_no_ + 1 << " (" << partial_.size()
            << " bytes, no newline) is incomplete and was not applied\n";
  }
  if (s_.failures == 0 && !matched_ && s_.already_applied > 0)
    fail_entry(mismatch_text(applied_.seq));
  return finish();
}

uint64_t JournalApplier::Impl::pending_bytes() const {
  uint64_t b = 0;
  for (const auto& p : pending_) b += p.bytes;
  return b;
}

int64_t JournalApplier::Impl::oldest_pending_time() const {
  int64_t t = 0;
  for (const auto& p : pending_)
    if (p.ts != 0 && (t == 0 || p.ts < t)) t = p.ts;
  return t;
}

bool JournalApplier::Impl::read_new(const ApplyHooks* hooks, PassResult* r) {
  (void)hooks;
  char chunk[64 * 1024];
  for (;;) {
    ssize_t n = ::pread(fd_, chunk, sizeof chunk, static_cast<off_t>(offset_));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      r->failure = errno_text("cannot read journal " + path_);
      r->failed = true;
      fail_entry(r->failure);
      return false;
    }
    if (n == 0) break;
    offset_ += static_cast<uint64_t>(n);
    partial_.append(chunk, static_cast<size_t>(n));
    size_t start = 0;
    for (size_t nl = partial_.find('\n'); nl != std::string::npos;
         nl = partial_.find('\n', start)) {
      std::string_view line(partial_.data() + start, nl - start);
      start = nl + 1;
      ++line_no_;
      if (line.empty()) continue;
      if (!take_line(std::string(line), r)) {
        partial_.erase(0, start);
        return false;
      }
    }
    partial_.erase(0, start);
  }
  return true;
}

bool JournalApplier::Impl::take_line(const std::string& line, PassResult* r) {
  JournalEntry entry;
  std::string error;
  auto fail = [&](const std::string& what) {
    r->failure = what;
    r->failed = true;
    fail_entry(what);
    return false;
  };
  if (!parse_journal_line(line, &entry, &error))
    return fail("line " + std::to_string(line_no_) + " is malformed: " + error);
  ++s_.entries_read;
  if (entry.seq <= prev_seq_) {
    return fail("line " + std::to_string(line_no_) + ": seq " + std::to_string(entry.seq) +
                " does not follow seq " + std::to_string(prev_seq_));
  }
  prev_seq_ = entry.seq;
  const uint64_t fingerprint = fnv1a64(line);
  if (journal_id_.empty()) journal_id_ = hex16(fingerprint);  // the first line names the journal
  if (entry.seq <= applied_.seq) {
    if (entry.seq == applied_.seq) {
      if (fingerprint != applied_.fingerprint) return fail(mismatch_text(applied_.seq));
      matched_ = true;
    }
    ++s_.already_applied;
    return true;
  }
  if (!matched_ && s_.already_applied > 0) return fail(mismatch_text(applied_.seq));
  matched_ = true;
  Pending p;
  p.fingerprint = fingerprint;
  p.bytes = line.size() + 1;
  p.ts = line_time(line);
  p.process = process_of(entry.session.id);
  auto [it, inserted] = epochs_.emplace(p.process, epochs_.size());
  p.epoch = it->second;
  fingerprints_[entry.seq] = fingerprint;
  unapplied_.insert(entry.seq);
  p.e = std::move(entry);
  pending_.push_back(std::move(p));
  return true;
}

bool JournalApplier::Impl::record(std::string* error) {
  if (opts_.dry_run) return true;
  uint64_t through = unapplied_.empty() ? prev_seq_ : *unapplied_.begin() - 1;
  auto it = fingerprints_.upper_bound(through);
  if (it == fingerprints_.begin()) return true;  // nothing new read below it
  --it;
  AppliedState now{it->first, it->second};
  if (now.seq <= applied_.seq) return true;
  last_flush_ = Clock::now();
  if (!flush_targets()) return true;  // the file waits; the target's record covers the entries
  fingerprints_.erase(fingerprints_.begin(), std::next(it));
  if (!write_applied(applied_path_, now, error)) {
    *error = "seq " + std::to_string(now.seq) + " was applied but could not be recorded: " +
             *error + " (entries since " + std::to_string(applied_.seq) +
             " may be applied again where the target does not record them)";
    return false;
  }
  applied_ = now;
  s_.last_applied_seq = now.seq;
  return true;
}

bool JournalApplier::Impl::flush_targets() {
  bool ok = true;
  std::vector<std::string> broken;
  for (auto& [key, c] : connections_) {
    if (!c->unflushed) continue;
    std::string q;
    protocol::encode(
        q, protocol::Query{std::string("BEGIN; SET LOCAL synchronous_commit = on; INSERT INTO ") +
                           kMarkerTable + " (session, seq) VALUES (" +
                           sql_literal(journal_id_ + "/flush") +
                           ", 0) ON CONFLICT (session) DO UPDATE SET applied_at = now(); COMMIT"});
    Exchange x = run_exchange(*c, q, 1);
    if (!x.ok || !x.errors.empty() || x.status != protocol::kTxIdle) {
      ok = false;
      broken.push_back(key);
      continue;
    }
    c->unflushed = false;
  }
  for (const auto& key : broken) drop(key);
  return ok;
}

std::string JournalApplier::Impl::mismatch_text(uint64_t seq) {
  return applied_path_ + " records seq " + std::to_string(seq) +
         ", which is not the entry with that seq in this journal: the journal was replaced "
         "or edited. Remove " +
         applied_path_ + " only if none of its entries were applied";
}

void JournalApplier::Impl::fail_entry(const std::string& what) {
  ++s_.failures;
  report_ << "failure: " << what << "\n";
}

int JournalApplier::Impl::finish_with_failure(const std::string& what) {
  fail_entry(what);
  return finish();
}

int JournalApplier::Impl::finish() {
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
  if (s_.groups > 0 || s_.groups_retried > 0)
    row("grouped transactions", std::to_string(s_.groups) + " (" +
                                    std::to_string(s_.groups_retried) +
                                    " rolled back and sent one entry at a time)");
  if (s_.torn_tail) row("torn last line", "1 (not applied)");
  row("last applied seq", std::to_string(s_.last_applied_seq));
  if (s_.failures > 0) return 1;
  if (s_.divergences > 0 || s_.torn_tail) return 2;
  return 0;
}


JournalApplier::JournalApplier(const config::Config& cfg, std::string journal_path,
                               ReplayOptions opts, std::ostream& report, ReplaySummary* summary)
    : impl_(std::make_unique<Impl>(cfg, std::move(journal_path), std::move(opts), report,
                                   summary)) {}
JournalApplier::~JournalApplier() = default;
bool JournalApplier::open(std::string* error) { return impl_->open(error); }
PassResult JournalApplier::pass(const ApplyHooks* hooks) { return impl_->pass(hooks); }
size_t JournalApplier::pending() const { return impl_->pending(); }
uint64_t JournalApplier::pending_bytes() const { return impl_->pending_bytes(); }
int64_t JournalApplier::oldest_pending_time() const { return impl_->oldest_pending_time(); }
uint64_t JournalApplier::read_through() const { return impl_->read_through(); }
uint64_t JournalApplier::file_offset() const { return impl_->file_offset(); }
uint64_t JournalApplier::recorded_seq() const { return impl_->recorded_seq(); }

namespace {

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
  JournalApplier::Impl replayer(cfg, journal_path, opts, report, s);
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

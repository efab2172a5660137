// Progress of backfill, verify and repair (class Progress, proxy/migrate/common.h): lines on the
// terminal, the state file, and the same document POSTed to every running pgtandem
// (docs/migration.md, "Progress in pgtandem").
#include <unistd.h>

#include <cstdio>
#include <ctime>

#include "policy/migrate/run_board.h"
#include "proxy/migrate/chunk_copy.h"
#include "proxy/migrate/common.h"

namespace pgtandem::proxy::migrate {

using Clock = std::chrono::steady_clock;

Progress::Progress(std::string command, std::string state_path, const Context* ctx)
    : command_(std::move(command)), state_path_(std::move(state_path)) {
  tty_ = ::isatty(STDOUT_FILENO) == 1;
  started_ = Clock::now();
  started_unix_ = static_cast<int64_t>(std::time(nullptr));
  run_id_ = std::to_string(::getpid()) + "-" + std::to_string(started_unix_);
  if (ctx && !ctx->admin_token.empty()) {
    admins_ = ctx->report_admins;
    token_ = ctx->admin_token;
  } else if (ctx && !ctx->report_admins.empty()) {
    std::fprintf(stderr,
                 "pgtandem %s: note: progress is not reported to pgtandem (POST /migrate/progress "
                 "needs [admin] token or token_file in the config)\n",
                 command_.c_str());
  }
}

Progress::~Progress() { stop(); }

void Progress::start() {
  tick(false, false);  // pgtandem learns of the run at once
  thread_ = std::thread([this] {
    const auto print_interval = std::chrono::milliseconds(tty_ ? 500 : 5000);
    const auto state_interval = std::chrono::milliseconds(1000);
    auto next_print = Clock::now() + print_interval;
    auto next_state = Clock::now() + state_interval;
    while (!stop_.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      const auto now = Clock::now();
      const bool print = now >= next_print;
      if (print || now >= next_state) {
        tick(false, print);
        if (print) next_print = Clock::now() + print_interval;
        next_state = Clock::now() + state_interval;
      }
    }
  });
}

void Progress::finish(int exit_code, std::string error) {
  {
    std::lock_guard lock(mu_);
    exit_code_ = exit_code;
    error_ = std::move(error);
  }
  stop();
}

void Progress::stop() {
  if (!thread_.joinable()) return;
  stop_ = true;
  thread_.join();
  tick(true, true);
}

void Progress::table_started(const std::string& table, int64_t estimated_rows) {
  std::lock_guard lock(mu_);
  auto& e = tables_[table];
  e.estimated = estimated_rows;
  e.started = Clock::now();
}

void Progress::add(const std::string& table, int64_t rows, int64_t bytes, int64_t chunks) {
  std::lock_guard lock(mu_);
  auto& e = tables_[table];
  e.rows += rows;
  e.bytes += bytes;
  e.chunks += chunks;
}

void Progress::table_done(const std::string& table) {
  std::lock_guard lock(mu_);
  auto& e = tables_[table];
  e.done = true;
  e.seconds = std::chrono::duration<double>(Clock::now() - e.started).count();
}

void Progress::post(const std::string& body) {
  for (const auto& a : admins_) {
    int status = 0;
    std::string answer, e;
    const bool sent = admin_request(a, "POST", "/migrate/progress", {"Authorization: Bearer " + token_}, body,
                                    2000, &status, &answer, &e);
    if ((!sent || status != 200) && !post_warned_) {
      post_warned_ = true;  // once per run: a pgtandem that is not running is not an error
      std::fprintf(stderr, "pgtandem %s: note: progress not reported to pgtandem at %s: %s\n", command_.c_str(),
                   a.c_str(), sent ? ("answered " + std::to_string(status) + " " + answer).c_str() : e.c_str());
    }
  }
}

void Progress::tick(bool final, bool print) {
  std::unique_lock lock(mu_);
  std::vector<std::string> lines;
  const double run_seconds = std::chrono::duration<double>(Clock::now() - started_).count();
  const int64_t now_unix = static_cast<int64_t>(std::time(nullptr));
  pm::Json state = pm::Json::object();
  state.set("command", pm::Json::string(command_));
  state.set("run", pm::Json::string(run_id_));
  // verify's 1 means "differences found": the run itself finished.
  const bool failed = exit_code_ != 0 && !(command_ == "verify" && exit_code_ == 1);
  state.set("state", pm::Json::string(!final ? "running" : failed ? "failed" : "done"));
  state.set("running", pm::Json::boolean(!final));
  state.set("started_at", pm::Json::integer(started_unix_));
  state.set("updated_at", pm::Json::integer(now_unix));
  state.set("finished_at", final ? pm::Json::integer(now_unix) : pm::Json::null());
  state.set("exit_code", final ? pm::Json::integer(exit_code_) : pm::Json::null());
  state.set("error", pm::Json::string(error_));
  state.set("seconds", pm::Json::number(run_seconds));
  // Unfinished tables first, at most kMaxTables (what a pgtandem keeps; pm::RunBoard).
  std::vector<pm::Json> unfinished, finished;
  int64_t rows = 0, chunks = 0, bytes = 0;
  for (const auto& [name, e] : tables_) {
    const double secs = e.done ? e.seconds : std::chrono::duration<double>(Clock::now() - e.started).count();
    if (!e.done || final) {
      std::string l = pm::format_progress(name, e.rows, e.estimated > 0 ? e.estimated : -1, e.bytes, secs);
      if (e.done) l += "  done";
      if (!final || tty_ || e.done) lines.push_back(l);
    }
    rows += e.rows;
    chunks += e.chunks;
    bytes += e.bytes;
    pm::Json t = pm::Json::object();
    t.set("table", pm::Json::string(name));
    t.set("rows", pm::Json::integer(e.rows));
    t.set("bytes", pm::Json::integer(e.bytes));
    t.set("chunks", pm::Json::integer(e.chunks));
    t.set("estimated_rows", pm::Json::integer(e.estimated));
    t.set("done", pm::Json::boolean(e.done));
    (e.done ? finished : unfinished).push_back(std::move(t));
  }
  pm::Json tables = pm::Json::array();
  const int64_t done_count = static_cast<int64_t>(finished.size());
  for (auto* list : {&unfinished, &finished})
    for (auto& t : *list)
      if (tables.items().size() < pm::RunBoard::kMaxTables) tables.push(std::move(t));
  state.set("rows", pm::Json::integer(rows));
  state.set("chunks", pm::Json::integer(chunks));
  state.set("bytes", pm::Json::integer(bytes));
  state.set("differences", pm::Json::integer(differences_.load()));
  // Chunks whose barrier ended by the answer drain (exact) or waited out the grace (docs/migration.md).
  state.set("barriers_drained", pm::Json::integer(barrier_ ? barrier_->drained() : 0));
  state.set("barriers_by_grace", pm::Json::integer(barrier_ ? barrier_->by_grace() : 0));
  state.set("repaired", pm::Json::integer(repaired_.load()));
  state.set("tables_total", pm::Json::integer(static_cast<int64_t>(tables_.size())));
  state.set("tables_done", pm::Json::integer(done_count));
  state.set("tables", std::move(tables));
  const std::string doc = state.dump();
  std::string ignored;
  if (!state_path_.empty()) write_file_atomic(state_path_, doc + "\n", &ignored);
  if (print) {
    if (tty_) {
      std::string out;
      for (size_t i = 0; i < lines_drawn_; ++i) out += "\033[1A\033[2K";
      for (const auto& l : lines) out += l + "\n";
      lines_drawn_ = final ? 0 : lines.size();
      std::fputs(out.c_str(), stdout);
    } else if (!final) {
      for (const auto& l : lines) std::printf("progress: %s\n", l.c_str());
    }
    std::fflush(stdout);
  }
  lock.unlock();
  if (!admins_.empty()) post(doc);  // off the lock: workers keep adding meanwhile
}

}  // namespace pgtandem::proxy::migrate

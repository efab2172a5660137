// What mirroring needs at start, or at the first reload that switches it on: pgtandem's
// credentials for the mirror target, the state dir's crash-window marker, the journal, catch-up,
// and their gauges. The rest of the process is proxy/server.cc.
#include <memory>
#include <string>

#include "proxy/mirror/catchup.h"
#include "proxy/mirror/journal.h"
#include "proxy/mirror/mirror_fence.h"
#include "proxy/mirror/mirror_safety.h"
#include "proxy/server_impl.h"
#include "proxy/telemetry/log.h"

namespace pgtandem::proxy {

// What mirroring needs besides the config: pgtandem's credentials and the journal. At start when
// mirror_writes is on, or at the first reload that switches it on (before that snapshot is
// published, so no session that sees mirror_writes can miss them).
bool Server::Impl::open_mirror(const config::Config& cfg, std::string* error) {
  const auto& m = cfg.mirror;
  std::shared_ptr<const config::Pgpass> pgpass;
  if (!m.credentials_file.empty()) {
    auto pg = config::load_pgpass_file(m.credentials_file);
    if (!pg.ok()) {
      *error = "cannot read mirror.credentials_file: " +
               (pg.errors.empty() ? std::string("unknown error") : pg.errors.front().to_string());
      return false;
    }
    pgpass = std::make_shared<const config::Pgpass>(std::move(*pg.pgpass));
  }
  // The state dir first: its marker says whether the previous process stopped cleanly, and a
  // state dir that cannot be written is a clear error now, never a journal in the cwd.
  if (!state.mirror.safety) {
    auto safety = MirrorSafety::open(cfg.state_dir, error);
    if (!safety) return false;
    state.mirror.safety = std::move(safety);
  }
  FsyncPolicy policy = m.journal_fsync == "always"  ? FsyncPolicy::kAlways
                       : m.journal_fsync == "never" ? FsyncPolicy::kNever
                                                    : FsyncPolicy::kInterval;
  std::string journal_error;
  auto journal = Journal::open(m.journal_path, policy, m.journal_fsync_interval_ms, &journal_error);
  if (!journal) {
    // Without a journal a write the mirror cannot apply would be lost: refuse to start.
    *error = "cannot open mirror journal " + m.journal_path + ": " + journal_error;
    return false;
  }
  // File-mode logins read state.mirror.pgpass from the workers: once set at start, it is never replaced.
  if (!state.mirror.pgpass) state.mirror.pgpass = std::move(pgpass);
  state.mirror.journal = std::move(journal);
  Journal* j = state.mirror.journal.get();
  metrics->set_mirror_sources(&state.mirror.queue_bytes, [j] { return j->bytes(); });
  watch_mirror_safety();
  log::info("mirror state", {{"state_dir", cfg.state_dir}, {"journal", m.journal_path}});
  if (m.catchup && !catchup) {
    state.mirror.backlog.enabled = true;
    catchup = std::make_unique<Catchup>(state, cfg);
    if (!catchup->open(error)) {
      *error = "mirror catch-up: " + *error;
      catchup.reset();
      state.mirror.backlog.enabled = false;
      return false;
    }
    catchup->start();
    fence = std::make_unique<MirrorFence>(state, m.journal_max_bytes);
    ServerState* st = &state;
    metrics->set_extra_source([st] { return mirror_backlog_samples(*st); });
  }
  return true;
}

// The crash-window marker's sampler and the gauges of the journal's limit and needs-repair marks.
void Server::Impl::watch_mirror_safety() {
  ServerState* st = &state;
  MirrorSafety* safety = state.mirror.safety.get();
  safety->start_sampler([st] {
    MirrorSample s;
    const auto snap = st->snapshot.load(std::memory_order_acquire);
    s.mirroring = snap ? snap->config->mirror_writes : st->config->mirror_writes;
    const size_t primary = snap ? snap->primary : st->primary;
    s.target = st->targets.size() == 2 ? st->targets[1 - primary].name
                                       : st->targets[st->mirror.secondary.load()].name;
    s.last_assigned = st->mirror.order.last_assigned();
    s.done_through = st->mirror.order.done_through();
    s.queue_bytes = st->mirror.queue_bytes.load(std::memory_order_relaxed);
    return s;
  });
  metrics->add_gauge("pgtandem_mirror_journal_limit_bytes",
                     "[mirror] journal_max_bytes: the journal size at which journal_full applies",
                     [st] {
                       const auto snap = st->snapshot.load(std::memory_order_acquire);
                       const auto& m = snap ? snap->config->mirror : st->config->mirror;
                       return static_cast<double>(m.journal_max_bytes);
                     });
  metrics->add_gauge("pgtandem_mirror_unordered_overlaps",
                     "Mirrored transactions (ended by a lone COMMIT) applied beside another whose "
                     "COMMIT crossed theirs (forwarded after, answered before): not ordered "
                     "against it, by design; they cannot have written the same rows (since start)",
                     [st] { return static_cast<double>(st->mirror.order.unordered_overlaps()); });
  metrics->add_gauge("pgtandem_mirror_stopped",
                     "1 when mirroring stopped because the journal reached its limit "
                     "(journal_full = \"stop\"); until restart",
                     [safety] { return safety->stopped() ? 1.0 : 0.0; });
  metrics->add_gauge("pgtandem_mirror_not_mirrored_writes",
                     "Writes not mirrored since mirroring stopped at the journal's limit",
                     [safety] { return static_cast<double>(safety->not_mirrored()); });
  metrics->add_gauge("pgtandem_mirror_needs_repair",
                     "Needs-repair marks (crash windows, journal-full stops) not yet cleared",
                     [safety] { return static_cast<double>(safety->marks().size()); });
  metrics->add_gauge("pgtandem_mirror_crash_window_seconds",
                     "Length of the uncleared crash windows (unclean stops while mirroring): "
                     "writes committed then may be missing on the mirror target; 0 = none",
                     [safety] { return safety->crash_window_seconds(); });
}

}  // namespace pgtandem::proxy

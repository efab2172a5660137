// The process: start (listeners, workers, wings, admin wiring), signals, accept, probes, drain and
// stop. Server::Impl is in proxy/server_impl.h; /status renders in proxy/control/status_json.cc,
// the admin API's actions run in proxy/control/admin_actions.cc, a worker's thread in
// proxy/worker.cc.
#include "proxy/server.h"
#include "proxy/server_impl.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstring>
#include <fstream>
#include <functional>
#include <list>
#include <mutex>
#include <sstream>

#include "protocol/errors.h"
#include "protocol/startup.h"
#include "proxy/auth/auth_server.h"
#include "policy/migrate/divergence.h"
#include "policy/migrate/run_board.h"
#include "proxy/control/admin_http.h"
#include "proxy/control/catalog_loader.h"
#include "proxy/net/uring_relay.h"
#include "proxy/mirror/catchup.h"
#include "proxy/mirror/mirror_fence.h"
#include "proxy/mirror/journal.h"
#include "proxy/mirror/mirror_link.h"
#include "proxy/mirror/mirror_safety.h"
#include "proxy/shadow/shadow_lane.h"

#include <future>
#include "proxy/telemetry/log.h"
#include "proxy/control/cutover.h"
#include "proxy/control/reload.h"
#include "proxy/session/session.h"
#include "proxy/net/tls.h"
#include "proxy/net/upstream.h"
#include "proxy/worker.h"

namespace pgtandem::proxy {

namespace {

using namespace asio::experimental::awaitable_operators;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

std::string fatal_too_many(std::string_view message) {
  std::string out;
  protocol::encode_error_response(out, protocol::Severity::kFatal, protocol::sqlstate::kTooManyConnections, message);
  return out;
}

// Reads startup packets until the client's StartupMessage (or CancelRequest) has arrived,
// answering SSLRequest/GSSENCRequest with 'N' on the way; false on EOF or a malformed packet.
asio::awaitable<bool> read_startup(Socket& socket) {
  std::string in;
  char tmp[1024];
  for (;;) {
    while (in.size() < 8) {
      auto [ec, n] = co_await socket.async_read_some(asio::buffer(tmp), kNoThrow);
      if (ec) co_return false;
      in.append(tmp, n);
    }
    auto frame = protocol::decode_startup_frame(in);
    if (frame.status != protocol::Status::kComplete) co_return false;
    while (in.size() < frame.length) {
      auto [ec, n] = co_await socket.async_read_some(asio::buffer(tmp), kNoThrow);
      if (ec) co_return false;
      in.append(tmp, n);
    }
    if (frame.code != protocol::kSslRequestCode && frame.code != protocol::kGssEncRequestCode) {
      co_return true;
    }
    static const char kNo = 'N';
    auto [ec, n] = co_await asio::async_write(socket, asio::buffer(&kNo, 1), kNoThrow);
    if (ec) co_return false;
    in.erase(0, frame.length);
  }
}

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer timer(co_await asio::this_coro::executor, d);
  co_await timer.async_wait(kNoThrow);
}

// Refuses a connection the way the server does when it is full: it answers an SSLRequest, reads
// the startup packet, then sends FATAL 53300. Answering before the startup packet would make
// libpq (sslmode=prefer) report "server sent an error response during SSL exchange" instead of
// the reason. Bounded to a second, so refused clients cannot hold resources.
asio::awaitable<void> refuse(Socket socket, std::string bytes) {
  auto r = co_await (read_startup(socket) || sleep_for(std::chrono::seconds(1)));
  if (r.index() == 0 && std::get<0>(r)) {
    co_await asio::async_write(socket, asio::buffer(bytes), kNoThrow);
  }
  boost::system::error_code ec;
  socket.shutdown(asio::socket_base::shutdown_send, ec);
  socket.close(ec);
}

}  // namespace

Worker& Server::Impl::pick_worker(Worker& self) {
  // SO_REUSEPORT spreads connections by a hash of the 4-tuple, which leaves workers unevenly
  // loaded with few clients (8 pgbench clients on 2 workers often split 6/2). A connection stays
  // with the worker that accepted it unless another one has at least two fewer sessions.
  Worker* best = &self;
  uint32_t best_load = self.sessions().load(std::memory_order_relaxed);
  for (Worker& w : workers) {
    uint32_t load = w.sessions().load(std::memory_order_relaxed);
    if (load + 1 < best_load) {
      best = &w;
      best_load = load;
    }
  }
  return *best;
}

asio::awaitable<void> Server::Impl::accept_loop(Worker& worker, Acceptor& acceptor, bool tcp) {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(kNoThrow);
    if (ec) {
      if (ec == asio::error::operation_aborted) co_return;
      // EMFILE and friends: back off briefly instead of spinning.
      log::warn("accept failed", {{"error", ec.message()}});
      asio::steady_timer t(worker.io(), std::chrono::milliseconds(50));
      co_await t.async_wait(kNoThrow);
      continue;
    }
    const auto& limits = config.limits;
    if (state.clients.load(std::memory_order_relaxed) >= limits.max_client_connections) {
      metrics->rejected(RejectReason::kTooManyClients);
      asio::co_spawn(worker.io(), refuse(Socket(std::move(socket)), fatal_too_many("sorry, too many clients already")),
                     asio::detached);
      continue;
    }
    if (state.unauthenticated.load(std::memory_order_relaxed) >= limits.max_unauthenticated) {
      metrics->rejected(RejectReason::kTooManyUnauthenticated);
      asio::co_spawn(worker.io(),
                     refuse(Socket(std::move(socket)),
                            fatal_too_many("sorry, too many clients already: pgtandem is at "
                                           "max_unauthenticated connections still logging in")),
                     asio::detached);
      continue;
    }
    state.clients.fetch_add(1, std::memory_order_relaxed);
    state.unauthenticated.fetch_add(1, std::memory_order_relaxed);
    if (tcp) set_tcp_options(socket);
    Worker& target = pick_worker(worker);
    const int family = acceptor.local_endpoint().protocol().family();
    target.adopt(family, tcp ? IPPROTO_TCP : 0, socket.release());
  }
}

// Builds the client TLS context again from the running config's files. A failure keeps the one in
// use: sessions go on, and the next SIGHUP tries again.
void Server::Impl::reload_client_tls() {
  auto current = reloader->current();
  const config::Tls& tls = current ? current->config->tls : config.tls;
  std::string why;
  auto next = make_client_tls(tls, &why);
  if (!next) {
    log::error("TLS certificates not reloaded: keeping the ones in use", {{"error", why}});
    return;
  }
  state.auth.client_tls.store(std::move(next), std::memory_order_release);
  if (tls.enabled()) log::info("TLS certificates reloaded", {{"cert_file", tls.cert_file}});
}

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

Server::Server(config::Config config, ServerOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->config = std::move(config);
  impl_->options = std::move(options);
}

Server::~Server() { stop(); }

bool Server::start(std::string* error) {
  Impl& im = *impl_;
  // From here on SIGHUP is a reload request, never the default action (terminate); signals that
  // arrive before run_until_signal() wait in the signal_set.
  im.signals = std::make_unique<asio::signal_set>(im.main_io, SIGTERM, SIGINT, SIGHUP);
  // Cutover (issue 14): once a control epoch exists, it names the primary, not the file.
  const std::string file_primary = im.config.primary;
  std::unique_ptr<ControlStore> control;
  if (im.config.mirror_writes) {
    std::string why;
    control = ControlStore::from_config(im.config, &why);
    if (!control) log::info("cutover unavailable", {{"reason", why}});
  }
  if (control) {
    std::string why;
    auto row = control->read_epoch(&why);
    if (row && row->primary != im.config.primary) {
      log::warn("the primary comes from the control epoch, not the config file",
                {{"epoch", std::to_string(row->epoch)}, {"primary", row->primary},
                 {"file_primary", im.config.primary}});
      im.config.primary = row->primary;
    } else if (!row && !why.empty()) {
      log::warn("cannot read the control epoch; starting with the file's primary",
                {{"error", why}});
    }
  }
  auto cfg = std::make_shared<const config::Config>(im.config);
  im.state.config = cfg;
  im.state.limits.max_message_size = cfg->limits.max_message_size;
  if (!resolve_targets(*cfg, &im.state.targets, error)) return false;
  {
    auto tls = make_client_tls(cfg->tls, error);
    if (!tls) return false;
    im.state.auth.client_tls.store(std::move(tls), std::memory_order_release);
  }
  std::vector<std::string> names;
  for (size_t i = 0; i < im.state.targets.size(); ++i) {
    names.push_back(im.state.targets[i].name);
    if (im.state.targets[i].name == cfg->primary) im.state.primary = i;
  }
  im.metrics = std::make_unique<Metrics>(names);
  im.state.metrics = im.metrics.get();
  im.metrics->set_backfill_pending([&im](std::string_view unit_bytes) {
    {
      std::lock_guard lock(im.migrate_mu);
      if (!im.migrate_board.backfill_pending()) return false;  // the common case: no parsing
    }
    // A backfill has tables left: the unit's tables (parsed here, on the rare divergence path,
    // outside the lock) narrow it down (policy/migrate/divergence.h).
    const auto tables = policy::migrate::unit_tables(unit_bytes);
    std::lock_guard lock(im.migrate_mu);
    return im.migrate_board.backfill_pending_any(tables);
  });
  im.state.process_tag = std::to_string(::getpid()) + "." +
                         std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                            std::chrono::system_clock::now().time_since_epoch())
                                            .count());
  for (size_t i = 0; i < im.state.targets.size(); ++i) {
    if (i != im.state.primary) im.state.mirror.secondary.store(i);
  }
  im.state.mirror.functions.read_only = policy::FunctionSet(cfg->classifier.read_only_functions);
  im.state.mirror.functions.writing = policy::FunctionSet(cfg->classifier.writing_functions);
  if (cfg->mirror_writes && !im.open_mirror(*cfg, error)) return false;
  if (cfg->auth.file_mode()) {
    // [auth] mode = "file": the users pgtandem authenticates, and its own passwords for logging
    // them in to the primary (needed even without mirroring).
    std::shared_ptr<const config::Userlist> users;
    std::vector<config::Error> errors;
    if (!load_userlist(*cfg, &users, &errors)) {
      *error = "cannot use auth.file: " +
               (errors.empty() ? std::string("unknown error") : errors.front().to_string());
      return false;
    }
    im.state.auth.userlist.store(std::move(users));
    if (!im.state.mirror.pgpass) {
      auto pgpass = std::make_shared<config::Pgpass>();
      if (!cfg->mirror.credentials_file.empty()) {
        auto pg = config::load_pgpass_file(cfg->mirror.credentials_file);
        if (!pg.ok()) {
          *error = "cannot read mirror.credentials_file: " +
                   (pg.errors.empty() ? std::string("unknown error") : pg.errors.front().to_string());
          return false;
        }
        *pgpass = std::move(*pg.pgpass);
      }
      im.state.mirror.pgpass = std::move(pgpass);
    }
  }

  Reloader::Options reload_options;
  reload_options.config_path = im.options.config_path;
  reload_options.audit_log_path = im.options.audit_log_path;
  reload_options.prepare = [&im](const config::Config& next, std::string* why) {
    // The certificate files are read now: a config whose files cannot be used is rejected.
    auto tls = make_client_tls(next.tls, why);
    if (!tls) return false;
    if (next.mirror_writes && !im.state.mirror.journal && !im.open_mirror(next, why)) return false;
    im.state.auth.client_tls.store(std::move(tls), std::memory_order_release);
    return true;
  };
  reload_options.file_primary = file_primary;
  reload_options.check_primary = [&im](const std::string& p) {
    return im.cutover ? im.cutover->check_file_primary(p) : std::string();
  };
  im.reloader = std::make_unique<Reloader>(im.main_io, im.state, std::move(reload_options));
  // Generation 1, before any worker runs: sessions always find a snapshot.
  if (!im.reloader->publish_initial(cfg, im.options.config_hash, error)) return false;
  if (control) {
    Cutover::Hooks hooks;
    hooks.set_primary = [&im](const std::string& p, std::string* why) {
      return im.set_primary_on_main(p, why);
    };
    hooks.audit = [&im](const std::string& json) { im.audit_cutover(json); };
    hooks.last_verify = [&im](int64_t* finished, int64_t* exit_code) {
      std::lock_guard lock(im.migrate_mu);
      auto last = im.migrate_board.last_result("verify");
      if (!last) return false;
      *finished = last->finished_at;
      *exit_code = last->exit_code;
      return true;
    };
    im.cutover = std::make_unique<Cutover>(im.state, std::move(control), std::move(hooks));
    std::string why;
    const std::string epoch_primary = im.cutover->startup_primary(&why);
    if (!epoch_primary.empty()) {
      std::string e;
      im.reloader->set_primary(epoch_primary, &e);  // the same primary: records the override
    }
    im.metrics->set_cutover_epoch(im.cutover->epoch());
    im.cutover->start_agent();
  }

  size_t nworkers = cfg->workers;
  // 0: half the cores, at least one. The proxy shares the machine with what it serves (a
  // sidecar, the database's host, here PostgreSQL and pgbench): on 2 cores one worker spent
  // 0.64-0.91x the CPU per transaction of two at 8 clients (bench/README.md, issue 17), as
  // PgBouncer's one thread does; a dedicated proxy host sets `workers` to its cores.
  if (nworkers == 0) nworkers = std::max(1u, std::thread::hardware_concurrency() / 2);
  for (size_t i = 0; i < nworkers; ++i) {
    Worker& w = im.workers.emplace_back(i, im.state);
    im.state.workers.push_back(&w);
    im.metrics->add_worker(&w.stats());
  }
  // The mirror links' threads (docs/design.md 4.2): at a lower priority, so the relay wins the
  // cores. No more of them than workers.
  const size_t homes = std::min<size_t>(cfg->mirror.link_threads, nworkers);
  for (size_t i = 0; i < homes; ++i) {
    Worker& h = im.mirror_homes.emplace_back(nworkers + i, im.state);
    h.make_mirror_home(static_cast<int>(cfg->mirror.link_nice));
    im.metrics->add_worker(&h.stats());
  }
  if (homes > 0) {
    size_t i = 0;
    for (Worker& w : im.workers) {
      auto it = im.mirror_homes.begin();
      std::advance(it, i++ % homes);
      w.set_mirror_home(&*it);
    }
  }

  // Each worker gets its own SO_REUSEPORT listener per TCP address, so accepting never crosses
  // threads; the Unix socket (no SO_REUSEPORT for AF_UNIX) is served by worker 0.
  for (const auto& addr : cfg->listen) {
    std::string host = addr.host;
    if (host == "*") host = "0.0.0.0";
    if (host == "localhost") host = "127.0.0.1";
    boost::system::error_code ec;
    auto ip = asio::ip::make_address(host, ec);
    if (ec) {
      *error = "invalid listen address \"" + addr.host + "\"";
      return false;
    }
    asio::ip::tcp::endpoint tcp_ep(ip, addr.port);
    for (Worker& w : im.workers) {
      Acceptor& a = im.acceptors.emplace_back(w.io());
      Endpoint ep(tcp_ep);
      a.open(ep.protocol(), ec);
      if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
      if (!ec) a.set_option(ReusePort(true), ec);
      if (!ec) a.bind(ep, ec);
      if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
      if (ec) {
        *error = "cannot listen on " + config::format_host_port(host, addr.port) + ": " + ec.message();
        return false;
      }
      asio::co_spawn(w.io(), im.accept_loop(w, a, true), asio::detached);
    }
  }
  if (!cfg->unix_socket_dir.empty() && !cfg->listen.empty()) {
    im.unix_socket_path =
        cfg->unix_socket_dir + "/.s.PGSQL." + std::to_string(cfg->listen.front().port);
    ::unlink(im.unix_socket_path.c_str());
    Worker& w = im.workers.front();
    Acceptor& a = im.acceptors.emplace_back(w.io());
    Endpoint ep{asio::local::stream_protocol::endpoint(im.unix_socket_path)};
    boost::system::error_code ec;
    a.open(ep.protocol(), ec);
    if (!ec) a.bind(ep, ec);
    if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      *error = "cannot listen on " + im.unix_socket_path + ": " + ec.message();
      return false;
    }
    ::chmod(im.unix_socket_path.c_str(), 0777);
    asio::co_spawn(w.io(), im.accept_loop(w, a, false), asio::detached);
  }

  // io_backend: probe the ring setup the workers would use. "uring" stops pgtandem here, with a
  // message, when a kernel (or a seccomp profile: Docker's default refuses io_uring) refuses it;
  // "auto" then runs the relay on epoll and says so. The liburing relay spent less CPU per
  // transaction than epoll in all eight cells of bench/run.sh (bench/README.md, issue 17).
  if (cfg->io_backend != "epoll") {
    std::string why;
#if PGTANDEM_URING_RELAY
    try {
      asio::io_context probe_io(1);
      UringRelay probe(probe_io);
      im.state.uring_relay = true;
    } catch (const std::exception& e) {
      why = std::string("cannot set up io_uring: ") + e.what();
    }
#else
    why = "this build has no liburing relay (PGTANDEM_URING_RELAY=OFF)";
#endif
    if (!im.state.uring_relay && cfg->io_backend == "uring") {
      *error = "io_backend = \"uring\": " + why;
      return false;
    }
    if (!im.state.uring_relay)
      log::warn("io_backend = \"auto\": the relay runs on epoll", {{"reason", why}});
  }

  im.admin_token = cfg->admin.token;
  if (!cfg->admin.token_file.empty()) {
    std::ifstream in(cfg->admin.token_file, std::ios::binary);
    std::ostringstream content;
    if (in) content << in.rdbuf();
    if (!in) {
      *error = "cannot read admin.token_file " + cfg->admin.token_file + ": " +
               std::strerror(errno);
      return false;
    }
    std::string token = content.str();
    const auto first = token.find_first_not_of(" \t\r\n");
    const auto last = token.find_last_not_of(" \t\r\n");
    token = first == std::string::npos ? std::string() : token.substr(first, last - first + 1);
    if (token.empty()) {
      *error = "admin.token_file " + cfg->admin.token_file + " is empty";
      return false;
    }
    im.admin_token = std::move(token);
  }

  if (cfg->admin.listen_port != 0) {
    AdminHandlers handlers;
    Metrics* m = im.metrics.get();
    handlers.metrics = [m, &im] {
      std::string out = m->serialize();
      std::lock_guard lock(im.migrate_mu);
      return out + im.migrate_board.prometheus(Impl::unix_now());
    };
    handlers.healthy = [] { return true; };
    handlers.ready = [&im](std::string* why) { return im.ready(why); };
    handlers.status = [&im] { return im.status_json(); };
    handlers.mirror_watermark = [&im](std::string_view query) {
      // drain=start flips the answer drain, drain=T checks it (policy/mirror/answer_drain.h);
      // `last_assigned` is read after `drained`, so a drained answer's numbers are in it.
      std::string drain;
      auto& answers = im.state.mirror.answers;
      if (query.starts_with("drain=")) {
        uint64_t token = 0;
        if (query == "drain=start") {
          token = answers.flip();
        } else {
          const auto v = query.substr(6);
          std::from_chars(v.data(), v.data() + v.size(), token);
        }
        drain = ",\"drain\":" + std::to_string(token) +
                ",\"drained\":" + (answers.drained(token) ? "true" : "false");
      }
      const uint64_t last = im.state.mirror.order.last_assigned();
      const uint64_t done = im.state.mirror.order.done_through();
      return "{\"last_assigned\":" + std::to_string(last) + ",\"done_through\":" +
             std::to_string(done) + ",\"pending\":" + std::to_string(last > done ? last - done : 0) +
             drain + "}";
    };
    handlers.reload = [&im] { return im.reload_via_admin(); };
    handlers.breaker_reset = [&im](std::string_view query) { return im.breaker_reset(query); };
    handlers.cutover = [&im](std::string_view query) { return im.cutover_via_admin(query); };
    handlers.migrate_progress = [&im](std::string_view body) {
      std::string why;
      std::lock_guard lock(im.migrate_mu);
      if (!im.migrate_board.update(body, Impl::unix_now(), &why))
        return AdminReply{400, "text/plain", "bad progress document: " + why + "\n"};
      return AdminReply{200, "application/json", "{\"ok\":true}\n"};
    };
    handlers.mirror_clear = [&im](std::string_view path, std::string_view body) {
      return im.mirror_clear(path, body);
    };
    handlers.mirror_fence = [&im](std::string_view query) {
      if (!im.fence)
        return AdminReply{409, "application/json",
                          "{\"error\":\"the mirror fence needs mirror_writes and [mirror] catchup on at start\"}\n"};
      MirrorFence::Request req;
      for_each_query_param(query, [&](std::string_view k, std::string_view v) {
        auto number = [&](int64_t* n) { std::from_chars(v.data(), v.data() + v.size(), *n); };
        if (k == "action") req.action = std::string(v);
        if (k == "id") req.id = std::string(v);
        if (k == "timeout_ms") number(&req.timeout_ms);
        if (k == "lease_ms") number(&req.lease_ms);
      });
      auto r = im.fence->handle(req);
      return AdminReply{r.status, "application/json", r.body + "\n"};
    };
    handlers.token = im.admin_token;
    im.admin = std::make_unique<AdminServer>(cfg->admin.listen_host, cfg->admin.listen_port,
                                             std::move(handlers));
    std::string admin_error;
    if (!im.admin->start(&admin_error)) {
      *error = "cannot start admin endpoint: " + admin_error;
      return false;
    }
  }

  if (cfg->mirror_writes && !cfg->classifier.catalog_user.empty()) {
    // Off the accept path: sessions that start before it arrives classify without it (unknown
    // functions count as writes by default), later ones use it.
    ServerState* st = &im.state;
    asio::co_spawn(
        im.workers.front().io(),
        [st]() -> asio::awaitable<void> {
          std::string why;
          auto catalog = co_await load_volatility_catalog(*st, st->primary, &why);
          if (!catalog) {
            log::warn("function volatility not learned", {{"error", why}});
            co_return;
          }
          log::info("function volatility learned", {{"functions", std::to_string(catalog->size())}});
          st->mirror.catalog.store(std::move(catalog), std::memory_order_release);
        },
        asio::detached);
  }
  if (!im.options.config_path.empty()) {
    std::string watch_error;
    if (!im.reloader->watch(&watch_error)) {
      log::warn("config file not watched: reload with SIGHUP",
                {{"config", im.options.config_path}, {"error", watch_error}});
    }
  }
  for (Worker& w : im.mirror_homes) w.start();
  for (Worker& w : im.workers) w.start();
  std::string listen_desc;
  for (const auto& a : cfg->listen) {
    if (!listen_desc.empty()) listen_desc += ",";
    listen_desc += config::format_host_port(a.host, a.port);
  }
  log::info("pgtandem started",
            {{"version", PGTANDEM_VERSION},
             {"io_backend", im.state.uring_relay ? std::string("uring")
                                                  : std::string(PGTANDEM_IO_BACKEND)},
             {"listen", listen_desc},
             {"workers", std::to_string(nworkers)},
             {"mirror_link_threads", std::to_string(im.mirror_homes.size())},
             {"primary", cfg->primary},
             {"mirror_writes", cfg->mirror_writes ? "on" : "off"},
             {"admin", cfg->admin.enabled()
                           ? config::format_host_port(cfg->admin.listen_host, cfg->admin.listen_port)
                           : std::string("off")}});
  return true;
}

int Server::run_until_signal() {
  Impl& im = *impl_;
  if (!im.signals) return 1;  // not started
  int received = 0;
  std::function<void(boost::system::error_code, int)> on_signal =
      [&](boost::system::error_code ec, int sig) {
        if (ec) return;
        if (sig == SIGHUP) {
          // An unchanged file still re-reads the certificates (renewed in place).
          if (im.reloader->reload(ReloadSource::kSighup) == ConfigReloadOutcome::kUnchanged) {
            im.reload_client_tls();
          }
          im.signals->async_wait(on_signal);
          return;
        }
        received = sig;
        if (sig == SIGTERM && !im.drain_started) {
          // Graceful: stop accepting, let sessions reach an idle boundary, flush the mirror. A
          // second SIGTERM (or a SIGINT) during the drain is a fast shutdown.
          im.begin_drain();
          im.signals->async_wait(on_signal);
          return;
        }
        im.main_io.stop();
      };
  im.signals->async_wait(on_signal);
  asio::co_spawn(im.main_io, im.probe_loop(), asio::detached);
  im.main_io.run();
  log::info("shutting down", {{"signal", received == SIGINT ? "SIGINT" : "SIGTERM"},
                              {"mode", im.drain_finished ? "graceful" : "fast"}});
  stop();
  return 0;
}

void Server::stop() {
  if (!impl_ || impl_->stopped) return;
  impl_->stopped = true;
  if (impl_->reloader) impl_->reloader->stop();
  if (impl_->admin) impl_->admin->stop();
  if (impl_->cutover) impl_->cutover->stop_agent();
  impl_->fence.reset();  // a pause opens, a fence ends (catch-up applies its journal later)
  if (impl_->catchup) impl_->catchup->stop();
  // Mirror writes not yet applied go to the journal, on each link's own thread, before the event
  // loops stop: stopping abandons the links' queues. (A graceful drain is issue 6.) Links on the
  // sessions' workers first; then the workers stop (no session pushes any more), then the links
  // on their own threads journal what they were given, inbox included.
  auto journal_on = [](std::list<Worker>& ws) {
    std::vector<std::future<void>> done;
    for (Worker& w : ws) {
      auto p = std::make_shared<std::promise<void>>();
      done.push_back(p->get_future());
      asio::post(w.io(), [&w, p] {
        w.journal_pending_mirror_writes();
        p->set_value();
      });
    }
    bool all = true;
    for (auto& f : done) {
      if (f.wait_for(std::chrono::seconds(5)) != std::future_status::ready) all = false;
    }
    return all;
  };
  const bool mirroring = impl_->state.mirror.journal != nullptr;
  bool all = !mirroring || journal_on(impl_->workers);
  for (Worker& w : impl_->workers) w.stop();
  for (Worker& w : impl_->workers) w.join();
  if (mirroring) all = journal_on(impl_->mirror_homes) && all;
  if (mirroring) {
    // Every queue is in the journal now: no crash window to report at the next start.
    if (all && impl_->state.mirror.safety) impl_->state.mirror.safety->clean_stop();
    if (!all) log::error("mirror queues not all journaled at stop: the crash window stays marked");
  }
  for (Worker& w : impl_->mirror_homes) w.stop();
  for (Worker& w : impl_->mirror_homes) w.join();
  for (Worker& w : impl_->workers) w.close_mirror_links();
  for (Worker& w : impl_->mirror_homes) w.close_mirror_links();
  if (!impl_->unix_socket_path.empty()) ::unlink(impl_->unix_socket_path.c_str());
  impl_->unix_socket_path.clear();
}

asio::awaitable<void> Server::Impl::probe_loop() {
  // Readiness without a probe per request: every target is connected to (TCP only, nothing is
  // sent, so the server logs nothing) about once a second with a one-second timeout.
  constexpr auto kPeriod = std::chrono::milliseconds(1000);
  constexpr auto kTimeout = std::chrono::milliseconds(1000);
  asio::steady_timer timer(main_io);
  for (;;) {
    for (size_t i = 0; i < state.targets.size() && i < kMaxTargets; ++i) {
      const uint64_t failures = metrics->upstream_connect_failures(i);
      Socket socket(main_io);
      const boost::system::error_code ec = co_await connect_target(socket, state.targets[i], kTimeout);
      boost::system::error_code ignored;
      socket.close(ignored);
      if (!ec) failures_at_probe[i].store(failures, std::memory_order_relaxed);
      const int before = state.health.reachable[i].exchange(ec ? 0 : 1, std::memory_order_relaxed);
      if (before != (ec ? 0 : 1) && before != -1) {
        log::write(ec ? log::Level::kWarn : log::Level::kInfo,
                   ec ? "target unreachable" : "target reachable",
                   {{"target", state.targets[i].name}, {"error", ec ? ec.message() : ""}});
      }
    }
    timer.expires_after(kPeriod);
    auto [ec] = co_await timer.async_wait(kNoThrow);
    if (ec) co_return;
  }
}

bool Server::Impl::target_up(size_t target) const {
  if (target >= kMaxTargets) return false;
  if (state.health.reachable[target].load(std::memory_order_relaxed) != 1) return false;
  // A session that failed to connect since the last successful probe: down until the next one.
  return metrics->upstream_connect_failures(target) ==
         failures_at_probe[target].load(std::memory_order_relaxed);
}

bool Server::Impl::ready(std::string* why) const {
  if (state.control.draining.load(std::memory_order_relaxed)) {
    *why = "draining (shutting down)";
    return false;
  }
  auto snap = state.snapshot.load(std::memory_order_acquire);
  if (!snap) {
    *why = "no config loaded";
    return false;
  }
  const size_t primary = snap->primary;
  if (state.health.reachable[primary].load(std::memory_order_relaxed) == -1) {
    *why = "primary " + state.targets[primary].name + " not checked yet";
    return false;
  }
  if (!target_up(primary)) {
    *why = "primary " + state.targets[primary].name + " (" + state.targets[primary].description +
           ") is unreachable";
    return false;
  }
  return true;
}

void Server::Impl::begin_drain() {
  drain_started = true;
  auto snap = state.snapshot.load(std::memory_order_acquire);
  const uint32_t timeout_ms = snap ? snap->config->shutdown.drain_timeout_ms
                                   : config.shutdown.drain_timeout_ms;
  const auto start = std::chrono::steady_clock::now();
  log::info("draining: no new connections, sessions close at their next idle boundary",
            {{"sessions", std::to_string(state.clients.load())},
             {"drain_timeout_ms", std::to_string(timeout_ms)}});
  // Set before the sessions are woken: a woken session must see it.
  state.control.draining.store(true, std::memory_order_seq_cst);
  for (Acceptor& a : acceptors) {
    // Each acceptor belongs to its worker's thread.
    asio::post(a.get_executor(), [&a] {
      boost::system::error_code ignored;
      a.close(ignored);
    });
  }
  if (!unix_socket_path.empty()) {
    ::unlink(unix_socket_path.c_str());
    unix_socket_path.clear();
  }
  for (Worker& w : workers) asio::post(w.io(), [&w] { w.wake_for_drain(); });
  asio::co_spawn(main_io, drain_wait(start + std::chrono::milliseconds(timeout_ms)),
                 asio::detached);
}

asio::awaitable<void> Server::Impl::drain_wait(std::chrono::steady_clock::time_point deadline) {
  using std::chrono::steady_clock;
  const auto start = steady_clock::now();
  asio::steady_timer timer(main_io);
  auto elapsed = [&] {
    return std::chrono::duration<double>(steady_clock::now() - start).count();
  };
  // Sessions first: each leaves at its next idle boundary (a late wake-up is harmless).
  while (state.clients.load(std::memory_order_relaxed) > 0 && steady_clock::now() < deadline) {
    for (Worker& w : workers) asio::post(w.io(), [&w] { w.wake_for_drain(); });
    timer.expires_after(std::chrono::milliseconds(50));
    co_await timer.async_wait(kNoThrow);
    metrics->set_drain_duration(elapsed());
  }
  const uint32_t left = state.clients.load(std::memory_order_relaxed);
  // Then the mirror: links apply what their sessions queued, within the same deadline; what is
  // left then is journaled by stop().
  bool mirror_drained = true;
  if (state.mirror.journal) {
    for (;;) {
      // (drained() is an atomic of each link: read here, on the main thread.)
      mirror_drained = true;
      for (Worker& w : workers) mirror_drained = mirror_drained && w.mirror_links_drained();
      for (Worker& w : mirror_homes) mirror_drained = mirror_drained && w.mirror_links_drained();
      if (mirror_drained || steady_clock::now() >= deadline) break;
      timer.expires_after(std::chrono::milliseconds(50));
      co_await timer.async_wait(kNoThrow);
    }
  }
  metrics->set_drain_duration(elapsed());
  log::info("drain finished", {{"seconds", format_double(elapsed())},
                               {"sessions_left", std::to_string(left)},
                               {"sessions_closed",
                                std::to_string(metrics->drain_sessions_closed())},
                               {"mirror", mirror_drained ? "drained" : "journaling the rest"}});
  drain_finished = true;
  main_io.stop();
}

}  // namespace pgtandem::proxy

// The process: start (listeners, workers, wings, admin wiring), signals, and stop. Beside it:
// accepting clients (proxy/server_accept.cc), what mirroring needs (proxy/server_mirror.cc), the
// target probes and the drain (proxy/server_drain.cc). Server::Impl is in proxy/server_impl.h;
// /status renders in proxy/control/status_json.cc, the admin API's actions run in
// proxy/control/admin_actions.cc, a worker's thread in proxy/worker.cc.
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

using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

}  // namespace

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

}  // namespace pgtandem::proxy

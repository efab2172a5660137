// pgtandem: a PostgreSQL wire-protocol proxy for zero-downtime database migrations.
#include <sys/resource.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "config/config.h"
#include "proxy/control/cli.h"
#include "proxy/auth/auth_server.h"
#include "proxy/telemetry/log.h"
#include "proxy/migrate/commands.h"
#include "proxy/mirror/replay.h"
#include "proxy/server.h"

namespace {

constexpr const char* kUsage =
    "Usage: pgtandem --config FILE [--audit-log FILE]\n"
    "       pgtandem --check-config FILE\n"
    "       pgtandem replay --config FILE --journal FILE [--dry-run]\n"
    "       pgtandem status [--admin HOST:PORT] [--config FILE]\n"
    "       pgtandem reload [--admin HOST:PORT] [--config FILE] [--token TOKEN]\n"
    "       pgtandem preflight --config FILE [--user U] [--dbname D] [--tables T,...]\n"
    "       pgtandem backfill --config FILE [--tables T,...] [--jobs N] [--max-rate ROWS/S]\n"
    "                [--chunk-rows N] [--state-dir DIR] [--admin HOST:PORT]...\n"
    "       pgtandem verify --config FILE [--tables T,...] [--jobs N] [--report FILE]\n"
    "       pgtandem repair --config FILE [--report FILE]\n"
    "       pgtandem --version | --help\n"
    "\n"
    "A PostgreSQL wire-protocol proxy for zero-downtime migrations: clients connect to pgtandem,\n"
    "which answers them from the primary target (old or new, per the config).\n"
    "\n"
    "Options:\n"
    "  --config FILE         run with the TOML configuration in FILE; SIGHUP or a change of FILE\n"
    "                        reloads it (an invalid file is rejected and changes nothing)\n"
    "  --audit-log FILE      append every applied or rejected config (time, source, hashes,\n"
    "                        changes, errors) to FILE as a JSON line, fsync'd; without it, they\n"
    "                        go to the log only\n"
    "  --check-config FILE   validate FILE, print errors as file:line:column: message, exit 0 if valid\n"
    "  replay                apply the mirror journal's unapplied writes to their target, in order;\n"
    "                        what was applied is recorded in FILE.applied, so running it again\n"
    "                        never applies an entry twice (exit 0: all applied, 1: stopped at a\n"
    "                        failure, 2: applied with divergences or a torn last line, 64: usage)\n"
    "  status                print a running pgtandem's state (targets, breakers, mirror, shadow\n"
    "                        mismatches, config) from its admin /status\n"
    "  reload                make a running pgtandem reload its config now (POST /reload, with\n"
    "                        --token or the config's [admin] token/token_file); prints the\n"
    "                        outcome and errors (exit 0: applied or unchanged, 1: rejected or\n"
    "                        unreachable, 2: usage)\n"
    "  cutover               move the primary of every replica at once: --to new|old\n"
    "                        [--admin HOST:PORT] [--force] [--timeout-ms N] (docs/cutover.md)\n"
    "  preflight             the pre-migration checklist: both targets reachable, schemas\n"
    "                        compatible (every difference named), keys, privileges, foreign keys,\n"
    "                        max_connections headroom; exit 1 on any failed check\n"
    "  backfill              copy every table from the primary to the other target while clients\n"
    "                        write through pgtandem (locked key-ordered chunks, COPY, resumable\n"
    "                        from <state-dir>; see docs/migration.md)\n"
    "  verify                compare the targets chunk by chunk (hashes on each server), drill\n"
    "                        down to differing rows, write a JSON report (exit 0 identical,\n"
    "                        1 differences)\n"
    "  repair                make the other target's differing rows and sequences equal to the\n"
    "                        primary's (from verify's report), then verify them again\n"
    "  --version             print the version and exit\n"
    "  --help                print this help and exit\n";

int check_config(const std::string& path) {
  auto result = pgtandem::config::load_file(path);
  if (!result.ok()) {
    for (const auto& e : result.errors) std::fprintf(stderr, "%s\n", e.to_string().c_str());
    return 1;
  }
  // The userlist is part of what must be valid: pgtandem would refuse to start without it.
  std::shared_ptr<const pgtandem::config::Userlist> users;
  std::vector<pgtandem::config::Error> errors;
  if (!pgtandem::proxy::load_userlist(*result.config, &users, &errors)) {
    for (const auto& e : errors) std::fprintf(stderr, "%s\n", e.to_string().c_str());
    return 1;
  }
  std::printf("%s: configuration is valid\n", path.c_str());
  // Where state will go (issue 15): nothing is written in the working directory.
  const auto& cfg = *result.config;
  std::printf("io_backend: %s%s\n", cfg.io_backend.c_str(),
#if PGTANDEM_URING_RELAY
              cfg.io_backend == "auto" ? " (uring where io_uring can be set up at start, else epoll)" : ""
#else
              cfg.io_backend == "uring" ? " (this build has no liburing relay: pgtandem will refuse to start)"
              : cfg.io_backend == "auto" ? " (this build has no liburing relay: epoll)" : ""
#endif
  );

  std::printf("state_dir: %s%s\n", cfg.state_dir.c_str(),
              cfg.mirror_writes ? "" : " (used once mirror_writes is on)");
  std::printf("mirror journal: %s (limit %llu bytes, journal_full = \"%s\")\n",
              cfg.mirror.journal_path.c_str(),
              static_cast<unsigned long long>(cfg.mirror.journal_max_bytes),
              cfg.mirror.journal_full.c_str());
  std::printf("crash-window marker: %s/mirror.running, needs-repair marks: %s/mirror.needs-repair\n",
              cfg.state_dir.c_str(), cfg.state_dir.c_str());
  // [migrate]: what preflight/backfill/verify/repair use unless a flag says otherwise.
  const auto& m = cfg.migrate;
  std::string admins;
  for (const auto& a : m.admins) admins += (admins.empty() ? "" : ",") + a;
  if (admins.empty())
    admins = cfg.admin.enabled() ? pgtandem::config::format_host_port(cfg.admin.listen_host == "*"
                                                                          ? "127.0.0.1"
                                                                          : cfg.admin.listen_host,
                                                                      cfg.admin.listen_port) +
                                       " ([admin] listen)"
                                 : "none";
  std::printf("migrate: state_dir %s, user %s, dbname %s, jobs %u, chunk_rows %llu, chunk_memory %llu, "
              "max_rate %llu rows/s, commit_grace_ms %u, watermark_timeout_ms %u, recheck_delay_ms %u, "
              "admins %s, admin token %s\n",
              m.state_dir.c_str(), m.user.empty() ? "(catalog_user / $PGUSER)" : m.user.c_str(),
              m.dbname.empty() ? "(catalog_database / $PGDATABASE / user)" : m.dbname.c_str(), m.jobs,
              static_cast<unsigned long long>(m.chunk_rows), static_cast<unsigned long long>(m.chunk_memory),
              static_cast<unsigned long long>(m.max_rate), m.commit_grace_ms, m.watermark_timeout_ms,
              m.recheck_delay_ms, admins.c_str(),
              !m.use_admin_token ? "not sent"
              : (cfg.admin.token.empty() && cfg.admin.token_file.empty()) ? "none configured"
                                                                           : "sent");
  return 0;
}

// Each client costs pgtandem two descriptors (the client's and the primary's socket) and a third
// with mirroring or routed reads; the usual soft limit (1024) would refuse the 500th client. Like
// nginx's worker_rlimit_nofile or Envoy's startup, pgtandem raises its soft limit to the hard
// limit, and says so when even that is short of what max_client_connections needs.
void raise_fd_limit(uint32_t max_clients) {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  if (lim.rlim_cur < lim.rlim_max) {
    rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
  }
  const uint64_t needed = 3ull * max_clients + 100;
  if (lim.rlim_cur == RLIM_INFINITY || lim.rlim_cur >= needed) return;
  // A warning when the operator chose the client limit; the default (10,000) is a cap, not a
  // plan, so falling short of it is only worth an info line.
  const bool chosen = max_clients != pgtandem::config::Limits{}.max_client_connections;
  const std::string nofile = std::to_string(lim.rlim_cur), clients = std::to_string(max_clients),
                    need = std::to_string(needed);
  namespace log = pgtandem::proxy::log;
  log::write(chosen ? log::Level::kWarn : log::Level::kInfo,
             "open file limit is below what max_client_connections needs; clients past it are refused",
             {{"nofile", nofile}, {"max_client_connections", clients}, {"needed", need}});
}

int run(const std::string& path, const std::string& audit_log) {
  using namespace pgtandem;
  // A SIGHUP while starting (a ConfigMap update, an eager operator) must not terminate pgtandem:
  // ignored until Server::start() installs the reload handler.
  std::signal(SIGHUP, SIG_IGN);
  auto result = config::load_file(path);
  if (!result.ok()) {
    for (const auto& e : result.errors) std::fprintf(stderr, "%s\n", e.to_string().c_str());
    return 1;
  }
  const config::Config& cfg = *result.config;
  proxy::log::Level level = proxy::log::Level::kInfo;
  proxy::log::parse_level(cfg.log.level, &level);
  proxy::log::configure(level, cfg.log.format == "json" ? proxy::log::Format::kJson
                                                        : proxy::log::Format::kLogfmt);
  raise_fd_limit(cfg.limits.max_client_connections);
  proxy::ServerOptions options;
  options.config_path = path;
  options.config_hash = result.source_hash;
  options.audit_log_path = audit_log;
  proxy::Server server(cfg, std::move(options));
  std::string error;
  if (!server.start(&error)) {
    proxy::log::error("cannot start", {{"error", error}});
    return 1;
  }
  return server.run_until_signal();
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  if (argc == 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (argc == 2 && std::strcmp(argv[1], "--version") == 0) {
    std::printf("pgtandem %s (%s)\n", PGTANDEM_VERSION, PGTANDEM_IO_BACKEND);
    return 0;
  }
  if (argc >= 2 && std::strcmp(argv[1], "replay") == 0) {
    return pgtandem::proxy::replay_main(argc - 1, argv + 1);
  }
  if (argc >= 2 && std::strcmp(argv[1], "status") == 0) {
    return pgtandem::proxy::status_main(argc - 1, argv + 1);
  }
  if (argc >= 2 && std::strcmp(argv[1], "reload") == 0) {
    return pgtandem::proxy::reload_main(argc - 1, argv + 1);
  }
  if (argc >= 2 && std::strcmp(argv[1], "cutover") == 0) {
    return pgtandem::proxy::cutover_main(argc - 1, argv + 1);
  }
  if (argc >= 2 && std::strcmp(argv[1], "preflight") == 0)
    return pgtandem::proxy::migrate::preflight_main(argc - 1, argv + 1);
  if (argc >= 2 && std::strcmp(argv[1], "backfill") == 0)
    return pgtandem::proxy::migrate::backfill_main(argc - 1, argv + 1);
  if (argc >= 2 && std::strcmp(argv[1], "verify") == 0)
    return pgtandem::proxy::migrate::verify_main(argc - 1, argv + 1);
  if (argc >= 2 && std::strcmp(argv[1], "repair") == 0)
    return pgtandem::proxy::migrate::repair_main(argc - 1, argv + 1);
  if (argc == 3 && std::strcmp(argv[1], "--check-config") == 0) return check_config(argv[2]);
  if (argc == 3 || argc == 5) {
    std::string config;
    std::string audit_log;
    bool ok = true;
    for (int i = 1; i + 1 < argc; i += 2) {
      std::string_view opt = argv[i];
      std::string* slot = opt == "--config" ? &config : opt == "--audit-log" ? &audit_log : nullptr;
      if (slot == nullptr || !slot->empty() || argv[i + 1][0] == '\0') ok = false;
      if (slot != nullptr) *slot = argv[i + 1];
    }
    if (ok && !config.empty()) return run(config, audit_log);
  }
  std::fputs(kUsage, stderr);
  return 2;
}

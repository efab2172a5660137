#include "proxy/control/reload.h"

#include <fcntl.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <exception>
#include <filesystem>
#include <utility>

#include "proxy/auth/auth_server.h"
#include "proxy/control/config_diff.h"
#include "proxy/telemetry/log.h"
#include "policy/route/route_rules.h"

namespace pgtandem::proxy {

namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

// What editors and Kubernetes do to a file: write it in place (close_write), write a temporary
// file and rename it over (moved_to), delete and create it, touch or chmod it (attrib); a
// ConfigMap update renames the `..data` symlink (moved_to) and deletes the old directory.
constexpr uint32_t kWatchMask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_ATTRIB;

std::string join(const std::vector<std::string>& v, std::string_view sep) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Is `path` `dir` or inside it (both canonical)?
bool within(const fs::path& path, const fs::path& dir) {
  auto d = dir.begin();
  auto p = path.begin();
  for (; d != dir.end(); ++d, ++p) {
    if (p == path.end() || *p != *d) return false;
  }
  return true;
}

}  // namespace

std::string_view to_string(ReloadSource source) {
  switch (source) {
    case ReloadSource::kStartup:
      return "startup";
    case ReloadSource::kSighup:
      return "sighup";
    case ReloadSource::kFileWatch:
      return "file_watch";
    case ReloadSource::kAdmin:
      return "admin";
  }
  return "startup";
}

std::string_view to_string(ConfigReloadOutcome outcome) {
  switch (outcome) {
    case ConfigReloadOutcome::kApplied:
      return "applied";
    case ConfigReloadOutcome::kInvalid:
      return "invalid";
    case ConfigReloadOutcome::kUnchanged:
      return "unchanged";
  }
  return "applied";
}

std::string rfc3339_utc(std::chrono::system_clock::time_point t) { return log::utc_timestamp(t); }

std::string audit_json(const AuditEntry& e) {
  std::string out = "{\"time\":";
  log::append_json_string(out, rfc3339_utc(e.time));
  out += ",\"source\":";
  log::append_json_string(out, to_string(e.source));
  out += ",\"outcome\":";
  log::append_json_string(out, to_string(e.outcome));
  out += ",\"config\":";
  log::append_json_string(out, e.config_path);
  out += ",\"hash_before\":";
  log::append_json_string(out, e.hash_before);
  out += ",\"hash_after\":";
  log::append_json_string(out, e.hash_after);
  out += ",\"generation\":" + std::to_string(e.generation);
  out += ",\"changes\":";
  log::append_json_string_array(out, e.changes);
  out += ",\"restart_required\":";
  log::append_json_string_array(out, e.restart_required);
  out += ",\"errors\":";
  log::append_json_string_array(out, e.errors);
  out += "}";
  return out;
}

std::shared_ptr<const ConfigSnapshot> make_snapshot(std::shared_ptr<const config::Config> config,
                                                    std::string hash, uint64_t generation,
                                                    const std::vector<TargetEndpoint>& targets,
                                                    std::string* error) {
  auto snap = std::make_shared<ConfigSnapshot>();
  snap->generation = generation;
  snap->hash = std::move(hash);
  bool found = false;
  for (size_t i = 0; i < targets.size(); ++i) {
    if (targets[i].name == config->primary) {
      snap->primary = i;
      found = true;
    }
  }
  if (!found) {
    *error = "primary '" + config->primary + "' is not a configured target";
    return nullptr;
  }
  try {
    snap->rules = policy::RuleSet::compile(*config);
  } catch (const std::exception& e) {
    *error = std::string("cannot compile the routing rules: ") + e.what();
    return nullptr;
  }
  if (!snap->rules) {
    *error = "cannot compile the routing rules";
    return nullptr;
  }
  snap->config = std::move(config);
  return snap;
}

Reloader::Reloader(asio::io_context& io, ServerState& state, Options options)
    : io_(io), state_(state), options_(std::move(options)), debounce_(io) {
  if (!options_.config_path.empty()) {
    std::error_code ec;
    fs::path p = fs::absolute(options_.config_path, ec);
    watch_path_ = ec ? options_.config_path : p.lexically_normal().string();
  }
}

Reloader::~Reloader() { stop(); }

bool Reloader::publish_initial(std::shared_ptr<const config::Config> config, std::string hash,
                               std::string* error) {
  auto snap = make_snapshot(std::move(config), std::move(hash), 1, state_.targets, error);
  if (!snap) return false;
  std::vector<std::string> names;
  for (size_t i = 0; i < snap->rules->size(); ++i) names.push_back(snap->rules->rule_name(i));
  state_.metrics->set_route_rules(1, std::move(names));
  state_.snapshot.store(snap, std::memory_order_release);
  state_.snapshot_generation.store(1, std::memory_order_release);
  state_.control.log_statements.store(snap->config->log.statements, std::memory_order_relaxed);
  state_.metrics->set_config(1, snap->hash);
  current_ = snap;

  AuditEntry entry;
  entry.time = std::chrono::system_clock::now();
  entry.source = ReloadSource::kStartup;
  entry.outcome = ConfigReloadOutcome::kApplied;
  entry.config_path = options_.config_path;
  entry.hash_after = snap->hash;
  entry.generation = 1;
  record(ReloadSource::kStartup, ConfigReloadOutcome::kApplied, {}, {});
  std::string why;
  if (!write_audit(entry, &why)) {
    // The operator asked for an audit trail: better not to start than to run without one.
    *error = "cannot write the audit log " + options_.audit_log_path + ": " + why;
    return false;
  }
  return true;
}

bool Reloader::watch(std::string* error) {
  if (watch_path_.empty()) {
    *error = "no config file";
    return false;
  }
  inotify_fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd_ < 0) {
    *error = std::string("inotify_init1: ") + std::strerror(errno);
    return false;
  }
  arm_watches();
  if (filters_.empty()) {
    *error = "cannot watch " + fs::path(watch_path_).parent_path().string() + ": " +
             std::strerror(errno);
    ::close(inotify_fd_);
    inotify_fd_ = -1;
    return false;
  }
  descriptor_ = std::make_unique<asio::posix::stream_descriptor>(io_, inotify_fd_);
  wait_events();
  return true;
}

// (Re)computes what to watch. The directory of the path as given always: a ConfigMap mount
// (pgtandem.toml -> ..data/pgtandem.toml, ..data -> ..<timestamp>) changes by renaming `..data`
// there. When the path is a symlink to a file outside that directory, the target's directory
// too, by the target's name; re-resolved after every reload since the link may have moved.
void Reloader::arm_watches() {
  if (inotify_fd_ < 0) return;
  std::vector<WatchFilter> next;
  const fs::path path(watch_path_);
  const fs::path dir = path.parent_path();
  int wd = ::inotify_add_watch(inotify_fd_, dir.c_str(), kWatchMask);
  if (wd >= 0) next.push_back({wd, path.filename().string(), true});
  std::error_code ec;
  const fs::path real = fs::canonical(path, ec);
  if (!ec) {
    const fs::path real_dir = real.parent_path();
    const fs::path canonical_dir = fs::canonical(dir, ec);
    if (!ec && !within(real_dir, canonical_dir)) {
      int wd2 = ::inotify_add_watch(inotify_fd_, real_dir.c_str(), kWatchMask);
      if (wd2 >= 0) next.push_back({wd2, real.filename().string(), false});
    }
  }
  for (const auto& old : filters_) {
    bool kept = false;
    for (const auto& n : next) kept = kept || n.wd == old.wd;
    if (!kept) ::inotify_rm_watch(inotify_fd_, old.wd);
  }
  filters_ = std::move(next);
}

void Reloader::wait_events() {
  if (stopped_ || !descriptor_) return;
  descriptor_->async_wait(asio::posix::descriptor_base::wait_read,
                          [this](boost::system::error_code ec) {
                            if (ec || stopped_) return;
                            on_events();
                            wait_events();
                          });
}

void Reloader::on_events() {
  alignas(inotify_event) char buf[8192];
  bool relevant = false;
  for (;;) {
    ssize_t n = ::read(inotify_fd_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (ssize_t off = 0; off < n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
      off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
      // Lost events or a watched directory gone: re-read (and re-arm) to be safe.
      if (ev->mask & (IN_Q_OVERFLOW | IN_IGNORED)) {
        relevant = true;
        continue;
      }
      const std::string_view name = ev->len > 0 ? std::string_view(ev->name) : std::string_view();
      for (const auto& f : filters_) {
        if (f.wd != ev->wd) continue;
        if (name == f.name || (f.configmap && name.substr(0, 2) == "..")) relevant = true;
      }
    }
  }
  if (relevant) schedule_debounced();
}

// Editors and ConfigMap updates produce bursts of events (create, write, rename, delete):
// re-read once, when the burst is over.
void Reloader::schedule_debounced() {
  debounce_pending_ = true;
  debounce_.expires_after(options_.debounce);
  debounce_.async_wait([this](boost::system::error_code ec) {
    if (ec || stopped_) return;
    debounce_pending_ = false;
    reload(ReloadSource::kFileWatch);
  });
}

void Reloader::stop() {
  if (stopped_) return;
  stopped_ = true;
  debounce_.cancel();
  if (descriptor_) {
    boost::system::error_code ec;
    descriptor_->close(ec);  // closes inotify_fd_ and with it every watch
    descriptor_.reset();
  } else if (inotify_fd_ >= 0) {
    ::close(inotify_fd_);
  }
  inotify_fd_ = -1;
}

bool Reloader::write_audit(const AuditEntry& entry, std::string* error) {
  const bool rejected = entry.outcome == ConfigReloadOutcome::kInvalid;
  const std::string generation = std::to_string(entry.generation);
  const std::string changes = join(entry.changes, "; ");
  const std::string restart = join(entry.restart_required, ",");
  log::write(rejected ? log::Level::kError : log::Level::kInfo,
             rejected ? "config rejected" : "config applied",
             {{"source", to_string(entry.source)},
              {"outcome", to_string(entry.outcome)},
              {"generation", generation},
              {"hash_before", entry.hash_before},
              {"hash_after", entry.hash_after},
              {"changes", changes},
              {"restart_required", restart}});
  if (options_.audit_log_path.empty()) return true;
  const std::string line = audit_json(entry) + "\n";
  int fd = ::open(options_.audit_log_path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) {
    *error = std::strerror(errno);
    return false;
  }
  // Opened per entry (reloads are rare), so the file can be rotated by renaming it.
  bool ok = write_all(fd, line) && ::fsync(fd) == 0;
  if (!ok) *error = std::strerror(errno);
  ::close(fd);
  return ok;
}

ConfigReloadOutcome Reloader::reject(ReloadSource source, const config::LoadResult& loaded,
                                     const std::vector<config::Error>& errors) {
  AuditEntry entry;
  entry.time = std::chrono::system_clock::now();
  entry.source = source;
  entry.outcome = ConfigReloadOutcome::kInvalid;
  entry.config_path = options_.config_path;
  entry.hash_before = current_ ? current_->hash : "";
  entry.hash_after = loaded.source_hash;
  entry.generation = current_ ? current_->generation : 0;
  for (const auto& e : errors) {
    const std::string text = e.to_string();
    const std::string line = std::to_string(e.line);
    const std::string column = std::to_string(e.column);
    log::error("config error", {{"source", to_string(source)},
                                {"file", e.file},
                                {"line", line},
                                {"column", column},
                                {"error", text}});
    entry.errors.push_back(text);
  }
  state_.metrics->config_reload(ConfigReloadOutcome::kInvalid);
  record(source, ConfigReloadOutcome::kInvalid, entry.errors, {});
  last_rejected_hash_ = loaded.source_hash;
  std::string why;
  if (!write_audit(entry, &why)) {
    log::error("cannot write the audit log", {{"path", options_.audit_log_path}, {"error", why}});
  }
  return ConfigReloadOutcome::kInvalid;
}

void Reloader::record(ReloadSource source, ConfigReloadOutcome outcome,
                      std::vector<std::string> errors, std::vector<std::string> changes) {
  std::lock_guard lock(report_mu_);
  report_.time = std::chrono::system_clock::now();
  report_.source = source;
  report_.outcome = outcome;
  report_.errors = std::move(errors);
  report_.changes = std::move(changes);
  if (current_) {
    if (outcome == ConfigReloadOutcome::kApplied) report_.loaded_at = report_.time;
    report_.hash = current_->hash;
    report_.generation = current_->generation;
  }
}

ReloadReport Reloader::last_report() const {
  std::lock_guard lock(report_mu_);
  return report_;
}

void Reloader::refresh_userlist(const config::Config& running) {
  if (!state_.config || !state_.config->auth.file_mode()) return;
  config::Config effective = running;
  effective.auth.mode = "file";
  if (effective.auth.file.empty()) effective.auth.file = state_.config->auth.file;
  std::shared_ptr<const config::Userlist> users;
  std::vector<config::Error> errors;
  if (!load_userlist(effective, &users, &errors)) {
    // The running userlist stays, as a rejected config leaves the running one in force.
    for (const auto& e : errors) {
      log::error("userlist rejected", {{"file", e.file},
                                       {"line", std::to_string(e.line)},
                                       {"column", std::to_string(e.column)},
                                       {"error", e.to_string()}});
    }
    return;
  }
  log::info("userlist loaded", {{"file", effective.auth.file}, {"users", std::to_string(users->size())}});
  state_.auth.userlist.store(std::move(users));
}

ConfigReloadOutcome Reloader::reload(ReloadSource source) {
  if (source != ReloadSource::kFileWatch && debounce_pending_) {
    debounce_.cancel();
    debounce_pending_ = false;
  }
  if (options_.config_path.empty() || !current_) {
    log::warn("config reload requested but pgtandem was not started from a config file",
              {{"source", to_string(source)}});
    return ConfigReloadOutcome::kUnchanged;
  }
  config::LoadResult loaded = config::load_file(options_.config_path);
  arm_watches();
  if (!loaded.ok()) {
    // An editor saving the same broken file again, or a touch of it: reported once. An operator's
    // SIGHUP always gets an answer.
    if (source == ReloadSource::kFileWatch && !loaded.source_hash.empty() &&
        loaded.source_hash == last_rejected_hash_) {
      log::debug("config still invalid", {{"hash", loaded.source_hash}});
      return ConfigReloadOutcome::kInvalid;
    }
    return reject(source, loaded, loaded.errors);
  }
  if (loaded.source_hash == current_->hash) {
    last_rejected_hash_.clear();
    // The userlist is a file of its own: a SIGHUP re-reads it even when the TOML is unchanged.
    if (source == ReloadSource::kSighup) refresh_userlist(*current_->config);
    state_.metrics->config_reload(ConfigReloadOutcome::kUnchanged);
    record(source, ConfigReloadOutcome::kUnchanged, {}, {});
    const std::string generation = std::to_string(current_->generation);
    log::write(
        source == ReloadSource::kFileWatch ? log::Level::kDebug : log::Level::kInfo,
        "config unchanged",
        {{"source", to_string(source)}, {"hash", current_->hash}, {"generation", generation}});
    return ConfigReloadOutcome::kUnchanged;
  }

  // The primary belongs to the control epoch once a cutover ran (issue 14): a file that changes
  // it is refused; a file that still names the primary it had keeps the epoch's.
  if (options_.check_primary && loaded.config->primary != options_.file_primary) {
    const std::string refusal = options_.check_primary(loaded.config->primary);
    if (!refusal.empty()) {
      return reject(source, loaded, {config::Error{options_.config_path, 0, 0, refusal}});
    }
  }
  options_.file_primary = loaded.config->primary;
  if (!primary_override_.empty()) loaded.config->primary = primary_override_;
  auto config = std::make_shared<const config::Config>(std::move(*loaded.config));
  std::string why;
  if (options_.prepare && !options_.prepare(*config, &why)) {
    return reject(source, loaded, {config::Error{options_.config_path, 0, 0, why}});
  }
  // [auth] mode is restart-only; in file mode the (new) userlist must be usable, or the whole
  // reload is rejected.
  std::shared_ptr<const config::Userlist> users;
  const bool file_mode = state_.config && state_.config->auth.file_mode();
  if (file_mode) {
    config::Config effective = *config;
    effective.auth.mode = "file";
    if (effective.auth.file.empty()) effective.auth.file = state_.config->auth.file;
    std::vector<config::Error> errors;
    if (!load_userlist(effective, &users, &errors)) return reject(source, loaded, errors);
  }
  const uint64_t generation = current_->generation + 1;
  auto snap = make_snapshot(config, loaded.source_hash, generation, state_.targets, &why);
  if (!snap) return reject(source, loaded, {config::Error{options_.config_path, 0, 0, why}});

  AuditEntry entry;
  entry.time = std::chrono::system_clock::now();
  entry.source = source;
  entry.outcome = ConfigReloadOutcome::kApplied;
  entry.config_path = options_.config_path;
  entry.hash_before = current_->hash;
  entry.hash_after = snap->hash;
  entry.generation = generation;
  for (auto& change : diff_configs(*current_->config, *config)) {
    if (change.restart_required) {
      // Applying the rest and saying so (as PgBouncer does for its restart-only settings) keeps a
      // routing change from being held hostage by an unrelated listener edit.
      log::warn("config change needs a restart to take effect",
                {{"key", change.key}, {"change", change.description}});
      entry.restart_required.push_back(change.key);
      entry.changes.push_back(change.description + " (restart required)");
    } else {
      entry.changes.push_back(std::move(change.description));
    }
  }

  log::Level level = log::Level::kInfo;
  log::parse_level(config->log.level, &level);
  log::configure(level, config->log.format == "json" ? log::Format::kJson : log::Format::kLogfmt);

  std::vector<std::string> names;
  for (size_t i = 0; i < snap->rules->size(); ++i) names.push_back(snap->rules->rule_name(i));
  state_.metrics->set_route_rules(generation, std::move(names));
  // Sessions compare snapshot_generation (relaxed) and then load the snapshot: publish the
  // snapshot first, so a session that sees the new generation finds the new snapshot.
  if (file_mode) {
    log::info("userlist loaded", {{"users", std::to_string(users->size())}});
    state_.auth.userlist.store(std::move(users));
  }
  state_.snapshot.store(snap, std::memory_order_release);
  state_.snapshot_generation.store(generation, std::memory_order_release);
  current_ = snap;
  state_.control.log_statements.store(snap->config->log.statements, std::memory_order_relaxed);
  last_rejected_hash_.clear();
  state_.metrics->set_config(generation, snap->hash);
  state_.metrics->config_reload(ConfigReloadOutcome::kApplied);
  record(source, ConfigReloadOutcome::kApplied, {}, entry.changes);
  if (!write_audit(entry, &why)) {
    log::error("cannot write the audit log", {{"path", options_.audit_log_path}, {"error", why}});
  }
  return ConfigReloadOutcome::kApplied;
}

bool Reloader::set_primary(const std::string& primary, std::string* error) {
  if (!current_) {
    *error = "no running config";
    return false;
  }
  primary_override_ = primary;
  if (current_->config->primary == primary) return true;
  auto next = std::make_shared<config::Config>(*current_->config);
  const std::string before = next->primary;
  next->primary = primary;
  const uint64_t generation = current_->generation + 1;
  auto snap = make_snapshot(next, current_->hash, generation, state_.targets, error);
  if (!snap) return false;
  std::vector<std::string> names;
  for (size_t i = 0; i < snap->rules->size(); ++i) names.push_back(snap->rules->rule_name(i));
  state_.metrics->set_route_rules(generation, std::move(names));
  state_.snapshot.store(snap, std::memory_order_release);
  state_.snapshot_generation.store(generation, std::memory_order_release);
  current_ = snap;
  state_.metrics->set_config(generation, snap->hash);
  const std::string change = "primary: \"" + before + "\" -> \"" + primary + "\" (cutover)";
  record(ReloadSource::kAdmin, ConfigReloadOutcome::kApplied, {}, {change});
  log::info("primary switched by cutover", {{"from", before}, {"to", primary},
                                            {"generation", std::to_string(generation)}});
  return true;
}

}  // namespace pgtandem::proxy

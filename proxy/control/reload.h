// Hot reload of the TOML config (DESIGN.md "Operations"; issue 4): SIGHUP or a change of the file
// (inotify on its directory, so that editors' write-and-rename and Kubernetes ConfigMap symlink
// swaps are seen) re-reads it; the whole file is parsed and validated before anything changes; a
// valid one becomes a new ConfigSnapshot that sessions pick up at their next transaction boundary;
// an invalid one changes nothing. Every applied or rejected reload is an audit entry.
//
// Runs on one io_context that is not a worker's (the server's main thread): reading and parsing
// the file, compiling rules and fsyncing the audit file never delay a session.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "proxy/telemetry/metrics.h"
#include "proxy/worker.h"

namespace pgtandem::proxy {

enum class ReloadSource { kStartup, kSighup, kFileWatch, kAdmin };
// "startup" | "sighup" | "file_watch" | "admin" (POST /reload)
std::string_view to_string(ReloadSource source);
std::string_view to_string(ConfigReloadOutcome outcome);  // "applied" | "invalid" | "unchanged"

// One line of the audit log (JSON). Written for every applied and every rejected reload (and for
// the config pgtandem started with), never for an unchanged file.
struct AuditEntry {
  std::chrono::system_clock::time_point time;
  ReloadSource source = ReloadSource::kStartup;
  ConfigReloadOutcome outcome = ConfigReloadOutcome::kApplied;
  std::string config_path;
  std::string hash_before;                    // "" at startup
  std::string hash_after;                     // the file read ("" if it could not be read)
  uint64_t generation = 0;                    // running after this entry (unchanged when rejected)
  std::vector<std::string> changes;           // describe_changes()
  std::vector<std::string> restart_required;  // keys among them that wait for a restart
  std::vector<std::string> errors;            // "file:line:column: message", when rejected
};

// {"time":"2026-11-05T10:00:00.123Z","source":"sighup","outcome":"applied","config":"...",
//  "hash_before":"...","hash_after":"...","generation":2,"changes":[...],
//  "restart_required":[...],"errors":[...]} without a newline.
std::string audit_json(const AuditEntry& entry);
// RFC 3339, UTC, milliseconds: "2026-11-05T10:00:00.123Z".
std::string rfc3339_utc(std::chrono::system_clock::time_point t);

// The snapshot for a validated config: rules compiled, primary resolved to its index in
// `targets`. nullptr with *error if either fails.
std::shared_ptr<const ConfigSnapshot> make_snapshot(std::shared_ptr<const config::Config> config,
                                                    std::string hash, uint64_t generation,
                                                    const std::vector<TargetEndpoint>& targets,
                                                    std::string* error);

// The last reload attempt and the running config, for the admin /status and POST /reload.
struct ReloadReport {
  std::chrono::system_clock::time_point time;  // of the last attempt (or of the start)
  ReloadSource source = ReloadSource::kStartup;
  ConfigReloadOutcome outcome = ConfigReloadOutcome::kApplied;
  std::vector<std::string> errors;   // "file:line:column: message", when rejected
  std::vector<std::string> changes;  // when applied
  std::string hash;                  // of the running config
  uint64_t generation = 0;           // of the running config
  std::chrono::system_clock::time_point loaded_at;  // when the running config was applied
};

class Reloader {
 public:
  struct Options {
    std::string config_path;     // the --config file ("": nothing to reload)
    std::string audit_log_path;  // "": audit entries go to the structured log only
    std::chrono::milliseconds debounce{150};
    // Called with a valid new config before it is published; false (with *error) rejects it.
    // The server opens what the new config needs and the old one did not (the mirror journal
    // when mirror_writes is switched on).
    std::function<bool(const config::Config&, std::string*)> prepare;
    // Cutover (issue 14): the primary the file named at start (the running primary may come from
    // the control epoch instead), and the check of a reloaded file's primary against the control
    // epoch: "" allows it, else the rejection's message ("use pgtandem cutover").
    std::string file_primary;
    std::function<std::string(const std::string& file_primary)> check_primary;
  };

  // state.metrics must be set. Nothing happens on `io` until it runs.
  Reloader(boost::asio::io_context& io, ServerState& state, Options options);
  ~Reloader();
  Reloader(const Reloader&) = delete;
  Reloader& operator=(const Reloader&) = delete;

  // Publishes generation 1 (before the workers start) and writes the "startup" audit entry;
  // false with *error if the snapshot cannot be built or the audit file cannot be written.
  bool publish_initial(std::shared_ptr<const config::Config> config, std::string hash,
                       std::string* error);
  // Watches the config file's directory (and, for a symlink pointing elsewhere, its target's);
  // false with *error if inotify cannot be set up (SIGHUP still works).
  bool watch(std::string* error);
  // Re-reads the file now; on the io_context's thread (or before it runs). Cancels a pending
  // debounced reload: this one reads what it would have read.
  ConfigReloadOutcome reload(ReloadSource source);
  // A cutover's switch (issue 14): the running config with `primary` replaced becomes a new
  // snapshot; sessions move at their boundary, as after a reload that changes `primary`. Later
  // reloads keep this primary while the file's `primary` stays what it was. On the io_context's
  // thread. False with *error.
  bool set_primary(const std::string& primary, std::string* error);
  // Stops watching; pending debounced work is dropped.
  void stop();

  std::shared_ptr<const ConfigSnapshot> current() const { return current_; }
  // Safe from any thread.
  ReloadReport last_report() const;

 private:
  struct WatchFilter {
    int wd = -1;
    std::string name;        // the file's name in that directory
    bool configmap = false;  // also names starting with ".." (Kubernetes' ..data swaps)
  };

  void arm_watches();
  void wait_events();
  void on_events();
  void schedule_debounced();
  bool write_audit(const AuditEntry& entry, std::string* error);
  // [auth] mode = "file": re-reads the userlist `running` names; an unusable one is logged and
  // the running userlist stays.
  void refresh_userlist(const config::Config& running);
  ConfigReloadOutcome reject(ReloadSource source, const config::LoadResult& loaded,
                             const std::vector<config::Error>& errors);
  void record(ReloadSource source, ConfigReloadOutcome outcome, std::vector<std::string> errors,
              std::vector<std::string> changes);

  boost::asio::io_context& io_;
  ServerState& state_;
  Options options_;
  std::string watch_path_;  // options_.config_path made absolute
  std::shared_ptr<const ConfigSnapshot> current_;
  std::string last_rejected_hash_;
  std::string primary_override_;  // set by set_primary(): the control epoch's primary
  int inotify_fd_ = -1;
  std::unique_ptr<boost::asio::posix::stream_descriptor> descriptor_;
  std::vector<WatchFilter> filters_;
  boost::asio::steady_timer debounce_;
  bool debounce_pending_ = false;
  bool stopped_ = false;
  mutable std::mutex report_mu_;
  ReloadReport report_;
};

}  // namespace pgtandem::proxy

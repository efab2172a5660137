// What a config reload changes, in words, for the audit log and the reload log line. Pure.
#pragma once

#include <string>
#include <vector>

#include "config/config.h"

namespace pgtandem::proxy {

struct ConfigChange {
  // The TOML key that changed ("workers", "routes[canary].percent", "targets.old.port"), or
  // "routes" for a rule added, removed or moved.
  std::string key;
  // "workers: 2 -> 4", "routes[canary].percent: 5 -> 10", "routes: added \"x\"".
  std::string description;
  // Settings that only take effect at the next start: listeners, workers, targets' addresses,
  // admin listener, limits, the journal file and its fsync policy, the credentials file and the
  // classifier (it is compiled into per-worker caches and the catalog learned at start).
  bool restart_required = false;
};

// Every difference between two validated configs, in the order of the reference
// (docs/configuration.md); a rule's changes name it by its `name`. Rules are matched by name, so
// renaming one shows as removed + added. Route line numbers (where a rule is in the file) are not
// a change.
std::vector<ConfigChange> diff_configs(const config::Config& before, const config::Config& after);

// diff_configs() as text, one line per change; those that need a restart end in
// " (restart required)".
std::vector<std::string> describe_changes(const config::Config& before,
                                          const config::Config& after);

}  // namespace pgtandem::proxy

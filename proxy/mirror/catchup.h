// Automatic catch-up (issue 15): a thread of the running pgtandem that applies its own journal
// backlog to the mirror target once it is reachable again, in commit order, with the same engine
// as `pgtandem replay` (replay.h: pipelined, recorded on the target in the same transaction, so
// nothing is applied twice, across a restart too), and then returns every session to live
// mirroring (MirrorBacklog in mirror_shared.h; the argument is in docs/design.md, "Catch-up").
// Never on a client's path: sessions only append to the journal while a backlog exists.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

#include <vector>

#include "config/config.h"
#include "proxy/mirror/replay.h"
#include "proxy/telemetry/metrics.h"

namespace pgtandem::proxy {

struct ServerState;

class Catchup {
 public:
  Catchup(ServerState& state, const config::Config& cfg);
  ~Catchup();
  // Reads the applied-state; a journal that holds entries beyond it starts the process in
  // journaling mode (a restart with a backlog). False with *error if the journal cannot be read.
  bool open(std::string* error);
  void start();
  void stop();

 private:
  void loop();
  // `progressing`: the last pass applied something (the target is up), so draining may start.
  bool try_return_to_live(bool progressing);
  void publish(double rate);
  void wait(std::chrono::milliseconds d);

  ServerState& state_;
  config::Config cfg_;
  std::ostringstream report_;  // what the applier reports, drained into the log after each pass
  ReplaySummary summary_;
  std::unique_ptr<JournalApplier> applier_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
};

// The mirror block's "backlog" and "catchup" members for /status (with the leading comma).
std::string mirror_backlog_json(const ServerState& state);
// pgtandem_mirror_backlog_* and pgtandem_mirror_catchup_*, at scrape time.
std::vector<Metrics::Sample> mirror_backlog_samples(const ServerState& state);

}  // namespace pgtandem::proxy

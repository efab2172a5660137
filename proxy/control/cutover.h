// Cutover and rollback as one coordinated operation across every pgtandem replica (issue 14;
// protocol and invariant: docs/cutover.md). The coordinator (POST /cutover) runs on the admin
// thread; the agent (one thread per process) heartbeats into the control schema and follows
// another replica's cutover: pause, switch, resume. Blocking calls (libpq), never on a worker.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "proxy/control/control_store.h"

namespace pgtandem::proxy {

struct ServerState;

struct CutoverRequest {
  std::string to;               // target name: "new" or "old"
  bool force = false;           // failing gates do not block (audited)
  int64_t timeout_ms = 5000;    // pause: in-flight transactions and acks must finish within it
  // Mirror units assigned but not applied, at most (under load a few hundred is normal: the pause
  // drains them to zero before the switch).
  int64_t max_mirror_lag = 1000;
  int64_t max_queue_bytes = 16 << 20;
  uint64_t max_mismatches = 0;  // shadow mismatches in the last `shadow_window_s`, at most
  int64_t shadow_window_s = 300;
  int64_t verify_max_age_s = 0;  // 0: no verify gate
};

struct CutoverGate {
  std::string name;
  bool pass = false;
  std::string figure;
};

struct CutoverReport {
  std::string result;  // ok | aborted | refused | unchanged | error
  std::string reason;
  std::string from, to;
  int64_t epoch = 0;   // after the cutover
  bool forced = false;
  std::vector<CutoverGate> gates;
  int64_t pause_ms = 0;
  int64_t in_flight_at_pause = 0;
  int sequences_synced = 0;
  std::vector<std::string> replicas;  // "id: pause N ms"
  std::chrono::system_clock::time_point time;
  std::string json() const;
};

class Cutover {
 public:
  struct Hooks {
    // Sets the running snapshot's primary (as a reload that changes `primary` does); called from
    // the coordinator's or the agent's thread. False with *error.
    std::function<bool(const std::string& primary, std::string* error)> set_primary;
    // One audit line (JSON) for every cutover, aborted and refused ones included.
    std::function<void(const std::string& json)> audit;
    // The last finished `pgtandem verify` this replica heard of (POST /migrate/progress): false if
    // none; else its end (unix s) and exit code (0 identical).
    std::function<bool(int64_t* finished_unix_s, int64_t* exit_code)> last_verify;
  };

  Cutover(ServerState& state, std::unique_ptr<ControlStore> store, Hooks hooks);
  ~Cutover();  // stops the agent
  Cutover(const Cutover&) = delete;
  Cutover& operator=(const Cutover&) = delete;

  // At start, before the workers: the control epoch's primary, if a cutover ever ran ("" if none
  // or the control database cannot be read: *error says why).
  std::string startup_primary(std::string* error);
  void start_agent();
  void stop_agent();

  // The coordinator: runs the whole cutover for every live replica. One at a time.
  CutoverReport run(const CutoverRequest& request);

  // {"epoch":N,"primary":"new","phase":"idle","state":"serving","paused":false,"in_flight":0,
  //  "waiting":0,"last":{...}} for /status.
  std::string status_json() const;
  int64_t epoch() const { return epoch_.load(); }
  // A reload's primary (the file's) against the control epoch's: "" if allowed, else the message.
  std::string check_file_primary(const std::string& file_primary) const;

  std::string replica_id() const { return id_; }

 private:
  bool drained() const;
  bool wait_paused(int64_t deadline_ms, const std::vector<std::string>& others, int64_t since_ms,
                   std::string* why);
  bool wait_acks(const std::vector<std::string>& others, const std::string& phase, int64_t since_ms,
                 int64_t deadline_ms, std::string* why);
  void gates(const CutoverRequest& req, const std::vector<ReplicaRow>& live, CutoverReport* rep);
  void finish(CutoverReport rep);
  void agent_loop();
  void agent_step();
  void heartbeat(bool ack, const std::string& phase);

  ServerState& state_;
  std::unique_ptr<ControlStore> store_;
  Hooks hooks_;
  std::string id_;
  std::mutex run_mu_;
  mutable std::mutex mu_;
  CutoverReport last_;
  bool have_last_ = false;
  std::atomic<int64_t> epoch_{0};
  std::string primary_;     // under mu_
  std::string phase_ = "idle";  // under mu_
  std::string my_state_ = "serving";  // under mu_
  // (when, shadow mismatches total) once a second, by the agent: the gate's recent window.
  std::deque<std::pair<std::chrono::steady_clock::time_point, uint64_t>> mismatch_samples_;  // mu_
  void sample_mismatches();
  uint64_t mismatches_within(int64_t window_s) const;
  // Agent.
  std::thread agent_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> coordinating_{false};
  std::condition_variable cv_;
  std::mutex cv_mu_;
  bool agent_paused_ = false;  // agent thread only
  std::chrono::steady_clock::time_point agent_pause_start_;
  std::atomic<int64_t> agent_last_pause_ms_{0};
};

}  // namespace pgtandem::proxy

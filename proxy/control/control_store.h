// The replicas' agreement for a cutover (issue 14, docs/cutover.md): the `pgtandem_control`
// schema in a control database on BOTH targets. The epoch row is written to both; the authority
// is the one with the higher epoch. Blocking libpq calls: used from the admin thread (the
// coordinator) and the control agent's thread, never from a worker.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/pgpass.h"

namespace pgtandem::proxy {

struct EpochRow {
  int64_t epoch = 0;
  std::string primary;      // target name
  std::string phase = "idle";  // idle | pause | switch | resume | abort
  std::string coordinator;  // replica id running the cutover ("" when none ran)
  int64_t started_ms = 0;   // when the current cutover started (unix ms; 0 = none)
};

struct ReplicaRow {
  std::string id;
  int64_t epoch = 0;
  std::string state;        // serving | paused | switched
  std::string acked_phase;  // the last phase acknowledged
  int64_t acked_ms = 0;     // unix ms of that acknowledgement
  int64_t heartbeat_age_ms = 0;
  int64_t pause_ms = 0;
};

class ControlStore {
 public:
  ControlStore();
  ~ControlStore();
  // The user: $PGTANDEM_CONTROL_USER, else [classifier] catalog_user, else $PGUSER; the database:
  // $PGTANDEM_CONTROL_DATABASE, else "postgres"; the password from [mirror] credentials_file.
  // nullptr (with *why) when no user can be found: cutover is then unavailable.
  static std::unique_ptr<ControlStore> from_config(const config::Config& cfg, std::string* why);

  // Creates the schema on both targets (idempotent). False with *error.
  bool ensure(std::string* error);
  // The authority: the row with the higher epoch of the two targets (one unreachable target is
  // tolerated, reported in *error). nullopt if neither has a row (no cutover ever ran) or neither
  // answered (then *error is set).
  std::optional<EpochRow> read_epoch(std::string* error);
  // Writes the row to both targets and notifies; false if either failed.
  bool write_epoch(const EpochRow& row, std::string* error);
  // Compare-and-set: writes `row` to each target, in the targets' order, only where the current
  // row has epoch `expect_epoch` and its phase is one of `expect_phases` (or no row exists: the
  // first cutover). Every coordinator writes the targets in the same order, so the
  // first target decides between two racing coordinators. False with *error naming the current
  // row where the compare failed.
  bool cas_epoch(const EpochRow& row, int64_t expect_epoch,
                 const std::vector<std::string>& expect_phases, std::string* error);
  // This replica's row on both targets (best effort: true if at least one took it).
  bool upsert_replica(const ReplicaRow& row, bool ack, std::string* error);
  // Replicas with a heartbeat younger than `live_ms`, from the target with the higher epoch.
  std::vector<ReplicaRow> live_replicas(int64_t live_ms, std::string* error);
  // Sets every sequence on `to` to at least its value on `from`, in every database of `from`
  // that `to` also has. *synced counts the sequences set. False with *error.
  bool sync_sequences(const std::string& from, const std::string& to, int* synced,
                      std::string* error);

  // Waits up to timeout_ms for a NOTIFY on channel `pgtandem_control` from any target, on LISTEN
  // connections of its own (opened lazily, reopened after a failure). True if one arrived. The
  // agent's thread only: a phase change reaches a participant in milliseconds, the agent's poll
  // is the fallback for a lost notification or a broken connection.
  bool wait_notify(int timeout_ms);

  const std::vector<config::Target>& targets() const { return targets_; }

 private:
  struct Conn;
  std::string conninfo(const config::Target& t, const std::string& db) const;
  // The control database connection to targets_[i], kept open between calls (under mu_); null
  // with *error if it cannot connect. drop(i) after a failed statement: the next call reconnects.
  Conn* cached(size_t i, std::string* error);
  void drop(size_t i);
  std::mutex mu_;
  std::vector<std::unique_ptr<Conn>> cache_;
  std::vector<std::unique_ptr<Conn>> listeners_;  // wait_notify's, agent thread only
  std::vector<config::Target> targets_;
  std::string user_, database_;
  std::shared_ptr<const config::Pgpass> pgpass_;
};

}  // namespace pgtandem::proxy

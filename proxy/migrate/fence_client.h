// The snapshot backfill's side of the mirror fence (proxy/mirror/mirror_fence.h; docs/migration.md,
// "Snapshot backfill"): one fence on every running pgtandem, paused together, armed after the
// snapshot, renewed while the copy runs, released at its end. POST /mirror/fence with the admin
// token; blocking calls, from the tool's threads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "proxy/migrate/common.h"

namespace pgtandem::proxy::migrate {

class FenceClient {
 public:
  // `admins`: HOST:PORT of every running pgtandem's admin listener.
  FenceClient(const Context& ctx, std::vector<std::string> admins);
  // Pauses every pgtandem at once (in parallel), tried again when a pause timed out under load.
  // *pause_ms: the longest. False with *why: then nothing stays paused, and *unavailable says
  // that some pgtandem offers no fence (no catch-up, no token, an older one), which no retry mends.
  bool pause_all(double* pause_ms, bool* unavailable, std::string* why);
  bool arm_all(std::string* error);  // after the snapshot; [migrate] fence_lease_ms
  void release_all();                // every pause or fence this client holds (idempotent)
  // Every fence renewed; false with *error once one of them ended.
  bool renew_all(std::string* error);
  // After the release: until every mirror is live again, its journal applied. *entries: what
  // they had to apply. False when a catch-up made no progress for the watermark timeout.
  bool wait_caught_up(int64_t* entries, std::string* error);

 private:
  bool each_with_lease(const char* action, std::string* error);
  const Context& ctx_;
  std::vector<std::string> admins_, ids_;
};

}  // namespace pgtandem::proxy::migrate

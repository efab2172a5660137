// What all sessions' mirror links share (ServerState::mirror): the target writes go to, the
// journal, pgtandem's credentials, the queue bytes, the commit order across links, and what the
// classifier learned about functions (the write capture's classification).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "config/pgpass.h"
#include "policy/mirror/mirror_order.h"
#include "policy/sql/classifier.h"

namespace pgtandem::proxy {

class Journal;
class MirrorSafety;

struct MirrorShared {
  // The target writes are mirrored to: written by a cutover (its thread), read by /status.
  std::atomic<size_t> secondary{1};
  std::unique_ptr<Journal> journal;              // where unapplied mirrored writes go
  std::shared_ptr<const config::Pgpass> pgpass;  // pgtandem's credentials for the targets
  std::atomic<int64_t> queue_bytes{0};           // all sessions' mirror queues together
  policy::MirrorOrder order;                     // commit order across sessions' mirror links
  policy::FunctionLists functions;               // from [classifier]
  // Learned from the primary's pg_proc at start; sessions take it when they begin.
  std::atomic<std::shared_ptr<const policy::VolatilityCatalog>> catalog;
  // The state dir's crash-window marker, needs-repair marks and the journal limit's stop state
  // (proxy/mirror/mirror_safety.h); opened with `journal`. Last: destroyed first, so its sampler
  // thread (which reads `order` and `queue_bytes`) stops before they go.
  std::unique_ptr<MirrorSafety> safety;
};

}  // namespace pgtandem::proxy

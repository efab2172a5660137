// Switches the control plane sets and every session reads (ServerState::control).
#pragma once

#include <atomic>

namespace pgtandem::proxy {

struct ControlFlags {
  // Graceful shutdown (issue 6): set once by SIGTERM, before the sessions are woken. A session
  // checks it (a relaxed load) before waiting for the client's next request and at the primary's
  // ReadyForQuery, and leaves at its first idle boundary with FATAL 57P01.
  std::atomic<bool> draining{false};
  // [log] statements of the running config (set by the reloader): sessions check it per request.
  std::atomic<bool> log_statements{false};
};

}  // namespace pgtandem::proxy

// Switches the control plane sets and every session reads (ServerState::control).
#pragma once

#include <atomic>

#include "proxy/control/pause_gate.h"

namespace pgtandem::proxy {

struct ControlFlags {
  // Graceful shutdown (issue 6): set once by SIGTERM, before the sessions are woken. A session
  // checks it (a relaxed load) before waiting for the client's next request and at the primary's
  // ReadyForQuery, and leaves at its first idle boundary with FATAL 57P01.
  std::atomic<bool> draining{false};
  // [log] statements of the running config (set by the reloader): sessions check it per request.
  std::atomic<bool> log_statements{false};
  // Cutover (issue 14): sessions wait here at their boundary while a cutover pauses traffic.
  PauseGate pause;
};

}  // namespace pgtandem::proxy

// What all sessions' shadow reads share (ServerState::shadow).
#pragma once

#include "policy/shadow/mismatch_table.h"

namespace pgtandem::proxy {

struct ShadowShared {
  policy::MismatchTable mismatches;  // by fingerprint, for /status (issue 5)
};

}  // namespace pgtandem::proxy

// The replay engine's applied-state file (proxy/mirror/replay.cc): `<journal>.applied` records
// the last seq applied and the fingerprint of its line, so that a run skips what an earlier one
// applied without asking the target. Written atomically (temp file, fsync, rename, directory
// fsync). Internal to the engine.
#pragma once

#include <cstdint>
#include <string>

namespace pgtandem::proxy::replay_detail {

struct AppliedState {
  uint64_t seq = 0;
  uint64_t fingerprint = 0;
};

// A missing file is nothing applied yet (true, *out zero); a file that is not one is an error.
bool read_applied(const std::string& path, AppliedState* out, std::string* error);
bool write_applied(const std::string& path, const AppliedState& state, std::string* error);

}  // namespace pgtandem::proxy::replay_detail

// verify's comparison, shared with repair (which verifies what it repaired).
#pragma once

#include <string>
#include <vector>

#include "policy/migrate/state.h"
#include "proxy/migrate/common.h"

namespace pgtandem::proxy::migrate {

// Compares `tables` (primary's schema) on both targets: per chunk each server hashes its rows;
// differing chunks are rechecked after --recheck-delay-ms, drilled down to rows, and the rows
// rechecked once more; sequences are compared. False with *error when a target is unreachable.
bool run_verify(const Context& ctx, const std::vector<const pm::Table*>& tables,
                const pm::Schema& old_schema, pm::Report* report, Progress* progress,
                std::string* error);

}  // namespace pgtandem::proxy::migrate

#include "policy/route/route_safety.h"

namespace pgtandem::policy {

std::optional<KeptReason> keep_on_primary(const RouteSafety& s) {
  if (s.in_transaction) return KeptReason::kTransaction;
  if (s.pinned) return KeptReason::kPinned;
  // Routed reads share the mirror's connection, which applies the session's writes in order: a
  // read served there after the queue drained sees them all. Pending writes, or a link that failed
  // (its writes go to the journal from then on), mean the other target may lack them.
  if (s.writes_pending || !s.link_usable) return KeptReason::kReadYourWrites;
  if (s.wrote_unmirrored && s.read_your_writes) return KeptReason::kReadYourWrites;
  if (!s.breaker_allows) return KeptReason::kBreakerOpen;
  return std::nullopt;
}

std::string_view to_string(KeptReason r) {
  switch (r) {
    case KeptReason::kTransaction:
      return "transaction";
    case KeptReason::kPinned:
      return "pinned";
    case KeptReason::kReadYourWrites:
      return "read_your_writes";
    case KeptReason::kBreakerOpen:
      return "breaker_open";
  }
  return "unknown";
}

}  // namespace pgtandem::policy

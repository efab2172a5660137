// The safety rules of read routing (issue 4), pure: whether a read that a rule sends to the other
// target must stay on the primary anyway, and why. The proxy gathers the facts when the read is
// dispatched (everything before it answered), asks here, and carries out the answer.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace pgtandem::policy {

enum class KeptReason : uint8_t {
  kTransaction,     // a transaction stays on one target: the primary
  kPinned,          // temp tables, advisory locks, LISTEN: the session lives on the primary
  kReadYourWrites,  // the other target does not have all the session's writes (yet)
  kBreakerOpen,     // the other target failed too often lately
};

struct RouteSafety {
  bool in_transaction = false;   // the primary's last ReadyForQuery status is not 'I'
  bool pinned = false;
  // The session wrote and its writes are not all applied on the other target (mirror queue not
  // drained, or the link failed: then never), or it wrote with mirroring off.
  bool writes_pending = false;
  bool wrote_unmirrored = false;
  bool read_your_writes = true;  // [routing] read_your_writes: only relaxes wrote_unmirrored
  bool link_usable = true;       // the connection to the other target can serve now
  bool breaker_allows = true;    // asked last: a half-open breaker counts the trials it admits
};

// nullopt: the read may go to the other target.
std::optional<KeptReason> keep_on_primary(const RouteSafety& s);

std::string_view to_string(KeptReason r);

}  // namespace pgtandem::policy

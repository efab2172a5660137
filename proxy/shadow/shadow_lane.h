// Shadow reads (issue 5; DESIGN.md "Shadow reads"): a sampled read the primary served runs again on
// the session's connection to the other target (the mirror link's), off the client's path, and the
// two answers are compared (policy/shadow/result_digest.h).
//
// The session builds a ShadowRead when it samples a read, feeds it the primary's answer as
// pump_backend forwards it, and at the primary's ReadyForQuery hands it to its ShadowLane, which
// runs it on the link's home thread: the client never waits for it, and its worker does not
// spend the other target's answer. From the hand-over on, only the lane touches the read.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "protocol/framing.h"
#include "proxy/worker.h"
#include "policy/shadow/result_digest.h"

namespace pgtandem::proxy {

class MirrorLink;

struct ShadowRead {
  ShadowRead(std::shared_ptr<const policy::DigestOptions> digest_options, bool ordered)
      : options(std::move(digest_options)), primary(options.get(), ordered) {}

  // The primary's answer to the request (backend messages up to, not including, ReadyForQuery).
  void on_primary(const protocol::Header &header, std::string_view body);
  // A message of the primary's answer streamed in pieces (a DataRow over the keep limit): its rows
  // cannot be digested, so the comparison is abandoned.
  void on_primary_streamed() { abandoned = true; }

  std::shared_ptr<const policy::DigestOptions> options;
  policy::ResultDigest primary;
  // What runs on the other target: the client's simple Query, or its batch up to Sync with named
  // statements turned into the unnamed one (policy/shadow/shadow_request.h): self-contained.
  std::string request;
  std::string statement;  // the SQL (the log cuts it at 1 KB; fingerprinted on a mismatch)
  std::string rule;       // the rule that matched the read, "default" if none
  uint32_t results = 0;   // CommandComplete/ErrorResponse seen in the primary's answer
  bool abandoned = false;
  // MirrorLink::pushed() when the read was sampled (the link was drained then): a shadow read
  // whose session has pushed more since runs against other data than the primary saw: skipped.
  uint64_t link_units = 0;
};

struct ShadowRunOptions {
  uint32_t timeout_ms = 5000;
  // The link applies the session's writes too: a shadow read that overruns the timeout is waited
  // for (closing the connection would degrade the mirror); only its outcome counts as dropped.
  bool mirror_writes = false;
  bool redact_values = false;
  std::string mismatch_log;  // "" = pgtandem's own log only
  // On a mismatch, run the read again on both targets after this delay (on connections of their
  // own, with the session's settings) and classify it persistent or transient; 0 = no recheck.
  uint32_t recheck_delay_ms = 0;
};

// A session's shadow reads waiting for its link. The link runs one thing at a time (the session's
// mirrored writes first, routed reads, shadow reads); shadow reads queue here, a few at most, and
// run one after another on the link's home (its mirror link thread, at the links' lower
// priority; the session's worker when [mirror] link_threads = 0): the other target's answer is
// read, digested and compared there, off the client's path. The session's worker only submits.
// A full lane drops the newest sample (counted).
class ShadowLane {
 public:
  static constexpr size_t kMaxQueued = 4;

  explicit ShadowLane(std::shared_ptr<MirrorLink> link);
  // False (and the read is counted dropped, reason "queue_full") when kMaxQueued wait already.
  bool submit(std::shared_ptr<ShadowRead> read, ShadowRunOptions options);
  bool is_full() const;
  // The session ended: what still waits is dropped once the running read is done.
  void close();

  struct State;  // shared with the coroutine that drains it (shadow_lane.cc)

 private:
  Worker &home_;  // the link's: where the lane's reads run
  std::shared_ptr<State> state_;
};

// The shadow section of the admin `/status` JSON: a JSON object (no trailing newline) with the
// totals and the mismatch table, highest count first:
//   {"mismatches_total":N,"other":N,"table":[{"fingerprint":"..","query":"..","count":N,
//     "kinds":{"rows":N,..},"persistent":N,"transient":N,"first_seen":"..","last_seen":"..",
//     "rule":"..","target":"..","example":".."}, ...]}
std::string shadow_status_json(const ServerState &state, size_t limit = 50);

// The mismatch log's JSON line (no newline), exposed for tests.
std::string mismatch_json(const ShadowRead &read, const policy::ResultDigest &shadow,
                          const policy::Comparison &comparison, std::string_view target,
                          bool redact_values, int64_t unix_ms, std::string_view fingerprint,
                          std::string_view normalized);

}  // namespace pgtandem::proxy

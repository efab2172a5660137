// Shadow reads (issue 5; DESIGN.md "Shadow reads"): a sampled read the primary served runs again on
// the session's connection to the other target (the mirror link's), off the client's path, and the
// two answers are compared (routing/result_digest.h).
//
// The session builds a ShadowRead when it samples a read, feeds it the primary's answer as
// pump_backend forwards it, and at the primary's ReadyForQuery hands it to start_shadow_read(),
// which runs it in a coroutine of its own on the worker: the client never waits for it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "protocol/framing.h"
#include "proxy/worker.h"
#include "routing/result_digest.h"

namespace pgtandem::proxy {

class MirrorLink;

struct ShadowRead {
  ShadowRead(std::shared_ptr<const routing::DigestOptions> digest_options, bool ordered)
      : options(std::move(digest_options)), primary(options.get(), ordered) {}

  // The primary's answer to the request (backend messages up to, not including, ReadyForQuery).
  void on_primary(const protocol::Header &header, std::string_view body);
  // A message of the primary's answer streamed in pieces (a DataRow over the keep limit): its rows
  // cannot be digested, so the comparison is abandoned.
  void on_primary_streamed() { abandoned = true; }

  std::shared_ptr<const routing::DigestOptions> options;
  routing::ResultDigest primary;
  std::string request;    // the client's bytes: a simple Query, or a whole batch up to Sync
  std::string statement;  // for the mismatch log, cut at 1 KB
  std::string rule;       // the rule that matched the read, "default" if none
  uint32_t results = 0;   // CommandComplete/ErrorResponse seen in the primary's answer
  bool abandoned = false;
};

struct ShadowRunOptions {
  uint32_t timeout_ms = 5000;
  // The link applies the session's writes too: a shadow read that overruns the timeout is waited
  // for (closing the connection would degrade the mirror); only its outcome counts as dropped.
  bool mirror_writes = false;
  bool redact_values = false;
  std::string mismatch_log;  // "" = pgtandem's own log only
};

// Runs `read` on `link` (if it can be lent now; else it is skipped as "busy"), compares and counts.
void start_shadow_read(Worker &worker, std::shared_ptr<MirrorLink> link,
                       std::shared_ptr<ShadowRead> read, ShadowRunOptions options);

// The shadow section of the admin `/status` JSON: a JSON object (no trailing newline) with the
// totals and the mismatch table, highest count first:
//   {"mismatches_total":N,"other":N,"table":[{"fingerprint":"..","query":"..","count":N,
//     "kinds":{"rows":N,..},"persistent":N,"transient":N,"first_seen":"..","last_seen":"..",
//     "rule":"..","target":"..","example":".."}, ...]}
std::string shadow_status_json(const ServerState &state, size_t limit = 50);

// The mismatch log's JSON line (no newline), exposed for tests.
std::string mismatch_json(const ShadowRead &read, const routing::ResultDigest &shadow,
                          const routing::Comparison &comparison, std::string_view target,
                          bool redact_values, int64_t unix_ms);

}  // namespace pgtandem::proxy

// Clearing the proxy's needs-repair marks after a clean verify (issue 13, item "a clean verify or
// repair clears the crash-window / needs-repair marks"; docs/migration.md, "Marks cleared by a
// clean verify"). Pure: the commands read each pgtandem's /status, keep what they saw when the
// verify started, and this decides what may be cleared at the end.
//
// The rule: a mark may go only if the verify that found old == new started after the mark's
// window had ended. No clock is compared (the commands and the proxies may run on different
// hosts): a mark the verify saw at its start has an ended window when
//   - it is a crash_window mark (recorded when the process after the crash started, so the
//     window, which ended with the crash, lies before the verify's start), or
//   - it is a journal_full mark and that pgtandem's mirroring was not stopped at the start nor is
//     now (the stop lasts for the rest of the stopped process: not stopped means the process was
//     restarted, and writes since are mirrored again).
// A mark not seen at the start (it appeared during the verify), or of another kind, is kept.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "policy/migrate/json.h"

namespace pgtandem::policy::migrate {

struct MarkView {
  std::string kind;  // "crash_window" | "journal_full" | ...
  std::string target;
  std::string from, to;  // as /status shows them ("" for a null `to`)
  std::string id() const { return kind + "|" + target + "|" + from + "|" + to; }
};

// One pgtandem's marks as its GET /status showed them.
struct AdminMarks {
  std::string admin;  // HOST:PORT
  bool read = false;  // false: /status could not be read (then nothing is cleared there)
  bool stopped = false;  // mirror.stopped: the journal limit stopped mirroring in this process
  std::vector<MarkView> marks;
};

// `status_json`: the body of GET /status. False with *error when it has no mirror object.
bool parse_status_marks(std::string_view status_json, AdminMarks* out, std::string* error);

struct ClearPlan {
  std::string path;      // "" = nothing to POST; else /mirror/crash-window/clear or /mirror/needs-repair/clear
  size_t expected = 0;   // marks that POST should clear
  // Their ids (MarkView::id), the POST's body {"marks":[...]}: the proxy clears exactly these, so
  // a mark that appears between the last read of /status and the POST stays.
  std::vector<std::string> ids;
  std::vector<std::string> kept;  // marks left, each "<kind> on <target> from <from>: why"
};
ClearPlan plan_clear(const AdminMarks& at_start, const AdminMarks& now);

Json encode_admin_marks(const std::vector<AdminMarks>& all);
std::vector<AdminMarks> decode_admin_marks(const Json* j);

}  // namespace pgtandem::policy::migrate

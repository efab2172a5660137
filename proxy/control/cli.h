// Operator commands that talk to a running pgtandem's admin endpoint: `pgtandem status` and
// `pgtandem reload`. A small blocking HTTP client; no Asio or Beast in this header.
#pragma once

#include <string>
#include <string_view>

namespace pgtandem::proxy {

// argv[0] is the command name ("status" / "reload"). Exit codes: 0 ok, 1 error (unreachable,
// rejected reload, unexpected answer), 2 usage.
int status_main(int argc, char** argv);
int reload_main(int argc, char** argv);
// `pgtandem cutover --to new|old [--admin HOST:PORT] [--config FILE] [--token T] [--force]
// [--timeout-ms N]` (issue 14): POST /cutover; exit 0 done (or unchanged), 1 refused, aborted or
// unreachable, 2 usage.
int cutover_main(int argc, char** argv);
// The lines `pgtandem cutover` prints for a POST /cutover answer (gates PASS/FAIL with their
// figures, result, pause); *failed unless ok/unchanged. "" with *error if it cannot be parsed.
std::string render_cutover(std::string_view json, bool* failed, std::string* error);

// The readable summary `pgtandem status` prints for a /status JSON document; "" with *error if
// the document cannot be parsed. Pure (for tests).
std::string render_status(std::string_view json, std::string* error);
// The lines `pgtandem reload` prints for a POST /reload answer; *rejected when the outcome is
// "rejected" (or unknown). "" with *error if it cannot be parsed.
std::string render_reload(std::string_view json, bool* rejected, std::string* error);

}  // namespace pgtandem::proxy

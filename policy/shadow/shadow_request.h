// The request a shadow read sends to the other target (issue 5). The client's batch may bind named
// statements that the other target's connection does not hold (or holds under another name, for
// routed reads): the shadow copy uses the unnamed statement instead, parsed inside the copy from
// the statement's Parse message, so it is self-contained, runs on any connection with the
// session's settings, and never touches the statements the mirror or routed reads prepared there.
// Pure: bytes in, bytes out.
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace pgtandem::policy {

// The Parse message (whole, with its header) of a named statement the session prepared, or nullptr.
using ParseLookup = std::function<const std::string *(std::string_view name)>;

// `request`: whole frontend messages, a simple Query or an extended batch up to Sync. Writes the
// shadow copy to *out: Parse(name) becomes Parse(""), Bind/Describe of a named statement use ""
// (a Parse("") from `lookup` is inserted first unless the unnamed statement already holds that
// statement), Close of a statement or portal is left out. False when a statement is neither in
// the batch nor found by `lookup`, or a message is malformed: then there is nothing to shadow.
bool shadow_request(std::string_view request, const ParseLookup &lookup, std::string *out);

}  // namespace pgtandem::policy

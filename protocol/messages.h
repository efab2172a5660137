// Decode and encode every typed message of protocol 3.0, in both directions.
//
// Decoding takes a message body (the bytes after the 5-byte header, as FrameScanner hands them
// out) and fills a small struct of views into that body: no allocation, no copy, so the body must
// outlive the struct. A decoder returns false on any malformed body and never reads out of range;
// it requires the body to be consumed exactly, as the server does (pq_getmsgend).
//
// Encoding appends a whole message (type byte, length, body) to a caller-provided std::string.
// decode() followed by encode() reproduces the original bytes.
//
// Message formats: https://www.postgresql.org/docs/15/protocol-message-formats.html
//
// The messages live in three headers, included here: protocol/wire.h (building blocks, values,
// messages without a body), protocol/frontend.h (client -> server), protocol/backend.h (server ->
// client). Include this one.
#pragma once

#include <string_view>

#include "protocol/backend.h"
#include "protocol/framing.h"
#include "protocol/frontend.h"
#include "protocol/message_types.h"
#include "protocol/wire.h"

namespace pgtandem::protocol {

// ------------------------------------------------------------------------------------------------
// By type byte

// Whether `body` decodes as the message `type` of that direction ('p': any of its four forms).
// False for types that do not exist in that direction.
bool well_formed(Direction dir, char type, std::string_view body);
// "Bind", "ErrorResponse", ...; "Unknown" for types that do not exist in that direction.
std::string_view message_name(Direction dir, char type);

}  // namespace pgtandem::protocol

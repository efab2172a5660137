// Base64 (RFC 4648, standard alphabet, padded), as SCRAM, userlists and the mirror journal use it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pgtandem::protocol {

void append_base64(std::string& out, std::string_view raw);
std::string base64_encode(std::string_view raw);
// Strict: length a multiple of 4, padding only at the end, no whitespace, no stray bits in the
// last character; nullopt on anything else.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace pgtandem::protocol

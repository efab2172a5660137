// Reading a file that holds secrets (the password file, the userlist): a regular file, bounded in
// size, and, unless the caller says otherwise, not readable by group or others (libpq's rule for
// .pgpass: a secret others can read has leaked already).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pgtandem::config {

// The file's bytes; nullopt with `*error` set ("<what> is not a regular file", ...) otherwise.
std::optional<std::string> read_secret_file(const std::string& path, std::string_view what,
                                            bool require_private, std::uintmax_t max_bytes,
                                            std::string* error);

}  // namespace pgtandem::config

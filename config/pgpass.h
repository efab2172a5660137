// pgtandem's own credentials for the targets, in PostgreSQL's password file format (the format of
// ~/.pgpass: https://www.postgresql.org/docs/15/libpq-pgpass.html). Pure: text in, entries out.
//
//   hostname:port:database:username:password
//
// One entry per line; `*` as a whole field (not the password) matches anything; `\:` and `\\`
// stand for a literal colon and backslash (any escaped character stands for itself, as in libpq);
// lines starting with `#` and blank lines are skipped; the first matching entry wins.
//
// Stricter than libpq, which silently ignores lines it cannot use: a line with fewer than five
// fields, with an unescaped `:` in the password, ending in a lone `\`, with a port that is not
// `*` or 1..65535, or containing a NUL byte is an error with its line number, and a file with any
// error yields no entries (an invalid file changes nothing, like the TOML config).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace pgtandem::config {

struct PgpassEntry {
  // std::nullopt where the file says `*`. Values are unescaped.
  std::optional<std::string> host;
  std::optional<std::string> port;  // decimal digits as written ("5432"); compared as text
  std::optional<std::string> database;
  std::optional<std::string> user;
  std::string password;
  uint32_t line = 0;  // 1-based line in the file, for logs ("credentials from line 3")
};

class Pgpass {
 public:
  Pgpass() = default;
  explicit Pgpass(std::vector<PgpassEntry> entries) : entries_(std::move(entries)) {}

  // The first entry matching all four values, or nullptr. Like libpq, values are compared as
  // text: `host` is the name the target is configured with (libpq passes "localhost" for a
  // connection over the default Unix socket directory), `port` is printed in decimal.
  // The pointer is valid as long as this Pgpass.
  const PgpassEntry* lookup(std::string_view host, uint16_t port, std::string_view database,
                            std::string_view user) const;

  const std::vector<PgpassEntry>& entries() const { return entries_; }

 private:
  std::vector<PgpassEntry> entries_;
};

struct PgpassLoadResult {
  std::optional<Pgpass> pgpass;  // set when there is no error
  std::vector<Error> errors;     // every malformed line, in file order (column 0)
  bool ok() const { return pgpass.has_value(); }
};

// Parses the text of a password file. Never throws.
PgpassLoadResult parse_pgpass(std::string_view text, const std::string& source_name = "<string>");

// Reads and parses a password file. Never throws. With `require_private` (the default), a file
// that is not a regular file or that the group or others may read is refused, as libpq refuses it
// ("permissions should be u=rw (0600) or less"): it holds database passwords.
PgpassLoadResult load_pgpass_file(const std::string& path, bool require_private = true);

}  // namespace pgtandem::config

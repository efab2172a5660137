// The users pgtandem authenticates itself with `[auth] mode = "file"`, in PgBouncer's auth_file
// format (https://www.pgbouncer.org/config.html#authentication-file-format). Pure: text in, entries
// out; the SCRAM and MD5 math is in proxy/auth/scram.h.
//
//   "username" "secret"
//
// One user per line, each field in double quotes (a `"` inside a field is written `""`); blank
// lines and lines starting with `;` or `#` are skipped. The secret is what pg_authid.rolpassword
// holds:
//   SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>   (base64; the keys 32 bytes)
//   md5<32 lowercase hex digits>                                 (md5(password || username))
// or, failing both, a plain password. As PostgreSQL does, a secret is an md5 hash when it is
// "md5" followed by exactly 32 lowercase hex digits; one starting with "SCRAM-SHA-256$" must be a
// well-formed verifier (an error otherwise, rather than silently a plain password).
//
// Stricter than PgBouncer: anything after the second field, an unterminated quote, an empty user
// or secret, a duplicate user, a NUL byte is an error with line and column, and a file with any
// error yields no entries (an invalid file changes nothing, like the TOML config).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/config.h"

namespace pgtandem::config {

enum class SecretKind : uint8_t { kScram, kMd5, kPlain };

struct ScramSecret {
  uint32_t iterations = 0;
  std::string salt;        // raw bytes
  std::string stored_key;  // raw, 32 bytes
  std::string server_key;  // raw, 32 bytes
};

struct UserEntry {
  std::string user;
  SecretKind kind = SecretKind::kPlain;
  std::string secret;  // as written: the verifier, "md5..." or the password
  ScramSecret scram;   // kind == kScram
  uint32_t line = 0;
};

class Userlist {
 public:
  Userlist() = default;
  explicit Userlist(std::vector<UserEntry> entries);
  // index_ holds views into entries_' strings: a copy indexes its own (a copied index pointed
  // into the source's strings, freed with it: ASan's heap-use-after-free in Userlist::find). A
  // move keeps the vector's buffer, so the views stay valid.
  Userlist(const Userlist& other) : Userlist(other.entries_) {}
  Userlist& operator=(const Userlist& other) {
    if (this != &other) *this = Userlist(other.entries_);
    return *this;
  }
  Userlist(Userlist&&) noexcept = default;
  Userlist& operator=(Userlist&&) noexcept = default;
  const UserEntry* find(std::string_view user) const;
  size_t size() const { return entries_.size(); }

 private:
  std::vector<UserEntry> entries_;
  std::unordered_map<std::string_view, size_t> index_;  // views into entries_
};

struct UserlistLoadResult {
  std::optional<Userlist> userlist;  // set when there is no error
  std::vector<Error> errors;         // every malformed line, in file order
  bool ok() const { return userlist.has_value(); }
};

// Parses the text of a userlist. Never throws.
UserlistLoadResult parse_userlist(std::string_view text,
                                  const std::string& source_name = "<string>");

// Reads and parses a userlist file. Never throws. With `require_private` (the default) a file that
// is not a regular file or that the group or others may access is refused, like a password file
// (config/pgpass.h): it holds password hashes, which are enough to log in with md5.
UserlistLoadResult load_userlist_file(const std::string& path, bool require_private = true);

// Parses a SCRAM-SHA-256 verifier as stored in pg_authid.rolpassword; nullopt if malformed.
std::optional<ScramSecret> parse_scram_secret(std::string_view secret);
// PostgreSQL's rule: "md5" followed by 32 lowercase hex digits.
bool is_md5_secret(std::string_view secret);

}  // namespace pgtandem::config

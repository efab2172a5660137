#include "config/userlist.h"

#include "config/secret_file.h"
#include "protocol/base64.h"

#include <utility>

namespace pgtandem::config {
namespace {

constexpr std::uintmax_t kMaxFileSize = 64 << 20;
constexpr std::string_view kScramPrefix = "SCRAM-SHA-256$";
constexpr size_t kScramKeySize = 32;

bool blank(std::string_view s) { return s.find_first_not_of(" \t") == std::string_view::npos; }

// Reads one quoted field starting at line[*pos] == '"'; `""` is a quote. On failure sets *error
// and *error_col (0-based) and returns false.
bool read_quoted(std::string_view line, size_t* pos, std::string* out, std::string* error,
                 size_t* error_col) {
  if (*pos >= line.size() || line[*pos] != '"') {
    *error = "expected a field in double quotes";
    *error_col = *pos;
    return false;
  }
  const size_t start = *pos;
  out->clear();
  for (size_t i = *pos + 1; i < line.size(); ++i) {
    if (line[i] != '"') {
      out->push_back(line[i]);
      continue;
    }
    if (i + 1 < line.size() && line[i + 1] == '"') {
      out->push_back('"');
      ++i;
      continue;
    }
    *pos = i + 1;
    return true;
  }
  *error = "unterminated quoted field";
  *error_col = start;
  return false;
}

}  // namespace

bool is_md5_secret(std::string_view s) {
  if (s.size() != 35 || !s.starts_with("md5")) return false;
  for (char c : s.substr(3)) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::optional<ScramSecret> parse_scram_secret(std::string_view s) {
  if (!s.starts_with(kScramPrefix)) return std::nullopt;
  s.remove_prefix(kScramPrefix.size());
  const size_t dollar = s.find('$');
  if (dollar == std::string_view::npos) return std::nullopt;
  std::string_view head = s.substr(0, dollar);
  std::string_view keys = s.substr(dollar + 1);
  const size_t c1 = head.find(':');
  const size_t c2 = keys.find(':');
  if (c1 == std::string_view::npos || c2 == std::string_view::npos) return std::nullopt;
  std::string_view iter_text = head.substr(0, c1);
  if (iter_text.empty() || iter_text.size() > 10) return std::nullopt;
  uint64_t iterations = 0;
  for (char c : iter_text) {
    if (c < '0' || c > '9') return std::nullopt;
    iterations = iterations * 10 + static_cast<uint64_t>(c - '0');
  }
  if (iterations == 0 || iterations > 0x7fffffff) return std::nullopt;
  auto salt = protocol::base64_decode(head.substr(c1 + 1));
  auto stored = protocol::base64_decode(keys.substr(0, c2));
  auto server = protocol::base64_decode(keys.substr(c2 + 1));
  if (!salt || salt->empty() || !stored || stored->size() != kScramKeySize || !server ||
      server->size() != kScramKeySize) {
    return std::nullopt;
  }
  ScramSecret out;
  out.iterations = static_cast<uint32_t>(iterations);
  out.salt = std::move(*salt);
  out.stored_key = std::move(*stored);
  out.server_key = std::move(*server);
  return out;
}

Userlist::Userlist(std::vector<UserEntry> entries) : entries_(std::move(entries)) {
  for (size_t i = 0; i < entries_.size(); ++i) index_.emplace(entries_[i].user, i);
}

const UserEntry* Userlist::find(std::string_view user) const {
  auto it = index_.find(user);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

UserlistLoadResult parse_userlist(std::string_view text, const std::string& source_name) {
  UserlistLoadResult result;
  std::vector<UserEntry> entries;
  std::unordered_map<std::string, uint32_t> seen;  // user -> line
  uint32_t line_no = 0;
  size_t pos = 0;
  auto add_error = [&](size_t col0, std::string message) {
    result.errors.push_back(
        Error{source_name, line_no, static_cast<uint32_t>(col0 + 1), std::move(message)});
  };
  while (pos < text.size()) {
    const size_t nl = text.find('\n', pos);
    std::string_view line =
        text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (const size_t nul = line.find('\0'); nul != std::string_view::npos) {
      add_error(nul, "NUL byte in line");
      continue;
    }
    const size_t first = line.find_first_not_of(" \t");
    if (first == std::string_view::npos || line[first] == ';' || line[first] == '#') continue;

    std::string user, secret, error;
    size_t i = first, error_col = 0;
    if (!read_quoted(line, &i, &user, &error, &error_col)) {
      add_error(error_col, error + " (expected \"username\" \"secret\")");
      continue;
    }
    const size_t user_col = first;
    const size_t gap = line.find_first_not_of(" \t", i);
    if (gap == i || gap == std::string_view::npos) {
      add_error(gap == std::string_view::npos ? line.size() : i,
                "expected whitespace and the secret in double quotes after the user name");
      continue;
    }
    i = gap;
    const size_t secret_col = i;
    if (!read_quoted(line, &i, &secret, &error, &error_col)) {
      add_error(error_col, error + " (expected \"username\" \"secret\")");
      continue;
    }
    if (!blank(line.substr(i))) {
      add_error(line.find_first_not_of(" \t", i), "unexpected text after the secret");
      continue;
    }
    if (user.empty()) {
      add_error(user_col, "empty user name");
      continue;
    }
    if (secret.empty()) {
      add_error(secret_col, "empty secret for user \"" + user + "\"");
      continue;
    }
    if (auto it = seen.find(user); it != seen.end()) {
      add_error(user_col, "duplicate user \"" + user + "\" (first on line " +
                              std::to_string(it->second) + ")");
      continue;
    }
    UserEntry e;
    if (std::string_view(secret).starts_with(kScramPrefix)) {
      auto scram = parse_scram_secret(secret);
      if (!scram) {
        add_error(secret_col,
                  "malformed SCRAM-SHA-256 verifier for user \"" + user +
                      "\" (expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>)");
        continue;
      }
      e.kind = SecretKind::kScram;
      e.scram = std::move(*scram);
    } else if (is_md5_secret(secret)) {
      e.kind = SecretKind::kMd5;
    } else {
      e.kind = SecretKind::kPlain;
    }
    seen.emplace(user, line_no);
    e.user = std::move(user);
    e.secret = std::move(secret);
    e.line = line_no;
    entries.push_back(std::move(e));
  }
  if (result.errors.empty()) result.userlist.emplace(std::move(entries));
  return result;
}

UserlistLoadResult load_userlist_file(const std::string& path, bool require_private) {
  std::string error;
  std::optional<std::string> text =
      read_secret_file(path, "userlist", require_private, kMaxFileSize, &error);
  if (!text) {
    UserlistLoadResult r;
    r.errors.push_back(Error{path, 0, 0, std::move(error)});
    return r;
  }
  return parse_userlist(*text, path);
}

}  // namespace pgtandem::config

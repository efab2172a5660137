// libFuzzer target: the userlist parser (config/userlist.h). Never crashes; ok() exactly when
// there is no error; every error placed on a line of the text. A userlist that loads is checked
// against a small reference reading of the format (each non-comment line: "user" "secret", `""`
// for a quote): every user is found with its secret, kind and line, and nothing else is there;
// written back canonically it loads to the same entries. The rest of the input is also fed to
// parse_scram_secret (as are the secrets of a loaded list), whose result must survive a
// re-encoding.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/userlist.h"
#include "protocol/base64.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using namespace pgtandem::config;

struct RefEntry {
  std::string user, secret;
  uint32_t line = 0;
};

// One quoted field starting at line[*i] == '"'.
std::string ref_unquote(std::string_view line, size_t* i) {
  std::string out;
  size_t j = *i + 1;
  for (;;) {
    FUZZ_CHECK(j < line.size());  // the parser accepted it: it is terminated
    if (line[j] == '"') {
      if (j + 1 < line.size() && line[j + 1] == '"') {
        out += '"';
        j += 2;
        continue;
      }
      *i = j + 1;
      return out;
    }
    out += line[j++];
  }
}

std::vector<RefEntry> reference(std::string_view text) {
  std::vector<RefEntry> out;
  uint32_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? nl : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    size_t i = line.find_first_not_of(" \t");
    if (i == std::string_view::npos || line[i] == ';' || line[i] == '#') continue;
    FUZZ_CHECK(line[i] == '"');
    RefEntry e;
    e.line = line_no;
    e.user = ref_unquote(line, &i);
    i = line.find_first_not_of(" \t", i);
    FUZZ_CHECK(i != std::string_view::npos && line[i] == '"');
    e.secret = ref_unquote(line, &i);
    FUZZ_CHECK(line.find_first_not_of(" \t", i) == std::string_view::npos);
    out.push_back(std::move(e));
  }
  return out;
}

bool ref_md5(std::string_view s) {
  if (s.size() != 35 || !s.starts_with("md5")) return false;
  for (char c : s.substr(3)) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    out += c;
    if (c == '"') out += '"';
  }
  return out + "\"";
}

void check_scram(std::string_view s) {
  std::optional<ScramSecret> a = parse_scram_secret(s);
  if (!a) return;
  FUZZ_CHECK(s.starts_with("SCRAM-SHA-256$"));
  FUZZ_CHECK(a->iterations > 0);
  FUZZ_CHECK(!a->salt.empty());
  FUZZ_CHECK(a->stored_key.size() == 32 && a->server_key.size() == 32);
  const std::string again = "SCRAM-SHA-256$" + std::to_string(a->iterations) + ":" +
                            pgtandem::protocol::base64_encode(a->salt) + "$" +
                            pgtandem::protocol::base64_encode(a->stored_key) + ":" +
                            pgtandem::protocol::base64_encode(a->server_key);
  std::optional<ScramSecret> b = parse_scram_secret(again);
  FUZZ_CHECK(b.has_value());
  FUZZ_CHECK(b->iterations == a->iterations && b->salt == a->salt &&
             b->stored_key == a->stored_key && b->server_key == a->server_key);
}

void check_userlist(std::string_view text) {
  const UserlistLoadResult r = parse_userlist(text, "fuzz.userlist");
  FUZZ_CHECK(r.ok() == r.errors.empty());
  uint32_t lines = 1;
  for (char c : text) lines += c == '\n';
  for (const auto& e : r.errors) {
    FUZZ_CHECK(e.line >= 1 && e.line <= lines);
    FUZZ_CHECK(!e.message.empty());
  }
  if (!r.ok()) return;
  const std::vector<RefEntry> ref = reference(text);
  FUZZ_CHECK(r.userlist->size() == ref.size());
  std::string canonical;
  for (const RefEntry& e : ref) {
    const UserEntry* u = r.userlist->find(e.user);
    FUZZ_CHECK(u != nullptr);
    FUZZ_CHECK(u->user == e.user && u->secret == e.secret && u->line == e.line);
    check_scram(e.secret);
    if (e.secret.starts_with("SCRAM-SHA-256$")) {
      FUZZ_CHECK(u->kind == SecretKind::kScram);
      std::optional<ScramSecret> s = parse_scram_secret(e.secret);
      FUZZ_CHECK(s && s->stored_key == u->scram.stored_key);
    } else {
      FUZZ_CHECK(u->kind == (ref_md5(e.secret) ? SecretKind::kMd5 : SecretKind::kPlain));
      FUZZ_CHECK(is_md5_secret(e.secret) == ref_md5(e.secret));
    }
    canonical += quote(e.user) + " " + quote(e.secret) + "\n";
  }
  const UserlistLoadResult again = parse_userlist(canonical);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again.userlist->size() == ref.size());
  for (const RefEntry& e : ref) {
    const UserEntry* u = again.userlist->find(e.user);
    FUZZ_CHECK(u != nullptr && u->secret == e.secret);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  check_userlist(text);
  check_scram(text);
  return 0;
}

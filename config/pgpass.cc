#include "config/pgpass.h"

#include "config/secret_file.h"

#include <utility>

namespace pgtandem::config {
namespace {

// A password file is small; anything bigger is a wrong path, not a password file.
constexpr std::uintmax_t kMaxFileSize = 16 << 20;
constexpr size_t kFields = 5;

struct RawField {
  std::string value;  // unescaped
  bool wildcard = false;
};

bool matches(const std::optional<std::string>& field, std::string_view value) {
  return !field || *field == value;
}

bool blank(std::string_view line) {
  return line.find_first_not_of(" \t") == std::string_view::npos;
}

// Splits one line into unescaped fields; on failure sets *error and returns false.
bool split_line(std::string_view line, std::vector<RawField>* fields, std::string* error) {
  fields->clear();
  fields->emplace_back();
  size_t field_start = 0;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (c == '\0') {
      *error = "NUL byte in line";
      return false;
    }
    if (c == '\\') {
      if (i + 1 == line.size()) {
        *error = "line ends with a lone '\\' (write \\\\ for a backslash)";
        return false;
      }
      fields->back().value.push_back(line[++i]);
      continue;
    }
    if (c == ':') {
      // libpq: a field is a wildcard only when it is exactly an unescaped `*`.
      fields->back().wildcard = line.substr(field_start, i - field_start) == "*";
      if (fields->size() == kFields) {
        *error = "unescaped ':' in the password (write \\: for a colon)";
        return false;
      }
      fields->emplace_back();
      field_start = i + 1;
      continue;
    }
    fields->back().value.push_back(c);
  }
  if (fields->size() != kFields) {
    *error = "expected hostname:port:database:username:password, found " +
             std::to_string(fields->size()) + (fields->size() == 1 ? " field" : " fields");
    return false;
  }
  return true;
}

bool valid_port(const RawField& f) {
  if (f.wildcard) return true;
  const std::string& s = f.value;
  // Compared as text like libpq: "05432" would never match port 5432, so it is an error here.
  if (s.empty() || s.size() > 5 || s[0] == '0') return false;
  uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  return v <= 65535;
}

std::optional<std::string> field_value(RawField& f) {
  if (f.wildcard) return std::nullopt;
  return std::move(f.value);
}

}  // namespace

const PgpassEntry* Pgpass::lookup(std::string_view host, uint16_t port, std::string_view database,
                                  std::string_view user) const {
  const std::string port_text = std::to_string(port);
  for (const PgpassEntry& e : entries_) {
    if (matches(e.host, host) && matches(e.port, port_text) && matches(e.database, database) &&
        matches(e.user, user)) {
      return &e;
    }
  }
  return nullptr;
}

PgpassLoadResult parse_pgpass(std::string_view text, const std::string& source_name) {
  PgpassLoadResult result;
  std::vector<PgpassEntry> entries;
  std::vector<RawField> fields;
  uint32_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line =
        text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    ++line_no;
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
    if (blank(line) || line.front() == '#') continue;

    std::string error;
    if (!split_line(line, &fields, &error)) {
      result.errors.push_back(Error{source_name, line_no, 0, error});
      continue;
    }
    if (!valid_port(fields[1])) {
      std::string message = "port must be * or a number 1..65535 without leading zeros, not \"" +
                            fields[1].value + "\"";
      result.errors.push_back(Error{source_name, line_no, 0, std::move(message)});
      continue;
    }
    PgpassEntry e;
    e.host = field_value(fields[0]);
    e.port = field_value(fields[1]);
    e.database = field_value(fields[2]);
    e.user = field_value(fields[3]);
    // `*` is a wildcard in the first four fields only: as a password it is the password "*".
    e.password = std::move(fields[4].value);
    e.line = line_no;
    entries.push_back(std::move(e));
  }
  if (result.errors.empty()) result.pgpass.emplace(std::move(entries));
  return result;
}

PgpassLoadResult load_pgpass_file(const std::string& path, bool require_private) {
  std::string error;
  std::optional<std::string> text =
      read_secret_file(path, "password file", require_private, kMaxFileSize, &error);
  if (!text) {
    PgpassLoadResult r;
    r.errors.push_back(Error{path, 0, 0, std::move(error)});
    return r;
  }
  return parse_pgpass(*text, path);
}

}  // namespace pgtandem::config

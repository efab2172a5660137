#include "policy/migrate/divergence.h"

#include <algorithm>
#include <cstdint>

#include "policy/route/route_rules.h"

namespace pgtandem::policy::migrate {

namespace {

uint32_t be32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | uint32_t{u[3]};
}

// The NUL-terminated string at the start of `s` (without its NUL); nullopt-like empty + false.
bool cstring(std::string_view s, std::string_view* out) {
  const size_t nul = s.find('\0');
  if (nul == std::string_view::npos) return false;
  *out = s.substr(0, nul);
  return true;
}

}  // namespace

std::vector<std::string_view> unit_statements(std::string_view bytes, size_t max) {
  std::vector<std::string_view> out;
  size_t at = 0;
  while (at + 5 <= bytes.size() && out.size() < max) {
    const char type = bytes[at];
    const uint32_t len = be32(bytes.data() + at + 1);
    if (len < 4 || at + 1 + len > bytes.size()) break;  // not a whole message: stop
    const std::string_view body = bytes.substr(at + 5, len - 4);
    std::string_view sql;
    if (type == 'Q') {
      if (cstring(body, &sql) && !sql.empty()) out.push_back(sql);
    } else if (type == 'P') {
      std::string_view name;
      if (cstring(body, &name) && cstring(body.substr(name.size() + 1), &sql) && !sql.empty())
        out.push_back(sql);
    }
    at += 1 + len;
  }
  return out;
}

std::vector<std::string> unit_tables(std::string_view frontend_bytes) {
  std::vector<std::string> tables;
  for (const auto sql : unit_statements(frontend_bytes)) {
    for (auto& t : referenced_tables(sql))
      if (std::find(tables.begin(), tables.end(), t) == tables.end()) tables.push_back(std::move(t));
  }
  return tables;
}

}  // namespace pgtandem::policy::migrate

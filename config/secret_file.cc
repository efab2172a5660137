#include "config/secret_file.h"

#include <filesystem>
#include <fstream>
#include <iterator>

namespace pgtandem::config {

std::optional<std::string> read_secret_file(const std::string& path, std::string_view what,
                                            bool require_private, std::uintmax_t max_bytes,
                                            std::string* error) {
  namespace fs = std::filesystem;
  const std::string name(what);
  auto fail = [&](std::string message) -> std::optional<std::string> {
    *error = std::move(message);
    return std::nullopt;
  };
  std::error_code ec;
  fs::file_status st = fs::status(path, ec);
  if (ec) return fail("cannot read " + name + ": " + ec.message());
  if (st.type() != fs::file_type::regular) return fail(name + " is not a regular file");
  if (require_private &&
      (st.permissions() & (fs::perms::group_all | fs::perms::others_all)) != fs::perms::none) {
    return fail(name + " has group or world access; permissions should be u=rw (0600)");
  }
  std::uintmax_t size = fs::file_size(path, ec);
  if (ec) return fail("cannot read " + name + ": " + ec.message());
  if (size > max_bytes) {
    return fail(name + " is larger than " + std::to_string(max_bytes >> 20) + " MiB");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail("cannot open " + name);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return fail("error reading " + name);
  return text;
}

}  // namespace pgtandem::config

// Loading: the file's bytes -> toml++ -> the Validator (config/validator.h, config/sections/) ->
// Config. Also the small public helpers of config.h.
#include "config/config.h"

#include <toml++/toml.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <fstream>
#include <sstream>
#include <utility>

#include "config/validator.h"

namespace pgtandem::config {
namespace {

// A config file is small; anything bigger is a mistake (wrong path), not a config.
constexpr std::streamoff kMaxFileSize = 16 << 20;

}  // namespace

std::string Error::to_string() const {
  std::string out = file;
  if (line != 0) {
    out += ':' + std::to_string(line) + ':' + std::to_string(column);
  }
  out += ": ";
  out += message;
  return out;
}

std::string config_hash(std::string_view file_contents) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a 64 offset basis
  for (unsigned char c : file_contents) {
    h ^= c;
    h *= 0x100000001b3ULL;  // FNV-1a 64 prime
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i) {
    out[static_cast<size_t>(i)] = kHex[h & 0xf];
    h >>= 4;
  }
  return out;
}

std::string format_host_port(std::string_view host, uint16_t port) {
  const bool v6 = host.find(':') != std::string_view::npos;
  std::string out;
  if (v6) out += '[';
  out += host;
  if (v6) out += ']';
  out += ':';
  out += std::to_string(port);
  return out;
}

LoadResult load_string(std::string_view toml, const std::string& source_name) {
  LoadResult result;
  // The only exceptions that can get here are toml++'s parse_error (this toml++ build throws) and
  // allocation failure; load_* promises never to throw, so both end as errors.
  try {
    result.source_hash = config_hash(toml);
    toml::table root;
    try {
      root = toml::parse(toml, source_name);
    } catch (const toml::parse_error& e) {
      Error error;
      error.file = source_name;
      error.line = e.source().begin.line;
      error.column = e.source().begin.column;
      error.message = std::string(e.description());
      result.errors.push_back(std::move(error));
      return result;
    }
    Config config;
    detail::Validator validator(source_name);
    validator.validate(root, config);
    result.errors = validator.take_errors();
    if (result.errors.empty()) result.config = std::move(config);
  } catch (const std::exception& e) {
    result.config.reset();
    result.errors.push_back(Error{source_name, 0, 0, std::string("internal error: ") + e.what()});
  } catch (...) {
    result.config.reset();
    result.errors.push_back(Error{source_name, 0, 0, "internal error"});
  }
  return result;
}

LoadResult load_file(const std::string& path) {
  try {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      const int err = errno;
      LoadResult result;
      result.errors.push_back(
          Error{path, 0, 0, std::string("cannot open file: ") + std::strerror(err)});
      return result;
    }
    in.seekg(0, std::ios::end);
    const std::streamoff size = in.tellg();
    in.seekg(0, std::ios::beg);
    if (size < 0 || !in) {
      LoadResult result;
      result.errors.push_back(Error{path, 0, 0, "cannot read file (is it a directory?)"});
      return result;
    }
    if (size > kMaxFileSize) {
      LoadResult result;
      result.errors.push_back(Error{path, 0, 0,
                                    "file is " + std::to_string(size) + " bytes, more than " +
                                        std::to_string(kMaxFileSize) + ": not a config file"});
      return result;
    }
    std::ostringstream contents;
    contents << in.rdbuf();
    if (in.bad()) {
      LoadResult result;
      result.errors.push_back(Error{path, 0, 0, "cannot read file"});
      return result;
    }
    return load_string(contents.str(), path);
  } catch (const std::exception& e) {
    LoadResult result;
    result.errors.push_back(Error{path, 0, 0, std::string("cannot read file: ") + e.what()});
    return result;
  }
}

std::string resolve_state_path(const std::string& state_dir, const std::string& path) {
  if (!path.empty() && path[0] == '/') return path;
  std::string dir = state_dir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir == "/" ? "/" + path : dir + "/" + path;
}

}  // namespace pgtandem::config

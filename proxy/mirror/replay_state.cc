// The replay engine's applied-state file (replay_state.h).
#include "proxy/mirror/replay_state.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace pgtandem::proxy::replay_detail {
namespace {

constexpr const char* kAppliedHeader = "pgtandem replay applied-state v1";

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

}  // namespace

bool read_applied(const std::string& path, AppliedState* out, std::string* error) {
  *out = AppliedState{};
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return true;  // nothing applied yet
    *error = errno_text("cannot read " + path);
    return false;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = errno_text("cannot read " + path);
    return false;
  }
  std::string header, seq_word, fp_word, seq_text, fp_text;
  std::getline(in, header);
  in >> seq_word >> seq_text >> fp_word >> fp_text;
  auto number = [](const std::string& text, int base, uint64_t* v) {
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *v, base);
    return ec == std::errc() && end == text.data() + text.size() && !text.empty();
  };
  if (header != kAppliedHeader || seq_word != "seq" || fp_word != "fingerprint" ||
      fp_text.size() != 16 || !number(seq_text, 10, &out->seq) ||
      !number(fp_text, 16, &out->fingerprint)) {
    *out = AppliedState{};
    *error = path + " is not a pgtandem replay applied-state file";
    return false;
  }
  return true;
}

bool write_applied(const std::string& path, const AppliedState& state, std::string* error) {
  char fingerprint_hex[17];
  std::snprintf(fingerprint_hex, sizeof fingerprint_hex, "%016llx",
                static_cast<unsigned long long>(state.fingerprint));
  std::string text = std::string(kAppliedHeader) + "\nseq " + std::to_string(state.seq) +
                     "\nfingerprint " + fingerprint_hex + "\n";
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    *error = errno_text("cannot create " + tmp);
    return false;
  }
  const char* p = text.data();
  size_t left = text.size();
  while (left > 0) {
    ssize_t w = ::write(fd, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      *error = errno_text("cannot write " + tmp);
      ::close(fd);
      return false;
    }
    p += w;
    left -= static_cast<size_t>(w);
  }
  if (::fsync(fd) != 0) {
    *error = errno_text("cannot fsync " + tmp);
    ::close(fd);
    return false;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    *error = errno_text("cannot rename " + tmp + " to " + path);
    return false;
  }
  // The rename is durable only once the directory is synced.
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || ::fsync(dfd) != 0) {
    *error = errno_text("cannot fsync directory " + dir);
    if (dfd >= 0) ::close(dfd);
    return false;
  }
  ::close(dfd);
  return true;
}

}  // namespace pgtandem::proxy::replay_detail

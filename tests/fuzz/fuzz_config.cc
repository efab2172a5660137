// libFuzzer target: config::load_string on arbitrary TOML. It must never crash or throw, and its
// result must be consistent: ok() exactly when there is no error, every error placed inside the
// text, a loaded config with both targets and its primary among them, the source hash that of the
// bytes, and loading the same text twice gives the same answer.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "config/config.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using pgtandem::config::LoadResult;

void check(const LoadResult& r, std::string_view text) {
  FUZZ_CHECK(r.ok() == r.errors.empty());
  FUZZ_CHECK(r.source_hash == pgtandem::config::config_hash(text));
  size_t lines = 1;
  for (char c : text) lines += c == '\n';
  for (const auto& e : r.errors) {
    FUZZ_CHECK(!e.message.empty());
    FUZZ_CHECK(e.line <= lines);
    FUZZ_CHECK(!e.to_string().empty());
  }
  if (r.ok()) {
    const auto& cfg = *r.config;
    FUZZ_CHECK(cfg.find_target("old") != nullptr);
    FUZZ_CHECK(cfg.find_target("new") != nullptr);
    FUZZ_CHECK(cfg.primary == "old" || cfg.primary == "new");
    FUZZ_CHECK(&cfg.primary_target() != &cfg.secondary_target());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const LoadResult a = pgtandem::config::load_string(text, "fuzz.toml");
  check(a, text);
  const LoadResult b = pgtandem::config::load_string(text, "fuzz.toml");
  FUZZ_CHECK(a.ok() == b.ok());
  FUZZ_CHECK(a.errors.size() == b.errors.size());
  for (size_t i = 0; i < a.errors.size() && i < b.errors.size(); ++i) {
    FUZZ_CHECK(a.errors[i].to_string() == b.errors[i].to_string());
  }
  return 0;
}

// Structured logging: one line per event, logfmt or JSON, quiet by default (info: lifecycle only).
#pragma once

#include <chrono>
#include <cstdint>

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgtandem::proxy::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };
enum class Format { kLogfmt, kJson };

void configure(Level level, Format format);

// Appends `s` as a JSON string literal (quotes, escapes); for JSON lines written elsewhere too.
void append_json_string(std::string& out, std::string_view s);
// A JSON array of strings.
void append_json_string_array(std::string& out, const std::vector<std::string>& v);
// "2026-11-21T15:04:05.123Z" (UTC, milliseconds): the one timestamp format of logs, journal, audit
// entries, /status and the shadow mismatch log.
std::string utc_timestamp(std::chrono::system_clock::time_point t);
std::string utc_timestamp_ms(int64_t unix_ms);
bool parse_level(std::string_view s, Level* out);
bool enabled(Level level);

using Field = std::pair<std::string_view, std::string_view>;
void write(Level level, std::string_view msg, std::initializer_list<Field> fields = {});

inline void debug(std::string_view msg, std::initializer_list<Field> f = {}) {
  if (enabled(Level::kDebug)) write(Level::kDebug, msg, f);
}
inline void info(std::string_view msg, std::initializer_list<Field> f = {}) {
  if (enabled(Level::kInfo)) write(Level::kInfo, msg, f);
}
inline void warn(std::string_view msg, std::initializer_list<Field> f = {}) {
  if (enabled(Level::kWarn)) write(Level::kWarn, msg, f);
}
inline void error(std::string_view msg, std::initializer_list<Field> f = {}) {
  write(Level::kError, msg, f);
}

}  // namespace pgtandem::proxy::log

#include "proxy/telemetry/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace pgtandem::proxy::log {
namespace {

std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
std::atomic<Format> g_format{Format::kLogfmt};
std::mutex g_mu;

const char* level_name(Level l) {
  switch (l) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
  }
  return "info";
}


void append_logfmt_value(std::string& out, std::string_view s) {
  bool quote = s.empty();
  for (unsigned char c : s)
    if (c <= ' ' || c == '"' || c == '=' || c == '\\') quote = true;
  if (!quote) {
    out.append(s);
    return;
  }
  append_json_string(out, s);  // logfmt quoting uses the same escapes
}

std::string timestamp() { return utc_timestamp(std::chrono::system_clock::now()); }

}  // namespace

std::string utc_timestamp_ms(int64_t unix_ms) {
  const int64_t ms = ((unix_ms % 1000) + 1000) % 1000;
  const std::time_t secs = static_cast<std::time_t>((unix_ms - ms) / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

std::string utc_timestamp(std::chrono::system_clock::time_point t) {
  return utc_timestamp_ms(
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count());
}

void append_json_string_array(std::string& out, const std::vector<std::string>& v) {
  out.push_back('[');
  for (size_t i = 0; i < v.size(); ++i) {
    if (i != 0) out.push_back(',');
    append_json_string(out, v[i]);
  }
  out.push_back(']');
}

void append_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
}

void configure(Level level, Format format) {
  g_level.store(static_cast<int>(level));
  g_format.store(format);
}

bool parse_level(std::string_view s, Level* out) {
  if (s == "debug") *out = Level::kDebug;
  else if (s == "info") *out = Level::kInfo;
  else if (s == "warn") *out = Level::kWarn;
  else if (s == "error") *out = Level::kError;
  else return false;
  return true;
}

bool enabled(Level level) { return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed); }

void write(Level level, std::string_view msg, std::initializer_list<Field> fields) {
  std::string line;
  line.reserve(128);
  if (g_format.load(std::memory_order_relaxed) == Format::kJson) {
    line += "{\"ts\":\"" + timestamp() + "\",\"level\":\"" + level_name(level) + "\",\"msg\":";
    append_json_string(line, msg);
    for (const auto& [k, v] : fields) {
      line.push_back(',');
      append_json_string(line, k);
      line.push_back(':');
      append_json_string(line, v);
    }
    line += "}\n";
  } else {
    line += "ts=" + timestamp() + " level=" + level_name(level) + " msg=";
    append_logfmt_value(line, msg);
    for (const auto& [k, v] : fields) {
      line.push_back(' ');
      line.append(k);
      line.push_back('=');
      append_logfmt_value(line, v);
    }
    line.push_back('\n');
  }
  std::lock_guard lock(g_mu);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace pgtandem::proxy::log

// libFuzzer target: the mirror journal's reader (proxy/mirror/journal.h). The first byte picks:
//   0: the rest is one journal line for parse_journal_line; a line that parses is written back
//      with format_journal_line, which must give one line (no newline) that parses to the same
//      entry.
//   1: the rest is a journal file: Journal::open (which cuts a torn last line and finds the last
//      sequence number among the lines that parse) must accept it, leave only whole lines, and
//      continue the sequence after the last line that parses; the entry it appends reads back.
//   2: the rest builds an entry field by field (arbitrary bytes in every string): formatting and
//      parsing it must give it back exactly.
// Files go to a private temporary directory (under /dev/shm when it is writable), removed at exit.
#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>

#include "proxy/mirror/journal.h"
#include "proxy/telemetry/log.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using pgtandem::proxy::Journal;
using pgtandem::proxy::JournalEntry;

bool same(const JournalEntry& a, const JournalEntry& b) {
  const auto& s = a.session;
  const auto& t = b.session;
  const auto& u = a.unit;
  const auto& v = b.unit;
  return a.seq == b.seq && a.target == b.target && a.reason == b.reason && a.detail == b.detail &&
         a.uncertain == b.uncertain && s.id == t.id && s.user == t.user &&
         s.database == t.database && s.params == t.params && s.state == t.state &&
         s.prepared == t.prepared && u.bytes == v.bytes && u.responses == v.responses &&
         u.primary == v.primary && u.binds == v.binds && u.session_state == v.session_state &&
         u.transaction == v.transaction && u.nondeterministic == v.nondeterministic &&
         u.first_sql == v.first_sql;
}

void round_trip(const JournalEntry& e) {
  const std::string line = pgtandem::proxy::format_journal_line(e);
  FUZZ_CHECK(line.find('\n') == std::string::npos);
  JournalEntry back;
  std::string error;
  FUZZ_CHECK(pgtandem::proxy::parse_journal_line(line, &back, &error));
  FUZZ_CHECK(same(e, back));
}

void one_line(const std::string& line) {
  JournalEntry e;
  std::string error;
  if (pgtandem::proxy::parse_journal_line(line, &e, &error)) {
    round_trip(e);
  } else {
    FUZZ_CHECK(!error.empty());
  }
}

struct Reader {
  std::string_view in;
  std::string str() {
    if (in.empty()) return {};
    size_t n = static_cast<uint8_t>(in[0]) % 48;
    in.remove_prefix(1);
    if (n > in.size()) n = in.size();
    std::string out(in.substr(0, n));
    in.remove_prefix(n);
    return out;
  }
  uint64_t num() {
    uint64_t v = 0;
    for (int i = 0; i < 8 && !in.empty(); ++i) {
      v = v << 8 | static_cast<uint8_t>(in[0]);
      in.remove_prefix(1);
    }
    return v;
  }
};

void built_entry(std::string_view data) {
  Reader r{data};
  JournalEntry e;
  const uint64_t flags = r.num();
  e.seq = r.num();
  e.target = r.str();
  e.reason = r.str();
  e.detail = r.str();
  e.uncertain = flags & 1;
  e.session.id = r.str();
  e.session.user = r.str();
  e.session.database = r.str();
  for (uint64_t i = 0; i < (flags >> 1 & 3); ++i) {
    std::string k = r.str();
    e.session.params.emplace_back(std::move(k), r.str());
  }
  for (uint64_t i = 0; i < (flags >> 3 & 3); ++i) e.session.state.push_back(r.str());
  for (uint64_t i = 0; i < (flags >> 5 & 3); ++i) {
    std::string k = r.str();
    e.session.prepared.emplace_back(std::move(k), r.str());
  }
  e.unit.bytes = r.str();
  e.unit.responses = static_cast<uint32_t>(r.num());
  for (uint64_t i = 0; i < (flags >> 7 & 3); ++i) {
    std::string tag = r.str();
    e.unit.primary.push_back({std::move(tag), r.str()});
  }
  for (uint64_t i = 0; i < (flags >> 9 & 3); ++i) e.unit.binds.push_back(r.str());
  e.unit.session_state = flags >> 11 & 1;
  e.unit.transaction = flags >> 12 & 1;
  e.unit.nondeterministic = flags >> 13 & 1;
  e.unit.first_sql = r.str();
  round_trip(e);
}

std::string temp_dir() {
  static const std::string dir = [] {
    std::string base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "";
    if (base.empty()) base = std::getenv("TMPDIR") != nullptr ? std::getenv("TMPDIR") : "/tmp";
    std::string tmpl = base + "/pgtandem-fuzz-journal.XXXXXX";
    FUZZ_CHECK(mkdtemp(tmpl.data()) != nullptr);
    static std::string remove_at_exit = tmpl;
    std::atexit([] {
      for (const char* f : {"/journal", "/journal.torn"}) unlink((remove_at_exit + f).c_str());
      rmdir(remove_at_exit.c_str());
    });
    return tmpl;
  }();
  return dir;
}

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

void journal_file(std::string_view content) {
  const std::string path = temp_dir() + "/journal";
  unlink(path.c_str());
  unlink((path + ".torn").c_str());
  {
    std::ofstream f(path, std::ios::binary);
    f.write(content.data(), static_cast<std::streamsize>(content.size()));
  }
  // What open() must find: the whole lines, and the last of them that parses.
  const size_t whole = content.rfind('\n') == std::string_view::npos ? 0 : content.rfind('\n') + 1;
  uint64_t last_seq = 0;
  for (size_t end = whole; end > 0;) {  // end: one past the newline ending the line
    const size_t newline = end - 1;
    const size_t prev = newline == 0 ? std::string_view::npos : content.rfind('\n', newline - 1);
    const size_t begin = prev == std::string_view::npos ? 0 : prev + 1;
    const std::string line(content.substr(begin, newline - begin));
    JournalEntry e;
    std::string error;
    if (!line.empty() && pgtandem::proxy::parse_journal_line(line, &e, &error)) {
      last_seq = e.seq;
      break;
    }
    end = begin;
  }

  std::string error;
  std::unique_ptr<Journal> j =
      Journal::open(path, pgtandem::proxy::FsyncPolicy::kNever, 0, &error);
  FUZZ_CHECK(j != nullptr);
  FUZZ_CHECK(j->bytes() == whole);
  JournalEntry e;
  e.target = "new";
  e.reason = "mirror_error";
  e.unit.bytes = std::string("Q\0\0\0\x0dSELECT 1\0", 14);
  e.unit.responses = 1;
  const uint64_t seq = j->append(e);
  FUZZ_CHECK(seq == last_seq + 1);
  j.reset();

  const std::string after = read_all(path);
  FUZZ_CHECK(after.size() > whole && after.substr(0, whole) == content.substr(0, whole));
  FUZZ_CHECK(after.back() == '\n');
  const std::string appended = after.substr(whole, after.size() - whole - 1);
  FUZZ_CHECK(appended.find('\n') == std::string::npos);
  JournalEntry back;
  FUZZ_CHECK(pgtandem::proxy::parse_journal_line(appended, &back, &error));
  e.seq = seq;
  FUZZ_CHECK(same(e, back));
  if (whole < content.size()) {
    FUZZ_CHECK(read_all(path + ".torn") == std::string(content.substr(whole)) + "\n");
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // The journal warns about torn and unparseable lines; the fuzzer makes many.
  pgtandem::proxy::log::configure(pgtandem::proxy::log::Level::kError,
                                  pgtandem::proxy::log::Format::kLogfmt);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0:
      one_line(std::string(rest));
      break;
    case 1:
      journal_file(rest);
      break;
    default:
      built_entry(rest);
      break;
  }
  return 0;
}

// `pgtandem status` / `pgtandem reload` rendering (proxy/control/cli.h).
#include "proxy/control/cli.h"

#include <gtest/gtest.h>

#include <string>

namespace pgtandem::proxy {
namespace {

constexpr const char* kStatus = R"({"version":"0.1.0","pid":42,"started_at":"2026-11-21T10:00:00.000Z",
"uptime_seconds":3725,"draining":false,"clients":3,"primary":"old",
"targets":[{"name":"old","address":"127.0.0.1:5432","primary":true,"health":"up","connect_failures":0},
           {"name":"new","address":"127.0.0.1:5433","primary":false,"health":"down","connect_failures":2}],
"breakers":{"old":"closed","new":"open"},
"rules":[{"name":"canary","reads":{"old":7,"new":3}},{"name":"default","reads":{"old":90,"new":0}}],
"mirror":{"enabled":true,"target":"new","applied":10,"lag_seconds_avg":0.002500,"queue_bytes":2048,"journal_bytes":0,
  "journal_limit_bytes":1073741824,"state":"stopped_journal_full",
  "crash_window":{"from":"2026-11-21T09:00:00.000Z","to":"2026-11-21T09:00:03.000Z","target":"new","unclean_stops":1},
  "needs_repair":[{"kind":"crash_window","target":"new","from":"2026-11-21T09:00:00.000Z","to":"2026-11-21T09:00:03.000Z","detail":"d"},
                  {"kind":"journal_full","target":"new","from":"2026-11-21T09:30:00.000Z","to":null,"detail":"the journal reached its limit"}]},
"config":{"path":"/etc/pgtandem.toml","hash":"00112233aabbccdd","generation":2,"loaded_at":"2026-11-21T10:01:00.000Z",
  "last_reload":{"time":"2026-11-21T10:02:00.000Z","source":"sighup","outcome":"rejected",
  "errors":["/etc/pgtandem.toml:3:1: unknown key 'x' at top level"],"changes":[]}},
"shadow":{"mismatches_total":5,"other":0,"table":[{"fingerprint":"abcd","query":"SELECT *\nFROM t","count":5,
  "kinds":{"rows":5},"persistent":5,"transient":0}]}})";

TEST(CliRender, Status) {
  std::string error;
  const std::string out = render_status(kStatus, &error);
  ASSERT_FALSE(out.empty()) << error;
  EXPECT_NE(out.find("pgtandem 0.1.0 (pid 42), up 1h02m05s"), std::string::npos) << out;
  EXPECT_NE(out.find("primary:  old"), std::string::npos) << out;
  EXPECT_NE(out.find("127.0.0.1:5433"), std::string::npos) << out;
  EXPECT_NE(out.find("down"), std::string::npos) << out;
  EXPECT_NE(out.find("breaker open"), std::string::npos) << out;
  EXPECT_NE(out.find("mirror:   on -> new, 10 write(s) applied, avg lag 0.003 s, queue 2.0 KiB"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("journal 0 B of 1.0 GiB (stopped_journal_full)"), std::string::npos) << out;
  EXPECT_NE(out.find("CRASH WINDOW 2026-11-21T09:00:00.000Z .. 2026-11-21T09:00:03.000Z on new"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("NEEDS REPAIR (journal_full since 2026-11-21T09:30:00.000Z): the journal"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("canary"), std::string::npos) << out;
  EXPECT_NE(out.find("new 3"), std::string::npos) << out;
  EXPECT_NE(out.find("shadow:   5 mismatch(es)"), std::string::npos) << out;
  EXPECT_NE(out.find("SELECT * FROM t"), std::string::npos) << out;  // one line
  EXPECT_NE(out.find("hash 00112233aabbccdd, generation 2"), std::string::npos) << out;
  EXPECT_NE(out.find("reload:   last rejected"), std::string::npos) << out;
  EXPECT_NE(out.find("error: /etc/pgtandem.toml:3:1: unknown key"), std::string::npos) << out;
}

TEST(CliRender, StatusToleratesMissingFieldsAndRejectsGarbage) {
  std::string error;
  EXPECT_FALSE(render_status("{}", &error).empty());
  EXPECT_TRUE(render_status("not json", &error).empty());
  EXPECT_FALSE(error.empty());
  EXPECT_TRUE(render_status("[1,2]", &error).empty());
}

TEST(CliRender, Reload) {
  bool rejected = false;
  std::string error;
  std::string out = render_reload(
      R"({"outcome":"rejected","hash":"aa","generation":1,"errors":["f:1:2: bad"],"changes":[]})",
      &rejected, &error);
  EXPECT_TRUE(rejected);
  EXPECT_NE(out.find("reload: rejected"), std::string::npos) << out;
  EXPECT_NE(out.find("error: f:1:2: bad"), std::string::npos) << out;
  out = render_reload(
      R"({"outcome":"applied","hash":"bb","generation":2,"errors":[],"changes":["log.level: info -> debug"]})",
      &rejected, &error);
  EXPECT_FALSE(rejected);
  EXPECT_NE(out.find("reload: applied (hash bb, generation 2)"), std::string::npos) << out;
  EXPECT_NE(out.find("change: log.level"), std::string::npos) << out;
  out = render_reload(R"({"outcome":"unchanged","hash":"bb","generation":2})", &rejected, &error);
  EXPECT_FALSE(rejected);
  EXPECT_TRUE(render_reload("<html>", &rejected, &error).empty());
  EXPECT_TRUE(rejected);
}

}  // namespace
}  // namespace pgtandem::proxy

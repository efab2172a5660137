// pgbench through pgtandem: select-only and TPC-B in every query mode, zero failed transactions.
#include "tests/integration/fixture.h"

namespace pgtandem::it {
namespace {

constexpr const char* kBenchDb = "it_pgbench";

class PgbenchTest : public ViaTest {
 protected:
  void SetUp() override {
    ViaTest::SetUp();
    if (HasFatalFailure()) return;
    // Once per cluster (a new one per --gtest_repeat iteration).
    static std::string initialized_for;
    if (initialized_for != old_cluster().data_dir()) {
      old_cluster().create_database(kBenchDb);
      auto r = run_pgbench(direct(), {"-i", "-s", "1", "-q"}, kBenchDb);
      ASSERT_TRUE(r.ok()) << "pgbench -i: " << r.describe();
      initialized_for = old_cluster().data_dir();
    }
  }

  void run(const std::string& mode, bool select_only, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"-n", "-c", "4", "-j", "2", "-T", "3", "-M", mode};
    args.insert(args.end(), extra.begin(), extra.end());
    if (select_only) args.push_back("-S");
    auto r = run_pgbench(ep(), args, kBenchDb, milliseconds(60000));
    ASSERT_TRUE(r.ok()) << r.describe();
    PgbenchSummary s = parse_pgbench(r.out);
    ASSERT_TRUE(s.parsed) << "unexpected pgbench output:\n" << r.out;
    EXPECT_GT(s.processed, 0) << r.out;
    EXPECT_EQ(s.failed, 0) << r.out;
    EXPECT_EQ(r.err.find("error"), std::string::npos) << r.err;
    std::fprintf(stderr, "[pgbench %s %s %s] %ld transactions, %.0f tps\n", ep().name.c_str(),
                 mode.c_str(), select_only ? "-S" : "tpcb", s.processed, s.tps);
  }
};
PGTANDEM_INSTANTIATE_VIA(PgbenchTest);

TEST_P(PgbenchTest, SelectOnlySimple) { run("simple", true); }
TEST_P(PgbenchTest, SelectOnlyExtended) { run("extended", true); }
TEST_P(PgbenchTest, SelectOnlyPrepared) { run("prepared", true); }
TEST_P(PgbenchTest, TpcbSimple) { run("simple", false); }
TEST_P(PgbenchTest, TpcbExtended) { run("extended", false); }
TEST_P(PgbenchTest, TpcbPrepared) { run("prepared", false); }
// A new connection per transaction: the startup and authentication path under load.
TEST_P(PgbenchTest, SelectOnlyConnectPerTransaction) { run("extended", true, {"-C"}); }

}  // namespace
}  // namespace pgtandem::it

// WriteCapture cases (run by write_capture_test.cc): the extended protocol (pgbench -M extended
// and -M prepared, JDBC), prepared statements, and pipelining.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/unit/policy/mirror/write_capture_support.h"

namespace pgtandem::policy::capture_test {

std::vector<Case> extended_protocol_cases() {
  std::vector<Case> c;
  // pgbench -M extended: every statement is Parse(unnamed)/Bind/Describe/Execute/Sync.
  c.push_back({"PgbenchExtendedAutocommitUpdate",
               exchange(query_params(kUpdateParam, {"5", "1"}), ext_done("UPDATE 1", 'I')),
               {{.bytes = query_params(kUpdateParam, {"5", "1"}),
                 .responses = 1,
                 .primary = {ok("UPDATE 1")}}},
               stats(1, 0, 0)});
  c.push_back({"PgbenchExtendedSelect",
               exchange(query_params(kSelectParam, {"1"}),
                        parse_complete() + bind_complete() + row_description("balance") +
                            data_row("100") + command_complete("SELECT 1") + ready('I')),
               {},
               stats(0, 0, 1)});
  c.push_back({"PgbenchExtendedFailingUpdate",
               exchange(query_params(kUpdateParam, {"x", "1"}),
                        parse_complete() + bind_complete() + failed("22P02", 'I')),
               {},
               stats(0, 1, 0)});
  {
    std::vector<Step> steps;
    std::string unit;
    const std::vector<std::vector<std::string_view>> params = {
        {}, {"-3", "17"}, {"17"}, {"-3", "1"}, {"-3", "1"}, {"1", "1", "17", "-3"}, {}};
    for (size_t i = 0; i < std::size(kTpcb); ++i) {
      std::vector<proto::Value> values;
      std::string request = parse("", kTpcb[i]);
      {
        std::vector<proto::Value> vs;
        for (auto p : params[i]) vs.push_back(proto::Value::of(p));
        const int16_t text = 0;
        proto::encode_bind(request, "", "", {}, vs, std::span<const int16_t>(&text, 1));
      }
      request += describe(proto::kTargetPortal) + execute() + sync_msg();
      std::string answer;
      switch (i) {
        case 0:
          answer = ext_done("BEGIN", 'T');
          break;
        case 2:
          answer = parse_complete() + bind_complete() + row_description("abalance") +
                   data_row("0") + command_complete("SELECT 1") + ready('T');
          break;
        case 5:
          answer = ext_done("INSERT 0 1", 'T');
          break;
        case 6:
          answer = ext_done("COMMIT", 'I');
          break;
        default:
          answer = ext_done("UPDATE 1", 'T');
          break;
      }
      if (i != 2) unit += request;
      steps = steps + exchange(request, answer);
    }
    c.push_back({"PgbenchExtendedTpcbTransaction",
                 steps,
                 {{.bytes = unit,
                   .responses = 6,
                   .primary = {ok("BEGIN"), ok("UPDATE 1"), ok("UPDATE 1"), ok("UPDATE 1"),
                               ok("INSERT 0 1"), ok("COMMIT")},
                   .transaction = true,
                   .nondeterministic = true}},
                 stats(1, 0, 1, 1)});
  }
  // The brief's -M prepared shape: PQprepare outside a transaction, then executions inside one.
  c.push_back(
      {"PreparedOutsideThenBoundInsideTransaction",
       exchange(prepare("upd", kUpdateParam), prepare_done('I')) + check([](const WriteCapture& w) {
         ASSERT_NE(w.parse_message("upd"), nullptr);
         EXPECT_EQ(*w.parse_message("upd"), parse("upd", kUpdateParam));
         ASSERT_NE(w.prepared().find("upd"), nullptr);
         EXPECT_EQ(w.prepared().find("upd")->kind, StatementKind::kWrite);
       }) + exchange(query("BEGIN"), done("BEGIN", 'T')) +
           exchange(query_prepared("upd", {"5", "1"}), prepared_done("UPDATE 1", 'T')) +
           exchange(query_prepared("upd", {"-5", "2"}), prepared_done("UPDATE 1", 'T')) +
           exchange(query("END"), done("COMMIT", 'I')) +
           exchange(close_msg(proto::kTargetStatement, "upd") + sync_msg(),
                    close_complete() + ready('I')) +
           check([](const WriteCapture& w) {
             EXPECT_EQ(w.parse_message("upd"), nullptr);
             EXPECT_EQ(w.prepared().find("upd"), nullptr);
           }),
       {{.bytes = prepare("upd", kUpdateParam), .responses = 1, .session_state = true},
        {.bytes = query("BEGIN") + query_prepared("upd", {"5", "1"}) +
                  query_prepared("upd", {"-5", "2"}) + query("END"),
         .responses = 4,
         .primary = {ok("BEGIN"), ok("UPDATE 1"), ok("UPDATE 1"), ok("COMMIT")},
         .binds = {"upd", "upd"},
         .transaction = true},
        {.bytes = close_msg(proto::kTargetStatement, "upd") + sync_msg(),
         .responses = 1,
         .session_state = true}},
       stats(3, 0, 0)});
  // pgbench 15 -M prepared, as it really runs (checked with pgbench -d against PostgreSQL 15):
  // each statement is prepared right before its first execution, so P_1..P_6 are parsed inside
  // the first transaction. A second transaction only binds.
  {
    std::vector<Step> steps;
    std::string first;
    std::string second;
    std::vector<std::string> first_binds;
    for (int txn = 0; txn < 2; ++txn) {
      for (size_t i = 0; i < std::size(kTpcb); ++i) {
        const std::string name = "P_" + std::to_string(i);
        const char before = (i == 0) ? 'I' : 'T';
        const char after = (i == 6) ? 'I' : 'T';
        std::string& unit = txn == 0 ? first : second;
        if (txn == 0) {
          steps = steps + exchange(prepare(name, kTpcb[i]), prepare_done(before));
          if (i == 0) {
            // Prepared outside any transaction: its own session-state unit.
          } else if (i != 2) {
            unit += prepare(name, kTpcb[i]);
          }
        }
        std::string request;
        switch (i) {
          case 1:
            request = query_prepared(name, {"-3", "17"});
            break;
          case 2:
            request = query_prepared(name, {"17"});
            break;
          case 3:
          case 4:
            request = query_prepared(name, {"-3", "1"});
            break;
          case 5:
            request = query_prepared(name, {"1", "1", "17", "-3"});
            break;
          default:
            request = query_prepared(name);
            break;
        }
        std::string answer;
        switch (i) {
          case 0:
            answer = prepared_done("BEGIN", after);
            break;
          case 2:
            answer = prepared_rows("0", after);
            break;
          case 5:
            answer = prepared_done("INSERT 0 1", after);
            break;
          case 6:
            answer = prepared_done("COMMIT", after);
            break;
          default:
            answer = prepared_done("UPDATE 1", after);
            break;
        }
        steps = steps + exchange(request, answer);
        if (i != 2) {
          unit += request;
          if (txn == 0) first_binds.push_back(name);
        }
      }
    }
    steps = steps + std::vector<Step>{check([](const WriteCapture& w) {
              for (size_t i = 0; i < std::size(kTpcb); ++i) {
                const std::string name = "P_" + std::to_string(i);
                ASSERT_NE(w.parse_message(name), nullptr) << name;
                EXPECT_EQ(*w.parse_message(name), parse(name, kTpcb[i]));
              }
              EXPECT_EQ(w.prepared().size(), std::size(kTpcb));
            })};
    const std::vector<Outcome> primary = {ok("BEGIN"),    ok("UPDATE 1"),   ok("UPDATE 1"),
                                          ok("UPDATE 1"), ok("INSERT 0 1"), ok("COMMIT")};
    c.push_back({"Pgbench15PreparedTpcb",
                 steps,
                 {{.bytes = prepare("P_0", kTpcb[0]), .responses = 1, .session_state = true},
                  {.bytes = first,
                   .responses = 11,
                   .primary = primary,
                   .binds = first_binds,
                   .transaction = true,
                   .nondeterministic = true},
                  {.bytes = second,
                   .responses = 6,
                   .primary = primary,
                   .binds = first_binds,
                   .transaction = true,
                   .nondeterministic = true}},
                 stats(3, 0, 3, 2)});
  }
  // JDBC with autocommit off: BEGIN rides in the first batch, named statements, binary
  // parameters, one Sync per batch.
  {
    const std::string batch1 =
        parse("", "BEGIN") + bind_msg("", "") + execute() + parse("S_1", kInsertParam) +
        bind_binary("S_1", {std::string_view("\0\0\0\1", 4), std::string_view("\0\0\0\144", 4)}) +
        describe(proto::kTargetPortal) + execute() + sync_msg();
    const std::string answer1 = parse_complete() + bind_complete() + command_complete("BEGIN") +
                                parse_complete() + bind_complete() + no_data() +
                                done("INSERT 0 1", 'T');
    const std::string batch2 =
        bind_binary("S_1", {std::string_view("\0\0\0\2", 4), std::string_view("\0\0\0\310", 4)}) +
        describe(proto::kTargetPortal) + execute() + sync_msg();
    const std::string commit = parse("", "COMMIT") + bind_msg("", "") + execute() + sync_msg();
    c.push_back({"JdbcTransactionBatches",
                 exchange(batch1, answer1) +
                     exchange(batch2, bind_complete() + no_data() + done("INSERT 0 1", 'T')) +
                     exchange(commit, parse_complete() + bind_complete() + done("COMMIT", 'I')),
                 {{.bytes = batch1 + batch2 + commit,
                   .responses = 3,
                   .primary = {ok("BEGIN"), ok("INSERT 0 1"), ok("INSERT 0 1"), ok("COMMIT")},
                   .binds = {"S_1", "S_1"},
                   .transaction = true}},
                 stats(1, 0, 0)});
  }
  // Named statements are not transactional: one the primary accepted inside a transaction that
  // rolled back still exists there, so the mirror must get its Parse, or every later Bind of it
  // fails on the mirror. It gets it lazily, just before the first released unit that binds it
  // (the statement may refer to objects the rolled-back transaction created); a Close of a
  // statement the mirror has goes at once.
  {
    const std::string batch = parse("S_1", kInsertParam) + bind_msg("", "S_1", {"1", "100"}) +
                              describe(proto::kTargetPortal) + execute() + sync_msg();
    c.push_back(
        {"JdbcStatementParsedInRolledBackTransaction",
         exchange(query("BEGIN"), done("BEGIN", 'T')) +
             exchange(batch,
                      parse_complete() + bind_complete() + no_data() + done("INSERT 0 1", 'T')) +
             exchange(close_msg(proto::kTargetStatement, "S_0") + sync_msg(),
                      close_complete() + ready('T')) +
             exchange(query("ROLLBACK"), done("ROLLBACK", 'I')) +
             exchange(query("BEGIN"), done("BEGIN", 'T')) +
             exchange(query_prepared("S_1", {"2", "200"}), prepared_done("INSERT 0 1", 'T')) +
             exchange(query("COMMIT"), done("COMMIT", 'I')) + check([](const WriteCapture& w) {
               ASSERT_NE(w.parse_message("S_1"), nullptr);
               EXPECT_EQ(*w.parse_message("S_1"), parse("S_1", kInsertParam));
             }),
         {{.bytes = close_msg(proto::kTargetStatement, "S_0") + sync_msg(),
           .responses = 1,
           .session_state = true},
          {.bytes = parse("S_1", kInsertParam) + sync_msg(),
           .responses = 1,
           .session_state = true},
          {.bytes = query("BEGIN") + query_prepared("S_1", {"2", "200"}) + query("COMMIT"),
           .responses = 3,
           .primary = {ok("BEGIN"), ok("INSERT 0 1"), ok("COMMIT")},
           .binds = {"S_1"},
           .transaction = true}},
         stats(3, 1, 0)});
  }
  {
    const std::string batch = parse("S_2", kInsertParam) + bind_msg("", "S_2", {"1", "100"}) +
                              describe(proto::kTargetPortal) + execute() + sync_msg();
    c.push_back(
        {"StatementParsedInFailedAutocommitBatch",
         exchange(batch, parse_complete() + bind_complete() + no_data() + failed("23505", 'I')),
         {},  // S_2 reaches the mirror with the first released unit that binds it
         stats(0, 1, 0)});
  }
  // Issue 15: what psycopg does after its prepare threshold. The statement refers to a table the
  // rolled-back transaction created: preparing it on the mirror would fail there (42P01) and was
  // counted as a divergence. It never reaches the mirror unless a released unit binds it.
  {
    constexpr std::string_view kInsertT = "INSERT INTO t VALUES ($1)";
    const std::string batch = parse("_pg3_0", kInsertT) + bind_msg("", "_pg3_0", {"1"}) +
                              describe(proto::kTargetPortal) + execute() + sync_msg();
    c.push_back(
        {"StatementOfRolledBackTableNeverReachesTheMirror",
         exchange(query("BEGIN"), done("BEGIN", 'T')) +
             exchange(query("CREATE TABLE t (a int)"), done("CREATE TABLE", 'T')) +
             exchange(batch,
                      parse_complete() + bind_complete() + no_data() + done("INSERT 0 1", 'T')) +
             exchange(query("ROLLBACK"), done("ROLLBACK", 'I')) +
             exchange(query(kInsert), done("INSERT 0 1", 'I')),
         {{.bytes = query(kInsert), .responses = 1, .primary = {ok("INSERT 0 1")}}},
         stats(1, 1, 0)});
    // Closing a deferred statement needs nothing from the mirror but a harmless Close; a later
    // statement of the same name is a new one, not the deferred one.
    c.push_back(
        {"DeferredStatementClosedThenPreparedAgain",
         exchange(query("BEGIN"), done("BEGIN", 'T')) +
             exchange(batch,
                      parse_complete() + bind_complete() + no_data() + done("INSERT 0 1", 'T')) +
             exchange(query("ROLLBACK"), done("ROLLBACK", 'I')) +
             exchange(close_msg(proto::kTargetStatement, "_pg3_0") + sync_msg(),
                      close_complete() + ready('I')) +
             exchange(parse("_pg3_0", kInsertParam) + bind_msg("", "_pg3_0", {"1", "2"}) +
                          execute() + sync_msg(),
                      parse_complete() + bind_complete() + done("INSERT 0 1", 'I')),
         {{.bytes = close_msg(proto::kTargetStatement, "_pg3_0") + sync_msg(),
           .responses = 1,
           .session_state = true},
          {.bytes = parse("_pg3_0", kInsertParam) + bind_msg("", "_pg3_0", {"1", "2"}) +
                    execute() + sync_msg(),
           .responses = 1,
           .primary = {ok("INSERT 0 1")},
           .binds = {"_pg3_0"}}},
         stats(2, 1, 0)});
  }
  // A Parse the primary refused (the transaction had failed) created nothing.
  c.push_back({"StatementRefusedInFailedTransaction",
               exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(query(kInsert), failed("23505", 'E')) +
                   exchange(parse("S_3", kInsertParam) + bind_msg("", "S_3", {"1", "1"}) +
                                execute() + sync_msg(),
                            failed("25P02", 'E')) +
                   exchange(query("ROLLBACK"), done("ROLLBACK", 'I')),
               {},
               stats(0, 1, 0)});
  c.push_back({"UnnamedParseAloneIsSessionState",
               exchange(parse("", kUpdateParam) + describe(proto::kTargetStatement) + sync_msg(),
                        parse_complete() + no_data() + ready('I')),
               {{.bytes = parse("", kUpdateParam) + describe(proto::kTargetStatement) + sync_msg(),
                 .responses = 1,
                 .session_state = true}},
               stats(1, 0, 0)});
  // Preparing BEGIN is not starting a transaction.
  c.push_back({"PreparedBeginIsNotATransaction",
               exchange(prepare("b", "BEGIN"), prepare_done('I')),
               {{.bytes = prepare("b", "BEGIN"), .responses = 1, .session_state = true}},
               stats(1, 0, 0)});
  c.push_back({"ReadStatementPreparedAndBoundNeverMirrored",
               exchange(prepare("sel", kSelectParam), prepare_done('I')) +
                   exchange(query_prepared("sel", {"1"}), prepared_rows("100", 'I')),
               {},
               stats(0, 0, 2)});
  c.push_back({"BindOfUnknownStatementIsAWrite",
               exchange(query_prepared("nobody_parsed_me", {"1"}), prepared_done("DELETE 1", 'I')),
               {{.bytes = query_prepared("nobody_parsed_me", {"1"}),
                 .responses = 1,
                 .primary = {ok("DELETE 1")},
                 .binds = {"nobody_parsed_me"}}},
               stats(1, 0, 0)});
  c.push_back({"BareSyncIsARead", exchange(sync_msg(), ready('I')), {}, stats(0, 0, 1)});
  // Results before the Sync: the client flushed and the server answered the batch so far.
  c.push_back({"FlushThenSync",
               {fe(parse("", kUpdateParam) + bind_msg("", "", {"1", "1"}) +
                   describe(proto::kTargetPortal) + execute() + flush()),
                be(parse_complete() + bind_complete() + no_data() + command_complete("UPDATE 1")),
                fe(sync_msg()), be(ready('I'))},
               {{.bytes = parse("", kUpdateParam) + bind_msg("", "", {"1", "1"}) +
                          describe(proto::kTargetPortal) + execute() + flush() + sync_msg(),
                 .responses = 1,
                 .primary = {ok("UPDATE 1")}}},
               stats(1, 0, 0)});
  c.push_back(
      {"FlushThenErrorThenSync",
       {fe(parse("", kInsertParam) + bind_msg("", "", {"1", "1"}) + execute() + flush()),
        be(parse_complete() + bind_complete() + error_response("23505")), fe(sync_msg()), be(ready('I'))},
       {},
       stats(0, 1, 0)});
  // A Query while an extended batch is open: one ReadyForQuery answers both.
  c.push_back(
      {"QueryClosesOpenWriteBatch",
       {fe(parse("", kUpdateParam) + bind_msg("", "", {"1", "1"}) + execute()),
        fe(query("SELECT 1")), check([](const WriteCapture& w) { EXPECT_EQ(w.outstanding(), 1u); }),
        be(parse_complete() + bind_complete() + command_complete("UPDATE 1") + rows("1", 'I'))},
       {{.bytes =
             parse("", kUpdateParam) + bind_msg("", "", {"1", "1"}) + execute() + query("SELECT 1"),
         .responses = 1,
         .primary = {ok("UPDATE 1"), ok("SELECT 1")}}},
       stats(1, 0, 0)});
  c.push_back(
      {"WriteQueryClosesOpenReadBatch",
       {fe(parse("", kSelectParam) + bind_msg("", "", {"1"}) + execute()), fe(query(kInsert)),
        be(parse_complete() + bind_complete() + data_row("1") + command_complete("SELECT 1") +
           done("INSERT 0 1", 'I'))},
       {{.bytes = parse("", kSelectParam) + bind_msg("", "", {"1"}) + execute() + query(kInsert),
         .responses = 1,
         .primary = {ok("SELECT 1"), ok("INSERT 0 1")}}},
       stats(1, 0, 0)});
  c.push_back(
      {"ReadQueryClosesOpenReadBatch",
       {fe(parse("", kSelectParam) + bind_msg("", "", {"1"}) + execute()), fe(query(kSelect)),
        be(parse_complete() + bind_complete() + data_row("1") + command_complete("SELECT 1") +
           rows("1", 'I'))},
       {},
       stats(0, 0, 1)});
  return c;
}

std::vector<Case> pipelining_cases() {
  std::vector<Case> c;
  const std::string batch1 =
      parse("ins", kInsertParam) + bind_msg("", "ins", {"1", "100"}) + execute() + sync_msg();
  const std::string batch2 = bind_msg("", "ins", {"2", "200"}) + execute() + sync_msg();
  c.push_back({"TwoSyncBatchesBeforeAnyAnswer",
               {fe(batch1), fe(batch2),
                check([](const WriteCapture& w) { EXPECT_EQ(w.outstanding(), 2u); }),
                be(parse_complete() + bind_complete() + done("INSERT 0 1", 'I')),
                check([](const WriteCapture& w) { EXPECT_EQ(w.outstanding(), 1u); }),
                be(bind_complete() + done("INSERT 0 1", 'I'))},
               {{.bytes = batch1, .responses = 1, .primary = {ok("INSERT 0 1")}, .binds = {"ins"}},
                {.bytes = batch2, .responses = 1, .primary = {ok("INSERT 0 1")}, .binds = {"ins"}}},
               stats(2, 0, 0)});
  // The first batch fails after its Parse was accepted: the statement exists on the primary and
  // the second batch uses it.
  c.push_back(
      {"PipelineFirstBatchFails",
       {fe(batch1), fe(batch2), be(parse_complete() + bind_complete() + failed("23505", 'I')),
        be(bind_complete() + done("INSERT 0 1", 'I'))},
       {{.bytes = parse("ins", kInsertParam) + sync_msg(), .responses = 1, .session_state = true},
        {.bytes = batch2, .responses = 1, .primary = {ok("INSERT 0 1")}, .binds = {"ins"}}},
       stats(2, 1, 0)});
  // A read statement parsed in the first batch: the second batch is a read too.
  c.push_back(
      {"PipelineOfReads",
       {fe(parse("sel", kSelectParam) + bind_msg("", "sel", {"1"}) + execute() + sync_msg()),
        fe(bind_msg("", "sel", {"2"}) + execute() + sync_msg()),
        be(parse_complete() + bind_complete() + data_row("1") + command_complete("SELECT 1") +
           ready('I')),
        be(bind_complete() + data_row("2") + command_complete("SELECT 1") + ready('I'))},
       {},
       stats(0, 0, 2)});
  // libpq pipeline mode inside a transaction: BEGIN, two writes and COMMIT, each with its Sync.
  c.push_back({"PipelinedTransaction",
               {fe(query_params("BEGIN") + query_params(kInsertParam, {"1", "1"}) +
                   query_params(kUpdateParam, {"1", "1"}) + query_params("COMMIT")),
                check([](const WriteCapture& w) { EXPECT_EQ(w.outstanding(), 4u); }),
                be(ext_done("BEGIN", 'T') + ext_done("INSERT 0 1", 'T') +
                   ext_done("UPDATE 1", 'T') + ext_done("COMMIT", 'I'))},
               {{.bytes = query_params("BEGIN") + query_params(kInsertParam, {"1", "1"}) +
                          query_params(kUpdateParam, {"1", "1"}) + query_params("COMMIT"),
                 .responses = 4,
                 .primary = {ok("BEGIN"), ok("INSERT 0 1"), ok("UPDATE 1"), ok("COMMIT")},
                 .transaction = true}},
               stats(1, 0, 0)});
  // A statement closed and re-parsed under the same name before either answer came back.
  c.push_back(
      {"PipelineCloseAndReparse",
       {fe(prepare("s", kSelectParam)),
        fe(close_msg(proto::kTargetStatement, "s") + parse("s", kUpdateParam) + sync_msg()),
        fe(query_prepared("s", {"1", "1"})), be(prepare_done('I')),
        be(close_complete() + parse_complete() + ready('I')), be(prepared_done("UPDATE 1", 'I')),
        // Close then Parse in one request: the statement exists afterwards, and a later Bind of
        // it is known to be a write.
        check([](const WriteCapture& w) {
          ASSERT_NE(w.prepared().find("s"), nullptr);
          EXPECT_EQ(w.prepared().find("s")->kind, StatementKind::kWrite);
          ASSERT_NE(w.parse_message("s"), nullptr);
          EXPECT_EQ(*w.parse_message("s"), parse("s", kUpdateParam));
        })},
       {{.bytes = close_msg(proto::kTargetStatement, "s") + parse("s", kUpdateParam) + sync_msg(),
         .responses = 1,
         .session_state = true},
        {.bytes = query_prepared("s", {"1", "1"}),
         .responses = 1,
         .primary = {ok("UPDATE 1")},
         .binds = {"s"}}},
       stats(2, 0, 1)});
  // A one-shot named statement: Parse, Bind, Execute, Close, Sync. Gone afterwards.
  const std::string one_shot = parse("tmp", kUpdateParam) + bind_msg("", "tmp", {"1", "1"}) +
                               execute() + close_msg(proto::kTargetStatement, "tmp") + sync_msg();
  c.push_back(
      {"ParseThenCloseInOneBatch",
       exchange(one_shot, parse_complete() + bind_complete() + command_complete("UPDATE 1") +
                              close_complete() + ready('I')) +
           check([](const WriteCapture& w) {
             EXPECT_EQ(w.prepared().find("tmp"), nullptr);
             EXPECT_EQ(w.parse_message("tmp"), nullptr);
           }),
       {{.bytes = one_shot, .responses = 1, .primary = {ok("UPDATE 1")}, .binds = {"tmp"}}},
       stats(1, 0, 0)});
  return c;
}

}  // namespace pgtandem::policy::capture_test

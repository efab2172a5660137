// WriteCapture cases (run by write_capture_test.cc): COPY, the remaining messages (fast-path calls,
// Terminate, notices ...) and primary-only calls that never reach the mirror.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/unit/policy/mirror/write_capture_support.h"

namespace pgtandem::policy::capture_test {

std::vector<Case> copy_cases() {
  std::vector<Case> c;
  c.push_back(
      {"PsqlCopyFromStdin",
       {fe(query(kCopy)), be(copy_in_response()),
        fe(copy_data("1\t100\n") + copy_data("2\t200\n") + copy_done()), be(done("COPY 2", 'I'))},
       {{.bytes = query(kCopy) + copy_data("1\t100\n") + copy_data("2\t200\n") + copy_done(),
         .responses = 1,
         .primary = {ok("COPY 2")}}},
       stats(1, 0, 0)});
  c.push_back(
      {"CopyFail",
       {fe(query(kCopy)), be(copy_in_response()),
        fe(copy_data("1\t100\n") + copy_fail("canceled by user")), be(failed("57014", 'I'))},
       {},
       stats(0, 1, 0)});
  c.push_back({"CopyBadDataFails",
               {fe(query(kCopy)), be(copy_in_response()), fe(copy_data("x\n")), be(error_response("22P02")),
                fe(copy_done()), be(ready('I'))},
               {},
               stats(0, 1, 0)});
  c.push_back(
      {"CopyInCommittedTransaction",
       exchange(query("BEGIN"), done("BEGIN", 'T')) +
           std::vector<Step>{fe(query(kCopy)), be(copy_in_response()),
                             fe(copy_data("1\t100\n") + copy_done()), be(done("COPY 1", 'T'))} +
           exchange(query("COMMIT"), done("COMMIT", 'I')),
       {{.bytes =
             query("BEGIN") + query(kCopy) + copy_data("1\t100\n") + copy_done() + query("COMMIT"),
         .responses = 3,
         .primary = {ok("BEGIN"), ok("COPY 1"), ok("COMMIT")},
         .transaction = true}},
       stats(1, 0, 0)});
  c.push_back({"CopyToStdoutIsARead",
               {fe(query("COPY accounts TO STDOUT")), be([] {
                  std::string out;
                  proto::encode_copy_response(out, proto::backend::kCopyOutResponse, 0, {});
                  proto::encode(out, proto::CopyData{"1\t100\n"});
                  proto::encode(out, proto::CopyDone{});
                  return out + done("COPY 1", 'I');
                }())},
               {},
               stats(0, 0, 1)});
  // libpq's PQexecParams("COPY ... FROM STDIN") (checked with PQtrace against PostgreSQL 15):
  // Parse/Bind/Describe/Execute/Sync, then CopyData/CopyDone/Sync. The server ignores the first
  // Sync during COPY IN, so one ReadyForQuery answers everything.
  const std::string ext =
      parse("", kCopy) + bind_msg("", "") + describe(proto::kTargetPortal) + execute() + sync_msg();
  c.push_back({"ExtendedCopyFromStdin",
               std::vector<Step>{
                   fe(ext), be(parse_complete() + bind_complete() + no_data() + copy_in_response()),
                   fe(copy_data("1\t100\n") + copy_done() + sync_msg()), be(done("COPY 1", 'I')),
                   check([](const WriteCapture& w) { EXPECT_EQ(w.outstanding(), 0u); })} +
                   exchange(query(kInsert2), done("INSERT 0 1", 'I')),
               {{.bytes = ext + copy_data("1\t100\n") + copy_done() + sync_msg(),
                 .responses = 1,
                 .primary = {ok("COPY 1")}},
                {.bytes = query(kInsert2), .responses = 1, .primary = {ok("INSERT 0 1")}}},
               stats(2, 0, 0)});
  c.push_back(
      {"ExtendedCopyFail",
       std::vector<Step>{
           fe(ext), be(parse_complete() + bind_complete() + no_data() + copy_in_response()),
           fe(copy_data("1\t100\n") + copy_fail("nope") + sync_msg()), be(failed("57014", 'I')),
           check([](const WriteCapture& w) { EXPECT_EQ(w.outstanding(), 0u); })} +
           exchange(query(kInsert2), done("INSERT 0 1", 'I')),
       {{.bytes = query(kInsert2), .responses = 1, .primary = {ok("INSERT 0 1")}}},
       stats(1, 1, 0)});
  // The COPY itself failed (no such table): no COPY IN, the Sync was answered, the client sends
  // no data.
  c.push_back(
      {"ExtendedCopyRefused",
       std::vector<Step>{fe(ext), be(parse_complete() + bind_complete() + failed("42P01", 'I'))} +
           exchange(query(kInsert2), done("INSERT 0 1", 'I')),
       {{.bytes = query(kInsert2), .responses = 1, .primary = {ok("INSERT 0 1")}}},
       stats(1, 1, 0)});
  // A client that waits for CopyInResponse before sending Sync.
  c.push_back({"ExtendedCopyWithoutEarlySync",
               {fe(parse("", kCopy) + bind_msg("", "") + execute() + flush()),
                be(parse_complete() + bind_complete() + copy_in_response()),
                fe(copy_data("1\t100\n") + copy_done() + sync_msg()), be(done("COPY 1", 'I'))},
               {{.bytes = parse("", kCopy) + bind_msg("", "") + execute() + flush() +
                          copy_data("1\t100\n") + copy_done() + sync_msg(),
                 .responses = 1,
                 .primary = {ok("COPY 1")}}},
               stats(1, 0, 0)});
  return c;
}

std::vector<Case> other_cases() {
  std::vector<Case> c;
  // The fast-path interface (lo_write and friends): anything can happen, so it is a write.
  c.push_back({"FunctionCallIsAWrite",
               exchange(function_call(955 /* lowrite */, {"\0\0\0\0", "abc"}),
                        function_call_response("3") + ready('I')),
               {{.bytes = function_call(955, {"\0\0\0\0", "abc"}), .responses = 1}},
               stats(1, 0, 0)});
  c.push_back({"FunctionCallFails",
               exchange(function_call(955, {"x"}), failed("42704", 'I')),
               {},
               stats(0, 1, 0)});
  c.push_back({"FunctionCallInTransaction",
               exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(function_call(955, {"x"}), function_call_response("1") + ready('T')) +
                   exchange(query("COMMIT"), done("COMMIT", 'I')),
               {{.bytes = query("BEGIN") + function_call(955, {"x"}) + query("COMMIT"),
                 .responses = 3,
                 .primary = {ok("BEGIN"), ok("COMMIT")},
                 .transaction = true}},
               stats(1, 0, 0)});
  c.push_back({"TerminateAndStrayMessagesIgnored",
               {fe(terminate()), fe(std::string("p\0\0\0\x0asecret", 11))},
               {},
               stats(0, 0, 0)});
  // Several transactions in one simple Query: what committed before an error stays committed
  // (checked against PostgreSQL 15), so the mirror runs the same text and fails the same way.
  const std::string committed_then_error = std::string("BEGIN; ") + std::string(kInsert) +
                                           "; COMMIT; INSERT INTO missing (id) VALUES (1)";
  c.push_back({"CommitThenErrorInOneQuery",
               exchange(query(committed_then_error),
                        command_complete("BEGIN") + command_complete("INSERT 0 1") +
                            command_complete("COMMIT") + failed("42P01", 'I')),
               {{.bytes = query(committed_then_error),
                 .responses = 1,
                 .primary = {ok("BEGIN"), ok("INSERT 0 1"), ok("COMMIT"), err("42P01")},
                 .transaction = true}},
               stats(1, 0, 0)});
  const std::string committed_then_failed_txn = std::string("BEGIN; ") + std::string(kInsert) +
                                                "; COMMIT; BEGIN; INSERT INTO missing (id) VALUES "
                                                "(1); COMMIT";
  c.push_back(
      {"CommitThenFailedTransactionInOneQuery",
       exchange(query(committed_then_failed_txn),
                command_complete("BEGIN") + command_complete("INSERT 0 1") +
                    command_complete("COMMIT") + command_complete("BEGIN") + failed("42P01", 'E')) +
           exchange(query("ROLLBACK"), done("ROLLBACK", 'I')),
       {{.bytes = query(committed_then_failed_txn),
         .responses = 1,
         .primary = {ok("BEGIN"), ok("INSERT 0 1"), ok("COMMIT"), ok("BEGIN"), err("42P01")},
         .transaction = true},
        // The mirror is inside the failed transaction too: it needs the ROLLBACK.
        {.bytes = query("ROLLBACK"),
         .responses = 1,
         .primary = {ok("ROLLBACK")},
         .transaction = true}},
       stats(2, 0, 0)});
  c.push_back({"CommitThenErrorInsideTransaction",
               exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(query(kInsert), done("INSERT 0 1", 'T')) +
                   exchange(query("COMMIT; INSERT INTO missing (id) VALUES (1)"),
                            command_complete("COMMIT") + failed("42P01", 'I')),
               {{.bytes = query("BEGIN") + query(kInsert) +
                          query("COMMIT; INSERT INTO missing (id) VALUES (1)"),
                 .responses = 3,
                 .primary = {ok("BEGIN"), ok("INSERT 0 1"), ok("COMMIT"), err("42P01")},
                 .transaction = true}},
               stats(1, 0, 0)});
  c.push_back({"CommitAndChainThenCommit",
               exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(query(kInsert), done("INSERT 0 1", 'T')) +
                   exchange(query("COMMIT AND CHAIN"), done("COMMIT", 'T')) +
                   exchange(query(kInsert2), done("INSERT 0 1", 'T')) +
                   exchange(query("COMMIT"), done("COMMIT", 'I')),
               {{.bytes = query("BEGIN") + query(kInsert) + query("COMMIT AND CHAIN"),
                 .responses = 3,
                 .primary = {ok("BEGIN"), ok("INSERT 0 1"), ok("COMMIT")},
                 .transaction = true},
                {.bytes = query(kInsert2) + query("COMMIT"),
                 .responses = 2,
                 .primary = {ok("INSERT 0 1"), ok("COMMIT")},
                 .transaction = true}},
               stats(2, 0, 0)});
  // The chained transaction is already open on the mirror: its ROLLBACK must reach it.
  c.push_back({"CommitAndChainThenRollback",
               exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(query(kInsert), done("INSERT 0 1", 'T')) +
                   exchange(query("COMMIT AND CHAIN"), done("COMMIT", 'T')) +
                   exchange(query(kInsert2), done("INSERT 0 1", 'T')) +
                   exchange(query("ROLLBACK"), done("ROLLBACK", 'I')) +
                   exchange(query(kUpdate), done("UPDATE 1", 'I')),
               {{.bytes = query("BEGIN") + query(kInsert) + query("COMMIT AND CHAIN"),
                 .responses = 3,
                 .primary = {ok("BEGIN"), ok("INSERT 0 1"), ok("COMMIT")},
                 .transaction = true},
                {.bytes = query(kInsert2) + query("ROLLBACK"),
                 .responses = 2,
                 .primary = {ok("INSERT 0 1"), ok("ROLLBACK")},
                 .transaction = true},
                {.bytes = query(kUpdate), .responses = 1, .primary = {ok("UPDATE 1")}}},
               stats(3, 0, 0)});
  c.push_back({"TwoPhaseCommit",
               exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(query(kInsert), done("INSERT 0 1", 'T')) +
                   exchange(query("PREPARE TRANSACTION 'tx1'"), done("PREPARE TRANSACTION", 'I')) +
                   exchange(query("COMMIT PREPARED 'tx1'"), done("COMMIT PREPARED", 'I')),
               {{.bytes = query("BEGIN") + query(kInsert) + query("PREPARE TRANSACTION 'tx1'"),
                 .responses = 3,
                 .primary = {ok("BEGIN"), ok("INSERT 0 1"), ok("PREPARE TRANSACTION")},
                 .transaction = true},
                {.bytes = query("COMMIT PREPARED 'tx1'"),
                 .responses = 1,
                 .primary = {ok("COMMIT PREPARED")},
                 .transaction = true}},
               stats(2, 0, 0)});
  return c;
}

// Primary-only calls (pg_terminate_backend(pid) ...) never reach the mirror: requests making only
// them are skipped (their named-statement messages aside); one that also writes is skipped with
// what it writes, and inside an explicit transaction the whole transaction is.
std::vector<Case> primary_only_cases() {
  std::vector<Case> c;
  constexpr std::string_view kKill = "SELECT pg_terminate_backend(12345)";
  constexpr std::string_view kKillParam = "SELECT pg_terminate_backend($1)";
  const std::string insert_and_cancel = std::string(kInsert) + "; SELECT pg_cancel_backend(42)";
  c.push_back({"TerminateBackendIsNotMirrored",
               exchange(query(kKill), rows("t", 'I')),
               {},
               stats(0, 0, 0, 0, 1),
               false,
               {{std::string(kKill), false}}});
  c.push_back({"FailedTerminateBackendIsNotMirroredEither",
               exchange(query(kKill), failed("42501", 'I')),
               {},
               stats(0, 0, 0, 0, 1),
               false,
               {{std::string(kKill), false}}});
  c.push_back({"ReloadConfInMixedCase",
               exchange(query("select PG_CATALOG.PG_RELOAD_CONF()"), rows("t", 'I')),
               {},
               stats(0, 0, 0, 0, 1),
               false,
               {{"select PG_CATALOG.PG_RELOAD_CONF()", false}}});
  c.push_back({"UnnamedStatementExtendedProtocol",
               exchange(query_params(kKillParam, {"12345"}),
                        parse_complete() + bind_complete() + row_description("v") + data_row("t") +
                            command_complete("SELECT 1") + ready('I')),
               {},
               stats(0, 0, 0, 0, 1),
               false,
               {{std::string(kKillParam), false}}});
  // The named statement's Parse still reaches the mirror (a later Close or Parse of the same name
  // must find it there), its execution does not.
  c.push_back({"NamedStatementPreparedAndExecutedInOneBatch",
               exchange(parse("kill", kKillParam) + bind_msg("", "kill", {"12345"}) + execute() +
                            sync_msg(),
                        parse_complete() + bind_complete() + data_row("t") +
                            command_complete("SELECT 1") + ready('I')),
               {{.bytes = parse("kill", kKillParam) + sync_msg(), .session_state = true}},
               stats(1, 0, 0, 0, 1),
               false,
               {{std::string(kKillParam), false}}});
  c.push_back(
      {"NamedStatementPreparedThenExecuted",
       exchange(prepare("kill", kKillParam), prepare_done('I')) +
           exchange(query_prepared("kill", {"12345"}), prepared_rows("t", 'I')) +
           exchange(close_msg(proto::kTargetStatement, "kill") + sync_msg(),
                    close_complete() + ready('I')),
       {{.bytes = prepare("kill", kKillParam), .session_state = true},
        {.bytes = close_msg(proto::kTargetStatement, "kill") + sync_msg(), .session_state = true}},
       stats(2, 0, 0, 0, 1),
       false,
       {{std::string(kKillParam), false}}});
  c.push_back(
      {"SqlPrepareIsMirroredItsExecuteIsNot",
       exchange(query("PREPARE kill (int) AS SELECT pg_terminate_backend($1)"),
                done("PREPARE", 'I')) +
           exchange(query("EXECUTE kill(12345)"), rows("t", 'I')) +
           exchange(query("DEALLOCATE kill"), done("DEALLOCATE", 'I')),
       {{.bytes = query("PREPARE kill (int) AS SELECT pg_terminate_backend($1)"),
         .primary = {ok("PREPARE")},
         .session_state = true},
        {.bytes = query("DEALLOCATE kill"), .primary = {ok("DEALLOCATE")}, .session_state = true}},
       stats(2, 0, 0, 0, 1),
       false,
       {{"EXECUTE kill(12345)", false}}});
  // Alone in a transaction, the call is left out and the rest of the transaction is mirrored.
  c.push_back({"AloneInsideATransaction",
               exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(query(kInsert), done("INSERT 0 1", 'T')) +
                   exchange(query(kKill), rows("t", 'T')) +
                   exchange(query("COMMIT"), done("COMMIT", 'I')),
               {{.bytes = query("BEGIN") + query(kInsert) + query("COMMIT"),
                 .responses = 3,
                 .primary = {ok("BEGIN"), ok("INSERT 0 1"), ok("COMMIT")},
                 .transaction = true}},
               stats(1, 0, 0, 0, 1),
               false,
               {{std::string(kKill), false}}});
  c.push_back({"MixedWithAWriteInAutocommit",
               exchange(query(insert_and_cancel), command_complete("INSERT 0 1") +
                                                      row_description("v") + data_row("t") +
                                                      command_complete("SELECT 1") + ready('I')),
               {},
               stats(0, 0, 0, 0, 1),
               false,
               {{insert_and_cancel, true}}});
  c.push_back(
      {"MixedInsideATransactionLeavesAllOfItOut",
       exchange(query("BEGIN"), done("BEGIN", 'T')) +
           exchange(query(kUpdate), done("UPDATE 1", 'T')) +
           exchange(query(insert_and_cancel),
                    command_complete("INSERT 0 1") + command_complete("SELECT 1") + ready('T')) +
           exchange(query(kInsert2), done("INSERT 0 1", 'T')) +
           exchange(query("COMMIT"), done("COMMIT", 'I')) +
           exchange(query(kInsert), done("INSERT 0 1", 'I')),
       {{.bytes = query(kInsert), .primary = {ok("INSERT 0 1")}}},
       stats(1, 0, 0, 0, 1),
       false,
       {{insert_and_cancel, true}}});
  const std::string whole_txn =
      "BEGIN; " + std::string(kInsert) + "; SELECT pg_reload_conf(); COMMIT";
  c.push_back(
      {"MixedWholeTransactionInOneQuery",
       exchange(query(whole_txn), command_complete("BEGIN") + command_complete("INSERT 0 1") +
                                      command_complete("SELECT 1") + done("COMMIT", 'I')),
       {},
       stats(0, 0, 0, 0, 1),
       false,
       {{whole_txn, true}}});
  c.push_back({"MixedRequestOpensTheTransaction",
               exchange(query("BEGIN; SELECT pg_cancel_backend(42)"),
                        command_complete("BEGIN") + command_complete("SELECT 1") + ready('T')) +
                   exchange(query(kInsert), done("INSERT 0 1", 'T')) +
                   exchange(query("COMMIT"), done("COMMIT", 'I')),
               {},
               stats(0, 0, 0, 0, 1),
               false,
               {{"BEGIN; SELECT pg_cancel_backend(42)", true}}});
  c.push_back(
      {"MixedTransactionRolledBackCountsOnce",
       exchange(query("BEGIN"), done("BEGIN", 'T')) +
           exchange(query(insert_and_cancel),
                    command_complete("INSERT 0 1") + command_complete("SELECT 1") + ready('T')) +
           exchange(query("ROLLBACK"), done("ROLLBACK", 'I')),
       {},
       stats(0, 0, 0, 0, 1),
       false,
       {{insert_and_cancel, true}}});
  // After COMMIT AND CHAIN the mirror is inside the chained transaction: it is rolled back there.
  c.push_back(
      {"MixedAfterCommitAndChainRollsTheMirrorBack",
       exchange(query("BEGIN"), done("BEGIN", 'T')) +
           exchange(query(kInsert), done("INSERT 0 1", 'T')) +
           exchange(query("COMMIT AND CHAIN"), done("COMMIT", 'T')) +
           exchange(query(kInsert2), done("INSERT 0 1", 'T')) +
           exchange(query(insert_and_cancel),
                    command_complete("INSERT 0 1") + command_complete("SELECT 1") + ready('T')) +
           exchange(query("COMMIT"), done("COMMIT", 'I')),
       {{.bytes = query("BEGIN") + query(kInsert) + query("COMMIT AND CHAIN"),
         .responses = 3,
         .primary = {ok("BEGIN"), ok("INSERT 0 1"), ok("COMMIT")},
         .transaction = true},
        {.bytes = query("ROLLBACK"), .primary = {ok("ROLLBACK")}, .transaction = true}},
       stats(2, 0, 0, 0, 1),
       false,
       {{insert_and_cancel, true}}});
  // A Bind of a statement whose text also writes: the batch is lost to the mirror.
  const std::string cte =
      "WITH d AS (DELETE FROM sessions RETURNING pid) "
      "SELECT pg_terminate_backend(pid) FROM d";
  c.push_back(
      {"SingleStatementWritingAndTerminating",
       exchange(query_params(cte), parse_complete() + bind_complete() + row_description("v") +
                                       data_row("t") + command_complete("SELECT 1") + ready('I')),
       {},
       stats(0, 0, 0, 0, 1),
       false,
       {{cte, true}}});
  c.push_back({"FastPathCallOfPgTerminateBackend",
               exchange(function_call(2096 /* pg_terminate_backend */, {"12345"}),
                        function_call_response("t") + ready('I')),
               {},
               stats(0, 0, 0, 0, 1),
               false,
               {{"fast-path call of function 2096", false}}});
  return c;
}

}  // namespace pgtandem::policy::capture_test

// WriteCapture cases (run by write_capture_test.cc): the simple query protocol, transactions and
// their outcomes, session state (SET, PREPARE, temp tables ...) and nondeterministic writes.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/unit/policy/mirror/write_capture_support.h"

namespace pgtandem::policy::capture_test {

std::vector<Case> simple_protocol_cases() {
  std::vector<Case> c;
  c.push_back({"AutocommitInsert",
               exchange(query(kInsert), done("INSERT 0 1", 'I')),
               {{.bytes = query(kInsert), .responses = 1, .primary = {ok("INSERT 0 1")}}},
               stats(1, 0, 0)});
  c.push_back({"AutocommitInsertFails",
               exchange(query(kInsert), failed("23505", 'I')),
               {},
               stats(0, 1, 0)});
  c.push_back({"AutocommitSelect", exchange(query(kSelect), rows("100", 'I')), {}, stats(0, 0, 1)});
  c.push_back({"EmptyQuery",
               exchange(query(""),
                        [] {
                          std::string out;
                          proto::encode(out, proto::EmptyQueryResponse{});
                          return out + ready('I');
                        }()),
               {},
               stats(0, 0, 1)});
  c.push_back({"TransactionCommitted",
               exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(query(kInsert), done("INSERT 0 1", 'T')) +
                   exchange(query(kUpdate), done("UPDATE 1", 'T')) +
                   exchange(query(kSelect), rows("101", 'T')) +
                   exchange(query("COMMIT"), done("COMMIT", 'I')),
               {{.bytes = query("BEGIN") + query(kInsert) + query(kUpdate) + query("COMMIT"),
                 .responses = 4,
                 .primary = {ok("BEGIN"), ok("INSERT 0 1"), ok("UPDATE 1"), ok("COMMIT")},
                 .transaction = true}},
               stats(1, 0, 1)});
  c.push_back({"TransactionRolledBack",
               exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(query(kInsert), done("INSERT 0 1", 'T')) +
                   exchange(query(kUpdate), done("UPDATE 1", 'T')) +
                   exchange(query(kSelect), rows("101", 'T')) +
                   exchange(query("ROLLBACK"), done("ROLLBACK", 'I')),
               {},
               stats(0, 1, 1)});
  c.push_back({"ExplicitTransactionHeldUntilItEnds",
               exchange(query("START TRANSACTION"), done("START TRANSACTION", 'T')) +
                   exchange(query(kInsert), done("INSERT 0 1", 'T')),
               {},
               stats(0, 0, 0),
               /*in_transaction=*/true});
  c.push_back({"CommitOfFailedTransactionIsRollback",
               exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(query(kInsert), done("INSERT 0 1", 'T')) +
                   exchange(query(kInsert), failed("23505", 'E')) +
                   exchange(query(kSelect), failed("25P02", 'E')) +
                   exchange(query("COMMIT"), done("ROLLBACK", 'I')),
               {},
               stats(0, 1, 1)});
  c.push_back({"EndAndAbortSpellings",
               exchange(query("begin work"), done("BEGIN", 'T')) +
                   exchange(query(kInsert), done("INSERT 0 1", 'T')) +
                   exchange(query("end"), done("COMMIT", 'I')) +
                   exchange(query("begin"), done("BEGIN", 'T')) +
                   exchange(query(kInsert2), done("INSERT 0 1", 'T')) +
                   exchange(query("abort"), done("ROLLBACK", 'I')),
               {{.bytes = query("begin work") + query(kInsert) + query("end"),
                 .responses = 3,
                 .primary = {ok("BEGIN"), ok("INSERT 0 1"), ok("COMMIT")},
                 .transaction = true}},
               stats(1, 1, 0)});
  c.push_back({"SavepointRollbackToThenCommit",
               exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(query("SAVEPOINT s1"), done("SAVEPOINT", 'T')) +
                   exchange(query(kInsert), failed("23505", 'E')) +
                   exchange(query("ROLLBACK TO SAVEPOINT s1"), done("ROLLBACK", 'T')) +
                   exchange(query(kInsert2), done("INSERT 0 1", 'T')) +
                   exchange(query("RELEASE SAVEPOINT s1"), done("RELEASE", 'T')) +
                   exchange(query("COMMIT"), done("COMMIT", 'I')),
               {{.bytes = query("BEGIN") + query("SAVEPOINT s1") + query(kInsert) +
                          query("ROLLBACK TO SAVEPOINT s1") + query(kInsert2) +
                          query("RELEASE SAVEPOINT s1") + query("COMMIT"),
                 .responses = 7,
                 .primary = {ok("BEGIN"), ok("SAVEPOINT"), err("23505"), ok("ROLLBACK"),
                             ok("INSERT 0 1"), ok("RELEASE"), ok("COMMIT")},
                 .transaction = true}},
               stats(1, 0, 0)});
  c.push_back({"SavepointThenWholeRollback",
               exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(query("SAVEPOINT s1"), done("SAVEPOINT", 'T')) +
                   exchange(query(kInsert), done("INSERT 0 1", 'T')) +
                   exchange(query("ROLLBACK TO SAVEPOINT s1"), done("ROLLBACK", 'T')) +
                   exchange(query("ROLLBACK"), done("ROLLBACK", 'I')),
               {},
               stats(0, 1, 0)});
  c.push_back(
      {"WholeTransactionInOneQuery",
       exchange(query(std::string("BEGIN; ") + std::string(kInsert) + "; COMMIT"),
                command_complete("BEGIN") + command_complete("INSERT 0 1") + done("COMMIT", 'I')),
       {{.bytes = query(std::string("BEGIN; ") + std::string(kInsert) + "; COMMIT"),
         .responses = 1,
         .primary = {ok("BEGIN"), ok("INSERT 0 1"), ok("COMMIT")},
         .transaction = true}},
       stats(1, 0, 0)});
  c.push_back(
      {"RolledBackTransactionInOneQuery",
       exchange(query(std::string("BEGIN; ") + std::string(kInsert) + "; ROLLBACK"),
                command_complete("BEGIN") + command_complete("INSERT 0 1") + done("ROLLBACK", 'I')),
       {},
       stats(0, 1, 0)});
  // An implicit transaction block: ROLLBACK (with a warning) discards the INSERT.
  c.push_back({"ImplicitBlockRolledBack",
               exchange(query(std::string(kInsert) + "; ROLLBACK"),
                        command_complete("INSERT 0 1") + warning("25P01") + done("ROLLBACK", 'I')),
               {},
               stats(0, 1, 0)});
  c.push_back({"MultiStatementAutocommitFailsAsAWhole",
               exchange(query(std::string(kInsert) + "; " + std::string(kInsert2)),
                        command_complete("INSERT 0 1") + failed("23505", 'I')),
               {},
               stats(0, 1, 0)});
  c.push_back({"ReadsInsideTransactionNotMirrored",
               exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(query(kSelect), rows("1", 'T')) +
                   exchange(query(kUpdate), done("UPDATE 1", 'T')) +
                   exchange(query(kSelect), rows("2", 'T')) +
                   exchange(query("COMMIT"), done("COMMIT", 'I')),
               {{.bytes = query("BEGIN") + query(kUpdate) + query("COMMIT"),
                 .responses = 3,
                 .primary = {ok("BEGIN"), ok("UPDATE 1"), ok("COMMIT")},
                 .transaction = true}},
               stats(1, 0, 2)});
  c.push_back({"TwoTransactionsTwoUnits",
               exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(query(kInsert), done("INSERT 0 1", 'T')) +
                   exchange(query("COMMIT"), done("COMMIT", 'I')) +
                   exchange(query(kUpdate), done("UPDATE 1", 'I')) +
                   exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(query(kInsert2), done("INSERT 0 1", 'T')) +
                   exchange(query("COMMIT"), done("COMMIT", 'I')),
               {{.bytes = query("BEGIN") + query(kInsert) + query("COMMIT"),
                 .responses = 3,
                 .primary = {ok("BEGIN"), ok("INSERT 0 1"), ok("COMMIT")},
                 .transaction = true},
                {.bytes = query(kUpdate), .responses = 1, .primary = {ok("UPDATE 1")}},
                {.bytes = query("BEGIN") + query(kInsert2) + query("COMMIT"),
                 .responses = 3,
                 .primary = {ok("BEGIN"), ok("INSERT 0 1"), ok("COMMIT")},
                 .transaction = true}},
               stats(3, 0, 0)});
  return c;
}

std::vector<Case> session_state_cases() {
  std::vector<Case> c;
  c.push_back({"SetSearchPathAutocommit",
               exchange(query("SET search_path TO app, public"), done("SET", 'I')),
               {{.bytes = query("SET search_path TO app, public"),
                 .responses = 1,
                 .primary = {ok("SET")},
                 .session_state = true}},
               stats(1, 0, 0)});
  c.push_back({"SetApplicationNameReportsParameterStatus",
               exchange(query("SET application_name = 'billing'"),
                        command_complete("SET") + parameter_status("application_name", "billing") +
                            ready('I')),
               {{.bytes = query("SET application_name = 'billing'"),
                 .responses = 1,
                 .primary = {ok("SET")},
                 .session_state = true}},
               stats(1, 0, 0)});
  c.push_back({"FailedSetNotMirrored",
               exchange(query("SET search_path TO app, public"), failed("22023", 'I')),
               {},
               stats(0, 1, 0)});
  c.push_back({"SetInRolledBackTransaction",
               exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(query("SET search_path TO app"), done("SET", 'T')) +
                   exchange(query("ROLLBACK"), done("ROLLBACK", 'I')),
               {},
               stats(0, 1, 0)});
  c.push_back({"SetInCommittedTransaction",
               exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(query("SET search_path TO app"), done("SET", 'T')) +
                   exchange(query("COMMIT"), done("COMMIT", 'I')),
               {{.bytes = query("BEGIN") + query("SET search_path TO app") + query("COMMIT"),
                 .responses = 3,
                 .primary = {ok("BEGIN"), ok("SET"), ok("COMMIT")},
                 .transaction = true,
                 .session_state = true}},
               stats(1, 0, 0)});
  // A unit with data changes is not session state: the proxy replays session-state units on a
  // new mirror connection and before journal entries, which would apply the INSERT twice.
  c.push_back({"SetAndWriteInCommittedTransactionIsNotSessionState",
               exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(query("SET search_path TO app"), done("SET", 'T')) +
                   exchange(query(kInsert), done("INSERT 0 1", 'T')) +
                   exchange(query("COMMIT"), done("COMMIT", 'I')),
               {{.bytes = query("BEGIN") + query("SET search_path TO app") + query(kInsert) +
                          query("COMMIT"),
                 .responses = 4,
                 .primary = {ok("BEGIN"), ok("SET"), ok("INSERT 0 1"), ok("COMMIT")},
                 .transaction = true,
                 .session_state = false}},
               stats(1, 0, 0)});
  c.push_back(
      {"SqlPrepareAndExecute",
       exchange(query("PREPARE ins (int, int) AS INSERT INTO accounts (id, balance) "
                      "VALUES ($1, $2)"),
                done("PREPARE", 'I')) +
           exchange(query("EXECUTE ins(5, 50)"), done("INSERT 0 1", 'I')) +
           exchange(query("PREPARE sel AS SELECT balance FROM accounts"), done("PREPARE", 'I')) +
           exchange(query("EXECUTE sel"), rows("50", 'I')) + check([](const WriteCapture& w) {
             ASSERT_NE(w.prepared().find("ins"), nullptr);
             EXPECT_EQ(w.prepared().find("ins")->kind, StatementKind::kWrite);
             ASSERT_NE(w.prepared().find("sel"), nullptr);
             EXPECT_EQ(w.prepared().find("sel")->kind, StatementKind::kRead);
           }) +
           exchange(query("DEALLOCATE ins"), done("DEALLOCATE", 'I')) +
           check([](const WriteCapture& w) {
             EXPECT_EQ(w.prepared().find("ins"), nullptr);
             EXPECT_NE(w.prepared().find("sel"), nullptr);
           }),
       {{.bytes = query("PREPARE ins (int, int) AS INSERT INTO accounts (id, balance) "
                        "VALUES ($1, $2)"),
         .responses = 1,
         .primary = {ok("PREPARE")},
         .session_state = true},
        {.bytes = query("EXECUTE ins(5, 50)"), .responses = 1, .primary = {ok("INSERT 0 1")}},
        {.bytes = query("PREPARE sel AS SELECT balance FROM accounts"),
         .responses = 1,
         .primary = {ok("PREPARE")},
         .session_state = true},
        {.bytes = query("DEALLOCATE ins"),
         .responses = 1,
         .primary = {ok("DEALLOCATE")},
         .session_state = true}},
       stats(4, 0, 1)});
  c.push_back({"DiscardAllForgetsStatements",
               exchange(prepare("s1", kInsertParam), prepare_done('I')) +
                   exchange(query("DISCARD ALL"), done("DISCARD ALL", 'I')) +
                   check([](const WriteCapture& w) {
                     EXPECT_EQ(w.prepared().size(), 0u);
                     EXPECT_EQ(w.parse_message("s1"), nullptr);
                   }),
               {{.bytes = prepare("s1", kInsertParam), .responses = 1, .session_state = true},
                {.bytes = query("DISCARD ALL"),
                 .responses = 1,
                 .primary = {ok("DISCARD ALL")},
                 .session_state = true}},
               stats(2, 0, 0)});
  return c;
}

std::vector<Case> nondeterministic_cases() {
  std::vector<Case> c;
  c.push_back(
      {"InsertNow",
       exchange(query("INSERT INTO events (id, at) VALUES (1, now())"), done("INSERT 0 1", 'I')),
       {{.bytes = query("INSERT INTO events (id, at) VALUES (1, now())"),
         .responses = 1,
         .primary = {ok("INSERT 0 1")},
         .nondeterministic = true}},
       stats(1, 0, 0, 1)});
  c.push_back({"SelectNextval",
               exchange(query("SELECT nextval('orders_id_seq')"), rows("7", 'I')),
               {{.bytes = query("SELECT nextval('orders_id_seq')"),
                 .responses = 1,
                 .primary = {ok("SELECT 1")},
                 .nondeterministic = true}},
               stats(1, 0, 0, 1)});
  c.push_back({"InsertNextvalInTransaction",
               exchange(query("BEGIN"), done("BEGIN", 'T')) +
                   exchange(query("INSERT INTO orders (id, item) VALUES "
                                  "(nextval('orders_id_seq'), 'x')"),
                            done("INSERT 0 1", 'T')) +
                   exchange(query(kUpdate), done("UPDATE 1", 'T')) +
                   exchange(query("COMMIT"), done("COMMIT", 'I')),
               {{.bytes = query("BEGIN") +
                          query("INSERT INTO orders (id, item) VALUES "
                                "(nextval('orders_id_seq'), 'x')") +
                          query(kUpdate) + query("COMMIT"),
                 .responses = 4,
                 .primary = {ok("BEGIN"), ok("INSERT 0 1"), ok("UPDATE 1"), ok("COMMIT")},
                 .transaction = true,
                 .nondeterministic = true}},
               stats(1, 0, 0, 1)});
  c.push_back(
      {"NondeterministicRolledBackNotCounted",
       exchange(query("INSERT INTO events (id, at) VALUES (1, now())"), failed("23505", 'I')),
       {},
       stats(0, 1, 0, 0)});
  // Preparing is not executing: only the Bind makes the request nondeterministic.
  c.push_back({"ExtendedNowOnlyWhenBound",
               exchange(prepare("ev", "INSERT INTO events (id, at) VALUES ($1, now())"),
                        prepare_done('I')) +
                   exchange(query_prepared("ev", {"1"}), prepared_done("INSERT 0 1", 'I')),
               {{.bytes = prepare("ev", "INSERT INTO events (id, at) VALUES ($1, now())"),
                 .responses = 1,
                 .session_state = true},
                {.bytes = query_prepared("ev", {"1"}),
                 .responses = 1,
                 .primary = {ok("INSERT 0 1")},
                 .binds = {"ev"},
                 .nondeterministic = true}},
               stats(2, 0, 0, 1)});
  return c;
}

}  // namespace pgtandem::policy::capture_test

// The safety rules of read routing: which reads stay on the primary whatever the rules say.
#include "policy/route/route_safety.h"

#include <gtest/gtest.h>

namespace pgtandem::policy {
namespace {

TEST(RouteSafety, AFreeSessionWithNothingPendingMayLeaveThePrimary) {
  EXPECT_EQ(keep_on_primary({}), std::nullopt);
}

TEST(RouteSafety, TransactionsStayOnThePrimary) {
  RouteSafety s;
  s.in_transaction = true;
  EXPECT_EQ(keep_on_primary(s), KeptReason::kTransaction);
}

TEST(RouteSafety, PinnedSessionsStayOnThePrimary) {
  RouteSafety s;
  s.pinned = true;
  EXPECT_EQ(keep_on_primary(s), KeptReason::kPinned);
}

TEST(RouteSafety, ReadYourWritesWaitsForTheMirror) {
  RouteSafety s;
  s.writes_pending = true;
  EXPECT_EQ(keep_on_primary(s), KeptReason::kReadYourWrites);
  s.writes_pending = false;
  s.link_usable = false;  // the mirror failed: its later writes go to the journal
  EXPECT_EQ(keep_on_primary(s), KeptReason::kReadYourWrites);
}

TEST(RouteSafety, UnmirroredWritesKeepReadsUnlessReadYourWritesIsOff) {
  RouteSafety s;
  s.wrote_unmirrored = true;
  EXPECT_EQ(keep_on_primary(s), KeptReason::kReadYourWrites);
  s.read_your_writes = false;
  EXPECT_EQ(keep_on_primary(s), std::nullopt);
  // Pending mirrored writes are never relaxed: they are the session's own, in flight.
  s.writes_pending = true;
  EXPECT_EQ(keep_on_primary(s), KeptReason::kReadYourWrites);
}

TEST(RouteSafety, AnOpenBreakerKeepsReadsOnThePrimary) {
  RouteSafety s;
  s.breaker_allows = false;
  EXPECT_EQ(keep_on_primary(s), KeptReason::kBreakerOpen);
}

TEST(RouteSafety, TheTransactionRuleComesFirst) {
  // Every rule holds at once: the reason reported is the most fundamental one.
  RouteSafety s;
  s.in_transaction = s.pinned = s.writes_pending = s.wrote_unmirrored = true;
  s.link_usable = s.breaker_allows = false;
  EXPECT_EQ(keep_on_primary(s), KeptReason::kTransaction);
  s.in_transaction = false;
  EXPECT_EQ(keep_on_primary(s), KeptReason::kPinned);
  s.pinned = false;
  EXPECT_EQ(keep_on_primary(s), KeptReason::kReadYourWrites);
}

TEST(RouteSafety, EveryReasonHasAName) {
  for (auto r : {KeptReason::kTransaction, KeptReason::kPinned, KeptReason::kReadYourWrites,
                 KeptReason::kBreakerOpen}) {
    EXPECT_NE(to_string(r), "unknown");
  }
}

}  // namespace
}  // namespace pgtandem::policy

// pgbench's built-in TPC-B script (`-b tpcb-like`), as -M extended / prepared send it (pgbench 15
// names the statements P_0 .. P_6), with the tag the server answers each with. Shared by the
// capture's unit tests and its micro benchmark (bench/micro/write_capture_bench.cc).
#pragma once

#include <string_view>

namespace pgtandem::test {

inline constexpr std::string_view kTpcb[] = {
    "BEGIN;",
    "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;",
    "SELECT abalance FROM pgbench_accounts WHERE aid = $1;",
    "UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2;",
    "UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2;",
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, "
    "CURRENT_TIMESTAMP);",
    "END;",
};
inline constexpr std::string_view kTpcbTags[] = {"BEGIN",    "UPDATE 1", "SELECT 1",  "UPDATE 1",
                                                 "UPDATE 1", "INSERT 0 1", "COMMIT"};
static_assert(std::size(kTpcb) == std::size(kTpcbTags));

}  // namespace pgtandem::test

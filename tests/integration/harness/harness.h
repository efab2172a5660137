// Integration-test harness: real PostgreSQL 15 servers on ephemeral ports, the pgtandem binary as a
// child process, subprocess helpers (psql, pgbench), a raw-socket protocol client, and metrics.
//
// Everything here throws std::runtime_error on setup failures; GoogleTest reports an exception
// escaping a test as a failure, so a missing binary or a server that does not start fails the test
// (it never skips). Every process and directory is cleaned up on destruction, and a reaper process
// (forked on first use) kills what is left and removes the directories if the test binary dies.
//
// One header per room: processes.h (utilities, temp dirs, child processes), libpq_client.h,
// pg_cluster.h, http.h (admin HTTP client, metrics), proxy_process.h (pgtandem child, its
// config), client_tools.h (psql, pgbench), raw_client.h (raw protocol client), env.h.
#pragma once

#include "tests/integration/harness/client_tools.h"
#include "tests/integration/harness/env.h"
#include "tests/integration/harness/http.h"
#include "tests/integration/harness/libpq_client.h"
#include "tests/integration/harness/pg_cluster.h"
#include "tests/integration/harness/processes.h"
#include "tests/integration/harness/proxy_process.h"
#include "tests/integration/harness/raw_client.h"

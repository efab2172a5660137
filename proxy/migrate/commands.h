// The migration commands' entry points (issue 13), dispatched from proxy/main.cc. Each takes
// argv after the program name (argv[0] is the command) and returns the process exit code.
#pragma once

namespace pgtandem::proxy::migrate {

int preflight_main(int argc, char** argv);  // 0 all ✓, 1 any ✗, 2 usage
int backfill_main(int argc, char** argv);   // 0 done, 1 failed (resumable), 2 usage
int verify_main(int argc, char** argv);     // 0 identical, 1 differences, 3 error, 2 usage
int repair_main(int argc, char** argv);     // 0 repaired and verified, 1 differences left, 2 usage

}  // namespace pgtandem::proxy::migrate

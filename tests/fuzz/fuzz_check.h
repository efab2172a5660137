// FUZZ_CHECK: an invariant of a fuzz target; a failure aborts, which libFuzzer reports as a crash
// (with the input saved as the reproducer).
#pragma once

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                     \
  do {                                                                       \
    if (!(cond)) {                                                           \
      std::fprintf(stderr, "check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                          \
    }                                                                        \
  } while (0)

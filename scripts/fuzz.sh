#!/usr/bin/env bash
# Build the libFuzzer targets with clang and run each for a bounded time from its checked-in
# corpus (tests/fuzz/corpus/<target>/; see tests/fuzz/CMakeLists.txt).
#
#   scripts/fuzz.sh [--seconds N] [--build-dir DIR] [--target NAME]...
#
#   --seconds N      run each target N seconds (default 30)
#   --build-dir DIR  clang build directory (default build-fuzz); only the fuzz targets are built
#   --target NAME    run only NAME (repeatable; default: every target)
#
# Each target fuzzes a fresh copy of its corpus in DIR/fuzz-run/<target>/ (the checked-in folder
# is never written). A crash, sanitizer report, failed invariant, timeout or out-of-memory fails
# the target; its reproducer path is printed (rerun: DIR/tests/fuzz/<target> <reproducer>).
# Ends with one line `N passed, N failed` (targets) and exits non-zero when any target failed or
# the build failed. Needs clang-14 and libclang-rt-14-dev (scripts/install-deps.sh). JOBS sets the
# build's parallel jobs (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=30
build_dir=build-fuzz
targets=()
all_targets=(fuzz_protocol fuzz_scram_server fuzz_config fuzz_userlist fuzz_journal
  fuzz_write_capture fuzz_statement_shape fuzz_answer_match)
while (($#)); do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --build-dir) build_dir=$2; shift 2 ;;
    --target) targets+=("$2"); shift 2 ;;
    -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fuzz.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
((${#targets[@]})) || targets=("${all_targets[@]}")
if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
  echo "fuzz.sh: --seconds needs a positive number of seconds" >&2
  exit 2
fi

start=$SECONDS
step() { printf '\n==> %s (%ds)\n' "$*" "$((SECONDS - start))"; }

# The build directory must be a clang one: never reuse a GCC build dir.
if [[ -f $build_dir/CMakeCache.txt ]] &&
  ! grep -q '^CMAKE_CXX_COMPILER:[A-Z]*=.*clang' "$build_dir/CMakeCache.txt"; then
  echo "fuzz.sh: $build_dir is not a clang build directory; use another --build-dir" >&2
  exit 2
fi

step "build ${targets[*]} in $build_dir (clang-14)"
build_args=()
for t in "${targets[@]}"; do build_args+=(--target "$t"); done
launcher=()
if command -v ccache >/dev/null 2>&1; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
if ! CC=clang-14 CXX=clang++-14 scripts/build.sh --build-dir "$build_dir" "${build_args[@]}" \
  -DPGTANDEM_FUZZ=ON -DPGTANDEM_TESTS=OFF -DPGTANDEM_BENCH=OFF "${launcher[@]}"; then
  echo "fuzz.sh: build of the fuzz targets in $build_dir failed" >&2
  printf '\n(total %ds)\n' "$((SECONDS - start))"
  echo "0 passed, ${#targets[@]} failed"
  exit 1
fi

passed=0
failed=0
failures=()
for t in "${targets[@]}"; do
  bin=$build_dir/tests/fuzz/$t
  seeds=tests/fuzz/corpus/$t
  run=$build_dir/fuzz-run/$t
  rm -rf "$run"
  mkdir -p "$run/corpus" "$run/artifacts"
  if [[ -d $seeds ]]; then cp -R "$seeds/." "$run/corpus/"; fi
  step "$t for ${seconds}s from $(find "$run/corpus" -type f | wc -l) seeds"
  rc=0
  # -timeout: one input running this long is a hang; -rss_limit_mb: a leak or blow-up.
  "$bin" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$run/artifacts/" "$run/corpus" >"$run/log" 2>&1 || rc=$?
  grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^Done [0-9]+ runs|^stat::number_of_executed_units' "$run/log" || true
  if ((rc == 0)); then
    passed=$((passed + 1))
    echo "$t: passed"
  else
    failed=$((failed + 1))
    reproducer=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$run/log" | tail -n 1)
    echo "$t: FAILED (exit $rc); log: $run/log" >&2
    # The report: from the sanitizer's or the check's first line to libFuzzer's summary.
    grep -E -m 40 -A 30 '^==[0-9]+==|runtime error|check failed|^SUMMARY|deadly signal|timeout after|out-of-memory' \
      "$run/log" | head -n 60 >&2 || true
    if [[ -n $reproducer ]]; then
      echo "$t: reproducer $reproducer (rerun: $bin $reproducer)" >&2
      failures+=("$t: $reproducer")
    else
      failures+=("$t: no reproducer written, see $run/log")
    fi
  fi
done

printf '\n(total %ds)\n' "$((SECONDS - start))"
for f in "${failures[@]}"; do echo "failed: $f"; done
echo "$passed passed, $failed failed"
((failed == 0))

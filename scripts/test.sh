#!/usr/bin/env bash
# Install dependencies, build, and run every ctest test (unit and integration labels).
#
#   scripts/test.sh [--sanitize] [--no-deps] [--no-fuzz] [--no-soak] [--build-dir DIR]
#
#   --sanitize   also build with -DPGTANDEM_SANITIZE=ON (ASan+UBSan) in build-asan and run the unit
#                and integration tests there
#   --no-deps    skip scripts/install-deps.sh
#   --no-fuzz    skip the fuzz targets (by default, after the main ctest, scripts/fuzz.sh builds
#                them with clang in build-fuzz and runs each FUZZ_SECONDS seconds, default 13,
#                from its checked-in corpus; each target counts as one test)
#   --no-soak    skip the soak (by default, after the fuzz targets, scripts/soak.sh runs SOAK_MINUTES
#                minutes, default 2, of load under faults against pgtandem from DIR; it counts as
#                one test; its report and logs stay in DIR/soak)
#
# Ends with one line `N passed, N failed` (summed over all runs) and exits non-zero when any test
# or fuzz target failed, no test ran, or a build failed. CTEST_PARALLEL_LEVEL (default 2: the
# integration shards wait more than they compute) and CTEST_TIMEOUT (seconds per test, default
# 300) are honoured.
set -euo pipefail
cd "$(dirname "$0")/.."

sanitize=0
deps=1
fuzz=1
soak=1
build_dir=build
while (($#)); do
  case $1 in
    --sanitize) sanitize=1; shift ;;
    --no-deps) deps=0; shift ;;
    --no-fuzz) fuzz=0; shift ;;
    --no-soak) soak=0; shift ;;
    --build-dir) build_dir=$2; shift 2 ;;
    -h | --help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "test.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

start=$SECONDS
passed=0
failed=0
status=0
logdir=$(mktemp -d "${TMPDIR:-/tmp}/pgtandem-test.XXXXXX")
trap 'rm -rf "$logdir"' EXIT

step() { printf '\n==> %s (%ds)\n' "$*" "$((SECONDS - start))"; }

# run_ctest NAME DIR [ctest args...]: run ctest in DIR and add its counts to the totals.
run_ctest() {
  local name=$1 dir=$2
  shift 2
  local log=$logdir/$name.log rc=0
  step "ctest in $dir $*"
  ctest --test-dir "$dir" --output-on-failure --timeout "${CTEST_TIMEOUT:-300}" \
    -j "${CTEST_PARALLEL_LEVEL:-2}" "$@" 2>&1 |
    tee "$log" || rc=$?
  local summary p f total
  summary=$(grep -Eo '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1 || true)
  if [[ -z $summary ]]; then
    echo "test.sh: $name: ctest ran no test (or did not finish)" >&2
    status=1
    ((rc == 0)) || failed=$((failed + 1))
    return 0
  fi
  f=$(sed -E 's/.* ([0-9]+) tests? failed out of.*/\1/' <<<"$summary")
  total=$(sed -E 's/.*out of ([0-9]+)/\1/' <<<"$summary")
  p=$((total - f))
  passed=$((passed + p))
  failed=$((failed + f))
  if ((rc != 0 || f != 0)); then status=1; fi
}

# run_fuzz: scripts/fuzz.sh; its `N passed, N failed` (targets) is added to the totals.
run_fuzz() {
  local log=$logdir/fuzz.log rc=0 summary
  step "fuzz targets, ${FUZZ_SECONDS:-13}s each (scripts/fuzz.sh)"
  scripts/fuzz.sh --seconds "${FUZZ_SECONDS:-13}" 2>&1 | tee "$log" || rc=$?
  summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1 || true)
  if [[ -z $summary ]]; then
    echo "test.sh: fuzz.sh did not finish" >&2
    status=1
    failed=$((failed + 1))
    return 0
  fi
  passed=$((passed + ${summary%% *}))
  failed=$((failed + $(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"$summary")))
  if ((rc != 0)); then status=1; fi
}

# run_soak: scripts/soak.sh, a short soak under faults with the pgtandem just built; one test.
run_soak() {
  local rc=0
  step "soak under faults, ${SOAK_MINUTES:-2} min (scripts/soak.sh)"
  scripts/soak.sh --minutes "${SOAK_MINUTES:-2}" --no-build --pgtandem "$build_dir/proxy/pgtandem" \
    --logs "$build_dir/soak" || rc=$?
  if ((rc == 0)); then
    passed=$((passed + 1))
  else
    echo "test.sh: the soak did not hold (exit $rc; report and logs in $build_dir/soak)" >&2
    failed=$((failed + 1))
    status=1
  fi
}

finish() {
  printf '\n(total %ds)\n' "$((SECONDS - start))"
  echo "$passed passed, $failed failed"
  exit "$status"
}

if ((deps)); then
  step "install dependencies"
  scripts/install-deps.sh
fi

step "build $build_dir"
# CI builds from scratch every run: without debug info that build takes about a quarter less
# (pgtandem_proxy alone, 2 cores: 178 s against 243 s with -g); a failure is rerun locally with it.
build_flags=()
if [[ ${CI:-} == true ]]; then build_flags=(-DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -DNDEBUG"); fi
if ! scripts/build.sh --build-dir "$build_dir" -DPGTANDEM_TESTS=ON "${build_flags[@]}"; then
  echo "test.sh: build of $build_dir failed" >&2
  status=1
  failed=$((failed + 1))
  finish
fi
run_ctest main "$build_dir"
if ((fuzz)); then run_fuzz; fi
if ((soak)); then run_soak; fi

if ((sanitize)); then
  step "build build-asan (ASan+UBSan)"
  if scripts/build.sh --build-dir build-asan --type Debug -DPGTANDEM_SANITIZE=ON \
    -DPGTANDEM_TESTS=ON -DPGTANDEM_BENCH=OFF; then
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1} \
      UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
      run_ctest asan build-asan -L 'unit|integration'
  else
    echo "test.sh: build of build-asan failed" >&2
    status=1
    failed=$((failed + 1))
  fi
fi

finish

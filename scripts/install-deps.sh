#!/usr/bin/env bash
# Install everything pgtandem's build, tests, demo and benchmarks need, from Debian 12's archive.
# Idempotent: when every package is already installed it does nothing (no apt-get update).
# Never starts the packaged postgresql/pgbouncer/pgpool2 services: our scripts run their own.
set -euo pipefail

PACKAGES=(
  # build
  cmake g++ ninja-build pkg-config
  libboost1.81-dev liburing-dev libpq-dev libssl-dev libtomlplusplus-dev prometheus-cpp-dev
  libpg-query-dev
  # tests and micro-benchmarks
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  # fuzzing and sanitizers
  clang-14 libclang-rt-14-dev
  # real servers for integration tests, demo and bench
  postgresql-15 postgresql-client-15 pgbouncer pgpool2
  # bench/*-instructions.sh: instruction counts under callgrind
  valgrind
  # bench/backfill.sh: the reference backfill tools compared against
  pgcopydb
  # script helpers (openssl: throwaway certificates for the TLS tests and bench/run.sh --tls;
  # iproute2: scripts/soak.sh's network namespace and tc, with clang-14 for its BPF loss filter)
  python3 procps curl util-linux openssl iproute2
  chromium # headless: tests/demo screenshots scripts/demo.sh's HTML report
  # deploy/ checks (tests/deploy): promtool validates the alert rules and dashboard queries
  prometheus python3-yaml
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  [[ $status == installed ]] || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=()
if [[ $EUID -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 || {
    echo "install-deps: not root and no sudo; install as root: ${missing[*]}" >&2
    exit 1
  }
  SUDO=(sudo)
fi

# Keep package maintainer scripts from starting services (postgresql, pgbouncer, pgpool2) by
# way of a temporary policy-rc.d, unless the machine already has one.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
  "${SUDO[@]}" chmod 755 "$policy"
  own_policy=1
fi
cleanup() {
  if ((own_policy)); then "${SUDO[@]}" rm -f "$policy"; fi
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" </dev/null
echo "install-deps: done"

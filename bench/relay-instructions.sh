#!/usr/bin/env bash
# pgtandem's instructions per transaction on the plain relay (mirroring off), for two builds side by
# side: select-only and TPC-B, simple and prepared, c=1 and c=8. valgrind's callgrind counts
# instructions, not time, so the comparison holds on a busy machine, where bench/run.sh's CPU per
# transaction does not (it needs a quiet machine; see bench/README.md).
#
#   bench/relay-instructions.sh BASELINE_BIN CANDIDATE_BIN     (root, Debian 12, PostgreSQL 15, valgrind)
#
# Environment: RI_TXNS=300 (transactions per client), RI_CLIENTS="1 8", RI_MODES="simple prepared",
# RI_WORKLOADS="select tpcb"; RI_BASE_TOP / RI_CAND_TOP: extra top-level config for the baseline /
# the candidate (e.g. RI_CAND_TOP='io_backend = "uring"' with the same binary twice). Prints one table row per cell: instructions per transaction of each
# binary and the candidate's change. Each binary runs under callgrind with one worker; what a start
# and a stop with no client cost is measured once per binary and subtracted.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
(($# == 2)) || { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
base=$1
cand=$2
txns=${RI_TXNS:-300}
clients_list=${RI_CLIENTS:-1 8}
modes=${RI_MODES:-simple prepared}
workloads=${RI_WORKLOADS:-select tpcb}
for b in "$base" "$cand"; do
  [[ -x $b ]] || { echo "bench/relay-instructions.sh: no pgtandem at $b" >&2; exit 1; }
done
command -v valgrind >/dev/null || { echo "bench/relay-instructions.sh: valgrind not found" >&2; exit 1; }
# shellcheck source=scripts/lib/pg.sh
source "$root/scripts/lib/pg.sh"
# Bind every symbol at start: lazy PLT binding happens at each function's first call, inside the
# measured cell, and a binary that links more libraries (libpq since the migration commands) would
# pay it there; with LD_BIND_NOW the start/stop cost subtracted below includes it.
export LD_BIND_NOW=1
pg_init
pg_cluster_start old
pg_cluster_start new
for c in old new; do
  pg_psql "$c" -c "CREATE DATABASE bench" postgres
  pgbench -i -s 1 -q -h 127.0.0.1 -p "$(pg_port "$c")" -U postgres bench >/dev/null 2>&1
done
unset PGTANDEM_TOML_TOP PGTANDEM_TOML_TAIL

# instructions BIN NAME WORKLOAD MODE CLIENTS: sets PER_TXN to pgtandem's instructions per
# transaction for one cell (not in a $(...) subshell: pgtandem_callgrind_* keep state in this shell).
instructions() {
  local bin=$1 name=$2 workload=$3 mode=$4 clients=$5 idle=$6 top=$7
  local args=(-n -M "$mode" -c "$clients" -t "$txns")
  [[ $workload == select ]] && args+=(-S)
  PGTANDEM_TOML_TOP=$top pgtandem_callgrind_start "$bin" "$name"
  pgbench "${args[@]}" -h 127.0.0.1 -p "$PGTANDEM_PORT" -U postgres bench \
    >"$PG_WORKDIR/$name/pgbench.log" 2>&1 || pg_die "pgbench failed ($name)"
  pgtandem_callgrind_stop
  PER_TXN=$(((PGTANDEM_CALLGRIND_TOTAL - idle) / (clients * txns)))
}

# What a start and a stop cost each binary (no client): subtracted from every cell.
idle() {
  PGTANDEM_TOML_TOP=$3 pgtandem_callgrind_start "$1" "$2"
  sleep 1
  pgtandem_callgrind_stop
  IDLE=$PGTANDEM_CALLGRIND_TOTAL
}
idle "$base" ri-idle-base "${RI_BASE_TOP:-}" >&2
idle_base=$IDLE
idle "$cand" ri-idle-cand "${RI_CAND_TOP:-}" >&2
idle_cand=$IDLE

printf '| workload | mode | clients | baseline instr/txn | candidate instr/txn | change |\n'
printf '|---|---|---:|---:|---:|---:|\n'
n=0
for workload in $workloads; do
  for mode in $modes; do
    for clients in $clients_list; do
      n=$((n + 1))
      instructions "$base" "ri-$n-base" "$workload" "$mode" "$clients" "$idle_base" "${RI_BASE_TOP:-}" >&2
      b=$PER_TXN
      instructions "$cand" "ri-$n-cand" "$workload" "$mode" "$clients" "$idle_cand" "${RI_CAND_TOP:-}" >&2
      c=$PER_TXN
      printf '| %s | %s | %d | %d | %d | %s |\n' "$workload" "$mode" "$clients" "$b" "$c" \
        "$(awk -v a="$c" -v b="$b" 'BEGIN { printf "%+.1f%%", (a / b - 1) * 100 }')"
    done
  done
done

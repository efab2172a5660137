#!/usr/bin/env bash
# pgtandem's instructions per transaction (valgrind callgrind: a count, not a time, so it holds on a
# busy machine) with shadow reads off, at 1% and at 100% sampling: pgbench -S, simple and prepared.
#
#   bench/shadow-instructions.sh          (root, Debian 12, PostgreSQL 15, valgrind; any cwd)
#
# Environment: SI_PGTANDEM (binary; default build-lead/proxy/pgtandem), SI_TXNS=1500 (per client,
# 2 clients, per mode), SI_MODES="simple prepared".
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${SI_PGTANDEM:-$root/build-lead/proxy/pgtandem}
txns=${SI_TXNS:-1500}
modes=${SI_MODES:-simple prepared}
[[ -x $bin ]] || { echo "bench/shadow-instructions.sh: no pgtandem at $bin" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "bench/shadow-instructions.sh: valgrind not found" >&2; exit 1; }
# shellcheck source=scripts/lib/pg.sh
source "$root/scripts/lib/pg.sh"
pg_init
pg_cluster_start old
pg_cluster_start new
for c in old new; do
  pg_psql "$c" -c "CREATE DATABASE bench" postgres
  pgbench -i -s 1 -q -h 127.0.0.1 -p "$(pg_port "$c")" -U postgres bench >/dev/null 2>&1
done
nmodes=$(wc -w <<<"$modes")
printf '| shadow sample_rate | instructions per transaction | vs off |\n|---|---:|---:|\n'
off=''
for rate in 0 0.01 1; do
  PGTANDEM_TOML_TAIL=''
  [[ $rate == 0 ]] || PGTANDEM_TOML_TAIL=$'[shadow]\nsample_rate = '"$rate"
  name=si-$rate
  pgtandem_callgrind_start "$bin" "$name"
  for mode in $modes; do
    pgbench -n -S -M "$mode" -c 2 -t "$txns" -h 127.0.0.1 -p "$PGTANDEM_PORT" -U postgres bench \
      >"$PG_WORKDIR/$name/pgbench-$mode.log" 2>&1 || pg_die "pgbench failed"
  done
  sleep 1  # the last shadow reads finish
  pgtandem_callgrind_stop
  total=$PGTANDEM_CALLGRIND_TOTAL
  per=$((total / (2 * txns * nmodes)))
  [[ -n $off ]] || off=$per
  printf '| %s | %d | %s |\n' "$rate" "$per" "$(awk -v a="$per" -v b="$off" 'BEGIN { printf "%+.0f%%", (a / b - 1) * 100 }')"
done

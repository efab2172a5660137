#!/usr/bin/env bash
# pgtandem's instructions per TPC-B transaction with write mirroring off and on (valgrind
# callgrind: a count, not a time, and far steadier than one; it still moves with the machine's
# load, which splits reads and adds wake-ups: ~600 more per mirrored transaction beside a build,
# so compare runs made on an idle machine), and where the mirror's share goes.
#
#   bench/mirror-instructions.sh          (root, Debian 12, PostgreSQL 15, valgrind; any cwd)
#
# Environment: MI_PGTANDEM (binary; default build-lead/proxy/pgtandem), MI_TXNS=400 (per client,
# 2 clients, per mode), MI_MODES="simple prepared", MI_TOP=25 (functions listed for mirroring on),
# MI_KEEP (a directory: the callgrind outputs are copied there), MI_LINK_THREADS ([mirror]
# link_threads; default pgtandem's: 1. Callgrind counts every thread's instructions), MI_THREADS=1
# (then one more run mirroring on, each thread's instructions per transaction: the session's
# worker and the link's thread apart).
# What a start and a stop with no client cost (the config, TLS contexts, threads: ~17 M
# instructions, 21k per transaction of a 800-transaction run) is measured once per setting and
# subtracted, as bench/relay-instructions.sh does; before 2026-12-07 it was not, which made the
# mirror's share look smaller (+65% with it, +93% without, for the same two runs).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${MI_PGTANDEM:-$root/build-lead/proxy/pgtandem}
txns=${MI_TXNS:-400}
modes=${MI_MODES:-simple prepared}
top=${MI_TOP:-25}
[[ -x $bin ]] || { echo "bench/mirror-instructions.sh: no pgtandem at $bin" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "bench/mirror-instructions.sh: valgrind not found" >&2; exit 1; }
# shellcheck source=scripts/lib/pg.sh
source "$root/scripts/lib/pg.sh"
# Every symbol bound at start, so lazy binding is in the subtracted start/stop (relay-instructions.sh).
export LD_BIND_NOW=1
pg_init
pg_cluster_start old
pg_cluster_start new
for c in old new; do pg_psql "$c" -c "CREATE DATABASE bench" postgres; done
nmodes=$(wc -w <<<"$modes")
printf '| mirror_writes | instructions per transaction | vs off |\n|---|---:|---:|\n'
off=''
for mirror in off on; do
  for c in old new; do
    pgbench -i -s 1 -q -h 127.0.0.1 -p "$(pg_port "$c")" -U postgres bench >/dev/null 2>&1
  done
  unset PGTANDEM_TOML_TAIL
  # valgrind does not emulate io_uring (a thread blocked in io_uring_enter keeps its lock): the
  # epoll relay, which is what these counts have always measured.
  export PGTANDEM_TOML_TOP='io_backend = "epoll"'
  if [[ $mirror == on ]]; then
    export PGTANDEM_TOML_TOP=$'io_backend = "epoll"\nmirror_writes = true'
    export PGTANDEM_TOML_TAIL=$'[mirror]\njournal_path = "@DIR@/mirror.journal"'"${MI_LINK_THREADS:+$'\n'link_threads = $MI_LINK_THREADS}"
  fi
  name=mi-$mirror
  pgtandem_callgrind_start "$bin" "$name-idle"
  sleep 1
  pgtandem_callgrind_stop
  idle=$PGTANDEM_CALLGRIND_TOTAL
  pgtandem_callgrind_start "$bin" "$name"
  for mode in $modes; do
    pgbench -n -M "$mode" -c 2 -t "$txns" -h 127.0.0.1 -p "$PGTANDEM_PORT" -U postgres bench \
      >"$PG_WORKDIR/$name/pgbench-$mode.log" 2>&1 || pg_die "pgbench failed"
  done
  sleep 2  # the mirror applies the last writes
  pgtandem_callgrind_stop
  total=$PGTANDEM_CALLGRIND_TOTAL
  [[ -z ${MI_KEEP:-} ]] || cp "$PGTANDEM_CALLGRIND_OUT" "$MI_KEEP/callgrind-$name.out"
  per=$(((total - idle) / (2 * txns * nmodes)))
  [[ -n $off ]] || off=$per
  printf '| %s | %d | %s |\n' "$mirror" "$per" "$(awk -v a="$per" -v b="$off" 'BEGIN { printf "%+.0f%%", (a / b - 1) * 100 }')"
  if [[ $mirror == on ]]; then
    echo
    echo "Top $top functions (inclusive instructions, mirroring on):"
    # (|| true: head closes the pipe early, and pipefail made that the script's exit status, 141.)
    callgrind_annotate --inclusive=yes "$PGTANDEM_CALLGRIND_OUT" 2>/dev/null | grep -E '^ *[0-9,]+ ' |
      head -n "$top" | cut -c1-160 || true
  fi
done

# MI_THREADS=1: the same transactions mirrored once more under --separate-threads=yes; each thread's
# whole count per transaction (its start and idle included, not subtracted), named by what it runs.
if [[ ${MI_THREADS:-} == 1 ]]; then
  for c in old new; do
    pgbench -i -s 1 -q -h 127.0.0.1 -p "$(pg_port "$c")" -U postgres bench >/dev/null 2>&1
  done
  pgtandem_start "$bin" old new 1 mi-threads
  pg_stop_pid "$PGTANDEM_PID"
  out=$PG_WORKDIR/mi-threads/callgrind.out
  valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$out" "$bin" \
    --config "$PG_WORKDIR/mi-threads/pgtandem.toml" >"$PG_WORKDIR/mi-threads/valgrind.log" 2>&1 &
  vpid=$!
  pg_wait_tcp "$PGTANDEM_PORT" 60 "$vpid" || pg_die "pgtandem under valgrind did not start"
  for mode in $modes; do
    pgbench -n -M "$mode" -c 2 -t "$txns" -h 127.0.0.1 -p "$PGTANDEM_PORT" -U postgres bench \
      >"$PG_WORKDIR/mi-threads/pgbench-$mode.log" 2>&1 || pg_die "pgbench failed"
  done
  sleep 2
  kill -TERM "$vpid"
  wait "$vpid" || true
  echo
  printf '| thread, mirroring on | instructions per transaction |\n|---|---:|\n'
  for f in "$out"-*; do
    report=$(callgrind_annotate --inclusive=yes "$f" 2>/dev/null || true)
    n=$(awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }' <<<"$report")
    ((n > 1000000)) || continue  # threads that did next to nothing
    what="other (${f##*-})"
    if grep -q 'MirrorLink::run' <<<"$report"; then
      what="the mirror link's"
    elif grep -q 'session::Session' <<<"$report"; then
      what="the session's worker"
    elif grep -q '(below main)' <<<"$report"; then
      what="main (start and stop)"
    fi
    printf '| %s | %d |\n' "$what" $((n / (2 * txns * nmodes)))
  done
fi

#!/usr/bin/env bash
# Many clients held open (issue 17): memory per connection and tps, pgtandem against PgBouncer and
# PostgreSQL directly, in one run.
#
#   bench/clients.sh [--clients 1000] [--duration 20] [--scale 10] [--pgtandem BIN]
#
# `pgbench -S -c N -j 2 -T D` (connections held for the whole run, no -C; simple protocol, which
# PgBouncer's transaction mode needs) against:
#   - direct: PostgreSQL with max_connections N + 100;
#   - pgbouncer-session: PgBouncer in session mode (N server connections, like pgtandem);
#   - pgbouncer-tx: PgBouncer in transaction mode with a pool of 20 (what PgBouncer users run
#     with many clients; pgtandem has no transaction pooling, so this is the other design's figure);
#   - pgtandem: relay only (2 workers).
# For each proxy: its RSS and open descriptors before the clients connect and their peak during
# the run, and the difference per client; tps (pgbench's, without the initial connection time),
# the initial connection time, and the proxy's CPU per transaction (connecting included). Prints a
# markdown table and the load average. Use a duration well past the connection time (1,000
# backends take seconds to start on 2 cores).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
clients=1000
duration=20
scale=10
bin=$root/build/proxy/pgtandem
while (($#)); do
  case $1 in
    --clients) clients=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --scale) scale=$2; shift 2 ;;
    --pgtandem) bin=$2; shift 2 ;;
    *) echo "bench/clients.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[[ -x $bin ]] || { echo "bench/clients.sh: no pgtandem at $bin" >&2; exit 1; }
# shellcheck source=scripts/lib/pg.sh
source "$root/scripts/lib/pg.sh"
pg_init
pg_cluster_start old
pg_cluster_start new
for c in old new; do
  pg_psql "$c" -c "ALTER SYSTEM SET max_connections = $((clients + 100))" postgres >/dev/null
  pg_cluster_restart "$c"
done
oldp=$(pg_port old)
pg_psql old -c "CREATE DATABASE bench" postgres >/dev/null
pg_psql new -c "CREATE DATABASE bench" postgres >/dev/null
pgbench -i -s "$scale" -q -h 127.0.0.1 -p "$oldp" -U postgres bench >/dev/null 2>&1
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

bouncer() {  # bouncer MODE POOL -> port in BOUNCER_PORT, pid in BOUNCER_PID
  pg_pgbouncer_start old bench "$2" "$1" $((clients + 50))
  BOUNCER_PORT=$PG_PGBOUNCER_PORT BOUNCER_PID=$PG_LAST_PID  # setpriv execs: the pid is PgBouncer's
}

# run NAME PORT PID: pgbench through PORT; samples PID (0: none) before and mid-run.
rows=()
run() {
  local name=$1 port=$2 pid=$3 rss0=0 fd0=0 rss1=0 fd1=0 cpu0=0 cpu1=0 log=$PG_WORKDIR/$1.log
  if ((pid)); then rss0=$(rss_kb "$pid"); fd0=$(fds "$pid"); cpu0=$(pg_cpu_us "$pid"); fi
  pgbench -n -S -c "$clients" -j 2 -T "$duration" -h 127.0.0.1 -p "$port" -U postgres bench >"$log" 2>&1 &
  local pb=$!
  # The proxy's peak RSS and descriptor count while pgbench runs (sampled every 0.2 s).
  while kill -0 "$pb" 2>/dev/null; do
    if ((pid)); then
      local r f
      r=$(rss_kb "$pid") f=$(fds "$pid")
      ((r > rss1)) && rss1=$r
      ((f > fd1)) && fd1=$f
    fi
    sleep 0.2
  done
  wait "$pb" || { tail -n 20 "$log" >&2; pg_die "pgbench through $name failed"; }
  if ((pid)); then cpu1=$(pg_cpu_us "$pid"); fi
  local tps tx conn
  tps=$(awk '/^tps = / {print $3; exit}' "$log")
  conn=$(awk '/initial connection time/ {print $5; exit}' "$log")
  tx=$(awk '/number of transactions actually processed/ {print $NF; exit}' "$log")
  tx=${tx%%/*}
  rows+=("$name $tps $tx $rss0 $rss1 $fd0 $fd1 $((cpu1 - cpu0)) $conn")
  pg_log "$name: tps $tps"
}

run direct "$oldp" 0
bouncer session "$clients"
run pgbouncer-session "$BOUNCER_PORT" "$BOUNCER_PID"
pg_stop_pid "$BOUNCER_PID" 2>/dev/null || kill "$BOUNCER_PID" 2>/dev/null || true
bouncer transaction 20
run pgbouncer-tx "$BOUNCER_PORT" "$BOUNCER_PID"
pg_stop_pid "$BOUNCER_PID" 2>/dev/null || kill "$BOUNCER_PID" 2>/dev/null || true
pgtandem_start "$bin" old new 2 pgtandem
run pgtandem "$PGTANDEM_PORT" "$PGTANDEM_PID"

load_after=$(cut -d' ' -f1-3 /proc/loadavg)
echo
echo "pgbench -S -c $clients -j 2 -T $duration (connections held), scale $scale; load average before $load_before, after $load_after"
echo
printf '| target | tps | vs direct | connect s | proxy RSS before -> peak with %s clients (MiB) | per client (KiB) | descriptors before -> peak | proxy CPU us/txn |\n' "$clients"
printf '|---|---:|---:|---:|---:|---:|---:|---:|\n'
direct_tps=
for r in "${rows[@]}"; do
  read -r name tps tx rss0 rss1 fd0 fd1 cpu conn <<<"$r"
  [[ $name == direct ]] && direct_tps=$tps
  python3 - "$name" "$tps" "$tx" "$rss0" "$rss1" "$fd0" "$fd1" "$cpu" "${direct_tps:-$tps}" "$clients" "$conn" <<'EOF'
import sys
name, tps, tx, rss0, rss1, fd0, fd1, cpu, direct, clients, conn = sys.argv[1:]
conn = float(conn or 0) / 1000
tps, tx, rss0, rss1, cpu, direct, clients = float(tps), float(tx or 0), int(rss0), int(rss1), int(cpu), float(direct), int(clients)
if name == 'direct':
    print(f'| {name} | {tps:,.0f} | 1.00 | {conn:.1f} | | | | |')
else:
    per = (rss1 - rss0) / clients
    cpu_tx = cpu / tx if tx else 0
    print(f'| {name} | {tps:,.0f} | {tps / direct:.2f} | {conn:.1f} | {rss0 / 1024:.1f} -> {rss1 / 1024:.1f} | {per:.1f} | {fd0} -> {fd1} | {cpu_tx:.1f} |')
EOF
done

#!/usr/bin/env bash
# pgtandem in two minutes: two throwaway PostgreSQL 15 servers (old, new), pgtandem in front with
# old as primary, pgbench through it and directly, then a short report with pgtandem's own metrics.
#
#   scripts/demo.sh [--no-deps] [--no-build] [--pgtandem BIN] [--duration SECONDS] [--clients N]
#                   [--scale N] [--mirror]
#
# --mirror turns on write mirroring (mirror_writes = true): TPC-B's writes then reach `new` too.
# Defaults: 10 s per run, 8 clients, scale 10. Everything it starts is stopped and removed on exit
# (PG_KEEP=1 keeps the temp dir with the logs).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

deps=1
build=1
bin=$root/build/proxy/pgtandem
duration=10
clients=8
scale=10
mirror=0
while (($#)); do
  case $1 in
    --no-deps) deps=0; shift ;;
    --no-build) build=0; shift ;;
    --pgtandem) bin=$(realpath "$2"); build=0; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --scale) scale=$2; shift 2 ;;
    --mirror) mirror=1; shift ;;
    -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

if ((deps)); then
  scripts/install-deps.sh
fi
if ((build)); then
  scripts/build.sh --build-dir build --target pgtandem
fi
[[ -x $bin ]] || { echo "demo.sh: $bin not built (run without --no-build)" >&2; exit 1; }

# shellcheck source=scripts/lib/pg.sh
source "$root/scripts/lib/pg.sh"
pg_init

pg_cluster_start old
pg_cluster_start new
for t in old new; do
  pg_psql "$t" -c 'CREATE DATABASE bench'
  pg_log "pgbench -i -s $scale on $t"
  pgbench -i -q -s "$scale" -h 127.0.0.1 -p "$(pg_port "$t")" -U postgres bench \
    >"$PG_WORKDIR/init-$t.log" 2>&1 || { cat "$PG_WORKDIR/init-$t.log" >&2; exit 1; }
done

if ((mirror)); then
  export PGTANDEM_TOML_TOP='mirror_writes = true'
  export PGTANDEM_TOML_TAIL=$'[mirror]\njournal_path = "@DIR@/mirror.journal"'
fi
pgtandem_start "$bin" old new 2

jobs=$((clients < 2 ? clients : 2))
declare -A result=()
# run NAME PORT MODE-ARGS...
run() {
  local name=$1 port=$2
  shift 2
  pg_log "$name: pgbench -c $clients -j $jobs -T $duration $*"
  result[$name]=$(pg_pgbench "$PG_WORKDIR/pgbench-$name.log" -n -c "$clients" -j "$jobs" \
    -T "$duration" -h 127.0.0.1 -p "$port" -U postgres "$@" bench)
}
run select-direct "$(pg_port old)" -S
run select-pgtandem "$PGTANDEM_PORT" -S
run tpcb-direct "$(pg_port old)"
run tpcb-pgtandem "$PGTANDEM_PORT"

metrics=$PG_WORKDIR/metrics.txt
curl -fsS "http://127.0.0.1:$PGTANDEM_ADMIN_PORT/metrics" >"$metrics" ||
  pg_log "warning: could not scrape /metrics"

history_old=$(pg_psql old -d bench -Atc 'SELECT count(*) FROM pgbench_history')
# The mirror applies writes asynchronously: give it a moment to drain.
history_new=-1
for _ in $(seq 50); do
  n=$(pg_psql new -d bench -Atc 'SELECT count(*) FROM pgbench_history')
  [[ $n == "$history_new" ]] && break
  history_new=$n
  sleep 0.2
done

echo
echo "=== pgtandem demo: pgbench -c $clients -j $jobs -T $duration, scale $scale, TCP loopback, $(nproc) cores ==="
printf '%-12s %-10s %12s %14s %10s\n' workload path tps "latency ms" "vs direct"
for w in select tpcb; do
  read -r dtps dlat _ <<<"${result[$w-direct]}"
  read -r ptps plat _ <<<"${result[$w-pgtandem]}"
  printf '%-12s %-10s %12.0f %14.3f %10s\n' "$w" direct "$dtps" "$dlat" "1.00x"
  printf '%-12s %-10s %12.0f %14.3f %9.2fx\n' "$w" pgtandem "$ptps" "$plat" \
    "$(python3 -c "print($ptps / $dtps)")"
done
echo
if ((mirror)); then
  read -r _ _ mirrored_txns _ <<<"${result[tpcb-pgtandem]}"
  echo "write mirroring on: $mirrored_txns TPC-B transactions through pgtandem;" \
    "pgbench_history rows on new: $history_new (on old: $history_old, the direct run's included)"
else
  echo "pgbench_history rows after TPC-B: old $history_old, new $history_new" \
    "(write mirroring off: --mirror turns it on)"
fi
echo
echo "=== pgtandem /metrics ==="
python3 - "$metrics" <<'EOF'
import re, sys
from collections import defaultdict

line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
label_re = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
samples = []
try:
    text = open(sys.argv[1]).read()
except OSError:
    text = ""
for line in text.splitlines():
    if not line or line.startswith("#"):
        continue
    m = line_re.match(line)
    if m:
        samples.append((m.group(1), dict(label_re.findall(m.group(2) or "")), float(m.group(3))))

def total(name, **want):
    return sum(v for n, l, v in samples if n == name and all(l.get(k) == x for k, x in want.items()))

def human(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"

if not samples:
    print("no metrics scraped")
    sys.exit(0)
print(f"sessions total           {total('pgtandem_sessions_total'):.0f}")
print(f"client connections now   {total('pgtandem_client_connections'):.0f}")
for d in sorted({l.get('direction') for n, l, _ in samples if n == 'pgtandem_bytes_total'} - {None}):
    print(f"bytes {d:<18} {human(total('pgtandem_bytes_total', direction=d))}"
          f"  ({total('pgtandem_messages_total', direction=d):.0f} messages)")
print(f"upstream connect failures {total('pgtandem_upstream_connect_failures_total'):.0f}")

# Quantiles from cumulative buckets, interpolated linearly inside a bucket (as histogram_quantile).
buckets = defaultdict(dict)
for n, l, v in samples:
    if n == 'pgtandem_query_duration_seconds_bucket':
        le = float('inf') if l['le'] in ('+Inf', 'Inf') else float(l['le'])
        buckets[l.get('target', '')][le] = buckets[l.get('target', '')].get(le, 0) + v

def quantile(q, bs):
    les = sorted(bs)
    count = bs[les[-1]]
    if count == 0:
        return None
    rank = q * count
    prev_le, prev_c = 0.0, 0.0
    for le in les:
        c = bs[le]
        if c >= rank:
            if le == float('inf'):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_c) / max(c - prev_c, 1e-12)
        prev_le, prev_c = le, c
    return les[-1]

for target, bs in sorted(buckets.items()):
    n = bs[max(bs)]
    p50, p99 = quantile(0.5, bs), quantile(0.99, bs)
    if p50 is None:
        continue
    print(f"query latency [{target}]    {n:.0f} queries, p50 ~{p50 * 1e6:.0f} us, p99 ~{p99 * 1e6:.0f} us"
          " (estimated from histogram buckets)")
EOF

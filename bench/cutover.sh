#!/usr/bin/env bash
# The write pause of a coordinated cutover (issue 14) under fixed-rate TPC-B, with 1 and with 3
# pgtandem replicas over the same old/new.
#
#   bench/cutover.sh          (root or not, Debian 12, PostgreSQL 15; any cwd)
#
# For each replica count: pgbench TPC-B at a fixed total rate (-R, split over the replicas, each
# replica its own pgbench with -l), and CB_CUTOVERS cutovers alternating new/old, each called on
# the next replica, CB_GAP seconds apart. Reported per replica count:
#   - the pause each replica imposed (its gate closed -> open, from the cutover reports): p50, p99,
#     max over every replica of every cutover;
#   - the clients' view: for each cutover, the slowest transaction (latency + schedule lag) that
#     completed between the call and 1 s after it; p50/p99/max over the cutovers; and the
#     transactions' p50/p99 latency outside the cutover windows, for scale;
#   - client errors (must be 0).
# Goal (issue 14): write pause p99 at most 500 ms with one replica, at most 1 s with three.
# Environment: CB_PGTANDEM (binary; default build/proxy/pgtandem), CB_RATE=200 (tps, total),
# CB_CUTOVERS=10, CB_GAP=3, CB_SCALE=10.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${CB_PGTANDEM:-$root/build/proxy/pgtandem}
rate=${CB_RATE:-200}
cutovers=${CB_CUTOVERS:-10}
gap=${CB_GAP:-3}
scale=${CB_SCALE:-10}
[[ -x $bin ]] || { echo "bench/cutover.sh: no pgtandem at $bin" >&2; exit 1; }
# shellcheck source=scripts/lib/pg.sh
source "$root/scripts/lib/pg.sh"
pg_init
pg_cluster_start old
pg_cluster_start new
for c in old new; do
  pg_psql "$c" -c "CREATE DATABASE bench" postgres >/dev/null
  pgbench -i -s "$scale" -q -h 127.0.0.1 -p "$(pg_port "$c")" -U postgres bench >"$PG_WORKDIR/init-$c.log" 2>&1 ||
    { cat "$PG_WORKDIR/init-$c.log" >&2; pg_die "pgbench -i on $c failed"; }
done

# replica N: a pgtandem with mirroring, a token, and the control user (database postgres).
declare -a PORTS ADMINS PIDS
export PGTANDEM_TOML_TOP='mirror_writes = true'
export PGTANDEM_TOML_ADMIN='token = "bench"'
export PGTANDEM_TOML_TAIL=$'[mirror]\njournal_path = "@DIR@/mirror.journal"\n[cutover]\ncontrol_user = "postgres"\nmax_mirror_lag = 100000'
start_replica() {
  pgtandem_start "$bin" old new 2 "replica-$1"
  PORTS[$1]=$PGTANDEM_PORT ADMINS[$1]=$PGTANDEM_ADMIN_PORT PIDS[$1]=$PGTANDEM_PID
}

results=()
run() {
  local n=$1 i k to secs=$(((cutovers + 2) * gap + 4))
  local out=$PG_WORKDIR/run-$n
  mkdir -p "$out"
  for c in old new; do pg_psql "$c" -c "DROP SCHEMA IF EXISTS pgtandem_control CASCADE" postgres >/dev/null 2>&1; done
  for ((i = 0; i < n; i++)); do start_replica "$i"; done
  sleep 2  # every agent's heartbeat
  local per=$((rate / n)) benches=()
  for ((i = 0; i < n; i++)); do
    pgbench -n -c 2 -j 1 -R "$per" -T "$secs" -M prepared -l --log-prefix="$out/tx-$i" \
      -h 127.0.0.1 -p "${PORTS[i]}" -U postgres bench >"$out/pgbench-$i.log" 2>&1 &
    benches+=($!)
  done
  sleep "$gap"
  : >"$out/calls.tsv"
  for ((k = 0; k < cutovers; k++)); do
    to=new
    ((k % 2 == 1)) && to=old
    i=$((k % n))
    local t0 t1 body
    t0=$(date +%s.%N)
    body=$(curl -sS --max-time 60 -X POST -H "Authorization: Bearer bench" \
      "http://127.0.0.1:${ADMINS[i]}/cutover?to=$to")
    t1=$(date +%s.%N)
    printf '%s\t%s\t%s\n' "$t0" "$t1" "$body" >>"$out/calls.tsv"
    sleep "$gap"
  done
  for p in "${benches[@]}"; do wait "$p" || true; done
  for ((i = 0; i < n; i++)); do pg_stop_pid "${PIDS[i]}"; done
  results+=("$(python3 - "$out" "$n" <<'PY'
import glob, json, re, statistics, sys
out, n = sys.argv[1], int(sys.argv[2])
def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")
calls, pauses, results = [], [], []
for line in open(f"{out}/calls.tsv"):
    t0, t1, body = line.rstrip("\n").split("\t", 2)
    calls.append((float(t0), float(t1)))
    try:
        rep = json.loads(body)
    except ValueError:
        results.append("bad-json")
        continue
    results.append(rep.get("result"))
    for r in rep.get("replicas", []):
        m = re.search(r"pause (\d+) ms", r)
        if m:
            pauses.append(int(m.group(1)))
tx = []  # (end time s, client latency ms = latency + schedule lag)
for f in glob.glob(f"{out}/tx-*"):
    for line in open(f):
        p = line.split()
        if len(p) < 6 or p[2] == "skipped" or p[2] == "failed":
            continue
        end = int(p[4]) + int(p[5]) / 1e6
        lag = int(p[6]) if len(p) > 6 else 0
        tx.append((end, (int(p[2]) + lag) / 1000.0))
worst, inside = [], set()
for t0, t1 in calls:
    w = [ms for end, ms in tx if t0 <= end <= t1 + 1.0]
    worst.append(max(w) if w else 0.0)
    inside.update(i for i, (end, _) in enumerate(tx) if t0 <= end <= t1 + 1.0)
outside = [ms for i, (_, ms) in enumerate(tx) if i not in inside]
errors = 0
for f in glob.glob(f"{out}/pgbench-*.log"):
    text = open(f).read()
    m = re.search(r"number of failed transactions: (\d+)", text)
    errors += int(m.group(1)) if m else 0
    errors += text.count("ERROR") + text.count("FATAL")
ok = sum(1 for r in results if r == "ok")
print(f"| {n} | {ok}/{len(results)} | {pct(pauses,50):.0f} / {pct(pauses,99):.0f} / {max(pauses) if pauses else 0:.0f} | "
      f"{pct(worst,50):.0f} / {pct(worst,99):.0f} / {max(worst) if worst else 0:.0f} | "
      f"{pct(outside,50):.1f} / {pct(outside,99):.1f} | {len(tx)} | {errors} |")
PY
)")
}
run 1
run 3
echo
echo "TPC-B -M prepared at $rate tps in total (-c 2 per replica), scale $scale, $cutovers cutovers $gap s apart; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| replicas | cutovers ok | pause per replica ms (p50 / p99 / max) | slowest client tx per cutover ms (p50 / p99 / max) | tx latency outside cutovers ms (p50 / p99) | transactions | client errors |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${results[@]}"

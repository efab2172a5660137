#!/usr/bin/env bash
# Write-mirroring benchmark (issue 3): TPC-B through pgtandem with mirroring off and on, and through
# Pgpool-II in native replication mode over the same two targets, interleaved in one run; then the
# same at a fixed rate (pgbench -R, half of mirroring-off's maximum) to compare client latencies.
#
#   bench/mirror.sh                      (root, Debian 12, PostgreSQL 15, pgpool2; any cwd)
#
# Configurations, all over TCP 127.0.0.1, against two throwaway clusters `old` and `new`:
#   direct   pgbench -> old
#   off      pgbench -> pgtandem (mirror_writes = false) -> old
#   mirror   pgbench -> pgtandem (mirror_writes = true)  -> old, writes applied on new afterwards
#   pgpool   pgbench -> Pgpool-II 4.3 native_replication -> old then new, statement by statement
# Before every pgbench run both clusters get a fresh `pgbench -i -s SCALE` (identical data). After
# every `mirror` and `pgpool` run: wait until the mirror has drained, then compare old and new
# (sums and md5 of accounts/tellers/branches, history row count).
#
# Environment (defaults):
#   MB_DURATION=15       seconds per maximum-throughput run
#   MB_RATE_DURATION=15  seconds per fixed-rate run
#   MB_ROUNDS=3          rounds per phase (report: median; order of configurations rotates)
#   MB_CLIENTS=8 MB_THREADS=2 MB_SCALE=10 MB_MODE=simple   pgbench -c / -j / -i -s / -M
#   MB_WORKERS=2         pgtandem workers
#   MB_RATE=             fixed rate in tps (default: half of `off`'s median maximum)
#   MB_BUILD=1           build pgtandem in build-mbench first (0: use MB_PGTANDEM as is)
#   MB_PGTANDEM=         pgtandem binary (default build-mbench/proxy/pgtandem)
#   MB_BOOST=0           1: everything at nice -20 (see bench/README.md; root)
#   MB_NEW_NICE=         e.g. 19: run the `new` cluster at that nice value (its autogroup too), a
#                        diagnostic that models `new` on other hardware: the mirror's database work
#                        then yields the CPU to the primary's. Pgpool-II waits for `new` on every
#                        statement, so do not compare (c)/(d) from such a run.
#   MB_LINK_THREADS=     [mirror] link_threads of the mirroring pgtandem (default: its default, 1)
#   MB_INLINE=0          1: adds (c0), a second mirroring pgtandem with link_threads = 0 (the links
#                        on the clients' worker, as before issue 17), interleaved with (c)
#   MB_FLOOR=0           1: the fixed-rate phase also runs `floor`: mirroring off, while a second
#                        pgbench (at MB_NEW_NICE, like new) replays the same TPC-B at the same rate
#                        straight on new: what new's repeat of the writes costs the client's
#                        latency on these cores when pgtandem's own mirror work costs nothing (the
#                        bound for moving the mirror links to lower-priority threads)
#   MB_OUT=              results dir (default build-mbench/mirror-results/<timestamp>)
#   PG_KEEP=1            keep the temp dir (server, pgtandem and pgpool logs)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

duration=${MB_DURATION:-15}
rate_duration=${MB_RATE_DURATION:-15}
rounds=${MB_ROUNDS:-3}
clients=${MB_CLIENTS:-8}
threads=${MB_THREADS:-2}
scale=${MB_SCALE:-10}
mode=${MB_MODE:-simple}
workers=${MB_WORKERS:-2}
rate=${MB_RATE:-}
build=${MB_BUILD:-1}
boost=${MB_BOOST:-0}
new_nice=${MB_NEW_NICE:-}
floor=${MB_FLOOR:-0}
link_threads=${MB_LINK_THREADS:-}
inline=${MB_INLINE:-0}
build_dir=$root/build-mbench
pgtandem_bin=${MB_PGTANDEM:-$build_dir/proxy/pgtandem}
out=${MB_OUT:-$build_dir/mirror-results/$(date +%Y%m%d-%H%M%S)}

[[ $EUID -eq 0 ]] || { echo "bench/mirror.sh: run as root (pgpool and postgres run as user postgres)" >&2; exit 1; }
command -v pgbench >/dev/null || { echo "bench/mirror.sh: pgbench not found" >&2; exit 1; }
[[ -x /usr/sbin/pgpool ]] || { echo "bench/mirror.sh: /usr/sbin/pgpool not found (apt-get install pgpool2)" >&2; exit 1; }

commit=$(git rev-parse --short HEAD 2>/dev/null || echo none)
dirty=$([[ -z $(git status --porcelain 2>/dev/null) ]] || echo " (+uncommitted changes)")
((build)) || dirty="$dirty (binary not rebuilt by this run)"
if ((build)); then
  cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DPGTANDEM_TESTS=OFF \
    -DPGTANDEM_BENCH=OFF >/dev/null
  cmake --build "$build_dir" -j2 --target pgtandem >/dev/null
fi
[[ -x $pgtandem_bin ]] || { echo "bench/mirror.sh: no pgtandem binary at $pgtandem_bin" >&2; exit 1; }
mkdir -p "$out"
out=$(realpath "$out")

# shellcheck source=scripts/lib/pg.sh
source "$root/scripts/lib/pg.sh"
pg_init
((boost == 0)) || pg_boost_self

# pg_cleanup stops what pg_spawn_bg started with TERM, which Pgpool-II takes as a smart shutdown
# (wait for clients): stop it first with a fast shutdown and make sure its children are gone.
PGPOOL_PID=''
mb_cleanup() {
  local rc=$?
  if [[ -n $PGPOOL_PID ]] && kill -0 "$PGPOOL_PID" 2>/dev/null; then
    local kids
    kids=$(pgrep -P "$PGPOOL_PID" || true)
    kill -INT "$PGPOOL_PID" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$PGPOOL_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$PGPOOL_PID" 2>/dev/null || true
    local k
    for k in $kids; do kill -KILL "$k" 2>/dev/null || true; done
  fi
  set +e  # a failing command here must not end the trap before pg_cleanup has run
  (exit "$rc")
  pg_cleanup
}
trap mb_cleanup EXIT

w=$PG_WORKDIR
# --- helpers (python) ---------------------------------------------------------------------------
# CPU time in microseconds of each PID and its live children, including the reaped descendants
# (cutime/cstime): a postmaster's figure then covers backends that exited in between.
cat >"$w/cpu.py" <<'EOF'
import os, sys
hz = os.sysconf("SC_CLK_TCK")
def fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    return s[s.rindex(")") + 2:].split()
def own(pid):
    f = fields(pid)  # f[0] is field 3 (state): utime 14, stime 15, cutime 16, cstime 17
    return sum(int(x) for x in f[11:15])
def children(pid):
    out = []
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/children") as f:
                out += f.read().split()
    except OSError:
        pass
    return out
res = []
for pid in sys.argv[1:]:
    ticks = own(pid)
    for c in children(pid):
        try:
            ticks += own(c)
        except OSError:
            pass
    res.append(str(ticks * 1000000 // hz))
print(" ".join(res))
EOF

# Mirror metrics from pgtandem's /metrics: `snap URL` prints a JSON snapshot; `diff A B` prints
# B - A (counters and lag histogram) plus B's queue gauge.
cat >"$w/metrics.py" <<'EOF'
import json, re, sys, urllib.request
def snap(url):
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    m = {"lag_buckets": {}, "lag_sum": 0.0, "lag_count": 0, "queue_bytes": 0, "writes": {},
         "divergences": 0, "nondeterministic": 0, "journal_bytes": 0, "coalesced": 0,
         "order_waits": 0, "order_timeouts": 0}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, value = line.rsplit(" ", 1)
        v = float(value)
        if name.startswith("pgtandem_mirror_lag_seconds_bucket"):
            m["lag_buckets"][re.search(r'le="([^"]+)"', name).group(1)] = v
        elif name.startswith("pgtandem_mirror_lag_seconds_sum"):
            m["lag_sum"] = v
        elif name.startswith("pgtandem_mirror_lag_seconds_count"):
            m["lag_count"] = v
        elif name.startswith("pgtandem_mirror_queue_bytes"):
            m["queue_bytes"] = v
        elif name.startswith("pgtandem_mirror_journal_bytes"):
            m["journal_bytes"] = v
        elif name.startswith("pgtandem_mirror_writes_total"):
            m["writes"][re.search(r'outcome="([^"]+)"', name).group(1)] = v
        elif name.startswith("pgtandem_mirror_divergences_total"):
            m["divergences"] += v
        elif name.startswith("pgtandem_mirror_nondeterministic_writes_total"):
            m["nondeterministic"] = v
        elif name.startswith("pgtandem_mirror_coalesced_transactions_total"):
            m["coalesced"] = v
        elif name.startswith("pgtandem_mirror_order_waits_total"):
            m["order_timeouts" if 'result="timeout"' in name else "order_waits"] += v
    return m
if sys.argv[1] == "snap":
    print(json.dumps(snap(sys.argv[2])))
elif sys.argv[1] == "queue":
    print(int(snap(sys.argv[2])["queue_bytes"]))
else:
    a, b = (json.load(open(p)) for p in sys.argv[2:4])
    d = {"lag_buckets": {k: b["lag_buckets"][k] - a["lag_buckets"].get(k, 0) for k in b["lag_buckets"]},
         "lag_sum": b["lag_sum"] - a["lag_sum"], "lag_count": b["lag_count"] - a["lag_count"],
         "queue_bytes": b["queue_bytes"], "journal_bytes": b["journal_bytes"],
         "writes": {k: b["writes"][k] - a["writes"].get(k, 0) for k in b["writes"]},
         "divergences": b["divergences"] - a["divergences"],
         "nondeterministic": b["nondeterministic"] - a["nondeterministic"]}
    for k in ("coalesced", "order_waits", "order_timeouts"):
        d[k] = b.get(k, 0) - a.get(k, 0)
    print(json.dumps(d))
EOF

# Latency from pgbench per-transaction logs (-l): "avg p50 p99 max avg_lag n" in ms. With -R the
# logged time runs from the scheduled start (schedule lag included), as pgbench's own average.
cat >"$w/lat.py" <<'EOF'
import glob, math, sys
lat, lag = [], []
for path in glob.glob(sys.argv[1] + ".*"):
    for line in open(path):
        f = line.split()
        if len(f) < 6 or f[2] == "skipped":
            continue
        lat.append(float(f[2]) / 1000.0)
        if len(f) > 6:
            lag.append(float(f[6]) / 1000.0)
if not lat:
    raise SystemExit("no transactions in " + sys.argv[1] + ".*")
lat.sort()
def pct(p):
    return lat[max(0, min(len(lat), math.ceil(p / 100.0 * len(lat))) - 1)]  # nearest rank
avg_lag = sum(lag) / len(lag) if lag else 0.0
print(f"{sum(lat) / len(lat):.3f} {pct(50):.3f} {pct(99):.3f} {lat[-1]:.3f} {avg_lag:.3f} {len(lat)}")
EOF

# --- servers and proxies ------------------------------------------------------------------------
pg_cluster_start old
pg_cluster_start new
for t in old new; do pg_psql "$t" -c 'CREATE DATABASE bench'; done
old_port=$(pg_port old)
new_port=$(pg_port new)
old_pm=$(head -n 1 "$(pg_datadir old)/postmaster.pid")
new_pm=$(head -n 1 "$(pg_datadir new)/postmaster.pid")
if [[ -n $new_nice ]]; then
  # Backends forked later inherit the postmaster's nice value; autogroup (pg_ctl starts the
  # postmaster in a session of its own) makes the group's nice the one that counts between groups.
  for p in "$new_pm" $(pgrep -P "$new_pm" || true); do renice -n "$new_nice" -p "$p" >/dev/null; done
  echo "$new_nice" >"/proc/$new_pm/autogroup" 2>/dev/null || true
  pg_log "new's postmaster at nice $new_nice ($(cat "/proc/$new_pm/autogroup" 2>/dev/null))"
fi

reset_data() {
  local t pids=()
  for t in old new; do
    pgbench -i -q -s "$scale" -h 127.0.0.1 -p "$(pg_port "$t")" -U postgres bench \
      >"$w/init-$t.log" 2>&1 &
    pids+=($!)
  done
  for t in 0 1; do
    wait "${pids[t]}" || { cat "$w"/init-*.log >&2; pg_die "pgbench -i failed"; }
  done
}

declare -A port_of=() pid_of=()
port_of[direct]=$old_port

unset PGTANDEM_TOML_TOP PGTANDEM_TOML_TAIL
pgtandem_start "$pgtandem_bin" old new "$workers" pgtandem-off
port_of[off]=$PGTANDEM_PORT pid_of[off]=$PGTANDEM_PID

export PGTANDEM_TOML_TOP='mirror_writes = true'
export PGTANDEM_TOML_TAIL=$'[mirror]\njournal_path = "@DIR@/mirror.journal"'"${link_threads:+$'\n'link_threads = $link_threads}"
pgtandem_start "$pgtandem_bin" old new "$workers" pgtandem-mirror
unset PGTANDEM_TOML_TOP PGTANDEM_TOML_TAIL
port_of[mirror]=$PGTANDEM_PORT pid_of[mirror]=$PGTANDEM_PID
declare -A metrics_of=()
metrics_of[mirror]=http://127.0.0.1:$PGTANDEM_ADMIN_PORT/metrics
mirror_journal=$PG_WORKDIR/pgtandem-mirror/mirror.journal
if ((inline)); then
  export PGTANDEM_TOML_TOP='mirror_writes = true'
  export PGTANDEM_TOML_TAIL=$'[mirror]\njournal_path = "@DIR@/mirror.journal"\nlink_threads = 0'
  pgtandem_start "$pgtandem_bin" old new "$workers" pgtandem-inline
  unset PGTANDEM_TOML_TOP PGTANDEM_TOML_TAIL
  port_of[inline]=$PGTANDEM_PORT pid_of[inline]=$PGTANDEM_PID
  metrics_of[inline]=http://127.0.0.1:$PGTANDEM_ADMIN_PORT/metrics
fi

# Pgpool-II in native replication mode: every write on old, then on new (backend 0 is the main
# node). Trust auth, no pool_hba/pool_passwd, no health or streaming checks, no failover, no
# load balancing; enough preforked children for every client.
pgpool_start() {
  local dir=$w/pgpool
  mkdir -p "$dir"
  local port pcp
  port=$(pg_free_port)
  pcp=$(pg_free_port)
  while [[ $pcp == "$port" ]]; do pcp=$(pg_free_port); done
  cat >"$dir/pgpool.conf" <<EOF
backend_clustering_mode = 'native_replication'
listen_addresses = '127.0.0.1'
port = $port
socket_dir = '$dir'
pcp_listen_addresses = ''
pcp_port = $pcp
pcp_socket_dir = '$dir'
wd_ipc_socket_dir = '$dir'
pid_file_name = '$dir/pgpool.pid'
logdir = '$dir'
log_destination = 'stderr'
logging_collector = off
log_min_messages = warning
log_connections = off
log_statement = off
log_per_node_statement = off

backend_hostname0 = '127.0.0.1'
backend_port0 = $old_port
backend_weight0 = 1
backend_flag0 = 'DISALLOW_TO_FAILOVER'
backend_hostname1 = '127.0.0.1'
backend_port1 = $new_port
backend_weight1 = 1
backend_flag1 = 'DISALLOW_TO_FAILOVER'

enable_pool_hba = off
pool_passwd = ''
ssl = off
num_init_children = $((clients + 4))
max_pool = 1
child_life_time = 0
child_max_connections = 0
connection_life_time = 0
client_idle_limit = 0
connection_cache = on

load_balance_mode = off
replicate_select = off
insert_lock = off
lobj_lock_table = ''
replication_stop_on_mismatch = off
failover_if_affected_tuples_mismatch = off
failover_on_backend_error = off
health_check_period = 0
sr_check_period = 0
use_watchdog = off
memory_cache_enabled = off
EOF
  : >"$dir/pcp.conf"
  chown -R "$PG_USER:" "$dir"
  pg_spawn_bg "$dir/pgpool.log" "${PG_AS_USER[@]}" /usr/sbin/pgpool -n -D \
    -f "$dir/pgpool.conf" -F "$dir/pcp.conf"
  PGPOOL_PID=$PG_LAST_PID
  pg_wait_tcp "$port" 30 "$PGPOOL_PID" || {
    cat "$dir/pgpool.log" >&2
    pg_die "pgpool did not start"
  }
  # The children accept a moment after the listen socket exists.
  for _ in $(seq 50); do
    psql -X -q -h 127.0.0.1 -p "$port" -U postgres -c 'SELECT 1' bench >/dev/null 2>&1 && break
    sleep 0.2
  done
  port_of[pgpool]=$port
  pid_of[pgpool]=$PGPOOL_PID
  pg_log "pgpool-II (native_replication) on 127.0.0.1:$port -> old:$old_port new:$new_port"
}
pgpool_start

# --- one run ------------------------------------------------------------------------------------
# Wait until pgtandem's mirror queue is empty and nothing runs on new (the last units applied).
mirror_drain() {
  local url=$1 deadline=$((SECONDS + 120)) quiet=0 q act
  while ((SECONDS < deadline)); do
    q=$(python3 "$w/metrics.py" queue "$url")
    act=$(pg_psql new -At -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'
      AND pid <> pg_backend_pid() AND state NOT LIKE 'idle%'" bench)
    if [[ $q == 0 && $act == 0 ]]; then
      quiet=$((quiet + 1))
      ((quiet < 2)) || return 0
    else
      quiet=0
    fi
    sleep 0.2
  done
  pg_log "warning: mirror did not drain in 120 s (queue $q bytes, $act active on new)"
}

# Compare old and new: "same|DIFFERENT accounts_sum tellers_sum branches_sum history_old history_new"
check_same() {
  local sql="SELECT (SELECT sum(abalance) FROM pgbench_accounts) || ' ' ||
    (SELECT sum(tbalance) FROM pgbench_tellers) || ' ' || (SELECT sum(bbalance) FROM pgbench_branches) || ' ' ||
    (SELECT md5(string_agg(aid || ':' || abalance, ',' ORDER BY aid)) FROM pgbench_accounts) || ' ' ||
    (SELECT md5(string_agg(tid || ':' || tbalance, ',' ORDER BY tid)) FROM pgbench_tellers) || ' ' ||
    (SELECT md5(string_agg(bid || ':' || bbalance, ',' ORDER BY bid)) FROM pgbench_branches) || ' ' ||
    (SELECT count(*) FROM pgbench_history)"
  local a b
  a=$(pg_psql old -At -c "$sql" bench)
  b=$(pg_psql new -At -c "$sql" bench)
  local -a fa fb
  read -r -a fa <<<"$a"
  read -r -a fb <<<"$b"
  local verdict=same
  [[ $a == "$b" ]] || verdict=DIFFERENT
  echo "$verdict ${fa[0]} ${fa[1]} ${fa[2]} ${fa[6]} ${fb[6]}"
}

raw=$out/raw.tsv
lagj=$out/mirror-lag.jsonl
printf 'phase\tround\ttarget\ttps\tlat_ms\ttxns\tp50_ms\tp99_ms\tmax_ms\tlag_ms\tcpu_pgbench_us\tcpu_proxy_us\tcpu_old_us\tcpu_new_us\tload1\tcheck\n' >"$raw"
: >"$lagj"

# CPU of this shell's reaped children (cutime + cstime) in us, read without forking: around the
# pgbench call it is pgbench's CPU (plus the subshell and three seds). -> CHILD_US
clk_tck=$(getconf CLK_TCK)
CHILD_US=0
shell_children_us() {
  local stat
  read -r stat <"/proc/$$/stat"
  local -a f
  read -r -a f <<<"${stat##*) }"
  CHILD_US=$(((f[13] + f[14]) * 1000000 / clk_tck))
}

# run_one PHASE ROUND TARGET SECONDS [RATE]: fresh data, one pgbench run, one row in raw.tsv.
run_one() {
  local phase=$1 r=$2 t=$3 secs=$4 rt=${5:-}
  reset_data
  local via=$t bg=''
  [[ $t != floor ]] || via=off
  local -a args=(-n -M "$mode" -c "$clients" -j "$threads" -T "$secs"
    -h 127.0.0.1 -p "${port_of[$via]}" -U postgres)
  local logp=$w/txlog-$phase-$r-$t
  [[ -z $rt ]] || args+=(-R "$rt" -l --log-prefix "$logp")
  local pid=${pid_of[$via]:-} load1 snap0=$w/m0.json snap1=$w/m1.json
  load1=$(cut -d' ' -f1 /proc/loadavg)
  local murl=${metrics_of[$t]:-}
  [[ -z $murl ]] || python3 "$w/metrics.py" snap "$murl" >"$snap0"
  local c0 c1 s0 s1 px0=0 px1=0
  read -r -a c0 <<<"$(python3 "$w/cpu.py" "$old_pm" "$new_pm" ${pid:+"$pid"})"
  shell_children_us
  s0=$CHILD_US
  if [[ $t == floor ]]; then
    # new repeats the writes as the mirror would, at new's nice, driven by a pgbench of its own.
    nice -n "${new_nice:-0}" pgbench -n -M "$mode" -c "$clients" -j "$threads" -T "$secs" -R "$rt" \
      -h 127.0.0.1 -p "$new_port" -U postgres bench >"$w/pgbench-$phase-$r-floor-new.log" 2>&1 &
    bg=$!
  fi
  local res
  res=$(pg_pgbench "$w/pgbench-$phase-$r-$t.log" "${args[@]}" bench)
  shell_children_us
  s1=$CHILD_US
  if [[ -n $bg ]]; then
    wait "$bg" || { tail -n 20 "$w/pgbench-$phase-$r-floor-new.log" >&2; pg_die "floor: pgbench on new failed"; }
  fi
  [[ -z $murl ]] || mirror_drain "$murl"
  read -r -a c1 <<<"$(python3 "$w/cpu.py" "$old_pm" "$new_pm" ${pid:+"$pid"})"
  [[ -z $pid ]] || { px0=${c0[2]}; px1=${c1[2]}; }
  local tps lat txns pgb_cpu='' p50=- p99=- max=- lag=- check=-
  # pg_pgbench prints "tps lat txns" and, in newer versions of scripts/lib/pg.sh, pgbench's CPU.
  read -r tps lat txns pgb_cpu _ <<<"$res"
  [[ -n $pgb_cpu ]] || pgb_cpu=$((s1 - s0))
  if [[ -n $rt ]]; then
    read -r lat p50 p99 max lag _ <<<"$(python3 "$w/lat.py" "$logp")"
    rm -f "$logp".*
  fi
  if [[ -n $murl ]]; then
    python3 "$w/metrics.py" snap "$murl" >"$snap1"
    python3 - "$phase" "$r" "$(python3 "$w/metrics.py" diff "$snap0" "$snap1")" "$t" >>"$lagj" <<'EOF'
import json, sys
d = json.loads(sys.argv[3]); d["phase"] = sys.argv[1]; d["round"] = int(sys.argv[2]); d["target"] = sys.argv[4]
print(json.dumps(d))
EOF
  fi
  if [[ -n $murl || $t == pgpool ]]; then
    local cs
    cs=$(check_same)
    check=${cs%% *}
    if [[ $check != same && -n $murl ]]; then
      # Writes the mirror could not apply in time went to the journal (by design, for `pgtandem
      # replay`): then old and new are expected to differ until a replay.
      local journaled
      journaled=$(tail -n 1 "$lagj" | python3 -c 'import json, sys; print(int(json.load(sys.stdin)["writes"].get("journaled", 0)))')
      ((journaled == 0)) || check="journaled:$journaled"
    fi
    [[ $check == same ]] || pg_log "warning: old and new differ after $phase $t round $r: $cs ($check)"
    echo "$phase $r $t $cs" >>"$out/checks.txt"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$phase" "$r" "$t" \
    "$tps" "$lat" "$txns" "$p50" "$p99" "$max" "$lag" "$pgb_cpu" "$((px1 - px0))" \
    "$((c1[0] - c0[0]))" "$((c1[1] - c0[1]))" "$load1" "$check" >>"$raw"
  pg_log "$phase round $r/$rounds $t${rt:+ -R $rt}: $tps tps, avg $lat ms${rt:+, p99 $p99 ms} (load $load1)$([[ $check == - ]] || echo ", old/new $check")"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
awk '{ exit !($1 > 1.5) }' /proc/loadavg &&
  pg_log "warning: load average is $load_before: other work on the machine will skew the numbers"
est=$((rounds * (4 * (duration + 8) + 3 * (rate_duration + 8)) + 40))
pg_log "4 configurations x $rounds rounds x ${duration}s, then 3 x $rounds x ${rate_duration}s at a fixed rate: ~$((est / 60 + 1)) min"

# Warm-up (not recorded): connections, caches, pgtandem's and pgpool's code paths.
reset_data
for t in direct off mirror pgpool; do
  pgbench -n -M "$mode" -c "$clients" -j "$threads" -T 3 -h 127.0.0.1 -p "${port_of[$t]}" \
    -U postgres bench >"$w/warmup-$t.log" 2>&1 || {
    tail -n 20 "$w/warmup-$t.log" >&2
    pg_die "warm-up through $t failed"
  }
done

# --- phase 1: maximum throughput ------------------------------------------------------------------
targets=(direct off mirror pgpool)
((inline == 0)) || targets+=(inline)
for ((r = 1; r <= rounds; r++)); do
  for ((i = 0; i < ${#targets[@]}; i++)); do
    run_one max "$r" "${targets[$(((i + r - 1) % ${#targets[@]}))]}" "$duration"
  done
done

# --- phase 2: fixed rate, half of mirroring-off's median maximum ------------------------------------
if [[ -z $rate ]]; then
  rate=$(awk -F'\t' '$1 == "max" && $3 == "off" { print $4 }' "$raw" | sort -g |
    awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%d", m / 2 }')
fi
pg_log "fixed rate: $rate tps"
targets=(direct off mirror)
((inline == 0)) || targets+=(inline)
((floor == 0)) || targets+=(floor)
for ((r = 1; r <= rounds; r++)); do
  for ((i = 0; i < ${#targets[@]}; i++)); do
    run_one rate "$r" "${targets[$(((i + r - 1) % ${#targets[@]}))]}" "$rate_duration" "$rate"
  done
done

for t in off mirror pgpool $( ((inline == 0)) || echo inline); do
  kill -0 "${pid_of[$t]}" 2>/dev/null || pg_die "$t exited during the run"
done
journal_bytes=$(stat -c %s "$mirror_journal" 2>/dev/null || echo 0)

# --- report -------------------------------------------------------------------------------------
{
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) cores" \
    "($(sed -nE 's/^model name\s*:\s*//p' /proc/cpuinfo | head -n 1)), kernel $(uname -r)"
  echo "- command: \`MB_DURATION=$duration MB_RATE_DURATION=$rate_duration MB_ROUNDS=$rounds" \
    "MB_CLIENTS=$clients MB_THREADS=$threads MB_SCALE=$scale MB_MODE=$mode MB_WORKERS=$workers" \
    "MB_BOOST=$boost${new_nice:+ MB_NEW_NICE=$new_nice}${link_threads:+ MB_LINK_THREADS=$link_threads}" \
    "$( ((floor == 0)) || echo 'MB_FLOOR=1 ')bench/mirror.sh\`"
  echo "- pgtandem $("$pgtandem_bin" --version 2>&1 | head -n 1), commit $commit$dirty, Release," \
    "workers=$workers; $("$PG_BIN/postgres" --version) (fsync=off) x2;" \
    "$(/usr/sbin/pgpool --version 2>&1 | head -n 1) native_replication; $(pgbench --version)"
  echo "- TPC-B, pgbench -n -M $mode -c $clients -j $threads, scale $scale, fresh \`pgbench -i\` on" \
    "both before every run; max: -T $duration; fixed rate: -R $rate -T $rate_duration; median of" \
    "$rounds interleaved rounds; all TCP 127.0.0.1"
  ((floor == 0)) || echo "- (e): mirroring off while \`pgbench -R $rate\` runs the same TPC-B straight on new" \
    "at nice ${new_nice:-0} (MB_FLOOR=1)"
  echo "- load average before/after: $load_before / $(cut -d' ' -f1-3 /proc/loadavg)$( ((boost == 0)) ||
    echo ' (bench at nice -20)')"
  echo "- mirror journal after the run: $journal_bytes bytes${new_nice:+; new at nice $new_nice (diagnostic run)}"
} >"$out/header.md"

python3 - "$raw" "$lagj" "$out/header.md" >"$out/results.md" <<'EOF'
import csv, json, statistics, sys
from collections import defaultdict
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
lag = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
med = statistics.median
runs = defaultdict(dict)  # (phase, target) -> round -> row
for r in rows:
    runs[(r["phase"], r["target"])][int(r["round"])] = r
def col(phase, t, c):
    return [float(x[c]) for x in runs[(phase, t)].values() if x[c] != "-"]
def ratio(phase, a, b, c):  # median over rounds of a/b within the round
    ra, rb = runs[(phase, a)], runs[(phase, b)]
    v = [float(ra[k][c]) / float(rb[k][c]) for k in ra if k in rb and float(rb[k][c]) > 0]
    return med(v) if v else float("nan")
def cpu(t, c):  # CPU us per transaction, median
    v = [float(x[c]) / float(x["txns"]) for x in runs[("max", t)].values() if float(x["txns"]) > 0]
    return med(v) if v else 0.0
names = {"direct": "(a) direct old", "off": "(b) pgtandem, mirroring off",
         "mirror": "(c) pgtandem, mirroring on", "pgpool": "(d) Pgpool-II native replication",
         "floor": "(e) mirroring off, new replaying the writes beside it",
         "inline": "(c0) mirroring on, links on the client's worker (link_threads = 0)"}
print(open(sys.argv[3]).read())
print("| config | max tps | vs direct | (c)/(d) | fixed-rate avg ms | p99 ms | avg vs (b) | p99 vs (b) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for t in ["direct", "off", "mirror", "inline", "pgpool", "floor"]:
    if not runs[("max", t)] and not runs[("rate", t)]:
        continue
    tps = med(col("max", t, "tps")) if runs[("max", t)] else float("nan")
    vs = ratio("max", t, "direct", "tps") if runs[("max", t)] else float("nan")
    cd = f"{ratio('max', t if t != 'pgpool' else 'mirror', 'pgpool', 'tps'):.2f}x" if t in ("mirror", "inline", "pgpool") else ""
    if runs[("rate", t)]:
        avg = f"{med(col('rate', t, 'lat_ms')):.2f}"
        p99 = f"{med(col('rate', t, 'p99_ms')):.2f}"
        if t == "off":
            da, dp = "", ""
        else:
            da = f"{(ratio('rate', t, 'off', 'lat_ms') - 1) * 100:+.1f}%"
            dp = f"{(ratio('rate', t, 'off', 'p99_ms') - 1) * 100:+.1f}%"
    else:
        avg = p99 = da = dp = "n/a"
    print(f"| {names[t]} | {tps:.0f} | {vs:.2f} | {cd} | {avg} | {p99} | {da} | {dp} |")
print()
print("CPU per transaction at maximum throughput (us, median; proxy = pgtandem process or pgpool + children):")
print()
print("| config | pgbench | proxy | postgres old | postgres new | total |")
print("|---|---:|---:|---:|---:|---:|")
for t in ["direct", "off", "mirror", "inline", "pgpool"]:
    if not runs[("max", t)]:
        continue
    v = [cpu(t, c) for c in ("cpu_pgbench_us", "cpu_proxy_us", "cpu_old_us", "cpu_new_us")]
    print(f"| {names[t]} | {v[0]:.0f} | {v[1]:.0f} | {v[2]:.0f} | {v[3]:.0f} | {sum(v):.0f} |")
print()
for phase in ("max", "rate"):
    ds = [d for d in lag if d["phase"] == phase and d.get("target", "mirror") == "mirror"]
    if not ds:
        continue
    buckets = defaultdict(float)
    for d in ds:
        for k, v in d["lag_buckets"].items():
            buckets[k] += v
    n = sum(d["lag_count"] for d in ds)
    s = sum(d["lag_sum"] for d in ds)
    order = sorted(buckets, key=lambda k: float("inf") if k == "+Inf" else float(k))
    def q(p):
        for k in order:
            if buckets[k] >= p * n:
                return k
        return "+Inf"
    writes = defaultdict(float)
    for d in ds:
        for k, v in d["writes"].items():
            writes[k] += v
    div = sum(d["divergences"] for d in ds)
    nd = sum(d["nondeterministic"] for d in ds)
    co = sum(d.get("coalesced", 0) for d in ds)
    ow = sum(d.get("order_waits", 0) for d in ds)
    ot = sum(d.get("order_timeouts", 0) for d in ds)
    print(f"Mirror lag ({phase} runs, pgtandem_mirror_lag_seconds, {int(n)} units): mean "
          f"{s / n * 1000 if n else 0:.2f} ms, p50 <= {q(0.5)} s, p99 <= {q(0.99)} s, max <= {q(1.0)} s; writes "
          + ", ".join(f"{k} {int(v)}" for k, v in sorted(writes.items()))
          + f"; divergences {int(div)}; nondeterministic {int(nd)}; coalesced {int(co)}"
          + f"; commit-order waits {int(ow)} (timed out {int(ot)})")
    cum = ", ".join(f"<={k}: {int(buckets[k])}" for k in order)
    print(f"  cumulative buckets: {cum}")
    print()
checks = [r for r in rows if r["check"] != "-"]
bad = [r for r in checks if r["check"] != "same"]
print(f"old vs new after each (c)/(d) run (sums + md5 of accounts/tellers/branches, history count): "
      f"{len(checks) - len(bad)}/{len(checks)} identical"
      + ("" if not bad else "; differ: " + ", ".join(
          f"{r['phase']} {r['target']} r{r['round']} ({'DIFFERENT' if r['check'] == 'DIFFERENT' else r['check'] + ' writes journaled, replay pending'})"
          for r in bad)))
ld = [float(r["load1"]) for r in rows]
print(f"1-min load average at the start of the runs: min {min(ld):.2f}, median {med(ld):.2f}, max {max(ld):.2f}")
EOF
cat "$out/results.md"
pg_log "results in $out (results.md, raw.tsv, mirror-lag.jsonl, checks.txt)"

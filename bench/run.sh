#!/usr/bin/env bash
# End-to-end benchmark: pgbench against PostgreSQL directly, through PgBouncer (session mode) and
# through pgtandem, on this machine, all over TCP loopback, interleaved in one run.
#
#   bench/run.sh [options]
#     --duration S       seconds per pgbench run (default 5)
#     --rounds N         rounds; every cell is run once per round, report is the median (default 3)
#     --clients "1 8"    client counts
#     --workloads "select tpcb"   select = pgbench -S, tpcb = built-in TPC-B-like
#     --modes "simple prepared"   pgbench -M
#     --scale N          pgbench scale (default 10)
#     --workers N        pgtandem workers (default 0: pgtandem's own default, half the cores)
#     --io-uring         also build pgtandem with -DPGTANDEM_IO_URING=ON (build-bench-uring) and
#                        run it side by side with the epoll build
#     --mirror           pgtandem with mirror_writes = true (TPC-B's writes also go to `new`)
#     --baseline BIN     also run this pgtandem binary (e.g. the previous commit's) side by side
#     --uring-relay      also run the same pgtandem binary with io_backend = "uring" (pgtandem-uring)
#     --epoll-relay      also run it with io_backend = "epoll" (pgtandem-epoll; `pgtandem` runs the
#                        default, "auto": the liburing relay where the kernel allows it)
#     --epoll-workers N  pgtandem-epoll's workers (default: --workers), e.g. 2 for the defaults of
#                        before (epoll, one worker per core)
#     --tls              servers with ssl = on; adds direct-tls (pgbench sslmode=require) and
#                        pgtandem-tls (TLS on both legs: [tls] mode = require, targets sslmode =
#                        require); the other targets stay in clear text (sslmode=disable)
#     --no-pgbouncer     leave PgBouncer out
#     --boost            run everything at nice -20, session groups included (root; for a machine
#                        busy with other work: see bench/README.md)
#     --pgtandem BIN     use this binary instead of building build-bench/proxy/pgtandem
#     --no-build         use the binaries already in build-bench[-uring]
#     --out DIR          where results go (default build-bench/bench-results/<timestamp>)
#
# Prints a table (median tps, avg latency, ratio to direct, added latency at c=1, proxy CPU per
# transaction from /proc/PID/stat) and writes results.md + raw.tsv to the output dir.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

duration=5
rounds=3
clients_list="1 8"
workloads="select tpcb"
modes="simple prepared"
scale=10
workers=0
epoll_workers=
io_uring=0
pgbouncer=1
boost=0
mirror=0
build=1
baseline_bin=
uring_relay=0
epoll_relay=0
tls=0
pgtandem_bin=
out=
while (($#)); do
  case $1 in
    --duration) duration=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --clients) clients_list=$2; shift 2 ;;
    --workloads) workloads=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    --scale) scale=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --io-uring) io_uring=1; shift ;;
    --no-pgbouncer) pgbouncer=0; shift ;;
    --boost) boost=1; shift ;;
    --mirror) mirror=1; shift ;;
    --baseline) baseline_bin=$(realpath "$2"); shift 2 ;;
    --uring-relay) uring_relay=1; shift ;;
    --epoll-relay) epoll_relay=1; shift ;;
    --epoll-workers) epoll_workers=$2; shift 2 ;;
    --tls) tls=1; shift ;;
    --pgtandem) pgtandem_bin=$(realpath "$2"); build=0; shift 2 ;;
    --no-build) build=0; shift ;;
    --out) out=$2; shift 2 ;;
    -h | --help) sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

# --- build --------------------------------------------------------------------------------------
build_pgtandem() {
  local dir=$1
  shift
  scripts/build.sh --build-dir "$dir" --type Release -DPGTANDEM_TESTS=OFF "$@" --target pgtandem
}
if ((build)); then
  build_pgtandem build-bench -DPGTANDEM_IO_URING=OFF
  ((io_uring == 0)) || build_pgtandem build-bench-uring -DPGTANDEM_IO_URING=ON
fi
[[ -n $pgtandem_bin ]] || pgtandem_bin=$root/build-bench/proxy/pgtandem
uring_bin=$root/build-bench-uring/proxy/pgtandem
[[ -x $pgtandem_bin ]] || { echo "bench/run.sh: no pgtandem binary at $pgtandem_bin" >&2; exit 1; }
if ((io_uring)) && [[ ! -x $uring_bin ]]; then
  echo "bench/run.sh: no io_uring build at $uring_bin" >&2
  exit 1
fi

[[ -n $out ]] || out=$root/build-bench/bench-results/$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
out=$(realpath "$out")
raw=$out/raw.tsv

# shellcheck source=scripts/lib/pg.sh
source "$root/scripts/lib/pg.sh"
pg_init
if ((boost)); then pg_boost_self; fi

# --- servers ------------------------------------------------------------------------------------
pg_cluster_start old
pg_cluster_start new
for t in old new; do
  pg_psql "$t" -c 'CREATE DATABASE bench'
  pgbench -i -q -s "$scale" -h 127.0.0.1 -p "$(pg_port "$t")" -U postgres bench \
    >"$PG_WORKDIR/init-$t.log" 2>&1 || { cat "$PG_WORKDIR/init-$t.log" >&2; exit 1; }
done
pg_log "pgbench -i -s $scale done on old and new"

# Each target: name -> port, and the pid of the proxy process whose CPU is measured (none: direct).
declare -A port_of=() pid_of=() tls_client=()
if ((tls)); then
  # One self-signed certificate for both servers and pgtandem-tls (sslmode=require: no verification).
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -keyout "$PG_WORKDIR/tls.key" -out "$PG_WORKDIR/tls.crt" -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1 || pg_die "openssl req failed"
  for t in old new; do
    d=$(pg_datadir "$t")
    cp "$PG_WORKDIR/tls.crt" "$PG_WORKDIR/tls.key" "$d/"
    chmod 600 "$d/tls.key"
    [[ $EUID -ne 0 ]] || chown "$PG_USER:" "$d/tls.crt" "$d/tls.key"
    pg_psql "$t" -q -c "ALTER SYSTEM SET ssl_cert_file = 'tls.crt'" \
      -c "ALTER SYSTEM SET ssl_key_file = 'tls.key'" -c "ALTER SYSTEM SET ssl = on" \
      -c "SELECT pg_reload_conf()" >/dev/null
  done
  # Every client not marked in tls_client stays in clear text, as before --tls.
  export PGSSLMODE=disable
  pg_log "ssl = on for old and new"
fi
targets=(direct)
port_of[direct]=$(pg_port old)
if ((pgbouncer)); then
  pg_pgbouncer_start old bench 32
  targets+=(pgbouncer)
  port_of[pgbouncer]=$PG_PGBOUNCER_PORT
  pid_of[pgbouncer]=$PG_LAST_PID
fi
if ((mirror)); then
  export PGTANDEM_TOML_TOP='mirror_writes = true'
  export PGTANDEM_TOML_TAIL=$'[mirror]\njournal_path = "@DIR@/mirror.journal"'
fi
# With --tls the servers offer TLS: the clear-text targets say so (the baseline binary may predate
# sslmode, and never uses TLS).
((tls == 0)) || export PGTANDEM_TOML_TARGET='sslmode = "disable"'
# start_target NAME BIN WORKERS [TOML-TOP-LINE]: one more pgtandem under test, on the same servers.
start_target() {
  PGTANDEM_TOML_TOP="${PGTANDEM_TOML_TOP:-}${4:+$'\n'$4}" pgtandem_start "$2" old new "$3" "$1"
  targets+=("$1")
  port_of[$1]=$PGTANDEM_PORT
  pid_of[$1]=$PGTANDEM_PID
}
start_target pgtandem "$pgtandem_bin" "$workers"
unset PGTANDEM_TOML_TARGET
((uring_relay == 0)) || start_target pgtandem-uring "$pgtandem_bin" "$workers" 'io_backend = "uring"'
((epoll_relay == 0)) ||
  start_target pgtandem-epoll "$pgtandem_bin" "${epoll_workers:-$workers}" 'io_backend = "epoll"'
[[ -z $baseline_bin ]] || start_target pgtandem-base "$baseline_bin" "$workers"
if ((tls)); then
  targets+=(direct-tls)
  port_of[direct-tls]=$(pg_port old)
  tls_client[direct-tls]=1
  tls_top=${PGTANDEM_TOML_TOP:-}
  tls_tail=${PGTANDEM_TOML_TAIL:-}
  PGTANDEM_TOML_TAIL=$(printf '%s\n[tls]\nmode = "require"\ncert_file = "%s"\nkey_file = "%s"\n' \
    "$tls_tail" "$PG_WORKDIR/tls.crt" "$PG_WORKDIR/tls.key")
  PGTANDEM_TOML_TARGET='sslmode = "require"'
  pgtandem_start "$pgtandem_bin" old new "$workers" pgtandem-tls
  PGTANDEM_TOML_TAIL=$tls_tail
  PGTANDEM_TOML_TOP=$tls_top
  unset PGTANDEM_TOML_TARGET
  targets+=(pgtandem-tls)
  port_of[pgtandem-tls]=$PGTANDEM_PORT
  pid_of[pgtandem-tls]=$PGTANDEM_PID
  tls_client[pgtandem-tls]=1
fi
((io_uring == 0)) || start_target pgtandem-uring "$uring_bin" "$workers"

# --- runs ---------------------------------------------------------------------------------------
# bench_one TARGET WORKLOAD MODE CLIENTS SECONDS
#   -> "tps lat_ms txns client_cpu_us server_cpu_us proxy_cpu_us proxy_sys_us" (proxy: - for direct)
# server CPU covers both clusters (old, and new in case pgtandem mirrors to it).
bench_one() {
  local target=$1 workload=$2 mode=$3 c=$4 secs=$5
  local -a args=(-n -M "$mode" -c "$c" -j "$((c < 2 ? c : 2))" -T "$secs"
    -h 127.0.0.1 -p "${port_of[$target]}" -U postgres)
  [[ $workload == select ]] && args+=(-S)
  local pid=${pid_of[$target]:-} proxy0=0 proxy1=0 sys0=0 sys1=0 srv0 srv1 res
  srv0=$(($(pg_cluster_cpu_us old) + $(pg_cluster_cpu_us new)))
  [[ -z $pid ]] || proxy0=$(pg_cpu_us "$pid")
  [[ -z $pid ]] || sys0=$(pg_sys_us "$pid")
  res=$(
    [[ -z ${tls_client[$target]:-} ]] || export PGSSLMODE=require
    pg_pgbench "$PG_WORKDIR/last-pgbench.log" "${args[@]}" bench
  )
  [[ -z $pid ]] || proxy1=$(pg_cpu_us "$pid")
  [[ -z $pid ]] || sys1=$(pg_sys_us "$pid")
  srv1=$(($(pg_cluster_cpu_us old) + $(pg_cluster_cpu_us new)))
  if [[ -n $pid ]]; then
    echo "$res $((srv1 - srv0)) $((proxy1 - proxy0)) $((sys1 - sys0))"
  else
    echo "$res $((srv1 - srv0)) - -"
  fi
}

read -r -a clients_arr <<<"$clients_list"
read -r -a workload_arr <<<"$workloads"
read -r -a mode_arr <<<"$modes"
cells=$((${#clients_arr[@]} * ${#workload_arr[@]} * ${#mode_arr[@]}))
est=$((cells * ${#targets[@]} * rounds * (duration + 1) + 3 * ${#targets[@]}))
pg_log "targets: ${targets[*]}; $cells cells x $rounds rounds x ${duration}s: ~$((est / 60)) min"

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
awk '{ exit !($1 > 1.5) }' /proc/loadavg &&
  pg_log "warning: load average is $load_before: other work on the machine will skew the numbers"

# Warm up every target (connections, caches, pgtandem's code paths) without recording.
for t in "${targets[@]}"; do
  bench_one "$t" select simple 8 2 >/dev/null
done

printf 'round\tworkload\tmode\tclients\ttarget\ttps\tlat_ms\ttxns\tclient_cpu_us\tserver_cpu_us\tproxy_cpu_us\tproxy_sys_us\n' \
  >"$raw"
for ((r = 1; r <= rounds; r++)); do
  # Rotate the order of targets each round so no target always runs first or last in a cell.
  order=()
  for ((i = 0; i < ${#targets[@]}; i++)); do
    order+=("${targets[$(((i + r - 1) % ${#targets[@]}))]}")
  done
  for w in "${workload_arr[@]}"; do
    for m in "${mode_arr[@]}"; do
      for c in "${clients_arr[@]}"; do
        for t in "${order[@]}"; do
          read -r tps lat txns ccpu scpu pcpu psys <<<"$(bench_one "$t" "$w" "$m" "$c" "$duration")"
          printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$w" "$m" "$c" "$t" "$tps" \
            "$lat" "$txns" "$ccpu" "$scpu" "$pcpu" "$psys" >>"$raw"
          pg_log "round $r/$rounds $w -M $m -c $c $t: $tps tps, $lat ms"
        done
      done
    done
  done
done

for t in "${targets[@]}"; do
  if [[ -n ${pid_of[$t]:-} ]] && ! kill -0 "${pid_of[$t]}" 2>/dev/null; then
    pg_die "$t exited during the run"
  fi
done

# --- report -------------------------------------------------------------------------------------
cpu_model=$(sed -nE 's/^model name\s*:\s*//p' /proc/cpuinfo | head -n 1)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo none)
dirty=$([[ -z $(git status --porcelain 2>/dev/null) ]] || echo " (+uncommitted changes)")
{
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- machine: $(nproc) cores ($cpu_model), $(free -g | awk '/^Mem:/ {print $2}') GiB," \
    "kernel $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "- command: \`bench/run.sh --duration $duration --rounds $rounds --clients \"$clients_list\"" \
    "--workloads \"$workloads\" --modes \"$modes\" --scale $scale --workers $workers$( ((io_uring == 0)) ||
      echo ' --io-uring')$( ((boost == 0)) || echo ' --boost')$( ((mirror == 0)) ||
      echo ' --mirror')$( ((tls == 0)) || echo ' --tls')$( ((epoll_relay == 0)) ||
      echo " --epoll-relay${epoll_workers:+ --epoll-workers $epoll_workers}")$([[ -z $baseline_bin ]] ||
      echo " --baseline $baseline_bin")\`"
  echo "- pgtandem: $("$pgtandem_bin" --version 2>&1 | head -n 1)$( ((io_uring == 0)) ||
    echo " and $("$uring_bin" --version 2>&1 | head -n 1)"), commit $commit$dirty," \
    "Release build, workers=$workers"
  echo "- peers: $("$PG_BIN/postgres" --version)" \
    "(fsync=off), $(/usr/sbin/pgbouncer --version | head -n 1) (session mode)," \
    "$(pgbench --version); all over TCP 127.0.0.1"
  echo "- pgbench -n -c C -j min(C,2) -T $duration, scale $scale; median of $rounds interleaved rounds"
  echo "- load average before/after: $load_before / $(cut -d' ' -f1-3 /proc/loadavg)" \
    "$( ((boost)) && echo '(bench processes and their session groups at nice -20)')"
} >"$out/header.md"

python3 - "$raw" "$out/header.md" >"$out/results.md" <<'EOF'
import csv, statistics, sys
from collections import defaultdict

rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
header = open(sys.argv[2]).read()
by_cell = defaultdict(lambda: defaultdict(dict))  # (w, m, c) -> target -> round -> row
targets = []
for r in rows:
    by_cell[(r["workload"], r["mode"], int(r["clients"]))][r["target"]][r["round"]] = r
    if r["target"] not in targets:
        targets.append(r["target"])
targets.sort(key=lambda t: (t != "direct", t != "pgbouncer", t))

med = statistics.median


def num(x):
    return float(x) if x not in ("-", "") else 0.0


def total_cpu(x):  # us per transaction: pgbench + both clusters + the proxy
    cpu = num(x["client_cpu_us"]) + num(x["server_cpu_us"]) + num(x["proxy_cpu_us"])
    return cpu / max(int(x["txns"]), 1)


def fmt(v, f):
    return f % v if v is not None else "-"


print(header)
print("| workload | -M | c | target | tps | avg lat ms | tps vs direct | +lat us (c=1) "
      "| proxy CPU us/txn | of it kernel | total CPU us/txn | CPU-bound vs direct |")
print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for (w, m, c) in sorted(by_cell, key=lambda k: (k[0] != "select", k[1] != "simple", k[2])):
    cell = by_cell[(w, m, c)]
    direct = cell.get("direct", {})
    for t in targets:
        runs = cell.get(t)
        if not runs:
            continue
        tps = med(float(x["tps"]) for x in runs.values())
        lat = med(float(x["lat_ms"]) for x in runs.values())
        # Ratios and deltas are taken within a round (adjacent runs), then the median.
        paired = [rd for rd in runs if rd in direct]
        ratio = med(float(runs[rd]["tps"]) / float(direct[rd]["tps"]) for rd in paired) if paired else None
        added = (med((float(runs[rd]["lat_ms"]) - float(direct[rd]["lat_ms"])) * 1000 for rd in paired)
                 if paired and c == 1 and t != "direct" else None)
        pcpu = [num(x["proxy_cpu_us"]) / max(int(x["txns"]), 1) for x in runs.values()
                if x["proxy_cpu_us"] != "-"]
        psys = [num(x.get("proxy_sys_us", "-")) / max(num(x["proxy_cpu_us"]), 1) for x in runs.values()
                if x["proxy_cpu_us"] != "-" and x.get("proxy_sys_us", "-") not in ("-", "")]
        tcpu = med(total_cpu(x) for x in runs.values())
        cpu_ratio = med(total_cpu(direct[rd]) / total_cpu(runs[rd]) for rd in paired) if paired else None
        print(f"| {w} | {m} | {c} | {t} | {tps:,.0f} | {lat:.3f} | {fmt(ratio, '%.2fx')} | "
              f"{fmt(added, '%+.0f')} | {fmt(med(pcpu) if pcpu else None, '%.1f')} | "
              f"{fmt(med(psys) * 100 if psys else None, '%.0f%%')} | {tcpu:.1f} | "
              f"{fmt(cpu_ratio, '%.2fx')} |")
print()
print("tps and latency: medians over the rounds. tps vs direct and +lat: ratio or difference to the direct"
      " run of the same round, then the median. proxy CPU: the proxy's utime+stime per transaction;"
      " of it kernel: its stime's share (what no change in the proxy's own code removes)."
      " total CPU: pgbench + both PostgreSQL clusters + the proxy, per transaction. CPU-bound vs direct:"
      " direct's total CPU / this target's, the tps ratio to expect when the cores are the limit; at"
      " c=8 it holds steady on a busy machine where tps does not.")
EOF
echo
cat "$out/results.md"
echo
pg_log "results in $out (results.md, raw.tsv)"

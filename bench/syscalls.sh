#!/usr/bin/env bash
# The shape of the syscalls and wake-ups per transaction: for each pgbench cell and each target
# (direct, PgBouncer, one or more pgtandem binaries), the proxy's, the PostgreSQL backends' and
# pgbench's syscalls by kind and context switches, per transaction. Counted in the kernel
# (perf stat tracepoints: no ptrace, the processes run at full speed), over a fixed number of
# transactions, so the counts hardly depend on the machine's load, unlike tps or CPU time.
#
#   bench/syscalls.sh [options]        (root, Debian 12, PostgreSQL 15, pgbouncer, perf)
#     --pgtandem NAME=BIN   a pgtandem binary to measure as target NAME (repeatable; default
#                           pgtandem=build-bench/proxy/pgtandem, as bench/run.sh builds it)
#     --txns N              transactions per cell (all clients together; default 4000)
#     --clients "1 8"       pgbench -c (-j min(c, 2))
#     --workloads "select tpcb"
#     --modes "prepared"    pgbench -M
#     --workers N           pgtandem workers (default 2)
#     --mirror              pgtandem with mirror_writes = true
#     --no-pgbouncer / --no-direct
#     --toml-top 'KEY = V'  extra top-level pgtandem config (e.g. io_backend), every pgtandem target
#     --target-top NAME 'KEY = V'  extra top-level config for target NAME only (repeatable), e.g.
#                           --pgtandem uring=BIN --target-top uring 'io_backend = "uring"'
#     --out DIR             raw.tsv and results.md (default build-bench/syscalls-<time>)
#
# Columns, per transaction: recv (recvfrom + recvmsg), EAGAIN (recv*/read returning EAGAIN: a
# speculative read that found nothing), send (sendto + sendmsg + writev), rd/wr (read/write: files,
# eventfds, pipes), wait (epoll_wait/epoll_pwait/poll/ppoll/select/io_uring_enter), futex, other,
# all (every syscall), cs (context switches: each one a sleep and a wake-up) and, for the proxy, its
# CPU time per transaction (a time, not a count: it moves with the load). Rows: the proxy
# (all its threads), the PostgreSQL server (postmaster and the backends forked during the run; both
# clusters when mirroring) and pgbench.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

txns=4000
clients_list="1 8"
workloads="select tpcb"
modes="prepared"
workers=2
mirror=0
pgbouncer=1
direct=1
toml_top=
out=
declare -a bins=()
declare -A target_top=()
while (($#)); do
  case $1 in
    --pgtandem) bins+=("$2"); shift 2 ;;
    --txns) txns=$2; shift 2 ;;
    --clients) clients_list=$2; shift 2 ;;
    --workloads) workloads=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --mirror) mirror=1; shift ;;
    --no-pgbouncer) pgbouncer=0; shift ;;
    --no-direct) direct=0; shift ;;
    --toml-top) toml_top=$2; shift 2 ;;
    --target-top) target_top[$2]=$3; shift 3 ;;
    --out) out=$2; shift 2 ;;
    -h | --help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/syscalls.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
((${#bins[@]})) || bins=("pgtandem=$root/build-bench/proxy/pgtandem")
command -v perf >/dev/null || { echo "bench/syscalls.sh: perf not found" >&2; exit 1; }
[[ -n $out ]] || out=$root/build-bench/syscalls-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
out=$(realpath "$out")

# Tracepoints: name -> column. Exit events with a filter count failed calls only.
events=(context-switches raw_syscalls:sys_enter
  syscalls:sys_enter_recvfrom syscalls:sys_enter_recvmsg syscalls:sys_enter_read
  syscalls:sys_enter_sendto syscalls:sys_enter_sendmsg syscalls:sys_enter_write
  syscalls:sys_enter_writev
  syscalls:sys_enter_epoll_wait syscalls:sys_enter_epoll_pwait syscalls:sys_enter_poll
  syscalls:sys_enter_ppoll syscalls:sys_enter_pselect6 syscalls:sys_enter_select
  syscalls:sys_enter_io_uring_enter syscalls:sys_enter_futex)
eagain=(syscalls:sys_exit_recvfrom syscalls:sys_exit_recvmsg syscalls:sys_exit_read)
perf_args=()
for e in "${events[@]}"; do perf_args+=(-e "$e"); done
for e in "${eagain[@]}"; do perf_args+=(-e "$e" --filter 'ret == -11'); done

# shellcheck source=scripts/lib/pg.sh
source "$root/scripts/lib/pg.sh"
pg_init

pg_cluster_start old
pg_cluster_start new
for t in old new; do
  # No autovacuum worker forked into the counted server in the middle of a cell.
  pg_psql "$t" -c 'ALTER SYSTEM SET autovacuum = off' -c 'SELECT pg_reload_conf()' >/dev/null
  pg_psql "$t" -c 'CREATE DATABASE bench'
  pgbench -i -q -s 10 -h 127.0.0.1 -p "$(pg_port "$t")" -U postgres bench \
    >"$PG_WORKDIR/init-$t.log" 2>&1 || { cat "$PG_WORKDIR/init-$t.log" >&2; exit 1; }
done

declare -A port_of=() pid_of=()
targets=()
if ((direct)); then targets+=(direct); port_of[direct]=$(pg_port old); fi
if ((pgbouncer)); then
  pg_pgbouncer_start old bench 32
  targets+=(pgbouncer)
  port_of[pgbouncer]=$PG_PGBOUNCER_PORT
  pid_of[pgbouncer]=$PG_LAST_PID
fi
top=$toml_top
((mirror == 0)) || top+=$'\nmirror_writes = true'
export PGTANDEM_TOML_TOP=$top
((mirror == 0)) || export PGTANDEM_TOML_TAIL=$'[mirror]\njournal_path = "@DIR@/mirror.journal"'
for nb in "${bins[@]}"; do
  name=${nb%%=*} bin=${nb#*=}
  [[ -x $bin ]] || pg_die "no pgtandem binary at $bin"
  PGTANDEM_TOML_TOP=$top${target_top[$name]:+$'\n'${target_top[$name]}} \
    pgtandem_start "$bin" old new "$workers" "$name"
  targets+=("$name")
  port_of[$name]=$PGTANDEM_PORT
  pid_of[$name]=$PGTANDEM_PID
done

# The server's processes: each postmaster (its counters are inherited by the backends it forks
# during the cell) and its live children (PgBouncer's pooled backends were forked before).
server_pids() {
  local c pids=()
  for c in old $( ((mirror == 0)) || echo new); do
    mapfile -t -O "${#pids[@]}" pids < <(pg_cluster_pids "$c")
  done
  local IFS=,
  echo "${pids[*]}"
}

# perf stat -x output -> "column=count ..." for one process group.
summarise() {
  awk -F, '
    $1 ~ /^[0-9]+$/ {
      n = $1; e = $3
      if (e == "context-switches") c["cs"] += n
      else if (e == "raw_syscalls:sys_enter") c["all"] += n
      else if (e ~ /sys_exit_/) c["eagain"] += n
      else if (e ~ /recvfrom|recvmsg/) c["recv"] += n
      else if (e ~ /sendto|sendmsg|writev/) c["send"] += n
      else if (e ~ /enter_read$/) c["rd"] += n
      else if (e ~ /enter_write$/) c["wr"] += n
      else if (e ~ /epoll_wait|epoll_pwait|poll|select|io_uring_enter/) c["wait"] += n
      else if (e ~ /futex/) c["futex"] += n
    }
    END {
      c["other"] = c["all"] - c["recv"] - c["send"] - c["rd"] - c["wr"] - c["wait"] - c["futex"]
      printf "recv=%d eagain=%d send=%d rd=%d wr=%d wait=%d futex=%d other=%d all=%d cs=%d\n",
        c["recv"], c["eagain"], c["send"], c["rd"], c["wr"], c["wait"], c["futex"], c["other"],
        c["all"], c["cs"]
    }' "$1"
}

# measure TARGET WORKLOAD MODE CLIENTS: one pgbench run of $txns transactions, counted.
measure() {
  local target=$1 workload=$2 mode=$3 c=$4 dir=$PG_WORKDIR/perf
  mkdir -p "$dir"
  local -a args=(-n -M "$mode" -c "$c" -j "$((c < 2 ? c : 2))" -t "$((txns / c))"
    -h 127.0.0.1 -p "${port_of[$target]}" -U postgres)
  [[ $workload == select ]] && args+=(-S)
  local proxy=${pid_of[$target]:-} pp='' sp cpu0=0 cpu1=0
  rm -f "$dir"/*.txt
  if [[ -n $proxy ]]; then
    perf stat -x, -o "$dir/proxy.txt" "${perf_args[@]}" -p "$proxy" &
    pp=$!
  fi
  perf stat -x, -o "$dir/server.txt" "${perf_args[@]}" -p "$(server_pids)" &
  sp=$!
  sleep 0.3  # perf attaches
  [[ -z $proxy ]] || cpu0=$(pg_cpu_us "$proxy")
  perf stat -x, -o "$dir/client.txt" "${perf_args[@]}" -- pgbench "${args[@]}" bench \
    >"$dir/pgbench.log" 2>&1 || { cat "$dir/pgbench.log" >&2; pg_die "pgbench failed ($target)"; }
  [[ -z $proxy ]] || cpu1=$(pg_cpu_us "$proxy")
  sleep 0.2  # backends exit (their counts are folded into the postmaster's on exit)
  kill -INT "$sp" ${pp:+"$pp"} 2>/dev/null || true
  wait "$sp" ${pp:+"$pp"} 2>/dev/null || true
  local done_txns
  done_txns=$(sed -nE 's/^number of transactions actually processed: ([0-9]+).*/\1/p' "$dir/pgbench.log")
  for who in proxy server client; do
    [[ -f $dir/$who.txt ]] || continue
    local cpu=-
    [[ $who != proxy ]] || cpu=$((cpu1 - cpu0))
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s cpu_us=%s\n' "$workload" "$mode" "$c" "$target" "$who" \
      "$done_txns" "$(summarise "$dir/$who.txt")" "$cpu" >>"$out/raw.tsv"
  done
}

: >"$out/raw.tsv"
for w in $workloads; do
  for m in $modes; do
    for c in $clients_list; do
      for t in "${targets[@]}"; do
        # Warm-up (connections, plans, caches), not counted.
        sflag=()
        [[ $w == select ]] && sflag=(-S)
        pgbench -n -M "$m" -c "$c" -j "$((c < 2 ? c : 2))" -t 50 "${sflag[@]}" \
          -h 127.0.0.1 -p "${port_of[$t]}" -U postgres bench >/dev/null 2>&1 || true
        measure "$t" "$w" "$m" "$c"
        pg_log "$w -M $m -c $c $t counted"
      done
    done
  done
done

{
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), kernel $(uname -r), $(nproc) cores"
  echo "- $txns transactions per cell, pgbench -c C -j min(C,2), scale 10; pgtandem workers=$workers$( ((mirror == 0)) || echo ', mirror_writes = true')${toml_top:+, $toml_top}"
  for nb in "${bins[@]}"; do
    echo "- ${nb%%=*}: ${nb#*=}${target_top[${nb%%=*}]:+ (${target_top[${nb%%=*}]})}"
  done
  echo
  python3 - "$out/raw.tsv" <<'EOF'
import sys
cols = ["recv", "eagain", "send", "rd", "wr", "wait", "futex", "other", "all", "cs"]
print("| workload | -M | c | target | process | " + " | ".join(cols) + " | CPU us |")
print("|---|---|---:|---|---|" + "---:|" * (len(cols) + 1))
for line in open(sys.argv[1]):
    w, m, c, t, who, n, rest = line.rstrip("\n").split("\t")
    n = max(int(n or 0), 1)
    kv = dict(x.split("=") for x in rest.split())
    vals = " | ".join("%.2f" % (int(kv[k]) / n) for k in cols)
    cpu = "-" if kv.get("cpu_us", "-") == "-" else "%.1f" % (int(kv["cpu_us"]) / n)
    print(f"| {w} | {m} | {c} | {t} | {who} | {vals} | {cpu} |")
print()
print("Per transaction. recv: recvfrom+recvmsg; eagain: recv*/read that returned EAGAIN; send:"
      " sendto+sendmsg+writev; rd/wr: read/write; wait: epoll_wait/epoll_pwait/poll/ppoll/select/"
      "io_uring_enter; all: every syscall; cs: context switches; CPU us: the proxy's utime+stime"
      " (/proc/PID/stat, 10 ms ticks: a time, so it moves with the load, unlike the counts). proxy: every thread of the proxy;"
      " server: the postmaster and the backends forked during the cell; client: pgbench.")
EOF
} >"$out/results.md"
cat "$out/results.md"
pg_log "results in $out"

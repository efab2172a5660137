#!/usr/bin/env bash
# Shadow-read benchmark (issue 5): pgbench -S through pgtandem with shadow reads off, at 1% and at
# 100% sampling, against the same two clusters (identical data), interleaved in one run, plus
# PostgreSQL directly. Target: 1% sampling costs at most 3% of throughput against shadow off.
#
#   bench/shadow.sh                      (root, Debian 12, PostgreSQL 15; any cwd)
#
# "total CPU us/txn" adds pgbench's, both clusters' and the proxy's CPU time per transaction; "CPU-bound vs off"
# is off's total / this one's - 1: the throughput change to expect when the cores are the limit. It holds on a busy
# machine where tps does not. "relay threads us/txn" is the CPU of pgtandem's session workers (threads pgt-worker-N)
# alone: the client's path; shadow reads run on the mirror link thread (pgt-link-N) since issue 17 ("-": a
# pgtandem whose threads have no names).
#
# Environment (defaults):
#   SB_DURATION=10   seconds per pgbench run
#   SB_ROUNDS=3      rounds (report: median; the order of configurations rotates every round)
#   SB_CLIENTS=8 SB_THREADS=2 SB_SCALE=10 SB_MODE=simple   pgbench -c / -j / -i -s / -M
#   SB_WORKERS=2     pgtandem workers
#   SB_BUILD=1       build pgtandem in build-sbench first (0: use SB_PGTANDEM as is)
#   SB_PGTANDEM=     pgtandem binary (default build-sbench/proxy/pgtandem)
#   SB_RATES="0.01 1"  the sampling rates to run (besides off); a configuration is named by its
#                    rate as a percentage ("1pct", "100pct")
#   SB_TOML=         TOML appended to every pgtandem's configuration (e.g. $'[mirror]\nlink_nice = 0')
#   SB_BASELINE=     another pgtandem binary, run at every rate too ("1pct-base", ...): before and
#                    after a change in one run
#   SB_BOOST=0       1: everything at nice -20 (see bench/README.md; root)
#   SB_OUT=          results dir (default build-sbench/shadow-results/<timestamp>)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

duration=${SB_DURATION:-10}
rounds=${SB_ROUNDS:-3}
clients=${SB_CLIENTS:-8}
threads=${SB_THREADS:-2}
scale=${SB_SCALE:-10}
mode=${SB_MODE:-simple}
workers=${SB_WORKERS:-2}
build=${SB_BUILD:-1}
boost=${SB_BOOST:-0}
build_dir=$root/build-sbench
pgtandem_bin=${SB_PGTANDEM:-$build_dir/proxy/pgtandem}
out=${SB_OUT:-$build_dir/shadow-results/$(date +%Y%m%d-%H%M%S)}
baseline=${SB_BASELINE:-}
rates=${SB_RATES:-0.01 1}

[[ $EUID -eq 0 ]] || { echo "bench/shadow.sh: run as root (postgres runs as user postgres)" >&2; exit 1; }
command -v pgbench >/dev/null || { echo "bench/shadow.sh: pgbench not found" >&2; exit 1; }

commit=$(git rev-parse --short HEAD 2>/dev/null || echo none)
if ((build)); then
  cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DPGTANDEM_TESTS=OFF \
    -DPGTANDEM_BENCH=OFF >/dev/null
  cmake --build "$build_dir" -j2 --target pgtandem >/dev/null
fi
[[ -x $pgtandem_bin ]] || { echo "bench/shadow.sh: no pgtandem binary at $pgtandem_bin" >&2; exit 1; }
mkdir -p "$out"
out=$(realpath "$out")

# shellcheck source=scripts/lib/pg.sh
source "$root/scripts/lib/pg.sh"
pg_init
((boost == 0)) || pg_boost_self
w=$PG_WORKDIR

pg_cluster_start old
pg_cluster_start new
for c in old new; do
  pg_psql "$c" -c "CREATE DATABASE bench" postgres
  pgbench -i -s "$scale" -q -h 127.0.0.1 -p "$(pg_port "$c")" -U postgres bench >"$w/init-$c.log" 2>&1
done

declare -A port admin pid
start_one() {
  local name=$1 rate=$2 bin=${3:-$pgtandem_bin}
  PGTANDEM_TOML_TAIL=''
  if [[ $rate != 0 ]]; then
    PGTANDEM_TOML_TAIL=$'[shadow]\n'"sample_rate = $rate"$'\n'"statement_timeout_ms = 5000"
  fi
  [[ -z ${SB_TOML:-} ]] || PGTANDEM_TOML_TAIL+=$'\n'"$SB_TOML"
  pgtandem_start "$bin" old new "$workers" "pgtandem-$name"
  port[$name]=$PGTANDEM_PORT admin[$name]=$PGTANDEM_ADMIN_PORT pid[$name]=$PGTANDEM_PID
  ((boost == 0)) || pg_boost_pid "$PGTANDEM_PID"
}
start_one off 0
[[ -z $baseline || -x $baseline ]] || { echo "bench/shadow.sh: no baseline binary at $baseline" >&2; exit 1; }
configs=(direct off)
top=off
for rate in $rates; do
  name=$(awk -v r="$rate" 'BEGIN { printf "%gpct", r * 100 }')
  start_one "$name" "$rate"
  configs+=("$name")
  top=$name
  if [[ -n $baseline ]]; then
    start_one "$name-base" "$rate" "$baseline"
    configs+=("$name-base")
  fi
done

metric() {  # metric ADMIN_PORT NAME LABEL_FILTER -> sum of matching samples
  curl -s "http://127.0.0.1:$1/metrics" | awk -v n="$2" -v f="$3" \
    'index($0, n) == 1 && index($0, f) > 0 { s += $NF } END { printf "%.0f\n", s }'
}

declare -A tps_list cpu_list total_list relay_list
printf 'round\tconfig\ttps\tlatency_ms\ttransactions\tproxy_cpu_us\ttotal_cpu_us\trelay_cpu_us\n' >"$out/raw.tsv"
for ((r = 0; r < rounds; r++)); do
  for ((i = 0; i < ${#configs[@]}; i++)); do
    cfg=${configs[$(((i + r) % ${#configs[@]}))]}
    if [[ $cfg == direct ]]; then
      p=$(pg_port old)
      cpu0=0
    else
      p=${port[$cfg]}
      cpu0=$(pg_cpu_us "${pid[$cfg]}")
      relay0=$(pg_threads_cpu_us "${pid[$cfg]}" pgt-worker-)
    fi
    db0=$(($(pg_cluster_cpu_us old) + $(pg_cluster_cpu_us new)))
    read -r tps lat txns bench_cpu < <(pg_pgbench "$out/pgbench-$cfg-$r.log" -S -M "$mode" \
      -c "$clients" -j "$threads" -T "$duration" -h 127.0.0.1 -p "$p" -U postgres bench)
    cpu=0 relay=0
    if [[ $cfg != direct ]]; then
      cpu=$(($(pg_cpu_us "${pid[$cfg]}") - cpu0))
      relay=$(($(pg_threads_cpu_us "${pid[$cfg]}" pgt-worker-) - relay0))
    fi
    db=$(($(pg_cluster_cpu_us old) + $(pg_cluster_cpu_us new) - db0))
    total=$((cpu + db + bench_cpu))
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$cfg" "$tps" "$lat" "$txns" "$cpu" "$total" "$relay" >>"$out/raw.tsv"
    pg_log "round $r $cfg: $tps tps, $lat ms"
    tps_list[$cfg]+="$tps "
    cpu_list[$cfg]+="$(awk -v c="$cpu" -v t="$txns" 'BEGIN { printf "%.1f", t ? c / t : 0 }') "
    total_list[$cfg]+="$(awk -v c="$total" -v t="$txns" 'BEGIN { printf "%.1f", t ? c / t : 0 }') "
    relay_list[$cfg]+="$(awk -v c="$relay" -v t="$txns" 'BEGIN { printf "%.1f", t ? c / t : 0 }') "
  done
done
sleep 2  # the last shadow reads finish

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
off=$(median <<<"${tps_list[off]}")
{
  echo "# Shadow reads: pgbench -S -M $mode -c $clients -j $threads, scale $scale, ${duration}s x $rounds rounds (median)"
  echo
  echo "commit $commit, $(nproc) cores, pgtandem workers $workers, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "| config | tps (median) | vs shadow off | vs direct | proxy CPU us/txn | relay threads us/txn | total CPU us/txn | CPU-bound vs off | shadow compared | skipped | dropped | mismatches |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
  direct=$(median <<<"${tps_list[direct]}")
  off_total=$(median <<<"${total_list[off]}")
  for cfg in "${configs[@]}"; do
    t=$(median <<<"${tps_list[$cfg]}")
    if [[ $cfg == direct ]]; then
      cpu='-' relay='-' compared='-' skipped='-' dropped='-' mism='-'
    else
      cpu=$(median <<<"${cpu_list[$cfg]}")
      relay=$(median <<<"${relay_list[$cfg]}")
      [[ $relay != 0 && $relay != 0.0 ]] || relay='-'
      a=${admin[$cfg]}
      compared=$(($(metric "$a" pgtandem_shadow_reads_total 'outcome="match"') + $(metric "$a" pgtandem_shadow_reads_total 'outcome="mismatch"')))
      skipped=$(metric "$a" pgtandem_shadow_reads_total 'outcome="skipped"')
      dropped=$(metric "$a" pgtandem_shadow_reads_total 'outcome="dropped"')
      mism=$(metric "$a" pgtandem_shadow_reads_total 'outcome="mismatch"')
    fi
    tot=$(median <<<"${total_list[$cfg]}")
    printf '| %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$cfg" "$t" \
      "$(awk -v a="$t" -v b="$off" 'BEGIN { printf "%+.1f%%", (a / b - 1) * 100 }')" \
      "$(awk -v a="$t" -v b="$direct" 'BEGIN { printf "%.2f", a / b }')" \
      "$cpu" "$relay" "$tot" "$(awk -v a="$tot" -v b="$off_total" 'BEGIN { printf "%+.1f%%", (b / a - 1) * 100 }')" \
      "$compared" "$skipped" "$dropped" "$mism"
  done
  echo
  echo "Drops at the highest rate ($top) by reason: $(curl -s "http://127.0.0.1:${admin[$top]}/metrics" | grep '^pgtandem_shadow_drops_total' | sed -E 's/.*reason="([^"]+)"\} (.*)/\1=\2/' | tr '\n' ' ')"
} | tee "$out/results.md"

#!/usr/bin/env bash
# Catch-up and replay throughput (issue 15): how fast pgtandem applies a journal backlog against
# the TPC-B write rate that produced it, measured in one run.
#
#   bench/catchup.sh                      (root, Debian 12, PostgreSQL 15; any cwd)
#
# Two phases on two throwaway clusters `old` and `new`, each on fresh `pgbench -i -s SCALE` data:
#   catch-up  pgbench TPC-B -M prepared through pgtandem (mirror_writes, catchup = true); `new` is
#             stopped OUTAGE s after the start and started again; the running pgtandem applies its
#             backlog while the load goes on. Rate: entries catch-up applied / seconds from `new`
#             being back to the backlog empty and every session live again (while pgbench runs).
#   replay    the same load and outage with catchup = false; pgbench ends while `new` is down,
#             pgtandem stops, `new` starts, `pgtandem replay` runs alone. Rate: entries applied /
#             replay's wall time.
# The TPC-B write rate is pgbench's tps (every TPC-B transaction is one journal entry while `new`
# is down). After each phase old and new are compared (sums and md5 of accounts/tellers/branches,
# history row count).
#
# Environment (defaults):
#   CB_DURATION=25 CB_OUTAGE_AT=3 CB_OUTAGE=5    pgbench seconds; when `new` stops; for how long
#   CB_REPLAY_DURATION=10                         pgbench seconds of the replay phase (new stops at
#                                                 CB_OUTAGE_AT and stays down until it ends)
#   CB_CLIENTS=4 CB_THREADS=2 CB_SCALE=10         pgbench -c / -j / -i -s
#   CB_WORKERS=2                                  pgtandem workers
#   CB_PHASES="catchup replay"                    which phases run (e.g. CB_PHASES=replay)
#   CB_REPLAY_RUNS=1                              replays of the same journal: before each one after
#                                                 the first, `new` gets back its data directory as
#                                                 it was before the first (a copy) and the
#                                                 applied-state file is removed; compare the runs
#   CB_REPLAY_PERF=0                              1: `perf stat` on the apply backend of the last
#                                                 replay run (context switches, CPU) into the workdir
#   CB_PIN=0                                      1: new on CPU 1, the rest on CPU 0 (new on a core of its own)
#   CB_PGTANDEM=build/proxy/pgtandem              the binary (built by scripts/build.sh)
#   PG_KEEP=1                                     keep the temp dir (logs, journals)
# `new` is stopped with a fast shutdown (see new_stop).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

duration=${CB_DURATION:-25}
outage_at=${CB_OUTAGE_AT:-3}
outage=${CB_OUTAGE:-5}
replay_duration=${CB_REPLAY_DURATION:-10}
clients=${CB_CLIENTS:-4}
threads=${CB_THREADS:-2}
scale=${CB_SCALE:-10}
workers=${CB_WORKERS:-2}
pgtandem_bin=${CB_PGTANDEM:-$root/build/proxy/pgtandem}

[[ $EUID -eq 0 ]] || { echo "bench/catchup.sh: run as root (postgres runs as user postgres)" >&2; exit 1; }
[[ -x $pgtandem_bin ]] || { echo "bench/catchup.sh: no pgtandem binary at $pgtandem_bin" >&2; exit 1; }
command -v pgbench >/dev/null || { echo "bench/catchup.sh: pgbench not found" >&2; exit 1; }

# shellcheck source=scripts/lib/pg.sh
source "$root/scripts/lib/pg.sh"
pg_init
w=$PG_WORKDIR

pg_cluster_start old
pg_cluster_start new
for t in old new; do pg_psql "$t" -c 'CREATE DATABASE bench'; done

# A fast shutdown, not pg_cluster_stop's immediate one: these clusters run with fsync and
# synchronous_commit off, so an immediate stop would lose writes `new` had already acknowledged to
# the live mirror (a different fault: the crash window), and old != new for that reason alone.
new_stop() {
  (cd "$w" && pg_as_user "$PG_BIN/pg_ctl" -D "$(pg_datadir new)" -m fast -w -t 60 stop >/dev/null)
}

new_start() {
  (cd "$w" && pg_as_user "$PG_BIN/pg_ctl" -D "$(pg_datadir new)" -l "$w/new-restart.log" -w -t 60 \
    start >/dev/null)
}

# CB_PIN=1: `new` (its postmaster, so every backend it forks) on CPU 1, everything else (old,
# pgbench, pgtandem) on CPU 0: `new` with a core of its own, as on its own machine in a real
# migration; the load then runs on one core. Unset: all share both cores.
pin=${CB_PIN:-0}
pin_pid_tree() {  # pin_pid_tree PID CPU: the process, its threads and its children
  local pid
  for pid in "$1" $(ps --ppid "$1" -o pid=); do taskset -a -p -c "$2" "$pid" >/dev/null 2>&1 || true; done
}
pin_all() {
  [[ $pin == 1 ]] || return 0
  pin_pid_tree "$(head -1 "$(pg_datadir new)/postmaster.pid")" 1
  pin_pid_tree "$(head -1 "$(pg_datadir old)/postmaster.pid")" 0
  [[ -z ${PGTANDEM_PID:-} ]] || pin_pid_tree "$PGTANDEM_PID" 0
}
on_cpu0() { if [[ $pin == 1 ]]; then taskset -c 0 "$@"; else "$@"; fi; }

reset_data() {
  local t
  for t in old new; do
    pg_psql "$t" -c 'DROP DATABASE IF EXISTS bench WITH (FORCE)' -c 'CREATE DATABASE bench'
    pgbench -i -q -s "$scale" -h 127.0.0.1 -p "$(pg_port "$t")" -U postgres bench \
      >"$w/init-$t.log" 2>&1 || { cat "$w/init-$t.log" >&2; pg_die "pgbench -i failed"; }
  done
}

state_of() {
  pg_psql "$1" -At bench -c "
    SELECT (SELECT sum(abalance) FROM pgbench_accounts), (SELECT md5(string_agg(t::text, ',' ORDER BY aid)) FROM pgbench_accounts t),
           (SELECT sum(tbalance) FROM pgbench_tellers), (SELECT sum(bbalance) FROM pgbench_branches),
           (SELECT count(*) FROM pgbench_history)"
}

# metric NAME [LABEL-FILTER]: the sum of the series of NAME (optionally only lines containing the
# filter) from pgtandem's /metrics.
metric() {
  curl -fsS "http://127.0.0.1:$PGTANDEM_ADMIN_PORT/metrics" |
    awk -v n="$1" -v f="${2:-}" '$1 ~ "^"n"({|$)" && index($1, f) { s += $2 } END { printf "%.0f\n", s }'
}

now() { date +%s.%N; }

# cpu_ticks CLUSTER: CPU ticks (user + system, USER_HZ) used so far by the cluster's backends and
# other children of its postmaster: those alive now, and those that exited and were reaped (the
# postmaster's cutime + cstime), so a backend that ends between two samples is counted whole.
cpu_ticks() {
  local pm pid total=0 f
  pm=$(head -1 "$(pg_datadir "$1")/postmaster.pid")
  f=$(cat "/proc/$pm/stat") && f=${f##*) } && total=$(awk '{ print $14 + $15 }' <<<"$f")
  for pid in $(ps --ppid "$pm" -o pid=); do
    f=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    f=${f##*) }
    total=$((total + $(awk '{ print $12 + $13 }' <<<"$f")))
  done
  echo "$total"
}
# proc_ticks PID: the same for one process.
proc_ticks() { local f; f=$(cat "/proc/$1/stat"); f=${f##*) }; awk '{ print $12 + $13 }' <<<"$f"; }
hz=$(getconf CLK_TCK)
# share TICKS SECONDS: CPU used over SECONDS, as a percentage of one core.
share() { printf '%.0f%%' "$(echo "100 * $1 / $hz / $2" | bc -l)"; }

phases=${CB_PHASES:-catchup replay}
replay_runs=${CB_REPLAY_RUNS:-1}
# children_cpu: user + system seconds of this shell's waited-for children so far (bash `times`).
# (`times` in a pipeline or $(...) would run in a subshell, which has no children of its own.)
# Sets CHILDREN_CPU; call it directly, not in $(...).
children_cpu() {
  times >"$w/times.txt"
  CHILDREN_CPU=$(tail -1 "$w/times.txt" | awk '{ split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%.3f\n", u[1] * 60 + u[2] + s[1] * 60 + s[2] }')
}

catchup_report='  catch-up phase: not run'
if [[ " $phases " == *" catchup "* ]]; then
# --- phase 1: catch-up ------------------------------------------------------------------------------
reset_data
export PGTANDEM_TOML_TOP='mirror_writes = true'
export PGTANDEM_TOML_TAIL=$'[mirror]\njournal_path = "@DIR@/mirror.journal"\nreconnect_interval_ms = 200\ncatchup = true'
pgtandem_start "$pgtandem_bin" old new "$workers" pgtandem-catchup
pin_all
unset PGTANDEM_TOML_TOP PGTANDEM_TOML_TAIL
pg_log "phase catch-up: pgbench -c $clients -T $duration -M prepared; new down at ${outage_at}s for ${outage}s"
on_cpu0 pgbench -n -c "$clients" -j "$threads" -T "$duration" -M prepared -h 127.0.0.1 -p "$PGTANDEM_PORT" \
  -U postgres bench >"$w/pgbench-catchup.log" 2>&1 &
bench_pid=$!
sleep "$outage_at"
new_stop
sleep "$outage"
journaled=$(metric pgtandem_mirror_writes_total 'outcome="journaled"')
new_start; pin_all
t_back=$(now)
new_ticks0=$(cpu_ticks new); px_ticks0=$(proc_ticks "$PGTANDEM_PID")
load_during=''
t_done=''
t_load_end=''
peak=0
while kill -0 "$bench_pid" 2>/dev/null || [[ -z $t_done ]]; do
  if [[ -z $t_load_end ]] && ! kill -0 "$bench_pid" 2>/dev/null; then
    # The load just ended: what catch-up applied under it, and the CPU it had meanwhile.
    t_load_end=$(now)
    applied_load=$(metric pgtandem_mirror_catchup_applied_total)
    new_ticks_load=$(cpu_ticks new); px_ticks_load=$(proc_ticks "$PGTANDEM_PID")
    load_under=$(cut -d' ' -f1 /proc/loadavg)
  fi
  entries=$(metric pgtandem_mirror_backlog_entries)
  live=$(metric pgtandem_mirror_catchup_state 'state="live"')
  returns=$(metric pgtandem_mirror_catchup_returns_to_live_total)
  rate=$(metric pgtandem_mirror_catchup_rate)
  ((rate > peak)) && peak=$rate
  if [[ -z $t_done && $entries == 0 && $live == 1 && $returns -ge 1 ]]; then
    t_done=$(now)
    new_ticks1=$(cpu_ticks new); px_ticks1=$(proc_ticks "$PGTANDEM_PID")
    load_during=$(cut -d' ' -f1 /proc/loadavg)
    applied=$(metric pgtandem_mirror_catchup_applied_total)
    during_load=$(kill -0 "$bench_pid" 2>/dev/null && echo yes || echo no)
  fi
  if [[ -z $t_done ]] && (($(date +%s) - ${t_back%.*} > 600)); then pg_die "catch-up did not finish in 600 s"; fi
  sleep 0.1
done
wait "$bench_pid" || { cat "$w/pgbench-catchup.log" >&2; pg_die "pgbench failed"; }
tps=$(awk '/^tps = / { print int($3) }' "$w/pgbench-catchup.log")
failed=$(awk '/number of failed transactions/ { print $5 }' "$w/pgbench-catchup.log")
catchup_secs=$(echo "$t_done - $t_back" | bc -l)
catchup_rate=$(echo "$applied / $catchup_secs" | bc -l)
if [[ $during_load == no ]]; then
  under_secs=$(echo "$t_load_end - $t_back" | bc -l)
  after_secs=$(echo "$t_done - $t_load_end" | bc -l)
  under_rate=$(echo "$applied_load / $under_secs" | bc -l)
  after_rate=$(echo "($applied - $applied_load) / $after_secs" | bc -l)
  split="under load: $applied_load entries in $(printf %.1f "$under_secs") s, $(printf %.0f "$under_rate")/s ($(printf %.1f "$(echo "$under_rate / $tps" | bc -l)")x), new's backends $(share $((new_ticks_load - new_ticks0)) "$under_secs") of a core, pgtandem $(share $((px_ticks_load - px_ticks0)) "$under_secs"), load average $load_under
    after the load: $((applied - applied_load)) entries in $(printf %.1f "$after_secs") s, $(printf %.0f "$after_rate")/s ($(printf %.1f "$(echo "$after_rate / $tps" | bc -l)")x), new's backends $(share $((new_ticks1 - new_ticks_load)) "$after_secs") of a core"
else
  split="(drained under load: no after-load part)"
fi
sleep 2
s_old=$(state_of old)
s_new=$(state_of new)
same=$([[ $s_old == "$s_new" ]] && echo yes || echo "NO: old=$s_old new=$s_new")
kill -TERM "$PGTANDEM_PID"
wait "$PGTANDEM_PID" 2>/dev/null || true
catchup_report="  catch-up phase: pgbench ${duration}s at $tps tps (failed: ${failed:-0}); new down ${outage}s; journaled $journaled
    catch-up applied $applied entries in $(printf %.1f "$catchup_secs") s from new being back: $(printf %.0f "$catchup_rate") entries/s ($(printf %.1f "$(echo "$catchup_rate / $tps" | bc -l)")x the TPC-B rate), peak 3 s rate $peak/s
    drained while pgbench was still running: ${during_load}; old == new: $same
    $split
    CPU while catching up (% of one core; 2 cores): new's backends $(share $((new_ticks1 - new_ticks0)) "$catchup_secs"), pgtandem $(share $((px_ticks1 - px_ticks0)) "$catchup_secs"); load average $load_during"
fi

replay_report='  replay phase: not run'
if [[ " $phases " == *" replay "* ]]; then
# --- phase 2: replay --------------------------------------------------------------------------------
reset_data
export PGTANDEM_TOML_TOP='mirror_writes = true'
export PGTANDEM_TOML_TAIL=$'[mirror]\njournal_path = "@DIR@/mirror.journal"\nreconnect_interval_ms = 200\ncatchup = false'
pgtandem_start "$pgtandem_bin" old new "$workers" pgtandem-replay
pin_all
unset PGTANDEM_TOML_TOP PGTANDEM_TOML_TAIL
pg_log "phase replay: pgbench -c $clients -T $replay_duration -M prepared; new down at ${outage_at}s until the end"
on_cpu0 pgbench -n -c "$clients" -j "$threads" -T "$replay_duration" -M prepared -h 127.0.0.1 \
  -p "$PGTANDEM_PORT" -U postgres bench >"$w/pgbench-replay.log" 2>&1 &
bench_pid=$!
sleep "$outage_at"
new_stop
wait "$bench_pid" || { cat "$w/pgbench-replay.log" >&2; pg_die "pgbench failed"; }
replay_tps=$(awk '/^tps = / { print int($3) }' "$w/pgbench-replay.log")
kill -TERM "$PGTANDEM_PID"
wait "$PGTANDEM_PID" 2>/dev/null || true
# `new` as the journal left it, for the runs after the first.
snapshot=$w/new-before-replay
if ((replay_runs > 1)); then cp -a "$(pg_datadir new)" "$snapshot"; fi
journal=$w/pgtandem-replay/mirror.journal
replay_report="  replay phase: pgbench ${replay_duration}s at $replay_tps tps; journal $(wc -l <"$journal") entries"
for ((run = 1; run <= replay_runs; run++)); do
  if ((run > 1)); then
    new_stop
    rm -rf "$(pg_datadir new)"
    cp -a "$snapshot" "$(pg_datadir new)"
    rm -f "$journal.applied"
  fi
  new_start; pin_all
  t0=$(now)
  rnew0=$(cpu_ticks new)
  children_cpu
  cpu0=$CHILDREN_CPU
  on_cpu0 "$pgtandem_bin" replay --config "$w/pgtandem-replay/pgtandem.toml" --journal "$journal" \
    >"$w/replay-$run.log" 2>&1 &
  replay_pid=$!
  if [[ ${CB_REPLAY_PERF:-0} == 1 && $run == "$replay_runs" ]]; then
    # The apply backend: the child of new's postmaster with pgtandem-replay's application_name.
    bpid=''
    for _ in $(seq 100); do
      bpid=$(pg_psql new -At -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgtandem-replay'" 2>/dev/null || true)
      [[ -n $bpid ]] && break
      sleep 0.02
    done
    [[ -n $bpid ]] && perf stat -e task-clock,context-switches,cpu-migrations -p "$bpid" \
      -o "$w/replay-backend-perf.txt" 2>/dev/null &
  fi
  wait "$replay_pid" || true
  t1=$(now)
  children_cpu
  cpu1=$CHILDREN_CPU
  sleep 0.3  # the backend exits and is reaped
  rnew1=$(cpu_ticks new)
  rload=$(cut -d' ' -f1 /proc/loadavg)
  replayed=$(awk '/^  applied:/ { print $2 }' "$w/replay-$run.log")
  replay_secs=$(echo "$t1 - $t0" | bc -l)
  replay_rate=$(echo "$replayed / $replay_secs" | bc -l)
  new_secs=$(echo "$((rnew1 - rnew0)) / $hz" | bc -l)
  px_secs=$(echo "$cpu1 - $cpu0" | bc -l)
  r_old=$(state_of old)
  r_new=$(state_of new)
  rsame=$([[ $r_old == "$r_new" ]] && echo yes || echo "NO: old=$r_old new=$r_new")
  replay_report+="
    run $run: replay applied $replayed entries in $(printf %.2f "$replay_secs") s: $(printf %.0f "$replay_rate") entries/s ($(printf %.2f "$(echo "$replay_rate / $replay_tps" | bc -l)")x the TPC-B rate); old == new: $rsame
      CPU: new's backends $(share $((rnew1 - rnew0)) "$replay_secs") of one core, $(printf %.0f "$(echo "1000000 * $new_secs / $replayed" | bc -l)") us per entry; pgtandem replay $(printf %.2f "$px_secs") s, $(printf %.0f "$(echo "1000000 * $px_secs / $replayed" | bc -l)") us per entry; load average $rload"
done
wait  # perf stat, if it ran
[[ -f $w/replay-backend-perf.txt ]] && replay_report+="
    perf stat of the last run's apply backend: $(grep -E 'task-clock|context-switches|seconds time elapsed' "$w/replay-backend-perf.txt" | awk '{ printf "%s %s; ", $1, $2 }')"
fi

commit=$(git rev-parse --short HEAD 2>/dev/null || echo none)
cat <<EOF

bench/catchup.sh at $commit: TPC-B -M prepared, -c $clients -j $threads, scale $scale, $workers workers
$catchup_report
$replay_report
EOF

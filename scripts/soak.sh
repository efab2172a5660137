#!/usr/bin/env bash
# A soak under faults: pgtandem mirrors a mixed load from `old` to `new` for N minutes while
# everything that can go wrong around it does, all at once; then the mirror catches up, verify
# compares old and new, and a one-page report says whether it held.
#
#   scripts/soak.sh [--minutes N] [--report FILE] [--keep] [--logs DIR] [--pgtandem BIN]
#                   [--no-build] [--scale N]
#
# Load, all through pgtandem (mirror_writes = true, 10% shadow reads), each a long-lived session
# restarted when it ends:
#   tpcb-simple, tpcb-prepared   TPC-B (client-keyed history), pgbench -M simple / -M prepared
#   select                       pgbench select-only, -M prepared
#   copy                         one psql session sending a 100-row COPY FROM STDIN every second
#   listen, notify               a psql LISTEN session; pgbench sending NOTIFY (pg_notify)
#   victims                      2 pgbench processes whose transactions sleep inside: killed in bursts
# Faults, at the same time (intervals scale with --minutes; the 30-minute values in brackets):
#   reload     every 5 s, alternating a valid config (a harmless key changed) and an invalid one
#              (a syntax error or an out-of-range value): the invalid one must be refused and the
#              running config kept (/status config hash)
#   restart    `new` restarted (pg_ctl -m fast) every max(40, min(120, N*60/3)) s [120 s]
#   freeze     `new` (postmaster and backends) SIGSTOPped for 10 s, every 2 restart intervals
#   network    `new` runs in a network namespace behind a veth pair: windows of delay (100 ms) and
#              loss (2%) on that link (tc netem, or a substitute where the kernel has no netem:
#              scripts/lib/netns.sh), half of every max(30, min(180, N*60/4)) s [180 s]
#   kill burst the victims (and every other time the COPY client) SIGKILLed, mid-transaction,
#              every max(15, min(60, N*60/8)) s [60 s]
#   pgtandem   one SIGKILL of pgtandem itself at 55% of the run, then a restart
# pgtandem's RSS and open file descriptors are sampled from /proc every 2 s (5 s past 5 minutes).
# At the end: the load stops, the mirror catches up (automatic catch-up when this pgtandem has it,
# else `pgtandem replay` of the journal), then `pgtandem verify` (and `pgtandem repair` and verify
# again when the pgtandem SIGKILL left a crash-window difference).
#
# It holds (exit 0) when client errors come only from the kill bursts and the pgtandem restart
# (counted per cause), RSS and fds are flat after warm-up (the last third's median at most 10% above
# the first third's: a leak check; a drop is reported, not failed, since sessions come and go and
# pgtandem restarts once), the invalid reloads were all refused, and old == new at the end.
#
# --minutes N  how long the load and faults run (default 30; CI runs 2)
# --report     the one-page markdown report (default: LOGS/soak-report.md)
# --logs       logs, samples, scrapes, verify reports (default: build/soak)
# --keep       keep the servers' directory (PG_KEEP=1) and print where it is
# --scale N    pgbench scale (default 1 up to 5 minutes, else 5)
# Needs root for the network namespace; without it (or without iproute2) the network faults are
# skipped and the report says why. Needs the build (scripts/build.sh --target pgtandem).
# shellcheck disable=SC2317  # functions run indirectly (pg_run_loop, traps)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

minutes=30
report=''
logs=$root/build/soak
bin=$root/build/proxy/pgtandem
build=1
keep=0
scale=''
while (($#)); do
  case $1 in
    --minutes) minutes=$2; shift 2 ;;
    --report) report=$2; shift 2 ;;
    --logs) logs=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --pgtandem) bin=$(realpath "$2"); build=0; shift 2 ;;
    --no-build) build=0; shift ;;
    --scale) scale=$2; shift 2 ;;
    -h | --help) sed -n '2,44p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "soak.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ $minutes =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "soak.sh: --minutes needs a number" >&2; exit 2; }
duration=$(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 }')
((duration >= 60)) || { echo "soak.sh: --minutes must be at least 1" >&2; exit 2; }
clamp() { local v=$1 lo=$2 hi=$3; ((v < lo)) && v=$lo; ((v > hi)) && v=$hi; echo "$v"; }
warmup=$(clamp $((duration / 8)) 15 120)
restart_every=$(clamp $((duration / 3)) 40 120)
freeze_every=$((2 * restart_every)) freeze_first=$((3 * restart_every / 2)) freeze_secs=10
net_period=$(clamp $((duration / 4)) 30 180)
burst_every=$(clamp $((duration / 8)) 15 60)
pgtandem_kill_at=$((duration * 55 / 100))
reload_every=5
sample_every=2
((duration > 300)) && sample_every=5
((duration > 300)) && scale=${scale:-5}
scale=${scale:-1}
net_delay_ms=100 net_loss_pct=2
# TPC-B rate per workload (tps): lower in short runs, so that CI's replay of the journal stays short.
tpcb_rate=10
((duration <= 300)) && tpcb_rate=8

if ((build)); then
  scripts/build.sh --build-dir build --target pgtandem
fi
[[ -x $bin ]] || { echo "soak.sh: $bin not built (run without --no-build)" >&2; exit 1; }

mkdir -p "$logs"
logs=$(realpath "$logs")
rm -rf "${logs:?}"/{load,metrics,*.tsv,*.log,*.json,*.sql,*.md,stop,pgtandem.pid}
mkdir -p "$logs/load" "$logs/metrics"
report=$(realpath -m "${report:-$logs/soak-report.md}")
stopfile=$logs/load/stop
: >"$logs/events.tsv"
((keep)) && export PG_KEEP=1

# shellcheck source=scripts/lib/pg.sh
source "$root/scripts/lib/pg.sh"
# shellcheck source=scripts/lib/load.sh
source "$root/scripts/lib/load.sh"
# shellcheck source=scripts/lib/netns.sh
source "$root/scripts/lib/netns.sh"
pg_init

T0=$EPOCHREALTIME
# event KIND DETAIL: one line in events.tsv (the report's timeline and the error attribution).
event() {
  printf '%s\t%s\t%s\n' "$EPOCHREALTIME" "$1" "$2" >>"$logs/events.tsv"
  pg_log "$1: $2"
}
FAILED=()
fail() {
  FAILED+=("$*")
  pg_log "CHECK FAILED: $*"
}

# ------------------------------------------------------------------------------------ servers
net_note=''
if netns_create; then
  net_note=$NETNS_IMPAIR_HOW
  pg_cluster_start old
  pg_cluster_start new "" "$NETNS_ADDR" "$NETNS_NAME"
else
  net_note="network faults skipped: $NETNS_WHY"
  pg_log "$net_note"
  pg_cluster_start old
  pg_cluster_start new
fi
pg_psql old -c 'CREATE DATABASE bench'
pg_psql new -c 'CREATE DATABASE bench'
pgbench -i -q -s "$scale" -h 127.0.0.1 -p "$(pg_port old)" -U postgres bench \
  >"$logs/init-old.log" 2>&1 || { cat "$logs/init-old.log" >&2; pg_die "pgbench -i failed"; }
pg_psql old -d bench >/dev/null <<'EOF'
-- Every table has a key (verify and repair compare by key); every write is deterministic and
-- commutes with the others (additive updates, client-chosen keys), so that the journal replayed
-- after the live mirror's later writes still gives old's state.
ALTER TABLE pgbench_history ADD COLUMN hid bigint PRIMARY KEY;
CREATE TABLE soak_copy (id bigint PRIMARY KEY, batch bigint NOT NULL, payload text NOT NULL);
CREATE TABLE soak_victim (id int PRIMARY KEY, n bigint NOT NULL DEFAULT 0, touched bigint NOT NULL DEFAULT 0);
INSERT INTO soak_victim (id) SELECT generate_series(1, 1000);
VACUUM ANALYZE;
EOF
# new starts as an exact copy (the soak is about the mirror, not the backfill).
pg_dump -h 127.0.0.1 -p "$(pg_port old)" -U postgres bench >"$logs/dump.sql"
pg_psql new -d bench -f "$logs/dump.sql" >"$logs/restore.log" 2>&1 ||
  { tail -n 20 "$logs/restore.log" >&2; pg_die "restoring old's dump on new failed"; }
rm -f "$logs/dump.sql"

# ------------------------------------------------------------------------------------ pgtandem
dir=$PG_WORKDIR/pgtandem
mkdir -p "$dir"
cfg=$dir/pgtandem.toml
journal=$dir/mirror.journal
PGTANDEM_PORT=$(pg_free_port)
PGTANDEM_ADMIN_PORT=$(pg_free_port)
while [[ $PGTANDEM_ADMIN_PORT == "$PGTANDEM_PORT" ]]; do PGTANDEM_ADMIN_PORT=$(pg_free_port); done
# write_config valid|syntax|range [RECHECK_MS]: the valid file, or one of two invalid ones.
write_config() {
  local kind=$1 recheck=${2:-200} rate=0.1
  [[ $kind == range ]] && rate=1.5
  {
    echo "# pgtandem soak config ($kind), written by scripts/soak.sh"
    echo 'primary = "old"'
    echo 'mirror_writes = true'
    echo 'workers = 2'
    echo "state_dir = \"$dir/state\""  # journal, crash-window marker: the run's own, never /var/lib
    [[ $kind == syntax ]] && echo 'this line = is not [valid TOML'
    cat <<EOF

[listen]
addresses = ["127.0.0.1:$PGTANDEM_PORT"]

[targets.old]
host = "$(pg_host old)"
port = $(pg_port old)

[targets.new]
host = "$(pg_host new)"
port = $(pg_port new)

[admin]
listen = "127.0.0.1:$PGTANDEM_ADMIN_PORT"
token = "soak"

[mirror]
journal_path = "$journal"

[shadow]
sample_rate = $rate
recheck_delay_ms = $recheck
mismatch_log = "$logs/shadow-mismatches.jsonl"
EOF
  } >"$cfg.tmp"
  mv "$cfg.tmp" "$cfg"
}
write_config valid
"$bin" --check-config "$cfg" >"$logs/check-config.log" 2>&1 ||
  { cat "$logs/check-config.log" >&2; pg_die "$bin rejected $cfg"; }
PGTANDEM_RUN=0
run_pgtandem() {
  PGTANDEM_RUN=$((PGTANDEM_RUN + 1))
  PGTANDEM_LOG=$logs/pgtandem-$PGTANDEM_RUN.log
  pg_spawn_bg "$PGTANDEM_LOG" "$bin" --config "$cfg"
  PGTANDEM_PID=$PG_LAST_PID
  echo "$PGTANDEM_PID" >"$logs/pgtandem.pid"
  if ! pg_wait_tcp "$PGTANDEM_PORT" 30 "$PGTANDEM_PID" ||
    ! pg_wait_tcp "$PGTANDEM_ADMIN_PORT" 10 "$PGTANDEM_PID"; then
    tail -n 30 "$PGTANDEM_LOG" >&2
    pg_die "pgtandem did not start ($bin)"
  fi
}
scrape() {
  curl -fsS --max-time 5 "http://127.0.0.1:$PGTANDEM_ADMIN_PORT/metrics" >"$logs/metrics/$1.prom" 2>/dev/null
}
status_json() { curl -fsS --max-time 5 "http://127.0.0.1:$PGTANDEM_ADMIN_PORT/status" 2>/dev/null; }
config_hash() { status_json | grep -o '"hash":"[^"]*"' | head -n 1 | cut -d'"' -f4; }
run_pgtandem
pg_log "pgtandem on 127.0.0.1:$PGTANDEM_PORT (admin $PGTANDEM_ADMIN_PORT) -> old $(pg_host old):$(pg_port old), new $(pg_host new):$(pg_port new)"

# ------------------------------------------------------------------------------------ sampler
# Every few seconds: pgtandem's RSS (kB) and open fds from /proc, and a few of its metrics.
sampler() {
  local pid rss fds m=$logs/metrics/sample.prom
  trap 'exit 0' TERM
  while [[ ! -e $stopfile ]]; do
    pid=$(<"$logs/pgtandem.pid")
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
    fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    if [[ -n $rss ]]; then
      if curl -fsS --max-time 2 "http://127.0.0.1:$PGTANDEM_ADMIN_PORT/metrics" >"$m" 2>/dev/null; then
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$EPOCHREALTIME" "$pid" "$rss" "$fds" \
          "$(pg_msum "$m" pgtandem_client_connections)" "$(pg_msum "$m" pgtandem_mirror_queue_bytes)" \
          "$(pg_msum "$m" pgtandem_mirror_journal_bytes)" \
          "$(pg_msum "$m" pgtandem_mirror_writes_total outcome=applied)" \
          "$(pg_msum "$m" pgtandem_mirror_writes_total outcome=journaled)" >>"$logs/samples.tsv"
      else
        printf '%s\t%s\t%s\t%s\t\t\t\t\t\n' "$EPOCHREALTIME" "$pid" "$rss" "$fds" >>"$logs/samples.tsv"
      fi
    fi
    sleep "$sample_every"
  done
}
printf 'epoch\tpid\trss_kb\tfds\tclients\tqueue_bytes\tjournal_bytes\tapplied\tjournaled\n' \
  >"$logs/samples.header"

# ------------------------------------------------------------------------------------ load
P=(-h 127.0.0.1 -p "$PGTANDEM_PORT" -U postgres)
pg_write_tpcb_script "$logs/tpcb.sql"
cat >"$logs/victim.sql" <<'EOF'
\set id random(1, 1000)
\set d random(-100, 100)
BEGIN;
UPDATE soak_victim SET n = n + :d WHERE id = :id;
SELECT pg_sleep(0.1);
UPDATE soak_victim SET touched = touched + 1 WHERE id = :id;
END;
EOF
cat >"$logs/notify.sql" <<'EOF'
\set k random(1, 1000000000)
SELECT pg_notify('soak', :k::text);
EOF
start_ts=$EPOCHSECONDS
copy_client() {
  exec psql -X -q -v ON_ERROR_STOP=1 "${P[@]}" -d bench -f <(
    exec 2>/dev/null
    local b i base
    while :; do
      b=${EPOCHREALTIME/./} # microseconds: unique per batch, also across restarts of the client
      base=$((b * 1000))
      echo 'COPY soak_copy (id, batch, payload) FROM STDIN;'
      for ((i = 0; i < 100; i++)); do printf '%s\t%s\tpayload %s of batch %s\n' $((base + i)) "$b" "$i" "$b"; done
      echo '\.'
      sleep 1
    done
  )
}
listen_client() {
  exec psql -X -At -v ON_ERROR_STOP=1 "${P[@]}" -d bench -f <(
    exec 2>/dev/null
    echo 'LISTEN soak;'
    while :; do
      echo 'SELECT 1;'
      sleep 0.5
    done
  )
}
PB=(pgbench -n -T 86400 -P 10 "${P[@]}")
LOAD_PIDS=()
loop() {
  local name=$1
  shift
  pg_run_loop "$logs/load/$name" "$stopfile" "$@" &
  LOAD_PIDS+=($!)
  PG_BG_PIDS+=($!)
}
load_start() {
  loop tpcb-simple "${PB[@]}" -M simple -c 2 -j 1 -R "$tpcb_rate" -D "scale=$scale" -D "start=$start_ts" \
    -f "$logs/tpcb.sql" bench
  loop tpcb-prepared "${PB[@]}" -M prepared -c 2 -j 1 -R "$tpcb_rate" -D "scale=$scale" -D "start=$start_ts" \
    -f "$logs/tpcb.sql" bench
  loop select "${PB[@]}" -M prepared -c 2 -j 1 -R 60 -b select-only bench
  loop copy copy_client
  loop listen listen_client
  loop notify "${PB[@]}" -M simple -c 1 -j 1 -R 5 -f "$logs/notify.sql" bench
  loop victims-1 "${PB[@]}" -M simple -c 2 -j 1 -f "$logs/victim.sql" bench
  loop victims-2 "${PB[@]}" -M prepared -c 2 -j 1 -f "$logs/victim.sql" bench
  sampler &
  LOAD_PIDS+=($!)
  PG_BG_PIDS+=($!)
}
load_stop() {
  touch "$stopfile"
  local pid
  for pid in "${LOAD_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${LOAD_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  LOAD_PIDS=()
}

# ------------------------------------------------------------------------------------ faults
RELOAD_SEQ=0 RELOAD_OK=0 RELOAD_REFUSED=0 RELOAD_BAD=0 CFG_HASH=''
# The valid file goes in by `pgtandem reload` (POST /reload); an invalid one by `pgtandem reload`
# (which checks the file first and refuses it itself) and by SIGHUP, so that pgtandem itself
# rejects it too (its file watch also sees every change). Either way its config hash must not move.
fault_reload() {
  RELOAD_SEQ=$((RELOAD_SEQ + 1))
  local rc=0 kind hash t=$EPOCHREALTIME
  if ((RELOAD_SEQ % 2)); then
    write_config valid $((200 + 100 * (RELOAD_SEQ / 2 % 2)))
    timeout 20 "$bin" reload --config "$cfg" >>"$logs/reload.log" 2>&1 || rc=$?
    if ((rc == 0)); then
      RELOAD_OK=$((RELOAD_OK + 1))
      CFG_HASH=$(config_hash || true)
    else
      RELOAD_BAD=$((RELOAD_BAD + 1))
      event reload-bad "a valid config was not applied (reload exit $rc)"
    fi
  else
    kind=syntax
    ((RELOAD_SEQ % 4 == 0)) && kind=range
    write_config "$kind"
    timeout 20 "$bin" reload --config "$cfg" >>"$logs/reload.log" 2>&1 || rc=$?
    kill -HUP "$PGTANDEM_PID" 2>/dev/null || true
    sleep 0.2
    hash=$(config_hash || true)
    if ((rc == 1)) && [[ -z $CFG_HASH || -z $hash || $hash == "$CFG_HASH" ]]; then
      RELOAD_REFUSED=$((RELOAD_REFUSED + 1))
    else
      RELOAD_BAD=$((RELOAD_BAD + 1))
      event reload-bad "an invalid config ($kind): reload exit $rc, config hash $CFG_HASH -> $hash"
    fi
  fi
  printf '# reload %s (%s): exit %s, %s s\n' "$RELOAD_SEQ" "${kind:-valid}" "$rc" \
    "$(awk -v a="$t" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')" >>"$logs/reload.log"
}
NEW_FROZEN=0 NEW_RESTARTS=0 NEW_FREEZES=0 NET_WINDOWS=0 BURSTS=0 BURST_VICTIMS=0
NET_ON=0 PGTANDEM_KILLS=0
fault_restart_new() {
  if ((NEW_FROZEN)); then return 1; fi
  event new-restart "pg_ctl restart -m fast"
  pg_cluster_restart new fast
  NEW_RESTARTS=$((NEW_RESTARTS + 1))
  event new-up "new accepts connections again"
}
NEW_FROZEN_PIDS=()
fault_freeze_new() {
  mapfile -t NEW_FROZEN_PIDS < <(pg_cluster_pids new)
  kill -STOP "${NEW_FROZEN_PIDS[@]}" 2>/dev/null || true
  NEW_FROZEN=1 NEW_FREEZES=$((NEW_FREEZES + 1))
  event new-freeze "SIGSTOP to new's ${#NEW_FROZEN_PIDS[@]} processes for ${freeze_secs} s"
}
fault_thaw_new() {
  ((NEW_FROZEN)) || return 0
  kill -CONT "${NEW_FROZEN_PIDS[@]}" 2>/dev/null || true
  NEW_FROZEN=0
  event new-thaw "SIGCONT"
}
fault_net() {
  [[ -n $NETNS_NAME ]] || return 0
  if (($1)); then
    netns_impair "$net_delay_ms" "$net_loss_pct"
    NET_ON=1 NET_WINDOWS=$((NET_WINDOWS + 1))
    # What a new connection to new and one query take now (not while new is frozen: it would
    # only time out).
    local probe='-'
    if ! ((NEW_FROZEN)); then
      probe=$( { TIMEFORMAT=%R; time timeout 10 psql -X -At -h "$(pg_host new)" -p "$(pg_port new)" \
        -U postgres -c 'SELECT 1' >/dev/null 2>&1; } 2>&1 || true)
    fi
    event net-on "delay ${net_delay_ms} ms, loss ${net_loss_pct}% on the link to new (a psql SELECT 1 to new: ${probe} s)"
  else
    netns_clear
    NET_ON=0
    event net-off "link to new clear"
  fi
}
# Kill burst: the victims' pgbench processes (2 clients each, mostly inside a transaction: they
# sleep in it), and every other burst the COPY client too, with SIGKILL.
fault_burst() {
  local name pid killed=()
  local names=(victims-1 victims-2)
  ((BURSTS % 2)) && names+=(copy)
  for name in "${names[@]}"; do
    pid=$(cat "$logs/load/$name/pid" 2>/dev/null || true)
    if [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null; then killed+=("$name:$pid"); fi
  done
  BURSTS=$((BURSTS + 1)) BURST_VICTIMS=$((BURST_VICTIMS + ${#killed[@]}))
  event kill-burst "SIGKILL ${killed[*]}"
}
fault_kill_pgtandem() {
  scrape before-kill || true
  event pgtandem-kill "SIGKILL pgtandem (pid $PGTANDEM_PID; mirror queue $(pg_msum "$logs/metrics/before-kill.prom" pgtandem_mirror_queue_bytes | cut -d. -f1) bytes just before)"
  kill -KILL "$PGTANDEM_PID"
  wait "$PGTANDEM_PID" 2>/dev/null || true
  PGTANDEM_KILLS=$((PGTANDEM_KILLS + 1))
  write_config valid # whatever the reload fault left there
  run_pgtandem
  CFG_HASH=$(config_hash || true)
  event pgtandem-up "pgtandem restarted (pid $PGTANDEM_PID)"
}

# ------------------------------------------------------------------------------------ run
pg_log "soak: $minutes min, scale $scale; warm-up ${warmup}s, reload every ${reload_every}s," \
  "new restart every ${restart_every}s, freeze ${freeze_secs}s every ${freeze_every}s," \
  "network faults half of every ${net_period}s, kill bursts every ${burst_every}s," \
  "pgtandem SIGKILL at ${pgtandem_kill_at}s"
load_start
event load-start "load started"
T0=$EPOCHSECONDS
next_reload=$reload_every next_restart=$restart_every next_freeze=$freeze_first thaw_at=0
next_net=$warmup next_burst=$((warmup + 5)) killed_pgtandem=0
while :; do
  t=$((EPOCHSECONDS - T0))
  ((t >= duration)) && break
  if ((t >= next_reload)); then fault_reload; next_reload=$((next_reload + reload_every)); fi
  if ((NEW_FROZEN && t >= thaw_at)); then fault_thaw_new; fi
  if ((t >= next_freeze && duration - t > freeze_secs + 5)); then
    if ! ((NEW_FROZEN)); then fault_freeze_new; thaw_at=$((t + freeze_secs)); fi
    next_freeze=$((next_freeze + freeze_every))
  fi
  if ((t >= next_restart && duration - t > 10)); then
    if fault_restart_new; then next_restart=$((next_restart + restart_every)); fi
  fi
  if ((t >= next_net && duration - t > 5)); then
    if ((NET_ON)); then fault_net 0; else fault_net 1; fi
    next_net=$((next_net + net_period / 2))
  fi
  if ((t >= next_burst && duration - t > 5)); then fault_burst; next_burst=$((next_burst + burst_every)); fi
  if ((!killed_pgtandem && t >= pgtandem_kill_at)); then fault_kill_pgtandem; killed_pgtandem=1; fi
  if ! kill -0 "$PGTANDEM_PID" 2>/dev/null; then
    event pgtandem-died "pgtandem exited by itself (see $PGTANDEM_LOG)"
    fail "pgtandem exited by itself: $(tail -n 3 "$PGTANDEM_LOG" | tr '\n' ' ')"
    run_pgtandem
  fi
  sleep 1
done
fault_thaw_new
((NET_ON)) && fault_net 0
write_config valid
"$bin" reload --config "$cfg" >>"$logs/reload.log" 2>&1 || fail "the final valid config was not applied"
event load-stop "stopping the load"
load_stop
scrape end || true

# ------------------------------------------------------------------------------------ catch-up
# The mirror's queues drain first; then either pgtandem catches up with its journal by itself (a
# backlog metric that goes to 0) or, without automatic catch-up, pgtandem is stopped and
# `pgtandem replay` applies the journal.
catchup_how='' catchup_note=''
deadline=$((SECONDS + 60))
while ((SECONDS < deadline)); do
  scrape drain || true
  q=$(pg_msum "$logs/metrics/drain.prom" pgtandem_mirror_queue_bytes)
  [[ ${q%.*} == 0 ]] && break
  sleep 1
done
backlog_metric=$(grep -oE '^pgtandem_[a-z_]*backlog_entries' "$logs/metrics/drain.prom" | head -n 1 || true)
journal_lines=$( (wc -l <"$journal") 2>/dev/null || echo 0)
t_catch=$EPOCHREALTIME
if [[ -n $backlog_metric ]]; then
  deadline=$((SECONDS + 900))
  b=''
  while ((SECONDS < deadline)); do
    scrape drain || true
    b=$(pg_msum "$logs/metrics/drain.prom" "$backlog_metric")
    [[ ${b%.*} == 0 ]] && break
    sleep 2
  done
  catchup_how=automatic
  catchup_note="automatic catch-up: $backlog_metric $b after $(awk -v a="$t_catch" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }') s (journal $journal_lines lines)"
  [[ ${b%.*} == 0 ]] || fail "the automatic catch-up did not finish in 15 min ($backlog_metric = $b)"
fi
event pgtandem-stop "SIGTERM (graceful: what is still queued goes to the journal)"
pg_stop_pid "$PGTANDEM_PID"
journal_lines=$( (wc -l <"$journal") 2>/dev/null || echo 0)
if [[ -z $catchup_how ]]; then
  if ((journal_lines > 0)); then
    catchup_how=replay
    event replay "pgtandem replay of $journal_lines journal lines (no automatic catch-up in this build)"
    t_r=$EPOCHREALTIME
    rc=0
    "$bin" replay --config "$cfg" --journal "$journal" >"$logs/replay.log" 2>&1 || rc=$?
    secs=$(awk -v a="$t_r" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
    catchup_note="pgtandem replay (no automatic catch-up in this build): $journal_lines journal lines in $secs s, exit $rc"
    event replay-done "$catchup_note"
    sed -n '/^summary:/,$p' "$logs/replay.log" | sed 's/^/    /' >&2
    ((rc == 0 || rc == 2)) || fail "pgtandem replay exited $rc (see $logs/replay.log)"
  else
    catchup_how=none
    catchup_note="nothing to catch up: the journal is empty"
  fi
fi

# ------------------------------------------------------------------------------------ verify
# repair goes through a running pgtandem (its admin API), so it runs again for verify and repair.
if ! kill -0 "$PGTANDEM_PID" 2>/dev/null; then
  run_pgtandem
  event pgtandem-up "pgtandem started for verify and repair (pid $PGTANDEM_PID)"
fi
MIGRATE=(--user postgres --dbname bench --state-dir "$dir/migrate-state")
verify_rc=0 repair_rc='' verify2_rc=''
"$bin" verify --config "$cfg" --report "$logs/verify-1.json" "${MIGRATE[@]}" >"$logs/verify-1.log" 2>&1 ||
  verify_rc=$?
diffs=$(grep '^✗' "$logs/verify-1.log" | sed 's/^✗ //' | paste -sd ';' || true)
event verify "pgtandem verify: exit $verify_rc${diffs:+ ($diffs)}"
if ((verify_rc == 1)); then
  # Both sides' values of the differing rows, before repair makes them equal: a write lost in the
  # crash window and one applied twice (an uncertain entry sent again) look different here.
  python3 "$root/scripts/lib/soak_report.py" --rows-sql "$logs/verify-1.json" >"$logs/verify-1-rows.sql" &&
    for side in old new; do
      pg_psql "$side" -d bench -At -F ' | ' -f "$logs/verify-1-rows.sql" >"$logs/verify-1-rows-$side.txt" 2>&1 || true
    done
  ((PGTANDEM_KILLS > 0)) || fail "old != new, and no pgtandem SIGKILL explains it (report $logs/verify-1.json)"
  repair_rc=0
  "$bin" repair --config "$cfg" --report "$logs/verify-1.json" "${MIGRATE[@]}" >"$logs/repair.log" 2>&1 ||
    repair_rc=$?
  event repair "pgtandem repair: exit $repair_rc"
  verify2_rc=0
  "$bin" verify --config "$cfg" --report "$logs/verify-2.json" "${MIGRATE[@]}" >"$logs/verify-2.log" 2>&1 ||
    verify2_rc=$?
  event verify "pgtandem verify after repair: exit $verify2_rc"
  ((verify2_rc == 0)) || fail "old != new after repair (report $logs/verify-2.json)"
elif ((verify_rc != 0)); then
  fail "pgtandem verify exited $verify_rc (see $logs/verify-1.log)"
fi

# ------------------------------------------------------------------------------------ report
{
  printf 'minutes\t%s\nscale\t%s\nwarmup\t%s\nsample_every\t%s\n' "$minutes" "$scale" "$warmup" "$sample_every"
  printf 'reloads_ok\t%s\nreloads_refused\t%s\nreloads_bad\t%s\n' "$RELOAD_OK" "$RELOAD_REFUSED" "$RELOAD_BAD"
  printf 'new_restarts\t%s\nnew_freezes\t%s\nnet_windows\t%s\nbursts\t%s\nburst_kills\t%s\n' \
    "$NEW_RESTARTS" "$NEW_FREEZES" "$NET_WINDOWS" "$BURSTS" "$BURST_VICTIMS"
  printf 'pgtandem_kills\t%s\nnet\t%s\ncatchup\t%s\ncatchup_note\t%s\n' "$PGTANDEM_KILLS" "$net_note" \
    "$catchup_how" "$catchup_note"
  printf 'verify_diffs\t%s\n' "${diffs:-}"
  printf 'verify_rc\t%s\nrepair_rc\t%s\nverify2_rc\t%s\njournal_lines\t%s\n' "$verify_rc" "$repair_rc" \
    "$verify2_rc" "$journal_lines"
  printf 'version\t%s\ncores\t%s\ncommand\t%s\n' "$("$bin" --version 2>/dev/null | head -n 1)" "$(nproc)" \
    "scripts/soak.sh --minutes $minutes"
  for f in "${FAILED[@]}"; do printf 'failed\t%s\n' "$f"; done
} >"$logs/run.tsv"
rc=0
python3 "$root/scripts/lib/soak_report.py" "$logs" --out "$report" || rc=1
echo "report: $report"
echo "logs:   $logs"
if ((keep)); then echo "servers' directory (stopped, kept): $PG_WORKDIR"; fi
exit "$rc"

#!/usr/bin/env bash
# The pgtandem demo is a migration: a live database moves from `old` to `new` and back, under load.
# Two throwaway PostgreSQL 15 servers; pgbench TPC-B at a fixed rate and a read-heavy `users` workload
# run through pgtandem the whole time, while pgtandem's own commands do each step:
#   1 setup        old: pgbench -i --foreign-keys + a users table; new: the schema only (pg_dump -s)
#   2 preflight    pgtandem preflight
#   3 mirroring    pgtandem starts with mirror_writes = true; the load starts
#   4 backfill     pgtandem backfill (progress shown) while the mirror runs
#   5 verify       pgtandem verify: clean
#   6 shadow       shadow reads at 100% by hot reload: zero mismatches
#   7 fault        one row changed on new behind pgtandem's back: shadow reads and verify catch it,
#                  pgtandem repair fixes it, verify is clean again
#   8 read shift   reads of `users` to new: 10%, 50%, 100% by hot reload
#   9 flip         primary to new, rollback to old, to new again (config + reload)
#  10 final verify
# Each phase prints one line when it ends, then a table (one row per phase) and an HTML report with a
# timeline. Exits non-zero when a phase's check fails.
#
#   scripts/demo.sh [--quick] [--keep] [--report FILE] [--logs DIR] [--no-deps] [--no-build]
#                   [--pgtandem BIN] [--scale N] [--users N] [--tpcb-rate TPS] [--users-rate TPS]
#
# --quick     the same phases, shorter and smaller (CI; about 2-3 minutes)
# --keep      leave the servers and pgtandem running at the end and print how to connect
# --report    the HTML report (default: LOGS/demo-report.html)
# --logs      where logs, scrapes and pgbench's per-transaction logs go (default: build/demo)
# Defaults: scale 10, 100000 users, TPC-B (+10% sign-ups) at 40 tps, reads of users at 120 tps, 4 clients each.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

deps=1
build=1
bin=$root/build/proxy/pgtandem
quick=0
keep=0
report=''
logs=$root/build/demo
scale=''
users=''
tpcb_rate=40
users_rate=120
while (($#)); do
  case $1 in
    --no-deps) deps=0; shift ;;
    --no-build) build=0; shift ;;
    --pgtandem) bin=$(realpath "$2"); build=0; shift 2 ;;
    --quick) quick=1; shift ;;
    --keep) keep=1; shift ;;
    --report) report=$2; shift 2 ;;
    --logs) logs=$2; shift 2 ;;
    --scale) scale=$2; shift 2 ;;
    --users) users=$2; shift 2 ;;
    --tpcb-rate) tpcb_rate=$2; shift 2 ;;
    --users-rate) users_rate=$2; shift 2 ;;
    -h | --help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

# How long each phase lets the load run (seconds).
if ((quick)); then
  scale=${scale:-2} users=${users:-20000}
  observe=4 shadow_secs=5 shift_secs=4 hold_secs=3
else
  scale=${scale:-10} users=${users:-100000}
  observe=8 shadow_secs=12 shift_secs=8 hold_secs=6
fi
clients=4
fault_id=7 # a hot row: the read workload draws ids from a Zipf distribution

if ((deps)); then
  scripts/install-deps.sh
fi
if ((build)); then
  scripts/build.sh --build-dir build --target pgtandem
fi
[[ -x $bin ]] || { echo "demo.sh: $bin not built (run without --no-build)" >&2; exit 1; }

mkdir -p "$logs"
logs=$(realpath "$logs")
rm -rf "${logs:?}"/{load,metrics,phases.tsv,events.tsv,*.log,*.json,*.jsonl,*.sql}
mkdir -p "$logs/load" "$logs/metrics"
report=${report:-$logs/demo-report.html}
report=$(realpath -m "$report")
: >"$logs/phases.tsv"
: >"$logs/events.tsv"
py() { python3 "$root/scripts/lib/demo_report.py" "$@"; }
# Arithmetic on decimals without a python start per call (the machine may be busy).
calc() { awk "BEGIN { printf \"%.6f\", ($1) }"; }
int() { printf '%.0f' "${1:-0}" 2>/dev/null || echo 0; }

# shellcheck source=scripts/lib/pg.sh
source "$root/scripts/lib/pg.sh"
# shellcheck source=scripts/lib/load.sh
source "$root/scripts/lib/load.sh"
pg_init

# ------------------------------------------------------------------------------------ phases
PHASE_IDX=0 PHASE_NAME='' PHASE_T0='' PHASE_OK=1
FAILED=()
phase_begin() {
  PHASE_IDX=$1 PHASE_NAME=$2 PHASE_T0=$EPOCHREALTIME PHASE_OK=1
  pg_log "phase $1: $2"
  if [[ -n $PGTANDEM_PID ]]; then scrape "begin-$(printf %02d "$1")"; fi
}
# check_fail MESSAGE: the running phase's check failed (the demo goes on, and exits 1 at the end).
check_fail() {
  PHASE_OK=0
  FAILED+=("phase $PHASE_IDX $PHASE_NAME: $*")
  pg_log "CHECK FAILED: $*"
}
# phase_end SUMMARY: one line per phase, and a row in phases.tsv.
phase_end() {
  local summary=$1 t1=$EPOCHREALTIME mark='ok'
  if [[ -n $PGTANDEM_PID ]]; then scrape "phase-$(printf %02d "$PHASE_IDX")"; fi
  ((PHASE_OK)) || mark='FAILED'
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$PHASE_IDX" "$PHASE_NAME" "$PHASE_T0" "$t1" "$PHASE_OK" \
    "${summary//$'\t'/ }" >>"$logs/phases.tsv"
  printf '%-6s %2d %-12s %6.1f s  %s\n' "$mark" "$PHASE_IDX" "$PHASE_NAME" \
    "$(calc "$t1 - $PHASE_T0")" "$summary"
}
event() { printf '%s\t%s\t%s\n' "$EPOCHREALTIME" "$1" "$2" >>"$logs/events.tsv"; }

# ------------------------------------------------------------------------------------ pgtandem
scrape() {
  curl -fsS --max-time 5 "http://127.0.0.1:$PGTANDEM_ADMIN_PORT/metrics" >"$logs/metrics/$1.prom" ||
    pg_log "warning: could not scrape /metrics"
}
msum() { pg_msum "$@"; } # scripts/lib/load.sh
# metric NAME [label=value...]: its value now.
metric() {
  scrape now
  msum "$logs/metrics/now.prom" "$@"
}
# delta FROM TO NAME [label=value...]: growth of a metric between two scrapes.
delta() {
  local a b
  a=$(msum "$logs/metrics/$1.prom" "${@:3}")
  b=$(msum "$logs/metrics/$2.prom" "${@:3}")
  calc "$b - $a"
}
# since SCRAPE NAME [label=value...]: growth of a metric since an earlier scrape.
since() {
  scrape now
  delta "$1" now "${@:2}"
}
current_primary() {
  curl -fsS --max-time 5 "http://127.0.0.1:$PGTANDEM_ADMIN_PORT/status" |
    grep -o '"primary":"[^"]*"' | head -n 1 | cut -d'"' -f4
}

dir=$PG_WORKDIR/pgtandem
cfg=$dir/pgtandem.toml
CFG_PRIMARY=old CFG_PERCENT=0 CFG_SHADOW=0
write_config() {
  cat >"$cfg.tmp" <<EOF
# pgtandem demo config, written by scripts/demo.sh (phase $PHASE_IDX: $PHASE_NAME).
# Each phase edits this file and reloads it: no restart, no client disconnected.
primary = "$CFG_PRIMARY"
mirror_writes = true
workers = 2
# pgtandem's state (mirror journal, crash-window marker): the demo's own directory.
state_dir = "$dir/state"

[listen]
addresses = ["127.0.0.1:$PGTANDEM_PORT"]

[targets.old]
host = "127.0.0.1"
port = $(pg_port old)

[targets.new]
host = "127.0.0.1"
port = $(pg_port new)

[admin]
listen = "127.0.0.1:$PGTANDEM_ADMIN_PORT"
token = "demo"

[mirror]
journal_path = "mirror.journal"  # in state_dir

# Phase 9's coordinated cutover: the replicas' control schema lives in database postgres on both.
[cutover]
control_user = "postgres"
# The shadow gate looks at the last 10 s (default 5 min): phase 7's fault, repaired since, is older
# than that here because the demo's phases are short; a fault still there would block the cutover.
shadow_window_s = 10

[shadow]
sample_rate = $CFG_SHADOW
recheck_delay_ms = 200
mismatch_log = "$logs/shadow-mismatches.jsonl"

# The read shift: this share of the reads of users goes to new, decided per request (a sqlcommenter
# tag the application sets), so that raising it moves a steady share of reads.
[[routes]]
name = "users-reads"
tables = "users"
percent = $CFG_PERCENT
hash_key = "tag:request"
EOF
  mv "$cfg.tmp" "$cfg"
}
# apply_config: write the file and hot-reload it (pgtandem also sees the file change by itself).
apply_config() {
  write_config
  if ! "$bin" reload --config "$cfg" >>"$logs/reload.log" 2>&1; then
    tail -n 5 "$logs/reload.log" >&2
    check_fail "pgtandem reload failed (see $logs/reload.log)"
    return 1
  fi
}
start_pgtandem() {
  mkdir -p "$dir"
  PGTANDEM_PORT=$(pg_free_port)
  PGTANDEM_ADMIN_PORT=$(pg_free_port)
  while [[ $PGTANDEM_ADMIN_PORT == "$PGTANDEM_PORT" ]]; do PGTANDEM_ADMIN_PORT=$(pg_free_port); done
  write_config
}
run_pgtandem() {
  PGTANDEM_LOG=$logs/pgtandem.log
  pg_spawn_bg "$PGTANDEM_LOG" "$bin" --config "$cfg"
  PGTANDEM_PID=$PG_LAST_PID
  if ! pg_wait_tcp "$PGTANDEM_PORT" 20 "$PGTANDEM_PID" ||
    ! pg_wait_tcp "$PGTANDEM_ADMIN_PORT" 10 "$PGTANDEM_PID"; then
    tail -n 30 "$PGTANDEM_LOG" >&2
    pg_die "pgtandem did not start ($bin)"
  fi
}

# What the migration commands (issue 13) log in as, and where they keep checkpoints and reports.
MIGRATE=(--user postgres --dbname bench --state-dir "$dir/migrate-state")
# run_tool LOG CMD...: one of pgtandem's migration commands; its output goes to LOG and, indented,
# to the terminal. Sets TOOL_RC. A command this build does not have (issue 13) fails clearly.
TOOL_RC=0
run_tool() {
  local log=$1
  shift
  pg_log "\$ pgtandem ${*:2}"
  if ! "$1" --help 2>&1 | grep -qE "^ +$2 "; then
    echo "pgtandem $2: not in this build ($1); it comes with issue 13" | tee "$log" | sed 's/^/    /'
    TOOL_RC=127
    return 0
  fi
  set +e
  "$@" 2>&1 | tee "$log" | sed -u 's/^/    /'
  TOOL_RC=${PIPESTATUS[0]}
  set -e
}

# ------------------------------------------------------------------------------------ load
# load_loop NAME RATE PGBENCH-ARGS...: pgbench at a fixed rate through pgtandem, one long run (the
# same sessions from phase 3 to the end; restarted should every client of it abort), until
# load_stop. Each run's per-transaction log, output, stderr (stamped) and exit code stay in
# $logs/load/NAME/ as seg-N.*.
load_loop() {
  local name=$1 rate=$2
  shift 2
  local d=$logs/load/$name seq=0 child='' rc
  mkdir -p "$d"
  trap 'if [[ -n $child ]]; then kill -TERM "$child" 2>/dev/null; fi; exit 0' TERM
  while [[ ! -e $logs/load/stop ]]; do
    seq=$((seq + 1))
    pgbench -n -c "$clients" -j 2 -R "$rate" -T 86400 -l --log-prefix="$d/seg-$seq.tx" \
      -h 127.0.0.1 -p "$PGTANDEM_PORT" -U postgres "$@" bench \
      >"$d/seg-$seq.out" 2> >(pg_stamp >"$d/seg-$seq.err") </dev/null &
    child=$!
    rc=0
    wait "$child" || rc=$?
    child=''
    echo "$rc" >"$d/seg-$seq.rc"
    if ((rc != 0)); then sleep 1; fi
  done
}
LOAD_PIDS=()
load_start() {
  # Reads of users, as an application's read path: lookups by id, a few users far more active
  # than the rest (Zipf). The request tag is what the read-shift rule hashes.
  cat >"$logs/users-read.sql" <<'EOF'
\set uid random_zipfian(1, :nusers, 1.1)
\set req random(1, 1000000000)
SELECT id, username, email, created_at FROM users WHERE id = :uid /* request=':req' */;
EOF
  # TPC-B with the history row's key and time from the client (scripts/lib/load.sh says why).
  pg_write_tpcb_script "$logs/tpcb.sql"
  cat >"$logs/users-signup.sql" <<'EOF'
\set nid random(:nusers + 1, 2000000000)
INSERT INTO users (id, username, email, created_at)
  VALUES (:nid, 'user' || :nid, 'user' || :nid || '@example.com', timestamptz '2026-01-01 00:00:00+00' + :nid * interval '1 second')
  ON CONFLICT DO NOTHING;
EOF
  # The write path: TPC-B, and one transaction in ten a sign-up (a new users row).
  load_loop tpcb "$tpcb_rate" -D "nusers=$users" -D "scale=$scale" -D "start=$EPOCHSECONDS" \
    -f "$logs/tpcb.sql@9" -f "$logs/users-signup.sql@1" &
  LOAD_PIDS+=($!)
  PG_BG_PIDS+=($!)
  load_loop reads "$users_rate" -D "nusers=$users" -f "$logs/users-read.sql" &
  LOAD_PIDS+=($!)
  PG_BG_PIDS+=($!)
  pg_log "load: TPC-B (+10% sign-ups) at $tpcb_rate tps and reads of users at $users_rate tps," \
    "$clients clients each, through pgtandem"
}
# pgbench has no clean stop: it is interrupted, and the per-transaction lines still in its stdio
# buffer (4 KB per thread, a few seconds at these rates) are lost. So the load runs on for a
# while after the last phase, and only that tail is lost.
load_stop() {
  touch "$logs/load/stop"
  sleep 8
  local pid
  for pid in "${LOAD_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${LOAD_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  LOAD_PIDS=()
}
observe() { sleep "$1"; }

# ------------------------------------------------------------------------------------ 1 setup
phase_begin 1 setup
pg_cluster_start old
pg_cluster_start new
pg_psql old -c 'CREATE DATABASE bench'
pg_psql new -c 'CREATE DATABASE bench'
pgbench -i -q -s "$scale" --foreign-keys -h 127.0.0.1 -p "$(pg_port old)" -U postgres bench \
  >"$logs/init-old.log" 2>&1 || { cat "$logs/init-old.log" >&2; pg_die "pgbench -i failed"; }
pg_psql old -d bench >/dev/null <<EOF
-- History gets a key, which the client chooses (see tpcb.sql): the commands copy and compare by key.
ALTER TABLE pgbench_history ADD COLUMN hid bigint PRIMARY KEY;
CREATE TABLE users (
  id bigint PRIMARY KEY,
  username text NOT NULL UNIQUE,
  email text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO users
  SELECT i, 'user' || i, 'user' || i || '@example.com',
         timestamptz '2025-01-01 00:00:00+00' + i * interval '17 minutes'
  FROM generate_series(1, $users) AS i;
VACUUM ANALYZE;
EOF
pg_dump --schema-only -h 127.0.0.1 -p "$(pg_port old)" -U postgres bench >"$logs/schema.sql"
pg_psql new -d bench -f "$logs/schema.sql" >"$logs/schema-restore.log" 2>&1 ||
  { tail -n 20 "$logs/schema-restore.log" >&2; pg_die "restoring the schema on new failed"; }
# new has the foreign keys too: until the backfill is done, a mirrored write may reference a row
# not copied yet. session_replication_role = replica skips the check there (docs/migration.md).
pg_psql new -c 'ALTER DATABASE bench SET session_replication_role = replica' >/dev/null
accounts=$(pg_psql old -d bench -Atc 'SELECT count(*) FROM pgbench_accounts')
size=$(pg_psql old -d bench -Atc "SELECT pg_size_pretty(pg_database_size('bench'))")
new_rows=$(pg_psql new -d bench -Atc 'SELECT (SELECT count(*) FROM pgbench_accounts) + (SELECT count(*) FROM users)')
((new_rows == 0)) || check_fail "new should start empty, has $new_rows rows"
phase_end "old: $accounts accounts, $users users ($size); new: the schema only (pg_dump --schema-only)"

# ------------------------------------------------------------------------------------ 2 preflight
phase_begin 2 preflight
start_pgtandem
run_tool "$logs/preflight.log" "$bin" preflight --config "$cfg" "${MIGRATE[@]}"
if ((TOOL_RC == 0)); then
  phase_end "pgtandem preflight: every check passed ($(grep -c '✓' "$logs/preflight.log" || true) ✓)"
else
  check_fail "pgtandem preflight exited $TOOL_RC"
  phase_end "pgtandem preflight exited $TOOL_RC: $(grep -m1 -E '✗|error' "$logs/preflight.log" || tail -n 1 "$logs/preflight.log")"
fi

# ------------------------------------------------------------------------------------ 3 mirroring
phase_begin 3 mirroring
run_pgtandem
scrape start
cp "$logs/metrics/start.prom" "$logs/metrics/begin-03.prom"
load_start
observe "$observe"
mirrored=$(int "$(since begin-03 pgtandem_mirror_lag_seconds_count)")
((mirrored > 0)) || check_fail "no write was mirrored to new"
clients_now=$(int "$(metric pgtandem_client_connections)")
phase_end "pgtandem up (mirror_writes = true), $clients_now client sessions; $mirrored writes applied on new"

# ------------------------------------------------------------------------------------ 4 backfill
phase_begin 4 backfill
run_tool "$logs/backfill.log" "$bin" backfill --config "$cfg" --jobs 2 "${MIGRATE[@]}"
if ((TOOL_RC == 0)); then
  pg_psql new -c 'ALTER DATABASE bench RESET session_replication_role' >/dev/null
  new_accounts=$(pg_psql new -d bench -Atc 'SELECT count(*) FROM pgbench_accounts')
  new_users=$(pg_psql new -d bench -Atc 'SELECT count(*) FROM users')
  ((new_accounts == accounts)) || check_fail "new has $new_accounts accounts, old $accounts"
  phase_end "pgtandem backfill: new has $new_accounts accounts, $new_users users, while clients kept writing"
else
  check_fail "pgtandem backfill exited $TOOL_RC"
  phase_end "pgtandem backfill exited $TOOL_RC: $(tail -n 1 "$logs/backfill.log")"
fi

# verify_step LOG REPORT: pgtandem verify; sets TOOL_RC (0 identical, 1 differences).
verify_step() {
  run_tool "$1" "$bin" verify --config "$cfg" --report "$2" "${MIGRATE[@]}"
}

# ------------------------------------------------------------------------------------ 5 verify
phase_begin 5 verify
verify_step "$logs/verify-5.log" "$logs/verify-5.json"
case $TOOL_RC in
  0) phase_end "pgtandem verify: old and new identical, under load" ;;
  1) check_fail "pgtandem verify found differences (report $logs/verify-5.json)"
     phase_end "pgtandem verify: differences (report verify-5.json)" ;;
  *) check_fail "pgtandem verify exited $TOOL_RC"
     phase_end "pgtandem verify exited $TOOL_RC: $(tail -n 1 "$logs/verify-5.log")" ;;
esac

# ------------------------------------------------------------------------------------ 6 shadow
phase_begin 6 shadow
CFG_SHADOW=1.0
apply_config || true
observe "$shadow_secs"
scrape shadowed
compared=$(int "$(delta begin-06 shadowed pgtandem_shadow_reads_total outcome=match)")
mismatched=$(int "$(delta begin-06 shadowed pgtandem_shadow_reads_total outcome=mismatch)")
((compared > 0)) || check_fail "no shadow read was compared"
((mismatched == 0)) || check_fail "$mismatched shadow mismatches"
phase_end "shadow reads at 100% (hot reload): $compared reads compared on new, $mismatched mismatches"

# ------------------------------------------------------------------------------------ 7 fault
phase_begin 7 fault
event fault "users id $fault_id changed on new"
pg_psql new -d bench -c "UPDATE users SET email = 'changed-behind-pgtandem@example.com' WHERE id = $fault_id" >/dev/null
pg_log "changed users id $fault_id on new directly (behind pgtandem's back)"
caught=0 t_fault=$SECONDS
while ((SECONDS - t_fault < 30)); do
  caught=$(int "$(since begin-07 pgtandem_shadow_reads_total outcome=mismatch)")
  ((caught > 0)) && break
  sleep 0.5
done
shadow_note="shadow reads: $caught mismatch(es) within $((SECONDS - t_fault)) s"
if ((caught > 0)); then
  # recheck_delay_ms: the read runs again on both targets; still different means the data differ.
  persistent=0
  for _ in $(seq 20); do
    persistent=$(int "$(since begin-07 pgtandem_shadow_rechecks_total result=persistent)")
    ((persistent > 0)) && break
    sleep 0.25
  done
  shadow_note+=" (rechecked: $persistent persistent)"
  if [[ -s $logs/shadow-mismatches.jsonl ]]; then
    python3 -c 'import json, sys
m = json.loads(open(sys.argv[1]).readline())
print("    shadow mismatch log: %s\n      primary: %s\n      %s:     %s"
      % (m["statement"], m["primary"]["row"], m["target"], m["shadow"]["row"]))' \
      "$logs/shadow-mismatches.jsonl" || true
  fi
else
  check_fail "shadow reads did not catch the changed row in 30 s"
  shadow_note="shadow reads: not caught"
fi
verify_step "$logs/verify-7a.log" "$logs/verify-7a.json"
if ((TOOL_RC == 1)); then
  verify_note="verify: exit 1"
  if grep -q users "$logs/verify-7a.json" 2>/dev/null; then
    verify_note+=" (users in the report)"
  else
    check_fail "verify's report does not name the users table"
  fi
else
  check_fail "verify exited $TOOL_RC instead of 1 (differences)"
  verify_note="verify: exit $TOOL_RC"
fi
run_tool "$logs/repair.log" "$bin" repair --config "$cfg" --report "$logs/verify-7a.json" "${MIGRATE[@]}"
repair_note="repair: exit $TOOL_RC"
((TOOL_RC == 0)) || check_fail "pgtandem repair exited $TOOL_RC"
verify_step "$logs/verify-7b.log" "$logs/verify-7b.json"
((TOOL_RC == 0)) || check_fail "verify after repair exited $TOOL_RC"
email=$(pg_psql new -d bench -Atc "SELECT email FROM users WHERE id = $fault_id")
[[ $email == "user$fault_id@example.com" ]] || check_fail "users id $fault_id on new is still '$email'"
phase_end "users id $fault_id changed on new; $shadow_note; $verify_note; $repair_note; verify again: exit $TOOL_RC"

# ------------------------------------------------------------------------------------ 8 read shift
phase_begin 8 "read shift"
shift_note=''
prev_share=-1
for pct in 10 50 100; do
  CFG_PERCENT=$pct
  event shift "reads of users to new: $pct%"
  apply_config || true
  # Sessions take the new config at their next transaction boundary (a few ms at this load);
  # a moment later every worker has it: measure from a scrape taken after that.
  sleep 1
  scrape "shift-$pct"
  observe "$shift_secs"
  scrape "shifted-$pct" # both numbers from the same scrape
  to_new=$(delta "shift-$pct" "shifted-$pct" pgtandem_route_decisions_total rule=users-reads target=new)
  all=$(delta "shift-$pct" "shifted-$pct" pgtandem_route_decisions_total rule=users-reads)
  share=$(int "$(calc "$all > 0 ? 100 * $to_new / $all : 0")")
  pg_log "  reads of users to new at $pct%: $(int "$to_new") of $(int "$all") ($share%)"
  shift_note+="${shift_note:+, }$pct% -> $share%"
  ((share > prev_share)) || check_fail "reads served by new did not grow at $pct% ($share%)"
  prev_share=$share
done
((prev_share >= 95)) || check_fail "at 100% only $prev_share% of users reads were served by new"
phase_end "reads of users served by new (by hot reload): $shift_note"

# ------------------------------------------------------------------------------------ 9 flip
# cutover_to TARGET LABEL: the coordinated cutover, `pgtandem cutover --to TARGET` (docs/cutover.md):
# gates, a pause at transaction boundaries, mirror drained, sequences synced, switch, resume. Each
# session then moves at its next request; the measurement around it counts them.
FLIP_NOTE='' FLIP_MOVED=0 FLIP_CLOSED=0 FLIP_PAUSES=''
cutover_to() {
  local target=$1 label=$2 t0=$EPOCHREALTIME sessions f0 nflip=0 last=-1 stable=0 ms out pause
  scrape flip-before
  sessions=$(int "$(msum "$logs/metrics/flip-before.prom" pgtandem_client_connections)")
  f0=$(msum "$logs/metrics/flip-before.prom" pgtandem_primary_flips_total)
  event flip "$label"
  if ! out=$("$bin" cutover --to "$target" --admin "127.0.0.1:$PGTANDEM_ADMIN_PORT" --token demo 2>&1); then
    printf '%s\n' "$out" >>"$logs/cutover.log"
    printf '%s\n' "$out" | tail -n 12 >&2
    check_fail "$label: pgtandem cutover --to $target failed (see $logs/cutover.log)"
    return 0
  fi
  printf '%s\n' "$out" >>"$logs/cutover.log"
  pause=$(grep -o 'pause [0-9]* ms' <<<"$out" | head -n 1 | grep -o '[0-9]*' || true)
  FLIP_PAUSES+="${FLIP_PAUSES:+, }${pause:-?} ms"
  # The control epoch owns the primary now: the file follows it, so later reloads agree.
  CFG_PRIMARY=$target
  write_config
  local deadline=$((SECONDS + 10))
  while ((SECONDS < deadline)); do
    if [[ $(current_primary) == "$target" ]]; then
      nflip=$(int "$(calc "$(metric pgtandem_primary_flips_total) - $f0")")
      ((nflip >= sessions)) && break
      if ((nflip == last)); then stable=$((stable + 1)); else stable=0; fi
      ((nflip > 0 && stable >= 10)) && break
      last=$nflip
    fi
    sleep 0.1
  done
  event flip-done "$label"
  ms=$(int "$(calc "($EPOCHREALTIME - $t0) * 1000")")
  local moved closed
  moved=$(int "$(since flip-before pgtandem_primary_flips_total outcome=moved)")
  closed=$(int "$(since flip-before pgtandem_primary_flips_total outcome=closed)")
  FLIP_MOVED=$((FLIP_MOVED + moved)) FLIP_CLOSED=$((FLIP_CLOSED + closed))
  if [[ $(current_primary) != "$target" ]]; then
    check_fail "$label: the primary is still $(current_primary)"
  fi
  pg_log "  $label: primary $(current_primary); $sessions sessions open, $moved moved, $closed closed, in $ms ms"
  FLIP_NOTE+="${FLIP_NOTE:+, }$label ${ms} ms"
}
phase_begin 9 flip
cutover_to new "flip to new"
observe "$hold_secs"
cutover_to old "rollback to old"
observe "$hold_secs"
cutover_to new "flip to new again"
observe "$hold_secs"
((FLIP_CLOSED == 0)) || check_fail "$FLIP_CLOSED sessions were closed at a flip instead of moved"
phase_end "pgtandem cutover: $FLIP_NOTE; pause $FLIP_PAUSES; sessions moved $FLIP_MOVED, closed $FLIP_CLOSED"

# ------------------------------------------------------------------------------------ 10 verify
phase_begin 10 "final verify"
verify_step "$logs/verify-10.log" "$logs/verify-10.json"
case $TOOL_RC in
  0) phase_end "pgtandem verify: new (now the primary) and old identical" ;;
  *) check_fail "pgtandem verify exited $TOOL_RC"
     phase_end "pgtandem verify exited $TOOL_RC" ;;
esac

# ------------------------------------------------------------------------------------ report
pg_log "stopping the load (in a few seconds: pgbench's last per-transaction lines must reach its log)"
load_stop
echo
echo "=== pgtandem demo: old -> new under load, scale $scale, $users users, $(nproc) cores ==="
rc=0
py report "$logs" --out "$report" \
  --meta "scale $scale, $users users; TPC-B (+10% sign-ups) at $tpcb_rate tps and reads of users at $users_rate tps, $clients clients each, through pgtandem; $(nproc) cores; $(date -u '+%Y-%m-%d %H:%M UTC'); $("$bin" --version 2>/dev/null | head -n 1)" ||
  rc=1
echo
echo "report: $report"
echo "logs:   $logs"
if ((${#FAILED[@]})); then
  rc=1
  echo
  echo "failed checks:"
  printf '  %s\n' "${FAILED[@]}"
fi

if ((keep)); then
  trap - EXIT
  cat <<EOF

Everything is still running (--keep). Explore:
  psql "host=127.0.0.1 port=$PGTANDEM_PORT user=postgres dbname=bench"      # through pgtandem (primary: $CFG_PRIMARY)
  psql "host=127.0.0.1 port=$(pg_port old) user=postgres dbname=bench"      # old, directly
  psql "host=127.0.0.1 port=$(pg_port new) user=postgres dbname=bench"      # new, directly
  $bin status --config $cfg
  curl -s 127.0.0.1:$PGTANDEM_ADMIN_PORT/metrics | grep pgtandem_
  config: $cfg (edit it, then: $bin reload --config $cfg)
Stop it all:
  kill $PGTANDEM_PID
  ${PG_AS_USER[*]} $PG_BIN/pg_ctl -D $(pg_datadir old) stop; ${PG_AS_USER[*]} $PG_BIN/pg_ctl -D $(pg_datadir new) stop
  rm -rf $PG_WORKDIR
EOF
fi
exit "$rc"

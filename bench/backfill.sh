#!/usr/bin/env bash
# Backfill throughput against the usual tools, and verify against the physical limit (issue 13).
#
#   bench/backfill.sh          (root or not, Debian 12, PostgreSQL 15, pgcopydb; any cwd)
#
# One run, on two throwaway clusters (old, new) on loopback:
#   - old: `pgbench -i -s BF_SCALE` (database bench);
#   - pgtandem backfill (mirror_writes on, no client traffic) into new/bench, schema only
#     (`pg_dump --schema-only`: indexes and keys exist while it copies);
#   - `pg_dump -Fd -j2 | pg_restore -j2` into new/bench_restore (empty: pg_restore creates the
#     tables, loads them, then builds indexes and keys);
#   - `pgcopydb clone --table-jobs 2 --index-jobs 2` into new/bench_copydb (empty, same as above);
#   - pgtandem verify of old/bench against new/bench, against one sequential read of both
#     (`COPY (SELECT * FROM t) TO STDOUT` > /dev/null, every pgbench table, old then new; and
#     both at once).
#   - client latency under fixed-rate TPC-B through pgtandem (mirroring on): BF_TPCB_SECONDS
#     without a backfill, then as long with `pgtandem backfill --max-rate BF_MAX_RATE` into an
#     emptied new/bench (p50/p99 from pgbench's per-transaction log).
# Prints markdown tables (seconds, rows/s, ratios, latencies) and the load average before and after.
# Environment: BF_PGTANDEM (binary; default build/proxy/pgtandem), BF_SCALE=50, BF_JOBS=2,
# BF_CHUNK_ROWS (backfill --chunk-rows; default the command's), BF_TPCB_RATE=100 (tps),
# BF_TPCB_SECONDS=30, BF_MAX_RATE="20000" (rows/s; several: one backfill run each),
# BF_MODE=auto|snapshot|chunked (backfill --mode; auto: the snapshot copy under the mirror fence).
# BF_SKIP_TPCB=1 to leave that part out. BF_WAL_LEVEL=replica: both servers at wal_level replica
# (see below) instead of the throwaway clusters' minimal. PGTANDEM_BACKFILL_NO_OVERLAP=1 (passed to pgtandem
# backfill) copies one chunk at a time, for an A/B of the overlapped chunks.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${BF_PGTANDEM:-$root/build/proxy/pgtandem}
scale=${BF_SCALE:-50}
jobs=${BF_JOBS:-2}
chunk=()
[[ -n ${BF_CHUNK_ROWS:-} ]] && chunk=(--chunk-rows "$BF_CHUNK_ROWS")
tpcb_rate=${BF_TPCB_RATE:-100}
tpcb_secs=${BF_TPCB_SECONDS:-30}
max_rate=${BF_MAX_RATE:-20000}
[[ -x $bin ]] || { echo "bench/backfill.sh: no pgtandem at $bin" >&2; exit 1; }
command -v pgcopydb >/dev/null || { echo "bench/backfill.sh: pgcopydb not found (scripts/install-deps.sh)" >&2; exit 1; }
# shellcheck source=scripts/lib/pg.sh
source "$root/scripts/lib/pg.sh"
pg_init
pg_cluster_start old
pg_cluster_start new
oldp=$(pg_port old) newp=$(pg_port new)
# The throwaway clusters run wal_level = minimal, where pg_restore's and pgcopydb's TRUNCATE + COPY
# in one transaction writes no WAL for the heap; a live migration's target (a future primary, with
# replicas and backups) runs replica or logical, where nothing skips WAL. BF_WAL_LEVEL=replica
# measures that case.
if [[ -n ${BF_WAL_LEVEL:-} && ${BF_WAL_LEVEL} != minimal ]]; then
  for c in old new; do
    pg_psql "$c" -c "ALTER SYSTEM SET wal_level = '$BF_WAL_LEVEL'" postgres >/dev/null
    pg_psql "$c" -c "ALTER SYSTEM SET max_wal_senders = 10" postgres >/dev/null
    pg_cluster_restart "$c"
  done
  oldp=$(pg_port old) newp=$(pg_port new)
fi
uri() { printf 'postgres://postgres@127.0.0.1:%s/%s' "$1" "$2"; }
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.1f}')"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
# CPU seconds so far: old's cluster, new's cluster, and the tools this script ran and waited for
# (its reaped children: backfill, pg_dump/pg_restore, pgcopydb). Steadier than wall time when the
# machine is shared.
cpu_now() {
  pg_stat_ticks $$ 1
  echo "$(pg_cluster_cpu_us old) $(pg_cluster_cpu_us new) $((PG_TICKS * 1000000 / PG_CLK_TCK))"
}
cpu_since() {  # cpu_since "OLD NEW TOOLS" -> "old new tools total" in seconds
  local a b
  read -r -a a <<<"$1"
  read -r -a b <<<"$(cpu_now)"
  python3 -c "o,n,t=($((b[0] - a[0]))/1e6,$((b[1] - a[1]))/1e6,$((b[2] - a[2]))/1e6); print(f'{o:.1f} {n:.1f} {t:.1f} {o+n+t:.1f}')"
}

pg_psql old -c "CREATE DATABASE bench" postgres >/dev/null
for db in bench bench_restore bench_copydb; do pg_psql new -c "CREATE DATABASE $db" postgres >/dev/null; done
pg_log "pgbench -i -s $scale on old"
pgbench -i -s "$scale" -q -h 127.0.0.1 -p "$oldp" -U postgres bench >"$PG_WORKDIR/init.log" 2>&1 ||
  { cat "$PG_WORKDIR/init.log" >&2; pg_die "pgbench -i failed"; }
pg_psql old -c "VACUUM ANALYZE" bench >/dev/null
rows=$(pg_psql old -tAc "SELECT (SELECT count(*) FROM pgbench_accounts) + (SELECT count(*) FROM pgbench_branches)
  + (SELECT count(*) FROM pgbench_tellers) + (SELECT count(*) FROM pgbench_history)" bench)
pg_dump --schema-only -h 127.0.0.1 -p "$oldp" -U postgres bench |
  psql -q -h 127.0.0.1 -p "$newp" -U postgres bench >/dev/null
load_before=$(load)

# 1. pgtandem backfill (through a running pgtandem: the mirror barrier reads its watermark).
export PGTANDEM_TOML_TOP='mirror_writes = true'
export PGTANDEM_TOML_TAIL=$'[mirror]\njournal_path = "@DIR@/mirror.journal"'
export PGTANDEM_TOML_ADMIN='token = "bench"'  # the snapshot copy's fence is a POST
mode=(--mode "${BF_MODE:-auto}")
pgtandem_start "$bin" old new 2 pgtandem
conf=$PG_WORKDIR/pgtandem/pgtandem.toml
c0=$(cpu_now)
t0=$(now)
"$bin" backfill --config "$conf" --user postgres --dbname bench --jobs "$jobs" "${chunk[@]}" "${mode[@]}" \
  --state-dir "$PG_WORKDIR/state" >"$PG_WORKDIR/backfill.log" 2>&1 ||
  { tail -n 30 "$PG_WORKDIR/backfill.log" >&2; pg_die "backfill failed"; }
t_backfill=$(secs "$t0" "$(now)")
c_backfill=$(cpu_since "$c0")
autovac=$(pg_psql new -tAc "SELECT coalesce(sum(autovacuum_count), 0) || ' autovacuums, ' ||
  coalesce(sum(autoanalyze_count), 0) || ' autoanalyzes'
  FROM pg_stat_user_tables" bench)

# 2. pg_dump -Fd -j2 | pg_restore -j2 (directory format: two steps, timed together).
c0=$(cpu_now)
t0=$(now)
pg_dump -Fd -j "$jobs" -f "$PG_WORKDIR/dump" -h 127.0.0.1 -p "$oldp" -U postgres bench
pg_restore -j "$jobs" -d bench_restore -h 127.0.0.1 -p "$newp" -U postgres "$PG_WORKDIR/dump"
t_restore=$(secs "$t0" "$(now)")
c_restore=$(cpu_since "$c0")

# 3. pgcopydb clone.
c0=$(cpu_now)
t0=$(now)
pgcopydb clone --source "$(uri "$oldp" bench)" --target "$(uri "$newp" bench_copydb)" \
  --table-jobs "$jobs" --index-jobs "$jobs" --dir "$PG_WORKDIR/pgcopydb" \
  >"$PG_WORKDIR/pgcopydb.log" 2>&1 || { tail -n 30 "$PG_WORKDIR/pgcopydb.log" >&2; pg_die "pgcopydb failed"; }
t_copydb=$(secs "$t0" "$(now)")
c_copydb=$(cpu_since "$c0")

# 4. verify, and the physical limit: every table read once on each side.
t0=$(now)
set +e
"$bin" verify --config "$conf" --user postgres --dbname bench --jobs "$jobs" \
  --state-dir "$PG_WORKDIR/state" >"$PG_WORKDIR/verify.log" 2>&1
verify_rc=$?
set -e
t_verify=$(secs "$t0" "$(now)")
read_all() {
  local port=$1 t
  for t in pgbench_accounts pgbench_branches pgbench_tellers pgbench_history; do
    psql -q -h 127.0.0.1 -p "$port" -U postgres -c "COPY (SELECT * FROM $t) TO STDOUT" bench >/dev/null
  done
}
t0=$(now)
read_all "$oldp"
read_all "$newp"
t_seq=$(secs "$t0" "$(now)")
t0=$(now)
read_all "$oldp" &
reader=$!
read_all "$newp"
wait "$reader"  # not a bare `wait`: pgtandem is a child too
t_par=$(secs "$t0" "$(now)")
load_after=$(load)

rate() { python3 -c "print(f'{$rows / $1:,.0f}')"; }
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
echo
echo "pgbench -i -s $scale: $rows rows; jobs $jobs; wal_level $(pg_psql new -tAc 'SHOW wal_level' postgres); load average before $load_before, after $load_after"
echo "verify exit $verify_rc (0: identical)"
echo
grep -h '^mirror barrier\|^snapshot\|^mirror .*journaled' "$PG_WORKDIR/backfill.log" || true
echo "on new during the backfill: $autovac"
echo
cpu_cols() { local a; read -r -a a <<<"$1"; printf '%s / %s / %s | %s' "${a[0]}" "${a[1]}" "${a[2]}" "${a[3]}"; }
cpu_total() { local a; read -r -a a <<<"$1"; echo "${a[3]}"; }
printf '| step | seconds | rows/s | vs pgtandem backfill | CPU s old / new / tool | CPU s total | CPU vs backfill |\n|---|---:|---:|---:|---:|---:|---:|\n'
printf '| pgtandem backfill (schema-only new) | %s | %s | 1.00 | %s | 1.00 |\n' "$t_backfill" "$(rate "$t_backfill")" "$(cpu_cols "$c_backfill")"
printf '| pg_dump -Fd -j%s + pg_restore -j%s | %s | %s | %s | %s | %s |\n' "$jobs" "$jobs" "$t_restore" "$(rate "$t_restore")" "$(ratio "$t_restore" "$t_backfill")" "$(cpu_cols "$c_restore")" "$(ratio "$(cpu_total "$c_restore")" "$(cpu_total "$c_backfill")")"
printf '| pgcopydb clone (table/index jobs %s) | %s | %s | %s | %s | %s |\n' "$jobs" "$t_copydb" "$(rate "$t_copydb")" "$(ratio "$t_copydb" "$t_backfill")" "$(cpu_cols "$c_copydb")" "$(ratio "$(cpu_total "$c_copydb")" "$(cpu_total "$c_backfill")")"
printf '\n| step | seconds | vs sequential read | vs parallel read |\n|---|---:|---:|---:|\n'
printf '| pgtandem verify | %s | %s | %s |\n' "$t_verify" "$(ratio "$t_verify" "$t_seq")" "$(ratio "$t_verify" "$t_par")"
printf '| read of both, old then new | %s | 1.00 | |\n' "$t_seq"
printf '| read of both, at once | %s | | 1.00 |\n' "$t_par"

[[ ${BF_SKIP_TPCB:-} == 1 ]] && exit 0
# 5. Client latency under fixed-rate TPC-B through pgtandem, without and with a backfill.
p99() {  # p50 and p99 (ms) of pgbench -l logs (3rd column: latency in us)
  cat "$@" | python3 -c "
import sys
v = sorted(int(l.split()[2]) for l in sys.stdin if l.strip())
print(f'{v[len(v)//2]/1000:.2f} {v[min(len(v)-1, int(len(v)*0.99))]/1000:.2f} {len(v)}')"
}
tpcb() {  # tpcb NAME: fixed-rate TPC-B through pgtandem for tpcb_secs; logs in $PG_WORKDIR/NAME
  mkdir -p "$PG_WORKDIR/$1"
  (cd "$PG_WORKDIR/$1" && pgbench -n -c 4 -j 2 -R "$tpcb_rate" -T "$tpcb_secs" -l -h 127.0.0.1 \
    -p "$PGTANDEM_PORT" -U postgres bench >"$PG_WORKDIR/$1.log" 2>&1) ||
    { tail -n 20 "$PG_WORKDIR/$1.log" >&2; pg_die "pgbench $1 failed"; }
}
for t in pgbench_accounts pgbench_branches pgbench_tellers pgbench_history; do
  pg_psql new -c "TRUNCATE $t" bench >/dev/null
done
rm -rf "$PG_WORKDIR/state/backfill"
tpcb tpcb_alone
read -r a50 a99 an < <(p99 "$PG_WORKDIR"/tpcb_alone/pgbench_log.*)
printf '\n| TPC-B -R %s through pgtandem, %s s | transactions | p50 ms | p99 ms | p99 vs alone |\n|---|---:|---:|---:|---:|\n' \
  "$tpcb_rate" "$tpcb_secs"
printf '| alone | %s | %s | %s | 1.00 |\n' "$an" "$a50" "$a99"
for rate in $max_rate; do
  for t in pgbench_accounts pgbench_branches pgbench_tellers pgbench_history; do
    pg_psql new -c "TRUNCATE $t" bench >/dev/null
  done
  rm -rf "$PG_WORKDIR/state/backfill"
  "$bin" backfill --config "$conf" --user postgres --dbname bench --jobs "$jobs" "${chunk[@]}" "${mode[@]}" \
    --max-rate "$rate" --state-dir "$PG_WORKDIR/state" >"$PG_WORKDIR/backfill-tpcb-$rate.log" 2>&1 &
  bf=$!
  tpcb "tpcb_backfill_$rate"
  kill "$bf" 2>/dev/null || true
  wait "$bf" 2>/dev/null || true
  read -r b50 b99 bn < <(p99 "$PG_WORKDIR/tpcb_backfill_$rate"/pgbench_log.*)
  copied=$(grep -o '"rows":[0-9]*' "$PG_WORKDIR/state/backfill-state.json" | head -n 1 | cut -d: -f2)
  printf '| with backfill --max-rate %s (%s rows copied meanwhile) | %s | %s | %s | %s |\n' "$rate" "$copied" \
    "$bn" "$b50" "$b99" "$(ratio "$b99" "$a99")"
done

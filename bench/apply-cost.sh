#!/usr/bin/env bash
# What a target spends per TPC-B journal entry, by how the entry is sent (issue 15; docs/design.md, "Catch-up"):
#   single     BEGIN, the record's INSERT .. ON CONFLICT, TPC-B's five statements, END: a Sync each (the old engine)
#   pipe       the same with one Sync per entry (pgbench \startpipeline)
#   multipipe  G entries as G transactions, one Sync
#   grouppipe  G entries as one transaction with one record, one Sync
#   group      G entries as one transaction, a Sync per statement
# One throwaway cluster (scale 10), one pgbench client, -M prepared; the server's CPU from /proc.
# Usage: sudo bench/apply-cost.sh   (env: N=20000 entries per variant, G=10)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$root/scripts/lib/pg.sh"
N=${N:-20000}
pg_init
pg_cluster_start new
p=$(pg_port new)
pg_psql new -c "CREATE DATABASE bench" postgres >/dev/null
pgbench -i -s 10 -q -h 127.0.0.1 -p "$p" -U postgres bench >/dev/null 2>&1
pg_psql new -c "CREATE TABLE m (session text PRIMARY KEY, seq bigint NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())" bench >/dev/null
pg_psql new -c "VACUUM ANALYZE" bench >/dev/null
body='\set aid random(1, 1000000)
\set bid random(1, 10)
\set tid random(1, 100)
\set delta random(-5000, 5000)
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid;
UPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = :bid;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP);'
mark='INSERT INTO m (session, seq) VALUES (:client_id::text, :seq) ON CONFLICT (session) DO UPDATE SET seq = EXCLUDED.seq, applied_at = now();'
d=$PG_WORKDIR
{ echo '\set seq random(1, 1000000000)'; echo 'BEGIN;'; echo "$mark"; echo "$body"; echo 'END;'; } > $d/single.sql
{ echo '\set seq random(1, 1000000000)'; echo '\startpipeline'; echo 'BEGIN;'; echo "$mark"; echo "$body"; echo 'END;'; echo '\endpipeline'; } > $d/pipe.sql
G=${G:-10}
{ echo '\set seq random(1, 1000000000)'; echo 'BEGIN;'; echo "$mark"; for i in $(seq $G); do echo "$body"; done; echo 'END;'; } > $d/group.sql
{ echo '\set seq random(1, 1000000000)'; echo '\startpipeline'; echo 'BEGIN;'; echo "$mark"; for i in $(seq $G); do echo "$body"; done; echo 'END;'; echo '\endpipeline'; } > $d/grouppipe.sql
{ echo '\set seq random(1, 1000000000)'; echo '\startpipeline'; for i in $(seq $G); do echo 'BEGIN;'; echo "$mark"; echo "$body"; echo 'END;'; done; echo '\endpipeline'; } > $d/multipipe.sql
pg_psql new -c "ALTER SYSTEM SET synchronous_commit = off" bench >/dev/null; pg_psql new -c "SELECT pg_reload_conf()" bench >/dev/null
run() { local name=$1 per=$2 t=$3; local a b t0 t1
  a=$(pg_cluster_cpu_us new); t0=$(date +%s.%N)
  pgbench -n -M prepared -c 1 -t "$t" -f "$d/$name.sql" -h 127.0.0.1 -p "$p" -U postgres bench >/dev/null
  t1=$(date +%s.%N); b=$(pg_cluster_cpu_us new)
  python3 -c "n=$t*$per; print(f'%-10s entries {n:6d} wall %.2f s  %7.0f entries/s  new cpu %.0f us/entry' % ('$name', $t1-$t0, n/($t1-$t0), ($b-$a)/n))"; }
for r in 1 2; do
run single 1 $N; run pipe 1 $N; run multipipe $G $((N/G)); run group $G $((N/G)); run grouppipe $G $((N/G))
done
pg_cluster_stop new || true

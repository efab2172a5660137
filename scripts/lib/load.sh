# shellcheck shell=bash
# Load helpers shared by scripts/demo.sh and scripts/soak.sh: client workloads that run through
# pgtandem for a long time, restarted when they end, with their stderr time-stamped; and reading
# pgtandem's /metrics scrapes. Source after scripts/lib/pg.sh.
#
#   pg_write_tpcb_script FILE        TPC-B whose history key and time come from the client
#   pg_run_loop DIR STOPFILE CMD...  run CMD again and again until STOPFILE exists
#   pg_msum FILE NAME [label=value...]   a metric's value in a scrape, summed over other labels

# Prefix every line with the epoch second it was read at.
pg_stamp() { while IFS= read -r line; do printf '%(%s)T %s\n' -1 "$line"; done; }

# TPC-B as pgbench's built-in tpcb-like, except that the history row's key and time come from the
# client, as they must in an application whose writes are mirrored: the mirror replays the
# statement on new, where nextval() and now() would give other values than on old (pgtandem counts
# such writes in pgtandem_mirror_nondeterministic_writes_total, and verify finds them). Needs
# pgbench_history.hid (bigint primary key) and `-D scale=N -D start=EPOCH-SECONDS` (the history
# rows' time; a number, so that the script runs in -M simple and -M prepared alike).
pg_write_tpcb_script() {
  cat >"$1" <<'EOF'
\set aid random(1, 100000 * :scale)
\set bid random(1, 1 * :scale)
\set tid random(1, 10 * :scale)
\set delta random(-5000, 5000)
\set hid random(1, 1000000000000000000)
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid;
UPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = :bid;
INSERT INTO pgbench_history (hid, tid, bid, aid, delta, mtime)
  VALUES (:hid, :tid, :bid, :aid, :delta, timestamp 'epoch' + make_interval(secs => :start));
END;
EOF
}

# pg_run_loop DIR STOPFILE CMD...: run CMD (a command, or a function that ends in `exec`, so that
# the pid is the client's own) until STOPFILE exists; start it again 1 s after it ends. Run it in
# the background. Each run's stdout, stderr (stamped: pg_stamp) and "exit-code end-epoch" stay in
# DIR/seg-N.{out,err,rc}; DIR/pid holds the running client's pid (for fault injection). On TERM it
# stops the client (SIGTERM: a background job of a non-interactive shell ignores SIGINT) and exits.
pg_run_loop() {
  local d=$1 stop=$2
  shift 2
  local seq=0 child='' rc
  mkdir -p "$d"
  trap 'if [[ -n $child ]]; then kill -TERM "$child" 2>/dev/null; fi; exit 0' TERM
  while [[ ! -e $stop ]]; do
    seq=$((seq + 1))
    "$@" >"$d/seg-$seq.out" 2> >(pg_stamp >"$d/seg-$seq.err") </dev/null &
    child=$!
    echo "$child" >"$d/pid"
    rc=0
    { wait "$child"; } 2>/dev/null || rc=$? # no "Killed" line from bash when a fault kills it
    child=''
    echo "$rc $EPOCHSECONDS" >"$d/seg-$seq.rc"
    [[ -e $stop ]] || sleep 1
  done
}

# pg_msum FILE NAME [label=value...]: a metric's value in a scrape, summed over the other labels.
pg_msum() {
  local file=$1 name=$2
  shift 2
  awk -v name="$name" -v want="$*" '
    BEGIN { n = split(want, w, " ") }
    /^#/ { next }
    {
      key = $0
      sub(/[{ ].*/, "", key)
      if (key != name) next
      for (i = 1; i <= n; i++) {
        split(w[i], kv, "=")
        if (index($0, kv[1] "=\"" kv[2] "\"") == 0) next
      }
      s += $NF
    }
    END { printf "%.6f\n", s }' "$file" 2>/dev/null || echo 0
}

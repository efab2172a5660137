# shellcheck shell=bash
# Helpers for throwaway PostgreSQL 15 clusters and helper processes (pgbouncer, pgtandem) on
# loopback, for scripts/demo.sh, bench/run.sh and anything else that needs a real server.
#
#   source scripts/lib/pg.sh
#   pg_init                      # temp workdir + cleanup trap (EXIT/INT/TERM)
#   pg_cluster_start old         # initdb + start on a free port; pg_port old -> port
#   pg_cluster_start new 6543    # or on a given port
#   pg_cluster_start new "" 10.200.0.2 NETNS   # or on another address, in a network namespace
#   pg_host new -> its address; pg_cluster_restart new; pg_cluster_pids new (postmaster + children)
#   pg_spawn_bg LOG CMD...       # background process, stopped on cleanup; pid in PG_LAST_PID
#   pg_wait_tcp PORT [SECONDS]
#
# initdb, pg_ctl and pgbouncer refuse to run as root: when we are root they run as the
# unprivileged `postgres` user (pg_as_user). Everything lives under one temp dir that cleanup removes.
# Set PG_KEEP=1 to keep the workdir (logs) after exit.

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_USER=${PG_USER:-postgres}
PG_WORKDIR=${PG_WORKDIR:-}
declare -gA PG_PORTS=()
declare -gA PG_DATADIRS=()
declare -gA PG_HOSTS=()
declare -gA PG_NETNS=()
# Functions pg_cleanup calls last (after the clusters stopped), e.g. netns_destroy.
declare -ga PG_CLEANUP_HOOKS=()
declare -ga PG_CLUSTERS=()
declare -ga PG_BG_PIDS=()
# Outputs for callers.
PG_LAST_PID=''
PG_PGBOUNCER_PORT=''
PGTANDEM_PORT='' PGTANDEM_ADMIN_PORT='' PGTANDEM_PID='' PGTANDEM_LOG=''

pg_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
pg_die() {
  pg_log "error: $*"
  exit 1
}

# Prefix that runs a command as the unprivileged user when we are root (empty otherwise). setpriv
# execs in place (no fork, unlike runuser/su), so `"${PG_AS_USER[@]}" cmd &` leaves $! as the
# real process id.
declare -ga PG_AS_USER=()
if [[ $EUID -eq 0 ]]; then
  PG_AS_USER=(setpriv "--reuid=$PG_USER" "--regid=$PG_USER" --init-groups --)
fi
pg_as_user() { "${PG_AS_USER[@]}" "$@"; }

# A free TCP port on 127.0.0.1, below the kernel's ephemeral range so that the many client
# sockets pgbench opens can never hold it.
pg_free_port() {
  python3 - <<'EOF'
import random, socket
lo, _ = (int(x) for x in open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
hi = min(lo - 1, 32000)
for _ in range(200):
    port = random.randint(15000, hi)
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
    print(port)
    break
else:
    raise SystemExit("no free port found")
EOF
}

pg_init() {
  if [[ -z $PG_WORKDIR ]]; then
    PG_WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/pgtandem-pg.XXXXXX")
  fi
  mkdir -p "$PG_WORKDIR"
  # The unprivileged user must reach the data dirs, sockets and logs.
  if [[ $EUID -eq 0 ]]; then
    id "$PG_USER" >/dev/null 2>&1 || pg_die "user $PG_USER does not exist (install postgresql-15: scripts/install-deps.sh)"
    chown "$PG_USER:" "$PG_WORKDIR"
  fi
  chmod 755 "$PG_WORKDIR"
  [[ -x $PG_BIN/initdb ]] || pg_die "$PG_BIN/initdb not found (scripts/install-deps.sh installs postgresql-15)"
  trap pg_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# Stop every process and cluster we started, then remove the workdir. Safe to call twice.
pg_cleanup() {
  local rc=$?
  trap - EXIT
  local pid i
  for ((i = ${#PG_BG_PIDS[@]} - 1; i >= 0; i--)); do
    pid=${PG_BG_PIDS[i]}
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PG_BG_PIDS[@]}"; do
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  done
  PG_BG_PIDS=()
  local name
  for name in "${PG_CLUSTERS[@]}"; do
    pg_cluster_stop "$name" || true
  done
  PG_CLUSTERS=()
  local hook
  for hook in "${PG_CLEANUP_HOOKS[@]}"; do "$hook" || true; done
  PG_CLEANUP_HOOKS=()
  if [[ -n $PG_AUTOGROUP_NICE_SAVED ]]; then
    echo "$PG_AUTOGROUP_NICE_SAVED" >"/proc/$$/autogroup" 2>/dev/null || true
    PG_AUTOGROUP_NICE_SAVED=''
  fi
  if [[ -n $PG_WORKDIR && -d $PG_WORKDIR ]]; then
    if [[ ${PG_KEEP:-0} == 1 ]]; then
      pg_log "kept $PG_WORKDIR"
    else
      rm -rf "$PG_WORKDIR"
    fi
  fi
  return "$rc"
}

# Scheduling priority for benchmarks on a machine busy with other work (root only). With
# autogroup scheduling (kernel.sched_autogroup_enabled, the default) a process's nice value only
# counts inside its session's group, so the group's nice is raised too: for our own session (put
# back on cleanup) and for each postmaster, which pg_ctl starts in a session of its own.
PG_BOOST=${PG_BOOST:-0}
PG_AUTOGROUP_NICE_SAVED=''
pg_boost_pid() {
  local pid=$1
  renice -n -20 -p "$pid" >/dev/null 2>&1 || true
  if [[ -w /proc/$pid/autogroup ]]; then echo -20 >"/proc/$pid/autogroup" 2>/dev/null || true; fi
}
pg_boost_self() {
  [[ $EUID -eq 0 ]] || pg_die "raising the priority needs root"
  PG_BOOST=1
  if [[ -r /proc/$$/autogroup && -z $PG_AUTOGROUP_NICE_SAVED ]]; then
    PG_AUTOGROUP_NICE_SAVED=$(sed -nE 's/.* nice (-?[0-9]+)$/\1/p' "/proc/$$/autogroup")
  fi
  pg_boost_pid $$
}

pg_port() { printf '%s\n' "${PG_PORTS[$1]:?no cluster named $1}"; }
pg_host() { printf '%s\n' "${PG_HOSTS[$1]:?no cluster named $1}"; }
pg_datadir() { printf '%s\n' "${PG_DATADIRS[$1]:?no cluster named $1}"; }

# Create and start a cluster tuned for throwaway use (no fsync, trust auth on loopback).
# pg_cluster_start NAME [PORT] [HOST] [NETNS]: HOST (default 127.0.0.1) is the one address it
# listens on; with NETNS it runs in that network namespace (scripts/lib/netns.sh), trusting HOST's
# /30 network too (the other end of the namespace's veth pair).
pg_cluster_start() {
  local name=$1 port=${2:-} host=${3:-127.0.0.1} netns=${4:-}
  [[ -n $PG_WORKDIR ]] || pg_die "call pg_init first"
  [[ -n $port ]] || port=$(pg_free_port)
  local dir=$PG_WORKDIR/pg-$name
  local data=$dir/data
  mkdir -p "$dir"
  [[ $EUID -eq 0 ]] && chown "$PG_USER:" "$dir"
  (cd "$dir" && pg_as_user "$PG_BIN/initdb" -D "$data" -U postgres -A trust -E UTF8 \
    --locale=C --no-sync >"$dir/initdb.log" 2>&1) ||
    {
      cat "$dir/initdb.log" >&2
      pg_die "initdb for $name failed"
    }
  cat >>"$data/postgresql.conf" <<EOF

# pgtandem throwaway cluster ($name)
listen_addresses = '$host'
port = $port
unix_socket_directories = '$dir'
max_connections = 200
shared_buffers = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
wal_level = minimal
max_wal_senders = 0
max_wal_size = 2GB
checkpoint_timeout = 30min
autovacuum_naptime = 10s
logging_collector = off
log_min_messages = warning
log_line_prefix = '%m [%p] $name '
EOF
  if [[ $host != 127.0.0.1 ]]; then
    printf 'host all all %s/30 trust\n' "$host" >>"$data/pg_hba.conf"
  fi
  PG_PORTS[$name]=$port
  PG_DATADIRS[$name]=$data
  PG_HOSTS[$name]=$host
  PG_NETNS[$name]=$netns
  PG_CLUSTERS+=("$name")
  pg_cluster_run "$name"
  pg_log "postgres '$name' on $host:$port${netns:+ (network namespace $netns)} (data $data)"
}

# Start a created cluster's postmaster (again), in its network namespace if it has one.
pg_cluster_run() {
  local name=$1 dir data=${PG_DATADIRS[$1]} netns=${PG_NETNS[$1]:-}
  dir=$(dirname "$data")
  local -a in_ns=()
  [[ -n $netns ]] && in_ns=(ip netns exec "$netns")
  (cd "$dir" && "${in_ns[@]}" "${PG_AS_USER[@]}" "$PG_BIN/pg_ctl" -D "$data" -l "$dir/server.log" \
    -w -t 60 start >/dev/null) ||
    {
      tail -n 30 "$dir/server.log" >&2
      pg_die "could not start cluster $name"
    }
  if ((PG_BOOST)); then pg_boost_pid "$(head -n 1 "$data/postmaster.pid")"; fi
}

# pg_cluster_restart NAME [MODE]: stop (pg_ctl -m MODE, default fast) and start again.
pg_cluster_restart() {
  local name=$1 mode=${2:-fast} data=${PG_DATADIRS[$1]}
  (cd "$PG_WORKDIR" && pg_as_user "$PG_BIN/pg_ctl" -D "$data" -m "$mode" -w -t 60 stop \
    >/dev/null) || pg_die "could not stop cluster $name"
  pg_cluster_run "$name"
}

# The postmaster's pid and its children's (backends, background workers), one per line.
pg_cluster_pids() {
  local pm
  pm=$(head -n 1 "$(pg_datadir "$1")/postmaster.pid") || return 1
  echo "$pm"
  pgrep -P "$pm" || true
}

pg_cluster_stop() {
  local name=$1
  local data=${PG_DATADIRS[$name]:-}
  [[ -n $data && -f $data/postmaster.pid ]] || return 0
  # A cluster a test froze (SIGSTOP) would never act on the stop signal.
  pg_cluster_pids "$name" 2>/dev/null | xargs -r kill -CONT 2>/dev/null || true
  (cd "$PG_WORKDIR" && pg_as_user "$PG_BIN/pg_ctl" -D "$data" -m immediate -w -t 30 stop \
    >/dev/null 2>&1)
}

# psql against a cluster by name: pg_psql NAME [psql args...]
pg_psql() {
  local name=$1
  shift
  psql -X -q -v ON_ERROR_STOP=1 -h "$(pg_host "$name")" -p "$(pg_port "$name")" -U postgres "$@"
}

# Start a command in the background with output to LOG; remember it for cleanup.
# pg_spawn_bg LOG CMD...   (prefix CMD with "${PG_AS_USER[@]}" to drop privileges; not with a
# shell function, which would run in a subshell whose pid is not the command's)
pg_spawn_bg() {
  local log=$1
  shift
  "$@" >"$log" 2>&1 </dev/null &
  PG_LAST_PID=$!
  PG_BG_PIDS+=("$PG_LAST_PID")
}

# Wait until something accepts TCP connections on 127.0.0.1:PORT. pg_wait_tcp PORT [SECONDS] [PID]
# With PID, give up early when that process has exited.
pg_wait_tcp() {
  local port=$1 secs=${2:-20} pid=${3:-}
  local deadline=$((SECONDS + secs))
  while ((SECONDS < deadline)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      return 0
    fi
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
      return 1
    fi
    sleep 0.1
  done
  return 1
}

# Stop one process started with pg_spawn_bg (TERM, then KILL after 5 s).
pg_stop_pid() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# Start PgBouncer in front of cluster NAME, as the unprivileged user.
# pg_pgbouncer_start NAME DBNAME [POOL_SIZE] [POOL_MODE] [MAX_CLIENT_CONN]
#   -> port in PG_PGBOUNCER_PORT, pid in PG_LAST_PID (session mode and 200 clients by default)
pg_pgbouncer_start() {
  local name=$1 db=$2 pool=${3:-32} mode=${4:-session} max_clients=${5:-200}
  local dir=$PG_WORKDIR/pgbouncer-$name
  [[ $mode == session ]] || dir+=-$mode
  mkdir -p "$dir"
  local port
  port=$(pg_free_port)
  printf '"postgres" ""\n' >"$dir/userlist.txt"
  cat >"$dir/pgbouncer.ini" <<EOF
[databases]
$db = host=$(pg_host "$name") port=$(pg_port "$name") dbname=$db

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = $mode
max_client_conn = $max_clients
default_pool_size = $pool
server_login_retry = 1
logfile =
pidfile =
log_connections = 0
log_disconnections = 0
EOF
  [[ $EUID -eq 0 ]] && chown -R "$PG_USER:" "$dir"
  pg_spawn_bg "$dir/pgbouncer.log" "${PG_AS_USER[@]}" /usr/sbin/pgbouncer "$dir/pgbouncer.ini"
  pg_wait_tcp "$port" 20 "$PG_LAST_PID" || {
    cat "$dir/pgbouncer.log" >&2
    pg_die "pgbouncer did not start"
  }
  # shellcheck disable=SC2034  # read by callers
  PG_PGBOUNCER_PORT=$port
  pg_log "pgbouncer ($mode mode) on 127.0.0.1:$port -> $name"
}

PG_CLK_TCK=$(getconf CLK_TCK)

# CPU ticks of a process from /proc/PID/stat into PG_TICKS (no subshell, so that reading it adds
# no child to the caller): pg_stat_ticks PID [with_children]
# utime+stime (all threads); with_children=1 adds cutime+cstime (children it has waited for).
PG_TICKS=0
pg_stat_ticks() {
  local pid=$1 children=${2:-0} stat
  read -r stat <"/proc/$pid/stat" || return 1
  # Field 2 (comm) may contain spaces; everything after the last ')' is fixed-format, starting at
  # field 3: utime (14) and stime (15) are at indexes 11 and 12, cutime and cstime at 13 and 14.
  local -a f
  read -r -a f <<<"${stat##*) }"
  PG_TICKS=$((f[11] + f[12]))
  if ((children)); then PG_TICKS=$((PG_TICKS + f[13] + f[14])); fi
}

# Its system (kernel) time alone, in microseconds: how much of a proxy's CPU no user-space change
# can remove.
pg_sys_us() {
  local stat
  read -r stat <"/proc/$1/stat" || return 1
  local -a f
  read -r -a f <<<"${stat##*) }"
  echo $((f[12] * 1000000 / PG_CLK_TCK))
}

# CPU time (user+system) of a process in microseconds.
pg_cpu_us() {
  pg_stat_ticks "$1" || return 1
  echo $((PG_TICKS * 1000000 / PG_CLK_TCK))
}

# CPU time (user+system) in microseconds of a process's threads whose name starts with PREFIX
# (pgtandem names its threads pgt-worker-N and pgt-link-N): pg_threads_cpu_us PID PREFIX.
# 0 when none matches (an older pgtandem's threads are all named "pgtandem").
pg_threads_cpu_us() {
  local pid=$1 prefix=$2 task comm stat ticks=0
  local -a f
  for task in /proc/"$pid"/task/*; do
    read -r comm <"$task/comm" 2>/dev/null || continue
    [[ $comm == "$prefix"* ]] || continue
    read -r stat <"$task/stat" 2>/dev/null || continue
    read -r -a f <<<"${stat##*) }"
    ticks=$((ticks + f[11] + f[12]))
  done
  echo $((ticks * 1000000 / PG_CLK_TCK))
}

# CPU time in microseconds of a PostgreSQL cluster: the postmaster, its live children (backends,
# background workers) and the children it has reaped. Grows monotonically over the cluster's life.
# A backend that has exited but is not reaped yet (a zombie) shows no CPU time anywhere, so wait
# (up to 2 s) until the postmaster has reaped them all.
pg_cluster_cpu_us() {
  local pm ticks child zombies children
  pm=$(head -n 1 "$(pg_datadir "$1")/postmaster.pid")
  for _ in $(seq 100); do
    children=$(pgrep -P "$pm" || true)
    zombies=$(ps -o stat= -p "${children//$'\n'/,}" 2>/dev/null | grep -c '^Z' || true)
    [[ $zombies == 0 ]] && break
    sleep 0.02
  done
  pg_stat_ticks "$pm" 1 || return 1
  ticks=$PG_TICKS
  for child in $children; do
    if pg_stat_ticks "$child" 2>/dev/null; then ticks=$((ticks + PG_TICKS)); fi
  done
  echo $((ticks * 1000000 / PG_CLK_TCK))
}

# Start pgtandem in front of clusters OLD and NEW (primary OLD), on free ports.
# pgtandem_start BIN OLD NEW [WORKERS] [LOGNAME]
#   -> PGTANDEM_PORT, PGTANDEM_ADMIN_PORT, PGTANDEM_PID, PGTANDEM_LOG
# PGTANDEM_TOML_TOP (top-level keys), PGTANDEM_TOML_TARGET (keys for both [targets.*]),
# PGTANDEM_TOML_ADMIN (keys for [admin], e.g. a token) and PGTANDEM_TOML_TAIL (extra tables) are
# added to the config;
# @DIR@ in them stands for the instance's own directory (journal files and the like).
pgtandem_start() {
  local bin=$1 old=$2 new=$3 workers=${4:-2} name=${5:-pgtandem}
  local dir=$PG_WORKDIR/$name
  mkdir -p "$dir"
  local port admin
  port=$(pg_free_port)
  admin=$(pg_free_port)
  while [[ $admin == "$port" ]]; do admin=$(pg_free_port); done
  local top=${PGTANDEM_TOML_TOP:-} tail=${PGTANDEM_TOML_TAIL:-} target=${PGTANDEM_TOML_TARGET:-}
  # pgtandem's state (journal, crash-window marker) in the instance's directory, never the cwd.
  # Only with mirroring (the one user of the state dir): a relay-only config stays readable by
  # builds older than the key, which the before/after benchmarks run.
  local state=''
  [[ $top == *"mirror_writes = true"* ]] && state="state_dir = \"$dir/state\""
  cat >"$dir/pgtandem.toml" <<EOT
${top//@DIR@/$dir}
primary = "old"
workers = $workers
$state

[listen]
addresses = ["127.0.0.1:$port"]

[targets.old]
host = "$(pg_host "$old")"
port = $(pg_port "$old")
$target

[targets.new]
host = "$(pg_host "$new")"
port = $(pg_port "$new")
$target

[admin]
listen = "127.0.0.1:$admin"
${PGTANDEM_TOML_ADMIN:-}

${tail//@DIR@/$dir}
EOT
  "$bin" --check-config "$dir/pgtandem.toml" >"$dir/check.log" 2>&1 || {
    cat "$dir/check.log" >&2
    pg_die "$bin rejected $dir/pgtandem.toml"
  }
  PGTANDEM_LOG=$dir/pgtandem.log
  pg_spawn_bg "$PGTANDEM_LOG" "$bin" --config "$dir/pgtandem.toml"
  PGTANDEM_PID=$PG_LAST_PID
  if ! pg_wait_tcp "$port" 20 "$PGTANDEM_PID" || ! pg_wait_tcp "$admin" 10 "$PGTANDEM_PID"; then
    tail -n 50 "$PGTANDEM_LOG" >&2
    pg_die "pgtandem did not start ($bin)"
  fi
  # shellcheck disable=SC2034  # read by callers
  PGTANDEM_PORT=$port PGTANDEM_ADMIN_PORT=$admin
  pg_log "pgtandem ($name) on 127.0.0.1:$port, admin 127.0.0.1:$admin -> old:$(pg_port "$old") new:$(pg_port "$new")"
}

# Run pgbench with the given arguments; print "tps latency_ms transactions cpu_us" (from its
# report; cpu_us is pgbench's own CPU time). The full output goes to LOG.
# Call it in a command substitution: pg_pgbench LOG PGBENCH_ARGS...
pg_pgbench() {
  local log=$1
  shift
  local me=$BASHPID before cpu
  # Only pgbench is waited for between the two readings, so the difference is its CPU time.
  pg_stat_ticks "$me" 1
  before=$PG_TICKS
  if ! pgbench "$@" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    pg_die "pgbench $* failed"
  fi
  pg_stat_ticks "$me" 1
  cpu=$(((PG_TICKS - before) * 1000000 / PG_CLK_TCK))
  local tps lat txns
  tps=$(sed -nE 's/^tps = ([0-9.]+) .*/\1/p' "$log" | head -n 1)
  lat=$(sed -nE 's/^latency average = ([0-9.]+) ms.*/\1/p' "$log" | head -n 1)
  txns=$(sed -nE 's/^number of transactions actually processed: ([0-9]+).*/\1/p' "$log" | head -n 1)
  [[ -n $tps && -n $lat && -n $txns ]] || {
    cat "$log" >&2
    pg_die "could not parse pgbench output"
  }
  printf '%s %s %s %s\n' "$tps" "$lat" "$txns" "$cpu"
}

# pgtandem under valgrind's callgrind (instruction counts: they hold on a busy machine).
# pgtandem_callgrind_start BIN NAME: writes NAME's config with pgtandem_start (PGTANDEM_TOML_TOP/
# TAIL apply), then runs it again under callgrind, one worker; PGTANDEM_PORT is where it listens.
# pgtandem_callgrind_stop: stops it and sets PGTANDEM_CALLGRIND_TOTAL to its instruction count
# (not in a $(...) subshell: it waits for valgrind, which only this shell can).
pgtandem_callgrind_start() {
  local bin=$1 name=$2
  pgtandem_start "$bin" old new 1 "$name"
  pg_stop_pid "$PGTANDEM_PID"
  PGTANDEM_CALLGRIND_OUT=$PG_WORKDIR/$name/callgrind.out
  valgrind --tool=callgrind --callgrind-out-file="$PGTANDEM_CALLGRIND_OUT" "$bin" \
    --config "$PG_WORKDIR/$name/pgtandem.toml" >"$PG_WORKDIR/$name/valgrind.log" 2>&1 &
  PGTANDEM_CALLGRIND_PID=$!
  pg_wait_tcp "$PGTANDEM_PORT" 60 "$PGTANDEM_CALLGRIND_PID" || pg_die "pgtandem under valgrind did not start"
}
pgtandem_callgrind_stop() {
  kill -TERM "$PGTANDEM_CALLGRIND_PID"
  wait "$PGTANDEM_CALLGRIND_PID" || true
  PGTANDEM_CALLGRIND_TOTAL=$(callgrind_annotate "$PGTANDEM_CALLGRIND_OUT" 2>/dev/null |
    grep "PROGRAM TOTALS" | awk '{ gsub(",", "", $1); print $1 }' || true)
}

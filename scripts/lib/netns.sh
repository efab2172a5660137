# shellcheck shell=bash
# A network namespace joined to this one by a veth pair, to put a server behind a link whose delay
# and loss we control (scripts/soak.sh). Needs root (CAP_NET_ADMIN) and iproute2. Source after
# scripts/lib/pg.sh: the namespace is removed by pg_cleanup (a cleanup hook), after the clusters
# stopped, also on failure.
#
#   netns_create                 -> NETNS_NAME, NETNS_ADDR (the namespace's side), NETNS_HOST_ADDR
#                                   (ours); NETNS_WHY says why not when it returns non-zero
#   pg_cluster_start new "" "$NETNS_ADDR" "$NETNS_NAME"
#   netns_impair DELAY_MS LOSS_PCT   delay and loss on both directions of the link
#   netns_clear                  the link as it was
#
# Delay and loss: tc netem when the kernel has it. Otherwise (a kernel built without sch_netem,
# as on this project's machines) a substitute, named in NETNS_IMPAIR_HOW:
#   - delay: a token bucket (tbf) that caps the link's rate; what exceeds it waits in the queue,
#     up to DELAY_MS (beyond that it is dropped): a congested link's delay, which grows with the
#     load instead of being fixed;
#   - loss: a tc BPF classifier (clsact egress) that drops LOSS_PCT % of the packets at random,
#     compiled here with clang -target bpf.
# Addresses: a /30 in 10.200.0.0/16 picked from our pid (two soaks at once do not collide); the
# only traffic is between our side and the namespace.

NETNS_NAME='' NETNS_ADDR='' NETNS_HOST_ADDR='' NETNS_WHY='' NETNS_IMPAIR_HOW=''
NETNS_VETH='' NETNS_PEER='' NETNS_HAS_NETEM=0 NETNS_BPF_OBJ='' NETNS_CLANG='' NETNS_TBF_RATE=${NETNS_TBF_RATE:-512kbit}

netns_create() {
  if [[ $EUID -ne 0 ]]; then
    NETNS_WHY="not root: creating a network namespace needs CAP_NET_ADMIN"
    return 1
  fi
  if ! command -v ip >/dev/null || ! command -v tc >/dev/null; then
    NETNS_WHY="ip/tc (iproute2) not installed"
    return 1
  fi
  local n=$(($$ % 16000))
  NETNS_NAME=pgtandem-soak-$$
  NETNS_VETH=pts$$a NETNS_PEER=pts$$b
  NETNS_HOST_ADDR=10.200.$((n / 64)).$(((n % 64) * 4 + 1))
  NETNS_ADDR=10.200.$((n / 64)).$(((n % 64) * 4 + 2))
  PG_CLEANUP_HOOKS+=(netns_destroy)
  if ! {
    ip netns add "$NETNS_NAME" &&
      ip link add "$NETNS_VETH" type veth peer name "$NETNS_PEER" &&
      ip link set "$NETNS_PEER" netns "$NETNS_NAME" &&
      ip addr add "$NETNS_HOST_ADDR/30" dev "$NETNS_VETH" &&
      ip link set "$NETNS_VETH" up &&
      ip -n "$NETNS_NAME" addr add "$NETNS_ADDR/30" dev "$NETNS_PEER" &&
      ip -n "$NETNS_NAME" link set "$NETNS_PEER" up &&
      ip -n "$NETNS_NAME" link set lo up
  } 2>"$PG_WORKDIR/netns.err"; then
    NETNS_WHY="could not set up the namespace: $(tr '\n' ' ' <"$PG_WORKDIR/netns.err")"
    return 1
  fi
  # What this kernel can do.
  if tc qdisc add dev "$NETNS_VETH" root netem delay 1ms 2>/dev/null; then
    NETNS_HAS_NETEM=1
    tc qdisc del dev "$NETNS_VETH" root
    NETNS_IMPAIR_HOW="tc netem (delay and loss) on both ends of the veth pair"
  else
    local why=()
    why+=("no sch_netem in kernel $(uname -r)")
    netns_build_bpf_loss || why+=("no loss: $NETNS_WHY")
    NETNS_IMPAIR_HOW="${why[*]}: delay = tbf rate cap $NETNS_TBF_RATE, queue up to the delay (congestion delay, grows with load)"
    [[ -n $NETNS_BPF_OBJ ]] && NETNS_IMPAIR_HOW+=", loss = tc BPF classifier dropping at random"
  fi
  pg_log "network namespace $NETNS_NAME: $NETNS_HOST_ADDR <-> $NETNS_ADDR ($NETNS_IMPAIR_HOW)"
}

# The loss classifier, for kernels without netem: the drop share is a compile-time constant, one
# object per loss level (compiled at its first use). Probed here with a 0% object.
netns_build_bpf_loss() {
  NETNS_CLANG=$(command -v clang || command -v clang-14 || true)
  if [[ -z $NETNS_CLANG ]]; then
    NETNS_WHY="clang not installed"
    return 1
  fi
  local src=$PG_WORKDIR/soak-loss.c
  cat >"$src" <<'EOF'
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
static unsigned int (*get_prandom_u32)(void) = (void *)BPF_FUNC_get_prandom_u32;
__attribute__((section("classifier"), used)) int soak_loss(struct __sk_buff *skb) {
  (void)skb;
  return (get_prandom_u32() % 10000) < LOSS_PER_10000 ? TC_ACT_SHOT : TC_ACT_OK;
}
char _license[] __attribute__((section("license"), used)) = "GPL";
EOF
  NETNS_BPF_OBJ=$PG_WORKDIR/soak-loss
  local arch
  arch=$(gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)
  # Probe: compile and attach a 0% object.
  if ! "$NETNS_CLANG" -O2 -target bpf -I"/usr/include/$arch" -DLOSS_PER_10000=0 -c "$src" \
    -o "$NETNS_BPF_OBJ-0.o" 2>"$PG_WORKDIR/bpf.err" ||
    ! tc qdisc add dev "$NETNS_VETH" clsact 2>>"$PG_WORKDIR/bpf.err" ||
    ! tc filter add dev "$NETNS_VETH" egress bpf da obj "$NETNS_BPF_OBJ-0.o" sec classifier \
      2>>"$PG_WORKDIR/bpf.err"; then
    NETNS_WHY="tc BPF classifier unavailable ($(head -c 200 "$PG_WORKDIR/bpf.err" | tr '\n' ' '))"
    NETNS_BPF_OBJ=''
    tc qdisc del dev "$NETNS_VETH" clsact 2>/dev/null || true
    return 1
  fi
  tc qdisc del dev "$NETNS_VETH" clsact
}

# netns_tc_both OBJECT VERB ARGS...: `tc OBJECT VERB dev DEV ARGS` on both ends of the link.
netns_tc_both() {
  local obj=$1 verb=$2
  shift 2
  tc "$obj" "$verb" dev "$NETNS_VETH" "$@" && tc -n "$NETNS_NAME" "$obj" "$verb" dev "$NETNS_PEER" "$@"
}

# netns_impair DELAY_MS LOSS_PCT (LOSS_PCT may have decimals: 0.5)
netns_impair() {
  local delay=$1 loss=$2
  [[ -n $NETNS_NAME ]] || return 0
  netns_clear
  if ((NETNS_HAS_NETEM)); then
    netns_tc_both qdisc add root netem delay "${delay}ms" "$((delay / 4))ms" loss "${loss}%"
    return
  fi
  netns_tc_both qdisc add root tbf rate "$NETNS_TBF_RATE" burst 8kb latency "${delay}ms"
  if [[ -n $NETNS_BPF_OBJ ]]; then
    local per10k obj
    per10k=$(awk -v p="$loss" 'BEGIN { printf "%d", p * 100 }')
    obj=$NETNS_BPF_OBJ-$per10k.o
    if [[ ! -f $obj ]]; then
      "$NETNS_CLANG" -O2 -target bpf -I"/usr/include/$(gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)" \
        -DLOSS_PER_10000="$per10k" -c "$PG_WORKDIR/soak-loss.c" -o "$obj"
    fi
    netns_tc_both qdisc add clsact
    netns_tc_both filter add egress bpf da obj "$obj" sec classifier
  fi
}

netns_clear() {
  [[ -n $NETNS_NAME ]] || return 0
  tc qdisc del dev "$NETNS_VETH" root 2>/dev/null || true
  tc -n "$NETNS_NAME" qdisc del dev "$NETNS_PEER" root 2>/dev/null || true
  tc qdisc del dev "$NETNS_VETH" clsact 2>/dev/null || true
  tc -n "$NETNS_NAME" qdisc del dev "$NETNS_PEER" clsact 2>/dev/null || true
}

# Cleanup hook: the veth pair goes with the namespace (deleting one end deletes both).
netns_destroy() {
  [[ -n $NETNS_NAME ]] || return 0
  ip link del "$NETNS_VETH" 2>/dev/null || true
  ip netns del "$NETNS_NAME" 2>/dev/null || true
  NETNS_NAME=''
}

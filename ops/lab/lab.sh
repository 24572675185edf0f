#!/usr/bin/env bash
# The Relay lab: the seeds' scenario (a packet-rate-bound host on a 64 KB MTU
# link talking through a relay to a 1500-byte network) on one machine, built
# from three network namespaces.
#
#   cli  [c-r] 198.18.1.1/24 ==MTU 65520== [r-c] 198.18.1.2/24  relay
#   relay[r-s] 198.18.2.1/24 ==MTU 1500 (or 9000)== [s-r] 198.18.2.2/24  srv
#
# `relay` also forwards IP, so `cli` reaches `srv` routed (the no-relay
# baseline; path MTU 1500, so cli sends ~1500-byte packets).
# TSO/GSO/GRO/LRO are off on every veth end, so each packet costs what it
# costs on a NIC without offloads.
#
# Usage: lab.sh up|down|status [--far-mtu 1500|9000] [--gateway [PORT]]
#                               [--gateway-mode redirect|tproxy]
#        lab.sh exec cli|relay|srv CMD [ARGS...]
# Env:   LAB_PREFIX   namespace name prefix (default "relaylab-"), so several
#                     labs (tests, a bench) can coexist.
# See ops/lab/README.md.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"

PREFIX="${LAB_PREFIX:-relaylab-}"
NS_CLI="${PREFIX}cli"
NS_RELAY="${PREFIX}relay"
NS_SRV="${PREFIX}srv"

CLI_IP=198.18.1.1
RELAY_NEAR_IP=198.18.1.2
RELAY_FAR_IP=198.18.2.1
SRV_IP=198.18.2.2
NEAR_MTU=65520

die() { echo "lab.sh: $*" >&2; exit 1; }

need_root() {
  if [ "$(id -u)" != 0 ]; then
    cat >&2 <<EOF
lab.sh: this needs root.
  The lab creates network namespaces, veth links and sysctls (ip netns, ip link,
  ethtool), which only root (CAP_NET_ADMIN + CAP_SYS_ADMIN) may do.
  Run it as root, e.g.: sudo $0 $*
EOF
    exit 1
  fi
}

# iproute2 and ethtool build the lab; nftables installs the gateway's interception rules.
lab_tools() {
  if [ "$GATEWAY" = 1 ]; then need_tools ip:iproute2 ethtool:ethtool nft:nftables; else need_tools ip:iproute2 ethtool:ethtool; fi
}

ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$1"; }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
link_exists() { ip -n "$1" link show "$2" >/dev/null 2>&1; }

offloads_off() {
  local ns=$1 dev=$2
  # tx-checksumming may stay on (it is free on veth); segmentation and
  # receive coalescing must be off so the MTU decides the packet rate.
  in_ns "$ns" ethtool -K "$dev" tso off gso off gro off >/dev/null 2>&1 \
    || die "ethtool -K $dev tso/gso/gro off failed in $ns"
  # These are not present on every kernel; ignore the ones that are fixed.
  in_ns "$ns" ethtool -K "$dev" lro off >/dev/null 2>&1 || true
  in_ns "$ns" ethtool -K "$dev" rx-gro-list off >/dev/null 2>&1 || true
  in_ns "$ns" ethtool -K "$dev" rx-udp-gro-forwarding off >/dev/null 2>&1 || true
  in_ns "$ns" ethtool -K "$dev" tx-gso-partial off >/dev/null 2>&1 || true
}

lab_down() {
  local ns any=0
  for ns in "$NS_CLI" "$NS_RELAY" "$NS_SRV"; do
    if ns_exists "$ns"; then
      any=1
      # Kill whatever still runs inside, so the namespace really goes away.
      local pids
      pids=$(ip netns pids "$ns" 2>/dev/null || true)
      if [ -n "$pids" ]; then kill $pids 2>/dev/null || true; sleep 0.2; kill -9 $pids 2>/dev/null || true; fi
      ip netns del "$ns" 2>/dev/null || true
    fi
  done
  # Deleting a namespace deletes its veth ends, and with them their peers.
  if [ "$any" = 1 ]; then echo "lab ${PREFIX}*: down"; else echo "lab ${PREFIX}*: already down"; fi
}

lab_up() {
  # On any failure half-way (set -e, die, a signal), leave nothing behind.
  UP_OK=0
  trap 'rc=$?; if [ "$UP_OK" != 1 ]; then echo "lab.sh: up failed (exit $rc), tearing down" >&2; lab_down >&2; exit 1; fi' EXIT
  trap 'exit 130' INT TERM

  local ns
  for ns in "$NS_CLI" "$NS_RELAY" "$NS_SRV"; do
    ns_exists "$ns" || ip netns add "$ns"
    in_ns "$ns" ip link set lo up
  done

  # Links are created inside the namespaces, so their short names never meet
  # the host's or another lab's.
  link_exists "$NS_CLI" c-r || ip -n "$NS_CLI" link add c-r type veth peer name r-c netns "$NS_RELAY"
  link_exists "$NS_RELAY" r-s || ip -n "$NS_RELAY" link add r-s type veth peer name s-r netns "$NS_SRV"

  ip -n "$NS_CLI" link set c-r mtu "$NEAR_MTU"
  ip -n "$NS_RELAY" link set r-c mtu "$NEAR_MTU"
  ip -n "$NS_RELAY" link set r-s mtu "$FAR_MTU"
  ip -n "$NS_SRV" link set s-r mtu "$FAR_MTU"

  ip -n "$NS_CLI" addr replace "$CLI_IP/24" dev c-r
  ip -n "$NS_RELAY" addr replace "$RELAY_NEAR_IP/24" dev r-c
  ip -n "$NS_RELAY" addr replace "$RELAY_FAR_IP/24" dev r-s
  ip -n "$NS_SRV" addr replace "$SRV_IP/24" dev s-r

  offloads_off "$NS_CLI" c-r
  offloads_off "$NS_RELAY" r-c
  offloads_off "$NS_RELAY" r-s
  offloads_off "$NS_SRV" s-r

  ip -n "$NS_CLI" link set c-r up
  ip -n "$NS_RELAY" link set r-c up
  ip -n "$NS_RELAY" link set r-s up
  ip -n "$NS_SRV" link set s-r up

  ip -n "$NS_CLI" route replace default via "$RELAY_NEAR_IP" dev c-r
  ip -n "$NS_SRV" route replace default via "$RELAY_FAR_IP" dev s-r
  in_ns "$NS_RELAY" sysctl -qw net.ipv4.ip_forward=1
  # A path MTU learnt under an earlier --far-mtu must not linger.
  ip -n "$NS_CLI" route flush cache 2>/dev/null || true
  # Plenty of local ports and a short TIME_WAIT reuse for connection-rate tests.
  for ns in "$NS_CLI" "$NS_RELAY"; do
    in_ns "$ns" sysctl -qw net.ipv4.ip_local_port_range="1024 65000"
    in_ns "$ns" sysctl -qw net.ipv4.tcp_tw_reuse=1
  done
  for ns in "$NS_RELAY" "$NS_SRV"; do
    in_ns "$ns" sysctl -qw net.core.somaxconn=65535 2>/dev/null || true
    in_ns "$ns" sysctl -qw net.ipv4.tcp_max_syn_backlog=65535 2>/dev/null || true
  done

  if [ "$GATEWAY" = 1 ]; then
    # The L7R deployment: TCP that crosses `relay` in either direction (cli to
    # srv's network on r-c, srv to cli's on r-s) is intercepted and handed to
    # the transparent listener on GATEWAY_PORT, with the same script an
    # appliance uses (ops/gateway/gateway.sh; it replaces an earlier install).
    in_ns "$NS_RELAY" "$GATEWAY_SCRIPT" install --in r-c --in r-s --listen "$GATEWAY_PORT" \
      --mode "$GATEWAY_MODE" --family ipv4 >/dev/null
  elif command -v nft >/dev/null 2>&1; then
    # Remove the interception an earlier `up --gateway` left, if any.
    in_ns "$NS_RELAY" "$GATEWAY_SCRIPT" remove >/dev/null 2>&1 || true
  fi

  # Prove the topology works before saying so.
  if command -v ping >/dev/null 2>&1; then
    in_ns "$NS_CLI" ping -c1 -W2 "$RELAY_NEAR_IP" >/dev/null
    in_ns "$NS_CLI" ping -c1 -W2 "$SRV_IP" >/dev/null
  fi
  UP_OK=1
  trap - EXIT INT TERM
  echo "lab ${PREFIX}*: up (near MTU $NEAR_MTU, far MTU $FAR_MTU$( [ "$GATEWAY" = 1 ] && echo ", gateway $GATEWAY_MODE -> :$GATEWAY_PORT"))"
}

show_offloads() {
  in_ns "$1" ethtool -k "$2" 2>/dev/null \
    | awk '/^(tcp-segmentation-offload|generic-segmentation-offload|generic-receive-offload|large-receive-offload):/ {printf "%s=%s ", $1, $2}' \
    | sed 's/tcp-segmentation-offload:/tso/; s/generic-segmentation-offload:/gso/; s/generic-receive-offload:/gro/; s/large-receive-offload:/lro/'
}

lab_status() {
  local ns missing=0
  for ns in "$NS_CLI" "$NS_RELAY" "$NS_SRV"; do ns_exists "$ns" || missing=1; done
  if [ "$missing" = 1 ]; then
    echo "lab ${PREFIX}*: down (namespaces missing)"
    return 3
  fi
  local mtu_near mtu_far fwd
  mtu_near=$(ip -n "$NS_CLI" -o link show c-r | sed -n 's/.* mtu \([0-9]*\).*/\1/p')
  mtu_far=$(ip -n "$NS_SRV" -o link show s-r | sed -n 's/.* mtu \([0-9]*\).*/\1/p')
  fwd=$(in_ns "$NS_RELAY" sysctl -n net.ipv4.ip_forward)
  cat <<EOF
lab ${PREFIX}*: up

  [$NS_CLI]                       [$NS_RELAY]                         [$NS_SRV]
  c-r $CLI_IP/24  <== MTU $mtu_near ==>  r-c $RELAY_NEAR_IP/24
                                       r-s $RELAY_FAR_IP/24  <== MTU $mtu_far ==>  s-r $SRV_IP/24

  ip_forward in $NS_RELAY: $fwd   (cli -> srv routed: the no-relay baseline)
  offloads:
    $NS_CLI c-r:   $(show_offloads "$NS_CLI" c-r)
    $NS_RELAY r-c: $(show_offloads "$NS_RELAY" r-c)
    $NS_RELAY r-s: $(show_offloads "$NS_RELAY" r-s)
    $NS_SRV s-r:   $(show_offloads "$NS_SRV" s-r)
  routes:
    $NS_CLI: $(ip -n "$NS_CLI" route show default)
    $NS_SRV: $(ip -n "$NS_SRV" route show default)
EOF
  if command -v nft >/dev/null 2>&1; then
    local rules
    rules=$(in_ns "$NS_RELAY" nft list table inet relay_gateway 2>/dev/null | grep -E 'redirect|tproxy' | sed 's/^[[:space:]]*//' || true)
    [ -n "$rules" ] && echo "  gateway: $rules"
  fi
  echo "  processes: cli=$(ip netns pids "$NS_CLI" | wc -l) relay=$(ip netns pids "$NS_RELAY" | wc -l) srv=$(ip netns pids "$NS_SRV" | wc -l)"
}

# ---- arguments --------------------------------------------------------------
cmd="${1:-}"
[ -n "$cmd" ] || { usage; exit 2; }
shift || true
FAR_MTU=1500
GATEWAY=0
GATEWAY_PORT=15001
GATEWAY_MODE=redirect
GATEWAY_SCRIPT="$(cd "$(dirname "$0")/../gateway" && pwd)/gateway.sh"

if [ "$cmd" = exec ]; then
  need_root exec "$@"
  which=${1:-}; shift || true
  case "$which" in
    cli|relay|srv) ;;
    *) die "exec: namespace must be cli, relay or srv" ;;
  esac
  [ "$#" -gt 0 ] || die "exec: no command"
  exec ip netns exec "${PREFIX}${which}" "$@"
fi

while [ "$#" -gt 0 ]; do
  case "$1" in
    --far-mtu) FAR_MTU=${2:-}; shift 2 || die "--far-mtu needs a value" ;;
    --far-mtu=*) FAR_MTU=${1#*=}; shift ;;
    --gateway)
      GATEWAY=1; shift
      if [ "$#" -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; then GATEWAY_PORT=$1; shift; fi ;;
    --gateway-mode) GATEWAY_MODE=${2:-}; shift 2 || die "--gateway-mode needs redirect or tproxy" ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
done
[[ "$FAR_MTU" =~ ^[0-9]+$ ]] && [ "$FAR_MTU" -ge 576 ] && [ "$FAR_MTU" -le 65520 ] \
  || die "--far-mtu must be a number in 576..65520 (1500 or 9000 for the scenarios), got '$FAR_MTU'"
case "$GATEWAY_MODE" in redirect|tproxy) ;; *) die "--gateway-mode must be redirect or tproxy, got '$GATEWAY_MODE'" ;; esac

case "$cmd" in
  up)     need_root up; lab_tools; lab_up ;;
  down)   need_root down; lab_down ;;
  status) need_root status; lab_status ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# A local cluster of relay appliances in network namespaces, for trying failover by
# hand (and for the failover test and benchmark).
#
#   cli  198.18.0.1 ─┐
#   n1   198.18.0.2 ─┤  bridge br0 (in namespace "br"),  VIP 198.18.0.10/24
#   n2   198.18.0.3 ─┤  held by whichever node owns the service
#   n3   198.18.0.4 ─┤  (only with --nodes 3)
#   srv  198.18.0.100┘  echo server on :9000 (start it with `cluster.sh echo`)
#
# With --egress the server is on a second bridge, br1, and the owner also holds an egress
# VIP there, from which every upstream connection comes (relay.cluster.egress-vip):
#
#   cli  198.18.0.1 ─┐                           ┌─ srv 198.18.1.100 (echo server on :9000)
#   n1   198.18.0.2 ─┤ br0, VIP 198.18.0.10/24   ├─ n1 eth1 198.18.1.2
#   n2   198.18.0.3 ─┤ on the owner's eth0       ├─ n2 eth1 198.18.1.3
#   n3   198.18.0.4 ─┘ (nodes' eth0)             └─ n3 eth1 198.18.1.4
#                        br1, egress VIP 198.18.1.10/24 on the owner's eth1
#
# Every relay node runs route "svc": listen 198.18.0.10:7000 (the VIP) -> the server's :9000,
# with its management endpoint on 127.0.0.1:8558 inside its own namespace. The cluster's
# own traffic (Akka remoting on :2552) runs on br0.
#
# Usage: cluster.sh up [--nodes 2|3] [--egress]
#                                         build the namespaces and the bridge(s); --egress:
#                                         the server on its own bridge br1 and an egress VIP
#        cluster.sh start N [ARGS...]     run relay node N (1..3) in the background;
#                                         log in $STATE/nN.log, pid in $STATE/nN.pid.
#                                         Its PATH is $STATE/bin, which holds only the
#                                         relay's launcher (dotnet): no ip, no arping, since
#                                         the relay adds and announces the VIP itself
#        cluster.sh kill N [SIGNAL]       kill node N (default 9: a crash; TERM or -TERM: a
#                                         graceful leave) without waiting
#        cluster.sh stop N [SIGNAL]       signal node N (default TERM) and wait (60 s at most)
#                                         for it to exit: an owner hands its circuits over first
#        cluster.sh restart N [SIGNAL [ARGS...]]  stop N, then start N again (a rolling restart)
#        cluster.sh echo                  start the echo server in srv
#        cluster.sh status                members and owner, from each running node
#        cluster.sh handover N [TO]       node N (the owner) hands its established circuits and
#                                         the addresses to TO, or to the standby (POST
#                                         /cluster/handover); prints the outcome as JSON. The
#                                         relay's own client does the same:
#                                         cluster.sh exec nN env RELAY_MANAGEMENT_TOKEN=cluster-lab \
#                                           dotnet .../relay.dll handover [--to TO] [--json]
#        cluster.sh exec cli|nN|srv CMD   run a command in a namespace
#        cluster.sh down                  stop everything and remove the namespaces
# Env:   LAB_PREFIX   namespace name prefix (default "relaycl-"), so several clusters
#                     (tests, a bench) can coexist
#        RELAY        command that runs the relay (default: dotnet <repo>/Relay.Host/bin/Release/net10.0/relay.dll,
#                     else the Debug build)
#        PUBLISH      relay.cluster.publish-interval (default 1s)
#        HEARTBEAT_PAUSE  akka.cluster.failure-detector.acceptable-heartbeat-pause (default 600ms,
#                     as shipped; a busy test machine may need more)
# Try:   cluster.sh up && cluster.sh echo && cluster.sh start 1 && cluster.sh start 2
#        cluster.sh exec cli python3 -c 'import socket;s=socket.create_connection(("198.18.0.10",7000));s.send(b"hi");print(s.recv(9))'
#        cluster.sh kill 1; cluster.sh status
#        with `up --egress`: cluster.sh exec srv ss -tn   (the relay's connections come from 198.18.1.10)
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"

PREFIX="${LAB_PREFIX:-relaycl-}"
STATE="${TMPDIR:-/tmp}/${PREFIX}cluster"
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
VIP=198.18.0.10
# The management token of the lab's nodes (mutating endpoints such as POST /cluster/handover need one).
LAB_TOKEN=cluster-lab
VIP_CIDR=$VIP/24
EGRESS_VIP_CIDR=198.18.1.10/24

die() { echo "cluster.sh: $*" >&2; exit 1; }
need_root() { [ "$(id -u)" = 0 ] || die "this needs root (network namespaces); run it with sudo"; }
ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$1"; }
node_ip() { echo "198.18.0.$(( $1 + 1 ))"; }
# The server's address: on br1 once `up --egress` has built it, else on br0.
srv_ip() { if [ -f "$STATE/egress" ]; then echo 198.18.1.100; else echo 198.18.0.100; fi; }

relay_cmd() {
  if [ -n "${RELAY:-}" ]; then echo "$RELAY"; return; fi
  for build in Release Debug; do
    local dll="$REPO/Relay.Host/bin/$build/net10.0/relay.dll"
    if [ -f "$dll" ]; then echo "dotnet $dll"; return; fi
  done
  die "no relay build found: run 'dotnet build -c Release Relay.sln' or set RELAY"
}

attach() { # attach NS IP NAME [BRIDGE DEVICE]: a veth from BRIDGE (br0) into NS, with IP/24 on its DEVICE (eth0)
  local ns=$1 ip=$2 bridge=${4:-br0} dev=${5:-eth0}
  local port="v${3}"; [ "$bridge" = br0 ] || port="w${3}"
  ip -n "${PREFIX}br" link add "$port" type veth peer name "$dev" netns "$ns"
  ip -n "${PREFIX}br" link set "$port" master "$bridge" up
  ip -n "$ns" addr add "$ip/24" dev "$dev"
  ip -n "$ns" link set "$dev" up
  ip -n "$ns" link set lo up
}

cmd_up() {
  local nodes=2 egress=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --nodes) nodes=$2; shift 2 ;;
      --egress) egress=1; shift ;;
      *) die "unknown option $1" ;;
    esac
  done
  [ "$nodes" = 2 ] || [ "$nodes" = 3 ] || die "--nodes must be 2 or 3"
  need_root; need_tools ip:iproute2 python3:python3
  ns_exists "${PREFIX}br" && cmd_down >/dev/null 2>&1 || true
  mkdir -p "$STATE"
  echo "$nodes" >"$STATE/nodes"
  [ -z "$egress" ] || touch "$STATE/egress"
  local srv; srv=$(srv_ip)
  ip netns add "${PREFIX}br"
  for bridge in br0 ${egress:+br1}; do
    ip -n "${PREFIX}br" link add "$bridge" type bridge
    ip -n "${PREFIX}br" link set "$bridge" up
  done
  ip netns add "${PREFIX}cli"; attach "${PREFIX}cli" 198.18.0.1 cli
  ip netns add "${PREFIX}srv"; attach "${PREFIX}srv" "$srv" srv ${egress:+br1 eth0}
  local seeds=""
  for n in $(seq 1 "$nodes"); do
    ip netns add "${PREFIX}n$n"; attach "${PREFIX}n$n" "$(node_ip "$n")" "n$n"
    [ -z "$egress" ] || attach "${PREFIX}n$n" "198.18.1.$(( n + 1 ))" "n$n" br1 eth1
    seeds="$seeds\"akka.tcp://relay@$(node_ip "$n"):2552\", "
  done
  local egress_keys=""
  if [ -n "$egress" ]; then
    egress_keys="egress-vip = \"$EGRESS_VIP_CIDR\"
    egress-vip-device = \"eth1\""
  fi
  local strategy=""
  if [ "$nodes" = 3 ]; then
    # Three or more: Akka's own split-brain resolver, keep-majority (hocon/cluster-three-node.conf).
    strategy='akka.cluster.downing-provider-class = "Akka.Cluster.SBR.SplitBrainResolverProvider, Akka.Cluster"
akka.cluster.split-brain-resolver.active-strategy = keep-majority'
  fi
  for n in $(seq 1 "$nodes"); do
    cat >"$STATE/n$n.conf" <<CONF
relay {
  routes = [ { name = "svc", listen = "$VIP:7000", upstream = "$srv:9000" } ]
  management.endpoint = "127.0.0.1:8558"
  management.token = "$LAB_TOKEN"
  cluster {
    enabled = on
    vip = "$VIP_CIDR"
    vip-device = "eth0"
    $egress_keys
    publish-interval = ${PUBLISH:-1s}
  }
}
akka.remote.dot-netty.tcp { hostname = "$(node_ip "$n")", port = 2552 }
akka.cluster.seed-nodes = [ ${seeds%, } ]
akka.cluster.failure-detector.acceptable-heartbeat-pause = ${HEARTBEAT_PAUSE:-600ms}
$strategy
CONF
  done
  echo "cluster up: cli 198.18.0.1, nodes $(for n in $(seq 1 "$nodes"); do printf '%s ' "$(node_ip "$n")"; done)srv $srv, VIP $VIP_CIDR${egress:+, egress VIP $EGRESS_VIP_CIDR}"
  echo "configs in $STATE; next: $0 echo; $0 start 1; $0 start 2"
}

cmd_down() {
  need_root
  for f in "$STATE"/*.pid; do
    [ -f "$f" ] || continue
    kill -9 "$(cat "$f")" 2>/dev/null || true
    rm -f "$f"
  done
  for ns in br cli srv n1 n2 n3; do
    ns_exists "${PREFIX}$ns" && ip netns pids "${PREFIX}$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ns_exists "${PREFIX}$ns" && ip netns del "${PREFIX}$ns" || true
  done
  rm -rf "$STATE"
  echo "cluster down"
}

relay_path() { # a directory holding only the relay's launcher, to be the relay's whole PATH
  local launcher exe bin="$STATE/bin"
  launcher=$(relay_cmd); launcher=${launcher%% *}
  exe=$(command -v "$launcher") || die "cannot find $launcher (from RELAY)"
  mkdir -p "$bin"
  ln -sfn "$exe" "$bin/$(basename "$launcher")"
  for tool in ip arping; do
    [ ! -e "$bin/$tool" ] || die "$bin holds $tool; the relay must run without it"
  done
  echo "$bin"
}

cmd_start() {
  need_root
  local n=${1:?node number}; shift || true
  ns_exists "${PREFIX}n$n" || die "no node $n: run '$0 up' first"
  local path; path=$(relay_path)
  # shellcheck disable=SC2046
  ip netns exec "${PREFIX}n$n" env PATH="$path" $(relay_cmd) run --config "$STATE/n$n.conf" "$@" >"$STATE/n$n.log" 2>&1 &
  echo $! >"$STATE/n$n.pid"
  echo "node $n started (pid $!, log $STATE/n$n.log, PATH $path)"
}

signal_of() { case "$1" in -*) echo "$1" ;; *) echo "-$1" ;; esac; } # TERM, -TERM, 9 or -9 -> kill's option

cmd_kill() {
  local n=${1:?node number} signal; signal=$(signal_of "${2:--9}")
  [ -f "$STATE/n$n.pid" ] || die "node $n is not running"
  kill "$signal" "$(cat "$STATE/n$n.pid")" 2>/dev/null || true
  rm -f "$STATE/n$n.pid"
  echo "node $n killed ($signal)"
}

cmd_stop() { # stop N [SIGNAL]: signal node N (default TERM, a graceful leave) and wait for it to exit
  local n=${1:?node number} signal pid; signal=$(signal_of "${2:-TERM}")
  [ -f "$STATE/n$n.pid" ] || die "node $n is not running"
  pid=$(cat "$STATE/n$n.pid")
  kill "$signal" "$pid" 2>/dev/null || true
  # Bounded: a graceful stop hands over (a few s) and lets the rest drain (relay.shutdown-grace).
  for _ in $(seq 1 600); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$STATE/n$n.pid"; echo "node $n stopped ($signal)"; return 0; }
    sleep 0.1
  done
  die "node $n (pid $pid) still runs 60 s after $signal"
}

cmd_echo() {
  need_root
  local srv; srv=$(srv_ip)
  ip netns exec "${PREFIX}srv" python3 "$HERE/echo_server.py" "$srv" 9000 >"$STATE/srv.log" 2>&1 &
  echo $! >"$STATE/srv.pid"
  echo "echo server on $srv:9000 (pid $!)"
}

cmd_status() {
  local nodes; nodes=$(cat "$STATE/nodes" 2>/dev/null || echo 0)
  for n in $(seq 1 "$nodes"); do
    printf 'n%s %s: ' "$n" "$(node_ip "$n")"
    ip netns exec "${PREFIX}n$n" python3 - <<'PY' || true
import json, urllib.request
try:
    m = json.load(urllib.request.urlopen("http://127.0.0.1:8558/cluster/members", timeout=2))
    owner = urllib.request.urlopen("http://127.0.0.1:8558/metrics", timeout=2).read().decode()
    own = "owner" if "\nrelay_service_owner 1\n" in owner else "standby"
    c = json.load(urllib.request.urlopen("http://127.0.0.1:8558/circuits", timeout=2))
    lost = sum(1 for x in c if x["state"] == "lost")
    print(f'{own}; members {[(x["node"].split("@")[1], x["status"]) for x in m["members"]]}; '
          f'unreachable {len(m["unreachable"])}; circuits {len(c)} ({lost} lost)')
except Exception as e:
    print(f"not answering ({e})")
PY
  done
}

cmd_handover() { # handover N [TO]: node N hands its circuits to TO (an address or host), or to the standby
  local n=${1:?node number} to=${2:-}
  need_root
  ip netns exec "${PREFIX}n$n" python3 - "$to" "$LAB_TOKEN" <<'PY'
import sys, urllib.error, urllib.parse, urllib.request
data = urllib.parse.urlencode({"to": sys.argv[1]} if sys.argv[1] else {}).encode()
request = urllib.request.Request("http://127.0.0.1:8558/cluster/handover", data=data, method="POST",
                                 headers={"Authorization": "Bearer " + sys.argv[2]})
try:
    print(urllib.request.urlopen(request, timeout=60).read().decode())
except urllib.error.HTTPError as e:
    print(e.read().decode())
    sys.exit(1)
PY
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) cmd_down ;;
  start) shift; cmd_start "$@" ;;
  kill) shift; cmd_kill "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  restart) shift; cmd_stop "$1" "${2:-TERM}"; cmd_start "$1" "${@:3}" ;;
  echo) cmd_echo ;;
  status) cmd_status ;;
  handover) shift; cmd_handover "$@" ;;
  exec) shift; ns=${1:?namespace}; shift; need_root; ip netns exec "${PREFIX}$ns" "$@" ;;
  -h|--help|help|"") usage ;;
  *) die "unknown command $1 (try --help)" ;;
esac

#!/usr/bin/env bash
# Failover benchmark: time from `kill -9` of the active relay to the first new circuit
# through the VIP that echoes, via the standby. Runs ops/cluster/cluster.sh (two nodes in
# network namespaces) for N rounds and prints each round and the median.
# Each round: fresh cluster, node 1 (owner) then node 2, 5 circuits held open through
# the VIP, 1.5 s for the circuit table to replicate, kill -9 node 1, probe every 20 ms.
# It also checks that the standby lists all 5 held circuits as lost.
# The relays run with a PATH that holds neither ip nor arping (cluster.sh gives them one
# holding only dotnet; this script checks each node's PATH and says so): the VIP is added
# over netlink and announced by the relay itself, as on a stock Debian host.
# Usage: sudo ops/bench/failover.sh [ROUNDS]      (default 5; needs root)
set -euo pipefail
ROUNDS=${1:-5}
HERE="$(cd "$(dirname "$0")" && pwd)"
CLUSTER="$HERE/../cluster/cluster.sh"
export LAB_PREFIX="${LAB_PREFIX:-rfb$$-}"
export PUBLISH="${PUBLISH:-250ms}"
STATE="${TMPDIR:-/tmp}/${LAB_PREFIX}cluster"
trap '"$CLUSTER" down >/dev/null 2>&1 || true' EXIT
results=()
# no_tools N: node N's relay process has no ip and no arping on its PATH; prints that PATH.
no_tools() {
  local path dir
  path=$(tr '\0' '\n' <"/proc/$(cat "$STATE/n$1.pid")/environ" | sed -n 's/^PATH=//p')
  IFS=: read -ra dirs <<<"$path"
  for dir in "${dirs[@]}"; do
    for tool in ip arping; do
      [ ! -e "$dir/$tool" ] || { echo "failover.sh: node $1's PATH ($path) holds $tool" >&2; exit 1; }
    done
  done
  echo "$path"
}
for round in $(seq 1 "$ROUNDS"); do
  "$CLUSTER" up >/dev/null
  "$CLUSTER" echo >/dev/null
  "$CLUSTER" start 1 >/dev/null
  for _ in $(seq 1 200); do grep -q ServiceTakenOver "$STATE/n1.log" 2>/dev/null && break; sleep 0.1; done
  "$CLUSTER" start 2 >/dev/null
  ups() { local c; c=$(grep -c 'MemberUp' "$STATE/n2.log" 2>/dev/null) || true; echo "${c:-0}"; }
  for _ in $(seq 1 200); do [ "$(ups)" -ge 2 ] && break; sleep 0.1; done
  # A round counts only if node 1 owns the service and node 2 is an Up standby; on a
  # starved machine a node can miss these waits, and the round would measure nothing.
  if ! grep -q ServiceTakenOver "$STATE/n1.log" || grep -q ServiceTakenOver "$STATE/n2.log" \
     || [ "$(ups)" -lt 2 ]; then
    echo "round $round: skipped (the pair did not form in time: n1 owner, n2 standby)"
    "$CLUSTER" down >/dev/null
    continue
  fi
  path1=$(no_tools 1); no_tools 2 >/dev/null
  [ -n "${shown:-}" ] || { shown=1; echo "relay PATH: $path1 (holds: $(ls "$path1" | tr '\n' ' ')- no ip, no arping)"; }
  mkfifo "$STATE/ctl"
  "$CLUSTER" exec cli python3 "$HERE/../cluster/failover_client.py" 198.18.0.10 7000 5 <"$STATE/ctl" >"$STATE/probe.out" 2>&1 &
  exec 7>"$STATE/ctl"
  for _ in $(seq 1 100); do grep -q '^open' "$STATE/probe.out" 2>/dev/null && break; sleep 0.1; done
  sleep 1.5
  "$CLUSTER" kill 1 >/dev/null
  echo killed >&7
  for _ in $(seq 1 300); do grep -q failover-ms "$STATE/probe.out" && break; sleep 0.1; done
  exec 7>&-
  ms=$(sed -n 's/^failover-ms //p' "$STATE/probe.out")
  sleep 0.5
  lost=$(grep -c 'CircuitLost' "$STATE/n2.log" || true)
  took=$(sed -n 's/.*ServiceTakenOver.* in \([0-9]*\) ms (VIP added after \([0-9]*\) ms).*/take-over \1 ms, VIP added after \2 ms/p' "$STATE/n2.log" | head -n 1)
  echo "round $round: failover ${ms:-none} ms, circuits listed lost by the standby: $lost of 5 (standby: ${took:-no take-over logged})"
  case "$ms" in ''|timeout) results+=(99999) ;; *) results+=("$ms") ;; esac
  "$CLUSTER" down >/dev/null
done
median=$(printf '%s\n' "${results[@]}" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}')
echo "failover median over ${#results[@]} valid rounds of $ROUNDS: $median ms (all: ${results[*]}; 99999 = no new circuit within 30 s)"

#!/usr/bin/env bash
# Bulk A/B in the lab: iperf3 from `cli` through several relay builds (or settings) side by
# side in the `relay` namespace to `srv`, interleaved per round, with the relay's CPU per GB.
# For "did this change bulk", where bench.sh runs one build against HAProxy and socat.
#
#   sudo ops/bench/lab-bulk-ab.sh BUILD_DIR...      (P=8 streams, ROUNDS=4, SECONDS_PER_RUN=5)
#   (a build dir is the output of: dotnet publish Relay.Host -c Release -o DIR; a file
#    DIR/extra.conf, if present, is put in front of that build's config, e.g.
#    `relay.dispatchers.pin = off`, so one build can be compared with itself)
#
# Builds its own lab (LAB_PREFIX=abbulk-, ops/lab/lab.sh: 198.18.0.0/15 only) and tears it
# down on exit.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR..."; exit 2; }
[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces)"; exit 1; }
command -v iperf3 >/dev/null || { echo "needs iperf3 (apt-get install iperf3)"; exit 1; }
streams=${P:-8}; rounds=${ROUNDS:-4}; seconds=${SECONDS_PER_RUN:-5}
export LAB_PREFIX=abbulk-
lab="$(dirname "$0")/../lab/lab.sh"
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; "$lab" down >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
"$lab" up >/dev/null

ip netns exec abbulk-srv iperf3 -s -B 198.18.2.2 -p 18501 >/dev/null 2>&1 & pids+=($!)
port=18510; targets=()
for build in "$@"; do
  conf="$work/relay-$port.conf"
  if [ -f "$build/extra.conf" ]; then cat "$build/extra.conf" > "$conf"; else : > "$conf"; fi
  printf 'akka.loglevel = WARNING\nrelay.routes = [ { name = "bulk", listen = "198.18.1.2:%s", upstream = "198.18.2.2:18501" } ]\n' \
    $port >> "$conf"
  ip netns exec abbulk-relay "$build/relay" run --config "$conf" --management off > "$work/relay-$port.log" 2>&1 & pids+=($!)
  targets+=("$(basename "$build"):$port:$!")
  port=$((port + 1))
done
for t in "${targets[@]}"; do
  IFS=: read -r _ p _ <<< "$t"
  for _ in $(seq 1 60); do ip netns exec abbulk-cli bash -c "exec 3<>/dev/tcp/198.18.1.2/$p" 2>/dev/null && break; sleep 0.5; done
done

echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ), $streams stream(s), ${seconds}s per run"
hz=$(getconf CLK_TCK)
for r in $(seq 1 "$rounds"); do
  for t in "${targets[@]}"; do
    IFS=: read -r name p pid <<< "$t"
    c0=$(awk '{print $14+$15}' "/proc/$pid/stat")
    gbit=$(ip netns exec abbulk-cli iperf3 -c 198.18.1.2 -p "$p" -P "$streams" -t "$seconds" -J 2>/dev/null |
      python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9,2))')
    c1=$(awk '{print $14+$15}' "/proc/$pid/stat")
    echo "round $r $name $gbit Gbit/s cpu_s_per_GB=$(python3 -c "print(round(($c1-$c0)/$hz/($gbit*$seconds/8),2) if $gbit>0 else 'n/a')")"
  done
done

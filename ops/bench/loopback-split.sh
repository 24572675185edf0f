#!/usr/bin/env bash
# Where a connection's cost goes, HAProxy against one or more relay builds, interleaved on
# loopback under wrk -H "Connection: close": user and system CPU-µs per connection (from
# /proc/PID/stat, which keeps the time of exited threads), context switches per connection,
# and for each relay build the managed bytes allocated and GCs per connection (from its
# /metrics: dotnet_gc_allocated_bytes_total, dotnet_collection_count_total).
# Targets 127.0.0.1 only; no root. Not the benchmark of record (bench.sh in the lab is).
#
#   ops/bench/loopback-split.sh BUILD_DIR... [ROUNDS=3 in the environment]
#   (a build dir is the output of: dotnet publish Relay.Host -c Release -o DIR)
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR..."; exit 2; }
rounds=${ROUNDS:-3}
for tool in wrk nginx haproxy curl; do
  command -v $tool >/dev/null || { echo "needs $tool (apt-get install wrk nginx haproxy curl)"; exit 1; }
done
. "$(dirname "$0")/loopback-common.sh"
start_nginx 18090
start_haproxy 18091 18090
targets=("haproxy:${pids[-1]}:18091:")
port=18092
for build in "$@"; do
  mgmt=$((port + 100))
  printf 'akka.loglevel = WARNING\nrelay.management.endpoint = "127.0.0.1:%s"\nrelay.routes = [ { name = "web", listen = "127.0.0.1:%s", upstream = "127.0.0.1:18090" } ]\n' \
    $mgmt $port > "$work/relay-$port.conf"
  "$build/relay" run --config "$work/relay-$port.conf" > "$work/$port.log" 2>&1 & pids+=($!)
  targets+=("$(basename "$build"):${pids[-1]}:$port:$mgmt")
  port=$((port + 1))
done
for t in "${targets[@]}"; do
  IFS=: read -r _ _ port _ <<< "$t"
  for _ in $(seq 1 60); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.5; done
  wrk -t2 -c32 -d3s -H "Connection: close" "http://127.0.0.1:$port/1k.bin" > /dev/null # warm-up (tiered JIT)
done

hz=$(getconf CLK_TCK)
cpu() { cut -d')' -f2 "/proc/$1/stat" | awk '{print $12, $13}'; }
gc() { [ -n "$1" ] && curl -s "127.0.0.1:$1/metrics" | awk '/^dotnet_gc_allocated_bytes_total/{a=$2} /^dotnet_collection_count_total\{generation="0"\}/{g=$2} END{printf "%d %d\n", a, g}' || echo "0 0"; }
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
for round in $(seq 1 "$rounds"); do
  for t in "${targets[@]}"; do
    IFS=: read -r name pid port mgmt <<< "$t"
    read -r u0 s0 <<< "$(cpu "$pid")"; w0=$(process_switches "$pid"); read -r a0 g0 <<< "$(gc "$mgmt")"
    n=$(wrk -t2 -c32 -d4s -H "Connection: close" "http://127.0.0.1:$port/1k.bin" | awk '/requests in/{print $1}')
    read -r u1 s1 <<< "$(cpu "$pid")"; w1=$(process_switches "$pid"); read -r a1 g1 <<< "$(gc "$mgmt")"
    line="round $round $name conn/s=$((n / 4)) user_us=$(( (u1 - u0) * 1000000 / hz / n )) sys_us=$(( (s1 - s0) * 1000000 / hz / n ))"
    line+=" switches=$(awk -v d=$((w1 - w0)) -v n="$n" 'BEGIN{printf "%.2f", d/n}')"
    [ -n "$mgmt" ] && line+=" alloc_bytes=$(( (a1 - a0) / n )) gen0_per_1k=$(awk -v d=$((g1 - g0)) -v n="$n" 'BEGIN{printf "%.1f", 1000*d/n}')"
    echo "$line"
  done
done

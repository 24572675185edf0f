#!/usr/bin/env bash
# TCP segments sent per connection under wrk -H "Connection: close" on loopback, for HAProxy
# and relay builds interleaved: the system-wide TcpOutSegs delta (nstat) over a run, divided
# by wrk's request count. Counts every party's segments (wrk, proxy, nginx), so compare the
# targets with each other, not with a theoretical minimum. Keep the machine otherwise quiet:
# any other loopback traffic is counted too.
#
#   ops/bench/loopback-segments.sh BUILD_DIR...   (ROUNDS=2 in the environment)
#   (a build dir is the output of: dotnet publish Relay.Host -c Release -o DIR)
# Targets 127.0.0.1 only; wrk -t2 -c32 for 3 s per run.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR..."; exit 2; }
for tool in wrk nginx haproxy nstat; do
  command -v $tool >/dev/null || { echo "needs $tool (apt-get install wrk nginx haproxy iproute2)"; exit 1; }
done
rounds=${ROUNDS:-2}
. "$(dirname "$0")/loopback-common.sh"
start_nginx 18390
start_haproxy 18391 18390
port=18392; targets=("haproxy:18391")
for build in "$@"; do
  printf 'akka.loglevel = WARNING\nrelay.routes = [ { name = "web", listen = "127.0.0.1:%s", upstream = "127.0.0.1:18390" } ]\n' \
    $port > "$work/relay-$port.conf"
  "$build/relay" run --config "$work/relay-$port.conf" --management off > "$work/relay-$port.log" 2>&1 & pids+=($!)
  targets+=("$(basename "$build"):$port")
  port=$((port + 1))
done
for t in "${targets[@]}"; do
  for _ in $(seq 1 60); do (exec 3<>/dev/tcp/127.0.0.1/${t##*:}) 2>/dev/null && break; sleep 0.5; done
done

out_segs() { nstat -az TcpOutSegs | awk '/TcpOutSegs/ {print $2}'; }
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
for r in $(seq 1 "$rounds"); do
  for t in "${targets[@]}"; do
    name=${t%%:*}; p=${t##*:}
    wrk -t2 -c32 -d1s -H "Connection: close" "http://127.0.0.1:$p/1k.bin" >/dev/null # warm-up
    before=$(out_segs)
    n=$(wrk -t2 -c32 -d3s -H "Connection: close" "http://127.0.0.1:$p/1k.bin" | awk '/requests in/ {print $1}')
    after=$(out_segs)
    echo "round $r $name connections=$n segments_per_connection=$(python3 -c "print(round(($after-$before)/$n, 2))")"
  done
done

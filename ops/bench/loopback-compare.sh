#!/usr/bin/env bash
# Quick loopback comparison while developing: HAProxy vs two relay builds, interleaved.
# Not the benchmark of record (that is bench.sh in the lab); it needs no root and no
# namespaces, and answers "did this change help" in a minute. Targets 127.0.0.1 only.
#
#   ops/bench/loopback-compare.sh BUILD_A_DIR BUILD_B_DIR [ROUNDS]
#   (a build dir is the output of: dotnet publish Relay.Host -c Release -o DIR)
#
# Prints keep-alive req/s and Connection: close conn/s (wrk -t2 -c32 -d3s, 1 KiB file
# from nginx) for haproxy, A and B in each round.
set -euo pipefail
a=${1:?build dir A}; b=${2:?build dir B}; rounds=${3:-3}
for tool in wrk nginx haproxy; do
  command -v $tool >/dev/null || { echo "needs $tool (apt-get install wrk nginx haproxy)"; exit 1; }
done
. "$(dirname "$0")/loopback-common.sh"
for port in 18092 18093; do
  printf 'akka.loglevel = WARNING\nrelay.routes = [ { name = "web", listen = "127.0.0.1:%s", upstream = "127.0.0.1:18090" } ]\n' $port > "$work/relay-$port.conf"
done

start_nginx 18090
start_haproxy 18091 18090
"$a/relay" run --config "$work/relay-18092.conf" --management off > "$work/a.log" 2>&1 & pids+=($!)
env ${B_ENV:-X=1} "$b/relay" run --config "$work/relay-18093.conf" --management off > "$work/b.log" 2>&1 & pids+=($!)
sleep 2
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
for round in $(seq 1 "$rounds"); do
  for t in haproxy:18091 A:18092 B:18093; do
    name=${t%%:*}; port=${t##*:}
    ka=$(timeout 20 wrk -t2 -c32 -d3s "http://127.0.0.1:$port/1k.bin" | awk '/Requests\/sec/{print $2}')
    cl=$(timeout 20 wrk -t2 -c32 -d3s -H "Connection: close" "http://127.0.0.1:$port/1k.bin" | awk '/Requests\/sec/{print $2}')
    echo "round $round $name keepalive=$ka close=$cl"
  done
done

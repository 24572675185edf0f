#!/usr/bin/env bash
# What a request costs the relay, for two builds interleaved on loopback: CPU-µs and
# context switches per request (from /proc of the relay process, all threads), for
# keep-alive and Connection: close, and with STRACE=1 the system calls per request.
# On a shared, loaded machine throughput moves by ±50% between runs; these per-request
# costs move far less, so they decide "did this change help" when wrk's rate cannot.
#
#   ops/bench/loopback-cost.sh BUILD_A_DIR BUILD_B_DIR [ROUNDS]   (even ROUNDS: the order alternates)
#   (B_ENV: env for build B; B_CONF: HOCON lines added to build B's config, e.g.
#    B_CONF='relay.dispatchers.pin = off' with the same build as A and B;
#    LOG=text or LOG=json: both relays log one CircuitClosed line per connection at Info,
#    as shipped, in that --log-format, to a file (stdout redirected); default LOG=off,
#    akka.loglevel = WARNING. B_CONF='akka.loglevel = INFO' with LOG=off and the same
#    build twice measures what the line costs: B logs in text, A does not)
#   (a build dir is the output of: dotnet publish Relay.Host -c Release -o DIR)
# Targets 127.0.0.1 only; wrk -t2 -c32 for 3 s per run; prints per-round lines and medians.
set -euo pipefail
a=${1:?build dir A}; b=${2:?build dir B}; rounds=${3:-5}
for tool in wrk nginx python3; do
  command -v $tool >/dev/null || { echo "needs $tool"; exit 1; }
done
[ "${STRACE:-0}" = 1 ] && { command -v strace >/dev/null || { echo "STRACE=1 needs strace"; exit 1; }; }
. "$(dirname "$0")/loopback-common.sh"
case "${LOG:-off}" in
  off) level=WARNING; format=text ;;
  text|json) level=INFO; format=$LOG ;;
  *) echo "LOG must be off, text or json"; exit 2 ;;
esac
for port in 18392 18393; do
  printf 'akka.loglevel = %s\nrelay.routes = [ { name = "web", listen = "127.0.0.1:%s", upstream = "127.0.0.1:18390" } ]\n' $level $port > "$work/relay-$port.conf"
done
[ -n "${B_CONF:-}" ] && printf '%s\n' "$B_CONF" >> "$work/relay-18393.conf"
start_nginx 18390
"$a/relay" run --config "$work/relay-18392.conf" --management off --log-format $format > "$work/a.log" 2>&1 & pa=$!; pids+=($pa)
env ${B_ENV:-X=1} "$b/relay" run --config "$work/relay-18393.conf" --management off --log-format $format > "$work/b.log" 2>&1 & pb=$!; pids+=($pb)
for port in 18392 18393; do
  for _ in $(seq 1 60); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.5; done
done

# CPU ticks of the process (utime+stime of /proc/PID/stat, which keeps the ticks of threads
# that have exited: a sum over /proc/PID/task misses them, and a dispatcher's or the thread
# pool's thread that retires mid-run made a round read far too low), and context switches
# summed over the live threads.
cost() { local pid=$1
  echo "$(cut -d')' -f2 "/proc/$pid/stat" | awk '{print $12+$13}') $(process_switches "$pid")"; }
run_wrk() { local port=$1 mode=$2 seconds=$3
  if [ "$mode" = close ]; then wrk -t2 -c32 -d${seconds}s -H "Connection: close" "http://127.0.0.1:$port/1k.bin"
  else wrk -t2 -c32 -d${seconds}s "http://127.0.0.1:$port/1k.bin"; fi | awk '/requests in/{print $1}'; }

# Warm up both (tiered JIT) before measuring.
for port in 18392 18393; do run_wrk $port close 3 >/dev/null; run_wrk $port keepalive 3 >/dev/null; done
hz=$(getconf CLK_TCK)
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ); LOG=${LOG:-off} (akka.loglevel = $level, --log-format $format)${B_CONF:+; B_CONF: $B_CONF}"
out="$work/rounds.txt"
for round in $(seq 1 "$rounds"); do
  # Odd rounds run A first, even rounds B, so neither build always meets the machine as the
  # other left it (use an even number of rounds). Even so, the same build as A and B reads
  # keep-alive B/A anywhere from 0.89x to 1.36x (ops/bench/RESULTS.md, "Session 9"): trust its
  # Connection: close ratio, not a keep-alive difference under a third.
  order="A:$pa:18392 B:$pb:18393"
  [ $((round % 2)) = 0 ] && order="B:$pb:18393 A:$pa:18392"
  for mode in close keepalive; do
    for t in $order; do
      IFS=: read -r name pid port <<< "$t"
      read -r t0 s0 <<< "$(cost $pid)"
      n=$(run_wrk $port $mode 3)
      read -r t1 s1 <<< "$(cost $pid)"
      line="round $round $mode $name requests=$n cpu_us_per_request=$(( (t1 - t0) * 1000000 / hz / n )) switches_per_request=$(awk -v d=$((s1 - s0)) -v n=$n 'BEGIN{printf "%.2f", d/n}')"
      echo "$line" | tee -a "$out"
    done
  done
done
python3 - "$out" <<'PY'
import statistics as st, sys
rows = [dict(kv.split('=') for kv in line.split()[4:]) | {'mode': line.split()[2], 'build': line.split()[3]} for line in open(sys.argv[1])]
for mode in ('close', 'keepalive'):
    for build in 'AB':
        r = [x for x in rows if x['mode'] == mode and x['build'] == build]
        print(f"median {mode:9} {build}: {st.median(float(x['requests']) for x in r)/3:8.0f} req/s  "
              f"{st.median(float(x['cpu_us_per_request']) for x in r):6.1f} CPU-us/req  "
              f"{st.median(float(x['switches_per_request']) for x in r):5.2f} switches/req")
    a = [float(x['cpu_us_per_request']) for x in rows if x['mode'] == mode and x['build'] == 'A']
    b = [float(x['cpu_us_per_request']) for x in rows if x['mode'] == mode and x['build'] == 'B']
    print(f"median {mode:9} B/A CPU per request, paired per round: {st.median(y / x for x, y in zip(a, b)):.2f}")
PY
# The lines were really written: CircuitClosed lines in each relay's output so far (every
# request of a Connection: close run is one circuit; keep-alive runs add 32 per run).
echo "CircuitClosed lines written: A $(grep -c CircuitClosed "$work/a.log" || true), B $(grep -c CircuitClosed "$work/b.log" || true)"
if [ "${STRACE:-0}" = 1 ]; then
  for mode in close keepalive; do
    for t in A:$pa:18392 B:$pb:18393; do
      IFS=: read -r name pid port <<< "$t"
      strace -c -f -p "$pid" -o "$work/strace.txt" 2>/dev/null & sp=$!
      sleep 1
      n=$(run_wrk $port $mode 3)
      kill -INT $sp; wait $sp 2>/dev/null || true
      awk -v n=$n -v m=$mode -v b=$name 'NR>2 && $NF!="total" && $4 ~ /^[0-9]+$/ {s[$NF]=$4/n; t+=$4/n} END {printf "syscalls per request, %s %s: %.1f (", m, b, t; k=0; PROCINFO["sorted_in"]="@val_num_desc"; for (c in s) if (s[c] >= 0.5) printf "%s%s %.1f", (k++ ? ", " : ""), c, s[c]; print ")"}' "$work/strace.txt"
    done
  done
fi

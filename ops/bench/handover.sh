#!/usr/bin/env bash
# Live handover benchmark: circuits through the VIP of a relay pair (ops/cluster/cluster.sh
# up --egress) while the owner hands them to the standby and back, ROUNDS times per scenario.
#   A: 1,000 circuits, 20 streaming a paced pattern both ways (64 KiB every 10 ms each way),
#      980 idle: the longest receive gap any streaming client or server sees (target <= 200 ms);
#   B: 1,000 circuits, 100 streaming both ways as fast as they go, 900 idle: the longest gap
#      (target <= 1 s) and the POST /cluster/handover from request to answer (target <= 2 s);
#   B2: B again with the relay's buffers bounded (socket buffers 128k both sides, window
#      256k): the pause grows with the bytes the circuits hold, which full-speed circuits with
#      autotuned buffers (tcp_rmem up to 32 MB here) make about 10 MB each;
#   for both: every idle circuit answers a ping after the handovers, every byte of every
#   circuit arrives once and in order (a pattern checked at every offset, and the bytes read
#   against the bytes written), 0 RST into cli or srv (nft counters), every circuit ends with
#   its FINs;
#   a sweep for the charts: the pause against the circuits (100-1,000, 10 of them paced) and
#   against the queued bytes (stalled readers: the server writes 1 MiB into each, the client
#   reads nothing until after the handovers), one handover there and one back per point.
# Each scenario and each point runs on a fresh pair: a node keeps the tuples it handed away
# guarded for guard-timeout (60 s), and a fresh pair keeps one point's guards from meeting
# the next point's connections.
# The load (ops/bench/handover_load.py, python3 only) runs in cli and srv; the relays run the
# published Release build (ReadyToRun, as installed). Writes ops/bench/out/<UTC timestamp>/: results.md, results.json, the charts
# (handover-circuits.svg, handover-queued.svg), each scenario's JSON and the nodes' logs.
# Usage: sudo ops/bench/handover.sh [ROUNDS] [--quick] [--no-build] [--no-sweep] [--trace] [--only A,B,...] [--out DIR] [--relay DLL]
#   ROUNDS   handovers per scenario, alternating n1 -> n2, n2 -> n1 (default 4; --quick: 2)
#   --quick  100 circuits per scenario (A: 5 paced, B: 10 full), a two-point sweep (~2 min)
#   --only   run only these scenarios and sweep points (A, B, B2, n100..n1000, q0..q256)
#   --relay  run this relay.dll (say, a `dotnet publish` output) instead of building one
#   --trace  capture the state channels on br0 (tcpdump, headers only) and print where each
#            handover's time goes (results.md, "Where the time goes"); it adds load
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
. "$HERE/../lib/common.sh"
CLUSTER="$HERE/../cluster/cluster.sh"
LOAD="$HERE/handover_load.py"
ROUNDS="" QUICK="" BUILD=1 SWEEP=1 OUT="" TRACE="" ONLY="" RELAY_DLL=""
COMMAND="ops/bench/handover.sh $*"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1; shift ;;
    --no-build) BUILD=""; shift ;;
    --no-sweep) SWEEP=""; shift ;;
    --trace) TRACE=1; shift ;;
    --only) ONLY=",$2,"; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --relay) RELAY_DLL=$(realpath "$2"); BUILD=""; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    [0-9]*) ROUNDS=$1; shift ;;
    *) echo "handover.sh: unknown option $1 (try --help)" >&2; exit 1 ;;
  esac
done
ROUNDS=${ROUNDS:-$([ -n "$QUICK" ] && echo 2 || echo 4)}
[ "$(id -u)" = 0 ] || { echo "handover.sh: this needs root (network namespaces); run it with sudo" >&2; exit 1; }
need_tools ip:iproute2 python3:python3 nft:nftables tcpdump:tcpdump

export LAB_PREFIX="${LAB_PREFIX:-rhb$$-}"
# The load and two relays share the machine: a busy moment must not down a node (as the lab tests).
export HEARTBEAT_PAUSE="${HEARTBEAT_PAUSE:-3s}"
STATE="${TMPDIR:-/tmp}/${LAB_PREFIX}cluster"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-$HERE/out/$STAMP}
mkdir -p "$OUT"
# TCP memory (net.ipv4.tcp_mem) is one limit for the whole kernel, every namespace included:
# the lab puts four hosts' stacks (cli, n1, n2, srv) under the one limit a single host has.
# In B both nodes hold the circuits' queues at once during the move (the source until the
# commit, the target as it restores: 2 x 1.4 GB), beside cli's and srv's own buffers; past
# the limit the restore of a circuit fails (EAGAIN) and everything slows under pressure. The
# run raises the limit to four hosts' worth (restored on exit), as four machines would have;
# TCP_MEM=keep leaves it. results.md records the values.
TCP_MEM_WAS=$(cat /proc/sys/net/ipv4/tcp_mem)
if [ "${TCP_MEM:-raise}" != keep ]; then
  read -r mem_low mem_pressure mem_high <<<"$TCP_MEM_WAS"
  sysctl -qw net.ipv4.tcp_mem="$((mem_low * 4)) $((mem_pressure * 4)) $((mem_high * 4))"
fi
TCP_MEM_NOW=$(cat /proc/sys/net/ipv4/tcp_mem)
trap '"$CLUSTER" down >/dev/null 2>&1 || true; sysctl -qw net.ipv4.tcp_mem="$TCP_MEM_WAS"' EXIT

# The relay as it is installed: a `dotnet publish` (ReadyToRun, Relay.Host.csproj), shared with bench.sh.
PUB="$REPO/ops/bench/out/publish"
if [ -z "$RELAY_DLL" ] && { [ -n "$BUILD" ] || [ ! -e "$PUB/relay.dll" ]; }; then
  echo "building Relay (Release) into $PUB"
  dotnet publish "$REPO/Relay.Host" -c Release -o "$PUB" >"$OUT/build.log" 2>&1 \
    || { tail -n 20 "$OUT/build.log" >&2; exit 1; }
fi
export RELAY="dotnet ${RELAY_DLL:-$PUB/relay.dll}"

# Configs both nodes read after the lab's own, for the runs that change a default (say which).
BOUNDED="$OUT/bounded.conf" BATCH16="$OUT/batch16.conf"
cat >"$BOUNDED" <<'CONF'
relay.defaults.window = 256k
relay.defaults.client-side { receive-buffer = 128k, send-buffer = 128k }
relay.defaults.upstream-side { receive-buffer = 128k, send-buffer = 128k }
CONF
echo 'relay.cluster.handover.batch-size = 16' >"$BATCH16"

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
COMMIT=$(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet HEAD -- . ':!ops/bench/out' || echo "+dirty")

# rst_counter NS: an nft counter of TCP resets arriving in NS, and the set of their tuples;
# rst_count NS: its packets; rst_tuples NS: the tuples (source . sport . destination . dport).
rst_counter() {
  printf 'table inet rstmon {\n set seen { type ipv4_addr . inet_service . ipv4_addr . inet_service; flags dynamic; }\n chain in {\n type filter hook input priority 0;\n tcp flags & rst == rst counter add @seen { ip saddr . tcp sport . ip daddr . tcp dport }\n }\n}\n' \
    | "$CLUSTER" exec "$1" nft -f -
}
rst_count() { "$CLUSTER" exec "$1" nft list chain inet rstmon in | sed -n 's/.*packets \([0-9]*\).*/\1/p'; }
rst_tuples() { "$CLUSTER" exec "$1" nft list set inet rstmon seen | tr -d '\n' | sed -n 's/.*elements = { *\([^}]*\)}.*/\1/p'; }

# pair: a fresh cluster with n1 the owner and n2 an Up standby; returns 1 if it did not form.
pair() {
  "$CLUSTER" up --egress >/dev/null
  rst_counter cli; rst_counter srv
  "$CLUSTER" start 1 ${EXTRA_CONF:+--config "$EXTRA_CONF"} >/dev/null
  for _ in $(seq 1 300); do grep -q ServiceTakenOver "$STATE/n1.log" 2>/dev/null && break; sleep 0.1; done
  "$CLUSTER" start 2 ${EXTRA_CONF:+--config "$EXTRA_CONF"} >/dev/null
  ups() { local c; c=$(grep -c 'MemberUp' "$STATE/n2.log" 2>/dev/null) || true; echo "${c:-0}"; }
  for _ in $(seq 1 300); do [ "$(ups)" -ge 2 ] && break; sleep 0.1; done
  grep -q ServiceTakenOver "$STATE/n1.log" && ! grep -q ServiceTakenOver "$STATE/n2.log" && [ "$(ups)" -ge 2 ]
}

# scenario NAME AXIS TITLE SPEC ROUNDS [STALL]: one scenario on a fresh pair; $OUT/NAME.json.
# EXTRA_CONF, when set, is a config file both nodes read after the lab's own.
scenario() {
  local name=$1 axis=$2 title=$3 spec=$4 rounds=$5 stall=${6:-1048576} token
  [ -z "$ONLY" ] || [[ "$ONLY" == *",$name,"* ]] || return 0
  for attempt in 1 2; do
    pair && break
    echo "  $name: the pair did not form in time (attempt $attempt)" >&2
    "$CLUSTER" down >/dev/null
    [ "$attempt" = 1 ] || return 1
  done
  token=$(sed -n 's/.*management.token = "\(.*\)"/\1/p' "$STATE/n1.conf")
  echo "$name: $title" >&2
  local cfg
  cfg=$(printf '{"prefix":"%s","out":"%s","name":"%s","spec":%s,"rounds":%s,"owner":1,"token":"%s","stall":%s}' \
    "$LAB_PREFIX" "$OUT" "$name" "$spec" "$rounds" "$token" "$stall")
  local dump=""
  if [ -n "$TRACE" ]; then
    # The state channel: TCP between the nodes on neither the service, the server, Akka nor management.
    ip netns exec "${LAB_PREFIX}br" tcpdump -i br0 -n -s 96 -w "$OUT/$name.pcap" \
      'tcp and not port 7000 and not port 9000 and not port 2552 and not port 8558' 2>/dev/null &
    dump=$!
    sleep 1
  fi
  # The SYNs, FINs and RSTs the client and the server see, to sort the resets they get (below).
  local flags=()
  if command -v tcpdump >/dev/null; then
    for side in cli:7000 srv:9000; do
      ip netns exec "${LAB_PREFIX}${side%%:*}" tcpdump -i any -U -nn -s 96 -w "$OUT/$name-${side%%:*}-flags.pcap" \
        "tcp port ${side##*:} and (tcp[tcpflags] & (tcp-syn|tcp-fin|tcp-rst) != 0)" 2>/dev/null &
      flags+=($!)
    done
    sleep 1
  fi
  if ! python3 "$LOAD" drive "$cfg" >"$OUT/$name.raw" 2>>"$OUT/bench.log"; then
    echo "  $name: the driver failed (see $OUT/bench.log)" >&2
    tail -n 5 "$OUT/bench.log" >&2
  fi
  if [ -n "$dump" ]; then
    kill -INT "$dump" 2>/dev/null || true
    wait "$dump" 2>/dev/null || true
  fi
  for n in 1 2; do cp "$STATE/n$n.log" "$OUT/$name-n$n.log" 2>/dev/null || true; done
  # The last circuits' closing segments (the relay's FIN after a delayed ACK, and any reset
  # after it) come after the driver's last read: without this wait a reset the nft counter
  # saw could be missing from the capture, and would be sorted as early.
  [ "${#flags[@]}" = 0 ] || { sleep 2; kill -INT "${flags[@]}" 2>/dev/null || true; wait "${flags[@]}" 2>/dev/null || true; }
  local early_cli=0 early_srv=0 after_cli=0 after_srv=0
  for ns in cli srv; do
    if [ "$(rst_count $ns)" != "0" ]; then
      local port=7000 sorted early after
      [ "$ns" = cli ] || port=9000
      if [ -s "$OUT/$name-$ns-flags.pcap" ]; then
        sorted=$(python3 "$LOAD" resets "$OUT/$name-$ns-flags.pcap" "$port" "$(rst_tuples $ns)")
      else
        sorted='{"early": ["(no capture)"], "after_close": []}'
      fi
      early=$(python3 -c 'import json,sys; print(len(json.loads(sys.argv[1])["early"]))' "$sorted")
      after=$(python3 -c 'import json,sys; print(len(json.loads(sys.argv[1])["after_close"]))' "$sorted")
      eval "early_$ns=$early after_$ns=$after"
      echo "  RSTs into $ns: connections reset before both FINs $early, only after both FINs $after ($sorted)" | tee -a "$OUT/$name-rst.txt" >&2
      echo "  RSTs into $ns, by tuple: $(rst_tuples $ns)" | tee -a "$OUT/$name-rst.txt" >&2
      # Why the nodes' kernels reset: closed with unread bytes, bytes after close, linger 0...
      for n in n1 n2; do
        echo "  $n: $("$CLUSTER" exec $n awk '/^TcpExt:/ { if (!h) { split($0, k); h = 1 } else { for (i = 2; i <= NF; i++) if (k[i] ~ /^TCPAbortOn/) printf "%s %s ", k[i], $i } }' /proc/net/netstat)" \
          | tee -a "$OUT/$name-rst.txt" >&2
      done
    fi
  done
  if [ -n "$dump" ]; then
    python3 "$LOAD" trace "$OUT/$name.pcap" "$OUT/$name-n1.log" "$OUT/$name-n2.log" >"$OUT/$name.trace.txt" || true
    sed 's/^/  /' "$OUT/$name.trace.txt" >&2
  fi
  python3 - "$OUT/$name.raw" "$OUT/$name.json" "$axis" "$title" "$early_cli" "$early_srv" "$after_cli" "$after_srv" <<'PY'
import datetime, json, re, sys
raw, out, axis, title, rc, rs, ac, as_ = sys.argv[1:]
try:
    r = json.load(open(raw))
except ValueError:
    sys.exit(0)
# Connections reset before both their FINs (what the targets count), and those reset only after
# (a duplicate ACK answered by the listener once the close was complete: listed, not counted).
r.update(axis=axis, title=title, rst_cli=int(rc or 0), rst_srv=int(rs or 0),
         rst_after_close_cli=int(ac or 0), rst_after_close_srv=int(as_ or 0))
# The source's own span of each handover, from its log: HandoverStarted to HandoverCompleted or
# HandoverRolledBack (the POST adds the HTTP request and the ask to the coordinator).
starts, ends = [], {}
for n in (1, 2):
    for line in open(raw[:-4] + f"-n{n}.log", errors="replace"):
        m = re.match(r"(\S+Z) \w+ Handover(Started|Completed|RolledBack) handover (\w+)", line)
        if m:
            t = datetime.datetime.fromisoformat(m[1].replace("Z", "+00:00")).timestamp()
            (starts.append((t, m[3])) if m[2] == "Started" else ends.__setitem__(m[3], t))
for h, (t, hid) in zip(r["handovers"], sorted(starts)):
    h["log_ms"] = round(1000 * (ends[hid] - t), 1) if hid in ends else None
json.dump(r, open(out, "w"), indent=1)
for h in r["handovers"]:
    o = h["outcome"]
    print(f"  n{h['from']} -> n{h['to']}: {o.get('result')}, moved {o.get('moved')}, pause {o.get('busyPauseMs', 0):.0f} ms busy / {o.get('pauseMs', 0):.0f} ms all, "
          f"POST {h['post_ms']:.0f} ms, longest gap {h['max_gap_ms']:.0f} ms, {o.get('bytesMoved', 0) / 1e6:.1f} MB moved", file=sys.stderr)
if "check" not in r:
    print(f"  the load could not finish: {r.get('error')}", file=sys.stderr)
    sys.exit(0)
c = r["check"]
print(f"  lost {c['lost']}, duplicated {c['duplicated']}, wrong {c['wrong']}, RST {rc}+{rs} (after close {ac}+{as_}), socket errors {c['socket_errors']}, "
      f"pings {r['pinged']}, new circuit {r.get('probe')}, load stall {c['load_stall_ms']} ms", file=sys.stderr)
PY
  "$CLUSTER" down >/dev/null
}

if [ -n "$QUICK" ]; then
  scenario A scenario "1 paced-streaming circuit in 20, the rest idle" '{"paced":5,"idle":95}' "$ROUNDS"
  scenario B scenario "1 full-speed circuit in 10, the rest idle" '{"full":10,"idle":90}' "$ROUNDS"
  EXTRA_CONF="$BOUNDED" scenario B2 scenario "B with bounded buffers" '{"full":10,"idle":90}' "$ROUNDS"
  if [ -n "$SWEEP" ]; then
    scenario n250 circuits "250 circuits" '{"paced":10,"idle":240}' 2
    EXTRA_CONF="$BATCH16" scenario q16 queued "16 x 1 MiB stalled, batch-size 16" '{"paced":10,"stalled":16,"idle":74}' 2
  fi
else
  scenario A scenario "1,000 circuits: 20 paced both ways, 980 idle" '{"paced":20,"idle":980}' "$ROUNDS"
  scenario B scenario "1,000 circuits: 100 full speed both ways, 900 idle" '{"full":100,"idle":900}' "$ROUNDS"
  # The same with the relay's buffers bounded: the pause grows with the bytes the circuits
  # hold, and a full-speed circuit with autotuned buffers holds about 10 MB here.
  EXTRA_CONF="$BOUNDED" scenario B2 scenario "B with bounded buffers (sockets 128k, window 256k)" '{"full":100,"idle":900}' "$ROUNDS"
  if [ -n "$SWEEP" ]; then
    for n in 100 250 500 1000; do
      scenario "n$n" circuits "$n circuits, 10 paced" "{\"paced\":10,\"idle\":$((n - 10))}" 2
    done
    # 16 circuits per batch: 256 stalled circuits of 1 MiB in one 256-circuit batch would not
    # fit one 64 MiB frame (scenario B shows what the default does with that).
    for mb in 0 16 64 256; do
      EXTRA_CONF="$BATCH16" scenario "q$mb" queued "$mb x 1 MiB stalled, 10 paced, 90 idle, batch-size 16" \
        "{\"paced\":10,\"stalled\":$mb,\"idle\":90}" 2
    done
  fi
fi

python3 "$LOAD" collect "$OUT" "$COMMAND" "$COMMIT" "$STAMP" "$LOAD_START" "$(cut -d' ' -f1-3 /proc/loadavg)" "$ROUNDS"
python3 "$LOAD" report "$OUT"
printf '\nnet.ipv4.tcp_mem (pages) during the run: %s (the host had %s; one limit for all four namespaces)\n' \
  "$TCP_MEM_NOW" "$TCP_MEM_WAS" >>"$OUT/results.md"
echo "results: $OUT/results.md"

#!/usr/bin/env bash
# Where an idle circuit's memory goes: a per-type breakdown of the relay's managed heap per
# idle circuit, beside its RSS growth, on loopback.
#
#   ops/bench/idle-heap.sh [--n N] [--rounds R] [--warmup W] [--rss-only] [--no-build] [--out DIR]
#                          [--relay PATH] [--relay-conf 'HOCON lines'] [--keep-dumps]
#
# Fresh relays in turn (Release build, one route 127.0.0.1:UP_PORT+1 -> 127.0.0.1:UP_PORT,
# an idle.py server holding the upstream ends), each warmed up with W circuits (default 20,
# as the bench's memory test is) opened and closed:
#  1. rss:  VmRSS/RssAnon/RssFile before and 2 s after N idle circuits are established (the
#           bench's method; nothing attaches to the process, since a dump pages memory in),
#           R rounds (default 3), each on a fresh relay.
#  2. heap: a heap dump (dotnet-dump) at 0 and at N idle circuits; `dumpheap -stat -live`
#           of both, diffed by type name, and `eeheap -gc` (GC committed bytes).
# Prints and writes to DIR (default ops/bench/out/idle-heap-<time>/): rss.txt, heap-0.txt,
# heap-N.txt, eeheap-*.txt and per-type.md (bytes and objects per circuit, by type).
# --rss-only skips step 2. DOTNET_* variables in the environment reach the relay (GC
# settings to try, e.g. DOTNET_GCGen0MaxBudget=0x200000; the name is case-sensitive) and
# the DOTNET_GC* ones are recorded in rss.txt.
# dotnet-dump is installed from the NuGet feed into $DIAG_TOOLS (default
# /opt/relay-diag-tools) when missing. Every process it starts is stopped on exit; dumps
# are deleted unless --keep-dumps. Bounded: at most 120 s per wait, the opener at most 600 s.
# Ports: UP_PORT (default 17090) and UP_PORT+1 on 127.0.0.1 must be free.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
N=5000
BUILD=1
OUT=""
RELAY="$REPO/Relay.Host/bin/Release/net10.0/relay.dll"
RELAY_CONF=""
KEEP=0
ROUNDS=3
WARMUP=20
RSS_ONLY=0
UP_PORT=${UP_PORT:-17090}
LISTEN_PORT=$((UP_PORT + 1))
DIAG_TOOLS=${DIAG_TOOLS:-/opt/relay-diag-tools}

while [ "$#" -gt 0 ]; do
  case "$1" in
    --n) N=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --out) OUT=$2; shift 2 ;;
    --relay) RELAY=$2; shift 2 ;;
    --relay-conf) RELAY_CONF=$2; shift 2 ;;
    --keep-dumps) KEEP=1; shift ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --rss-only) RSS_ONLY=1; shift ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "idle-heap.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done

case "$N" in ''|*[!0-9]*) echo "idle-heap.sh: --n must be a positive number, not '$N'" >&2; exit 2 ;; esac
case "$WARMUP" in ''|*[!0-9]*) echo "idle-heap.sh: --warmup must be a number, not '$WARMUP'" >&2; exit 2 ;; esac
case "$ROUNDS" in ''|*[!0-9]*|0) echo "idle-heap.sh: --rounds must be a positive number, not '$ROUNDS'" >&2; exit 2 ;; esac
# The relay holds 2 descriptors per circuit, and inherits this shell's limit.
max_n=$(( ($(ulimit -n) - 1000) / 2 ))
if [ "$N" -lt 100 ] || [ "$N" -gt "$max_n" ]; then
  echo "idle-heap.sh: --n $N is outside 100..$max_n (RLIMIT_NOFILE $(ulimit -n), 2 descriptors per circuit)" >&2
  exit 2
fi
for port in "$UP_PORT" "$LISTEN_PORT"; do
  if ss -Hltn "( sport = :$port )" | grep -q .; then
    echo "idle-heap.sh: 127.0.0.1:$port is in use; set UP_PORT to a free pair" >&2
    exit 1
  fi
done

if [ ! -x "$DIAG_TOOLS/dotnet-dump" ]; then
  echo "== installing dotnet-dump into $DIAG_TOOLS"
  dotnet tool install dotnet-dump --tool-path "$DIAG_TOOLS" >/dev/null
fi
if [ "$BUILD" = 1 ]; then
  echo "== building Release"
  dotnet build "$REPO/Relay.Host" -c Release -v quiet -nologo >/dev/null
fi
[ -f "$RELAY" ] || { echo "idle-heap.sh: no relay at $RELAY (build it, or pass --relay)" >&2; exit 1; }

OUT=${OUT:-$HERE/out/idle-heap-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
work=$(mktemp -d)
pids=()
cleanup() {
  exec 9>&- 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# The bench's relay settings (logging on: the CircuitClosed line at Info).
printf 'akka.loglevel = INFO\nakka.stdout-loglevel = WARNING\n%s\n' "$RELAY_CONF" > "$work/relay.conf"

python3 "$HERE/idle.py" hold 127.0.0.1 "$UP_PORT" > "$work/hold.log" 2>&1 & pids+=($!)

# wait_for DESCRIPTION SECONDS COMMAND...: polls COMMAND every 0.2 s.
wait_for() {
  local what=$1 limit=$2; shift 2
  local end=$((SECONDS + limit))
  until "$@"; do
    if [ "$SECONDS" -ge "$end" ]; then echo "idle-heap.sh: timed out waiting for $what" >&2; return 1; fi
    sleep 0.2
  done
}
listening() { ss -Hltn "( sport = :$1 )" | grep -q .; }
established_upstream() { ss -Htn state established "( sport = :$UP_PORT )" | wc -l; }
upstream_at_least() { [ "$(established_upstream)" -ge "$1" ]; }
upstream_none() { [ "$(established_upstream)" -eq 0 ]; }
not_listening() { ! listening "$1"; }
wait_for "the idle server" 30 listening "$UP_PORT"

relay_pid=""
start_relay() {
  dotnet "$RELAY" run --management off --config "$work/relay.conf" \
    --route "idle@127.0.0.1:$LISTEN_PORT=127.0.0.1:$UP_PORT" > "$work/relay-$1.log" 2>&1 &
  relay_pid=$!
  pids+=("$relay_pid")
  wait_for "the relay to listen" 60 listening "$LISTEN_PORT"
  # The bench's warm-up: 20 circuits opened and closed (JIT, pools, first-connection paths).
  timeout 60 python3 "$HERE/idle.py" open 127.0.0.1 "$LISTEN_PORT" "$WARMUP" 0.5 < /dev/null > /dev/null
  wait_for "the warm-up circuits to close" 30 upstream_none
  sleep 1.5
}
stop_relay() {
  kill "$relay_pid" 2>/dev/null || true
  wait "$relay_pid" 2>/dev/null || true
  wait_for "the relay to stop listening" 30 not_listening "$LISTEN_PORT"
}

# open_idle: N idle circuits, held until close_idle (fd 9 is the opener's stdin).
opener_pid=""
open_idle() {
  rm -f "$work/ctl" && mkfifo "$work/ctl"
  timeout 600 python3 "$HERE/idle.py" open 127.0.0.1 "$LISTEN_PORT" "$N" 540 < "$work/ctl" > "$work/open.log" 2>&1 &
  opener_pid=$!
  pids+=("$opener_pid")
  exec 9> "$work/ctl"
  wait_for "the opener" 120 grep -q '^ready' "$work/open.log"
  local ready
  ready=$(awk '/^ready/ {print $2}' "$work/open.log")
  [ "$ready" = "$N" ] || { echo "idle-heap.sh: only $(cat "$work/open.log") of $N circuits" >&2; return 1; }
  wait_for "$N established upstream connections" 90 upstream_at_least "$N"
  sleep 2
}
close_idle() {
  exec 9>&-
  wait "$opener_pid" 2>/dev/null || true
  wait_for "the idle circuits to close" 60 upstream_none
}

mem() { awk '/^(VmRSS|RssAnon|RssFile|RssShmem):/ {printf "%s %d ", $1, $2 * 1024}' "/proc/$relay_pid/status"; }

dump() { # dump NAME: heap dump of the relay, then its live objects by type and the GC's sizes
  "$DIAG_TOOLS/dotnet-dump" collect -p "$relay_pid" --type Heap -o "$work/$1.dmp" > /dev/null
  "$DIAG_TOOLS/dotnet-dump" analyze "$work/$1.dmp" -c "dumpheap -stat -live" -c exit > "$OUT/heap-$1.txt"
  "$DIAG_TOOLS/dotnet-dump" analyze "$work/$1.dmp" -c "eeheap -gc" -c exit > "$OUT/eeheap-$1.txt"
  if [ "$KEEP" = 1 ]; then mv "$work/$1.dmp" "$OUT/"; else rm -f "$work/$1.dmp"; fi
}

echo "== 1/2 rss: $ROUNDS fresh relay(s), $N idle circuits each, nothing attached"
rss_rounds=()
for round in $(seq 1 "$ROUNDS"); do
  start_relay "rss-$round"
  before=$(mem)
  open_idle
  after=$(mem)
  close_idle
  stop_relay
  rss_rounds+=("$before|$after")
done
python3 - "$N" "$(env | grep '^DOTNET_GC' | sort | tr '\n' ' ')" "$WARMUP" "${rss_rounds[@]}" <<'PY' | tee "$OUT/rss.txt"
import statistics, sys
n, env = int(sys.argv[1]), sys.argv[2].strip() or "(none)"
def parse(s):
    f = s.split()
    return {f[i].rstrip(":"): int(f[i + 1]) for i in range(0, len(f), 2)}
rounds = [tuple(map(parse, r.split("|"))) for r in sys.argv[4:]]
print(f"idle circuits: {n}; warm-up circuits: {sys.argv[3]}; DOTNET_GC* environment: {env}")
for k in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
    per = [(a[k] - b[k]) / n for b, a in rounds]
    print(f"{k:9s} per circuit, rounds: " + " ".join(f"{p:>7,.0f}" for p in per) + f"   median {statistics.median(per):>7,.0f} B"
          + f"   (first round: {rounds[0][0][k]:,} -> {rounds[0][1][k]:,})")
PY
[ "$RSS_ONLY" = 1 ] && { echo "== results in $OUT"; exit 0; }

echo "== 2/2 heap: fresh relay, dumps at 0 and $N idle circuits"
start_relay heap
mem0=$(mem)
dump 0
open_idle
memN=$(mem)
dump "$N"
close_idle
stop_relay

python3 - "$N" "$OUT" "$mem0" "$memN" <<'PY' | tee "$OUT/per-type.md"
import re, sys
n, out = int(sys.argv[1]), sys.argv[2]

def stat(path):
    """dumpheap -stat rows (MT, count, total size, class name), summed by class name."""
    by = {}
    for line in open(path):
        m = re.match(r"\s*[0-9a-f]{8,16}\s+([\d,]+)\s+([\d,]+)\s+(.+?)\s*$", line)
        if m:
            c, s = int(m.group(1).replace(",", "")), int(m.group(2).replace(",", ""))
            oc, os_ = by.get(m.group(3), (0, 0))
            by[m.group(3)] = (oc + c, os_ + s)
    return by

def heap_total(path):
    m = re.search(r"Total ([\d,]+) objects, ([\d,]+) bytes", open(path).read())
    return int(m.group(2).replace(",", ""))

def gc(path):
    text = open(path).read()
    get = lambda label: int(re.search(label + r".*?\((\d+)\) bytes", text).group(1))
    return get("GC Allocated Heap Size"), get("GC Committed Heap Size")

def rss(s):
    f = s.split()
    return {f[i].rstrip(":"): int(f[i + 1]) for i in range(0, len(f), 2)}

h0, hn = stat(f"{out}/heap-0.txt"), stat(f"{out}/heap-{n}.txt")
rows = []
for name in set(h0) | set(hn):
    c0, s0 = h0.get(name, (0, 0))
    c1, s1 = hn.get(name, (0, 0))
    rows.append(((s1 - s0) / n, (c1 - c0) / n, name))
rows.sort(reverse=True)
total = sum(r[0] for r in rows)
(a0, k0), (a1, k1) = gc(f"{out}/eeheap-0.txt"), gc(f"{out}/eeheap-{n}.txt")
m0, m1 = rss(sys.argv[3]), rss(sys.argv[4])
print(f"# Live managed heap per idle circuit, by type ({n} circuits, `dumpheap -stat -live` diff)\n")
print("| type | bytes/circuit | objects/circuit |")
print("|---|---:|---:|")
for per, cnt, name in rows:
    if abs(per) >= 2 or abs(cnt) >= 0.05:
        print(f"| `{name}` | {per:,.1f} | {cnt:,.2f} |")
rest = sum(r[0] for r in rows if not (abs(r[0]) >= 2 or abs(r[1]) >= 0.05))
print(f"| (other types) | {rest:,.1f} | |")
print(f"| **total live** | **{total:,.0f}** | {sum(r[1] for r in rows):,.1f} |\n")
l0, l1 = heap_total(f"{out}/heap-0.txt"), heap_total(f"{out}/heap-{n}.txt")
print("| GC heap (eeheap -gc, dumpheap -live) | at 0 | at N | per circuit |")
print("|---|---:|---:|---:|")
print(f"| live objects | {l0:,} | {l1:,} | {(l1 - l0) / n:,.0f} |")
print(f"| allocated (live and dead objects) | {a0:,} | {a1:,} | {(a1 - a0) / n:,.0f} |")
print(f"| dead objects not yet collected | {a0 - l0:,} | {a1 - l1:,} | {((a1 - l1) - (a0 - l0)) / n:,.0f} |")
print(f"| committed | {k0:,} | {k1:,} | {(k1 - k0) / n:,.0f} |")
print(f"| RssAnon | {m0['RssAnon']:,} | {m1['RssAnon']:,} | {(m1['RssAnon'] - m0['RssAnon']) / n:,.0f} |")
print(f"| VmRSS | {m0['VmRSS']:,} | {m1['VmRSS']:,} | {(m1['VmRSS'] - m0['VmRSS']) / n:,.0f} |\n")
print("RSS in this run is read before each dump, but the dump at 0 pages file-backed memory in: use rss.txt for RSS.")
PY
echo "== results in $OUT"

#!/usr/bin/env bash
# Relay benchmark: one command from a clean clone (root).
#
#   ops/bench/bench.sh [--quick] [--rounds N] [--seconds S] [--only main,memory,sweep]
#                      [--idle-n N] [--no-build] [--out DIR] [--relay-conf 'HOCON lines']
#                      [--logging both|on|off] [--relay-log-format json|text]
#
# Installs what it needs (apt-get), builds Relay in Release, brings the lab up
# (ops/lab/lab.sh, namespaces prefixed LAB_PREFIX, default "relaybench-") and
# measures routed / Relay / HAProxy / socat interleaved. Results go to
# ops/bench/out/<timestamp>/ (results.json, results.md, charts).
# --quick: 3 rounds of 2 s, 1 memory round of 2000 circuits, a 2-round sweep:
# about 5 minutes. Default: 5 rounds of 5 s (the targets are medians of at least 5),
# 3 memory rounds of 5000, 3-round sweep.
# Logging (default both): the headline Relay and HAProxy log one line per connection
# (Relay's CircuitClosed at Info, HAProxy's tcplog to stdout), and a logging-off pair runs
# the wrk tests in the same rounds for the report's second table.
# Everything it starts is stopped on exit, and the lab is torn down.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
# Quoted as typed (printf %q), so the results name a --relay-conf value exactly.
COMMAND="ops/bench/bench.sh"
for arg in "$@"; do COMMAND+=" $(printf '%q' "$arg")"; done

if [ "$(id -u)" != 0 ]; then
  echo "bench.sh: needs root (it creates network namespaces and installs packages with apt-get)." >&2
  exit 1
fi

QUICK=0
BUILD=1
OUT=""
PASS=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1; shift ;;
    --no-build) BUILD=0; shift ;;
    --out) OUT=$2; shift 2 ;;
    --rounds|--seconds|--only|--idle-n|--mem-rounds|--sweep-rounds|--sweep-seconds|--write-sizes|--far-mtus|--socat-idle-n|--relay-conf|--logging|--relay-log-format)
      PASS+=("$1" "$2"); shift 2 ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done

# ---- tools ----------------------------------------------------------------------
export DEBIAN_FRONTEND=noninteractive
need=()
for t in iperf3:iperf3 wrk:wrk nginx:nginx-light haproxy:haproxy socat:socat ethtool:ethtool ip:iproute2 ss:iproute2 timeout:coreutils; do
  command -v "${t%%:*}" >/dev/null 2>&1 || need+=("${t##*:}")
done
[ -x /usr/bin/python3 ] || need+=(python3)
if [ "${#need[@]}" -gt 0 ]; then
  echo "== installing ${need[*]}"
  apt-get update -qq
  # nginx-light may be missing on some releases; fall back to nginx.
  apt-get install -y -qq "${need[@]}" >/dev/null \
    || apt-get install -y -qq $(printf '%s\n' "${need[@]}" | sed 's/^nginx-light$/nginx/') >/dev/null
fi
# Charts: matplotlib when Debian has it, else report.py writes SVG by hand.
if ! /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
  apt-get install -y -qq python3-matplotlib >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq python3-matplotlib >/dev/null 2>&1; } \
    || echo "== python3-matplotlib not available: charts will be SVG"
fi
# The packages' own services (on systemd machines) are not used by the bench.

# ---- build ----------------------------------------------------------------------
PUB="$REPO/ops/bench/out/publish"
if [ "$BUILD" = 1 ] || [ ! -e "$PUB/relay.dll" ]; then
  echo "== building Relay (Release) into $PUB"
  export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
  dotnet publish "$REPO/Relay.Host" -c Release -o "$PUB" -v quiet -nologo >/dev/null
fi
RELAY_BIN="$PUB/relay"
[ -x "$RELAY_BIN" ] || RELAY_BIN="$PUB/relay.dll"

# ---- run ------------------------------------------------------------------------
export LAB_PREFIX="${LAB_PREFIX:-relaybench-}"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="${OUT:-$REPO/ops/bench/out/$STAMP}"
mkdir -p "$OUT"

cleanup() {
  "$REPO/ops/lab/lab.sh" down >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$QUICK" = 1 ]; then
  QARGS=(--rounds 3 --seconds 2 --mem-rounds 1 --idle-n 2000 --socat-idle-n 200 --sweep-rounds 2 --sweep-seconds 2)
else
  QARGS=()
fi
echo "== results in $OUT"
# Later arguments win in argparse, so explicit flags override --quick.
/usr/bin/python3 "$HERE/bench.py" --relay "$RELAY_BIN" --out "$OUT" --lab-prefix "$LAB_PREFIX" \
  --command "$COMMAND" "${QARGS[@]}" "${PASS[@]}" 2>&1 | tee "$OUT/bench.log"
exit "${PIPESTATUS[0]}"

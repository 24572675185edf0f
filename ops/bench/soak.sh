#!/usr/bin/env bash
# Soak test: the relay under a bounded mix of connect/close churn, long transfers and client
# resets against a local echo upstream, sampling its descriptors, RSS and threads, and
# asserting they stay flat (the criterion is in soak.py's header and in the report).
# Root is not needed; everything is on 127.0.0.1.
#
#   ops/bench/soak.sh                      # 10 minutes
#   ops/bench/soak.sh --duration 300       # seconds; also --interval, --churn, --long, --resets, --long-size, --long-rate
#   ops/bench/soak.sh --no-build ...       # reuse ops/bench/out/soak-publish
#
# Writes ops/bench/out/soak-<UTC timestamp>/: samples.csv, soak.md, soak.json, relay.log.
# Exit code 0 when flat, 1 when a resource grew or a transfer was corrupt.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=1
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) build=0; shift ;;
    --duration|--interval|--churn|--long|--resets|--long-size|--long-rate) args+=("$1" "$2"); shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "soak.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
command -v python3 >/dev/null || { echo "soak.sh: needs python3" >&2; exit 2; }
publish=ops/bench/out/soak-publish
if [ $build = 1 ] || [ ! -x "$publish/relay" ]; then
  dotnet publish Relay.Host -c Release -o "$publish" --nologo -v quiet >/dev/null
fi
out=ops/bench/out/soak-$(date -u +%Y%m%dT%H%M%SZ)
echo "soak: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), commit $(git rev-parse --short HEAD 2>/dev/null || echo ?), out $out"
exec python3 ops/bench/soak.py --relay "$publish/relay" --out "$out" "${args[@]}"

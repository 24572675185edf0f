#!/usr/bin/env python3
# The share of stream-handovers whose longest receive gap passed 150/200/300/500/900 ms, per
# handover.sh output directory (or glob of them), from the load's gap list in A.json:
#   python3 ops/bench/handover_gapstats.py "ops/bench/out/2026*"
import json, sys, glob, collections
# usage: gapstats.py GLOB...  -> per build: streams (of 40 per handover) whose longest gap around a handover exceeds 150/200/500/900 ms
for pattern in sys.argv[1:]:
    counts = collections.Counter(); total = 0; maxes = []
    for path in sorted(glob.glob(pattern + "/A.json")):
        d = json.load(open(path))
        for h in d["handovers"]:
            lo, hi = h["t0"], h["t1"] + 1.5
            per = collections.defaultdict(float)
            for s, e, side, cid in d["gaps"]:
                if e >= lo and s <= hi:
                    per[(side, cid)] = max(per[(side, cid)], (e - s) * 1000)
            total += 40
            for v in per.values():
                for t in (150, 200, 300, 500, 900):
                    if v > t:
                        counts[t] += 1
            maxes.append(round(h["max_gap_ms"]))
    print(pattern, "stream-handovers", total, {f">{t}": counts[t] for t in (150, 200, 300, 500, 900)}, "max per handover", sorted(maxes))

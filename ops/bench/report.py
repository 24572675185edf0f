#!/usr/bin/env python3
"""Render results.json (from bench.py) as results.md and charts.

  report.py OUT_DIR/results.json

Medians over rounds; a ratio is the median of the per-round ratios (the runs
of one round are interleaved, so a paired ratio cancels the drift of a shared
machine). Charts are PNG with matplotlib when it imports, else SVG written by
hand.
"""
import json
import os
import statistics
import sys

PATHS = ["routed", "relay", "haproxy", "socat"]
LABEL = {"routed": "routed (no relay)", "relay": "Relay", "haproxy": "HAProxy", "socat": "socat",
         "relay_nolog": "Relay, logging off", "haproxy_nolog": "HAProxy, logging off"}
# The second table (bench.py --logging both): the wrk metrics of the logging-off peers.
NOLOG_METRICS = ["ka_rps", "ka_cpu", "ka_ctx", "close_rps", "close_cpu", "close_ctx"]

# metric key: (test, field, title, unit, format, higher_is_better)
METRICS = [
    ("bulk1_gbps", "bulk1", "gbps", "bulk, 1 stream", "Gbit/s", "{:.2f}", True),
    ("bulk8_gbps", "bulk8", "gbps", "bulk, 8 streams", "Gbit/s", "{:.2f}", True),
    ("bulk1_cpu", "bulk1", "cpu_s_per_gb", "relay CPU per GB, 1 stream", "CPU-s/GB", "{:.2f}", False),
    ("bulk8_cpu", "bulk8", "cpu_s_per_gb", "relay CPU per GB, 8 streams", "CPU-s/GB", "{:.2f}", False),
    ("bulk1_bpp", "bulk1", "cli_bytes_per_packet", "cli bytes per packet, 1 stream", "B", "{:,.0f}", True),
    ("bulk8_bpp", "bulk8", "cli_bytes_per_packet", "cli bytes per packet, 8 streams", "B", "{:,.0f}", True),
    ("bulk1_clicpu", "bulk1", "cli_cpu_pct", "cli CPU, 1 stream (iperf3)", "%", "{:.0f}", False),
    ("ka_rps", "keepalive", "rps", "wrk keep-alive, 32 conns", "req/s", "{:,.0f}", True),
    ("ka_cpu", "keepalive", "cpu_us_per_req", "relay CPU per keep-alive request", "CPU-us", "{:.1f}", False),
    ("ka_ctx", "keepalive", "ctxsw_per_req", "relay context switches per keep-alive request", "switches", "{:.2f}", False),
    ("close_rps", "conn_close", "rps", "wrk Connection: close, 32 conns", "conn/s", "{:,.0f}", True),
    ("close_cpu", "conn_close", "cpu_us_per_req", "relay CPU per connection", "CPU-us", "{:.1f}", False),
    ("close_ctx", "conn_close", "ctxsw_per_req", "relay context switches per connection", "switches", "{:.2f}", False),
    ("idle_mem", "idle_memory", "bytes_per_circuit", "user-space memory per idle circuit", "B", "{:,.0f}", False),
]

# (metric, comparator, op, threshold, text): issue 16's table. A comparator ending in
# "_nolog" is the logging-off pair (relay_nolog against it).
TARGETS = [
    ("close_rps", "haproxy", ">=", 1.1, "connections/s >= 1.1x HAProxy, logging on"),
    ("close_rps", "haproxy_nolog", ">=", 1.1, "connections/s >= 1.1x HAProxy, logging off"),
    ("ka_rps", "haproxy", ">=", 1.1, "keep-alive req/s >= 1.1x HAProxy"),
    ("bulk1_gbps", "haproxy", ">=", 1.5, "bulk 1 stream >= 1.5x HAProxy"),
    ("bulk1_gbps", "socat", ">=", 1.1, "bulk 1 stream >= 1.1x socat"),
    ("bulk8_gbps", "haproxy", ">=", 1.3, "bulk 8 streams >= 1.3x HAProxy"),
    ("bulk8_gbps", "socat", ">=", 1.1, "bulk 8 streams >= 1.1x socat"),
    ("bulk1_cpu", "haproxy", "<=", 0.6, "relay CPU/GB (1 stream) <= 0.6x HAProxy"),
    ("bulk8_cpu", "haproxy", "<=", 0.6, "relay CPU/GB (8 streams) <= 0.6x HAProxy"),
    ("idle_mem", None, "<=", 4096, "user-space memory per idle circuit <= 4 KiB"),
    ("bulk1_bpp", None, ">=", 60000, "cli bytes/packet through Relay >= 60,000"),
]


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def values(runs, test, field, path):
    return [r.get(field) for r in runs if r.get("test") == test and r.get("path") == path]


def by_round(runs, test, field, path):
    out = {}
    for r in runs:
        if r.get("test") == test and r.get("path") == path and r.get(field) is not None:
            out.setdefault(r.get("round"), []).append(r[field])
    return {k: statistics.median(v) for k, v in out.items()}


def paired_ratio(runs, test, field, a, b):
    ra, rb = by_round(runs, test, field, a), by_round(runs, test, field, b)
    rs = [ra[k] / rb[k] for k in ra if k in rb and rb[k]]
    return statistics.median(rs) if rs else None


def summarize(results):
    runs = results["runs"]
    summary, ratios = {}, {}
    for key, test, field, *_ in METRICS:
        summary[key] = {p: median(values(runs, test, field, p)) for p in PATHS}
        summary[key + "_n"] = {p: len([v for v in values(runs, test, field, p) if v is not None]) for p in PATHS}
        ratios[key] = {c: paired_ratio(runs, test, field, "relay", c) for c in ("haproxy", "socat", "routed")}
    nolog, nolog_ratios = {}, {}
    for key, test, field, *_ in METRICS:
        if key in NOLOG_METRICS:
            nolog[key] = {p: median(values(runs, test, field, p)) for p in ("relay_nolog", "haproxy_nolog")}
            nolog_ratios[key] = paired_ratio(runs, test, field, "relay_nolog", "haproxy_nolog")
            ratios[key]["haproxy_nolog"] = nolog_ratios[key]
    sweep = {}
    for r in runs:
        if r.get("test") == "sweep" and r.get("gbps") is not None:
            sweep.setdefault(str(r["far_mtu"]), {}).setdefault(r["write_size"], []).append(r["gbps"])
    sweep = {m: {ws: statistics.median(v) for ws, v in d.items()} for m, d in sweep.items()}
    sweep_bpp = {}
    for r in runs:
        if r.get("test") == "sweep" and r.get("cli_bytes_per_packet") is not None:
            sweep_bpp.setdefault(str(r["far_mtu"]), {}).setdefault(r["write_size"], []).append(r["cli_bytes_per_packet"])
    sweep_bpp = {m: {ws: statistics.median(v) for ws, v in d.items()} for m, d in sweep_bpp.items()}
    targets = []
    for key, comp, op, thr, text in TARGETS:
        v = ratios[key][comp] if comp else summary[key]["relay"]
        if v is None:
            targets.append({"target": text, "value": None, "met": None})
            continue
        met = v >= thr if op == ">=" else v <= thr
        targets.append({"target": text, "value": v, "threshold": thr, "op": op, "met": met,
                        "ratio": comp is not None})
    errors = [r for r in runs if "error" in r]
    return {"summary": summary, "ratios": ratios, "sweep": sweep, "sweep_bpp": sweep_bpp,
            "targets": targets, "errors": errors, "nolog": nolog, "nolog_ratios": nolog_ratios}


def fmt(v, f):
    return "–" if v is None else f.format(v)


def render(path):
    with open(path) as f:
        results = json.load(f)
    out = os.path.dirname(os.path.abspath(path))
    s = summarize(results)
    results.update({k: s[k] for k in ("summary", "ratios", "sweep", "sweep_bpp", "targets", "nolog", "nolog_ratios")})
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    charts = make_charts(results, s, out)
    md = markdown(results, s, charts)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(md)
    print(md)
    return md


def markdown(results, s, charts):
    m, c = results["meta"], results["config"]
    L = []
    L.append("# Relay benchmark: the lab (cli MTU 65520 -> relay -> srv MTU 1500)")
    L.append("")
    L.append(f"- date: {m['date']}")
    L.append(f"- command: `{m['command']}`")
    L.append(f"- machine: {m['cpu']}, {m['nproc']} cores, {m.get('memory', '?')} RAM, kernel {m['kernel']}, {m.get('os', '')}")
    L.append(f"- load average at start / end: {' '.join(m.get('loadavg_start', []))} / {' '.join(m.get('loadavg_end', []) or ['?'])} (the machine is shared: compare ratios, not absolutes)")
    L.append(f"- Relay {m.get('git', '?')}, dotnet {m['versions'].get('dotnet', '?')}; {m['versions'].get('haproxy', '')}; {m['versions'].get('socat', '')}; {m['versions'].get('nginx', '')}; {m['versions'].get('iperf3', '')}; {m['versions'].get('wrk', '')}")
    only = c.get("only", ["main", "memory", "sweep"])
    plan = []
    if "main" in only:
        plan.append(f"main: {c['rounds']} rounds (each round runs routed, Relay, HAProxy, socat back to back, "
                    f"per test), {c['seconds']} s per run")
    if "memory" in only:
        plan.append(f"memory: {c['mem_rounds']} round(s) of {c['idle_n']} idle circuits "
                    f"(socat {min(c['idle_n'], c['socat_idle_n'])})")
    if "sweep" in only:
        plan.append(f"write-size sweep: {c['sweep_rounds']} round(s) of {c['sweep_seconds']} s per size, "
                    f"far MTU {', '.join(map(str, c['far_mtus']))}")
    L.append("- " + "; ".join(plan))
    logging = m.get("logging", "off")
    if logging == "off":
        L.append("- Logging: off on both (Relay `akka.loglevel = WARNING`, HAProxy without `log`).")
    else:
        L.append("- Logging: the headline Relay and HAProxy log one line per connection, as operators run them: "
                 "Relay its CircuitClosed line at Info (`akka.loglevel = INFO`, the shipped level), HAProxy "
                 "`option tcplog` to `log stdout format raw local0`; each writes to its stdout, redirected to a "
                 "file in the run's `logs/` (the same disk). socat has no per-connection log."
                 + (" A second Relay and HAProxy with logging off run the wrk tests in the same rounds "
                    "(the second table)." if logging == "both" else ""))
    if m.get("log_lines"):
        L.append("- Per-connection lines written during the run: "
                 + ", ".join(f"{LABEL.get(k, k)} {v:,}" for k, v in m["log_lines"].items()))
    L.append(f"- HAProxy: mode tcp, `{m.get('haproxy_splice')}`, default threads. socat: `-b 262144`, fork. "
             "Relay: defaults (write-size 256k, window 1m since run 4; 64k and 256k before; threads unpinned since run 10)"
             + (f", plus `{' '.join(m['relay_conf'].split())}` (--relay-conf)." if m.get("relay_conf") else ".")
             + " Each peer's command line and configuration are under \"Configurations\" below.")
    L.append("")
    L.append("## Results" + (", logging on" if logging != "off" else "")
             + " (medians; ratios are medians of per-round Relay/other ratios)")
    L.append("")
    L.append("| metric | unit | routed | Relay | HAProxy | socat | Relay/HAProxy | Relay/socat |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|")
    for key, test, field, title, unit, f, hib in METRICS:
        v = s["summary"][key]
        r = s["ratios"][key]
        L.append(f"| {title} | {unit} | {fmt(v['routed'], f)} | **{fmt(v['relay'], f)}** | {fmt(v['haproxy'], f)} | "
                 f"{fmt(v['socat'], f)} | {fmt(r['haproxy'], '{:.2f}x')} | {fmt(r['socat'], '{:.2f}x')} |")
    L.append("")
    L.append("Lower is better for CPU, cli CPU and memory; higher for the rest.")
    L.append("")
    if any(v["relay_nolog"] is not None for v in s["nolog"].values()):
        L.append("## Results, logging off (the same rounds; wrk tests only)")
        L.append("")
        L.append("| metric | unit | Relay, logging off | HAProxy, logging off | Relay/HAProxy |")
        L.append("|---|---|---:|---:|---:|")
        for key, test, field, title, unit, f, hib in METRICS:
            if key in s["nolog"]:
                v = s["nolog"][key]
                L.append(f"| {title} | {unit} | **{fmt(v['relay_nolog'], f)}** | {fmt(v['haproxy_nolog'], f)} | "
                         f"{fmt(s['nolog_ratios'][key], '{:.2f}x')} |")
        L.append("")
    L.append("## Targets (issue 16; medians of the rounds above)")
    L.append("")
    L.append("| target | measured | met? | gap |")
    L.append("|---|---:|:---:|---|")
    for t in s["targets"]:
        if t["value"] is None:
            L.append(f"| {t['target']} | – | ? | not measured |")
            continue
        val = f"{t['value']:.3f}x" if t["ratio"] else f"{t['value']:,.0f}"
        if t["met"]:
            gap = ""
        elif t["op"] == ">=":
            gap = (f"{(1 - t['value'] / t['threshold']) * 100:.1f}% below (needs {t['threshold'] / t['value']:.2f}x)"
                   if t["value"] > 0 else "")
        else:
            gap = f"{(t['value'] / t['threshold'] - 1) * 100:.1f}% above (needs {t['value'] / t['threshold']:.2f}x less)"
        L.append(f"| {t['target']} | {val} | {'yes' if t['met'] else '**no**'} | {gap} |")
    L.append("")
    if s["sweep"]:
        L.append("## Single stream through Relay against its write size (the L7R paper's graph)")
        L.append("")
        mtus = sorted(s["sweep"], key=int)
        sizes = [w for w in c["write_sizes"]] + ["routed"]
        L.append("| write size | " + " | ".join(f"far MTU {m_} Gbit/s | cli B/pkt" for m_ in mtus) + " |")
        L.append("|---|" + "---:|---:|" * len(mtus))
        for ws in sizes:
            cells = []
            for m_ in mtus:
                cells.append(fmt(s["sweep"][m_].get(ws), "{:.2f}"))
                cells.append(fmt(s["sweep_bpp"].get(m_, {}).get(ws), "{:,.0f}"))
            L.append(f"| {ws if ws != 'routed' else 'routed (no relay)'} | " + " | ".join(cells) + " |")
        L.append("")
        L.append("Relay's window is max(256k, 4 x write size) in the sweep.")
        L.append("")
    mem = [r for r in results["runs"] if r.get("test") == "idle_memory"]
    if mem:
        L.append("## Idle circuits")
        L.append("")
        L.append("| proxy | round | circuits | before | after | per circuit | note |")
        L.append("|---|---:|---:|---:|---:|---:|---|")
        for r in mem:
            L.append(f"| {LABEL[r['path']]} | {r.get('round')} | {r.get('connected', '–')} | "
                     f"{fmt(r.get('before'), '{:,.0f}')} | {fmt(r.get('after'), '{:,.0f}')} | "
                     f"{fmt(r.get('bytes_per_circuit'), '{:,.0f}')} | {r.get('note', r.get('error', ''))} |")
        L.append("")
        L.append("Relay and HAProxy: VmRSS of a fresh process, after 20 warm-up circuits, before and "
                 "2 s after the circuits are established to the upstream. socat forks a process per "
                 "circuit: the PSS of the listener and all its children, over fewer circuits.")
        L.append("")
    L.append("## How it is measured")
    L.append("")
    L.append("- bulk: `iperf3 -c` in `cli` (-P 1 or 8), server in `srv`; Gbit/s is iperf3's receiver rate.")
    L.append("- relay CPU per GB: utime+stime of the proxy process from /proc/PID/stat before and after the run, "
             "divided by the GB iperf3 received. socat: utime+stime+cutime+cstime of the listener, read after "
             "its forked children have exited and been reaped. Softirq work the kernel does for the proxy's "
             "sockets counts only when it runs in the proxy's context.")
    L.append("- cli bytes per packet: tx_bytes/tx_packets of cli's veth over the run (includes the 14-byte "
             "Ethernet header and ACK-only packets).")
    L.append("- wrk: `wrk -t2 -c32 -dNs --timeout 2s` for a 1 KiB static file from nginx in `srv` "
             "(access_log off, keepalive_requests 10M, 2 workers); with `-H 'Connection: close'` each "
             "request is a new connection, so req/s = connections/s. CPU per request from the same /proc counters; "
             "context switches per request sum voluntary+nonvoluntary switches over the proxy's threads "
             "(/proc/PID/task/*/status; n/a for socat, whose children come and go).")
    L.append("")
    if m.get("peers"):
        L.append("## Configurations")
        L.append("")
        L.append("Each peer as this run started it (the config files lived in a scratch directory).")
        L.append("")
        for name, peer in m["peers"].items():
            L.append(f"- `{name}`: `{peer['argv']}`")
            if peer.get("config"):
                L.append("")
                L.append("  ```")
                L.extend("  " + line for line in peer["config"].rstrip("\n").split("\n"))
                L.append("  ```")
        L.append("")
    if charts:
        L.append("## Charts")
        L.append("")
        for ch in charts:
            L.append(f"![{ch}]({ch})")
        L.append("")
    if s["errors"]:
        L.append("## Errors")
        L.append("")
        for r in s["errors"]:
            L.append(f"- {r.get('test')} {r.get('path')} round {r.get('round')}: {r['error'][:300]!r}")
        L.append("")
    return "\n".join(L)


# ---- charts -------------------------------------------------------------------

def make_charts(results, s, out):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:
        return svg_charts(results, s, out)
    names = []
    colors = {"routed": "#888888", "relay": "#1f77b4", "haproxy": "#d62728", "socat": "#2ca02c"}

    def bars(fname, keys, titles, ylabel, title):
        fig, ax = plt.subplots(figsize=(8, 4.5))
        width = 0.2
        for i, p in enumerate(PATHS):
            ys = [s["summary"][k][p] or 0 for k in keys]
            xs = [j + (i - 1.5) * width for j in range(len(keys))]
            ax.bar(xs, ys, width, label=LABEL[p], color=colors[p])
        ax.set_xticks(range(len(keys)))
        ax.set_xticklabels(titles)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend()
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(out, fname), dpi=110)
        plt.close(fig)
        names.append(fname)

    bars("bulk.png", ["bulk1_gbps", "bulk8_gbps"], ["1 stream", "8 streams"], "Gbit/s",
         "Bulk throughput, cli (MTU 65520) -> srv (MTU 1500)")
    bars("wrk.png", ["ka_rps", "close_rps"], ["keep-alive req/s", "Connection: close conn/s"], "per second",
         "wrk -c32 against nginx, 1 KiB file")
    if s["sweep"]:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        sizes = results["config"]["write_sizes"]
        for m_, style in zip(sorted(s["sweep"], key=int), ("o-", "s-", "^-")):
            ys = [s["sweep"][m_].get(ws) for ws in sizes]
            line, = ax.plot(range(len(sizes)), ys, style, label=f"Relay, far MTU {m_}")
            if s["sweep"][m_].get("routed") is not None:
                ax.axhline(s["sweep"][m_]["routed"], linestyle="--", color=line.get_color(), alpha=0.5,
                           label=f"routed, far MTU {m_}")
        ax.set_xticks(range(len(sizes)))
        ax.set_xticklabels(sizes)
        ax.set_xlabel("Relay write size")
        ax.set_ylabel("Gbit/s, 1 stream")
        ax.set_title("Single stream through Relay against write size (cf. the L7R paper)")
        ax.set_ylim(bottom=0)
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "write-size.png"), dpi=110)
        plt.close(fig)
        names.append("write-size.png")
    return names


def svg_charts(results, s, out):
    """A minimal hand-written SVG fallback when matplotlib is missing."""
    names = []
    colors = {"routed": "#888", "relay": "#1f77b4", "haproxy": "#d62728", "socat": "#2ca02c"}

    def bar_svg(fname, keys, titles, title):
        W, H, pad = 640, 360, 50
        vmax = max([s["summary"][k][p] or 0 for k in keys for p in PATHS] + [1e-9])
        g = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
             f'<text x="{W/2}" y="20" text-anchor="middle" font-size="14">{title}</text>']
        gw = (W - 2 * pad) / len(keys)
        bw = gw / (len(PATHS) + 1)
        for j, k in enumerate(keys):
            for i, p in enumerate(PATHS):
                v = s["summary"][k][p] or 0
                h = (H - 2 * pad) * v / vmax
                x = pad + j * gw + (i + 0.5) * bw
                g.append(f'<rect x="{x:.1f}" y="{H - pad - h:.1f}" width="{bw * 0.9:.1f}" height="{h:.1f}" fill="{colors[p]}"/>')
                g.append(f'<text x="{x + bw * 0.45:.1f}" y="{H - pad - h - 3:.1f}" text-anchor="middle" font-size="10">{v:.3g}</text>')
            g.append(f'<text x="{pad + (j + 0.5) * gw:.1f}" y="{H - pad + 18}" text-anchor="middle">{titles[j]}</text>')
        for i, p in enumerate(PATHS):
            g.append(f'<rect x="{pad + i * 130}" y="{H - 18}" width="10" height="10" fill="{colors[p]}"/>'
                     f'<text x="{pad + i * 130 + 14}" y="{H - 9}">{LABEL[p]}</text>')
        g.append("</svg>")
        with open(os.path.join(out, fname), "w") as f:
            f.write("\n".join(g))
        names.append(fname)

    bar_svg("bulk.svg", ["bulk1_gbps", "bulk8_gbps"], ["1 stream", "8 streams"], "Bulk Gbit/s")
    bar_svg("wrk.svg", ["ka_rps", "close_rps"], ["keep-alive req/s", "close conn/s"], "wrk -c32")
    if s["sweep"]:
        W, H, pad = 640, 360, 50
        sizes = results["config"]["write_sizes"]
        vmax = max([v for d in s["sweep"].values() for v in d.values()] + [1e-9])
        g = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
             f'<text x="{W/2}" y="20" text-anchor="middle" font-size="14">Gbit/s against Relay write size</text>']
        for m_, col in zip(sorted(s["sweep"], key=int), ("#1f77b4", "#ff7f0e", "#2ca02c")):
            pts = []
            for i, ws in enumerate(sizes):
                v = s["sweep"][m_].get(ws)
                if v is None:
                    continue
                x = pad + i * (W - 2 * pad) / max(1, len(sizes) - 1)
                y = H - pad - (H - 2 * pad) * v / vmax
                pts.append(f"{x:.1f},{y:.1f}")
            g.append(f'<polyline fill="none" stroke="{col}" stroke-width="2" points="{" ".join(pts)}"/>')
            g.append(f'<text x="{W - pad}" y="{pts[-1].split(",")[1] if pts else 0}" fill="{col}">MTU {m_}</text>')
        for i, ws in enumerate(sizes):
            x = pad + i * (W - 2 * pad) / max(1, len(sizes) - 1)
            g.append(f'<text x="{x:.1f}" y="{H - pad + 18}" text-anchor="middle">{ws}</text>')
        g.append("</svg>")
        with open(os.path.join(out, "write-size.svg"), "w") as f:
            f.write("\n".join(g))
        names.append("write-size.svg")
    return names


if __name__ == "__main__":
    render(sys.argv[1])

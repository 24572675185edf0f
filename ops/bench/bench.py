#!/usr/bin/env python3
"""Relay benchmark driver (issue 3). Run it through ops/bench/bench.sh, which
installs the tools, builds Relay and brings the lab up first.

Paths compared, all from namespace `cli` to servers in `srv`:
  routed   no relay: `relay` forwards IP (cli must use the far side's MTU)
  relay    Relay (this repo), in namespace `relay`
  haproxy  HAProxy, mode tcp, option splice-auto
  socat    socat -b 262144, fork per connection

Logging (--logging, default both): the headline peers log one line per
connection as operators run them: Relay its CircuitClosed line at Info in
--log-format json (the systemd unit's), HAProxy `option tcplog` to
`log stdout format raw local0`, each to its own stdout, redirected to a file
in the run's logs/ (same disk). socat has no per-connection log. With
`both`, a second Relay and HAProxy with logging off (relay_nolog,
haproxy_nolog) run the wrk tests in the same rounds: the second table.

Every measurement is interleaved (A B C D A B C D ...) over rounds; the
report gives medians, and ratios as the median of per-round ratios (paired,
so drift of a shared machine cancels out).
Every process started is in a registry and is killed on exit; every client
runs under timeout(1).
"""
import argparse
import datetime
import json
import os
import platform
import re
import resource
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
LAB = os.path.join(REPO, "ops", "lab", "lab.sh")

CLI_IP, RELAY_IP, SRV_IP = "198.18.1.1", "198.18.1.2", "198.18.2.2"
PATHS = ["routed", "relay", "haproxy", "socat"]
# The logging-off peers of --logging both; they run the wrk tests only (a bulk run is one
# connection, so its log line costs nothing measurable).
NOLOG_PATHS = ["relay_nolog", "haproxy_nolog"]
PROXIES = ["relay", "haproxy", "socat"]
IPERF_PORT, HTTP_PORT, IDLE_PORT = 5201, 80, 9000
# Listen ports in `relay` per proxy and service.
PORTS = {
    "relay": {"bulk": 7001, "http": 7080, "idle": 7090, "mem": 7091},
    "haproxy": {"bulk": 7101, "http": 7180, "idle": 7190, "mem": 7191},
    "socat": {"bulk": 7201, "http": 7280, "idle": 7290, "mem": 7291},
    "relay_nolog": {"http": 7081},
    "haproxy_nolog": {"http": 7181},
}
SWEEP_BASE_PORT = 7301
CLK_TCK = os.sysconf("SC_CLK_TCK")
HAPROXY_SPLICE = "option splice-auto"


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---- processes -----------------------------------------------------------------

class Procs:
    """Every long-running process the benchmark starts, killed on exit."""

    def __init__(self):
        self.procs = {}

    def start(self, name, ns, argv, logdir, stdin=None):
        logf = open(os.path.join(logdir, f"{name}.log"), "ab")
        full = ["ip", "netns", "exec", ns] + argv
        p = subprocess.Popen(full, stdout=logf, stderr=subprocess.STDOUT,
                             stdin=stdin if stdin is not None else subprocess.DEVNULL,
                             start_new_session=True)
        logf.close()
        self.procs[name] = p
        return p

    def stop(self, name, grace=5.0):
        p = self.procs.pop(name, None)
        if p is None:
            return
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(5)

    def stop_all(self):
        for name in list(self.procs):
            self.stop(name, grace=3.0)


PROCS = Procs()


def on_signal(signum, _frame):
    log(f"signal {signum}: stopping everything")
    PROCS.stop_all()
    sys.exit(128 + signum)


def run(argv, timeout, check=False):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(argv, 124, e.stdout or "", (e.stderr or "") + "\n(timeout)")
    if check and r.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


class Lab:
    def __init__(self, prefix):
        self.prefix = prefix

    def ns(self, name):
        return self.prefix + name

    def exec(self, name, argv):
        return ["ip", "netns", "exec", self.ns(name)] + argv

    def up(self, far_mtu):
        env = dict(os.environ, LAB_PREFIX=self.prefix)
        r = subprocess.run([LAB, "up", "--far-mtu", str(far_mtu)], env=env,
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"lab up failed: {r.stdout}{r.stderr}")
        log(r.stdout.strip())

    def cli_tx(self):
        r = run(["ip", "-n", self.ns("cli"), "-s", "-j", "link", "show", "c-r"], 10, check=True)
        st = json.loads(r.stdout)[0]["stats64"]["tx"]
        return st["bytes"], st["packets"]

    def listening(self, name, port):
        r = run(self.exec(name, ["ss", "-Hltn", f"sport = :{port}"]), 10)
        return r.returncode == 0 and r.stdout.strip() != ""

    def wait_listen(self, name, port, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            if self.listening(name, port):
                return
            time.sleep(0.2)
        raise RuntimeError(f"nothing listens on {name}:{port} after {timeout}s")

    def established(self, name, port):
        r = run(self.exec(name, ["ss", "-Htn", "state", "established", f"sport = :{port}"]), 20)
        return len([l for l in r.stdout.splitlines() if l.strip()])


def proc_stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    # fields[0] is state (field 3); utime=14, stime=15, cutime=16, cstime=17
    ut, st, cut, cst = (int(fields[i]) for i in (11, 12, 13, 14))
    return ut, st, cut, cst


def cpu_seconds(pid, with_children):
    ut, st, cut, cst = proc_stat(pid)
    ticks = ut + st + ((cut + cst) if with_children else 0)
    return ticks / CLK_TCK


def children(pid):
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
    except FileNotFoundError:
        pass
    return out


def ctx_switches(pid):
    """Voluntary + involuntary context switches summed over the process's live threads."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return None
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def threads(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except FileNotFoundError:
        return None


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return None


def pss_bytes(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0
    return 0


# ---- the servers and proxies ---------------------------------------------------------

def write_nginx(workdir):
    root = os.path.join(workdir, "www")
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "1k.bin"), "wb") as f:
        f.write(bytes((i * 7) % 251 for i in range(1024)))
    for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        os.makedirs(os.path.join(workdir, "nginx-tmp", d), exist_ok=True)
    conf = os.path.join(workdir, "nginx.conf")
    t = os.path.join(workdir, "nginx-tmp")
    with open(conf, "w") as f:
        f.write(f"""
user root;
worker_processes 2;
worker_rlimit_nofile 16384;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
daemon off;
events {{ worker_connections 8192; multi_accept on; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 65s;
  sendfile on;
  tcp_nodelay on;
  client_body_temp_path {t}/client_body;
  proxy_temp_path {t}/proxy;
  fastcgi_temp_path {t}/fastcgi;
  uwsgi_temp_path {t}/uwsgi;
  scgi_temp_path {t}/scgi;
  types {{ application/octet-stream bin; }}
  server {{
    listen {SRV_IP}:{HTTP_PORT} backlog=8192 reuseport;
    root {root};
    location / {{ }}
  }}
}}
""")
    return conf


def write_haproxy(workdir, name, routes, logging):
    conf = os.path.join(workdir, f"{name}.cfg")
    lines = [
        "global",
        "  maxconn 7000",
    ]
    if logging:
        # As HAProxy is deployed in a container or under systemd: raw lines on stdout.
        lines += ["  log stdout format raw local0"]
    lines += [
        "defaults",
        "  mode tcp",
        "  maxconn 7000",
        "  timeout connect 5s",
        "  timeout client 1h",
        "  timeout server 1h",
        f"  {HAPROXY_SPLICE}",
    ]
    if logging:
        lines += ["  log global", "  option tcplog"]
    for svc, (port, upstream) in routes.items():
        lines += [f"listen {svc}", f"  bind {RELAY_IP}:{port}", f"  server s1 {upstream}"]
    with open(conf, "w") as f:
        f.write("\n".join(lines) + "\n")
    return conf


def write_relay_conf(workdir, name, logging, extra=""):
    """Logging on: the shipped level, Info, so each circuit writes its CircuitClosed line.
    Off: Warning, which drops it (and nothing else is logged per connection)."""
    conf = os.path.join(workdir, f"{name}.conf")
    with open(conf, "w") as f:
        f.write(f"akka.loglevel = {'INFO' if logging else 'WARNING'}\nakka.stdout-loglevel = WARNING\n" + extra)
    return conf


class Bench:
    def __init__(self, args):
        self.a = args
        self.lab = Lab(args.lab_prefix)
        self.out = args.out
        self.logs = os.path.join(self.out, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.work = tempfile.mkdtemp(prefix="relay-bench-")
        self.pids = {}
        self.runs = []
        # The headline peers log per connection unless --logging off.
        self.logging = args.logging != "off"
        # Each peer as it was started (argv and config text), for the report.
        self.peers = {}

    # -- services
    def relay_argv(self, routes, conf):
        argv = [self.a.relay]
        if argv[0].endswith(".dll"):
            argv = ["dotnet", argv[0]]
        argv += ["run", "--management", "off", "--config", conf, "--log-format", self.a.relay_log_format]
        for name, (port, upstream) in routes.items():
            argv += ["--route", f"{name}@{RELAY_IP}:{port}={upstream}"]
        return argv

    def record_peer(self, name, argv, conf=None):
        entry = {"argv": shlex.join(argv)}
        if conf is not None:
            with open(conf) as f:
                entry["config"] = f.read()
        self.peers[name] = entry
        self.a.meta["peers"] = self.peers

    def start_relay(self, name, routes, extra_conf="", logging=None):
        logging = self.logging if logging is None else logging
        # --relay-conf goes first, so a run's own keys (the sweep's write size) still win.
        conf = write_relay_conf(self.work, name, logging, self.a.relay_conf + "\n" + extra_conf)
        argv = self.relay_argv(routes, conf)
        self.record_peer(name, argv, conf)
        p = PROCS.start(name, self.lab.ns("relay"), argv, self.logs)
        for port, _ in routes.values():
            self.lab.wait_listen("relay", port, 60)
        return p

    def start_haproxy(self, name, routes, logging=None):
        logging = self.logging if logging is None else logging
        conf = write_haproxy(self.work, name, routes, logging)
        argv = ["haproxy", "-db", "-f", conf]
        self.record_peer(name, argv, conf)
        p = PROCS.start(name, self.lab.ns("relay"), argv, self.logs)
        for port, _ in routes.values():
            self.lab.wait_listen("relay", port, 30)
        return p

    def start_socat(self, name, port, upstream):
        host, uport = upstream.split(":")
        # No per-connection log: socat has none short of -d -d, which logs far more than a line.
        argv = ["socat", "-b", "262144",
                f"TCP4-LISTEN:{port},bind={RELAY_IP},reuseaddr,fork,backlog=4096",
                f"TCP4:{host}:{uport}"]
        self.record_peer(name, argv)
        p = PROCS.start(name, self.lab.ns("relay"), argv, self.logs)
        self.lab.wait_listen("relay", port, 30)
        return p

    def start_servers(self):
        PROCS.start("iperf3-srv", self.lab.ns("srv"),
                    ["iperf3", "-s", "-B", SRV_IP, "-p", str(IPERF_PORT), "--idle-timeout", "30"], self.logs)
        PROCS.start("nginx", self.lab.ns("srv"),
                    ["nginx", "-c", write_nginx(self.work), "-p", self.work], self.logs)
        PROCS.start("idle-srv", self.lab.ns("srv"),
                    [sys.executable, os.path.join(HERE, "idle.py"), "hold", SRV_IP, str(IDLE_PORT)], self.logs)
        for port in (IPERF_PORT, HTTP_PORT, IDLE_PORT):
            self.lab.wait_listen("srv", port, 30)

    def start_proxies(self):
        up = {"bulk": f"{SRV_IP}:{IPERF_PORT}", "http": f"{SRV_IP}:{HTTP_PORT}", "idle": f"{SRV_IP}:{IDLE_PORT}"}
        self.pids["relay"] = self.start_relay(
            "relay", {svc: (PORTS["relay"][svc], up[svc]) for svc in up}).pid
        self.pids["haproxy"] = self.start_haproxy(
            "haproxy", {svc: (PORTS["haproxy"][svc], up[svc]) for svc in up}).pid
        if self.a.logging == "both":
            self.pids["relay_nolog"] = self.start_relay(
                "relay_nolog", {"http": (PORTS["relay_nolog"]["http"], up["http"])}, logging=False).pid
            self.pids["haproxy_nolog"] = self.start_haproxy(
                "haproxy_nolog", {"http": (PORTS["haproxy_nolog"]["http"], up["http"])}, logging=False).pid
        socat = {}
        for svc in ("bulk", "http"):
            socat[svc] = self.start_socat(f"socat-{svc}", PORTS["socat"][svc], up[svc]).pid
        self.socat_pids = socat

    def target(self, path, svc):
        if path == "routed":
            return SRV_IP, {"bulk": IPERF_PORT, "http": HTTP_PORT}[svc]
        return RELAY_IP, PORTS[path][svc]

    def proxy_pid(self, path, svc):
        if path == "routed":
            return None
        if path == "socat":
            return self.socat_pids[svc]
        return self.pids[path]

    def proxy_cpu(self, path, svc):
        pid = self.proxy_pid(path, svc)
        if pid is None:
            return None
        return cpu_seconds(pid, with_children=(path == "socat"))

    def settle_socat(self, path, svc):
        """socat's forked children are counted (cutime/cstime) once reaped."""
        if path != "socat":
            return
        pid = self.socat_pids[svc]
        end = time.time() + 10
        while children(pid) and time.time() < end:
            time.sleep(0.1)

    # -- measurements
    def bulk(self, path, streams, seconds, port=None, label=None):
        host, p = self.target(path, "bulk")
        if port is not None:
            host, p = RELAY_IP, port
        b0, k0 = self.lab.cli_tx()
        c0 = self.proxy_cpu(path, "bulk") if port is None else None
        r = run(self.lab.exec("cli", [
            "timeout", str(seconds + 20), "iperf3", "-c", host, "-p", str(p), "-t", str(seconds),
            "-P", str(streams), "-J", "--connect-timeout", "3000"]), seconds + 30)
        b1, k1 = self.lab.cli_tx()
        self.settle_socat(path, "bulk") if port is None else None
        c1 = self.proxy_cpu(path, "bulk") if port is None else None
        rec = {"test": label or f"bulk{streams}", "path": path, "streams": streams, "seconds": seconds}
        try:
            d = json.loads(r.stdout)
            if "error" in d:
                raise ValueError(d["error"])
            rx = d["end"]["sum_received"]
            rec["gbps"] = rx["bits_per_second"] / 1e9
            rec["bytes"] = rx["bytes"]
            rec["cli_cpu_pct"] = d["end"]["cpu_utilization_percent"]["host_total"]
            rec["cli_bytes_per_packet"] = (b1 - b0) / max(1, k1 - k0)
            rec["cli_tx_packets"] = k1 - k0
            if c0 is not None:
                rec["proxy_cpu_s"] = c1 - c0
                rec["cpu_s_per_gb"] = (c1 - c0) / (rx["bytes"] / 1e9) if rx["bytes"] else None
        except Exception as e:  # recorded, not fatal
            rec["error"] = f"{e}: {(r.stderr or r.stdout)[-300:]}"
        time.sleep(0.5)
        return rec

    def wrk(self, path, close, seconds):
        host, p = self.target(path, "http")
        url = f"http://{host}:{p}/1k.bin"
        argv = ["timeout", str(seconds + 15), "wrk", "-t2", "-c32", f"-d{seconds}s", "--timeout", "2s"]
        if close:
            argv += ["-H", "Connection: close"]
        pid = self.proxy_pid(path, "http")
        threaded = path != "socat" and pid is not None
        c0 = self.proxy_cpu(path, "http")
        x0 = ctx_switches(pid) if threaded else None
        r = run(self.lab.exec("cli", argv + [url]), seconds + 25)
        x1 = ctx_switches(pid) if threaded else None
        self.settle_socat(path, "http")
        c1 = self.proxy_cpu(path, "http")
        rec = {"test": "conn_close" if close else "keepalive", "path": path, "seconds": seconds}
        m = re.search(r"Requests/sec:\s+([\d.]+)", r.stdout)
        n = re.search(r"(\d+) requests in", r.stdout)
        if m:
            rec["rps"] = float(m.group(1))
            rec["requests"] = int(n.group(1)) if n else None
            e = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", r.stdout)
            if e:
                rec["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, e.groups())))
            x = re.search(r"Non-2xx or 3xx responses: (\d+)", r.stdout)
            if x:
                rec["non_2xx"] = int(x.group(1))
            if c0 is not None and rec.get("requests"):
                rec["proxy_cpu_s"] = c1 - c0
                rec["cpu_us_per_req"] = (c1 - c0) / rec["requests"] * 1e6
            if x0 is not None and x1 is not None and rec.get("requests"):
                rec["ctxsw_per_req"] = (x1 - x0) / rec["requests"]
                rec["proxy_threads"] = threads(pid)
        else:
            rec["error"] = (r.stdout + r.stderr)[-400:]
        time.sleep(1.0 if close else 0.5)
        return rec

    def memory(self, kind, n, round_no):
        """RSS growth of a fresh proxy over n idle circuits (PSS of all
        processes for socat, which forks one per circuit)."""
        name = f"mem-{kind}-{round_no}"
        port = PORTS[kind]["mem"]
        up = f"{SRV_IP}:{IDLE_PORT}"
        if kind == "relay":
            p = self.start_relay(name, {"idle": (port, up)})
        elif kind == "haproxy":
            p = self.start_haproxy(name, {"idle": (port, up)})
        else:
            p = self.start_socat(name, port, up)
        pid = p.pid

        def measure():
            if kind == "socat":
                return pss_bytes(pid) + sum(pss_bytes(c) for c in children(pid))
            return rss_bytes(pid)

        rec = {"test": "idle_memory", "path": kind, "n": n}
        try:
            # Warm up (JIT, pools, first-connection paths), then measure from rest.
            self.open_idle(port, 20, settle=0.5)
            time.sleep(1.5)
            before = measure()
            opener = subprocess.Popen(self.lab.exec("cli", [
                "timeout", "180", sys.executable, os.path.join(HERE, "idle.py"), "open",
                RELAY_IP, str(port), str(n), "120"]),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                start_new_session=True)
            try:
                line = self.read_line(opener, 120)
                rec["opener"] = line
                m = re.match(r"ready (\d+) failed (\d+)", line or "")
                ok = int(m.group(1)) if m else 0
                end = time.time() + 60
                est = 0
                while time.time() < end:
                    est = self.lab.established("srv", IDLE_PORT)
                    if est >= ok:
                        break
                    time.sleep(0.5)
                time.sleep(2.0)
                after = measure()
                rec.update(before=before, after=after, established_upstream=est, connected=ok)
                if ok > 0:
                    rec["bytes_per_circuit"] = (after - before) / ok
                if ok < n:
                    rec["note"] = f"only {ok} of {n} connected"
            finally:
                try:
                    opener.stdin.close()
                    opener.wait(30)
                except Exception:
                    os.killpg(opener.pid, signal.SIGKILL)
                    opener.wait(5)
        except Exception as e:
            rec["error"] = str(e)
        PROCS.stop(name)
        time.sleep(1.0)
        return rec

    def open_idle(self, port, n, settle):
        r = subprocess.Popen(self.lab.exec("cli", [
            "timeout", "60", sys.executable, os.path.join(HERE, "idle.py"), "open",
            RELAY_IP, str(port), str(n), str(settle)]), stdout=subprocess.PIPE,
            stdin=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            r.communicate(timeout=70)
        except subprocess.TimeoutExpired:
            r.kill()
            r.wait()

    @staticmethod
    def read_line(p, timeout):
        end = time.time() + timeout
        while time.time() < end:
            ready, _, _ = select.select([p.stdout], [], [], 0.5)
            if ready:
                return p.stdout.readline().strip()
            if p.poll() is not None:
                return p.stdout.read().strip()
        return None

    # -- the plan
    def main_rounds(self):
        d = self.a.seconds
        tests = [
            ("bulk1", lambda path: self.bulk(path, 1, d)),
            ("bulk8", lambda path: self.bulk(path, 8, d)),
            ("keepalive", lambda path: self.wrk(path, False, d)),
            ("conn_close", lambda path: self.wrk(path, True, d)),
        ]
        wrk_paths = PATHS + (NOLOG_PATHS if self.a.logging == "both" else [])
        for rnd in range(1, self.a.rounds + 1):
            for tname, fn in tests:
                for path in (wrk_paths if tname in ("keepalive", "conn_close") else PATHS):
                    rec = fn(path)
                    rec["round"] = rnd
                    self.runs.append(rec)
                    log(f"round {rnd} {tname:10s} {path:8s} " + summarize(rec))
            self.checkpoint()

    def count_log_lines(self):
        """Per-connection lines each peer wrote to its log file: shows logging was on (or off)."""
        tcplog = re.compile(r"^\S+:\d+ \[\d\d/\w{3}/\d{4}:")
        counts = {}
        for name in ("relay", "haproxy", "relay_nolog", "haproxy_nolog"):
            path = os.path.join(self.logs, f"{name}.log")
            if not os.path.exists(path):
                continue
            with open(path, errors="replace") as f:
                if name.startswith("relay"):
                    counts[name] = sum(1 for line in f if '"CircuitClosed"' in line or " CircuitClosed " in line)
                else:
                    counts[name] = sum(1 for line in f if tcplog.match(line))
        self.a.meta["log_lines"] = counts
        log(f"per-connection log lines written: {counts}")

    def memory_rounds(self):
        for rnd in range(1, self.a.mem_rounds + 1):
            for kind in ("relay", "haproxy", "socat"):
                n = self.a.idle_n if kind != "socat" else min(self.a.idle_n, self.a.socat_idle_n)
                rec = self.memory(kind, n, rnd)
                rec["round"] = rnd
                self.runs.append(rec)
                log(f"round {rnd} idle-mem   {kind:8s} " + summarize(rec))
            self.checkpoint()

    def sweep(self):
        sizes = self.a.write_sizes
        names = []
        for i, ws in enumerate(sizes):
            window = max(parse_size("256k"), 4 * parse_size(ws))
            name = f"sweep-{ws}"
            self.start_relay(name, {"bulk": (SWEEP_BASE_PORT + i, f"{SRV_IP}:{IPERF_PORT}")},
                             f"relay.defaults.write-size = {ws}\nrelay.defaults.window = {window}\n")
            names.append(name)
        try:
            for mtu in self.a.far_mtus:
                self.lab.up(mtu)
                time.sleep(1)
                for rnd in range(1, self.a.sweep_rounds + 1):
                    for i, ws in enumerate(sizes):
                        rec = self.bulk("relay", 1, self.a.sweep_seconds, port=SWEEP_BASE_PORT + i, label="sweep")
                        rec.update(write_size=ws, far_mtu=mtu, round=rnd)
                        self.runs.append(rec)
                        log(f"sweep mtu {mtu} ws {ws:5s} round {rnd} " + summarize(rec))
                    rec = self.bulk("routed", 1, self.a.sweep_seconds, label="sweep")
                    rec.update(write_size="routed", far_mtu=mtu, round=rnd)
                    self.runs.append(rec)
                    log(f"sweep mtu {mtu} routed     round {rnd} " + summarize(rec))
                self.checkpoint()
        finally:
            for name in names:
                PROCS.stop(name)
            if self.a.far_mtus and self.a.far_mtus[-1] != 1500:
                self.lab.up(1500)

    def checkpoint(self):
        with open(os.path.join(self.out, "results.json"), "w") as f:
            json.dump(self.results(), f, indent=1)

    def results(self):
        return {"meta": self.a.meta, "config": {k: v for k, v in vars(self.a).items() if k != "meta"},
                "runs": self.runs}


def parse_size(s):
    m = re.fullmatch(r"(\d+)([kKmM]?)", s)
    if not m:
        raise ValueError(s)
    return int(m.group(1)) * {"": 1, "k": 1024, "K": 1024, "m": 1 << 20, "M": 1 << 20}[m.group(2)]


def summarize(rec):
    if "error" in rec:
        return "ERROR " + rec["error"][:200].replace("\n", " ")
    parts = []
    for k, fmt in (("gbps", "{:.2f} Gbit/s"), ("cli_bytes_per_packet", "{:.0f} B/pkt"),
                   ("cpu_s_per_gb", "{:.2f} CPU-s/GB"), ("cli_cpu_pct", "cli {:.0f}% CPU"),
                   ("rps", "{:.0f}/s"), ("cpu_us_per_req", "{:.0f} CPU-us/req"),
                   ("ctxsw_per_req", "{:.2f} ctxsw/req"), ("proxy_threads", "{} threads"),
                   ("bytes_per_circuit", "{:.0f} B/circuit")):
        if rec.get(k) is not None:
            parts.append(fmt.format(rec[k]))
    if rec.get("socket_errors") and any(rec["socket_errors"].values()):
        parts.append(f"errors {rec['socket_errors']}")
    if rec.get("note"):
        parts.append(rec["note"])
    return ", ".join(parts)


def machine_meta(command):
    def sh(cmd):
        try:
            return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=20).stdout.strip()
        except Exception:
            return ""
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "kernel": platform.release(),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": sh("free -h | awk '/^Mem:/ {print $2}'"),
        "loadavg_start": open("/proc/loadavg").read().split()[:3],
        "os": sh(". /etc/os-release && echo $PRETTY_NAME"),
        "git": sh(f"git -C {REPO} describe --always --dirty"),
        "versions": {
            "dotnet": sh("dotnet --version"),
            "haproxy": sh("haproxy -v | head -1"),
            "socat": sh("socat -V | sed -n 2p"),
            "nginx": sh("nginx -v 2>&1"),
            "iperf3": sh("iperf3 --version | head -1"),
            "wrk": sh("wrk -v 2>&1 | head -1"),
        },
        "haproxy_splice": HAPROXY_SPLICE,
        "rlimit_nofile": resource.getrlimit(resource.RLIMIT_NOFILE),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--relay", required=True, help="the published relay apphost or relay.dll")
    ap.add_argument("--out", required=True)
    ap.add_argument("--lab-prefix", default=os.environ.get("LAB_PREFIX", "relaybench-"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--mem-rounds", type=int, default=3)
    ap.add_argument("--idle-n", type=int, default=5000)
    ap.add_argument("--socat-idle-n", type=int, default=300, help="socat forks per circuit: fewer")
    ap.add_argument("--sweep-rounds", type=int, default=3)
    ap.add_argument("--sweep-seconds", type=int, default=5)
    ap.add_argument("--write-sizes", default="16k,32k,64k,128k,256k,512k")
    ap.add_argument("--far-mtus", default="1500,9000")
    ap.add_argument("--only", default="main,memory,sweep", help="comma list of main,memory,sweep")
    ap.add_argument("--relay-conf", default="", help="HOCON lines for every relay this run starts, "
                    "e.g. 'relay.dispatchers.pin = off', to bench a setting")
    ap.add_argument("--logging", choices=("both", "on", "off"), default="both",
                    help="per-connection logging of the headline Relay and HAProxy; both adds "
                    "logging-off peers for the wrk tests")
    ap.add_argument("--relay-log-format", choices=("json", "text"), default="json",
                    help="the relay's --log-format (json, as ops/systemd/relay.service runs it)")
    ap.add_argument("--command", default=" ".join(sys.argv))
    a = ap.parse_args()
    a.write_sizes = [s for s in a.write_sizes.split(",") if s]
    a.far_mtus = [int(x) for x in a.far_mtus.split(",") if x]
    a.only = [s for s in a.only.split(",") if s]

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # Each idle circuit costs the proxy 2 descriptors; stay under the hard limit.
    max_n = (hard - 500) // 2
    if a.idle_n > max_n:
        log(f"idle circuits capped at {max_n} by RLIMIT_NOFILE hard limit {hard}")
        a.idle_n = max_n

    a.meta = machine_meta(a.command)
    a.meta["relay_conf"] = a.relay_conf
    a.meta["logging"] = a.logging
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    b = Bench(a)
    try:
        b.lab.up(1500)
        b.start_servers()
        if "main" in a.only:
            b.start_proxies()
            b.main_rounds()
            for name in ("relay", "haproxy", "relay_nolog", "haproxy_nolog", "socat-bulk", "socat-http"):
                PROCS.stop(name)
            # After the stops, so what each wrote at exit is counted too.
            b.count_log_lines()
        if "memory" in a.only:
            b.memory_rounds()
        if "sweep" in a.only:
            b.sweep()
        a.meta["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
        b.checkpoint()
    finally:
        PROCS.stop_all()
        shutil.rmtree(b.work, ignore_errors=True)
    import report
    report.render(os.path.join(a.out, "results.json"))


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    main()

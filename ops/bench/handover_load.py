#!/usr/bin/env python3
"""Load for ops/bench/handover.sh: circuits through the relay's VIP while it hands them over.

  handover_load.py server HOST PORT          in srv: accepts circuits, plays each one's server side
  handover_load.py client VIP PORT SPEC      in cli: opens the circuits, plays their client side
  handover_load.py post TO TOKEN             in the owner's namespace: POST /cluster/handover, timed
  handover_load.py drive JSON                in the root namespace: one scenario (below), prints JSON
  handover_load.py collect DIR CMD COMMIT STAMP LOAD0 LOAD1 ROUNDS   DIR/results.json from the scenarios
  handover_load.py trace PCAP LOG...         where each handover's time goes (handover.sh --trace)
  handover_load.py resets PCAP SERVICE_PORT TUPLES   which resets came only after both FINs
  handover_load.py report DIR                results.md and the charts from DIR/results.json

Every circuit carries, each way, a stream of a pseudo-random pattern with a period of 1,000,003
bytes, starting at a phase of its own: each side compares every byte it reads with the byte
expected at that offset (one memcmp per read), so a byte lost, repeated or reordered shows at
the offset where it happens, and at the end the bytes each side read are compared with the
bytes the other side wrote. Circuit modes (the first 8 bytes the client sends: id, mode):
  paced    64 KiB every 10 ms each way (a missed tick is owed, up to 4 MiB)
  full     as fast as the sockets take it, each way
  idle     nothing until the ping: the client sends 1 KiB, the server answers 1 KiB
  stalled  the server sends STALL bytes at once; the client reads nothing until `release`
The receive gap of a stream is the time between two reads that returned data; every gap over
20 ms of a paced or full stream is recorded (start, end on CLOCK_MONOTONIC, which all network
namespaces share), so the driver can tell which handover each belongs to. Each process also
records its own longest loop stall (time spent between two epoll waits), which bounds how much
of a gap is the load tool's own.

The client and server take commands on stdin (one a line) and answer on stdout:
  client: -> "ready N" once every circuit is open; "release" (stalled readers start reading),
          "ping" (-> "pinged ANSWERED/IDLE MAX_MS"), "finish" (every stream ends with a FIN;
          -> one JSON line once every circuit has closed, or after 60 s)
  server: -> "listening", then "accepted N" per circuit; "report" -> one JSON line.
"""
import json
import math
import os
import random
import re
import selectors
import socket
import struct
import subprocess
import sys
import time

PERIOD = 1_000_003
CHUNK = 256 * 1024
PACE_BYTES = 64 * 1024
PACE_S = 0.010
PACE_CAP = 4 * 1024 * 1024
PING = 1024
GAP_RECORD_S = 0.020
MODES = ["paced", "full", "idle", "stalled"]
HEADER = struct.Struct("<IB3x")

_BASE = random.Random(15).randbytes(PERIOD)
PATTERN = _BASE + _BASE[:CHUNK + 16]
PATTERN_VIEW = memoryview(PATTERN)


def phase(cid, direction):
    """Where circuit cid's stream starts in the pattern; direction 0 = client to server, 1 = back."""
    return ((cid * 2 + direction) * 40_009) % PERIOD


def first_difference(data, expected):
    for i, (a, b) in enumerate(zip(data, expected)):
        if a != b:
            return i
    return min(len(data), len(expected))


class Stream:
    """One socket's side of a circuit: what it writes and what it reads, checked."""

    def __init__(self, sock, cid, mode, side):
        self.sock, self.cid, self.mode, self.side = sock, cid, mode, side
        out_dir = 0 if side == "client" else 1
        self.tx_phase, self.rx_phase = phase(cid, out_dir), phase(cid, 1 - out_dir)
        self.tx = 0            # bytes written
        self.rx = 0            # bytes read (checked)
        self.owed = 0          # paced: bytes due; idle/stalled: the limit is tx_limit
        self.tx_limit = 0
        self.finishing = False
        self.shut = False
        self.eof = False
        self.closed = False
        self.reading = not (side == "client" and mode == "stalled")
        self.bad = None        # first offset whose byte was not the pattern's
        self.reset = None      # the error that ended it (ECONNRESET, EPIPE...)
        self.last_rx = None
        self.gaps = []
        self.max_gap = 0.0
        self.mask = 0
        self.ping_t0 = None
        self.ping_ms = None
        if side == "server" and mode == "stalled":
            self.tx_limit = STALL

    def want_write(self):
        if self.shut or self.closed:
            return False
        if self.mode == "full" and not self.finishing:
            return True
        if self.mode == "paced" and self.owed > 0:
            return True
        if self.tx < self.tx_limit:
            return True
        return self.finishing and not self.shut

    def events(self):
        if self.closed:
            return 0
        m = 0
        if self.reading and not self.eof:
            m |= selectors.EVENT_READ
        if self.want_write():
            m |= selectors.EVENT_WRITE
        return m

    def on_write(self):
        while True:
            if self.mode == "full" and not self.finishing:
                n = CHUNK
            elif self.mode == "paced" and self.owed > 0:
                n = min(self.owed, CHUNK)
            elif self.tx < self.tx_limit:
                n = min(self.tx_limit - self.tx, CHUNK)
            else:
                n = 0
            if n == 0:
                if self.finishing and not self.shut:
                    self.sock.shutdown(socket.SHUT_WR)
                    self.shut = True
                return
            o = (self.tx_phase + self.tx) % PERIOD
            try:
                sent = self.sock.send(PATTERN_VIEW[o:o + n])
            except BlockingIOError:
                return  # the send buffer filled exactly with the last send: wait for the next edge
            self.tx += sent
            if self.mode == "paced":
                self.owed -= sent
            if sent < n:
                return

    def on_read(self, now):
        try:
            data = self.sock.recv(CHUNK)
        except BlockingIOError:
            return
        if not data:
            self.eof = True
            return
        o = (self.rx_phase + self.rx) % PERIOD
        if self.bad is None:
            expected = PATTERN[o:o + len(data)]
            if data != expected:
                self.bad = self.rx + first_difference(data, expected)
        self.rx += len(data)
        if self.mode in ("paced", "full"):
            if self.last_rx is not None:
                gap = now - self.last_rx
                if gap > GAP_RECORD_S:
                    self.gaps.append((round(self.last_rx, 4), round(now, 4)))
                if gap > self.max_gap:
                    self.max_gap = gap
            self.last_rx = now
        if self.ping_t0 is not None and self.ping_ms is None and self.rx >= PING:
            self.ping_ms = (now - self.ping_t0) * 1000

    def summary(self):
        return {"id": self.cid, "mode": self.mode, "tx": self.tx, "rx": self.rx, "bad": self.bad,
                "reset": self.reset, "eof": self.eof, "ping_ms": self.ping_ms, "gaps": self.gaps,
                "max_gap_ms": round(self.max_gap * 1000, 1)}


class Loop:
    """An epoll loop over the streams, with the paced ticks and commands on stdin."""

    def __init__(self):
        self.sel = selectors.DefaultSelector()
        self.streams = {}
        self.paced = []
        self.next_tick = time.monotonic() + PACE_S
        self.max_stall = 0.0
        self.stdin_buf = b""
        os.set_blocking(sys.stdin.fileno(), False)
        self.sel.register(sys.stdin.fileno(), selectors.EVENT_READ, None)

    def update(self, s):
        m = s.events()
        if m == s.mask:
            return
        if s.mask == 0:
            self.sel.register(s.sock, m, s)
        elif m == 0:
            self.sel.unregister(s.sock)
        else:
            self.sel.modify(s.sock, m, s)
        s.mask = m

    def close(self, s):
        if s.mask:
            self.sel.unregister(s.sock)
            s.mask = 0
        s.closed = True
        s.sock.close()

    def commands(self):
        try:
            chunk = os.read(sys.stdin.fileno(), 4096)
        except BlockingIOError:
            return []
        if not chunk:
            self.sel.unregister(sys.stdin.fileno())
            return ["eof"]
        self.stdin_buf += chunk
        *lines, self.stdin_buf = self.stdin_buf.split(b"\n")
        return [line.decode().strip() for line in lines if line.strip()]

    def step(self, on_command, on_other=None):
        now = time.monotonic()
        timeout = max(0.0, self.next_tick - now)
        events = self.sel.select(timeout)
        t = time.monotonic()
        for key, mask in events:
            s = key.data
            if s is None:
                for c in self.commands():
                    on_command(c)
                continue
            if not isinstance(s, Stream):
                on_other(key, mask)
                continue
            try:
                if mask & selectors.EVENT_READ:
                    s.on_read(t)
                if mask & selectors.EVENT_WRITE and not s.closed:
                    s.on_write()
            except OSError as e:
                # ECONNRESET, EPIPE, ENOTCONN (a shutdown on a socket the peer reset)...: the circuit is cut.
                s.reset = f"{type(e).__name__}: {e.strerror or e}"
                self.close(s)
                continue
            self.after_io(s)
        if t >= self.next_tick:
            for s in self.paced:
                if not s.finishing and not s.closed:
                    s.owed = min(s.owed + PACE_BYTES, PACE_CAP)
                    self.update(s)
            self.next_tick += PACE_S
            if self.next_tick < t:
                self.next_tick = t + PACE_S
        # The loop's own stall: processing since the wait returned, a bound on how late any read was noticed.
        self.max_stall = max(self.max_stall, time.monotonic() - t)

    def after_io(self, s):
        if s.eof and s.shut:
            self.close(s)
        else:
            self.update(s)


def serve(host, port):
    loop = Loop()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(4096)
    listener.setblocking(False)
    loop.sel.register(listener, selectors.EVENT_READ, "listener")
    print("listening", flush=True)
    pending = {}  # sock -> header bytes so far
    state = {"done": False}

    def on_other(key, mask):
        if key.data == "listener":
            for _ in range(64):
                try:
                    conn, _ = listener.accept()
                except BlockingIOError:
                    return
                conn.setblocking(False)
                pending[conn] = b""
                loop.sel.register(conn, selectors.EVENT_READ, ("header", conn))
            return
        conn = key.data[1]
        got = conn.recv(HEADER.size - len(pending[conn]))
        if not got:
            loop.sel.unregister(conn)
            conn.close()
            del pending[conn]
            return
        pending[conn] += got
        if len(pending[conn]) < HEADER.size:
            return
        cid, mode = HEADER.unpack(pending.pop(conn))
        loop.sel.unregister(conn)
        s = Stream(conn, cid, MODES[mode], "server")
        loop.streams[cid] = s
        if s.mode == "paced":
            loop.paced.append(s)
        loop.update(s)
        print(f"accepted {len(loop.streams)}", flush=True)

    def on_command(c):
        if c in ("report", "eof"):
            state["done"] = True

    def after_io(s):
        # The client's FIN ends the server's writing: it finishes what it owes (a stalled
        # circuit's bytes, an idle circuit's answer) and sends its own FIN.
        if s.eof and not s.finishing:
            s.finishing = True
            s.owed = 0
        if s.mode == "idle" and s.rx >= PING and s.tx_limit == 0:
            s.tx_limit = PING
        if s.eof and s.shut:
            loop.close(s)
        else:
            loop.update(s)

    loop.after_io = after_io
    while not state["done"]:
        loop.step(on_command, on_other)
    print(json.dumps({"side": "server", "max_stall_ms": round(loop.max_stall * 1000, 1),
                      "streams": [s.summary() for s in loop.streams.values()]}), flush=True)


def client(vip, port, spec):
    counts = json.loads(spec)  # {"paced": n, "full": n, "idle": n, "stalled": n}
    loop = Loop()
    plan = []
    for mode in MODES:
        plan += [mode] * counts.get(mode, 0)
    connecting = {}
    failed = []
    nxt = 0
    state = {"finish_at": None, "pinging": False, "announced": False}

    def start_more():
        nonlocal nxt
        while nxt < len(plan) and len(connecting) < 128:
            sock = socket.socket()
            sock.setblocking(False)
            err = sock.connect_ex((vip, port))
            if err not in (0, 115):
                failed.append((nxt, os.strerror(err)))
                sock.close()
            else:
                connecting[sock] = nxt
                loop.sel.register(sock, selectors.EVENT_WRITE, ("connect", sock))
            nxt += 1

    def on_other(key, mask):
        sock = key.data[1]
        cid = connecting.pop(sock)
        loop.sel.unregister(sock)
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            failed.append((cid, os.strerror(err)))
            sock.close()
        else:
            sock.send(HEADER.pack(cid, MODES.index(plan[cid])))
            s = Stream(sock, cid, plan[cid], "client")
            loop.streams[cid] = s
            if s.mode == "paced":
                loop.paced.append(s)
            loop.update(s)
        start_more()

    def on_command(c):
        if c == "release":
            for s in loop.streams.values():
                if s.mode == "stalled" and not s.reading:
                    s.reading = True
                    loop.update(s)
        elif c == "ping":
            t = time.monotonic()
            for s in loop.streams.values():
                if s.mode == "idle" and not s.closed:
                    s.tx_limit, s.ping_t0 = PING, t
                    loop.update(s)
            state["pinging"] = True
        elif c in ("finish", "eof"):
            state["finish_at"] = time.monotonic()
            for s in loop.streams.values():
                s.finishing, s.owed, s.reading = True, 0, True
                if not s.closed:
                    loop.update(s)

    start_more()
    while True:
        loop.step(on_command, on_other)
        if not state["announced"] and nxt == len(plan) and not connecting:
            state["announced"] = True
            print(f"ready {len(loop.streams)} failed {len(failed)}", flush=True)
        if state["pinging"]:
            idle = [s for s in loop.streams.values() if s.mode == "idle"]
            answered = [s for s in idle if s.ping_ms is not None]
            if len(answered) == len(idle) or time.monotonic() - idle[0].ping_t0 > 30:
                state["pinging"] = False
                worst = max((s.ping_ms for s in answered), default=0)
                print(f"pinged {len(answered)}/{len(idle)} {worst:.1f}", flush=True)
        if state["finish_at"] is not None:
            if all(s.closed for s in loop.streams.values()) or time.monotonic() - state["finish_at"] > 60:
                break
    print(json.dumps({"side": "client", "max_stall_ms": round(loop.max_stall * 1000, 1), "connect_failed": failed,
                      "streams": [s.summary() for s in loop.streams.values()]}), flush=True)


def probe(vip, port):
    """A new circuit after the handovers: connects, sends 1 KiB as an idle circuit's ping, wants the answer."""
    t0 = time.monotonic()
    try:
        sock = socket.create_connection((vip, port), timeout=10)
        cid = 10_000_000
        sock.sendall(HEADER.pack(cid, MODES.index("idle")))
        o = phase(cid, 0)
        sock.sendall(PATTERN[o:o + PING])
        got = b""
        while len(got) < PING:
            chunk = sock.recv(PING - len(got))
            if not chunk:
                break
            got += chunk
        o = phase(cid, 1)
        ok = got == PATTERN[o:o + PING]
        sock.shutdown(socket.SHUT_WR)
        sock.recv(1)
        sock.close()
        print(f"{'ok' if ok else 'wrong answer'} in {1000 * (time.monotonic() - t0):.0f} ms")
    except OSError as e:
        print(f"failed after {1000 * (time.monotonic() - t0):.0f} ms: {e}")


def post(to, token):
    import urllib.error
    import urllib.parse
    import urllib.request
    data = urllib.parse.urlencode({"to": to}).encode()
    request = urllib.request.Request("http://127.0.0.1:8558/cluster/handover", data=data, method="POST",
                                     headers={"Authorization": "Bearer " + token})
    t0 = time.monotonic()
    try:
        body = urllib.request.urlopen(request, timeout=120).read().decode()
    except urllib.error.HTTPError as e:
        body = e.read().decode()
    t1 = time.monotonic()
    try:
        outcome = json.loads(body)
    except ValueError:
        outcome = {"result": "error", "detail": body[:300]}
    print(json.dumps({"t0": t0, "t1": t1, "outcome": outcome}), flush=True)


# ------------------------------------------------------------------ the driver

class Proc:
    """A load process in a namespace, its stdin for commands and its stdout lines."""

    def __init__(self, argv, log, env=None):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(log, "w"),
                                  env=env)
        self.buf = b""

    def send(self, line):
        self.p.stdin.write(line.encode() + b"\n")
        self.p.stdin.flush()

    def wait_line(self, prefix, timeout):
        import select
        deadline = time.monotonic() + timeout
        fd = self.p.stdout.fileno()
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                if line.decode().startswith(prefix):
                    return line.decode().strip()
            left = deadline - time.monotonic()
            r = select.select([fd], [], [], max(0.0, left))[0] if left > 0 else []
            chunk = os.read(fd, 1 << 20) if r else b""
            if not chunk:
                raise TimeoutError(f"no '{prefix}' line within {timeout} s from {self.p.args[5:7]} (exit {self.p.poll()})")
            self.buf += chunk


def rst(netns):
    """Resets counted so far by the nft counter handover.sh puts in the namespace."""
    listing = subprocess.run(["ip", "netns", "exec", netns, "nft", "list", "table", "inet", "rstmon"],
                             capture_output=True, text=True).stdout
    at = listing.find("packets ")
    return int(listing[at + 8:].split()[0]) if at >= 0 else -1


def drive(cfg):
    """One scenario on a cluster that is up with node `owner` owning the service: open the
    circuits, hand over `rounds` times back and forth, ping, finish, and report."""
    prefix, here, out = cfg["prefix"], os.path.dirname(os.path.abspath(__file__)), cfg["out"]
    me = os.path.abspath(__file__)
    ns = lambda name: ["ip", "netns", "exec", prefix + name]
    total = sum(cfg["spec"].values())
    env = dict(os.environ, HANDOVER_STALL_BYTES=str(cfg.get("stall", 1024 * 1024)))
    server = Proc(ns("srv") + ["python3", me, "server", "198.18.1.100", "9000"], f"{out}/{cfg['name']}-server.log", env)
    # A client before the listener would meet refusals, and the relay ejects a refusing upstream for 2 s.
    server.wait_line("listening", 30)
    cli = Proc(ns("cli") + ["python3", me, "client", "198.18.0.10", "7000", json.dumps(cfg["spec"])],
               f"{out}/{cfg['name']}-client.log")
    result = {"name": cfg["name"], "spec": cfg["spec"], "circuits": total, "handovers": []}
    try:
        t = time.monotonic()
        ready = cli.wait_line("ready", 120)
        result["open_s"] = round(time.monotonic() - t, 2)
        result["ready"] = ready
        server.wait_line(f"accepted {total}", 60)
        time.sleep(cfg.get("warm", 1.5))
        owner = cfg["owner"]
        for r in range(cfg["rounds"]):
            other = 2 if owner == 1 else 1
            for attempt in range(20):
                line = subprocess.run(ns(f"n{owner}") + ["python3", me, "post", f"198.18.0.{other + 1}", cfg["token"]],
                                      capture_output=True, text=True, timeout=180).stdout
                h = json.loads(line)
                # Right after a handover the new owner may not know yet that it owns the service.
                if h["outcome"].get("result") == "failed" and "does not own" in h["outcome"].get("detail", ""):
                    time.sleep(0.5)
                    continue
                break
            h["from"], h["to"] = owner, other
            result["handovers"].append(h)
            print(f"  {cfg['name']} handover {r + 1}: n{owner} -> n{other}: {h['outcome'].get('result')} "
                  f"moved {h['outcome'].get('moved')} pause {h['outcome'].get('busyPauseMs', 0):.0f} ms busy / {h['outcome'].get('pauseMs', 0):.0f} ms all, "
                  f"POST {1000 * (h['t1'] - h['t0']):.0f} ms, bytes {h['outcome'].get('bytesMoved')}",
                  file=sys.stderr, flush=True)
            if h["outcome"].get("result") == "completed":
                owner = other
            time.sleep(cfg.get("settle", 1.5))
        result["owner"] = owner
        result["rst_before_probe"] = [rst(prefix + "cli"), rst(prefix + "srv")]
        probe = subprocess.run(ns("cli") + ["python3", me, "probe", "198.18.0.10", "7000"], capture_output=True,
                               text=True, timeout=30)
        result["probe"] = (probe.stdout.strip() or probe.stderr.strip()[-200:] or "no answer")
        cli.send("release")
        cli.send("ping")
        result["pinged"] = cli.wait_line("pinged", 40)
        cli.send("finish")
        result["client"] = json.loads(cli.wait_line("{", 90))
        server.send("report")
        result["server"] = json.loads(server.wait_line("{", 30))
    except (TimeoutError, ValueError) as e:
        # The handovers happened; what the load could not tell is said in the report.
        result["error"] = str(e)
        print(f"  {cfg['name']}: {e}", file=sys.stderr, flush=True)
    finally:
        for p in (cli, server):
            if p.p.poll() is None:
                p.p.kill()
    if "error" in result:
        for h in result["handovers"]:
            h["post_ms"], h["max_gap_ms"] = round(1000 * (h["t1"] - h["t0"]), 1), None
        return result
    return analyse(result)


def analyse(r):
    c = {s["id"]: s for s in r["client"]["streams"]}
    s = {x["id"]: x for x in r["server"]["streams"]}
    lost = dup = bad = resets = unclosed = 0
    bad_list = []
    for cid, cs in c.items():
        ss = s.get(cid)
        if ss is None:
            lost += cs["tx"]
            bad_list.append(f"circuit {cid}: no server side")
            continue
        for writer, reader, way in ((cs, ss, "client->server"), (ss, cs, "server->client")):
            if reader["bad"] is not None:
                bad += 1
                bad_list.append(f"circuit {cid} {way}: wrong byte at offset {reader['bad']}")
            lost += max(0, writer["tx"] - reader["rx"])
            dup += max(0, reader["rx"] - writer["tx"])
        for side in (cs, ss):
            if side["reset"]:
                resets += 1
                bad_list.append(f"circuit {cid} {side is cs and 'client' or 'server'}: {side['reset']}")
        if not cs["eof"]:
            unclosed += 1
    gaps = []
    for side in ("client", "server"):
        for st in r[side]["streams"]:
            gaps += [(a, b, side, st["id"]) for a, b in st["gaps"]]
    hs = r["handovers"]
    for i, h in enumerate(hs):
        # A gap belongs to the handover whose POST came last before the gap ended (it ends when
        # the bytes flow again), if it ended within 2 s of that POST's answer.
        end = min(h["t1"] + 2.0, hs[i + 1]["t0"] if i + 1 < len(hs) else h["t1"] + 2.0)
        inside = [b - a for a, b, _, _ in gaps if h["t0"] <= b <= end]
        h["max_gap_ms"] = round(1000 * max(inside, default=0), 1)
        h["post_ms"] = round(1000 * (h["t1"] - h["t0"]), 1)
    # The five longest gaps, for the report: who saw them, from when (s after the first POST), how long.
    first = r["handovers"][0]["t0"] if r["handovers"] else 0
    r["worst_gaps"] = [{"side": side, "id": cid, "mode": next((x["mode"] for x in r[side]["streams"] if x["id"] == cid), "?"),
                        "from_s": round(a - first, 2), "ms": round(1000 * (b - a), 1)}
                       for a, b, side, cid in sorted(gaps, key=lambda g: g[0] - g[1])[:5]]
    windows = [(h["t0"], h["t1"] + 2.0) for h in r["handovers"]]
    outside = [b - a for a, b, _, _ in gaps if not any(w0 <= b <= w1 for w0, w1 in windows)]
    r["gaps"] = gaps  # every gap over 20 ms, (start, end, side, circuit), to attribute them again
    r["check"] = {"lost": lost, "duplicated": dup, "wrong": bad, "socket_errors": resets, "unclosed": unclosed,
                  "problems": bad_list[:20], "bytes_client_to_server": sum(x["rx"] for x in s.values()),
                  "bytes_server_to_client": sum(x["rx"] for x in c.values()),
                  "max_gap_outside_ms": round(1000 * max(outside, default=0), 1),
                  "load_stall_ms": max(r["client"]["max_stall_ms"], r["server"]["max_stall_ms"]),
                  "connect_failed": len(r["client"]["connect_failed"])}
    for side in ("client", "server"):
        for st in r[side]["streams"]:
            st.pop("gaps")
        r[side] = {"max_stall_ms": r[side]["max_stall_ms"],
                   "max_ping_ms": max((x["ping_ms"] or 0 for x in r[side]["streams"]), default=0),
                   "unanswered_pings": sum(1 for x in r[side]["streams"] if x["mode"] == "idle" and side == "client"
                                           and x["ping_ms"] is None)}
    return r


# ------------------------------------------------------------------ the report

def axis(top):
    """A round tick step (1, 2, 2.5 or 5 x 10^k) for about 5 ticks, and the axis end at or above top."""
    raw = max(top, 1e-9) / 5
    k = 10 ** math.floor(math.log10(raw))
    step = next(m * k for m in (1, 2, 2.5, 5, 10) if m * k >= raw)
    return step, step * math.ceil(top / step)


def svg_chart(path, title, xlabel, series, xfmt=lambda x: f"{x:g}"):
    """A line chart by hand: series = [(name, colour, [(x, y_ms), ...], line)], every point a dot, and
    the line through `line`'s points (default: the highest y at each x). Both axes start at 0, so
    the slope reads directly."""
    W, H, L, R, T, B = 640, 360, 70, 20, 40, 50
    xs = sorted({x for _, _, pts, *_ in series for x, _ in pts}) or [1]
    xstep, xmax = axis(max(xs) * 1.05)
    ystep, ymax = axis(max([y for _, _, pts, *_ in series for _, y in pts] + [1]) * 1.1)
    px = lambda x: L + (W - L - R) * x / xmax
    py = lambda y: H - B - (H - T - B) * y / ymax
    g = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="14">{title}</text>',
         f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>',
         f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>',
         f'<text x="{(L + W - R) / 2}" y="{H - 12}" text-anchor="middle">{xlabel}</text>',
         f'<text x="16" y="{(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 16 {(T + H - B) / 2})">ms</text>']
    for i in range(round(ymax / ystep) + 1):
        y = ystep * i
        g.append(f'<line x1="{L}" y1="{py(y):.1f}" x2="{W - R}" y2="{py(y):.1f}" stroke="#ddd"/>')
        g.append(f'<text x="{L - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:g}</text>')
    for i in range(round(xmax / xstep) + 1):
        x = xstep * i
        g.append(f'<text x="{px(x):.1f}" y="{H - B + 16}" text-anchor="middle">{xfmt(x)}</text>')
    for k, (name, colour, pts, *given) in enumerate(series):
        top = {}
        for x, y in pts:
            top[x] = max(top.get(x, 0), y)
        line = sorted(given[0] if given else top.items())
        if len(line) > 1:
            g.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="'
                     + " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in line) + '"/>')
        for x, y in pts:
            g.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5" fill="{colour}"/>')
        g.append(f'<rect x="{L + 12}" y="{T + 6 + 18 * k}" width="12" height="12" fill="{colour}"/>')
        g.append(f'<text x="{L + 30}" y="{T + 16 + 18 * k}">{name}</text>')
    g.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(g) + "\n")


def mb(n):
    return f"{n / 1e6:.0f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def trace(pcap, *logs):
    """Where a handover's time goes, from a capture of the state channels on br0 (handover.sh
    --trace) and the nodes' logs: HandoverStarted (log) -> the channel's SYN (prepare, stop
    accepting, freeze, guard, dump, addresses removed) -> the source's last byte (shipping)
    -> the target's first byte, Restored (restoring) -> the source's next byte, Commit -> the
    target's next, Committed. Prints one line per handover. The pause (outcome) runs from the
    freeze, inside the first step, to the Commit."""
    import datetime
    import re
    starts = []
    for log in logs:
        for line in open(log, errors="replace"):
            m = re.match(r"(\S+Z) \w+ HandoverStarted handover (\w+)", line)
            if m:
                starts.append((datetime.datetime.fromisoformat(m[1].replace("Z", "+00:00")).timestamp(), m[2]))
    text = subprocess.run(["tcpdump", "-r", pcap, "-tt", "-n"], capture_output=True, text=True).stdout
    conns = {}
    for line in text.splitlines():
        m = re.match(r"(\d+\.\d+) IP (\S+) > (\S+): Flags \[([^\]]*)\].*length (\d+)", line)
        if not m:
            continue
        t, a, b, flags, n = float(m[1]), m[2], m[3].rstrip(":"), m[4], int(m[5])
        key = tuple(sorted((a, b)))
        c = conns.setdefault(key, {"events": []})
        if flags == "S":
            c["syn"], c["src"] = t, a
        if n > 0:
            c["events"].append((t, a, n))
    for key, c in sorted(((k, c) for k, c in conns.items() if "syn" in c), key=lambda kc: kc[1]["syn"]):
        # The data in runs by direction: source images..., target Restored, source Commit, target Committed.
        runs = []
        for t, a, n in c["events"]:
            side = "s" if a == c["src"] else "t"
            if runs and runs[-1][0] == side:
                runs[-1][2], runs[-1][3] = t, runs[-1][3] + n
            else:
                runs.append([side, t, t, n])
        started = max((st for st in starts if st[0] <= c["syn"]), default=None)
        ms = lambda a, b: f"{1000 * (b - a):.0f}"
        # The runs: token (source), accept (target), images and EndOfCircuits (source),
        # Restored (target), Commit (source), Committed (target).
        parts = [f"handover {started[1] if started else '?'}:"]
        if started:
            parts.append(f"started -> channel SYN {ms(started[0], c['syn'])} ms (prepare, stop accepting, freeze, guard, dump)")
        if len(runs) > 2:
            parts.append(f"token accepted -> first image byte {ms(runs[1][2], runs[2][1])} ms (images encoded)")
            parts.append(f"shipping {runs[2][3] / 1e6:.1f} MB {ms(runs[2][1], runs[2][2])} ms")
        if len(runs) > 3:
            parts.append(f"-> Restored {ms(runs[2][2], runs[3][1])} ms (target guards, restores)")
        if len(runs) > 4:
            parts.append(f"-> Commit {ms(runs[3][2], runs[4][1])} ms")
        if len(runs) > 5:
            parts.append(f"-> Committed {ms(runs[4][2], runs[5][1])} ms (target runs them)")
        print(parts[0] + " " + ", ".join(parts[1:]))


def collect(out, command, commit, stamp, load_start, load_end, rounds):
    """results.json from the scenarios' JSON files in `out` and the relays' logs there."""
    import glob
    import platform
    import re
    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    res = {"command": "sudo " + command, "commit": commit, "started": stamp, "load_start": load_start,
           "load_end": load_end, "shared": True, "rounds": int(rounds),
           "machine": f"{os.cpu_count()} cores ({model}), kernel {platform.release()}",
           "scenarios": [], "sweep": [], "timings": []}
    for path in sorted(glob.glob(os.path.join(out, "*.json"))):
        if path.endswith("results.json"):
            continue
        r = json.load(open(path))
        (res["scenarios"] if r["axis"] == "scenario" else res["sweep"]).append(r)
    res["sweep"].sort(key=lambda r: (r["axis"], r["circuits"], r["spec"].get("stalled", 0)))
    # The relay's own account of each handover, from both nodes' logs.
    for log in sorted(glob.glob(os.path.join(out, "*-n[12].log"))):
        for line in open(log, errors="replace"):
            if re.search(r"Handover(Started|Completed|RolledBack|Failed|Received|ChannelFailed)|ListenerBindFailed", line):
                res["timings"].append(f"{os.path.basename(log)}: {line.strip()[:300]}")
    for path in sorted(glob.glob(os.path.join(out, "*.trace.txt"))):
        res.setdefault("traces", []).extend(f"{os.path.basename(path)[:-10]}: {l.strip()}" for l in open(path) if l.strip())
    json.dump(res, open(os.path.join(out, "results.json"), "w"), indent=1)


def report(outdir):
    with open(os.path.join(outdir, "results.json")) as f:
        res = json.load(f)
    lines = [f"# Live handover: `{res['command']}`", "",
             f"Commit {res['commit']}, {res['started']} UTC, {res['machine']}. "
             f"Load average at the start {res['load_start']}, at the end {res['load_end']}.", ""]
    if res.get("shared"):
        lines += ["Figures from a shared machine: other work ran at the same time (the load averages above).", ""]
    targets = {"A": (200, None), "B": (1000, 2000), "B2": (1000, 2000)}
    gapms = lambda h: "?" if h.get("max_gap_ms") is None else f"{h['max_gap_ms']:.0f}"
    for sc in res["scenarios"]:
        ck, name = sc.get("check"), sc["name"]
        gap_t, post_t = targets.get(name, (None, None))
        lines += [f"## Scenario {name}: {sc['title']}", "",
                  f"{sc['circuits']} circuits ({', '.join(f'{v} {k}' for k, v in sc['spec'].items() if v)}), "
                  f"opened in {sc['open_s']} s; {len(sc['handovers'])} handovers.", "",
                  "| # | from -> to | result | moved | bytes moved | pause, busy / all (outcome) | started -> done (source log) "
                  "| POST -> answer | longest receive gap |",
                  "|---:|---|---|---:|---:|---:|---:|---:|---:|"]
        for i, h in enumerate(sc["handovers"], 1):
            o = h["outcome"]
            lines.append(f"| {i} | n{h['from']} -> n{h['to']} | {o.get('result')} | {o.get('moved')} | "
                         f"{mb(o.get('bytesMoved') or 0)} | {o.get('busyPauseMs', 0):.0f} / {o.get('pauseMs', 0):.0f} ms | {'-' if h.get('log_ms') is None else round(h['log_ms'])} ms | {h['post_ms']:.0f} ms | "
                         f"{gapms(h)} ms |")
        if ck is None:
            lines += ["", f"- the load could not finish: {sc['error']} (lost, duplicated, resets and gaps unknown; "
                      "see the relay logs below)", ""]
            continue
        worst_gap = max((h["max_gap_ms"] for h in sc["handovers"]), default=0)
        worst_post = max((h["post_ms"] for h in sc["handovers"]), default=0)
        completed = all(h["outcome"].get("result") == "completed" and h["outcome"].get("moved") == sc["circuits"]
                        for h in sc["handovers"])
        verdict = []
        if gap_t:
            verdict.append(f"longest gap {worst_gap:.0f} ms (target <= {gap_t}): {'met' if worst_gap <= gap_t else 'MISSED'}")
        if post_t:
            verdict.append(f"longest POST {worst_post:.0f} ms (target <= {post_t}): {'met' if worst_post <= post_t else 'MISSED'}")
        lines += ["", f"- every handover completed with all {sc['circuits']} circuits moved: {'yes' if completed else 'NO'}",
                  *(f"- {v}" for v in verdict),
                  f"- a new circuit through the VIP after the handovers: {sc.get('probe')}",
                  f"- idle circuits answering the ping after the handovers: {sc['pinged'].split()[1]} "
                  f"(slowest answer {sc['pinged'].split()[2]} ms)",
                  f"- bytes checked: {mb(ck['bytes_client_to_server'])} client -> server, "
                  f"{mb(ck['bytes_server_to_client'])} server -> client; lost {ck['lost']}, duplicated {ck['duplicated']}, "
                  f"streams with a wrong byte {ck['wrong']}",
                  f"- resets: {sc['rst_cli']} connection(s) reset into cli, {sc['rst_srv']} into srv before both FINs "
                  f"(nft counters sorted by a capture; only after both FINs, a duplicate ACK answered once the close was "
                  f"complete: {sc.get('rst_after_close_cli', 0)} and {sc.get('rst_after_close_srv', 0)}; resets before the new "
                  f"circuit's connect: {sc['rst_before_probe'][0]} and {sc['rst_before_probe'][1]}); socket errors "
                  f"{ck['socket_errors']}; circuits not closed by a FIN {ck['unclosed']}; connects failed {ck['connect_failed']}",
                  "- longest gaps (who read, from when after the first POST, how long): " + "; ".join(
                      f"{g['side']} of circuit {g['id']} ({g['mode']}) at +{g['from_s']} s for {g['ms']:.0f} ms"
                      for g in sc.get("worst_gaps", [])[:3]),
                  f"- longest gap outside the handovers {ck['max_gap_outside_ms'] or '<= 20':} ms; the load tool's own longest "
                  f"stall {ck['load_stall_ms']:.0f} ms (a gap includes up to that much of the tool's own lateness)"]
        lines += [f"  - {p}" for p in ck["problems"]]
        lines.append("")
    sweep = res.get("sweep", [])
    if sweep:
        lines += ["## Pause against circuits and against queued bytes", "",
                  "Each row: a fresh pair, the circuits opened, handed n1 -> n2 and back; the table has the worse "
                  "of the two handovers, the charts both (the first handover of a pair, and the one back). 10 circuits stream "
                  "paced (64 KiB / 10 ms each way), the rest are idle; queued bytes come from stalled circuits (the "
                  "server writes 1 MiB into each, the client reads nothing until after the handovers), measured as "
                  "the outcome's bytes moved.", "",
                  "| point | circuits | bytes moved | pause, busy / all (outcome) | POST -> answer | longest gap | lost / dup / RST |",
                  "|---|---:|---:|---:|---:|---:|---|"]
        sweep = [sc for sc in sweep if "check" in sc]
        for sc in sweep:
            hs = sc["handovers"]
            ck = sc["check"]
            lines.append(f"| {sc['name']} | {sc['circuits']} | {mb(max(h['outcome'].get('bytesMoved') or 0 for h in hs))} | "
                         f"{max(h['outcome'].get('busyPauseMs', 0) for h in hs):.0f} / {max(h['outcome'].get('pauseMs', 0) for h in hs):.0f} ms | {max(h['post_ms'] for h in hs):.0f} ms | "
                         f"{max(h['max_gap_ms'] for h in hs):.0f} ms | {ck['lost']} / {ck['duplicated'] + ck['wrong']} / "
                         f"{sc['rst_cli'] + sc['rst_srv']} |")
        pts = lambda rows, xf, yf: [(xf(s), yf(h)) for s in rows for h in s["handovers"]]
        by_n = [s for s in sweep if s["axis"] == "circuits"]
        by_q = [s for s in sweep if s["axis"] == "queued"]
        charts = []
        # Each point's first handover is the pair's first (n1 -> n2, nothing of the handover path
        # has run in either process yet); the second goes back. They differ by 2-8x, so each
        # gets its own line.
        pause = lambda h: h["outcome"].get("pauseMs", 0)
        gap = lambda h: h["max_gap_ms"] or 0
        # Two waves: the busy circuits' pause (freeze to commit) is what a streaming circuit
        # stands still; the whole pause runs on to the quiet circuits' adoption.
        busy = lambda h: h["outcome"].get("busyPauseMs", 0)
        kinds = [("pause (all), first handover of the pair", "#1f77b4", 0, pause), ("pause (all), the one back", "#9ecae1", 1, pause),
                 ("busy circuits' pause, first", "#2ca02c", 0, busy), ("busy circuits' pause, back", "#98df8a", 1, busy),
                 ("longest gap, first", "#d62728", 0, gap), ("longest gap, back", "#fc9272", 1, gap)]
        nth = lambda s, i: s["handovers"][i] if len(s["handovers"]) > i and s["handovers"][i]["outcome"].get("result") == "completed" else None
        if by_n:
            svg_chart(os.path.join(outdir, "handover-circuits.svg"), "Handover pause against circuits (10 of them paced)",
                      "circuits", [(n, c, [(s["circuits"], f(nth(s, i))) for s in by_n if nth(s, i)]) for n, c, i, f in kinds])
            charts.append("handover-circuits.svg")
        if by_q:
            qx = lambda h: round((h["outcome"].get("bytesMoved") or 0) / 1e6, 1)
            svg_chart(os.path.join(outdir, "handover-queued.svg"), "Handover pause against queued bytes (100 circuits + stalled)",
                      "MB of queues moved", [(n, c, [(qx(nth(s, i)), f(nth(s, i))) for s in by_q if nth(s, i)]) for n, c, i, f in kinds])
            charts.append("handover-queued.svg")
        lines += [""] + [f"![{c}]({c})" for c in charts] + [""]
    if res.get("traces"):
        lines += ["## Where the time goes (state channel capture on br0, --trace)", "", "```", *res["traces"], "```", ""]
    if res.get("timings"):
        lines += ["## Where the time goes (relay logs)", "", "```", *res["timings"], "```", ""]
    with open(os.path.join(outdir, "results.md"), "w") as f:
        f.write("\n".join(lines))


def resets(pcap, service_port, tuples):
    """Sorts the resets an nft set counted (TUPLES: its "a . p . b . q, ..." listing) by a capture
    of the SYNs, FINs and RSTs on SERVICE_PORT in the same namespace. A connection (by its port
    that is not SERVICE_PORT) is "after_close" when every reset into the namespace came after both
    of its FINs: the listener answering a duplicate ACK once the relay's socket had closed normally
    (ops/bench/RESULTS.md, "Live handover", run 5's note). Any other, or one the capture lacks, is
    "early". Prints {"early": [...], "after_close": [...]}."""
    counted = set()
    for a, p, b, q in re.findall(r"(\d+\.\d+\.\d+\.\d+) \. (\d+) \. (\d+\.\d+\.\d+\.\d+) \. (\d+)", tuples):
        counted.add(q if p == service_port else p)
    out = subprocess.run(["tcpdump", "-r", pcap, "-nn"], capture_output=True, text=True).stdout
    fins, early, closed = {}, set(), set()
    for m in re.finditer(r" (\d+\.\d+\.\d+\.\d+)\.(\d+) > (\d+\.\d+\.\d+\.\d+)\.(\d+): Flags \[([^\]]*)\]", out):
        from_service = m[2] == service_port
        port = m[4] if from_service else m[2]
        service_fin, peer_fin = fins.get(port, (False, False))
        if "F" in m[5]:
            fins[port] = (True, peer_fin) if from_service else (service_fin, True)
        # Into cli a reset comes from the service's port (7000); into srv, to the server's (9000).
        into = from_service if service_port == "7000" else not from_service
        if "R" in m[5] and into:
            (closed if service_fin and peer_fin else early).add(port)
    after_close = sorted((closed - early) & counted)
    print(json.dumps({"early": sorted(counted - set(after_close)), "after_close": after_close}))


STALL = int(os.environ.get("HANDOVER_STALL_BYTES", 1024 * 1024))

if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "server":
        serve(sys.argv[2], int(sys.argv[3]))
    elif cmd == "client":
        client(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif cmd == "probe":
        probe(sys.argv[2], int(sys.argv[3]))
    elif cmd == "post":
        post(sys.argv[2], sys.argv[3])
    elif cmd == "drive":
        print(json.dumps(drive(json.loads(sys.argv[2]))), flush=True)
    elif cmd == "trace":
        trace(*sys.argv[2:])
    elif cmd == "resets":
        resets(*sys.argv[2:5])
    elif cmd == "collect":
        collect(*sys.argv[2:9])
    elif cmd == "report":
        report(sys.argv[2])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)

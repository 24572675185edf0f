#!/usr/bin/env python3
"""Soak test of the relay: bounded churn, long transfers and client resets against a local
echo upstream, while sampling the relay's descriptors, RSS and threads. Called by soak.sh.

Load (all on 127.0.0.1, every loop bounded by the duration):
  churn   workers: connect, send 1-16 KiB, half-close, read the echo to EOF, check it, close
  long    workers: one 32 MiB transfer at a time (paced, 16 MiB/s), sent and read back concurrently, checked
  reset   workers: connect, send, then RST (SO_LINGER 0) at a random point, some before the
                   upstream connect completes, some mid-transfer
Flatness criterion (after the warm-up, samples split in quarters, medians compared):
  descriptors: last <= first * 1.10 + 2 * (concurrent clients)   (connections in flight vary)
  RSS:         last <= first * 1.15                               (GC heap settles, must not climb)
  threads:     last <= first + 4
and, once the load has stopped: no circuit left open, descriptors back within 8 of the idle
baseline taken before the load, and no relay socket in CLOSE_WAIT/FIN_WAIT/CLOSING/LAST_ACK.
"""
import argparse, asyncio, csv, json, os, random, socket, statistics, struct, subprocess, sys, time, urllib.request

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close(); return port

def proc_sample(pid):
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    status = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":"); status[k] = v.strip()
    return fds, int(status["VmRSS"].split()[0]), int(status["Threads"])

def scrape(mgmt):
    try:
        text = urllib.request.urlopen(f"http://{mgmt}/metrics", timeout=2).read().decode()
    except Exception:
        return None
    active = total = 0
    for line in text.splitlines():
        if line.startswith("relay_circuits_active{"): active += int(float(line.rsplit(" ", 1)[1]))
        if line.startswith("relay_circuits_total{"): total += int(float(line.rsplit(" ", 1)[1]))
    return active, total

LINGERING = {"04": "FIN_WAIT1", "05": "FIN_WAIT2", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0B": "CLOSING"}

def lingering(ports):
    found = []
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(path).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            lport = int(parts[1].split(":")[1], 16); rport = int(parts[2].split(":")[1], 16)
            if parts[3] in LINGERING and (lport in ports or rport in ports):
                found.append((lport, rport, LINGERING[parts[3]]))
    return found

class Stats:
    def __init__(self): self.__dict__.update(churn=0, long=0, long_bytes=0, resets=0, errors=0, bad=0)

async def echo_handler(reader, writer):
    try:
        while True:
            data = await reader.read(256 * 1024)
            if not data: break
            writer.write(data); await writer.drain()
        writer.write_eof(); await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()

async def churn(port, stop, st, rnd):
    while time.monotonic() < stop:
        payload = rnd.randbytes(rnd.randint(1024, 16 * 1024))
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
            w.write(payload); await w.drain(); w.write_eof()
            got = await asyncio.wait_for(r.read(-1), 20)
            w.close()
            if got == payload: st.churn += 1
            else: st.bad += 1
        except (OSError, asyncio.TimeoutError):
            st.errors += 1
        await asyncio.sleep(rnd.uniform(0.005, 0.03))

async def long_transfer(port, stop, st, rnd, size, rate):
    while time.monotonic() < stop:
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
            block = rnd.randbytes(64 * 1024)
            async def send():
                sent = 0; began = time.monotonic()
                while sent < size:
                    w.write(block); await w.drain(); sent += len(block)
                    # Paced to --long-rate, so a soak on a shared machine does not take every core.
                    ahead = sent / rate - (time.monotonic() - began)
                    if ahead > 0: await asyncio.sleep(ahead)
                w.write_eof()
            async def recv():
                n = 0; expect = 0
                while True:
                    data = await r.read(256 * 1024)
                    if not data: return n
                    # Every byte checked against the repeating block.
                    off = n % len(block)
                    if data != (block * (2 + len(data) // len(block)))[off:off + len(data)]: raise ValueError("corrupt")
                    n += len(data)
            _, n = await asyncio.wait_for(asyncio.gather(send(), recv()), 120)
            w.close()
            if n == size: st.long += 1; st.long_bytes += n
            else: st.bad += 1
        except ValueError:
            st.bad += 1
        except (OSError, asyncio.TimeoutError):
            st.errors += 1

async def resetter(port, stop, st, rnd):
    while time.monotonic() < stop:
        try:
            sock = socket.socket(); sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            if rnd.random() < 0.7:
                await asyncio.get_running_loop().sock_sendall(sock, rnd.randbytes(rnd.randint(1, 512 * 1024)))
                await asyncio.sleep(rnd.uniform(0, 0.05))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close(); st.resets += 1
        except OSError:
            st.errors += 1
        await asyncio.sleep(rnd.uniform(0.01, 0.05))

def median(xs): return statistics.median(xs) if xs else float("nan")

async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--relay", required=True, help="path to the published relay executable")
    ap.add_argument("--duration", type=float, default=600)
    ap.add_argument("--interval", type=float, default=5)
    ap.add_argument("--churn", type=int, default=8)
    ap.add_argument("--long", type=int, default=2)
    ap.add_argument("--resets", type=int, default=2)
    ap.add_argument("--long-size", type=int, default=32 * 1024 * 1024)
    ap.add_argument("--long-rate", type=float, default=16, help="MiB/s per long-transfer worker")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)

    upstream = await asyncio.start_server(echo_handler, "127.0.0.1", 0, backlog=1024)
    up_port = upstream.sockets[0].getsockname()[1]
    listen, mgmt_port = free_port(), free_port()
    mgmt = f"127.0.0.1:{mgmt_port}"
    log = open(os.path.join(a.out, "relay.log"), "w")
    relay = subprocess.Popen([a.relay, "run", "--route", f"soak@127.0.0.1:{listen}=127.0.0.1:{up_port}",
                              "--management", mgmt], stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(200):
            if scrape(mgmt) is not None: break
            await asyncio.sleep(0.1)
        else:
            sys.exit("relay did not start; see relay.log")
        await asyncio.sleep(1)
        baseline = proc_sample(relay.pid)

        st = Stats(); rnd = random.Random(42)
        t0 = time.monotonic(); stop = t0 + a.duration
        workers = [asyncio.create_task(churn(listen, stop, st, random.Random(i))) for i in range(a.churn)]
        workers += [asyncio.create_task(long_transfer(listen, stop, st, random.Random(100 + i), a.long_size, a.long_rate * 1048576)) for i in range(a.long)]
        workers += [asyncio.create_task(resetter(listen, stop, st, random.Random(200 + i))) for i in range(a.resets)]

        samples = []
        with open(os.path.join(a.out, "samples.csv"), "w", newline="") as f:
            out = csv.writer(f); out.writerow(["t_s", "fds", "rss_kib", "threads", "circuits_active", "circuits_total", "churn", "long", "resets", "errors", "bad"])
            while time.monotonic() < stop:
                await asyncio.sleep(a.interval)
                fds, rss, threads = proc_sample(relay.pid)
                m = scrape(mgmt) or (-1, -1)
                row = [round(time.monotonic() - t0, 1), fds, rss, threads, m[0], m[1], st.churn, st.long, st.resets, st.errors, st.bad]
                samples.append(row); out.writerow(row); f.flush()
                print(f"  {row[0]:7.1f}s fds={fds:4d} rss={rss / 1024:7.1f}MiB threads={threads:3d} active={m[0]:3d} total={m[1]:7d} churn={st.churn} long={st.long} resets={st.resets} errors={st.errors} bad={st.bad}", flush=True)
        await asyncio.wait_for(asyncio.gather(*workers, return_exceptions=True), 180)

        # After the load: every circuit ended, descriptors back to the idle baseline, nothing lingering.
        for _ in range(100):
            m = scrape(mgmt)
            if m and m[0] == 0: break
            await asyncio.sleep(0.1)
        await asyncio.sleep(2)
        after = proc_sample(relay.pid); after_m = scrape(mgmt) or (-1, -1)
        linger = lingering({listen, up_port})
    finally:
        relay.terminate()
        try: relay.wait(30)
        except subprocess.TimeoutExpired: relay.kill()
        upstream.close()

    # Flatness: drop the warm-up (10% of the run, at least one sample), quarters of the rest.
    warm = max(1, len(samples) // 10)
    rest = samples[warm:]
    q = max(1, len(rest) // 4)
    first, last = rest[:q], rest[-q:]
    col = lambda rows, i: [r[i] for r in rows]
    clients = a.churn + a.long + a.resets
    checks = [
        ("descriptors", median(col(first, 1)), median(col(last, 1)), lambda f, l: l <= f * 1.10 + 2 * clients, f"last <= first x 1.10 + {2 * clients}"),
        ("RSS (MiB)", median(col(first, 2)) / 1024, median(col(last, 2)) / 1024, lambda f, l: l <= f * 1.15, "last <= first x 1.15"),
        ("threads", median(col(first, 3)), median(col(last, 3)), lambda f, l: l <= f + 4, "last <= first + 4"),
    ]
    results = [(name, f, l, ok(f, l), rule) for name, f, l, ok, rule in checks]
    idle_ok = after_m[0] == 0 and after[0] <= baseline[0] + 8 and not linger and st.bad == 0
    passed = all(r[3] for r in results) and idle_ok and len(rest) >= 4

    md = []
    md.append(f"Soak: {a.duration:.0f} s, {len(samples)} samples every {a.interval:.0f} s; load {a.churn} churn + {a.long} long-transfer ({a.long_size // 1048576} MiB each at {a.long_rate:.0f} MiB/s) + {a.resets} reset workers.\n")
    md.append(f"Work done: {st.churn} churn circuits checked, {st.long} long transfers checked ({st.long_bytes / 2**30:.1f} GiB each way), "
              f"{st.resets} client resets; {st.errors} connect/IO errors, {st.bad} corrupt or short transfers; relay circuits total {samples[-1][5] if samples else 0}.\n")
    md.append("| measure | first-quarter median | last-quarter median | criterion | result |")
    md.append("|---|---|---|---|---|")
    for name, f, l, ok, rule in results:
        md.append(f"| {name} | {f:.1f} | {l:.1f} | {rule} | {'flat' if ok else 'GREW'} |")
    md.append(f"| after the load | idle baseline fds {baseline[0]}, RSS {baseline[1] / 1024:.1f} MiB, threads {baseline[2]} | "
              f"fds {after[0]}, RSS {after[1] / 1024:.1f} MiB, threads {after[2]}, open circuits {after_m[0]}, lingering sockets {len(linger)} | "
              f"0 open, fds <= baseline + 8, none lingering, 0 corrupt | {'ok' if idle_ok else 'FAILED'} |")
    md.append("")
    md.append("Samples (every 4th): t_s, fds, RSS MiB, threads, circuits active, circuits total")
    md.append("```")
    for r in samples[::4]:
        md.append(f"{r[0]:7.1f} {r[1]:5d} {r[2] / 1024:7.1f} {r[3]:4d} {r[4]:4d} {r[5]:8d}")
    md.append("```")
    md.append(f"\nVerdict: {'PASS: flat' if passed else 'FAIL'}")
    text = "\n".join(md)
    open(os.path.join(a.out, "soak.md"), "w").write(text + "\n")
    json.dump({"samples": samples, "checks": [r[:4] for r in results], "baseline": baseline, "after": after,
               "lingering": linger, "passed": passed}, open(os.path.join(a.out, "soak.json"), "w"), indent=1)
    print(text)
    sys.exit(0 if passed else 1)

asyncio.run(main())

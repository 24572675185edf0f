#!/usr/bin/env python3
"""Idle-circuit helpers for the benchmark's memory test.

  idle.py hold HOST PORT          accept connections and hold them open, idle,
                                  until the peer closes (runs in `srv`).
  idle.py open HOST PORT N HOLD_S open N connections, print "ready N" when all
                                  are connected, hold them until stdin closes
                                  or HOLD_S seconds pass, then close them all
                                  (runs in `cli`).

Bounded: `open` connects at most N (with a per-connect timeout) and never holds
longer than HOLD_S; `hold` is killed by the benchmark when it ends.
"""
import asyncio
import resource
import sys


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def hold(host, port):
    async def on_conn(reader, writer):
        try:
            while await reader.read(65536):
                pass
        except Exception:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_conn, host, port, backlog=8192)
    print("listening", flush=True)
    async with server:
        await server.serve_forever()


async def open_many(host, port, n, hold_s):
    conns = []
    sem = asyncio.Semaphore(256)  # connects in flight at once

    async def one():
        async with sem:
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
                conns.append(w)
            except Exception as e:  # counted below
                return e

    results = await asyncio.gather(*(one() for _ in range(n)))
    failed = [r for r in results if r is not None]
    print(f"ready {len(conns)} failed {len(failed)}"
          + (f" first-error {failed[0]!r}" if failed else ""), flush=True)
    loop = asyncio.get_running_loop()
    stdin_closed = loop.run_in_executor(None, sys.stdin.read)
    try:
        await asyncio.wait_for(stdin_closed, hold_s)
    except asyncio.TimeoutError:
        pass
    for w in conns:
        w.close()
    await asyncio.sleep(0.2)
    print("closed", flush=True)
    # The executor thread may still block on stdin; do not wait for it.
    import os
    os._exit(0)


def main():
    raise_nofile()
    cmd = sys.argv[1]
    if cmd == "hold":
        asyncio.run(hold(sys.argv[2], int(sys.argv[3])))
    elif cmd == "open":
        asyncio.run(open_many(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])))
    else:
        sys.exit("usage: idle.py hold HOST PORT | open HOST PORT N HOLD_S")


if __name__ == "__main__":
    main()

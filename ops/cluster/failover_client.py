"""Failover probe, run in the cli namespace.

Opens N circuits through the VIP (each echoes a greeting, then stays open), prints
"open N", then waits for a line "killed" on stdin. From that moment it tries a new
circuit through the VIP every 20 ms (connect and echo, 250 ms timeout each) and prints
"failover-ms <milliseconds>" at the first one that echoes, or "failover-ms timeout".
Usage: failover_client.py VIP PORT N [GIVE_UP_SECONDS]
"""
import socket
import sys
import time


def circuit(vip, port, timeout):
    s = socket.create_connection((vip, port), timeout=timeout)
    s.settimeout(timeout)
    s.sendall(b"hello\n")
    got = b""
    while len(got) < 6:
        chunk = s.recv(6 - len(got))
        if not chunk:
            raise ConnectionError("closed before the echo")
        got += chunk
    return s


def main():
    vip, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    give_up = float(sys.argv[4]) if len(sys.argv) > 4 else 30.0
    held = [circuit(vip, port, 5.0) for _ in range(n)]
    print(f"open {len(held)}", flush=True)
    line = sys.stdin.readline().strip()
    if line != "killed":
        print(f"unexpected input {line!r}", flush=True)
        return 2
    start = time.monotonic()
    while time.monotonic() - start < give_up:
        try:
            circuit(vip, port, 0.25).close()
            print(f"failover-ms {int((time.monotonic() - start) * 1000)}", flush=True)
            return 0
        except OSError:
            time.sleep(0.02)
    print("failover-ms timeout", flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())

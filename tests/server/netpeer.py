"""Test peer for the bonding-server tests: an echo server that logs its peers, and a probe.

    netpeer.py serve --bind ADDR --port P --log FILE    TCP and UDP echo; one line per peer
    netpeer.py probe [--host H] --port P [--udp]        send a token to H:P (127.0.0.1), print JSON
    netpeer.py flood --host H --port P --source A [--source B …] --count N --hold S
                                                        N silent connections from each source
    netpeer.py ttfb [--host H] --port P --count N       time to first byte of N connections
    netpeer.py spray --bind ADDR --sport P --host H --ports A-B
                                                        one UDP datagram from ADDR:P to each H:port
    netpeer.py mptcp-hold --host H --port P --seconds S open MPTCP to H:P, send garbage, hold it

Run inside a test's network namespace (``ip netns exec NS python3 netpeer.py …``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import struct
import sys
import threading
import time


def _log(path: str, line: str) -> None:
    with open(path, "a") as f:
        f.write(line + "\n")


def serve(bind: str, port: int, log: str) -> int:
    fam = socket.AF_INET6 if ":" in bind else socket.AF_INET
    tcp = socket.socket(fam, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((bind, port))
    tcp.listen(64)
    udp = socket.socket(fam, socket.SOCK_DGRAM)
    udp.bind((bind, port))

    def echo_tcp(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(30)
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                pass

    def accept_loop() -> None:
        while True:
            conn, peer = tcp.accept()
            _log(log, f"tcp {peer[0]}")
            threading.Thread(target=echo_tcp, args=(conn,), daemon=True).start()

    def udp_loop() -> None:
        while True:
            data, peer = udp.recvfrom(65536)
            _log(log, f"udp {peer[0]}")
            udp.sendto(data, peer)

    threading.Thread(target=udp_loop, daemon=True).start()
    _log(log, "ready")
    accept_loop()
    return 0


def probe(host: str, port: int, udp: bool, timeout: float) -> int:
    token = f"probe-{os.getpid()}-{time.monotonic_ns()}".encode()
    result: dict[str, object] = {"sent": token.decode(), "reply": None, "error": None}
    try:
        if udp:
            fam = socket.AF_INET6 if ":" in host else socket.AF_INET
            with socket.socket(fam, socket.SOCK_DGRAM) as s:
                s.settimeout(timeout)
                s.sendto(token, (host, port))
                data, _ = s.recvfrom(65536)
                result["reply"] = data.decode(errors="replace")
        else:
            with socket.create_connection((host, port), timeout=timeout) as s:
                s.settimeout(timeout)
                s.sendall(token)
                buf = b""
                while len(buf) < len(token):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
                result["reply"] = buf.decode(errors="replace")
    except OSError as e:
        result["error"] = f"{type(e).__name__}: {e}"
    result["ok"] = result["reply"] == token.decode()
    print(json.dumps(result))
    return 0


def _established_for(s: socket.socket) -> float:
    """Seconds since the kernel completed the handshake of a connection that has received no
    data yet (TCP_INFO's tcpi_last_data_recv, which tcp_finish_connect starts): a busy loop
    notices the connection later than that, and the server's clock started then."""
    info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    return float(struct.unpack_from("I", info, 52)[0]) / 1000


def flood(host: str, port: int, sources: list[str], count: int, hold: float) -> int:
    """Open ``count`` silent TCP connections from each source address (non-blocking, all at
    once), hold them ``hold`` seconds, close them all; print per source how many were open at
    the end (and the longest any of them had been open), how many the server refused or reset,
    how many it closed (and after how long, the shortest and the longest), and how many never
    completed.  Bounded by count × sources
    sockets and by ``hold`` seconds."""
    import resource
    import selectors
    need = count * len(sources) + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, max(hard, need)))
    sel = selectors.DefaultSelector()
    stats: dict[str, dict[str, float]] = {
        src: {"open": 0, "refused": 0, "closed_by_server": 0, "pending": 0,
              "held_min_s": 0.0, "held_max_s": 0.0, "open_longest_s": 0.0} for src in sources}
    state: dict[socket.socket, tuple[str, str]] = {}
    since: dict[socket.socket, float] = {}
    for src in sources:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.bind((src, 0))
            if s.connect_ex((host, port)) not in (0, 115):  # EINPROGRESS
                stats[src]["refused"] += 1
                s.close()
                continue
            state[s] = (src, "connecting")
            sel.register(s, selectors.EVENT_WRITE)
    deadline = time.monotonic() + hold
    while time.monotonic() < deadline:
        for key, _ in sel.select(timeout=max(0.0, min(1.0, deadline - time.monotonic()))):
            s = key.fileobj
            assert isinstance(s, socket.socket)
            src, st = state[s]
            if st == "connecting":
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    stats[src]["refused"] += 1
                    sel.unregister(s)
                    del state[s]
                    s.close()
                    continue
                state[s] = (src, "open")
                since[s] = time.monotonic() - _established_for(s)
                sel.modify(s, selectors.EVENT_READ)
                continue
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data:  # the server closed or reset it
                held = time.monotonic() - since[s]
                st_ = stats[src]
                st_["held_min_s"] = round(min(held, st_["held_min_s"] or held), 2)
                st_["held_max_s"] = round(max(held, st_["held_max_s"]), 2)
                st_["closed_by_server"] += 1
                sel.unregister(s)
                del state[s]
                s.close()
    end = time.monotonic()
    for s, (src, st) in state.items():
        stats[src]["open" if st == "open" else "pending"] += 1
        if st == "open":
            stats[src]["open_longest_s"] = round(max(end - since[s],
                                                     stats[src]["open_longest_s"]), 2)
        s.close()
    print(json.dumps(stats))
    return 0


def ttfb(host: str, port: int, count: int, timeout: float) -> int:
    """``count`` connections one after the other, each sending a token: seconds from connect()
    to the first byte of the reply, or null where none came within ``timeout``; JSON list."""
    out: list[float | None] = []
    for i in range(count):
        t0 = time.monotonic()
        try:
            with socket.create_connection((host, port), timeout=timeout) as s:
                s.settimeout(max(0.1, timeout - (time.monotonic() - t0)))
                s.sendall(f"ttfb-{i}".encode())
                out.append(round(time.monotonic() - t0, 6) if s.recv(1) else None)
        except OSError:
            out.append(None)
    print(json.dumps(out))
def spray(bind: str, sport: int, host: str, ports: str) -> int:
    first, last = (int(x) for x in ports.split("-"))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((bind, sport))
        for port in range(first, last + 1):
            s.sendto(b"x", (host, port))
    return 0


def mptcp_hold(host: str, port: int, seconds: float) -> int:
    """An MPTCP connection with nothing of the protocol in it (no key): what anyone can open.
    It stays silent while held (sing-box resets a connection at its first garbage byte), then
    sends garbage; the peer's path manager announces its addresses all the same."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_MPTCP) as s:
        s.settimeout(seconds + 5)
        s.connect((host, port))
        s.sendall(os.urandom(16))
        time.sleep(seconds)
        with contextlib.suppress(OSError):  # the proxy may have given up on it
            s.sendall(os.urandom(64))
    return 0


def main() -> int:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--bind", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--log", required=True)
    pr = sub.add_parser("probe")
    pr.add_argument("--host", default="127.0.0.1")
    pr.add_argument("--port", type=int, required=True)
    pr.add_argument("--udp", action="store_true")
    pr.add_argument("--timeout", type=float, default=3.0)
    f = sub.add_parser("flood")
    f.add_argument("--host", required=True)
    f.add_argument("--port", type=int, required=True)
    f.add_argument("--source", action="append", required=True)
    f.add_argument("--count", type=int, required=True)
    f.add_argument("--hold", type=float, required=True)
    t = sub.add_parser("ttfb")
    t.add_argument("--host", default="127.0.0.1")
    t.add_argument("--port", type=int, required=True)
    t.add_argument("--count", type=int, required=True)
    t.add_argument("--timeout", type=float, default=5.0)
    sp = sub.add_parser("spray")
    sp.add_argument("--bind", required=True)
    sp.add_argument("--sport", type=int, required=True)
    sp.add_argument("--host", required=True)
    sp.add_argument("--ports", required=True)
    mh = sub.add_parser("mptcp-hold")
    mh.add_argument("--host", required=True)
    mh.add_argument("--port", type=int, required=True)
    mh.add_argument("--seconds", type=float, default=3.0)
    a = p.parse_args()
    if a.cmd == "ttfb":
        return ttfb(a.host, a.port, a.count, a.timeout)
    if a.cmd == "flood":
        return flood(a.host, a.port, a.source, a.count, a.hold)
    if a.cmd == "serve":
        return serve(a.bind, a.port, a.log)
    if a.cmd == "spray":
        return spray(a.bind, a.sport, a.host, a.ports)
    if a.cmd == "mptcp-hold":
        return mptcp_hold(a.host, a.port, a.seconds)
    return probe(a.host, a.port, a.udp, a.timeout)


if __name__ == "__main__":
    sys.exit(main())

"""Traffic in the lab: iperf3 over MPTCP (mptcpize), per-link counters, waiting on bondingd."""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import select
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bonding.lab.delay import python_env
from bonding.lab.topology import (
    IPERF_PORT,
    SERVER_ADDR,
    TARGET_ADDR,
    TARGET_ADDR6,
    Lab,
    LabError,
    nsx,
)

HEADER_RATIO = 1448 / 1514  # TCP payload per 1514-byte frame (timestamps on)
# The same over IPv6: its header is 40 bytes, not 20, so a 1500-byte packet carries
# 1500 - 40 - 20 - 12 (timestamps) = 1428 bytes of TCP payload.
HEADER_RATIO6 = 1428 / 1514


def need(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise LabError(f"{tool} is missing: apt-get install {package}")
    return path


@dataclass
class Transfer:
    """An iperf3 MPTCP upload from the router to the server (both under mptcpize)."""

    lab: Lab
    seconds: float
    server: subprocess.Popen[str] | None = None
    client: subprocess.Popen[str] | None = None
    # iperf3 -C: OpenWrt's default; the host's (BBR) cannot be changed per netns.  None: the
    # route's or the system's.  (On MPTCP, -C reaches the first subflow only: the others take
    # the congestion control of the route they leave by when bondingd sets one.)
    congestion: str | None = "cubic"
    src_role: str = "router"
    dst: str = SERVER_ADDR
    dst_role: str = "server"
    mptcp: bool = True
    reverse: bool = False  # the server side sends (iperf3 -R)
    omit: float = 0  # seconds left out of the report at the start (iperf3 -O)
    server_output: bool = True  # the receiver's own intervals in the report

    def start(self) -> None:
        st = self.lab.state or self.lab.load()
        need("iperf3", "iperf3")
        wrap = [need("mptcpize", "mptcpize"), "run"] if self.mptcp else []
        self.server = subprocess.Popen(
            nsx(st.namespaces[self.dst_role], *wrap, "iperf3", "-s", "-1", "-J", "-p",
                str(IPERF_PORT)),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 5
        while not _listening(st.namespaces[self.dst_role], IPERF_PORT):
            if time.monotonic() > deadline or self.server.poll() is not None:
                self.stop()
                raise LabError("iperf3 server did not start")
            time.sleep(0.05)
        extra = (["-R"] if self.reverse else []) + (
            ["-O", f"{self.omit:g}"] if self.omit else []) + (
            ["--get-server-output"] if self.server_output else [])
        self.client = subprocess.Popen(
            nsx(st.namespaces[self.src_role], *wrap, "iperf3", "-c", self.dst, "-p",
                str(IPERF_PORT), "-t", f"{self.seconds:g}", "-J", *extra,
                *(["-C", self.congestion] if self.congestion else [])),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def running(self) -> bool:
        return self.client is not None and self.client.poll() is None

    def result(self, timeout: float) -> dict[str, Any]:
        """Wait for the client; its JSON report (raises LabError if the transfer failed)."""
        assert self.client is not None
        try:
            out, err = self.client.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise LabError(f"iperf3 still running after {timeout:g} s") from None
        finally:
            self._stop_server()
        try:
            data: dict[str, Any] = json.loads(out)
        except json.JSONDecodeError:
            raise LabError(f"iperf3 failed ({self.client.returncode}): {err.strip()}") from None
        if "error" in data:
            raise LabError(f"iperf3: {data['error']}")
        return data

    def _stop_server(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(3)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()

    def stop(self) -> None:
        for p in (self.client,):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        self._stop_server()


def _listening(ns: str, port: int) -> bool:
    r = subprocess.run(nsx(ns, "ss", "-Hltn", f"sport = :{port}"), capture_output=True,
                       text=True, check=False)
    return bool(r.stdout.strip())


def received_bps(report: dict[str, Any]) -> float:
    return float(report["end"]["sum_received"]["bits_per_second"])


def receiver_intervals(report: dict[str, Any]) -> list[tuple[float, float, float]]:
    """(start, end, bits/s) per interval as the receiving side counted them."""
    side = report
    if not report.get("start", {}).get("test_start", {}).get("reverse"):
        side = report.get("server_output_json") or {}
    out = []
    for iv in side.get("intervals", []):
        s = iv["sum"]
        if not s.get("omitted"):
            out.append((float(s["start"]), float(s["end"]), float(s["bits_per_second"])))
    return out


def goodput_between(report: dict[str, Any], t0: float, t1: float) -> float | None:
    """Mean receiver goodput (bit/s) over the intervals inside [t0, t1] of the transfer."""
    ivs = [(a, b, r) for a, b, r in receiver_intervals(report) if a >= t0 - 1e-6
           and b <= t1 + 1e-6]
    span = sum(b - a for a, b, _ in ivs)
    return sum((b - a) * r for a, b, r in ivs) / span if span > 0 else None


class Rates:
    """Per-link rates from the router's WAN counters between two samples."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.t = time.monotonic()
        self.c = lab.counters()

    def sample(self) -> dict[str, float]:
        """Bits/s sent on each link (upload) since the last sample."""
        t, c = time.monotonic(), self.lab.counters()
        dt = max(t - self.t, 1e-6)
        out = {k: (c[k]["tx"] - self.c[k]["tx"]) * 8 / dt for k in c}
        self.t, self.c = t, c
        return out


def rss_kb(pid: int) -> int:
    """Resident memory of process ``pid`` in kB (VmRSS)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise LabError(f"process {pid} has no VmRSS (a kernel thread, or gone)")


def wait_for(pred: Callable[[], bool], timeout: float, step: float = 0.02) -> float | None:
    """Seconds until pred() was true, or None on timeout."""
    start = time.monotonic()
    while True:
        if pred():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            return None
        time.sleep(step)


def path_state(lab: Lab, name: str) -> str | None:
    path = lab.status().get("paths", {}).get(name)
    return None if path is None else str(path.get("state"))


SETTLED_JITTER_MS = 10.0


def _family(lab: Lab, name: str, family: int) -> dict[str, Any] | None:
    fams = (lab.status().get("paths", {}).get(name) or {}).get("families") or {}
    fam: dict[str, Any] | None = fams.get(f"ipv{family}")
    return fam


def family_state(lab: Lab, name: str, family: int) -> str | None:
    """The state of one address family (4 or 6) of a path, as bondingd's snapshot says."""
    fam = _family(lab, name, family)
    return None if fam is None else str(fam.get("state"))


def wait_family_up(lab: Lab, family: int, timeout: float = 20.0) -> bool:
    """Every path's `family` up (not degraded) and its RTT estimate settled (jitter under
    SETTLED_JITTER_MS).  A fresh IPv6 neighbour cache makes the first answers slow (hundreds of
    ms); until the estimate has forgotten them, the family's reply timeout is longer, and so is
    the time its death takes to notice (up to 1.3 s seen, for about 5 s after it came up)."""
    st = lab.state or lab.load()
    names = [x.name for x in st.links]

    def settled(name: str) -> bool:
        fam = _family(lab, name, family)
        return (fam is not None and fam.get("state") == "up"
                and fam.get("jitter_ms") is not None and fam["jitter_ms"] < SETTLED_JITTER_MS)

    return wait_for(lambda: all(settled(n) for n in names), timeout) is not None


def endpoints(lab: Lab) -> list[dict[str, Any]]:
    st = lab.state or lab.load()
    r = subprocess.run(["ip", "-n", st.namespaces["router"], "-j", "mptcp", "endpoint",
                        "show"], capture_output=True, text=True, check=False)
    try:
        data: list[dict[str, Any]] = json.loads(r.stdout or "[]")
    except json.JSONDecodeError:
        return []
    return data


def wait_proxy_running(lab: Lab, timeout: float) -> bool:
    return wait_for(lambda: (lab.status().get("proxy") or {}).get("state") == "running",
                    timeout) is not None


def wait_all_up(lab: Lab, timeout: float = 20.0) -> bool:
    st = lab.state or lab.load()
    names = [x.name for x in st.links]
    return wait_for(lambda: all(path_state(lab, n) == "up" for n in names), timeout) is not None


# --- the full path: LAN host → router (proxy) → links → server → target ----------------------

def lan_transfer(lab: Lab, seconds: float, *, reverse: bool = False,
                 congestion: str = "cubic", ipv6: bool = False) -> Transfer:
    """An iperf3 TCP upload from the LAN host to the target (plain TCP: the router bonds it).

    `reverse`: the target sends (a download); `ipv6`: to the target's IPv6 address."""
    return Transfer(lab, seconds, congestion=congestion, src_role="lan",
                    dst=TARGET_ADDR6 if ipv6 else TARGET_ADDR, dst_role="target", mptcp=False,
                    reverse=reverse)


# Tiny services for the target and clients for the LAN host, run as
#   python3 -m bonding.lab.traffic serve {whoami,udp-echo,dns} --port N
#   python3 -m bonding.lab.traffic ask {whoami,udp-echo,dns} HOST PORT
# whoami answers a TCP connection with the peer's address; udp-echo sends a datagram back
# prefixed with the sender's address; dns answers every A query with DNS_ANSWER.  Services
# listen on IPv4 and IPv6 (one socket each way) and name an IPv4 peer in its IPv4 form.

DNS_ANSWER = "192.0.2.53"
DNS_NAME = "bonding.example"


def _dns_answer(query: bytes) -> bytes | None:
    if len(query) < 17:
        return None
    qid, flags, qd = struct.unpack("!HHH", query[:6])
    if flags & 0x8000 or qd != 1:
        return None
    end = 12
    while end < len(query) and query[end] != 0:
        end += 1 + query[end]
    qend = end + 5  # the root label, QTYPE, QCLASS
    if qend > len(query):
        return None
    qtype = struct.unpack("!H", query[end + 1:end + 3])[0]
    question = query[12:qend]
    header = struct.pack("!HHHHHH", qid, 0x8180, 1, 1 if qtype == 1 else 0, 0, 0)
    if qtype != 1:
        return header + question
    answer = struct.pack("!HHHLH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(DNS_ANSWER)
    return header + question + answer


def dns_query(name: str, qid: int = 0x4242) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\0" + \
        struct.pack("!HH", 1, 1)


def parse_dns_a(reply: bytes) -> list[str]:
    """The A records of a reply to dns_query (answers right after the one question)."""
    _qid, _flags, qd, an = struct.unpack("!HHHH", reply[:8])
    pos = 12
    for _ in range(qd):
        while reply[pos] != 0:
            pos += 1 + reply[pos]
        pos += 5
    out = []
    for _ in range(an):
        if reply[pos] & 0xC0 == 0xC0:
            pos += 2
        else:
            while reply[pos] != 0:
                pos += 1 + reply[pos]
            pos += 1
        rtype, _cls, _ttl, rdlen = struct.unpack("!HHLH", reply[pos:pos + 10])
        pos += 10
        if rtype == 1 and rdlen == 4:
            out.append(socket.inet_ntoa(reply[pos:pos + 4]))
        pos += rdlen
    return out


def _dual(kind: int, port: int) -> socket.socket:
    """A socket on [::]:port that takes IPv4 too."""
    s = socket.socket(socket.AF_INET6, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    return s


def _plain(address: str) -> str:
    """An IPv4-mapped IPv6 address (::ffff:192.0.2.1) as plain IPv4."""
    return address[7:] if address.startswith("::ffff:") and "." in address else address


def serve(kind: str, port: int) -> None:
    """Run one service forever (until killed)."""
    if kind == "whoami":
        srv = _dual(socket.SOCK_STREAM, port)
        srv.listen(16)
        print("ready", flush=True)
        while True:
            conn, peer = srv.accept()
            with conn:
                conn.sendall(f"{_plain(peer[0])}\n".encode())
    udp = _dual(socket.SOCK_DGRAM, port)
    print("ready", flush=True)
    while True:
        data, peer = udp.recvfrom(65535)
        if kind == "udp-echo":
            udp.sendto(f"{_plain(peer[0])} ".encode() + data, peer)
        else:
            reply = _dns_answer(data)
            if reply is not None:
                udp.sendto(reply, peer)


def ask(kind: str, host: str, port: int, timeout: float = 3.0) -> str:
    """One request to a service; the answer as text (whoami, udp-echo) or the A records."""
    if kind == "whoami":
        with socket.create_connection((host, port), timeout=timeout) as c:
            return c.makefile().readline().strip()
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                       socket.SOCK_DGRAM) as u:
        u.settimeout(timeout)
        if kind == "udp-echo":
            u.sendto(b"ping", (host, port))
            return u.recv(65535).decode()
        u.sendto(dns_query(DNS_NAME), (host, port))
        return " ".join(parse_dns_a(u.recv(65535)))


def until_answer(kind: str, host: str, port: int, expect: str, t0: float, limit: float,
                 attempt: float = 0.5, pause: float = 0.05) -> float | None:
    """New connections one after another until one gets `expect`: seconds since `t0`
    (time.monotonic(), the same clock in every namespace), or None after `limit` seconds."""
    while time.monotonic() - t0 < limit:
        try:
            if ask(kind, host, port, attempt) == expect:
                return time.monotonic() - t0
        except OSError:
            pass
        time.sleep(pause)
    return None


class NewConnections:
    """`until_answer` run in a lab namespace, started beforehand so that no process start-up
    is timed: `go(t0)` right after the fault, then `result()`."""

    def __init__(self, lab: Lab, role: str, kind: str, host: str, port: int, expect: str,
                 limit: float = 15.0) -> None:
        st = lab.state or lab.load()
        self.limit = limit
        self.proc = subprocess.Popen(
            nsx(st.namespaces[role], sys.executable, "-m", "bonding.lab.traffic", "until", kind,
                host, str(port), expect, "--limit", str(limit)),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=python_env())
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            self.close()
            raise LabError(f"the connection loop did not start in {role}")

    def go(self, t0: float) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{t0!r}\n")
        self.proc.stdin.flush()

    def result(self) -> float | None:
        """Seconds from t0 to the first expected answer, None when none came in time."""
        out, _ = self.proc.communicate(timeout=self.limit + 10)
        return None if out.strip() in ("", "none") else float(out)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
# A "voice" stream: VOICE_PPS datagrams a second of VOICE_BYTES (a 20 ms G.711 frame), each
# carrying its sequence number and send time, through one socket (one UDP flow) to a udp-echo.
VOICE_PPS = 50
VOICE_BYTES = 160
_VOICE = struct.Struct("!Qd")


def stream(host: str, port: int, pps: float, seconds: float, size: int = VOICE_BYTES,
           linger: float = 2.0) -> dict[str, Any]:
    """Send the stream for `seconds`, take echoes until `linger` s after the last one.

    Returns {"sent", "received", "lost", "pps", "first", "last" (when the first and the last
    datagram were sent), "arrivals": [[seq, sent_at, received_at]]} (times: the wall clock, as
    time.time(), so a fault's moment taken elsewhere compares)."""
    if not 0 < pps <= 1000 or not 0 < seconds <= 600:
        raise ValueError("pps 0–1000, seconds 0–600")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((host, port))
    sock.setblocking(False)
    pad = b"\0" * max(0, size - _VOICE.size)
    interval = 1.0 / pps
    n = int(seconds * pps)
    arrivals: dict[int, tuple[float, float]] = {}
    t0 = time.monotonic()
    wall0 = time.time()
    sent = 0
    last = wall0
    end = t0 + n * interval + linger
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if sent < n and now >= t0 + sent * interval:
            last = wall0 + (now - t0)
            with contextlib.suppress(OSError):  # ECONNREFUSED from an earlier ICMP: go on
                sock.send(_VOICE.pack(sent, last) + pad)
            sent += 1
            continue
        wait = (t0 + sent * interval if sent < n else end) - now
        ready, _, _ = select.select([sock], [], [], max(0.0, wait))
        while ready:
            try:
                data = sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                continue
            body = data.split(b" ", 1)[-1]  # udp-echo puts the sender's address first
            if len(body) >= _VOICE.size:
                seq, at = _VOICE.unpack_from(body)
                arrivals.setdefault(seq, (at, wall0 + (time.monotonic() - t0)))
    sock.close()
    return {"sent": sent, "received": len(arrivals), "lost": sent - len(arrivals), "pps": pps,
            "first": wall0, "last": last,
            "arrivals": sorted([q, a, b] for q, (a, b) in arrivals.items())}


def longest_silence(report: dict[str, Any], start: float | None = None,
                    end: float | None = None) -> float:
    """The longest time without an echo arriving (seconds) between `start` and `end` (wall
    clock; default: the first and the last send): what a listener hears as a gap.  An echo
    of the last datagram counts up to one second after it was sent."""
    lo = report["first"] if start is None else start
    hi = report["last"] if end is None else end
    points = [lo, *sorted(a[2] for a in report["arrivals"] if lo <= a[2] <= hi + 1.0)]
    if points[-1] < hi:  # silent to the end
        points.append(hi)
    return max(b - a for a, b in itertools.pairwise(points)) if len(points) > 1 else 0.0


class Stream:
    """stream() run in a lab namespace (a background process); result() waits for its report."""

    def __init__(self, lab: Lab, role: str, host: str, port: int, seconds: float,
                 pps: float = VOICE_PPS) -> None:
        st = lab.state or lab.load()
        self.seconds = seconds
        self.proc = subprocess.Popen(
            nsx(st.namespaces[role], sys.executable, "-m", "bonding.lab.traffic", "stream", host,
                str(port), "--pps", f"{pps:g}", "--seconds", f"{seconds:g}"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=python_env())

    def result(self) -> dict[str, Any]:
        try:
            out, err = self.proc.communicate(timeout=self.seconds + 30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise LabError("the UDP stream did not end") from None
        if self.proc.returncode != 0:
            raise LabError(f"the UDP stream failed: {err.strip()[-300:]}")
        data: dict[str, Any] = json.loads(out)
        return data

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


class Service:
    """A service of this module running in a lab namespace (a context manager)."""

    def __init__(self, lab: Lab, role: str, kind: str, port: int) -> None:
        st = lab.state or lab.load()
        self.proc = subprocess.Popen(
            nsx(st.namespaces[role], sys.executable, "-m", "bonding.lab.traffic", "serve", kind,
                "--port", str(port)),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=python_env())
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.close()
            raise LabError(f"service {kind} did not start in {role}: {line.strip()}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ask_from(lab: Lab, role: str, kind: str, host: str, port: int,
             timeout: float = 3.0) -> str:
    """ask() run in a lab namespace; raises LabError when no answer came."""
    st = lab.state or lab.load()
    r = subprocess.run(nsx(st.namespaces[role], sys.executable, "-m", "bonding.lab.traffic",
                           "ask", kind, host, str(port), "--timeout", str(timeout)),
                       capture_output=True, text=True, timeout=timeout + 10, env=python_env(),
                       check=False)
    if r.returncode != 0:
        raise LabError(f"{kind} {host}:{port} from {role}: {r.stderr.strip()[-300:]}")
    return r.stdout.strip()


def try_ask_from(lab: Lab, role: str, kind: str, host: str, port: int,
                 timeout: float = 3.0) -> str | None:
    """ask_from(), or None when no answer came."""
    try:
        return ask_from(lab, role, kind, host, port, timeout)
    except LabError:
        return None


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m bonding.lab.traffic",
                                description="lab services and their clients")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("kind", choices=["whoami", "udp-echo", "dns"])
    s.add_argument("--port", type=int, required=True)
    a = sub.add_parser("ask")
    a.add_argument("kind", choices=["whoami", "udp-echo", "dns"])
    a.add_argument("host")
    a.add_argument("port", type=int)
    a.add_argument("--timeout", type=float, default=3.0)
    u = sub.add_parser("until", help="print 'ready', read t0 (monotonic) from stdin, then open "
                                     "connections until one answers EXPECT; print the seconds "
                                     "since t0 (or 'none')")
    u.add_argument("kind", choices=["whoami", "udp-echo", "dns"])
    u.add_argument("host")
    u.add_argument("port", type=int)
    u.add_argument("expect")
    u.add_argument("--limit", type=float, default=15.0)
    st = sub.add_parser("stream", help="a 'voice' stream to a udp-echo; prints a JSON report")
    st.add_argument("host")
    st.add_argument("port", type=int)
    st.add_argument("--pps", type=float, default=VOICE_PPS)
    st.add_argument("--seconds", type=float, required=True)
    args = p.parse_args(argv)
    if args.cmd == "serve":
        serve(args.kind, args.port)
        return 0
    if args.cmd == "until":
        print("ready", flush=True)
        t0 = float(sys.stdin.readline())
        took = until_answer(args.kind, args.host, args.port, args.expect, t0, args.limit)
        print("none" if took is None else f"{took:.4f}")
        return 0
    if args.cmd == "stream":
        print(json.dumps(stream(args.host, args.port, args.pps, args.seconds)))
        return 0
    try:
        print(ask(args.kind, args.host, args.port, args.timeout))
    except OSError as e:
        print(f"no answer: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

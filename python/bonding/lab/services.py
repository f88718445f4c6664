"""Tiny services for the lab's target and their clients, run inside a namespace as
``python3 -m bonding.lab.traffic serve|ask|until …`` (bonding.lab.flows starts them).

whoami answers a TCP connection with the peer's address; udp-echo sends a datagram back
prefixed with the sender's address; dns answers every A query with DNS_ANSWER.  Services
listen on IPv4 and IPv6 (one socket each way) and name an IPv4 peer in its IPv4 form."""

from __future__ import annotations

import socket
import struct
import time

DNS_ANSWER = "192.0.2.53"
DNS_NAME = "bonding.example"


def dns_answer(query: bytes) -> bytes | None:
    """The reply to a DNS query: DNS_ANSWER for an A question, no answer for another type;
    None for what is not one query."""
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
            reply = dns_answer(data)
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


def first_answer(host: str, port: int, payload: bytes = b"quic-initial",
                 timeout: float = 3.0) -> tuple[str, float]:
    """What a UDP client (a QUIC client's first datagram) gets from `host`:`port`: the answer,
    'refused' (an ICMP port unreachable: a connected socket sees it) or 'timeout', and after
    how many ms."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                       socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.connect((host, port))
        t0 = time.monotonic()
        s.send(payload)
        try:
            answer = s.recv(1500).decode()
        except ConnectionRefusedError:
            answer = "refused"
        except TimeoutError:
            answer = "timeout"
        return answer, (time.monotonic() - t0) * 1000


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



"""The handshake guard's bookkeeping, on `ss` text as this kernel prints it (no root)."""

from __future__ import annotations

from collections.abc import Iterable

from bonding.server import guard
from bonding.server.guard import GUARD_EVERY_S, HANDSHAKE_S, Guard, parse_ss

# a silent MPTCP connection (its subflow carries the MPTCP socket's inode), a client that sent
# its request over two subflows, a plain TCP one with 30 bytes, and another port's connection
SS = """\
0      0      203.0.113.10:65101   192.0.2.31:40000 timer:(keepalive,4min58sec,0) ino:1001 sk:1 <->
\t ts sack cubic wscale:10,10 rto:204 segs_in:2 tcp-ulp-mptcp flags:Mec token:0000(id:0)/fad26376
0      0      203.0.113.10:65101   192.0.2.20:40001 ino:1002 sk:2 <->
\t ts sack cubic bytes_received:40 segs_in:3 tcp-ulp-mptcp flags:Mec
0      0      203.0.113.10:65101   100.64.77.2:40002 ino:1002 sk:3 <->
\t ts sack cubic bytes_received:900 segs_in:9 tcp-ulp-mptcp flags:Jjec
0      0      [::ffff:203.0.113.10]:65101 [::ffff:192.0.2.32]:40003 ino:1003 sk:4 <->
\t ts sack cubic bytes_received:30 segs_in:3
0      0      203.0.113.10:65102   192.0.2.31:40004 ino:1004 sk:5 <->
\t ts sack cubic segs_in:2
"""


def test_parse_ss_reads_port_inode_and_bytes() -> None:
    conns = parse_ss(SS, [65101])
    assert [(c.port, c.ino, c.received) for c in conns] == [
        (65101, 1001, 0), (65101, 1002, 40), (65101, 1002, 900), (65101, 1003, 30)]


def test_only_connections_without_a_request_after_the_deadline_are_shut_down() -> None:
    now = [100.0]
    shut: list[tuple[int, list[int]]] = []

    def do_shut(pid: int, fds: Iterable[int]) -> int:
        shut.append((pid, list(fds)))
        return len(shut[-1][1])
    g = Guard(list_sockets=lambda ports: SS, shut=do_shut, clock=lambda: now[0],
              fds=lambda pid: {1001: 7, 1002: 8, 1003: 9, 1004: 10})
    assert g.tick({65101: 42}) == 0  # first seen now
    now[0] += GUARD_EVERY_S / 2
    assert g.tick({65101: 42}) == 0 and not shut  # not yet time to scan
    now[0] += HANDSHAKE_S
    assert g.tick({65101: 42}) == 2
    # the silent one and the 30-byte one; the client whose subflows carried 940 bytes stays
    assert shut == [(42, [7, 9])]
    assert g.shut_total == 2
    assert guard.REQUEST_MIN_BYTES > 30


def test_a_connection_that_sent_its_request_stays_when_that_subflow_goes() -> None:
    now = [0.0]
    text = [SS]
    shut: list[list[int]] = []
    g = Guard(list_sockets=lambda ports: text[0], clock=lambda: now[0],
              shut=lambda pid, fds: len(shut.append(list(fds)) or []),
              fds=lambda pid: {1002: 8})
    g.tick({65101: 42})
    # the subflow with the request closes; the one left has had 40 bytes only
    text[0] = "\n".join(SS.splitlines()[2:4]) + "\n"
    now[0] += HANDSHAKE_S + GUARD_EVERY_S
    g.tick({65101: 42})
    assert shut == []

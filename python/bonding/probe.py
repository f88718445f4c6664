"""ICMP echo probing of one path, bound to its device and source address, on asyncio.

One raw socket per path and address family (bondingd runs as root; ping sockets are off by
default in a fresh network namespace): ICMP echo from the path's IPv4 address, ICMPv6 echo from
its IPv6 address (the kernel fills in the ICMPv6 checksum, and hands over ICMPv6 messages
without their IPv6 header).

A round is good when any target answers, so it asks one target and the next only when no answer
came within about twice the path's RTT (never sooner than a quarter of the interval shared
among the targets, as the rounds used to be staggered): a healthy path costs one echo per round
instead of one per target, which halves the probe traffic on a metered radio link with the
default two targets.  The targets take turns leading a round, so each one's figures stay fresh
and a dead target only makes its rounds ask the next one.  A round ends when every echo sent
answered (and no further one is needed) or the timeout (adapted to the path's RTT by the caller)
passed; loss is counted over the echoes sent.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bonding.core.health import Round
from bonding.periodic import Periodic

log = logging.getLogger(__name__)

ICMP_ECHO_REPLY = 0
ICMP_ECHO_REQUEST = 8
ICMP6_ECHO_REQUEST = 128
ICMP6_ECHO_REPLY = 129
SOL_RAW = 255
ICMP_FILTER = 1
ICMP6_FILTER = 1  # at level IPPROTO_ICMPV6: struct icmp6_filter, a set bit blocks that type
PAYLOAD = b"bonding-probe\0\0\0"  # 16 bytes after the 8-byte send timestamp


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(ident: int, seq: int, stamp_ns: int, v6: bool = False) -> bytes:
    """An ICMP echo request; ICMPv6 with `v6` (its checksum left 0: the kernel computes it over
    the pseudo-header it alone knows)."""
    body = struct.pack("!Q", stamp_ns) + PAYLOAD
    kind = ICMP6_ECHO_REQUEST if v6 else ICMP_ECHO_REQUEST
    head = struct.pack("!BBHHH", kind, 0, 0, ident, seq)
    if v6:
        return head + body
    csum = checksum(head + body)
    return struct.pack("!BBHHH", kind, 0, csum, ident, seq) + body


def parse_echo_reply(packet: bytes, v6: bool = False) -> tuple[int, int] | None:
    """(ident, seq) of an echo reply, else None: an IPv4 packet holding an ICMP echo reply, or
    with `v6` an ICMPv6 message (a raw ICMPv6 socket does not hand over the IPv6 header)."""
    if v6:
        icmp, kind = packet, ICMP6_ECHO_REPLY
    else:
        if len(packet) < 20:
            return None
        icmp, kind = packet[(packet[0] & 0x0F) * 4:], ICMP_ECHO_REPLY
    if len(icmp) < 8 or icmp[0] != kind:
        return None
    _, _, _, ident, seq = struct.unpack("!BBHHH", icmp[:8])
    return ident, seq


def icmp6_filter_only(kind: int) -> bytes:
    """struct icmp6_filter letting only ICMPv6 type `kind` through (Linux: a set bit blocks)."""
    words = [0xFFFFFFFF] * 8
    words[kind >> 5] &= ~(1 << (kind & 31)) & 0xFFFFFFFF
    return struct.pack("8I", *words)


@dataclass
class TargetStats:
    address: str
    sent: int = 0
    received: int = 0
    last_rtt_ms: float | None = None
    last_reply: float | None = None  # monotonic
    last_error: str | None = None

    def as_dict(self, now: float) -> dict[str, object]:
        return {
            "address": self.address,
            "sent": self.sent,
            "received": self.received,
            "last_rtt_ms": None if self.last_rtt_ms is None else round(self.last_rtt_ms, 2),
            "last_reply_s": None if self.last_reply is None else round(now - self.last_reply, 2),
            "error": self.last_error,
        }


@dataclass
class _Pending:
    number: int
    targets: int  # echoes this round sends at most (fewer once an answer made the rest needless)
    sent: int = 0
    received: int = 0
    rtts: list[float] = field(default_factory=list)
    outstanding: dict[int, tuple[str, float]] = field(default_factory=dict)  # seq → (dst, sent)
    timer: asyncio.TimerHandle | None = None
    fallbacks: list[asyncio.TimerHandle] = field(default_factory=list)  # the next targets' sends
    done: bool = False


RoundCallback = Callable[[Round], None]


class PathProber:
    """Probes one path (one address family: that of `source`) until stopped; reports each
    finished round through `on_round`."""

    def __init__(self, *, device: str, source: str, targets: tuple[str, ...],
                 interval_s: float, timeout_s: Callable[[], float],
                 srtt_s: Callable[[], float | None], on_round: RoundCallback) -> None:
        self.device = device
        self.source = source
        self.targets = targets
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.srtt_s = srtt_s  # the path's smoothed RTT (None: not known yet), kept by the caller
        self.on_round = on_round
        self.v6 = ":" in source
        self.stats = {t: TargetStats(t) for t in targets}
        self._ident = (os.getpid() * 31 + id(self)) & 0xFFFF
        self._seq = 0
        self._by_seq: dict[int, _Pending] = {}  # echo seq → its round
        self._unfinished: dict[int, _Pending] = {}  # round number → a round not finished yet
        self._rounds = 0
        self._sock: socket.socket | None = None
        # A round costs a timer callback or two, no task.
        self._clock = Periodic(interval_s, self._round, f"probe of {device} from {source}")

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self._clock.start()

    def close(self) -> None:
        """Stop probing now: no round is started or reported after this."""
        self._clock.stop()
        for p in self._unfinished.values():
            p.done = True
            _cancel(p)
        self._unfinished.clear()
        self._by_seq.clear()
        self._close()

    def probe_now(self) -> None:
        """Start the next round at once (ubus `probe`)."""
        self._clock.now()

    def _open(self) -> socket.socket:
        family, proto = ((socket.AF_INET6, socket.IPPROTO_ICMPV6) if self.v6
                         else (socket.AF_INET, socket.IPPROTO_ICMP))
        s = socket.socket(family, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                          proto)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.device.encode())
            # Let only echo replies wake us up (a bit set = that type filtered out).
            if self.v6:
                s.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER,
                             icmp6_filter_only(ICMP6_ECHO_REPLY))
            else:
                only_replies = ~(1 << ICMP_ECHO_REPLY) & 0xFFFFFFFF
                s.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("I", only_replies))
            s.bind((self.source, 0))
        except OSError:
            s.close()
            raise
        self._clock.loop.add_reader(s.fileno(), self._readable)
        return s

    def _close(self) -> None:
        if self._sock is not None:
            self._clock.loop.remove_reader(self._sock.fileno())  # opened by a round: started
            self._sock.close()
            self._sock = None

    # --- rounds ---------------------------------------------------------------------------------
    def _round(self) -> None:
        loop = self._clock.loop
        pending = _Pending(self._next_round(), len(self.targets))
        if self._sock is None:
            try:
                self._sock = self._open()
            except OSError as e:
                # The device or address may be gone: the round fails, we retry next round.
                for st in self.stats.values():
                    st.last_error = f"socket: {os.strerror(e.errno or 0)}"
                self._finish(pending)
                return
        self._unfinished[pending.number] = pending
        n = len(self.targets)
        lead = (pending.number - 1) % n  # the targets take turns leading a round
        order = self.targets[lead:] + self.targets[:lead]
        step = self._patience()
        # the next targets' turns, cancelled by the round's first answer (_needless)
        pending.fallbacks = [loop.call_later(i * step, self._send, pending, target)
                             for i, target in enumerate(order[1:], 1)]
        # the round ends when it did with every target asked at once, staggered: asking later
        # must not make a dead path's rounds longer (nor its death noticed later); the last echo
        # still gets at least the timeout's share
        pending.timer = loop.call_later((n - 1) * self._stagger() + self.timeout_s(),
                                        self._finish, pending)
        self._send(pending, order[0])

    def _stagger(self) -> float:
        """A quarter of the interval shared among the targets."""
        return self.interval_s / 4 / max(1, len(self.targets))

    def _patience(self) -> float:
        """Seconds a round waits for an answer before it asks the next target: twice the RTT,
        at least the stagger, at most the timeout's share."""
        srtt = self.srtt_s()
        if srtt is None:
            return self._stagger()
        return max(self._stagger(), min(2 * srtt, self.timeout_s() / max(1, len(self.targets))))

    def _next_round(self) -> int:
        self._rounds += 1
        return self._rounds

    def _send(self, pending: _Pending, target: str) -> None:
        if pending.done or self._clock.stopped or self._sock is None:
            return
        self._seq = (self._seq + 1) & 0xFFFF
        seq = self._seq
        st = self.stats[target]
        now = time.monotonic()
        pkt = echo_request(self._ident, seq, time.monotonic_ns(), self.v6)
        st.sent += 1
        pending.sent += 1
        try:
            assert self._sock is not None
            self._sock.sendto(pkt, (target, 0))
        except OSError as e:
            st.last_error = os.strerror(e.errno or 0)
            if e.errno in (errno.ENODEV, errno.EADDRNOTAVAIL, errno.EBADF):
                self._close()  # reopen next round (device or address came back?)
            if pending.sent == pending.targets and not pending.outstanding:
                self._finish(pending)  # nothing of this round is on the wire
            return
        pending.outstanding[seq] = (target, now)
        self._by_seq[seq] = pending

    def _readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        for _ in range(64):  # bounded: drain what is there, let others run
            try:
                data, peer = sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                log.debug("%s: recv: %s", self.device, e)
                return
            now = time.monotonic()
            parsed = parse_echo_reply(data, self.v6)
            if parsed is None or parsed[0] != self._ident:
                continue
            src = peer[0]
            if src not in self.stats and self.v6:  # inet_ntop's text, usually ipaddress's too
                src = str(ipaddress.ip_address(src.split("%")[0]))
            pending = self._by_seq.pop(parsed[1], None)
            if pending is None:
                continue
            entry = pending.outstanding.pop(parsed[1], None)
            if entry is None or entry[0] != src:
                continue
            rtt = (now - entry[1]) * 1000.0
            st = self.stats[src]
            st.received += 1
            st.last_rtt_ms = rtt
            st.last_reply = now
            st.last_error = None
            pending.received += 1
            pending.rtts.append(rtt)
            self._needless(pending)

    def _needless(self, pending: _Pending) -> None:
        """An answer came: the targets not asked yet are not asked this round; the round ends
        once every echo sent has answered."""
        for h in pending.fallbacks:
            h.cancel()
        pending.fallbacks.clear()
        pending.targets = pending.sent
        if pending.received == pending.targets:
            self._finish(pending)

    def _finish(self, pending: _Pending) -> None:
        if pending.done:
            return
        pending.done = True
        self._unfinished.pop(pending.number, None)
        _cancel(pending)
        for seq in pending.outstanding:
            self._by_seq.pop(seq, None)
        for target, _ in pending.outstanding.values():
            st = self.stats[target]
            if st.last_error is None:
                st.last_error = "timeout"
        pending.outstanding.clear()
        # the echoes sent, or (no socket) those the round would have sent: all failed
        self.on_round(Round(sent=pending.sent or pending.targets, received=pending.received,
                            rtts_ms=tuple(pending.rtts)))


def _cancel(pending: _Pending) -> None:
    """A round's timers: its end and the sends not made yet."""
    if pending.timer is not None:
        pending.timer.cancel()
    for h in pending.fallbacks:
        h.cancel()

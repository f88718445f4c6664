"""ICMP echo probing of the paths, on asyncio: each echo leaves by its path's device from its
path's address, through one raw socket per address family shared by every path.

bondingd runs as root (ping sockets are off by default in a fresh network namespace): ICMP echo
from a path's IPv4 address, ICMPv6 echo from its IPv6 address (the kernel fills in the ICMPv6
checksum, and hands over ICMPv6 messages without their IPv6 header).  The sockets are bound to no
device and no address: each sendmsg names the path's interface and source address in its
ancillary data (IP_PKTINFO, IPV6_PKTINFO), and each answer's own IP_PKTINFO / IPV6_PKTINFO says
on which interface and to which address it came.  An answer counts for the path whose echo it
answers (the socket's ICMP identifier and the echo's sequence number) only when it came in on
that path's interface, to its address, from the target asked: what a socket bound to the
device and address would have let through.  Two sockets instead of two per path: fewer
descriptors, fewer wake-ups (answers that arrive together are read in one go), and one copy of
each ICMP message in the kernel instead of one per socket that could take it.

All the probers of one interval run from one clock (bonding.periodic.Beat): one timer a round
for all the paths, and a round of its own needs at most one timer at a time.

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
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from bonding.core.health import Round
from bonding.icmp import Channel, pktinfo
from bonding.periodic import Beat


@dataclass(slots=True)
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


class _Pending:
    """A round not finished yet."""

    __slots__ = ("asked", "done", "end_at", "number", "order", "received", "rtts", "sent",
                 "seqs", "started", "step", "targets", "timer", "timer_ends", "waiting")

    def __init__(self, number: int, targets: int) -> None:
        self.number = number
        self.targets = targets  # echoes this round sends at most (fewer once one answered)
        self.sent = 0
        self.received = 0
        self.waiting = 0  # echoes on the wire, not answered yet
        self.rtts: list[float] = []
        self.seqs: list[int] = []  # of the echoes sent
        self.order: tuple[str, ...] = ()  # the targets in the order this round asks them
        self.asked = 0
        self.started = self.end_at = self.step = 0.0
        self.timer: asyncio.TimerHandle | None = None  # the round's one timer
        self.timer_ends = False  # the timer ends the round (else: it asks the next target)
        self.done = False


RoundCallback = Callable[[Round], None]


class PathProber:
    """Probes one path (one address family: that of `source`) until stopped; reports each
    finished round through `on_round`.

    `channel` (the family's socket) and `beat` (the clock) default to those the running loop
    shares among its probers."""

    __slots__ = ("_ancillary", "_beat", "_channel", "_closed", "_ifindex", "_out", "_rounds",
                 "_source", "_unfinished", "device", "interval_s", "on_round", "source",
                 "srtt_s", "stats", "targets", "timeout_s", "v6")

    def __init__(self, *, device: str, source: str, targets: tuple[str, ...],
                 interval_s: float, timeout_s: Callable[[], float],
                 srtt_s: Callable[[], float | None], on_round: RoundCallback,
                 channel: Channel | None = None, beat: Beat | None = None) -> None:
        self.device = device
        self.source = source
        self.targets = targets
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.srtt_s = srtt_s  # the path's smoothed RTT (None: not known yet), kept by the caller
        self.on_round = on_round
        self.v6 = ":" in source
        self.stats = {t: TargetStats(t) for t in targets}
        self._source = socket.inet_pton(socket.AF_INET6 if self.v6 else socket.AF_INET, source)
        self._ifindex = 0  # the device's; 0: to look up (again) at the next round
        self._ancillary: list[tuple[int, int, bytes]] = []
        self._out: dict[int, tuple[str, float, _Pending]] = {}  # seq → (target, sent, round)
        self._unfinished: dict[int, _Pending] = {}  # round number → a round not finished yet
        self._rounds = 0
        self._closed = False
        self._channel = channel
        self._beat = beat

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """The first round at once, then one every interval (on the running loop)."""
        if self._channel is None:
            self._channel = Channel.shared(self.v6)
        if self._beat is None:
            self._beat = Beat.shared(self.interval_s)
        self._channel.attach()
        self._beat.join(self._round)

    def close(self) -> None:
        """Stop probing now: no round is started or reported after this."""
        if self._closed:
            return
        self._closed = True
        if self._beat is not None:
            self._beat.leave(self._round)
        for p in self._unfinished.values():
            p.done = True
            if p.timer is not None:
                p.timer.cancel()
        self._unfinished.clear()
        if self._channel is not None:
            for seq in self._out:
                self._channel.forget(seq)
            if self._beat is not None:  # started: attached
                self._channel.detach()
        self._out.clear()

    def probe_now(self) -> None:
        """Start a round at once (ubus `probe`), beside the regular ones."""
        if self._beat is not None and not self._closed:
            self._beat.loop.call_soon(self._round)

    # --- rounds ---------------------------------------------------------------------------------
    def _round(self) -> None:
        if self._closed:
            return
        assert self._beat is not None
        self._rounds += 1
        n = len(self.targets)
        pending = _Pending(self._rounds, n)
        if not self._ifindex:
            try:
                self._resolve()
            except OSError as e:
                # The device may be gone: the round fails, we retry next round.
                for st in self.stats.values():
                    st.last_error = f"socket: {os.strerror(e.errno or errno.ENODEV)}"
                self._finish(pending)
                return
        self._unfinished[pending.number] = pending
        lead = (pending.number - 1) % n  # the targets take turns leading a round
        pending.order = self.targets[lead:] + self.targets[:lead]
        timeout = self.timeout_s()
        pending.step = self._patience(timeout)
        pending.started = now = self._beat.loop.time()
        # the round ends when it did with every target asked at once, staggered: asking later
        # must not make a dead path's rounds longer (nor its death noticed later); the last echo
        # still gets at least the timeout's share
        pending.end_at = now + (n - 1) * self._stagger() + timeout
        self._ask(pending)

    def _resolve(self) -> None:
        """The device's interface index, and the ancillary data of its echoes."""
        self._ifindex = socket.if_nametoindex(self.device)
        self._ancillary = [pktinfo(self.v6, self._ifindex, self._source)]

    def _ask(self, pending: _Pending) -> None:
        """Ask the round's next target; then wait for the one after it, or the end."""
        target = pending.order[pending.asked]
        pending.asked += 1
        self._send(pending, target)
        if not pending.done:
            self._arm(pending)

    def _arm(self, pending: _Pending) -> None:
        """The round's one timer: at the next target's turn, else at the round's end."""
        assert self._beat is not None
        at, ends = pending.end_at, True
        if pending.asked < pending.targets:
            at, ends = pending.started + pending.asked * pending.step, False
        pending.timer_ends = ends
        pending.timer = self._beat.loop.call_at(at, self._due, pending)

    def _due(self, pending: _Pending) -> None:
        if pending.done:
            return
        if pending.timer_ends:
            self._finish(pending)
        elif pending.asked < pending.targets:
            self._ask(pending)
        else:  # an answer made the next target's turn needless: wait for the rest
            self._arm(pending)

    def _stagger(self) -> float:
        """A quarter of the interval shared among the targets."""
        return self.interval_s / 4 / max(1, len(self.targets))

    def _patience(self, timeout: float) -> float:
        """Seconds a round waits for an answer before it asks the next target: twice the RTT,
        at least the stagger, at most the share of the round's `timeout`."""
        if len(self.targets) < 2:
            return 0.0  # no next target
        srtt = self.srtt_s()
        if srtt is None:
            return self._stagger()
        return max(self._stagger(), min(2 * srtt, timeout / len(self.targets)))

    def _send(self, pending: _Pending, target: str) -> None:
        assert self._channel is not None
        st = self.stats[target]
        now = time.monotonic()
        st.sent += 1
        pending.sent += 1
        try:
            seq = self._channel.send(self, target, self._ancillary)
        except OSError as e:
            st.last_error = os.strerror(e.errno or 0)
            if e.errno in (errno.ENODEV, errno.ENXIO, errno.EADDRNOTAVAIL, errno.EINVAL):
                self._ifindex = 0  # look the device up again next round (did it come back?)
            if pending.sent == pending.targets and not pending.waiting:
                self._finish(pending)  # nothing of this round is on the wire
            return
        self._out[seq] = (target, now, pending)
        pending.seqs.append(seq)
        pending.waiting += 1

    def answer(self, seq: int, src: str, ifindex: int, dst: bytes, now: float) -> bool:
        """An echo reply to echo `seq` from `src`, come in on `ifindex` to `dst`: True when
        it is the answer this prober waits for (on its device, to its address, from the target
        asked)."""
        entry = self._out.get(seq)
        if entry is None or ifindex != self._ifindex or dst != self._source:
            return False
        target, sent_at, pending = entry
        if src != target and not (self.v6 and _same_address(src, target)):
            return False
        del self._out[seq]
        rtt = (now - sent_at) * 1000.0
        st = self.stats[target]
        st.received += 1
        st.last_rtt_ms = rtt
        st.last_reply = now
        st.last_error = None
        pending.received += 1
        pending.waiting -= 1
        pending.rtts.append(rtt)
        self._needless(pending)
        return True

    def _needless(self, pending: _Pending) -> None:
        """An answer came: the targets not asked yet are not asked this round; the round ends
        once every echo sent has answered."""
        pending.targets = pending.sent
        if pending.received == pending.targets:
            self._finish(pending)

    def _finish(self, pending: _Pending) -> None:
        if pending.done:
            return
        pending.done = True
        self._unfinished.pop(pending.number, None)
        if pending.timer is not None:
            pending.timer.cancel()
        for seq in pending.seqs:
            entry = self._out.pop(seq, None)
            if entry is None:
                continue  # answered
            if self._channel is not None:
                self._channel.forget(seq)
            st = self.stats[entry[0]]
            if st.last_error is None:
                st.last_error = "timeout"
        # the echoes sent, or (no device) those the round would have sent: all failed
        self.on_round(Round(sent=pending.sent or pending.targets, received=pending.received,
                            rtts_ms=tuple(pending.rtts)))


def _same_address(a: str, b: str) -> bool:
    """Two IPv6 addresses in text (inet_ntop's, usually ipaddress's too; a scope is ignored)."""
    try:
        return ipaddress.ip_address(a.split("%")[0]) == ipaddress.ip_address(b)
    except ValueError:
        return False

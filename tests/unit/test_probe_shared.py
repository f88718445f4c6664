"""The probers of every path share one raw socket per address family (bonding.icmp.Channel):
each echo names its path's interface and source address in sendmsg's ancillary data, and an
answer counts only for the path whose echo it answers, come in on that path's interface to its
address.  A fake socket records what is sent and hands over the answers (no root)."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, ClassVar

import pytest

from bonding import icmp
from bonding.core.health import Round
from bonding.periodic import Beat
from bonding.probe import PathProber

IFINDEX = {"wan1": 11, "wan2": 12}
Anc = list[tuple[int, int, bytes]]


class FakeRawSocket:
    """Records sendmsg; recvmsg hands over the queued answers, then would block.  Its fileno is
    a real descriptor (of a socketpair) so that the loop can watch it."""

    opened: ClassVar[list[FakeRawSocket]] = []

    def __init__(self, v6: bool) -> None:
        self.v6 = v6
        self.sent: list[tuple[bytes, Anc, tuple[str, int]]] = []
        self.inbox: list[tuple[bytes, Anc, int, tuple[str, int]]] = []
        self._pair = socket.socketpair()
        self.closed = False
        FakeRawSocket.opened.append(self)

    def fileno(self) -> int:
        return self._pair[0].fileno()

    def close(self) -> None:
        self.closed = True
        for s in self._pair:
            s.close()

    def sendmsg(self, buffers: Sequence[bytes], ancdata: Sequence[tuple[int, int, bytes]],
                flags: int, address: tuple[str, int]) -> int:
        self.sent.append((b"".join(buffers), list(ancdata), address))
        return sum(map(len, buffers))

    def recvmsg(self, bufsize: int, ancbufsize: int) -> tuple[bytes, Anc, int,
                                                              tuple[str, int]]:
        if not self.inbox:
            raise BlockingIOError
        return self.inbox.pop(0)

    def answer(self, i: int, *, ifindex: int | None = None, dst: str | None = None,
               src: str | None = None) -> None:
        """Queue the reply to the i-th echo sent, as the kernel would hand it over: come in on
        the interface and to the address the echo left by (unless told otherwise)."""
        pkt, anc, (target, _) = self.sent[i]
        ident, seq = struct.unpack("!HH", pkt[4:8])
        level, kind, data = anc[0]
        if self.v6:
            out_dst, out_if = data[:16], struct.unpack("@I", data[16:])[0]
        else:
            out_if, out_dst = struct.unpack("@i", data[:4])[0], data[4:8]
        family = socket.AF_INET6 if self.v6 else socket.AF_INET
        d = out_dst if dst is None else socket.inet_pton(family, dst)
        f = out_if if ifindex is None else ifindex
        info = (struct.pack("@16sI", d, f) if self.v6
                else struct.pack("@i4s4s", f, bytes(4), d))
        reply = struct.pack("!BBHHH", 129 if self.v6 else 0, 0, 0, ident, seq) + pkt[8:]
        if not self.v6:
            reply = bytes([0x45]) + bytes(11) + socket.inet_pton(family, src or target) \
                + d + reply
        self.inbox.append((reply, [(level, kind, info)], 0, (src or target, 0)))


@pytest.fixture(autouse=True)
def _devices(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeRawSocket.opened.clear()

    def index(name: str) -> int:
        if name not in IFINDEX:
            raise OSError(19, "No such device")
        return IFINDEX[name]
    monkeypatch.setattr(socket, "if_nametoindex", index)


def _run(body: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(body())


def _prober(channel: icmp.Channel, beat: Beat, device: str, source: str,
            targets: tuple[str, ...], rounds: list[Round], timeout: float = 0.2) -> PathProber:
    return PathProber(device=device, source=source, targets=targets, interval_s=beat.interval_s,
                      timeout_s=lambda: timeout, srtt_s=lambda: None, on_round=rounds.append,
                      channel=channel, beat=beat)


async def _one_path(v6: bool, device: str, source: str, targets: tuple[str, ...], *,
                    interval: float = 10.0,
                    timeout: float = 0.2) -> tuple[icmp.Channel, PathProber, list[Round]]:
    """A channel, a beat and one path's prober on them, started: its first round is out."""
    ch, beat = icmp.Channel(v6, FakeRawSocket), Beat(interval)
    rounds: list[Round] = []
    p = _prober(ch, beat, device, source, targets, rounds, timeout)
    p.start()
    await asyncio.sleep(0.01)
    return ch, p, rounds


def _pktinfo4(anc: Anc) -> tuple[int, str]:
    [(level, kind, data)] = anc
    assert (level, kind) == (socket.IPPROTO_IP, icmp.IP_PKTINFO)
    ifindex, spec_dst, _ = struct.unpack("@i4s4s", data)
    return ifindex, socket.inet_ntop(socket.AF_INET, spec_dst)


def test_every_path_sends_through_one_socket_naming_its_interface_and_source() -> None:
    async def body() -> None:
        ch, beat = icmp.Channel(False, FakeRawSocket), Beat(10.0)
        r1: list[Round] = []
        r2: list[Round] = []
        p1 = _prober(ch, beat, "wan1", "100.64.1.2", ("203.0.113.10",), r1)
        p2 = _prober(ch, beat, "wan2", "100.64.2.2", ("203.0.113.10",), r2)
        p1.start()
        p2.start()
        await asyncio.sleep(0.01)  # the first rounds: at once
        [sock] = FakeRawSocket.opened  # one socket for both paths
        assert [_pktinfo4(anc) for _, anc, _ in sock.sent] == [(11, "100.64.1.2"),
                                                                (12, "100.64.2.2")]
        assert [addr for _, _, addr in sock.sent] == [("203.0.113.10", 0)] * 2
        seqs = [struct.unpack("!H", pkt[6:8])[0] for pkt, _, _ in sock.sent]
        assert len(set(seqs)) == 2  # numbered by the channel: an answer names its echo
        sock.answer(1)
        sock.answer(0)
        ch._readable()
        assert [(r.sent, r.received) for r in r1 + r2] == [(1, 1), (1, 1)]
        p1.close()
        assert not sock.closed  # p2 still uses it
        p2.close()
        assert sock.closed  # the last prober closes it
    _run(body)


def test_ipv6_echoes_name_the_interface_and_source_in_in6_pktinfo() -> None:
    async def body() -> None:
        ch, p, rounds = await _one_path(True, "wan2", "2001:db8:2::2", ("2001:db8:ff::10",))
        [sock] = FakeRawSocket.opened
        [(pkt, [(level, kind, data)], addr)] = sock.sent
        assert pkt[0] == icmp.ICMP6_ECHO_REQUEST and addr == ("2001:db8:ff::10", 0)
        assert (level, kind) == (socket.IPPROTO_IPV6, socket.IPV6_PKTINFO)
        assert data == socket.inet_pton(socket.AF_INET6, "2001:db8:2::2") + struct.pack("@I", 12)
        sock.answer(0)
        ch._readable()
        assert [(r.sent, r.received) for r in rounds] == [(1, 1)]
        p.close()
    _run(body)


@pytest.mark.parametrize(("wrong", "kw"), [
    ("another interface", {"ifindex": 12}),
    ("another destination address", {"dst": "100.64.1.99"}),
    ("another sender than the target asked", {"src": "198.51.100.77"}),
])
def test_an_answer_counts_only_where_a_bound_socket_would_have_taken_it(
        wrong: str, kw: dict[str, Any]) -> None:
    async def body() -> None:
        ch, p, rounds = await _one_path(False, "wan1", "100.64.1.2", ("203.0.113.10",),
                                        timeout=0.05)
        [sock] = FakeRawSocket.opened
        sock.answer(0, **kw)  # wrong: not this path's answer
        ch._readable()
        assert rounds == [], wrong
        sock.answer(0)  # the real one still counts
        ch._readable()
        assert [(r.sent, r.received) for r in rounds] == [(1, 1)], wrong
        assert p.stats["203.0.113.10"].received == 1
        p.close()
    _run(body)


def test_a_missing_device_fails_the_round_and_is_looked_up_again_next_round() -> None:
    async def body() -> None:
        _, p, rounds = await _one_path(False, "wan9", "100.64.9.2",
                                       ("203.0.113.10", "198.51.100.10"), interval=0.05)
        assert [(r.sent, r.received) for r in rounds] == [(2, 0)]  # all its echoes failed
        assert {st.last_error for st in p.stats.values()} == {"socket: No such device"}
        IFINDEX["wan9"] = 19  # the device came (back)
        try:
            await asyncio.sleep(0.06)
            [sock] = FakeRawSocket.opened
            assert {_pktinfo4(anc)[0] for _, anc, _ in sock.sent} == {19}  # both targets
        finally:
            del IFINDEX["wan9"]
            p.close()
    _run(body)


def test_a_dead_first_target_makes_the_round_ask_the_next_with_one_timer() -> None:
    async def body() -> None:
        ch, p, rounds = await _one_path(False, "wan1", "100.64.1.2",
                                        ("203.0.113.10", "198.51.100.10"), interval=0.8)
        [sock] = FakeRawSocket.opened
        assert [addr[0] for _, _, addr in sock.sent] == ["203.0.113.10"]
        [pending] = p._unfinished.values()
        assert pending.timer is not None and not pending.timer_ends  # the next one's turn
        await asyncio.sleep(0.12)  # the stagger (a quarter interval per target: 0.1 s) passed
        assert [addr[0] for _, _, addr in sock.sent] == ["203.0.113.10", "198.51.100.10"]
        assert pending.timer_ends  # now the one timer waits for the round's end
        sock.answer(1)
        ch._readable()
        await asyncio.sleep(0.3)
        assert [(r.sent, r.received) for r in rounds] == [(2, 1)]
        assert p.stats["203.0.113.10"].last_error == "timeout"
        assert ch._waiting == {}  # nothing left waiting for the unanswered echo
        p.close()
    _run(body)


def test_closing_a_prober_forgets_its_echoes_and_reports_no_round() -> None:
    async def body() -> None:
        ch, beat = icmp.Channel(False, FakeRawSocket), Beat(10.0)
        rounds: list[Round] = []
        p = _prober(ch, beat, "wan1", "100.64.1.2", ("203.0.113.10",), rounds)
        q = _prober(ch, beat, "wan2", "100.64.2.2", ("203.0.113.10",), [])
        p.start()
        q.start()
        await asyncio.sleep(0.01)
        [sock] = FakeRawSocket.opened
        p.close()
        assert len(ch._waiting) == 1  # q's echo only
        sock.answer(0)
        ch._readable()
        await asyncio.sleep(0.3)
        assert rounds == []
        q.close()
    _run(body)


def test_the_shared_channel_and_beat_are_the_running_loops() -> None:
    async def body() -> None:
        assert icmp.Channel.shared(False) is icmp.Channel.shared(False)
        assert icmp.Channel.shared(False) is not icmp.Channel.shared(True)
        assert Beat.shared(0.15) is Beat.shared(0.15) is not Beat.shared(0.2)
    _run(body)

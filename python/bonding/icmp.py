"""ICMP echo on raw sockets: the messages, and `Channel`, one raw socket of one address family
shared by every path's prober (bonding.probe).

The sockets are bound to no device and no address: each sendmsg names the path's interface and
source address in its ancillary data (IP_PKTINFO, IPV6_PKTINFO), and each answer's own
IP_PKTINFO / IPV6_PKTINFO says on which interface and to which address it came.  ICMPv6: the
kernel fills in the checksum and hands over the messages without their IPv6 header.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
import time
from collections.abc import Callable, Sequence
from typing import ClassVar, Protocol

from bonding.periodic import PerLoop

log = logging.getLogger(__name__)

ICMP_ECHO_REPLY = 0
ICMP_ECHO_REQUEST = 8
ICMP6_ECHO_REQUEST = 128
ICMP6_ECHO_REPLY = 129
SOL_RAW = 255
ICMP_FILTER = 1
ICMP6_FILTER = 1  # at level IPPROTO_ICMPV6: struct icmp6_filter, a set bit blocks that type
IP_PKTINFO = 8  # <linux/in.h>; Python's socket module does not name it
PAYLOAD = b"bonding-probe\0\0\0"  # 16 bytes after the 8-byte send timestamp
READ_BATCH = 64  # answers read in one go at most, then the loop lets others run
ANCILLARY = socket.CMSG_SPACE(20)  # room for one in6_pktinfo (in_pktinfo is smaller)


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


_ECHO = struct.Struct("!BBHHHQ16s")  # type, code, checksum, ident, seq, stamp, PAYLOAD


def _words(data: bytes) -> int:
    """The sum of `data`'s 16-bit big-endian words (even length), not folded."""
    return sum(struct.unpack(f"!{len(data) // 2}H", data))


_PAYLOAD_SUM = _words(PAYLOAD)


def echo_request(ident: int, seq: int, stamp_ns: int, v6: bool = False) -> bytes:
    """An ICMP echo request; ICMPv6 with `v6` (its checksum left 0: the kernel computes it over
    the pseudo-header it alone knows).  The IPv4 checksum is summed from the fields (the payload's
    share is a constant): a request a round, on every path."""
    stamp_ns &= 0xFFFFFFFFFFFFFFFF
    if v6:
        return _ECHO.pack(ICMP6_ECHO_REQUEST, 0, 0, ident, seq, stamp_ns, PAYLOAD)
    total = ((ICMP_ECHO_REQUEST << 8) + ident + seq + (stamp_ns >> 48) + (stamp_ns >> 32 & 0xFFFF)
             + (stamp_ns >> 16 & 0xFFFF) + (stamp_ns & 0xFFFF) + _PAYLOAD_SUM)
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return _ECHO.pack(ICMP_ECHO_REQUEST, 0, ~total & 0xFFFF, ident, seq, stamp_ns, PAYLOAD)


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


def pktinfo(v6: bool, ifindex: int, source: bytes) -> tuple[int, int, bytes]:
    """The ancillary item that sends a datagram out of interface `ifindex` from the address
    `source` (4 or 16 bytes): struct in_pktinfo (its ipi_spec_dst) or struct in6_pktinfo."""
    if v6:
        return socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, struct.pack("@16sI", source, ifindex)
    return socket.IPPROTO_IP, IP_PKTINFO, struct.pack("@i4s4s", ifindex, source, bytes(4))


def arrival(v6: bool, ancillary: Sequence[tuple[int, int, bytes]]) -> tuple[int, bytes]:
    """(interface index, destination address) of a received datagram from its IP_PKTINFO or
    IPV6_PKTINFO item; (0, b"") when it has none."""
    for level, kind, data in ancillary:
        if v6 and level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO \
                and len(data) >= 20:
            return struct.unpack_from("@I", data, 16)[0], data[:16]
        if not v6 and level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(data) >= 12:
            return struct.unpack_from("@i", data)[0], data[8:12]  # ipi_addr: the header's
    return 0, b""


class Waiter(Protocol):
    """A prober, as its channel hands it the answers."""

    def answer(self, seq: int, src: str, ifindex: int, dst: bytes, now: float) -> bool: ...


class RawSocket(Protocol):
    """What a Channel needs of its socket (socket.socket; a fake in the unit tests)."""

    def fileno(self) -> int: ...
    def close(self) -> None: ...
    def sendmsg(self, buffers: Sequence[bytes], ancdata: Sequence[tuple[int, int, bytes]],
                flags: int, address: tuple[str, int]) -> int: ...
    def recvmsg(self, bufsize: int, ancbufsize: int) -> tuple[bytes, list[tuple[int, int, bytes]],
                                                              int, tuple[str, int]]: ...


def raw_socket(v6: bool) -> RawSocket:
    """A raw ICMP (ICMPv6 with `v6`) socket, bound to nothing, that lets only echo replies
    through and says where each came in (IP_PKTINFO / IPV6_RECVPKTINFO)."""
    family, proto = ((socket.AF_INET6, socket.IPPROTO_ICMPV6) if v6
                     else (socket.AF_INET, socket.IPPROTO_ICMP))
    s = socket.socket(family, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, proto)
    try:
        # Let only echo replies wake us up (a bit set = that type filtered out).
        if v6:
            s.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, icmp6_filter_only(ICMP6_ECHO_REPLY))
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
        else:
            s.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("I", ~(1 << ICMP_ECHO_REPLY)
                                                            & 0xFFFFFFFF))
            s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    except OSError:
        s.close()
        raise
    return s


class Channel:
    """One raw socket of one address family, shared by the probers of one loop.

    It numbers the echoes (one ICMP identifier, a sequence number per echo), sends each out of
    its prober's interface from its address, and hands each answer to the prober that waits for
    that number.  The socket is opened at the first echo and closed when the last prober
    detaches."""

    __slots__ = ("_open", "_seq", "_waiting", "ident", "loop", "sock", "users", "v6")
    _shared: ClassVar[PerLoop[Channel]] = PerLoop()

    def __init__(self, v6: bool, open_socket: Callable[[bool], RawSocket] = raw_socket) -> None:
        self.v6 = v6
        self.loop = asyncio.get_running_loop()
        self._open = open_socket
        self.sock: RawSocket | None = None
        self.ident = (os.getpid() * 31 + id(self)) & 0xFFFF
        self._seq = 0
        self._waiting: dict[int, Waiter] = {}  # echo seq → its prober
        self.users = 0

    @classmethod
    def shared(cls, v6: bool) -> Channel:
        """The running loop's channel of that family (made on first use)."""
        return cls._shared.get(v6, lambda: cls(v6))

    def attach(self) -> None:
        self.users += 1

    def detach(self) -> None:
        """A prober is done with the channel; the last one closes the socket."""
        self.users -= 1
        if self.users > 0:
            return
        self.close()
        Channel._shared.forget(self)

    def close(self) -> None:
        self._waiting.clear()
        if self.sock is not None:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None

    def send(self, prober: Waiter, target: str,
             ancillary: Sequence[tuple[int, int, bytes]]) -> int:
        """Send an echo to `target` as `ancillary` says (the prober's interface and address);
        its sequence number.  OSError when the socket cannot be opened or the send fails."""
        sock = self.sock
        if sock is None:
            sock = self.sock = self._open(self.v6)
            self.loop.add_reader(sock.fileno(), self._readable)
        self._seq = seq = (self._seq + 1) & 0xFFFF
        sock.sendmsg((echo_request(self.ident, seq, time.monotonic_ns(), self.v6),), ancillary,
                     0, (target, 0))
        self._waiting[seq] = prober
        return seq

    def forget(self, seq: int) -> None:
        """No answer to echo `seq` is awaited any more."""
        self._waiting.pop(seq, None)

    def _readable(self) -> None:
        sock = self.sock
        for _ in range(READ_BATCH):  # bounded: drain what is there, let others run
            if sock is None or self.sock is not sock:
                return
            try:
                data, anc, _, peer = sock.recvmsg(2048, ANCILLARY)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                log.debug("ICMP%s: recv: %s", "v6" if self.v6 else "", e)
                return
            now = time.monotonic()
            parsed = parse_echo_reply(data, self.v6)
            if parsed is None or parsed[0] != self.ident:
                continue
            prober = self._waiting.get(parsed[1])
            if prober is None:
                continue
            ifindex, dst = arrival(self.v6, anc)
            if prober.answer(parsed[1], peer[0], ifindex, dst, now):
                self._waiting.pop(parsed[1], None)

"""ICMP and ICMPv6 echo packets of the prober (bonding.icmp), as bytes (no root)."""

from __future__ import annotations

import socket
import struct

import pytest

from bonding import icmp


def test_ipv4_echo_request_has_a_valid_checksum() -> None:
    pkt = icmp.echo_request(0x1234, 7, 42)
    assert pkt[0] == icmp.ICMP_ECHO_REQUEST and struct.unpack("!HH", pkt[4:8]) == (0x1234, 7)
    assert icmp.checksum(pkt) == 0  # the checksum over the whole message sums to zero


def test_ipv6_echo_request_leaves_the_checksum_to_the_kernel() -> None:
    pkt = icmp.echo_request(0x1234, 7, 42, v6=True)
    assert pkt[0] == icmp.ICMP6_ECHO_REQUEST == 128
    assert pkt[2:4] == b"\0\0"  # the kernel fills it in (it alone knows the pseudo-header)
    assert struct.unpack("!HHQ", pkt[4:16]) == (0x1234, 7, 42)
    assert pkt[16:] == icmp.PAYLOAD


def reply6(ident: int, seq: int, kind: int = icmp.ICMP6_ECHO_REPLY) -> bytes:
    return struct.pack("!BBHHH", kind, 0, 0xBEEF, ident, seq) + b"x" * 24


# (id, packet, v6, what parse_echo_reply says)
PARSE_CASES: list[tuple[str, bytes, bool, tuple[int, int] | None]] = [
    ("IPv6 reply: no IPv6 header on a raw ICMPv6 socket", reply6(0x1234, 9), True, (0x1234, 9)),
    ("IPv6 echo request is not a reply", reply6(1, 2, icmp.ICMP6_ECHO_REQUEST), True, None),
    ("IPv6 destination unreachable", reply6(1, 2, 1), True, None),
    ("IPv6 too short", reply6(1, 2)[:7], True, None),
    ("IPv4 reply after a 20-byte header",
     bytes([0x45]) + b"\0" * 19 + struct.pack("!BBHHH", 0, 0, 0, 0x1234, 9), False, (0x1234, 9)),
    ("IPv4 reply after a header with options",
     bytes([0x46]) + b"\0" * 23 + struct.pack("!BBHHH", 0, 0, 0, 5, 6), False, (5, 6)),
    ("IPv4 too short for its header", bytes([0x45]) + b"\0" * 10, False, None),
]


@pytest.mark.parametrize(("packet", "v6", "want"), [c[1:] for c in PARSE_CASES],
                         ids=[c[0] for c in PARSE_CASES])
def test_parse_echo_reply(packet: bytes, v6: bool, want: tuple[int, int] | None) -> None:
    assert icmp.parse_echo_reply(packet, v6) == want


def test_icmp6_filter_lets_only_echo_replies_through() -> None:
    words = struct.unpack("8I", icmp.icmp6_filter_only(icmp.ICMP6_ECHO_REPLY))
    passed = [t for t in range(256) if not words[t >> 5] & (1 << (t & 31))]
    assert passed == [129]


@pytest.mark.parametrize(("ident", "seq", "stamp"), [
    (0, 0, 0), (0xFFFF, 0xFFFF, 2**64 - 1), (0x1234, 7, 42), (0xBEEF, 0x8000, 123456789012345),
    (1, 2, -1)])  # a stamp is sent as its 64 low bits
def test_the_summed_ipv4_checksum_is_the_one_over_the_bytes(ident: int, seq: int,
                                                              stamp: int) -> None:
    pkt = icmp.echo_request(ident, seq, stamp)
    assert icmp.checksum(pkt) == 0
    assert pkt[8:16] == struct.pack("!Q", stamp & (2**64 - 1)) and pkt[16:] == icmp.PAYLOAD


def test_pktinfo_names_the_interface_and_source_as_the_kernel_reads_them() -> None:
    level, kind, data = icmp.pktinfo(False, 7, bytes([100, 64, 1, 2]))
    assert (level, kind) == (socket.IPPROTO_IP, 8)  # IP_PKTINFO
    # struct in_pktinfo { int ipi_ifindex; struct in_addr ipi_spec_dst, ipi_addr; }
    assert data == struct.pack("@i", 7) + bytes([100, 64, 1, 2]) + bytes(4)
    src6 = socket.inet_pton(socket.AF_INET6, "2001:db8::2")
    level, kind, data = icmp.pktinfo(True, 9, src6)
    assert (level, kind) == (socket.IPPROTO_IPV6, socket.IPV6_PKTINFO)
    # struct in6_pktinfo { struct in6_addr ipi6_addr; unsigned int ipi6_ifindex; }
    assert data == src6 + struct.pack("@I", 9)


def test_arrival_reads_the_interface_and_destination_of_a_datagram() -> None:
    dst = bytes([100, 64, 1, 2])
    v4 = [(socket.IPPROTO_IP, 8, struct.pack("@i4s4s", 3, bytes(4), dst))]
    assert icmp.arrival(False, v4) == (3, dst)
    dst6 = socket.inet_pton(socket.AF_INET6, "2001:db8::2")
    v6 = [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, dst6 + struct.pack("@I", 5))]
    assert icmp.arrival(True, v6) == (5, dst6)
    assert icmp.arrival(False, []) == (0, b"")  # no pktinfo: matches no interface
    assert icmp.arrival(True, v4) == (0, b"")  # another family's item is not read as ours

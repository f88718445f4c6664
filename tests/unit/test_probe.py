"""ICMP and ICMPv6 echo packets of the prober (bonding.probe), as bytes (no root)."""

from __future__ import annotations

import struct

import pytest

from bonding import probe


def test_ipv4_echo_request_has_a_valid_checksum() -> None:
    pkt = probe.echo_request(0x1234, 7, 42)
    assert pkt[0] == probe.ICMP_ECHO_REQUEST and struct.unpack("!HH", pkt[4:8]) == (0x1234, 7)
    assert probe.checksum(pkt) == 0  # the checksum over the whole message sums to zero


def test_ipv6_echo_request_leaves_the_checksum_to_the_kernel() -> None:
    pkt = probe.echo_request(0x1234, 7, 42, v6=True)
    assert pkt[0] == probe.ICMP6_ECHO_REQUEST == 128
    assert pkt[2:4] == b"\0\0"  # the kernel fills it in (it alone knows the pseudo-header)
    assert struct.unpack("!HHQ", pkt[4:16]) == (0x1234, 7, 42)
    assert pkt[16:] == probe.PAYLOAD


def reply6(ident: int, seq: int, kind: int = probe.ICMP6_ECHO_REPLY) -> bytes:
    return struct.pack("!BBHHH", kind, 0, 0xBEEF, ident, seq) + b"x" * 24


# (id, packet, v6, what parse_echo_reply says)
PARSE_CASES: list[tuple[str, bytes, bool, tuple[int, int] | None]] = [
    ("IPv6 reply: no IPv6 header on a raw ICMPv6 socket", reply6(0x1234, 9), True, (0x1234, 9)),
    ("IPv6 echo request is not a reply", reply6(1, 2, probe.ICMP6_ECHO_REQUEST), True, None),
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
    assert probe.parse_echo_reply(packet, v6) == want


def test_icmp6_filter_lets_only_echo_replies_through() -> None:
    words = struct.unpack("8I", probe.icmp6_filter_only(probe.ICMP6_ECHO_REPLY))
    passed = [t for t in range(256) if not words[t >> 5] & (1 << (t & 31))]
    assert passed == [129]

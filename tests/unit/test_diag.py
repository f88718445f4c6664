"""sock_diag codec: the dump request and the ULP name of a subflow."""

from __future__ import annotations

import socket

import pytest

from bonding.netlink import diag
from bonding.netlink.core import nla, nla_nest, nla_str


def msg(family: int, src: str, ulp: str | None) -> bytes:
    raw = socket.inet_pton(family, src).ljust(16, b"\0")
    head = diag.DIAG_MSG.pack(family, 1, 0, 0, 40000, 65101, raw, b"\0" * 16, 3, b"\0" * 8,
                              0, 0, 0, 0, 12345)
    attrs = nla(diag.INET_DIAG_INFO, b"\0" * 232)
    if ulp is not None:
        attrs += nla_nest(diag.INET_DIAG_ULP_INFO, [nla_str(diag.INET_ULP_INFO_NAME, ulp)])
    return head + attrs


def test_request_asks_for_established_ipv4_tcp_with_info() -> None:
    req = diag.request()
    fam, proto, ext, states = req[0], req[1], req[2], int.from_bytes(req[4:8], "little")
    assert (fam, proto) == (socket.AF_INET, socket.IPPROTO_TCP)
    assert ext == 1 << (diag.INET_DIAG_INFO - 1)  # without it the kernel omits the ULP
    assert states == 1 << diag.TCP_ESTABLISHED
    assert len(req) == 56  # sizeof(struct inet_diag_req_v2)
    assert diag.request(family=socket.AF_INET6)[0] == socket.AF_INET6


def test_parse_names_the_local_address_and_ulp() -> None:
    assert diag.DIAG_MSG.size == 72  # sizeof(struct inet_diag_msg)
    assert diag.parse(msg(socket.AF_INET, "100.64.1.2", "mptcp")) == ("100.64.1.2", "mptcp")
    assert diag.parse(msg(socket.AF_INET, "192.0.2.1", None)) == ("192.0.2.1", None)
    assert diag.parse(msg(socket.AF_INET6, "2001:db8:0:1::2", "mptcp")) == (
        "2001:db8:0:1::2", "mptcp")  # the same text as the kernel's addresses (ipaddress)
    unix = diag.DIAG_MSG.pack(socket.AF_UNIX, 1, 0, 0, 0, 0, b"", b"", 0, b"", 0, 0, 0, 0, 0)
    assert diag.parse(unix) is None
    with pytest.raises(ValueError):
        diag.parse(b"\0" * 10)

"""Parts of the netlink package that need no root: reading what is ready, rule requests."""

from __future__ import annotations

import errno
from typing import Any, cast

import pytest

from bonding.netlink import rtnl
from bonding.netlink.core import NetlinkClient, NetlinkError, NetlinkSocket


class FakeSocket:
    """recv_datagram's answers in order: bytes, or an exception to raise."""

    def __init__(self, answers: list[bytes | OSError]) -> None:
        self.answers = list(answers)

    def recv_datagram(self) -> bytes:
        answer = self.answers.pop(0)
        if isinstance(answer, OSError):
            raise answer
        return answer


ENOBUFS = OSError(errno.ENOBUFS, "overrun")


@pytest.mark.parametrize(
    ("answers", "limit", "want"),
    [
        ([BlockingIOError()], 8, []),
        ([b"a", b"b", BlockingIOError()], 8, [b"a", b"b"]),
        ([b"a", ENOBUFS, b"b", BlockingIOError()], 8, [b"a", None, b"b"]),
        ([b"a", b"b", b"c"], 2, [b"a", b"b"]),  # bounded
    ],
)
def test_recv_ready(answers: list[bytes | OSError], limit: int, want: list[bytes | None]) -> None:
    fake = FakeSocket(answers)
    got = list(NetlinkSocket.recv_ready(cast(NetlinkSocket, fake), limit))
    assert got == want


def test_recv_ready_passes_other_errors() -> None:
    fake = FakeSocket([OSError(errno.EBADF, "closed")])
    with pytest.raises(OSError, match="closed"):
        list(NetlinkSocket.recv_ready(cast(NetlinkSocket, fake), 4))


class FakeNl:
    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.sent: list[tuple[int, int, bytes, str]] = []
        self.closed = False

    def request(self, msg_type: int, flags: int, payload: bytes, operation: str) -> list[Any]:
        self.sent.append((msg_type, flags, payload, operation))
        if self.fail:
            raise NetlinkError(self.fail, operation)
        return []

    def fileno(self) -> int:
        return 7

    def close(self) -> None:
        self.closed = True


def fake_rtnl(fail: int = 0) -> tuple[rtnl.Rtnl, FakeNl]:
    r = rtnl.Rtnl.__new__(rtnl.Rtnl)
    nl = FakeNl(fail)
    r.nl = cast(NetlinkSocket, nl)
    return r, nl


def test_netlink_client_closes_its_socket() -> None:
    r, nl = fake_rtnl()
    assert isinstance(r, NetlinkClient)
    with r as same:
        assert same is r and r.fileno() == 7
    assert nl.closed


def test_rule_add_and_del_encode_the_same_selectors() -> None:
    r, nl = fake_rtnl()
    r.rule_add(101, 100, "198.51.100.0", 24, iif="lo", fwmark=0x10, fwmask=0xF0, protocol=4)
    r.rule_del(101, 100, "198.51.100.0", 24, iif="lo", fwmark=0x10, fwmask=0xF0)
    (add_t, add_f, add_p, add_op), (del_t, del_f, del_p, del_op) = nl.sent
    assert (add_t, add_f, del_t, del_f) == (rtnl.RTM_NEWRULE, rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL,
                                            rtnl.RTM_DELRULE, 0)
    assert add_p == rtnl.encode_rule(101, 100, src="198.51.100.0", src_len=24, iif="lo",
                                     fwmark=0x10, fwmask=0xF0, protocol=4)  # fmt: skip
    assert del_p == rtnl.encode_rule(101, 100, src="198.51.100.0", src_len=24, iif="lo",
                                     fwmark=0x10, fwmask=0xF0)  # fmt: skip
    assert (add_op, del_op) == ("add rule 101 table 100", "delete rule 101 table 100")


@pytest.mark.parametrize(
    ("call", "fail", "raises"),
    [
        ("add", errno.EEXIST, True),
        ("add_ok", errno.EEXIST, False),
        ("add_ok", errno.EPERM, True),
        ("del", errno.ENOENT, True),
        ("del_ok", errno.ENOENT, False),
        ("del_ok", errno.EEXIST, True),
    ],
)
def test_rule_requests_tolerate_only_their_errno(call: str, fail: int, raises: bool) -> None:
    r, _ = fake_rtnl(fail)
    calls = {
        "add": lambda: r.rule_add(90, 254, suppress_prefixlength=0),
        "add_ok": lambda: r.rule_add(90, 254, exist_ok=True),
        "del": lambda: r.rule_del(90, 254, family=rtnl.AF_INET6),
        "del_ok": lambda: r.rule_del(90, 254, missing_ok=True),
    }
    if raises:
        with pytest.raises(NetlinkError) as info:
            calls[call]()
        assert info.value.errno == fail
    else:
        calls[call]()

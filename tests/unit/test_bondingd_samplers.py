"""Samplers (bonding.bondingd.samplers): byte counters and rates from a reader callable (and the
sysfs reader over a directory laid out like /sys/class/net), MPTCP subflow counts from a
source (a fake one, and the real SubflowCounter over a fake sock_diag socket)."""

from __future__ import annotations

import errno
import logging
import socket
from collections import Counter
from pathlib import Path
from typing import Any, cast

import pytest

from bonding.bondingd.runtime import PathRuntime
from bonding.bondingd.samplers import SubflowSampler, sample_counters, sysfs_counters
from bonding.config import PathConfig
from bonding.netlink import core, diag
from bonding.netlink.core import Message, NetlinkError, NetlinkSocket

# --- counters ----------------------------------------------------------------------------------


def test_sysfs_counters(tmp_path: Path) -> None:
    stats = tmp_path / "wan1" / "statistics"
    stats.mkdir(parents=True)
    (stats / "rx_bytes").write_text("123456789\n")
    (stats / "tx_bytes").write_text("42\n")
    assert sysfs_counters("wan1", tmp_path) == (123456789, 42)
    assert sysfs_counters("nope", tmp_path) is None  # no such device
    (stats / "tx_bytes").write_text("")  # a device going away mid-read
    assert sysfs_counters("wan1", tmp_path) is None


def rt(device: str | None = "wan1") -> PathRuntime:
    return PathRuntime(cfg=PathConfig(name="wan"), index=0, device=device)


# (id, readings at t=10 and t=12 (None: unreadable), the rates after the second, counters)
CASES: list[tuple[str, tuple[int, int] | None, tuple[int, int] | None, tuple[float, float],
                  tuple[float, int, int] | None]] = [
    ("bytes over 2 s as bit/s", (1000, 2000), (3000, 2500), (8000.0, 2000.0), (12.0, 3000, 2500)),
    ("nothing moved", (1000, 2000), (1000, 2000), (0.0, 0.0), (12.0, 1000, 2000)),
    ("a counter reset (device re-created): no negative rate", (5000, 5000), (100, 6000),
     (0.0, 4000.0), (12.0, 100, 6000)),
    ("unreadable now: no counters, the last rates stay", (1000, 2000), None, (0.0, 0.0), None),
]


@pytest.mark.parametrize(("first", "second", "rates", "counters"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_sample_counters(first: tuple[int, int] | None, second: tuple[int, int] | None,
                         rates: tuple[float, float],
                         counters: tuple[float, int, int] | None) -> None:
    p = rt()
    sample_counters([p], 10.0, lambda _dev: first)
    assert p.counters == (None if first is None else (10.0, *first))
    assert (p.rx_bps, p.tx_bps) == (0.0, 0.0)  # one reading: no rate yet
    sample_counters([p], 12.0, lambda _dev: second)
    assert (p.rx_bps, p.tx_bps) == rates and p.counters == counters


def test_after_an_unreadable_sample_the_rate_starts_again() -> None:
    p = rt()
    sample_counters([p], 10.0, lambda _: (0, 0))
    sample_counters([p], 11.0, lambda _: None)
    sample_counters([p], 12.0, lambda _: (1000, 1000))
    assert p.counters == (12.0, 1000, 1000) and (p.rx_bps, p.tx_bps) == (0.0, 0.0)
    sample_counters([p], 13.0, lambda _: (2000, 1500))
    assert (p.rx_bps, p.tx_bps) == (8000.0, 4000.0)


def test_no_time_passed_no_new_rate() -> None:
    p = rt()
    sample_counters([p], 10.0, lambda _: (0, 0))
    sample_counters([p], 11.0, lambda _: (1000, 0))
    sample_counters([p], 11.0, lambda _: (9000, 0))  # the same instant: no division by zero
    assert p.rx_bps == 8000.0 and p.counters == (11.0, 9000, 0)


def test_each_path_is_read_by_its_device_and_one_without_is_not_read() -> None:
    asked: list[str] = []

    def read(dev: str) -> tuple[int, int]:
        asked.append(dev)
        return (1, 2)

    a, b, c = rt("wan1"), rt(None), rt("wwan0")
    b.counters = (1.0, 5, 5)
    sample_counters([a, b, c], 5.0, read)
    assert asked == ["wan1", "wwan0"]
    assert b.counters is None and a.counters == c.counters == (5.0, 1, 2)


# --- subflows ------------------------------------------------------------------------------------


class Source:
    """samplers.SubflowSource: answers from a script (a Counter, or an error to raise)."""

    def __init__(self, script: list[Counter[str] | Exception]) -> None:
        self.script = script
        self.dumps = 0
        self.closed = False

    def dump(self) -> list[diag.Subflow]:
        self.dumps += 1
        got = self.script.pop(0)
        if isinstance(got, Exception):
            raise got
        return [diag.Subflow(a) for a in got.elements()]

    def close(self) -> None:
        self.closed = True


def test_subflows_are_dumped_every_refresh_and_changes_said() -> None:
    src = Source([Counter({"100.64.1.2": 2}), Counter({"100.64.1.2": 2}),
                  Counter({"100.64.1.2": 1, "2001:db8:64:1::2": 1})])
    s = SubflowSampler(lambda: src, refresh_s=2.0)
    assert s.counts is None
    assert s.sample(100.0) is True and s.counts == Counter({"100.64.1.2": 2})
    assert s.sample(101.0) is False and src.dumps == 1  # not yet
    assert s.sample(102.0) is False and src.dumps == 2  # the same counts
    assert s.sample(104.5) is True and s.counts == Counter({"100.64.1.2": 1,
                                                            "2001:db8:64:1::2": 1})


def test_a_failed_dump_makes_the_counts_unknown_and_is_logged_once(
        caplog: pytest.LogCaptureFixture) -> None:
    src = Source([Counter({"100.64.1.2": 2}), NetlinkError(errno.ENOBUFS, "sock_diag dump"),
                  NetlinkError(errno.ENOBUFS, "sock_diag dump"), Counter()])
    s = SubflowSampler(lambda: src, refresh_s=1.0)
    s.sample(0.0)
    with caplog.at_level(logging.WARNING, "bondingd"):
        assert s.sample(1.0) is True and s.counts is None  # known → unknown: a change
        assert s.sample(2.0) is False and s.counts is None
    assert caplog.text.count("counting MPTCP subflows") == 1
    assert s.sample(3.0) is True and s.counts == Counter()  # none, and known again


def test_a_source_that_cannot_be_opened_is_tried_again() -> None:
    opened: list[Source] = []

    def open_source() -> Source:
        if not opened:
            opened.append(Source([]))
            raise OSError(errno.EPROTONOSUPPORT, "Protocol not supported")
        src = Source([Counter({"10.1.2.3": 1})])
        opened.append(src)
        return src

    s = SubflowSampler(open_source, refresh_s=1.0)
    assert s.sample(0.0) is False and s.source is None and s.counts is None
    assert s.sample(1.0) is True and s.counts == Counter({"10.1.2.3": 1})
    s.close()
    assert opened[-1].closed


class FakeDiagSocket:
    """The kernel's side of a sock_diag dump: per family, the inet_diag_msg payloads."""

    def __init__(self, by_family: dict[int, list[bytes]]) -> None:
        self.by_family = by_family
        self.requests: list[bytes] = []

    def request(self, msg_type: int, flags: int, payload: bytes, operation: str) -> list[Any]:
        self.requests.append(payload)
        family = payload[0]
        return [Message(msg_type, 0, 0, 0, p) for p in self.by_family.get(family, [])]

    def close(self) -> None:
        pass


def diag_msg(family: int, src: str, ulp: str | None) -> bytes:
    """An inet_diag_msg of an established TCP socket (struct layout from bonding.netlink.diag),
    with the ULP name in INET_DIAG_ULP_INFO as the kernel sends it for an MPTCP subflow."""
    packed = socket.inet_pton(family, src).ljust(16, b"\0")
    msg = diag.DIAG_MSG.pack(family, diag.TCP_ESTABLISHED, 0, 0, 40000, 443, packed,
                             b"\0" * 16, 3, b"\0" * 8, 0, 0, 0, 0, 12345)
    if ulp is not None:
        msg += core.nla_nest(diag.INET_DIAG_ULP_INFO, [core.nla_str(diag.INET_ULP_INFO_NAME, ulp)])
    return msg


def test_the_real_subflow_counter_as_the_samplers_source() -> None:
    fake = FakeDiagSocket({
        socket.AF_INET: [diag_msg(socket.AF_INET, "100.64.1.2", "mptcp"),
                         diag_msg(socket.AF_INET, "100.64.1.2", "mptcp"),
                         diag_msg(socket.AF_INET, "100.64.2.2", "mptcp"),
                         diag_msg(socket.AF_INET, "192.168.1.1", None)],  # plain TCP
        socket.AF_INET6: [diag_msg(socket.AF_INET6, "2001:db8:64:1::2", "mptcp"),
                          diag_msg(socket.AF_INET6, "2001:db8:64:1::3", "tls")],
    })

    def open_source() -> diag.SubflowCounter:
        c = diag.SubflowCounter.__new__(diag.SubflowCounter)
        c.nl = cast(NetlinkSocket, fake)
        return c

    s = SubflowSampler(open_source)
    assert s.sample(0.0) is True
    assert s.counts == Counter({"100.64.1.2": 2, "100.64.2.2": 1, "2001:db8:64:1::2": 1})
    assert [r[0] for r in fake.requests] == [socket.AF_INET, socket.AF_INET6]


def test_a_subflow_dump_says_each_subflows_connection_and_whether_it_joined() -> None:
    """The token and the MP_JOIN flag come from the MPTCP part of INET_DIAG_ULP_INFO
    (linux/mptcp.h: MPTCP_SUBFLOW_ATTR_TOKEN_LOC, _FLAGS with MPTCP_SUBFLOW_FLAG_JOIN_LOC)."""
    def sub(src: str, token: int, flags: int) -> bytes:
        base = diag_msg(socket.AF_INET, src, None)
        return base + core.nla_nest(diag.INET_DIAG_ULP_INFO, [
            core.nla_str(diag.INET_ULP_INFO_NAME, "mptcp"),
            core.nla_nest(diag.INET_ULP_INFO_MPTCP, [
                core.nla_u32(diag.MPTCP_SUBFLOW_ATTR_TOKEN_LOC, token),
                core.nla_u32(diag.MPTCP_SUBFLOW_ATTR_FLAGS, flags)])])

    fake = FakeDiagSocket({socket.AF_INET: [
        sub("100.64.1.2", 0xAB, 0x2 | 0x40 | 0x80),  # MCAP_LOC: the connection's first
        sub("100.64.2.2", 0xAB, 0x8 | 0x40 | 0x80),  # JOIN_LOC: joined over 100.64.2.2
        diag_msg(socket.AF_INET, "100.64.3.2", "mptcp")]})  # no MPTCP info: nothing known
    c = diag.SubflowCounter.__new__(diag.SubflowCounter)
    c.nl = cast(NetlinkSocket, fake)
    assert c.dump() == [diag.Subflow("100.64.1.2", 0xAB, False),
                        diag.Subflow("100.64.2.2", 0xAB, True), diag.Subflow("100.64.3.2")]
    assert c.by_address() == Counter({"100.64.1.2": 1, "100.64.2.2": 1, "100.64.3.2": 1})

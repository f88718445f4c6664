"""Realtime UDP (bonding.config.realtime, bonding.dataplane.realtime): the options, the path it
takes, the nft text of table inet bonding_realtime, and the conntrack flush when it moves."""

from __future__ import annotations

import struct
from dataclasses import replace

import pytest

from bonding import config, uci
from bonding.config import Config, Globals, Severity
from bonding.config import realtime as rtc
from bonding.core.health import State
from bonding.core.plan import PathView, PinMarks
from bonding.dataplane import realtime
from bonding.netlink import conntrack


def parse(opts: dict[str, str | tuple[str, ...]]) -> tuple[Config, list[str]]:
    pkg = uci.Package("bonding", (uci.Section("globals", "globals", opts),))
    cfg, problems = config.from_sections(pkg.sections)
    return cfg, [f"{p.option}={p.value}: {p.message}" for p in problems
                 if p.severity is Severity.ERROR]


@pytest.mark.parametrize(("option", "raw", "want"), [
    ("realtime_dscp", "EF", ("ef",)),
    ("realtime_dscp", ("cs4", "46"), ("cs4", "46")),
    ("realtime_port", ("5060", "10000-20000"), ("5060", "10000-20000")),
    ("realtime_port", "7078-7078", ("7078",)),
    ("realtime_device", ("AA-BB-CC-DD-EE-01", "192.168.1.20", "192.168.2.0/24"),
     ("aa:bb:cc:dd:ee:01", "192.168.1.20", "192.168.2.0/24")),
])
def test_options_are_read(option: str, raw: str | tuple[str, ...],
                          want: tuple[str, ...]) -> None:
    cfg, errs = parse({"realtime": "1", option: raw})
    assert errs == []
    field = {"realtime_port": "realtime_ports", "realtime_device": "realtime_devices"}.get(
        option, option)
    assert cfg.globals.realtime and getattr(cfg.globals, field) == want


@pytest.mark.parametrize(("option", "raw", "says"), [
    ("realtime_dscp", "voice", "not a DSCP class"),
    ("realtime_dscp", "64", "not a DSCP class"),
    ("realtime_port", "sip", "not a UDP port or a range"),
    ("realtime_port", "20000-10000", "out of range"),
    ("realtime_port", "0", "out of range"),
    ("realtime_device", "2001:db8::1", "realtime steering is IPv4"),
    ("realtime_device", "phone", "not a MAC or IPv4 address"),
    ("shaping_pct", "40", "50"),
])
def test_bad_values_are_named(option: str, raw: str, says: str) -> None:
    _, errs = parse({option: raw})
    assert len(errs) == 1 and errs[0].startswith(f"{option}={raw}: ") and says in errs[0]


def test_defaults_cover_voice_calls_and_games() -> None:
    g = Globals()
    assert not g.realtime and not g.shaping
    assert g.realtime_dscp == ("ef", "cs4", "cs5", "af41", "af42", "af43")
    for p in ("5060-5061", "3478-3481", "10000-20000", "16384-32767", "3074"):
        assert p in g.realtime_ports
    assert all(rtc.port(p) == p for p in g.realtime_ports)


def view(i: int, rtt: float | None, state: State = State.UP, *, backup: bool = False,
         address: str | None = "auto") -> PathView:
    return PathView(name=f"wan{i + 1}", index=i, device=f"wan{i + 1}", ifindex=10 + i,
                    address=f"100.64.{i + 1}.2" if address == "auto" else address,
                    gateway=f"100.64.{i + 1}.1", state=state, link_ok=True, backup=backup,
                    rtt_ms=rtt)


@pytest.mark.parametrize(("views", "want"), [
    ([view(0, 40.0), view(1, 20.0), view(2, 80.0)], "wan2"),
    ([view(0, 40.0), view(1, 20.0, State.DOWN), view(2, 80.0)], "wan1"),
    ([view(0, 40.0), view(1, 20.0, State.DEGRADED, backup=True)], "wan1"),  # degraded: not it
    ([view(0, 40.0, State.DOWN), view(1, 20.0, backup=True)], "wan2"),  # only a backup is live
    ([view(0, None), view(1, 90.0)], "wan2"),  # measured first
    ([view(0, None), view(1, None)], "wan1"),  # file order
    ([view(0, 10.0, address=None), view(1, 90.0)], "wan2"),  # no IPv4 address: not it
    ([view(0, 10.0, State.DOWN), view(1, 9.0, State.DISABLED)], None),
])
def test_the_live_path_with_the_lowest_rtt_is_chosen(views: list[PathView],
                                                     want: str | None) -> None:
    assert realtime.choose(views).name == want


G = Globals(lan_devices=("lan0",), realtime=True, realtime_devices=("aa:bb:cc:dd:ee:01",
                                                                    "192.168.1.20"))


def _chain(text: str, name: str) -> list[str]:
    lines = [ln.strip() for ln in text.split(f"\tchain {name} {{\n", 1)[1].splitlines()]
    return lines[:lines.index("}")]


def test_the_table_marks_realtime_udp_for_the_chosen_path() -> None:
    cfg = Config(globals=replace(G, bypass=("10.0.0.0/8",)))
    rs = realtime.build(cfg, realtime.choose([view(0, 40.0), view(1, 20.0)]))
    text = rs.render()
    assert _chain(text, "prerouting") == [
        'iifname { "lan0" } meta nfproto ipv4 meta l4proto udp jump lan']
    lan = _chain(text, "lan")
    assert lan[:3] == ["ct direction reply return",
                       "fib daddr type { local, broadcast, anycast, multicast } return",
                       "ip daddr { 10.0.0.0/8 } return"]
    assert "ip dscp { ef, cs4, cs5, af41, af42, af43 } goto steer" in lan
    assert any(ln.startswith("udp dport { 5060-5061, 3478-3481") for ln in lan)
    assert any(ln.startswith("udp sport { 5060-5061") for ln in lan)
    assert "ether saddr { aa:bb:cc:dd:ee:01 } goto steer" in lan
    assert "ip saddr { 192.168.1.20 } goto steer" in lan
    marks = PinMarks.above(G.tproxy_mask)
    assert _chain(text, "steer") == [
        f"meta mark set meta mark & 0xffff81ff | {marks.path(1) | 0x8000:#010x} "
        f"ct mark set ct mark | {realtime.realtime_bit(marks):#010x} accept"]
    assert realtime.realtime_bit(marks) == 0x8000 and not 0x8000 & marks.mask


def test_no_live_path_marks_nothing() -> None:
    text = realtime.build(Config(globals=G), realtime.choose([])).render()
    assert _chain(text, "steer") == ["# no live path: realtime is bonded"]


class FakeNft:
    def __init__(self) -> None:
        self.applied: str | None = None
        self.loads: list[str] = []
        self.removed = 0

    def apply(self, ruleset: realtime.RealtimeRuleset) -> bool:
        text = ruleset.render()
        if text == self.applied:
            return False
        self.applied = text
        self.loads.append(text)
        return True

    def remove(self) -> None:
        self.applied = None
        self.removed += 1


class FakeConntrack:
    def __init__(self) -> None:
        self.flushed: list[tuple[int, int]] = []

    def flush_mark(self, mark: int, mask: int) -> None:
        self.flushed.append((mark, mask))


def test_moving_forgets_the_flows_nat_and_status_says_why() -> None:
    table, ct = FakeNft(), FakeConntrack()
    rt = realtime.Realtime(table, ct)  # type: ignore[arg-type]
    cfg = Config(globals=G)
    rt.apply(cfg, [view(0, 40.0), view(1, 20.0)])
    assert rt.status() == {"path": "wan2", "why": "wan2: RTT 20 ms, the lowest of 2 live paths"}
    assert ct.flushed == []  # first choice: nothing was steered before
    rt.apply(cfg, [view(0, 40.0), view(1, 21.0)])  # same path: nothing to forget
    assert ct.flushed == [] and len(table.loads) == 1
    rt.apply(cfg, [view(0, 40.0), view(1, 20.0, State.DOWN)])
    assert rt.status() == {"path": "wan1", "why": "wan1: RTT 40 ms"}
    assert ct.flushed == [(0x8000, 0x8000)] and len(table.loads) == 2
    rt.apply(Config(globals=replace(G, realtime=False)), [view(0, 40.0)])
    assert rt.status() is None and table.applied is None and table.removed == 1


def test_the_flush_request_is_ctnetlinks_delete_by_mark() -> None:
    msg_type, payload = conntrack.flush_request(0x8000, 0x8000)
    assert msg_type == (1 << 8) | 2  # NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_DELETE
    assert payload[:4] == bytes([2, 0, 0, 0])  # AF_INET, version 0
    assert payload[4:] == (struct.pack("=HH", 8, 8) + struct.pack("!I", 0x8000)
                           + struct.pack("=HH", 8, 21) + struct.pack("!I", 0x8000))

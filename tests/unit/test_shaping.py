"""Shaping (bonding.dataplane.shaping): the tc commands planned per path, cake or htb, and the
Shaper keeping them as the config says."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bonding.config import Config, Globals, PathConfig
from bonding.core.health import State
from bonding.core.plan import PathView
from bonding.dataplane import shaping
from bonding.dataplane.shaping import LinkShape, ShapingError, plan_link, wanted

LINK = LinkShape("wan1", "eth1", "bifb0", 47500, 95000)


def test_htb_upload_has_a_strict_priority_realtime_class_for_the_mark_and_icmp() -> None:
    cmds = [" ".join(c) for c in plan_link(replace(LINK, down_kbit=None), 0x8000, (), False)]
    assert cmds == [
        "tc qdisc replace dev eth1 root handle 1: htb default 20",
        "tc class replace dev eth1 parent 1: classid 1:1 htb rate 47500kbit ceil 47500kbit "
        "quantum 1514",
        "tc class replace dev eth1 parent 1:1 classid 1:10 htb rate 14250kbit ceil 47500kbit "
        "prio 0 quantum 1514",
        "tc class replace dev eth1 parent 1:1 classid 1:20 htb rate 33250kbit ceil 47500kbit "
        "prio 1 quantum 1514",
        "tc qdisc replace dev eth1 parent 1:10 handle 10: pfifo limit 100",
        "tc qdisc replace dev eth1 parent 1:20 handle 20: pfifo limit 196",
        "tc filter replace dev eth1 parent 1: protocol ip prio 1 u32 match mark 0x8000 0x8000 "
        "flowid 1:10",
        "tc filter replace dev eth1 parent 1: protocol ip prio 2 u32 match ip protocol 1 0xff "
        "flowid 1:10",
    ]


def test_htb_download_goes_through_an_ifb_where_udp_not_from_a_server_is_realtime() -> None:
    cmds = [" ".join(c) for c in plan_link(replace(LINK, up_kbit=None), 0x8000,
                                           ("203.0.113.10", "2001:db8::10"), False)]
    assert cmds[:4] == [
        "ip link add bifb0 type ifb", "ip link set bifb0 up",
        "tc qdisc replace dev eth1 handle ffff: ingress",
        "tc filter replace dev eth1 parent ffff: protocol all prio 1 u32 match u32 0 0 "
        "action mirred egress redirect dev bifb0"]
    assert cmds[4] == "tc qdisc replace dev bifb0 root handle 1: htb default 20"
    ifb = [c.split(" u32 ", 1)[1] for c in cmds if c.startswith("tc filter replace dev bifb0")]
    assert ifb == [
        "match ip protocol 1 0xff flowid 1:10",
        "match ip src 203.0.113.10/32 flowid 1:20",  # bonded: bulk (IPv6 servers: default)
        "match ip protocol 17 0xff flowid 1:10"]


def test_cake_where_the_kernel_has_it() -> None:
    cmds = [" ".join(c) for c in plan_link(LINK, 0x8000, (), True)]
    assert cmds[0] == "tc qdisc replace dev eth1 root cake bandwidth 47500kbit diffserv4 nat"
    assert cmds[-1] == ("tc qdisc replace dev bifb0 root cake bandwidth 95000kbit diffserv4 "
                        "nat ingress")


def view(i: int, device: str | None = "auto") -> PathView:
    return PathView(name=f"wan{i + 1}", index=i, device=f"eth{i + 1}" if device == "auto"
                    else device, ifindex=10 + i, address=f"100.64.{i + 1}.2", gateway=None,
                    state=State.UP, link_ok=True, backup=False)


PATHS = (PathConfig("wan1", device="eth1", upload_kbit=50000, download_kbit=100000),
         PathConfig("wan2", device="eth2", upload_kbit=20000),
         PathConfig("wan3", device="eth3"))


@pytest.mark.parametrize(("g", "views", "want"), [
    (Globals(shaping=True), [view(0), view(1), view(2)],
     {"wan1": LinkShape("wan1", "eth1", "bifb0", 47500, 95000),
      "wan2": LinkShape("wan2", "eth2", "bifb1", 19000, None)}),  # wan3: no rate declared
    (Globals(shaping=True, shaping_pct=90), [view(0)],
     {"wan1": LinkShape("wan1", "eth1", "bifb0", 45000, 90000)}),
    (Globals(shaping=True), [view(0, device=None)], {}),  # no device yet
    (Globals(shaping=False), [view(0)], {}),
    (Globals(shaping=True, enabled=False), [view(0)], {}),
])
def test_what_is_shaped(g: Globals, views: list[PathView], want: dict[str, LinkShape]) -> None:
    assert wanted(Config(globals=g, paths=PATHS), views) == want


class FakeRunner:
    def __init__(self, cake: bool = False, fail: str = "") -> None:
        self.ran: list[str] = []
        self.cake = cake
        self.fail = fail

    def run(self, argv: tuple[str, ...]) -> None:
        line = " ".join(argv)
        self.ran.append(line)
        if (" cake " in line and not self.cake) or (self.fail and self.fail in line):
            raise ShapingError(f"{line}: failed")


def test_the_shaper_tries_cake_once_then_htb_and_follows_the_config() -> None:
    r = FakeRunner()
    s = shaping.Shaper(r)
    cfg = Config(globals=Globals(shaping=True), paths=PATHS[:1])
    s.apply(cfg, [view(0)], 0x8000)
    assert s.status() == {"wan1": {"upload_kbit": 47500, "download_kbit": 95000,
                                   "qdisc": "htb", "error": ""}}
    assert sum(" cake " in x for x in r.ran) == 1
    n = len(r.ran)
    s.apply(cfg, [view(0)], 0x8000)  # nothing changed: nothing run
    assert len(r.ran) == n
    s.apply(Config(globals=Globals(shaping=False), paths=PATHS[:1]), [view(0)], 0x8000)
    assert s.status() == {} and r.ran[n:] == ["tc qdisc del dev eth1 root",
                                              "tc qdisc del dev eth1 ingress",
                                              "ip link del bifb0"]


def test_a_failed_command_is_named_in_status_and_undone() -> None:
    r = FakeRunner(fail="ip link add")
    s = shaping.Shaper(r)
    s.apply(Config(globals=Globals(shaping=True), paths=PATHS[:1]), [view(0)], 0x8000)
    st = s.status()["wan1"]
    assert st["qdisc"] is None and st["error"].startswith(
        "shaping wan1: ip link add bifb0 type ifb: failed")
    assert r.ran[-3:] == ["tc qdisc del dev eth1 root", "tc qdisc del dev eth1 ingress",
                          "ip link del bifb0"]

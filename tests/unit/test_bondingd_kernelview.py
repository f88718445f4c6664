"""Where each path is in the kernel (bonding.bondingd.kernelview): one read of rtnetlink over a
fake Netlink whose dump is made of rtnetlink messages built and parsed by the repo's codec, then
`resolve` of paths by device or by netifd interface."""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import rtnl_msgs as m

from bonding import netifd
from bonding.bondingd.kernelview import LinkNews, View, gateway_of, read_view, resolve
from bonding.bondingd.runtime import PathRuntime
from bonding.config import PathConfig
from bonding.netlink import rtnl
from bonding.netlink.core import Message, NetlinkError
from bonding.netlink.rtnl import AF_INET, AF_INET6, Addr, Link, Nexthop, Route

LINK_SCOPE = rtnl.RT_SCOPE_LINK

# A router's kernel: wan1 up with a carrier (IPv4 + IPv6), wan2 up without a carrier (its IPv6
# still in DAD), wan3 administratively down with nothing on it, and lo.
DUMP: list[Message] = [
    m.link(1, "lo"),
    m.link(3, "wan1"),
    m.link(4, "wan2", carrier=False),
    m.link(5, "wan3", up=False, carrier=False),
    m.addr(1, "127.0.0.1", 8, label="lo", scope=rtnl.RT_SCOPE_HOST),
    m.addr(3, "169.254.7.7", 16, label="wan1", scope=LINK_SCOPE),  # listed first, not global
    m.addr(3, "100.64.1.2", 24, label="wan1"),
    m.addr(3, "100.64.1.3", 24, label="wan1:1"),
    m.addr(4, "100.64.2.2", 24, label="wan2"),
    m.addr(3, "fe80::2", 64, scope=LINK_SCOPE),
    m.addr(3, "2001:db8:64:1::2", 64),
    m.addr(4, "2001:db8:64:2::2", 64, flags=rtnl.IFA_F_TENTATIVE),
    m.route("100.64.1.0", 24, [Nexthop(None, 3)]),  # connected: not a default route
    m.route("default", 0, [Nexthop("100.64.1.1", 3)], metric=10),
    m.route("default", 0, [Nexthop("100.64.2.1", 4)], metric=20),
    m.route("default", 0, [Nexthop("100.64.9.1", 5)], table=100),  # not the main table
    m.route("default", 0, [Nexthop("fe80::1", 3)], family=AF_INET6, metric=1024),
    m.route("2001:db8:64:1::", 64, [Nexthop(None, 3)], family=AF_INET6),
]


class FakeNetlink:
    """bondingd.kernelview.Netlink over a dump: what Rtnl answers, parsed by the codec."""

    def __init__(self, dump: list[Message], *, v6_error: int | None = None) -> None:
        self.dump = dump
        self.v6_error = v6_error
        self.asked: list[tuple[str, int]] = []

    def _v6(self, what: str, family: int) -> None:
        self.asked.append((what, family))
        if family == AF_INET6 and self.v6_error is not None:
            raise NetlinkError(self.v6_error, f"dump {what}")

    def links(self) -> list[Link]:
        return [rtnl.parse_link(x) for x in self.dump if x.type == rtnl.RTM_NEWLINK]

    def addresses(self, family: int = AF_INET, index: int | None = None) -> list[Addr]:
        self._v6("addresses", family)
        out = [rtnl.parse_addr(x) for x in self.dump if x.type == rtnl.RTM_NEWADDR]
        return [a for a in out if a.family == family and index in (None, a.index)]

    def routes(self, table: int, family: int = AF_INET) -> list[Route]:
        self._v6("routes", family)
        out = [rtnl.parse_route(x) for x in self.dump if x.type == rtnl.RTM_NEWROUTE]
        return [r for r in out if r.table == table and r.family == family]


def view(ipv6: bool = True) -> View:
    return read_view(FakeNetlink(DUMP), ipv6=ipv6)


# --- read_view -------------------------------------------------------------------------------


def test_read_view_keeps_the_links_by_name_and_only_main_table_default_routes() -> None:
    v = view()
    assert sorted(v.links) == ["lo", "wan1", "wan2", "wan3"]
    assert v.links["wan2"].index == 4 and v.links["wan2"].up and not v.links["wan2"].carrier
    assert [(r.nexthops[0].gateway, r.metric) for r in v.defaults] == [
        ("100.64.1.1", 10), ("100.64.2.1", 20)]
    assert [r.nexthops[0].gateway for r in v.defaults6] == ["fe80::1"]
    assert {a.address for a in v.addrs} >= {"100.64.1.2", "100.64.2.2"}
    assert all(a.family == AF_INET6 for a in v.addrs6) and len(v.addrs6) == 3


def test_read_view_without_ipv6_does_not_ask_for_it() -> None:
    nl = FakeNetlink(DUMP)
    v = read_view(nl, ipv6=False)
    assert list(v.addrs6) == [] and list(v.defaults6) == []
    assert all(family == AF_INET for _, family in nl.asked)


def test_a_kernel_without_ipv6_is_not_an_error_but_another_failure_is() -> None:
    v = read_view(FakeNetlink(DUMP, v6_error=errno.EAFNOSUPPORT), ipv6=True)
    assert list(v.addrs6) == [] and list(v.defaults6) == []
    assert len(v.defaults) == 2  # IPv4 read as usual
    with pytest.raises(NetlinkError) as e:
        read_view(FakeNetlink(DUMP, v6_error=errno.ENOBUFS), ipv6=True)
    assert e.value.errno == errno.ENOBUFS


def test_gateway_of_reads_the_nexthop_through_the_device() -> None:
    multipath = rtnl.parse_route(m.route("default", 0, [Nexthop("100.64.1.1", 3),
                                                        Nexthop("100.64.2.1", 4, 2)]))
    assert gateway_of([multipath], 4) == "100.64.2.1"
    assert gateway_of([multipath], 5) is None
    assert gateway_of(view().defaults, 3) == "100.64.1.1"


# --- resolve -----------------------------------------------------------------------------------

NO_NETIFD = "path uses netifd interface 'wan' but netifd cannot be asked (not connected)"


@dataclass(frozen=True)
class Want:
    device: str | None
    ifindex: int | None
    v4: str | None
    gw4: str | None
    v6: str | None
    gw6: str | None
    error: str | None
    news: LinkNews


# (id, path config, what netifd says of its interface, what the path is then)
CASES: list[tuple[str, dict[str, Any], netifd.Info | str, Want]] = [
    ("device with carrier: its global address, main-table gateways, IPv6",
     {"device": "wan1"}, "unused",
     Want("wan1", 3, "100.64.1.2", "100.64.1.1", "2001:db8:64:1::2", "fe80::1", None,
          LinkNews(up=True, carrier=True))),
    ("device without carrier; its IPv6 still tentative",
     {"device": "wan2"}, "unused",
     Want("wan2", 4, "100.64.2.2", "100.64.2.1", None, None, None,
          LinkNews(up=True, carrier=False))),
    ("device administratively down, nothing on it",
     {"device": "wan3"}, "unused",
     Want("wan3", 5, None, None, None, None, None, LinkNews(up=False, carrier=False))),
    ("device that does not exist",
     {"device": "wan9"}, "unused",
     Want("wan9", None, None, None, None, None, "device wan9 does not exist",
          LinkNews("device wan9 does not exist"))),
    ("the config's gateways win over the kernel's",
     {"device": "wan1", "gateway": "100.64.1.254", "gateway6": "fe80::fe"}, "unused",
     Want("wan1", 3, "100.64.1.2", "100.64.1.254", "2001:db8:64:1::2", "fe80::fe", None,
          LinkNews(up=True, carrier=True))),
    ("netifd interface: its device, its address when the device has it, its gateway",
     {"interface": "wan"}, netifd.Info("wan1", "100.64.1.3", "100.64.1.9"),
     Want("wan1", 3, "100.64.1.3", "100.64.1.9", "2001:db8:64:1::2", "fe80::1", None,
          LinkNews(up=True, carrier=True))),
    ("the config's gateway wins over netifd's",
     {"interface": "wan", "gateway": "100.64.1.254"}, netifd.Info("wan1", None, "100.64.1.9"),
     Want("wan1", 3, "100.64.1.2", "100.64.1.254", "2001:db8:64:1::2", "fe80::1", None,
          LinkNews(up=True, carrier=True))),
    ("netifd's address not on the device: the device's own",
     {"interface": "wan"}, netifd.Info("wan1", "192.0.2.50", None),
     Want("wan1", 3, "100.64.1.2", "100.64.1.1", "2001:db8:64:1::2", "fe80::1", None,
          LinkNews(up=True, carrier=True))),
    ("netifd interface down (or netifd not there): why, and no device",
     {"interface": "wan"}, NO_NETIFD,
     Want(None, None, None, None, None, None, NO_NETIFD, LinkNews(NO_NETIFD))),
    ("netifd's device missing from the kernel",
     {"interface": "wan"}, netifd.Info("pppoe-wan", "100.64.5.2", "100.64.5.1"),
     Want("pppoe-wan", None, None, None, None, None, "device pppoe-wan does not exist",
          LinkNews("device pppoe-wan does not exist"))),
    ("a device in the config wins over its interface: netifd is not asked",
     {"interface": "wan", "device": "wan2"}, "netifd must not be asked",
     Want("wan2", 4, "100.64.2.2", "100.64.2.1", None, None, None,
          LinkNews(up=True, carrier=False))),
]


def lookup_for(got: netifd.Info | str, asked: list[str]) -> Callable[[str], netifd.Info | str]:
    def lookup(name: str) -> netifd.Info | str:
        asked.append(name)
        return got
    return lookup


@pytest.mark.parametrize(("cfg", "got", "want"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_resolve(cfg: dict[str, Any], got: netifd.Info | str, want: Want) -> None:
    rt = PathRuntime(cfg=PathConfig(name="p", **cfg), index=0)
    # what the path had before: a missing device or interface must clear it
    rt.ifindex, rt.v4.address, rt.v6.address = 42, "100.64.7.7", "2001:db8:7::7"
    asked: list[str] = []
    [(same, news)] = resolve([rt], view(), lookup_for(got, asked))
    assert same is rt and news == want.news
    assert Want(rt.device, rt.ifindex, rt.v4.address, rt.v4.gateway, rt.v6.address,
                rt.v6.gateway, rt.resolve_error, news) == want
    assert asked == ([] if cfg.get("device") else ["wan"])


def test_resolve_clears_an_error_once_the_device_is_back() -> None:
    rt = PathRuntime(cfg=PathConfig(name="p", device="wan1"), index=0)
    gone = View(links={}, addrs=view().addrs)
    assert resolve([rt], gone, lookup_for("unused", []))[0][1].error == (
        "device wan1 does not exist")
    assert rt.resolve_error == "device wan1 does not exist" and rt.v4.address is None
    [(_, news)] = resolve([rt], view(), lookup_for("unused", []))
    assert news == LinkNews(up=True, carrier=True)
    assert rt.resolve_error is None and rt.v4.address == "100.64.1.2" and rt.ifindex == 3


def test_resolve_keeps_the_current_ipv6_address_while_it_stays_usable() -> None:
    dump = [*DUMP, m.addr(3, "2001:db8:64:1::99", 64)]
    v = read_view(FakeNetlink(dump), ipv6=True)
    rt = PathRuntime(cfg=PathConfig(name="p", device="wan1"), index=0)
    rt.v6.address = "2001:db8:64:1::99"
    resolve([rt], v, lookup_for("unused", []))
    assert rt.v6.address == "2001:db8:64:1::99"  # not moved for nothing
    deprecated = [*DUMP, m.addr(3, "2001:db8:64:1::99", 64, flags=rtnl.IFA_F_DEPRECATED)]
    resolve([rt], read_view(FakeNetlink(deprecated), ipv6=True), lookup_for("unused", []))
    assert rt.v6.address == "2001:db8:64:1::2"


def test_resolve_fills_every_path_in_order() -> None:
    rts = [PathRuntime(cfg=PathConfig(name=n, device=d), index=i)
           for i, (n, d) in enumerate([("a", "wan2"), ("b", "wan1"), ("c", "nope")])]
    out = resolve(rts, view(ipv6=False), lookup_for("unused", []))
    assert [(rt.cfg.name, rt.ifindex, news.error is None) for rt, news in out] == [
        ("a", 4, True), ("b", 3, True), ("c", None, False)]
    assert rts[1].v6.address is None  # IPv6 off: nothing read, nothing picked

"""The netlink library against the real kernel, inside a throwaway network namespace.

The library runs in a worker thread that has setns()-ed into the namespace (the
test process itself never leaves the host namespace, and every call first checks
that the thread really is inside the test namespace). Results are compared with
`ip -n NS -j ...` output.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from netns_thread import enter_netns

from bonding.netlink import (
    AddrEvent,
    EndpointFlag,
    Event,
    LinkEvent,
    LinkMonitor,
    MptcpEvent,
    MptcpEventReader,
    MptcpPM,
    NetlinkError,
    Nexthop,
    Resync,
    Rtnl,
)
from bonding.netlink.rtnl import AF_INET6, RTN_UNREACHABLE

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create network namespaces"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2 `ip`"),
]

T = TypeVar("T")


class NetNs:
    """A network namespace plus a worker thread living inside it."""

    def __init__(self) -> None:
        self.name = f"bnl-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.path = f"/run/netns/{self.name}"
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, initializer=enter_netns, initargs=(self.path,))

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        subprocess.run(["ip", "netns", "del", self.name], check=False)

    def _checked(self, fn: Callable[..., T], *args: Any) -> T:
        mine = os.stat("/proc/thread-self/ns/net").st_ino
        if mine != os.stat(self.path).st_ino:
            raise RuntimeError("worker thread is not inside the test namespace")
        return fn(*args)

    def run(self, fn: Callable[..., T], *args: Any, timeout: float = 30) -> T:
        """Run fn(*args) inside the namespace; exceptions propagate."""
        return self.pool.submit(self._checked, fn, *args).result(timeout=timeout)

    def sh(self, *args: str) -> str:
        out = subprocess.run(["ip", "-n", self.name, *args], check=True, capture_output=True,
                             text=True, timeout=10)
        return out.stdout

    def ipj(self, *args: str) -> Any:
        text = self.sh("-j", *args).strip()
        return json.loads(text) if text else []


@pytest.fixture
def ns() -> Iterator[NetNs]:
    space = NetNs()
    try:
        space.sh("link", "set", "lo", "up")
        space.sh("link", "add", "va", "type", "veth", "peer", "name", "vb")
        space.sh("link", "add", "vc", "type", "veth", "peer", "name", "vd")
        for dev in ("va", "vb", "vc"):  # vd stays down, so vc has no carrier
            space.sh("link", "set", dev, "up")
        space.sh("link", "set", "vc", "mtu", "1400")
        space.sh("addr", "add", "192.0.2.1/24", "dev", "va")
        space.sh("addr", "add", "198.51.100.1/24", "dev", "vb")
        space.sh("addr", "add", "203.0.113.1/24", "dev", "vc")
        yield space
    finally:
        space.close()


def test_worker_is_inside_the_namespace(ns: NetNs) -> None:
    names = ns.run(lambda: sorted(link.name for link in Rtnl().links()))
    assert names == ["lo", "va", "vb", "vc", "vd"]  # none of the host's interfaces


def test_links_match_ip(ns: NetNs) -> None:
    def work() -> list[Any]:
        with Rtnl() as r:
            return r.links()

    links = {link.name: link for link in ns.run(work)}
    shown = ns.ipj("-d", "link", "show")
    assert len(links) == len(shown)
    for entry in shown:
        link = links[entry["ifname"]]
        assert link.index == entry["ifindex"]
        assert link.mtu == entry["mtu"]
        assert link.up == ("UP" in entry["flags"])
        assert link.carrier == ("LOWER_UP" in entry["flags"])
        assert link.operstate == entry["operstate"]
        assert link.kind == entry.get("linkinfo", {}).get("info_kind")
    assert links["va"].carrier and links["va"].up
    assert links["vc"].up and not links["vc"].carrier  # its peer vd is down
    assert links["vc"].mtu == 1400


def test_link_index_and_missing_link(ns: NetNs) -> None:
    def work() -> tuple[int, int]:
        with Rtnl() as r:
            idx = r.link_index("vb")
            try:
                r.link_index("nosuchdev")
            except NetlinkError as exc:
                return idx, exc.errno or 0
            return idx, 0

    idx, err = ns.run(work)
    assert idx == ns.ipj("link", "show", "vb")[0]["ifindex"]
    assert err == errno.ENODEV


def test_addresses_match_ip(ns: NetNs) -> None:
    ns.sh("addr", "add", "100.64.0.1/10", "dev", "va")
    addrs = ns.run(lambda: Rtnl().addresses())
    got = sorted((a.ifname, a.address, a.prefixlen, a.index) for a in addrs)
    want = sorted(
        (info["label"], info["local"], info["prefixlen"], entry["ifindex"])
        for entry in ns.ipj("addr", "show")
        for info in entry["addr_info"]
        if info["family"] == "inet"
    )
    assert got == want
    assert ("va", "100.64.0.1", 10) in [(a[0], a[1], a[2]) for a in got]


def test_multipath_route_with_weights(ns: NetNs) -> None:
    main_before = ns.ipj("route", "show", "table", "main")

    def work() -> list[Any]:
        with Rtnl() as r:
            va, vb = r.link_index("va"), r.link_index("vb")
            hops = [Nexthop("192.0.2.2", va, 1), Nexthop("198.51.100.2", vb, 3)]
            r.route_replace(1000, "default", 0, hops)
            r.route_replace(100, "203.0.113.0", 24, [Nexthop("192.0.2.2", va)], metric=5,
                            protocol=77)
            return [r.routes(1000), r.routes(100)]

    t1000, t100 = ns.run(work)
    shown = ns.ipj("route", "show", "table", "1000")
    assert len(shown) == 1 and shown[0]["dst"] == "default"
    assert [(h["gateway"], h["dev"], h["weight"]) for h in shown[0]["nexthops"]] == [
        ("192.0.2.2", "va", 1), ("198.51.100.2", "vb", 3)]
    assert [(h.gateway, h.weight) for h in t1000[0].nexthops] == [
        ("192.0.2.2", 1), ("198.51.100.2", 3)]
    assert t1000[0].table == 1000
    shown100 = ns.ipj("-N", "route", "show", "table", "100")
    assert shown100 == [{"dst": "203.0.113.0/24", "gateway": "192.0.2.2", "dev": "va",
                         "protocol": "77", "metric": 5, "flags": []}]
    assert (t100[0].dst, t100[0].prefixlen, t100[0].metric, t100[0].protocol) == (
        "203.0.113.0", 24, 5, 77)

    def replace_single() -> None:
        with Rtnl() as r:
            r.route_replace(1000, "default", 0, [Nexthop("198.51.100.2", r.link_index("vb"))])

    ns.run(replace_single)
    shown = ns.ipj("route", "show", "table", "1000")
    assert [(e["dst"], e.get("gateway"), e.get("dev")) for e in shown] == [
        ("default", "198.51.100.2", "vb")]

    def delete_and_flush() -> int:
        with Rtnl() as r:
            r.route_del(100, "203.0.113.0", 24, metric=5)
            r.route_replace(1000, "192.0.2.128", 25, [Nexthop(None, r.link_index("va"))])
            return r.flush_table(1000)

    assert ns.run(delete_and_flush) == 2
    assert ns.ipj("route", "show", "table", "1000") == []
    assert ns.ipj("route", "show", "table", "100") == []
    assert ns.ipj("route", "show", "table", "main") == main_before


def test_unreachable_and_ipv6_routes(ns: NetNs) -> None:
    ns.sh("addr", "add", "2001:db8:1::1/64", "dev", "va", "nodad")
    ns.sh("addr", "add", "2001:db8:2::1/64", "dev", "vb", "nodad")

    def work() -> tuple[list[Any], list[Any], list[Any]]:
        with Rtnl() as r:
            va, vb = r.link_index("va"), r.link_index("vb")
            r.route_replace(1001, "default", 0, [], metric=4000, rtype=RTN_UNREACHABLE)
            r.route_replace(1001, "default", 0, [Nexthop("2001:db8:1::2", va, 2),
                                                 Nexthop("2001:db8:2::2", vb, 5)])
            r.rule_add(200, 1001, "2001:db8:1::1", 128)
            return r.routes(1001), r.routes(1001, AF_INET6), r.rules(AF_INET6)

    v4, v6, rules6 = ns.run(work)
    assert [(x.dst, x.type, x.metric, x.nexthops) for x in v4] == [
        ("default", RTN_UNREACHABLE, 4000, ())]
    assert ns.ipj("route", "show", "table", "1001") == [
        {"type": "unreachable", "dst": "default", "protocol": "static", "metric": 4000,
         "flags": []}]
    assert [(h.gateway, h.weight) for h in v6[0].nexthops] == [
        ("2001:db8:1::2", 2), ("2001:db8:2::2", 5)]
    shown6 = ns.ipj("-6", "route", "show", "table", "1001")
    assert [(h["gateway"], h["dev"], h["weight"]) for h in shown6[0]["nexthops"]] == [
        ("2001:db8:1::2", "va", 2), ("2001:db8:2::2", "vb", 5)]
    assert [(r.priority, r.src, r.src_len, r.table) for r in rules6 if r.priority == 200] == [
        (200, "2001:db8:1::1", 128, 1001)]

    def flush() -> tuple[int, int]:
        with Rtnl() as r:
            return r.flush_table(1001), r.flush_table(1001, AF_INET6)

    assert ns.run(flush) == (1, 1)
    assert ns.ipj("route", "show", "table", "1001") == []
    assert ns.ipj("-6", "route", "show", "table", "1001") == []


def test_route_errors_carry_errno(ns: NetNs) -> None:
    def work() -> int:
        with Rtnl() as r:
            try:
                r.route_del(1000, "203.0.113.0", 24)
            except NetlinkError as exc:
                assert "203.0.113.0/24" in exc.operation
                return exc.errno or 0
        return 0

    assert ns.run(work) == errno.ESRCH


def test_rules_match_ip(ns: NetNs) -> None:
    def work() -> list[Any]:
        with Rtnl() as r:
            r.rule_add(100, 1000, "192.0.2.1", 32)
            r.rule_add(101, 100, "198.51.100.0", 24, iif="lo", fwmark=0x10, fwmask=0xF0)
            r.rule_add(90, 254, suppress_prefixlength=0)
            try:
                r.rule_add(100, 1000, "192.0.2.1", 32)
                raise AssertionError("duplicate rule accepted")
            except NetlinkError as exc:
                assert exc.errno == errno.EEXIST
            r.rule_add(100, 1000, "192.0.2.1", 32, exist_ok=True)
            return r.rules()

    rules = {rule.priority: rule for rule in ns.run(work)}
    shown = {e["priority"]: e for e in ns.ipj("rule", "show")}
    assert sorted(rules) == sorted(shown) == [0, 90, 100, 101, 32766, 32767]
    assert shown[100] == {"priority": 100, "src": "192.0.2.1", "table": "1000"}
    assert shown[101] == {"priority": 101, "src": "198.51.100.0", "srclen": 24, "fwmark": "0x10",
                          "fwmask": "0xf0", "iif": "lo", "table": "100"}
    assert shown[90] == {"priority": 90, "src": "all", "table": "main", "suppress_prefixlen": 0}
    assert (rules[100].src, rules[100].src_len, rules[100].table) == ("192.0.2.1", 32, 1000)
    assert (rules[101].iif, rules[101].fwmark, rules[101].fwmask) == ("lo", 0x10, 0xF0)
    assert rules[90].suppress_prefixlength == 0 and rules[90].table == 254
    assert rules[32766].suppress_prefixlength is None

    def delete() -> None:
        with Rtnl() as r:
            r.rule_del(100, 1000, "192.0.2.1", 32)
            r.rule_del(90, 254, suppress_prefixlength=0)
            r.rule_del(90, 254, missing_ok=True)

    ns.run(delete)
    assert sorted(e["priority"] for e in ns.ipj("rule", "show")) == [0, 101, 32766, 32767]


def _ip_endpoints(ns: NetNs) -> dict[str, dict[str, Any]]:
    return {e["address"]: e for e in ns.ipj("mptcp", "endpoint", "show")}


def test_mptcp_endpoints(ns: NetNs) -> None:
    ns.sh("mptcp", "endpoint", "add", "203.0.113.1", "dev", "vc", "signal")  # not ours
    foreign = _ip_endpoints(ns)["203.0.113.1"]

    def add() -> tuple[int, int, Any]:
        with MptcpPM() as pm:
            va = Rtnl().link_index("va")
            a = pm.endpoint_add("192.0.2.1", {"subflow", "backup"}, ifindex=va)
            b = pm.endpoint_add("198.51.100.1", EndpointFlag.SIGNAL, port=1234)
            return a, b, pm.endpoints()

    id_a, id_b, eps = ns.run(add)
    shown = _ip_endpoints(ns)
    assert shown["192.0.2.1"] == {"address": "192.0.2.1", "id": id_a, "subflow": True,
                                  "backup": True, "dev": "va"}
    assert shown["198.51.100.1"] == {"address": "198.51.100.1", "port": 1234, "id": id_b,
                                     "signal": True}  # port sent in host order, not swapped
    mine = {e.address: e for e in eps}
    assert mine["192.0.2.1"].flags == EndpointFlag.SUBFLOW | EndpointFlag.BACKUP
    assert mine["192.0.2.1"].ifindex == ns.ipj("link", "show", "va")[0]["ifindex"]
    assert mine["198.51.100.1"].port == 1234 and mine["198.51.100.1"].ifindex is None
    assert mine["203.0.113.1"].id == foreign["id"]

    def backup(key: int | str, on: bool) -> None:
        with MptcpPM() as pm:
            pm.endpoint_set_backup(key, on)

    ns.run(backup, id_a, False)
    assert "backup" not in _ip_endpoints(ns)["192.0.2.1"]
    assert _ip_endpoints(ns)["192.0.2.1"]["subflow"] is True
    ns.run(backup, "192.0.2.1", True)
    assert _ip_endpoints(ns)["192.0.2.1"]["backup"] is True
    ns.run(backup, "198.51.100.1", True)  # an endpoint with a port
    assert _ip_endpoints(ns)["198.51.100.1"]["backup"] is True

    def set_flags(key: int | str, flags: EndpointFlag) -> None:
        with MptcpPM() as pm:
            pm.endpoint_set_flags(key, flags)

    ns.run(set_flags, "192.0.2.1", EndpointFlag.SUBFLOW)
    assert "backup" not in _ip_endpoints(ns)["192.0.2.1"]
    ns.run(set_flags, id_a, EndpointFlag.SUBFLOW | EndpointFlag.BACKUP)
    assert _ip_endpoints(ns)["192.0.2.1"]["backup"] is True
    ns.run(set_flags, id_a, EndpointFlag.SUBFLOW)
    assert "backup" not in _ip_endpoints(ns)["192.0.2.1"]
    assert _ip_endpoints(ns)["203.0.113.1"] == foreign

    def delete() -> tuple[int, Any, Any]:
        with MptcpPM() as pm:
            try:  # the id no longer carries this address: refuse, delete nothing
                pm.endpoint_del(id_a, address="203.0.113.1")
                refused = 0
            except NetlinkError as exc:
                refused = exc.errno or 0
            pm.endpoint_del(id_a, address="192.0.2.1")
            pm.endpoint_del(id_b)
            return refused, pm.endpoint(id_a), pm.endpoints()

    refused, gone, left = ns.run(delete)
    assert refused == errno.ENOENT
    assert gone is None
    assert _ip_endpoints(ns) == {"203.0.113.1": foreign}  # the foreign one untouched
    assert [(e.id, e.address, e.flags) for e in left] == [
        (foreign["id"], "203.0.113.1", EndpointFlag.SIGNAL)]


def test_mptcp_limits(ns: NetNs) -> None:
    def work() -> tuple[Any, Any]:
        with MptcpPM() as pm:
            before = pm.limits()
            pm.set_limits(subflows=4, add_addr_accepted=3)
            return before, pm.limits()

    before, after = ns.run(work)
    assert (after.subflows, after.add_addr_accepted) == (4, 3)
    assert ns.sh("mptcp", "limits").split() == ["add_addr_accepted", "3", "subflows", "4"]
    assert before.subflows == 2  # a new namespace's default

    def too_big() -> int:
        with MptcpPM() as pm:
            try:
                pm.set_limits(subflows=1000)
            except NetlinkError as exc:
                return exc.errno or 0
        return 0

    assert ns.run(too_big) == errno.EINVAL


def test_monitor_sees_carrier_down_fast(ns: NetNs) -> None:
    async def scenario() -> tuple[float, list[Event]]:
        events: list[Event] = []
        seen: dict[str, float] = {}
        va = Rtnl().link_index("va")

        def on_event(ev: Event) -> None:
            events.append(ev)
            if isinstance(ev, LinkEvent) and ev.index == va and not ev.carrier:
                seen.setdefault("down", time.monotonic())

        mon = LinkMonitor(on_event)
        mon.start()
        try:
            t0 = time.monotonic()
            proc = await asyncio.create_subprocess_exec("ip", "-n", ns.name, "link", "set",
                                                        "va", "down")
            await proc.wait()
            for _ in range(100):
                if "down" in seen:
                    break
                await asyncio.sleep(0.01)
            ns.sh("addr", "add", "192.0.2.77/32", "dev", "vb")
            ns.sh("addr", "del", "192.0.2.77/32", "dev", "vb")
            await asyncio.sleep(0.1)
        finally:
            mon.close()
        return seen.get("down", float("inf")) - t0, events

    latency, events = ns.run(lambda: asyncio.run(scenario()))
    print(f"carrier-down seen {latency * 1000:.1f} ms after `ip link set va down` started")
    # a sanity limit, not the figure (bench/detect.py measures carrier loss: a few ms)
    assert latency < 0.5
    links = {e.name: e for e in events if isinstance(e, LinkEvent)}
    assert not links["va"].up and not links["va"].carrier
    assert links["vb"].up and not links["vb"].carrier  # the peer lost carrier too
    addr_events = [(e.address, e.added) for e in events if isinstance(e, AddrEvent)]
    assert ("192.0.2.77", True) in addr_events and ("192.0.2.77", False) in addr_events


def test_monitor_overrun_signals_resync(ns: NetNs) -> None:
    def work() -> list[Event]:
        mon = LinkMonitor(lambda ev: None, rcvbuf=1)  # clamped to the kernel minimum
        try:
            batch = "".join(f"addr add 100.64.1.{i}/32 dev vb\n" for i in range(1, 120))
            subprocess.run(["ip", "-n", ns.name, "-batch", "-"], input=batch, text=True,
                           check=True, timeout=20)
            return mon.read(max_datagrams=500)
        finally:
            mon.close()

    events = ns.run(work)
    assert any(isinstance(e, Resync) for e in events)
    assert 0 < sum(isinstance(e, AddrEvent) for e in events) < 119


def test_mptcp_events_decode_real_connection(ns: NetNs) -> None:
    def work() -> tuple[tuple[str, int], tuple[str, int], list[Any]]:
        reader = MptcpEventReader()
        try:
            srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)  # IPPROTO_MPTCP
            srv.bind(("192.0.2.1", 0))
            srv.listen(1)
            cli = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
            cli.connect(srv.getsockname())
            conn, _ = srv.accept()
            cli.sendall(b"ping")
            assert conn.recv(4) == b"ping"
            local, remote = cli.getsockname(), cli.getpeername()
            for s in (cli, conn, srv):
                s.close()
            events: list[Any] = []
            for _ in range(50):
                events += reader.read()
                if any(isinstance(e, MptcpEvent) and e.name == "closed" for e in events):
                    break
                time.sleep(0.02)
            return local, remote, events
        finally:
            reader.close()

    local, remote, events = ns.run(work)
    created = [e for e in events if isinstance(e, MptcpEvent) and e.name == "created"]
    assert created, events
    client_side = [e for e in created if e.sport == local[1]]
    assert client_side, created  # sport is big-endian on the wire: decoded it matches
    ev = client_side[0]
    assert (ev.saddr, ev.daddr, ev.dport) == (local[0], remote[0], remote[1])
    assert ev.token is not None
    assert {e.name for e in events if isinstance(e, MptcpEvent)} >= {"created", "closed"}

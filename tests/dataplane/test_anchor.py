"""The route that keeps sing-box from closing every connection when a WAN's default route
changes (bonding.dataplane.anchor): added while sing-box is the proxy, removed otherwise.

The unit tests drive it with a recording netlink twin; the lab test (tests/lab) shows on the
real kernel that with it a transfer through sing-box survives the main table's first default
route changing device, and without it does not.
"""

from __future__ import annotations

import asyncio
import errno
import os
import pwd
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bonding.config import Config, Globals, Server
from bonding.dataplane.anchor import TOS, Anchor
from bonding.dataplane.plane import DataPlane
from bonding.netlink.core import NetlinkError
from bonding.netlink.rtnl import RT_SCOPE_LINK, RT_TABLE_MAIN, Nexthop, Route

ME = pwd.getpwuid(os.geteuid()).pw_name  # the proxy runs as who runs the test


class FakeRtnl:
    """Records route_replace / route_del the way bonding.netlink.rtnl.Rtnl takes them."""

    def __init__(self, calls: list[tuple[Any, ...]], fail: int | None = None,
                 main: tuple[Route, ...] = ()) -> None:
        self.calls = calls
        self.fail = fail
        self.main = main

    def __enter__(self) -> FakeRtnl:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def link_index(self, name: str) -> int:
        assert name == "lo"
        return 1

    def route_replace(self, table: int, dst: str, prefixlen: int, hops: list[Nexthop],
                      **kw: Any) -> None:
        if self.fail is not None:
            raise NetlinkError(self.fail, "replace route default/0 table 254")
        self.calls.append(("replace", table, dst, prefixlen, tuple(hops), kw))

    def routes(self, table: int) -> list[Route]:
        assert table == RT_TABLE_MAIN
        return list(self.main)

    def route_del(self, table: int, dst: str, prefixlen: int, metric: int | None = None,
                  **kw: Any) -> None:
        self.calls.append(("del", table, dst, prefixlen, metric, kw))
        if self.fail is not None:
            raise NetlinkError(self.fail, "delete route default/0 table 254")


def test_the_route_is_lo_with_a_tos_in_the_main_table() -> None:
    calls: list[tuple[Any, ...]] = []
    a = Anchor(lambda: FakeRtnl(calls))  # type: ignore[arg-type, return-value]
    a.set(True)
    a.set(True)  # idempotent: one netlink request
    assert calls == [("replace", RT_TABLE_MAIN, "default", 0, (Nexthop(None, 1),),
                      {"metric": 0, "protocol": 200, "scope": RT_SCOPE_LINK, "tos": TOS})]
    a.set(False)
    assert calls[-1] == ("del", RT_TABLE_MAIN, "default", 0, 0, {"tos": TOS})


LEFT = Route(table=RT_TABLE_MAIN, dst="default", prefixlen=0, nexthops=(Nexthop(None, 1),),
             metric=None, protocol=200, scope=RT_SCOPE_LINK, type=1, tos=TOS)


def test_one_left_by_an_earlier_bondingd_is_removed_and_nothing_else() -> None:
    calls: list[tuple[Any, ...]] = []
    Anchor(lambda: FakeRtnl(calls)).set(False)  # type: ignore[arg-type, return-value]
    assert calls == []  # none there: the main table is only read
    theirs = Route(table=RT_TABLE_MAIN, dst="default", prefixlen=0,
                   nexthops=(Nexthop("192.0.2.1", 2),), metric=10, protocol=3, scope=0, type=1)
    Anchor(lambda: FakeRtnl(calls, main=(theirs,))).set(False)  # type: ignore[arg-type, return-value]
    assert calls == []
    Anchor(lambda: FakeRtnl(calls, main=(theirs, LEFT))).set(False)  # type: ignore[arg-type, return-value]
    assert calls == [("del", RT_TABLE_MAIN, "default", 0, 0, {"tos": TOS})]


def test_removing_what_is_not_there_is_fine_other_errors_are_not() -> None:
    calls: list[tuple[Any, ...]] = []
    Anchor(lambda: FakeRtnl(calls, errno.ESRCH, (LEFT,))).set(False)  # type: ignore[arg-type, return-value]
    with pytest.raises(NetlinkError):
        Anchor(lambda: FakeRtnl(calls, errno.EPERM, (LEFT,))).set(False)  # type: ignore[arg-type, return-value]


class Recorder:
    def __init__(self, fail: OSError | None = None) -> None:
        self.wanted: list[bool] = []
        self.fail = fail

    def set(self, want: bool) -> None:
        self.wanted.append(want)
        if self.fail is not None and want:
            raise self.fail


CFG = Config(globals=Globals(proxy="sing-box", lan_devices=("lan0",), proxy_user=ME),
             servers=(Server(name="vps1", address="203.0.113.10"),))


@pytest.mark.parametrize(("cfg", "want"), [
    (CFG, True),
    (replace(CFG, globals=replace(CFG.globals, proxy="shadowsocks-libev")), False),
    (replace(CFG, globals=replace(CFG.globals, proxy="xray")), False),
    (replace(CFG, globals=replace(CFG.globals, proxy="none")), False),
    (replace(CFG, globals=replace(CFG.globals, enabled=False)), False),
])
def test_the_data_plane_keeps_it_while_sing_box_is_the_proxy(tmp_path: Path, cfg: Config,
                                                            want: bool) -> None:
    async def body() -> None:
        rec = Recorder()
        d = DataPlane(tmp_path / "run", path=str(tmp_path), nft_cmd="/bin/true", fw4=False,
                      anchor=rec)  # type: ignore[arg-type]
        d.configure(cfg, tmp_path)
        assert rec.wanted == [want]
        await d.close()
        assert rec.wanted[-1] is False  # bondingd stopping removes it
    asyncio.run(body())


def test_a_refused_route_is_reported_and_the_rest_goes_on(tmp_path: Path) -> None:
    async def body() -> None:
        rec = Recorder(NetlinkError(errno.EPERM, "replace route default/0 table 254"))
        d = DataPlane(tmp_path / "run", path=str(tmp_path), nft_cmd="/bin/true", fw4=False,
                      anchor=rec)  # type: ignore[arg-type]
        d.configure(CFG, tmp_path)
        (err,) = [e for e in d.errors() if "tos 0x1c" in e]
        assert "Operation not permitted" in err and "sing-box" in err
        await d.close()
    asyncio.run(body())

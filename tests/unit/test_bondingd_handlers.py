"""bondingd's ubus methods other than set_key (bonding.bondingd.handlers) over a fake core that
records what it was asked (set_key: test_handlers_keys.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bonding.bondingd.handlers import Handlers
from bonding.bondingd.runtime import PathRuntime
from bonding.config import PathConfig
from bonding.core.health import Health


class FakeCore:
    """bondingd.handlers.Core."""

    def __init__(self, *paths: PathRuntime, reload_ok: bool = True) -> None:
        self.paths = {rt.cfg.name: rt for rt in paths}
        self.problems: list[Any] = []
        self.config_dir = Path("/nonexistent")
        self.reload_ok = reload_ok
        self.calls: list[tuple[object, ...]] = []

    def status(self, detail: bool = False) -> dict[str, Any]:
        self.calls.append(("status", detail))
        return {"version": "0.1.0", "paths": {}}

    def path_status(self, rt: PathRuntime, detail: bool = False) -> dict[str, Any]:
        self.calls.append(("path_status", rt.cfg.name, detail))
        return {"state": "up", "enabled": rt.enabled}

    def apply_enabled(self, rt: PathRuntime) -> None:
        self.calls.append(("apply_enabled", rt.cfg.name, rt.enabled))

    def changed(self) -> None:
        self.calls.append(("changed",))

    def on_link(self, rt: PathRuntime, ok: bool, why: str) -> None:
        self.calls.append(("on_link", rt.cfg.name, ok, why))

    def resolve(self) -> None:
        self.calls.append(("resolve",))

    def refresh_netifd(self) -> None:
        self.calls.append(("refresh_netifd",))

    def reload(self) -> bool:
        self.calls.append(("reload",))
        self.problems = [] if self.reload_ok else ["path 'x': no such option 'devce'"]
        return self.reload_ok

    async def probe_now(self, rt: PathRuntime) -> None:
        self.calls.append(("probe_now", rt.cfg.name))


def path(name: str, **cfg: Any) -> PathRuntime:
    return PathRuntime(cfg=PathConfig(name=name, **cfg), index=0)


def test_status_and_path() -> None:
    core = FakeCore(path("wan", interface="wan"))
    h = Handlers(core)
    assert h.api_status() == {"version": "0.1.0", "paths": {}}
    assert h.api_path("wan") == {"name": "wan", "state": "up", "enabled": True}
    assert h.api_path("nope") is None  # NOT_FOUND in bonding.api
    assert core.calls == [("status", False), ("path_status", "wan", True)]


@pytest.mark.parametrize(("cfg", "enabled", "backup", "overrides", "reply", "applied"), [
    ({}, False, None, (False, None), (False, False), True),
    ({}, None, True, (None, True), (True, True), False),
    ({"enabled": False}, True, None, (True, None), (True, False), True),
    # one equal to the config clears the override
    ({"backup": True}, None, True, (None, None), (True, True), False),
    ({}, True, False, (None, None), (True, False), True),
])
def test_set_path(cfg: dict[str, Any], enabled: bool | None, backup: bool | None,
                  overrides: tuple[bool | None, bool | None], reply: tuple[bool, bool],
                  applied: bool) -> None:
    rt = path("wan", **cfg)
    core = FakeCore(rt)
    out = Handlers(core).api_set_path("wan", enabled, backup)
    assert out == {"name": "wan", "enabled": reply[0], "backup": reply[1]}
    assert (rt.enabled_override, rt.backup_override) == overrides
    want: list[tuple[object, ...]] = [("apply_enabled", "wan", reply[0])] if applied else []
    assert core.calls == [*want, ("changed",)]


def test_set_path_clears_an_earlier_override_set_back_to_the_config() -> None:
    rt = path("wan")
    core = FakeCore(rt)
    h = Handlers(core)
    h.api_set_path("wan", False, True)
    assert (rt.enabled_override, rt.backup_override) == (False, True)
    h.api_set_path("wan", True, False)
    assert (rt.enabled_override, rt.backup_override) == (None, None) and rt.enabled
    assert h.api_set_path("nope", True, None) is None


def test_probe_answers_the_path_after_the_round() -> None:
    core = FakeCore(path("wan"))
    h = Handlers(core)
    assert asyncio.run(h.api_probe("wan")) == {"name": "wan", "state": "up", "enabled": True}
    assert core.calls == [("probe_now", "wan"), ("path_status", "wan", True)]
    assert asyncio.run(h.api_probe("nope")) is None


@pytest.mark.parametrize("ok", [True, False])
def test_reload_answers_ok_and_the_problems(ok: bool) -> None:
    out = Handlers(FakeCore(reload_ok=ok)).api_reload()
    assert out == {"ok": ok, "problems": [] if ok else ["path 'x': no such option 'devce'"]}


def fleet() -> FakeCore:
    wan = path("wan", interface="wan")
    lte = path("lte", interface="lte")
    lte.v4.health = lte.v6.health = Health(link_ok=False)  # already down
    eth = path("eth", device="eth2")  # a device of its own
    return FakeCore(wan, lte, eth)


DOWN_WAN = ("on_link", "wan", False, "netifd interface 'wan' went down")

# (id, interface, action, device, reply, what the core is asked)
IFACE_CASES: list[tuple[str, str, str, str | None, dict[str, Any], list[tuple[object, ...]]]] = [
    ("ifdown: the path down at once", "wan", "ifdown", "wan1",
     {"handled": True, "path": "wan"}, [DOWN_WAN, ("changed",), ("refresh_netifd",)]),
    ("ifdown of a path already without a link", "lte", "ifdown", None,
     {"handled": True, "path": "lte"}, [("changed",), ("refresh_netifd",)]),
    ("ifdown of a path by its device only: not taken down (it is not netifd's)", "x", "ifdown",
     "eth2", {"handled": True, "path": "eth"}, [("changed",), ("refresh_netifd",)]),
    ("ifup: look at the links again", "wan", "ifup", "wan1",
     {"handled": True, "path": "wan"}, [("resolve",), ("refresh_netifd",)]),
    ("ifupdate of a device path", "eth", "ifupdate", "eth2",
     {"handled": True, "path": "eth"}, [("resolve",), ("refresh_netifd",)]),
    ("not a path: netifd is read again all the same", "lan", "ifup", "br-lan",
     {"handled": False, "path": None}, [("refresh_netifd",)]),
    ("ifdown of not a path", "lan", "ifdown", None,
     {"handled": False, "path": None}, [("changed",), ("refresh_netifd",)]),
]


@pytest.mark.parametrize(("interface", "action", "device", "reply", "calls"),
                         [c[1:] for c in IFACE_CASES], ids=[c[0] for c in IFACE_CASES])
def test_iface(interface: str, action: str, device: str | None, reply: dict[str, Any],
               calls: list[tuple[object, ...]]) -> None:
    core = fleet()
    assert Handlers(core).api_iface(interface, action, device) == reply
    assert core.calls == calls

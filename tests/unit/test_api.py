"""The `bonding` ubus object's argument checks and error mapping, without a transport."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from bonding import api
from bonding.ubus import BlobmsgType, UbusError, UbusStatus


class Recorder:
    """A Backend that serves two paths and records what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.paths = {"wan": {"state": "up"}, "lte": {"state": "down"}}

    def api_status(self) -> Mapping[str, Any]:
        self.calls.append(("status", ()))
        return {"paths": self.paths}

    def api_path(self, name: str) -> Mapping[str, Any] | None:
        self.calls.append(("path", (name,)))
        p = self.paths.get(name)
        return None if p is None else {"name": name, **p}

    def api_set_path(self, name: str, enabled: bool | None,
                     backup: bool | None) -> Mapping[str, Any] | None:
        self.calls.append(("set_path", (name, enabled, backup)))
        return None if name not in self.paths else {"name": name}

    async def api_probe(self, name: str) -> Mapping[str, Any] | None:
        self.calls.append(("probe", (name,)))
        await asyncio.sleep(0)
        return self.api_path(name)

    def api_reload(self) -> Mapping[str, Any]:
        self.calls.append(("reload", ()))
        return {"ok": True, "problems": []}

    def api_iface(self, interface: str, action: str, device: str | None) -> Mapping[str, Any]:
        self.calls.append(("iface", (interface, action, device)))
        return {"handled": interface == "wan", "path": "wan" if interface == "wan" else None}

    def api_set_key(self, server: str, key: str, cipher: str | None) -> Mapping[str, Any]:
        self.calls.append(("set_key", (server, key, cipher)))
        return {"server": server, "stored": True}


def run(method: str, args: dict[str, Any], be: Recorder | None = None) -> Any:
    be = be or Recorder()
    out = api.dispatch(be, method, args)
    if asyncio.iscoroutine(out):
        return asyncio.run(out)
    return out


def status_of(method: str, args: dict[str, Any]) -> UbusStatus | int:
    with pytest.raises(UbusError) as e:
        run(method, args)
    return e.value.status


@pytest.mark.parametrize(("method", "args", "status"), [
    ("path", {}, UbusStatus.INVALID_ARGUMENT),  # name missing
    ("path", {"name": 5}, UbusStatus.INVALID_ARGUMENT),
    ("path", {"name": ""}, UbusStatus.INVALID_ARGUMENT),
    ("path", {"name": "x" * 65}, UbusStatus.INVALID_ARGUMENT),
    ("path", {"name": "wan\n"}, UbusStatus.INVALID_ARGUMENT),
    ("path", {"name": "nope"}, UbusStatus.NOT_FOUND),
    ("probe", {"name": "nope"}, UbusStatus.NOT_FOUND),
    ("probe", {"name": ["wan"]}, UbusStatus.INVALID_ARGUMENT),
    ("set_path", {"name": "wan"}, UbusStatus.INVALID_ARGUMENT),  # nothing to set
    ("set_path", {"name": "wan", "enabled": "yes"}, UbusStatus.INVALID_ARGUMENT),
    ("set_path", {"name": "wan", "backup": 2}, UbusStatus.INVALID_ARGUMENT),
    ("set_path", {"name": "wan", "backup": 1.0}, UbusStatus.INVALID_ARGUMENT),
    ("set_path", {"name": "nope", "backup": True}, UbusStatus.NOT_FOUND),
    ("iface", {"interface": "wan"}, UbusStatus.INVALID_ARGUMENT),  # action missing
    ("iface", {"interface": "wan", "action": "ifbounce"}, UbusStatus.INVALID_ARGUMENT),
    ("iface", {"interface": "wan", "action": "ifup", "device": 3}, UbusStatus.INVALID_ARGUMENT),
    ("frobnicate", {}, UbusStatus.METHOD_NOT_FOUND),
])
def test_bad_input_gets_the_matching_status(method: str, args: dict[str, Any],
                                            status: UbusStatus) -> None:
    assert status_of(method, args) == status


def test_bad_input_never_reaches_the_backend() -> None:
    be = Recorder()
    with pytest.raises(UbusError):
        api.dispatch(be, "set_path", {"name": "wan", "enabled": "maybe"})
    assert be.calls == []


def test_rpcd_session_and_unknown_arguments_are_accepted() -> None:
    be = Recorder()
    out = run("path", {"name": "wan", "ubus_rpc_session": "0123abcd", "future": [1]}, be)
    assert out == {"name": "wan", "state": "up"}
    assert run("status", {"ubus_rpc_session": "x"}, be) == {"paths": be.paths}


@pytest.mark.parametrize(("given", "want"), [(True, True), (False, False), (1, True), (0, False)])
def test_booleans_from_json_or_from_a_shell(given: object, want: bool) -> None:
    be = Recorder()
    run("set_path", {"name": "lte", "backup": given}, be)
    run("set_path", {"name": "lte", "enabled": given}, be)
    assert be.calls == [("set_path", ("lte", None, want)), ("set_path", ("lte", want, None))]


def test_each_method_reaches_its_backend_call() -> None:
    be = Recorder()
    assert run("probe", {"name": "wan"}, be) == {"name": "wan", "state": "up"}
    assert run("reload", {}, be) == {"ok": True, "problems": []}
    assert run("iface", {"interface": "wan", "action": "ifdown"}, be) == \
        {"handled": True, "path": "wan"}
    assert [c[0] for c in be.calls] == ["probe", "path", "reload", "iface"]
    assert be.calls[-1] == ("iface", ("wan", "ifdown", None))


def test_published_policies_match_the_checks() -> None:
    ms = {m.name: m for m in api.methods(Recorder())}
    assert set(ms) == set(api.METHODS) == {"status", "path", "set_path", "probe", "reload",
                                           "iface", "set_key"}
    assert dict(ms["set_path"].policy) == {"name": BlobmsgType.STRING,
                                           "enabled": BlobmsgType.BOOL,
                                           "backup": BlobmsgType.BOOL}
    assert dict(ms["status"].policy) == {}
    assert all(not m.check_policy for m in ms.values())  # ours: 0/1 pass as booleans
    assert set(api.READ_METHODS) < set(ms)


def test_handler_raises_ubus_errors_for_the_transport() -> None:
    m = {m.name: m for m in api.methods(Recorder())}["path"]
    with pytest.raises(UbusError) as e:
        m.handler("path", {"name": "nope"})
    assert e.value.status == UbusStatus.NOT_FOUND


def test_a_refused_value_is_quoted_short() -> None:
    # a read-only caller sends a 60 KB argument: the reply and the log quote 40 characters of it
    with pytest.raises(UbusError) as e:
        api.dispatch(Recorder(), "path", {"name": ["x" * 60_000]})
    assert len(str(e.value)) < 200 and "characters)" in str(e.value)
    with pytest.raises(UbusError) as e:
        api.dispatch(Recorder(), "path", {"name": "y" * api.MAX_NAME})
    assert len(str(e.value)) < 200 and e.value.status == UbusStatus.NOT_FOUND


def test_refusals_are_logged_at_most_ten_a_minute_then_counted(
        caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    refusals = api.RefusalLog(clock=lambda: now[0])
    err = UbusError(UbusStatus.INVALID_ARGUMENT, "bonding.path: bad")
    with caplog.at_level("INFO", logger="bondingd.api"):
        for _ in range(5000):
            refusals.log(err)
        assert len(caplog.records) == api.REFUSALS_LOGGED
        now[0] += api.REFUSAL_WINDOW_S
        refusals.log(err)  # a new window: the count of the old one, then this one
    lines = [r.getMessage() for r in caplog.records]
    assert lines[-2].startswith(f"{5000 - api.REFUSALS_LOGGED} more ubus calls refused")
    assert lines[-1] == f"ubus call refused: {err}"


KEY = "a-long-enough-password"


def test_set_key_reaches_the_backend() -> None:
    be = Recorder()
    assert run("set_key", {"server": "vps1", "key": KEY, "ubus_rpc_session": "x"}, be) == \
        {"server": "vps1", "stored": True}
    k16 = "AAECAwQFBgcICQoLDA0ODw=="
    run("set_key", {"server": "vps2", "key": k16, "cipher": "2022-blake3-aes-128-gcm"}, be)
    assert be.calls == [("set_key", ("vps1", KEY, None)),
                        ("set_key", ("vps2", k16, "2022-blake3-aes-128-gcm"))]


@pytest.mark.parametrize("args", [
    {"server": "vps1"},  # no key
    {"key": KEY},  # no server
    {"server": "vps 1", "key": KEY},
    {"server": "x" * 33, "key": KEY},
    {"server": "vps1", "key": KEY + " with spaces"},
    {"server": "vps1", "key": "é" + KEY},
    {"server": "vps1", "key": KEY * 20},  # over 256
    {"server": "vps1", "key": 12345678901234567},
    {"server": "vps1", "key": KEY, "cipher": "rot13"},
    {"server": "vps1", "key": KEY, "cipher": "2022-blake3-aes-256-gcm"},  # not base64 of 32
])
def test_a_bad_key_call_is_refused_without_quoting_the_key(
        args: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    be = Recorder()
    m = {m.name: m for m in api.methods(be)}["set_key"]
    with caplog.at_level("INFO"), pytest.raises(UbusError) as e:
        m.handler("set_key", args)
    assert e.value.status == UbusStatus.INVALID_ARGUMENT
    assert be.calls == []
    key = str(args.get("key", KEY))
    assert key not in str(e.value) and key not in caplog.text
    assert KEY not in str(e.value) and KEY not in caplog.text


def test_set_key_is_not_a_read_method() -> None:
    assert "set_key" not in api.READ_METHODS

"""The parts of the ubus client that need no ubusd: errors, handles, method dispatch."""

from __future__ import annotations

import ctypes
from ctypes import addressof
from typing import Any, cast

import pytest

from bonding.ubus import Method, ObjectHandle, Ubus, UbusError, UbusStatus
from bonding.ubus._lib import UbusLibs, UbusRequestData
from bonding.ubus.blobmsg import BlobmsgType, decode_attrs, encode
from bonding.ubus.handles import read_blob_payload


class FakeLib:
    """The few libubus calls dispatch makes, recorded."""

    def __init__(self) -> None:
        self.replies: list[bytes] = []

    def ubus_send_reply(self, ctx: int | None, req: int, blob: bytes) -> int:
        self.replies.append(blob)
        return 0


def fake_bus() -> tuple[Ubus, FakeLib]:
    lib = FakeLib()
    libs = cast(UbusLibs, type("Libs", (), {"ubus": lib, "ubus_path": "fake"})())
    bus = Ubus(libs=libs)
    return bus, lib


@pytest.mark.parametrize(
    ("status", "message", "text"),
    [
        (UbusStatus.NOT_FOUND, None, "Not found"),
        (2, "name: unknown", "name: unknown: Invalid argument"),
        (99, None, "ubus status 99"),
    ],
)
def test_ubus_error(status: int, message: str | None, text: str) -> None:
    exc = UbusError(status, message)
    assert str(exc) == text
    assert exc.status == status and exc.message == message


def test_object_handle_refuses_a_method_twice() -> None:
    m = Method("get", lambda name, args: None)
    with pytest.raises(ValueError, match="given twice"):
        ObjectHandle("o", [m, m])
    handle = ObjectHandle("o", [m, Method("set", m.handler, {"x": BlobmsgType.INT32})])
    assert not handle.registered and list(handle.methods) == ["get", "set"]


def test_read_blob_payload() -> None:
    blob = encode({"a": 1})
    buf = ctypes.create_string_buffer(blob, len(blob))
    assert decode_attrs(read_blob_payload(addressof(buf))) == {"a": 1}
    assert read_blob_payload(None) == b""


def _raise(exc: Exception) -> Any:
    def handler(name: str, args: dict[str, Any]) -> Any:
        raise exc

    return handler


@pytest.mark.parametrize(
    ("method", "args", "status", "reply"),
    [
        ("nothing", {}, UbusStatus.METHOD_NOT_FOUND, None),
        ("echo", {"x": 5}, UbusStatus.OK, {"name": "echo", "x": 5}),
        ("echo", {"x": "five"}, UbusStatus.INVALID_ARGUMENT, None),  # policy says INT32
        ("echo", {"other": "ok"}, UbusStatus.OK, {"name": "echo", "other": "ok"}),
        ("none", {}, UbusStatus.OK, None),
        ("refuse", {}, UbusStatus.PERMISSION_DENIED, None),
        ("crash", {}, UbusStatus.UNKNOWN_ERROR, None),
    ],
)
def test_dispatch(method: str, args: dict[str, Any], status: int, reply: Any) -> None:
    bus, lib = fake_bus()
    methods = [
        Method("echo", lambda name, a: {"name": name, **a}, {"x": BlobmsgType.INT32}),
        Method("none", lambda name, a: None),
        Method("refuse", _raise(UbusError(UbusStatus.PERMISSION_DENIED, "no"))),
        Method("crash", _raise(RuntimeError("bug"))),
    ]
    handle = bus.add_object("test", methods)  # not connected: kept for later registration
    blob = encode(args)
    msg = ctypes.create_string_buffer(blob, len(blob))
    req = UbusRequestData()
    assert bus._dispatch(handle.address, addressof(req), method, addressof(msg)) == status
    assert [decode_attrs(r[4:]) for r in lib.replies] == ([reply] if reply else [])


def test_dispatch_unknown_object_and_closed() -> None:
    bus, _ = fake_bus()
    handle = bus.add_object("test", [Method("m", lambda name, a: None)])
    assert bus._dispatch(12345, 0, "m", None) == UbusStatus.NOT_FOUND
    bus.close()
    assert bus._dispatch(handle.address, 0, "m", None) == UbusStatus.NOT_FOUND


def test_event_callback_gets_decoded_data() -> None:
    bus, _ = fake_bus()
    seen: list[tuple[str, dict[str, Any]]] = []
    sub = bus.subscribe("net.*", lambda ev, data: seen.append((ev, data)))
    blob = encode({"up": True})
    msg = ctypes.create_string_buffer(blob, len(blob))
    bus._on_event(None, sub.address, b"net.wan", addressof(msg))
    bus._on_event(None, 999, b"net.lan", addressof(msg))  # not ours: ignored
    assert seen == [("net.wan", {"up": True})]


def test_not_connected_calls_refuse() -> None:
    bus, _ = fake_bus()
    with pytest.raises(UbusError) as info:
        bus.send_event("x", {})
    assert info.value.status == UbusStatus.CONNECTION_FAILED

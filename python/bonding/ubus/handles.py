"""What a connection hands to libubus and keeps alive: methods, objects, event handlers, calls."""

from __future__ import annotations

import asyncio
import ctypes
import struct
from collections.abc import Awaitable, Callable, Iterable, Mapping
from ctypes import POINTER, addressof
from dataclasses import dataclass, field
from typing import Any

from ._lib import (
    BlobmsgPolicy,
    UbusEventHandler,
    UbusMethod,
    UbusObject,
    UbusObjectType,
    UbusRequest,
)
from .blobmsg import BlobmsgType

__all__ = [
    "Args",
    "EventCallback",
    "Handler",
    "Method",
    "ObjectHandle",
    "Reply",
    "Subscription",
    "read_blob_payload",
]

Args = dict[str, Any]
Reply = Mapping[str, Any] | None
#: a method handler: ``(method_name, args) -> reply`` or an awaitable of it; ``None`` = no data
Handler = Callable[[str, Args], Reply | Awaitable[Reply]]
#: an event callback: ``(event_type, data)``, may be a coroutine function
EventCallback = Callable[[str, Args], Awaitable[None] | None]

_U32 = struct.Struct(">I")


@dataclass(frozen=True)
class Method:
    """A method of an object: name, handler and argument policy (name -> blobmsg type).

    The policy is published in the object's signature (``ubus list -v``); with ``check_policy``
    an argument that is present with another type is answered with INVALID_ARGUMENT before the
    handler runs (unknown arguments, e.g. rpcd's ``ubus_rpc_session``, pass through).
    """

    name: str
    handler: Handler
    policy: Mapping[str, BlobmsgType] = field(default_factory=dict)
    check_policy: bool = True


def read_blob_payload(ptr: int | None) -> bytes:
    """The payload (``blob_data``, ``blob_len`` bytes) of the ``struct blob_attr`` at ``ptr``."""
    if not ptr:
        return b""
    raw = _U32.unpack(ctypes.string_at(ptr, 4))[0] & 0x00FFFFFF
    return ctypes.string_at(ptr + 4, raw - 4) if raw > 4 else b""


class ObjectHandle:
    """A registered object; keeps every C structure libubus points into alive."""

    def __init__(self, name: str, methods: Iterable[Method]) -> None:
        self.name = name
        self.methods: dict[str, Method] = {}
        for m in methods:
            if m.name in self.methods:
                raise ValueError(f"object {name!r}: method {m.name!r} given twice")
            self.methods[m.name] = m
        self._keep: list[Any] = []
        self._name_b = name.encode()
        n = len(self.methods)
        self._c_methods = (UbusMethod * max(n, 1))()
        for i, m in enumerate(self.methods.values()):
            mname = m.name.encode()
            policy = (BlobmsgPolicy * max(len(m.policy), 1))()
            for j, (arg, typ) in enumerate(m.policy.items()):
                arg_b = arg.encode()
                self._keep.append(arg_b)
                policy[j].name = arg_b
                policy[j].type = int(typ)
            self._keep += [mname, policy]
            self._c_methods[i].name = mname
            self._c_methods[i].policy = ctypes.cast(policy, POINTER(BlobmsgPolicy))
            self._c_methods[i].n_policy = len(m.policy)
        methods_p = ctypes.cast(self._c_methods, POINTER(UbusMethod))
        self._c_type = UbusObjectType(name=self._name_b, id=0, methods=methods_p, n_methods=n)
        self._c_obj = UbusObject(
            name=self._name_b, id=0, methods=methods_p, n_methods=n,
            type=ctypes.pointer(self._c_type),
        )  # fmt: skip
        self.address = addressof(self._c_obj)

    def _set_handler(self, handler: Any) -> None:
        for i in range(len(self.methods)):
            self._c_methods[i].handler = handler

    @property
    def id(self) -> int:
        """The object id ubusd gave (0 while not registered)."""
        return int(self._c_obj.id)

    @property
    def registered(self) -> bool:
        return self.id != 0


class Subscription:
    """An event handler registered for one pattern (``net.*``, ``bonding.path``, ``*``)."""

    def __init__(self, pattern: str, callback: EventCallback) -> None:
        self.pattern = pattern
        self.callback = callback
        self._pattern_b = pattern.encode()
        self._c_ev = UbusEventHandler()
        self.address = addressof(self._c_ev)


@dataclass
class _Pending:
    """An async invoke in flight."""

    req: UbusRequest
    future: asyncio.Future[int]
    replies: list[Args]
    error: Exception | None = None

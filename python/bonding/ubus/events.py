"""ubus events: sending them, and subscriptions by pattern that call Python back."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Mapping
from ctypes import addressof
from typing import Any

from ._base import _Core
from .blobmsg import decode_attrs, encode
from .handles import EventCallback, ObjectHandle, Subscription, read_blob_payload
from .status import UbusError

log = logging.getLogger("bonding.ubus")


class _Events(_Core):
    """send_event, subscribe and unsubscribe."""

    def send_event(self, event: str, data: Mapping[str, Any] | None = None) -> None:
        """Broadcast an event (``ubus send``); raises UbusError when not delivered to ubusd."""
        ctx = self._require()
        rc = self._lib.ubus_send_event(ctx, event.encode(), encode(data or {}))
        self._after_sync()
        if rc:
            raise UbusError(rc, f"cannot send ubus event {event!r}")

    def subscribe(self, pattern: str, callback: EventCallback) -> Subscription:
        """Call ``callback(type, data)`` for every event matching ``pattern`` (``a.b``, ``a.*``)."""
        sub = Subscription(pattern, callback)
        sub._c_ev.cb = self._c_event
        if self._connected:
            rc = self._lib.ubus_register_event_handler(self._ctx, sub.address, sub._pattern_b)
            self._after_sync()
            if rc:
                if sub._c_ev.obj.id:
                    self._unwanted_event_object(sub)
                raise UbusError(rc, f"cannot listen for ubus events {pattern!r}")
        self._subs[sub.address] = sub
        return sub

    def _unwanted_event_object(self, sub: Subscription) -> None:
        # the handler object got added but the pattern not: take the object out again
        rc = self._lib.ubus_remove_object(self._ctx, addressof(sub._c_ev.obj))
        if rc and sub._c_ev.obj.id:
            holder = ObjectHandle.__new__(ObjectHandle)
            holder.name, holder.methods, holder._keep = f"events:{sub.pattern}", {}, [sub]
            holder._c_obj = sub._c_ev.obj
            holder.address = addressof(sub._c_ev.obj)
            self._unwanted.append(holder)

    def unsubscribe(self, sub: Subscription) -> None:
        if self._subs.pop(sub.address, None) is None or not sub._c_ev.obj.id:
            return
        if self._connected:
            rc = self._lib.ubus_remove_object(self._ctx, addressof(sub._c_ev.obj))
            self._after_sync()
            if rc == 0 or not sub._c_ev.obj.id:
                return
        self._unwanted_event_object(sub)

    def _on_event(
        self, ctx: int | None, ev: int | None, typ: bytes | None, msg: int | None
    ) -> None:
        sub = self._subs.get(ev or 0)
        try:
            if sub is None or self._closed:
                return
            event = (typ or b"").decode("utf-8", "surrogateescape")
            data = decode_attrs(read_blob_payload(msg))
            result = sub.callback(event, data)
            if inspect.isawaitable(result):
                self._spawn(self._run_event_cb(result, event))
        except Exception:
            log.exception("ubus event handler for %r failed", sub.pattern if sub else "?")

    async def _run_event_cb(self, awaitable: Awaitable[Any], event: str) -> None:
        try:
            await awaitable
        except Exception:
            log.exception("ubus event handler for %s failed", event)

    # ------------------------------------------------------------------ calls

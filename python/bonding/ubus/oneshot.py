"""A blocking one-shot ``ubus call`` for scripts and tests (its own short-lived context)."""

from __future__ import annotations

from collections.abc import Mapping
from ctypes import byref, c_uint32
from typing import Any

from . import _lib
from ._lib import UBUS_DATA_HANDLER, UbusLibs
from .blobmsg import decode_attrs, encode
from .handles import Args, read_blob_payload
from .status import UbusError, UbusStatus

__all__ = ["call"]


def call(
    obj: str,
    method: str,
    args: Mapping[str, Any] | None = None,
    socket: str | None = None,
    timeout: float = 30.0,
    *,
    libs: UbusLibs | None = None,
) -> Args:
    """Blocking ``ubus call obj method args`` for scripts and tests: the (last) data reply.

    Raises UbusError (CONNECTION_FAILED when ubusd is not there, NOT_FOUND for an unknown
    object, the callee's status otherwise). Not for use inside a running Ubus connection's
    thread (libubus is not thread-safe, and a blocking call would stall that loop).
    """
    libs = libs or _lib.load()
    lib = libs.ubus
    blob = encode(args or {})
    ctx = lib.ubus_connect(socket.encode() if socket else None)
    if not ctx:
        raise UbusError(UbusStatus.CONNECTION_FAILED,
                        f"cannot connect to ubusd at {socket or 'the default socket'}")  # fmt: skip
    replies: list[Args] = []
    errors: list[Exception] = []

    def on_data(req: int | None, typ: int, msg: int | None) -> None:
        try:
            replies.append(decode_attrs(read_blob_payload(msg)))
        except Exception as exc:
            errors.append(exc)

    c_on_data = UBUS_DATA_HANDLER(on_data)
    try:
        oid = c_uint32(0)
        rc = lib.ubus_lookup_id(ctx, obj.encode(), byref(oid))
        if rc:
            raise UbusError(rc, f"ubus object {obj!r}")
        ms = max(1, int(timeout * 1000))
        rc = lib.ubus_invoke_fd(ctx, oid.value, method.encode(), blob, c_on_data, None, ms, -1)
    finally:
        lib.ubus_free(ctx)
    if errors:
        raise UbusError(UbusStatus.PARSE_ERROR, f"undecodable reply: {errors[0]}")
    if rc:
        raise UbusError(rc, f"{obj}.{method}")
    return replies[-1] if replies else {}

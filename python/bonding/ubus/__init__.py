"""ubus transport: a ctypes binding to libubus/libubox, driven by asyncio. No bonding logic.

* :class:`Ubus` -- an asyncio connection: objects with methods (sync or async handlers),
  events (send, subscribe by pattern), calls to other objects; reconnects by itself.
* :func:`call` -- a blocking one-shot call for scripts and tests.
* :mod:`bonding.ubus.blobmsg` -- the pure-Python blobmsg codec.

The libraries are found by path (OpenWrt keeps them in /lib, where ``find_library`` fails):
``$BONDING_LIBUBUS`` / ``$BONDING_LIBUBOX`` (a file or directory), ``$OWRT_PREFIX/lib``, /lib,
/usr/lib, /usr/local/lib; see :func:`bonding.ubus._lib.load`.
"""

from ._lib import UbusLibraryError, UbusLibs, load
from .blobmsg import BlobmsgError, BlobmsgType
from .client import Ubus
from .handles import Args, EventCallback, Handler, Method, ObjectHandle, Subscription
from .oneshot import call
from .status import UbusError, UbusStatus

__all__ = [
    "Args",
    "BlobmsgError",
    "BlobmsgType",
    "EventCallback",
    "Handler",
    "Method",
    "ObjectHandle",
    "Subscription",
    "Ubus",
    "UbusError",
    "UbusLibraryError",
    "UbusLibs",
    "UbusStatus",
    "call",
    "load",
]

"""Loading libubus/libubox by path, the C structures they share with us, and prototypes.

Every ``Structure`` below mirrors a declaration of libubox (list.h, avl.h, uloop.h, blob.h,
blobmsg.h) or libubus (libubus.h, ubusmsg.h) field for field, so ctypes computes the offsets and
sizes for the running platform (64-bit and 32-bit alike); no offset is written by hand.

The one field whose size depends on how libc was built is the ``struct timeval`` inside
``ubus_context.pending_timer``: 64-bit ``time_t`` on every 64-bit target and on OpenWrt's musl
(>= 1.2) on 32-bit targets, 32-bit on an old-style 32-bit glibc. It only moves the fields after
it (``connection_lost`` and friends); :func:`context_layouts` offers both and the client picks the
one that matches a freshly connected context (``msgbuf_data_len == UBUS_MSG_CHUNK_SIZE``).

The libraries are not thread-safe (libubus keeps a global ``struct blob_buf``): use one thread.
"""

from __future__ import annotations

import ctypes
import glob
import os
from collections.abc import Iterable, Sequence
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    Union,
    c_bool,
    c_byte,
    c_char_p,
    c_int,
    c_int64,
    c_long,
    c_uint,
    c_uint8,
    c_uint16,
    c_uint32,
    c_ulong,
    c_void_p,
)
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ENV_LIBUBOX",
    "ENV_LIBUBUS",
    "UBUS_MSG_CHUNK_SIZE",
    "UbusLibraryError",
    "UbusLibs",
    "candidate_paths",
    "context_layouts",
    "load",
]

#: explicit path of libubus.so (or of a directory holding it), for tests and odd installs
ENV_LIBUBUS = "BONDING_LIBUBUS"
#: explicit path of libubox.so (default: next to libubus, then the usual places)
ENV_LIBUBOX = "BONDING_LIBUBOX"
#: an OpenWrt userland built elsewhere (``$OWRT_PREFIX/lib``)
ENV_OWRT_PREFIX = "OWRT_PREFIX"

SYSTEM_DIRS = ("/lib", "/usr/lib", "/usr/local/lib")

UBUS_MSG_CHUNK_SIZE = 65536
ULOOP_READ = 1


class UbusLibraryError(OSError):
    """libubus or libubox could not be loaded; the message names every path tried."""


# --------------------------------------------------------------------------- libubox structures


class ListHead(Structure):
    pass


ListHead._fields_ = [("next", POINTER(ListHead)), ("prev", POINTER(ListHead))]


class AvlNode(Structure):
    pass


AvlNode._fields_ = [
    ("list", ListHead),
    ("parent", POINTER(AvlNode)),
    ("left", POINTER(AvlNode)),
    ("right", POINTER(AvlNode)),
    ("key", c_void_p),
    ("balance", c_byte),
    ("leader", c_bool),
]

AVL_TREE_COMP = CFUNCTYPE(c_int, c_void_p, c_void_p, c_void_p)


class AvlTree(Structure):
    _fields_ = [
        ("list_head", ListHead),
        ("root", POINTER(AvlNode)),
        ("count", c_uint),
        ("allow_dups", c_bool),
        ("comp", AVL_TREE_COMP),
        ("cmp_ptr", c_void_p),
    ]


ULOOP_FD_HANDLER = CFUNCTYPE(None, c_void_p, c_uint)


class UloopFd(Structure):
    _fields_ = [
        ("cb", ULOOP_FD_HANDLER),
        ("fd", c_int),
        ("eof", c_bool),
        ("error", c_bool),
        ("registered", c_bool),
        ("flags", c_uint8),
    ]


ULOOP_TIMEOUT_HANDLER = CFUNCTYPE(None, c_void_p)


class Timeval64(Structure):
    """``struct timeval`` with 64-bit time_t and suseconds_t (musl >= 1.2, glibc _TIME_BITS=64)."""

    _fields_ = [("tv_sec", c_int64), ("tv_usec", c_int64)]


class Timeval32(Structure):
    """``struct timeval`` of a 32-bit libc with 32-bit time_t (``long`` fields)."""

    _fields_ = [("tv_sec", c_long), ("tv_usec", c_long)]


class BlobmsgPolicy(Structure):
    _fields_ = [("name", c_char_p), ("type", c_uint)]


class BlobBuf(Structure):
    _fields_ = [
        ("head", c_void_p),
        ("grow", c_void_p),
        ("buflen", c_int),
        ("buf", c_void_p),
    ]


# --------------------------------------------------------------------------- libubus structures

# handler prototypes; pointers we only pass around are c_void_p (delivered as int | None)
UBUS_HANDLER = CFUNCTYPE(c_int, c_void_p, c_void_p, c_void_p, c_char_p, c_void_p)
UBUS_STATE_HANDLER = CFUNCTYPE(None, c_void_p, c_void_p)
UBUS_EVENT_HANDLER = CFUNCTYPE(None, c_void_p, c_void_p, c_char_p, c_void_p)
UBUS_DATA_HANDLER = CFUNCTYPE(None, c_void_p, c_int, c_void_p)
UBUS_FD_HANDLER = CFUNCTYPE(None, c_void_p, c_int)
UBUS_COMPLETE_HANDLER = CFUNCTYPE(None, c_void_p, c_int)
UBUS_CONNECTION_LOST = CFUNCTYPE(None, c_void_p)
UBUS_MONITOR_CB = CFUNCTYPE(None, c_void_p, c_uint32, c_void_p)
UBUS_LOOKUP_HANDLER = CFUNCTYPE(None, c_void_p, c_void_p, c_void_p)


class UbusMsghdr(Structure):
    # __attribute__((packed, aligned(4))): the natural layout is already 8 bytes, 4-aligned
    _fields_ = [
        ("version", c_uint8),
        ("type", c_uint8),
        ("seq", c_uint16),
        ("peer", c_uint32),
    ]


class UbusMsghdrBuf(Structure):
    _fields_ = [("hdr", UbusMsghdr), ("data", c_void_p)]


class UbusMethod(Structure):
    _fields_ = [
        ("name", c_char_p),
        ("handler", UBUS_HANDLER),
        ("mask", c_ulong),
        ("tags", c_ulong),
        ("policy", POINTER(BlobmsgPolicy)),
        ("n_policy", c_int),
    ]


class UbusObjectType(Structure):
    _fields_ = [
        ("name", c_char_p),
        ("id", c_uint32),
        ("methods", POINTER(UbusMethod)),
        ("n_methods", c_int),
    ]


class UbusObject(Structure):
    _fields_ = [
        ("avl", AvlNode),
        ("name", c_char_p),
        ("id", c_uint32),
        ("path", c_char_p),
        ("type", POINTER(UbusObjectType)),
        ("subscribe_cb", UBUS_STATE_HANDLER),
        ("has_subscribers", c_bool),
        ("methods", POINTER(UbusMethod)),
        ("n_methods", c_int),
    ]


class UbusEventHandler(Structure):
    _fields_ = [("obj", UbusObject), ("cb", UBUS_EVENT_HANDLER)]


class UbusAclKey(Structure):
    _fields_ = [("user", c_void_p), ("group", c_void_p), ("object", c_void_p)]


class UbusRequestData(Structure):
    _fields_ = [
        ("object", c_uint32),
        ("peer", c_uint32),
        ("seq", c_uint16),
        ("acl", UbusAclKey),
        ("deferred", c_bool),
        ("fd", c_int),
        ("req_fd", c_int),
    ]


class UbusRequest(Structure):
    _fields_ = [
        ("list", ListHead),
        ("pending", ListHead),
        ("status_code", c_int),
        ("status_msg", c_bool),
        ("blocked", c_bool),
        ("cancelled", c_bool),
        ("notify", c_bool),
        ("peer", c_uint32),
        ("seq", c_uint16),
        ("raw_data_cb", UBUS_DATA_HANDLER),
        ("data_cb", UBUS_DATA_HANDLER),
        ("fd_cb", UBUS_FD_HANDLER),
        ("complete_cb", UBUS_COMPLETE_HANDLER),
        ("fd", c_int),
        ("ctx", c_void_p),
        ("priv", c_void_p),
    ]


class UbusObjectData(Structure):
    _fields_ = [
        ("id", c_uint32),
        ("type_id", c_uint32),
        ("path", c_char_p),
        ("signature", c_void_p),
    ]


class _AutoSubscribe(Structure):
    _fields_ = [
        ("auto_subscribers", ListHead),
        ("auto_subscribe_event_handler", UbusEventHandler),
    ]


class _Channel(Structure):
    _fields_ = [("request_handler", UBUS_HANDLER)]


class _ContextUnion(Union):
    _fields_ = [("auto", _AutoSubscribe), ("channel", _Channel)]


def _make_context(timeval: type[Structure], suffix: str) -> type[Structure]:
    class UloopTimeout(Structure):
        _fields_ = [
            ("list", ListHead),
            ("pending", c_bool),
            ("cb", ULOOP_TIMEOUT_HANDLER),
            ("time", timeval),
        ]

    class UbusContext(Structure):
        _anonymous_ = ("u",)
        _fields_ = [
            ("requests", ListHead),
            ("objects", AvlTree),
            ("pending", ListHead),
            ("sock", UloopFd),
            ("pending_timer", UloopTimeout),
            ("local_id", c_uint32),
            ("request_seq", c_uint16),
            ("cancel_poll", c_bool),
            ("stack_depth", c_int),
            ("connection_lost", UBUS_CONNECTION_LOST),
            ("monitor_cb", UBUS_MONITOR_CB),
            ("msgbuf", UbusMsghdrBuf),
            ("msgbuf_data_len", c_uint32),
            ("msgbuf_reduction_counter", c_int),
            ("u", _ContextUnion),
        ]

    UloopTimeout.__name__ = UloopTimeout.__qualname__ = "UloopTimeout" + suffix
    UbusContext.__name__ = UbusContext.__qualname__ = "UbusContext" + suffix
    return UbusContext


UbusContext64 = _make_context(Timeval64, "64")
UbusContext32 = _make_context(Timeval32, "32")


def context_layouts() -> tuple[type[Structure], ...]:
    """``struct ubus_context`` candidates, most likely first (see the module docstring)."""
    if ctypes.sizeof(c_void_p) == 8 or ctypes.sizeof(Timeval32) == ctypes.sizeof(Timeval64):
        return (UbusContext64,)
    return (UbusContext64, UbusContext32)


# --------------------------------------------------------------------------- loading


def _expand(entry: str, name: str) -> list[str]:
    """A file or a directory (then ``name`` and ``name.*`` inside it, newest ABI first)."""
    if os.path.isdir(entry):
        found = [os.path.join(entry, name)]
        found += sorted(glob.glob(os.path.join(glob.escape(entry), name + ".*")), reverse=True)
        return found
    return [entry]


def candidate_paths(
    name: str,
    explicit: str | None = None,
    env_var: str | None = None,
    extra_dirs: Iterable[str] = (),
    environ: os._Environ[str] | dict[str, str] | None = None,
) -> list[str]:
    """Where to look for ``name`` (e.g. ``libubus.so``), in order.

    An explicit path (argument, then ``env_var``) is the only candidate when given: a test that
    names a library must not silently get another one. Otherwise: ``extra_dirs``,
    ``$OWRT_PREFIX/lib``, ``/lib``, ``/usr/lib``, ``/usr/local/lib`` (each as ``name`` and
    ``name.*``: OpenWrt ships ``/lib/libubus.so.<ABI>`` without the plain ``.so`` link).
    """
    env = os.environ if environ is None else environ
    forced = explicit or (env.get(env_var) if env_var else None)
    if forced:
        return _expand(forced, name)
    dirs: list[str] = list(extra_dirs)
    prefix = env.get(ENV_OWRT_PREFIX)
    if prefix:
        dirs.append(os.path.join(prefix, "lib"))
    dirs.extend(SYSTEM_DIRS)
    paths: list[str] = []
    for d in dirs:
        for p in _expand(d, name) if os.path.isdir(d) else [os.path.join(d, name)]:
            if p not in paths:
                paths.append(p)
    return paths


def _load_first(paths: Sequence[str], what: str, fallback: str | None) -> tuple[ctypes.CDLL, str]:
    tried: list[str] = []
    for path in paths:
        if not os.path.exists(path):
            tried.append(f"{path} (absent)")
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as exc:
            tried.append(f"{path} ({exc})")
    if fallback:
        # only here: ctypes.util loads shutil, tempfile and random (0.6 MB of bondingd's RSS)
        from ctypes.util import find_library

        found = find_library(fallback)
        if found:
            try:
                return ctypes.CDLL(found), found
            except OSError as exc:
                tried.append(f"{found} ({exc})")
        else:
            tried.append(f"find_library({fallback!r}) (nothing)")
    raise UbusLibraryError(
        f"cannot load {what}; tried: " + "; ".join(tried) + f". Install it (OpenWrt: {what} "
        f"package) or point {ENV_LIBUBUS}/{ENV_LIBUBOX} or {ENV_OWRT_PREFIX} at it."
    )


def _proto(lib: ctypes.CDLL, name: str, restype: Any, *argtypes: Any) -> Any:
    fn = getattr(lib, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


@dataclass(frozen=True)
class UbusLibs:
    """The loaded libraries, with prototypes set on the functions this package uses."""

    ubus: ctypes.CDLL
    ubox: ctypes.CDLL
    ubus_path: str
    ubox_path: str


_cache: dict[tuple[str | None, str | None], UbusLibs] = {}


def load(libubus: str | None = None, libubox: str | None = None) -> UbusLibs:
    """Load libubox then libubus (cached per argument pair).

    libubox is loaded first, by path, so libubus finds it by its soname even when it lives
    outside the linker's search path (``$OWRT_PREFIX/lib`` without LD_LIBRARY_PATH).
    """
    key = (libubus, libubox)
    cached = _cache.get(key)
    if cached is not None:
        return cached
    ubus_paths = candidate_paths("libubus.so", libubus, ENV_LIBUBUS)
    forced_ubox = libubox or os.environ.get(ENV_LIBUBOX)
    siblings = {os.path.dirname(p) for p in ubus_paths if os.path.exists(p)}
    ubox_paths = candidate_paths(
        "libubox.so", forced_ubox, None, extra_dirs=sorted(d for d in siblings if d)
    )
    ubox, ubox_path = _load_first(ubox_paths, "libubox", "ubox")
    ubus, ubus_path = _load_first(ubus_paths, "libubus", "ubus")
    _prototypes(ubus, ubox)
    libs = UbusLibs(ubus=ubus, ubox=ubox, ubus_path=ubus_path, ubox_path=ubox_path)
    _cache[key] = libs
    return libs


def _prototypes(ubus: ctypes.CDLL, ubox: ctypes.CDLL) -> None:
    p = c_void_p
    _proto(ubus, "ubus_connect", p, c_char_p)
    _proto(ubus, "ubus_reconnect", c_int, p, c_char_p)
    _proto(ubus, "ubus_free", None, p)
    _proto(ubus, "ubus_strerror", c_char_p, c_int)
    _proto(ubus, "ubus_add_object", c_int, p, p)
    _proto(ubus, "ubus_remove_object", c_int, p, p)
    _proto(ubus, "ubus_lookup_id", c_int, p, c_char_p, POINTER(c_uint32))
    _proto(ubus, "ubus_lookup", c_int, p, c_char_p, UBUS_LOOKUP_HANDLER, p)
    _proto(ubus, "ubus_send_reply", c_int, p, p, c_char_p)
    _proto(ubus, "ubus_complete_deferred_request", None, p, p, c_int)
    _proto(ubus, "ubus_send_event", c_int, p, c_char_p, c_char_p)
    _proto(ubus, "ubus_register_event_handler", c_int, p, p, c_char_p)
    _proto(ubus, "ubus_invoke_fd", c_int, p, c_uint32, c_char_p, c_char_p,
           UBUS_DATA_HANDLER, p, c_int, c_int)  # fmt: skip
    _proto(ubus, "ubus_invoke_async_fd", c_int, p, c_uint32, c_char_p, c_char_p, p, c_int)
    _proto(ubus, "ubus_complete_request_async", None, p, p)
    _proto(ubus, "ubus_abort_request", None, p, p)
    # libubox: only used to cross-check the pure-Python codec
    _proto(ubox, "blob_buf_init", c_int, p, c_int)
    _proto(ubox, "blob_buf_free", None, p)
    _proto(ubox, "blobmsg_add_field", c_int, p, c_int, c_char_p, c_char_p, c_uint)
    _proto(ubox, "blobmsg_open_nested", p, p, c_char_p, c_bool)
    _proto(ubox, "blob_nest_end", None, p, p)

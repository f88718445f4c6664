"""The proxy runs as its own user with only the network capabilities it needs.

bondingd runs as root (it owns routes, rules and MPTCP endpoints); the proxy parses what LAN
hosts and the internet send it and needs far less:

* CAP_NET_ADMIN: IP_TRANSPARENT on its tproxy listener and SO_MARK on its own connections;
* CAP_NET_BIND_SERVICE: a tproxy port below 1024, should one be configured;
* CAP_NET_RAW: IP_TRANSPARENT is also allowed with it (older kernels checked only this one).

The child drops to the user between fork and exec (:func:`drop`): PR_SET_KEEPCAPS, no
supplementary groups, setgid, setuid, then those three capabilities as permitted, effective,
inheritable and *ambient* (so they survive exec of an ordinary binary), and no_new_privs (no
setuid or file capability can give it more).  Everything else, and root's environment, is left
behind: it cannot read bondingd's files, ptrace bondingd, or load kernel modules.

The user is option ``proxy_user`` (default ``bonding``, created by the package from its
``USERID``); ``root`` keeps the proxy as root, which the status then says.
"""

from __future__ import annotations

import ctypes
import os
import pwd
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

CAP_NET_BIND_SERVICE: Final = 10
CAP_NET_ADMIN: Final = 12
CAP_NET_RAW: Final = 13
CAPS: Final = (CAP_NET_BIND_SERVICE, CAP_NET_ADMIN, CAP_NET_RAW)

_PR_SET_KEEPCAPS: Final = 8
_PR_SET_NO_NEW_PRIVS: Final = 38
_PR_CAP_AMBIENT: Final = 47
_PR_CAP_AMBIENT_RAISE: Final = 2
_CAP_V3: Final = 0x20080522


class UserError(Exception):
    """The proxy user does not exist (or is not usable)."""


@dataclass(frozen=True)
class Identity:
    user: str
    uid: int
    gid: int


ROOT: Final = Identity("root", 0, 0)


def lookup(user: str) -> Identity:
    """The uid and gid of `user`; UserError that says how to fix it when there is none."""
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise UserError(f"the proxy user '{user}' does not exist: reinstall the bonding package "
                        "(it creates user 'bonding'), or set option proxy_user to an existing "
                        "unprivileged user") from None
    return Identity(user, pw.pw_uid, pw.pw_gid)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def _libc() -> ctypes.CDLL:
    """The C library this process already runs on (glibc or musl), by dlopen(NULL): nothing to
    search for in the child (ctypes.util.find_library would run ldconfig there, and names
    libc.so.6, which musl does not have)."""
    return ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def drop(ident: Identity, caps: tuple[int, ...] = CAPS) -> None:
    """In the child, before exec: become `ident` keeping only `caps` (see the module doc)."""
    if ident.uid == os.geteuid():
        return  # already that user (root for proxy_user 'root'; a test run by its user)
    libc = _libc()
    _check(libc.prctl(_PR_SET_KEEPCAPS, 1, 0, 0, 0), "prctl(PR_SET_KEEPCAPS)")
    os.setgroups([])
    os.setgid(ident.gid)
    os.setuid(ident.uid)
    mask = sum(1 << c for c in caps)
    header = _CapHeader(_CAP_V3, 0)
    data = (_CapData * 2)(_CapData(mask, mask, mask), _CapData(0, 0, 0))
    _check(libc.capset(ctypes.byref(header), data), "capset")
    for cap in caps:
        _check(libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_RAISE, cap, 0, 0),
               f"prctl(PR_CAP_AMBIENT_RAISE, {cap})")
    _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")


def clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The proxy's whole environment: a PATH and its own variables, nothing of bondingd's."""
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **extra}

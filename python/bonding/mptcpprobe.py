"""MPTCP checks: an MPTCP connection to the server through each path, to see if it stays MPTCP.

Every `interval_s`, one non-blocking MPTCP connect (IPPROTO_MPTCP) to the active server's port
per path, bound to the path's device and source address like the proxy's subflows.  When the
handshake completes, the kernel says whether the peer's SYN-ACK carried MP_CAPABLE:
`getsockopt(SOL_MPTCP, MPTCP_INFO)` fails with EOPNOTSUPP on a connection that fell back to TCP
(kernel 6.18 here; older kernels answer with MPTCP_INFO_FLAG_FALLBACK in mptcpi_flags, which is
read too).  Then the socket is closed, nothing sent: the proxy reads end-of-file, as with the
server probe (bonding.serverprobe).  A connect that fails or gets no answer within the timeout
says nothing about MPTCP (Check.FAILED).

Cost: one handshake and a close (about 500 bytes) per path every interval (60 s by default:
about 22 MB a month per path), and one more a few seconds after a fallback to confirm it.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import struct
from collections.abc import Callable, Sequence

from bonding.core.mptcpblock import Check
from bonding.periodic import Periodic
from bonding.serverprobe import Target, Via

log = logging.getLogger(__name__)

SOL_MPTCP = 284
MPTCP_INFO = 1
MPTCP_INFO_FLAG_FALLBACK = 1
MPTCP_INFO_FLAGS_OFFSET = 8  # struct mptcp_info: six __u8, then __u32 mptcpi_flags
IPPROTO_MPTCP = 262


def fell_back(sock: socket.socket) -> bool:
    """Whether a connected MPTCP socket fell back to plain TCP."""
    try:
        info = sock.getsockopt(SOL_MPTCP, MPTCP_INFO, 64)
    except OSError as e:
        if e.errno == errno.EOPNOTSUPP:
            return True
        raise
    if len(info) < MPTCP_INFO_FLAGS_OFFSET + 4:
        return False
    (flags,) = struct.unpack_from("=I", info, MPTCP_INFO_FLAGS_OFFSET)
    return bool(flags & MPTCP_INFO_FLAG_FALLBACK)


class MptcpChecker:
    """Checks the `target()` server through `paths()` every `interval_s`; `on_check(path,
    Check)` gets each result."""

    def __init__(self, *, interval_s: float, target: Callable[[], Target | None],
                 paths: Callable[[], Sequence[Via]], timeout_s: float,
                 on_check: Callable[[str, Check], None]) -> None:
        self.target = target
        self.paths = paths
        self.timeout_s = timeout_s
        self.on_check = on_check
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clock = Periodic(interval_s, self.round, "MPTCP check")
        self._open: dict[int, tuple[socket.socket, asyncio.TimerHandle]] = {}

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._clock.start()

    def close(self) -> None:
        self._clock.stop()
        for fd, (sock, timer) in list(self._open.items()):
            timer.cancel()
            self._drop(fd, sock)

    def round(self) -> None:
        t = self.target()
        if t is None or t.error:
            return
        for via in self.paths():
            self._connect(t, via)

    def check(self, path: str) -> None:
        """Check one path now (if it is still one of `paths()`)."""
        t = self.target()
        via = next((v for v in self.paths() if v.name == path), None)
        if t is not None and not t.error and via is not None and not self._clock.stopped:
            self._connect(t, via)

    def _connect(self, t: Target, via: Via) -> None:
        assert self._loop is not None
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK
                                 | socket.SOCK_CLOEXEC, IPPROTO_MPTCP)
        except OSError as e:
            log.warning("MPTCP check: cannot open an MPTCP socket: %s", e)
            return
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, via.device.encode())
            sock.bind((via.source, 0))
            code = sock.connect_ex((t.address, t.port))
        except OSError:
            sock.close()
            self.on_check(via.name, Check.FAILED)
            return
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            self.on_check(via.name, Check.FAILED)
            return
        fd = sock.fileno()

        def expired() -> None:
            self._drop(fd, sock)
            self.on_check(via.name, Check.FAILED)

        def writable() -> None:
            entry = self._open.pop(fd, None)
            if entry is None:
                return
            entry[1].cancel()
            assert self._loop is not None
            self._loop.remove_writer(fd)
            try:
                ok = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
                got = (Check.FALLBACK if fell_back(sock) else Check.MPTCP) if ok else Check.FAILED
            except OSError:
                got = Check.FAILED
            sock.close()
            if not self._clock.stopped:
                self.on_check(via.name, got)

        self._open[fd] = (sock, self._loop.call_later(self.timeout_s, expired))
        self._loop.add_writer(fd, writable)

    def _drop(self, fd: int, sock: socket.socket) -> None:
        self._open.pop(fd, None)
        if self._loop is not None:
            self._loop.remove_writer(fd)
        sock.close()

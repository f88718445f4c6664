"""Non-blocking TCP (or MPTCP) connects bound to a path, each with a timeout, on asyncio.

What the server probe (bonding.serverprobe) and the MPTCP check (bonding.mptcpprobe) both do:
a socket bound to the path's device and source address (so it leaves by that link, as the
proxy's subflows do), a connect that does not block, and one answer per attempt through loop
callbacks only (no task per attempt).
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bonding.periodic import Periodic

# done(sock, err): err is SO_ERROR or connect's code (0: connected), None: no answer in time.
# The socket is still open while done runs (to ask it more), and closed after.
Done = Callable[[socket.socket, int | None], None]


@dataclass(frozen=True)
class Via:
    """A path to connect through."""

    name: str
    device: str
    source: str


class Connects:
    """The attempts in flight, so that `close()` stops them all."""

    def __init__(self) -> None:
        self._open: dict[int, tuple[socket.socket, asyncio.TimerHandle]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, device: str, source: str, address: str, port: int, timeout_s: float,
              done: Done, proto: int = 0) -> None:
        """One connect from `source` on `device` to `address`:`port`.  OSError when no socket
        can be opened; every other outcome goes to `done`, at once or later."""
        loop = self._loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK
                             | socket.SOCK_CLOEXEC, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())
            sock.bind((source, 0))
            code = sock.connect_ex((address, port))
        except OSError as e:
            code = e.errno or errno.EIO
        if code != errno.EINPROGRESS:  # connected at once (a local server), or failed
            self._finish(sock, done, code)
            return
        fd = sock.fileno()

        def expired() -> None:
            self._forget(fd)
            self._finish(sock, done, None)

        def writable() -> None:
            entry = self._forget(fd)
            if entry is not None:
                entry[1].cancel()
                self._finish(sock, done, sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))

        self._open[fd] = (sock, loop.call_later(timeout_s, expired))
        loop.add_writer(fd, writable)

    def close(self) -> None:
        """Drop every attempt in flight without an answer."""
        for fd in list(self._open):
            entry = self._forget(fd)
            if entry is not None:
                entry[1].cancel()
                entry[0].close()

    def _forget(self, fd: int) -> tuple[socket.socket, asyncio.TimerHandle] | None:
        entry = self._open.pop(fd, None)
        if entry is not None and self._loop is not None:
            self._loop.remove_writer(fd)
        return entry

    @staticmethod
    def _finish(sock: socket.socket, done: Done, err: int | None) -> None:
        try:
            done(sock, err)
        finally:
            sock.close()


class Rounds:
    """A round of connects every `interval_s` through the paths `paths()` names: the subclass's
    `round()` (the server probe, the MPTCP check), on a Periodic named `what` in the log."""

    def __init__(self, interval_s: float, what: str, paths: Callable[[], Sequence[Via]]) -> None:
        self.paths = paths
        self._clock = Periodic(interval_s, self.round, what)
        self._connects = Connects()

    def round(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._clock.start()

    def close(self) -> None:
        """Stop now: no attempt is started or reported after this."""
        self._clock.stop()
        self._connects.close()

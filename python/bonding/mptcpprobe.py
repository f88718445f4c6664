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

import errno
import logging
import socket
import struct
from collections.abc import Callable, Sequence

from bonding.connects import Rounds, Via
from bonding.core.mptcpblock import Check
from bonding.serverprobe import Target

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


class MptcpChecker(Rounds):
    """Checks the `target()` server through `paths()` every `interval_s`; `on_check(path,
    Check)` gets each result."""

    def __init__(self, *, interval_s: float, target: Callable[[], Target | None],
                 paths: Callable[[], Sequence[Via]], timeout_s: float,
                 on_check: Callable[[str, Check], None]) -> None:
        super().__init__(interval_s, "MPTCP check", paths)
        self.target = target
        self.timeout_s = timeout_s
        self.on_check = on_check

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
        def done(sock: socket.socket, err: int | None) -> None:
            try:
                got = (Check.FALLBACK if fell_back(sock) else Check.MPTCP) if err == 0 \
                    else Check.FAILED
            except OSError:
                got = Check.FAILED
            if not self._clock.stopped:
                self.on_check(via.name, got)

        try:
            self._connects.start(via.device, via.source, t.address, t.port, self.timeout_s,
                                 done, IPPROTO_MPTCP)
        except OSError as e:
            log.warning("MPTCP check: cannot open an MPTCP socket: %s", e)

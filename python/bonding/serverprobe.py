"""Server probing: a TCP connect to each server's port through each live path, on asyncio.

Every round, for every server the caller names, one non-blocking TCP connect per path, bound to
the path's device and source address (so it leaves by that link, as the proxy's subflows do).
The handshake completing proves the server's proxy listens; the socket is then closed at once,
nothing sent.  An orderly close (FIN), not a reset: the proxy reads end-of-file and closes
without a word, where a reset makes ss-server log an error for every probe.  The price is a
TIME_WAIT socket per probe on the router for a minute (a few hundred, a few hundred bytes each).
A refusal, a reset, an unreachable error or no answer within the timeout is a failed attempt.  A
server's round ends when every attempt has, and is reported as a bonding.core.servers.Round.

Plain TCP, not MPTCP: the probe asks whether the server listens, not how well the paths carry.
Cost: a handshake and a close per server, path and round, and no task per attempt
(loop callbacks only).
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bonding.connects import Rounds, Via
from bonding.core.servers import Attempt, Round

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """A server to probe this round."""

    name: str
    address: str  # an IPv4 address
    port: int
    error: str = ""  # set: it cannot be probed (e.g. its name does not resolve); every attempt
    # fails with this


@dataclass
class _Pending:
    server: str
    left: int
    attempts: list[Attempt] = field(default_factory=list)


def _error_text(code: int) -> str:
    if code == errno.ECONNREFUSED:
        return "connection refused"
    return os.strerror(code).lower() if code else "failed"


class ServerProber(Rounds):
    """Probes the servers `targets()` names through the paths `paths()` names, every interval.

    `timeout_s(server, path)` bounds each attempt; `on_round(server, Round)` gets each result.
    """

    def __init__(self, *, interval_s: float, targets: Callable[[], Sequence[Target]],
                 paths: Callable[[], Sequence[Via]], timeout_s: Callable[[str, str], float],
                 on_round: Callable[[str, Round], None]) -> None:
        super().__init__(interval_s, "server probe", paths)
        self.targets = targets
        self.timeout_s = timeout_s
        self.on_round = on_round

    def round(self) -> None:
        """Start one round now (on the running loop)."""
        targets = self.targets()
        paths = self.paths()
        for t in targets:
            pending = _Pending(t.name, len(paths))
            if not paths:
                self.on_round(t.name, Round(()))
                continue
            for via in paths:
                self._connect(pending, t, via)

    def _done(self, pending: _Pending, attempt: Attempt) -> None:
        pending.attempts.append(attempt)
        pending.left -= 1
        if pending.left == 0 and not self._clock.stopped:
            self.on_round(pending.server, Round(tuple(pending.attempts)))

    def _connect(self, pending: _Pending, t: Target, via: Via) -> None:
        if t.error:
            self._done(pending, Attempt(via.name, False, error=t.error))
            return
        timeout = self.timeout_s(t.name, via.name)
        started = time.monotonic()

        def done(sock: socket.socket, err: int | None) -> None:
            if err == 0:
                self._done(pending, Attempt(via.name, True, (time.monotonic() - started) * 1000))
            elif err is None:
                self._done(pending, Attempt(via.name, False,
                                            error=f"no answer within {timeout * 1000:.0f} ms"))
            else:
                self._done(pending, Attempt(via.name, False, error=_error_text(err)))

        try:
            ipaddress.IPv4Address(t.address)
            self._connects.start(via.device, via.source, t.address, t.port, timeout, done)
        except (ValueError, OSError) as e:
            self._done(pending, Attempt(via.name, False, error=f"cannot probe: {e}"))

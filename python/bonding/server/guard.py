"""The handshake guard: connections to a client's port that have not sent a Shadowsocks request
within HANDSHAKE_S seconds are shut down, so silent connections cannot pile up in a proxy.

Neither proxy does this itself: sing-box (1.14) has no handshake timeout at all and waits on a
silent connection for ever; ss-server's only timeout (``-t``) is the idle timeout of every
connection, authenticated ones included.  The guard runs as root beside the proxies (in the
``run`` supervisor, or as ``bonding-server guard`` under systemd).  Every GUARD_EVERY_S it lists
the established TCP sockets of the client ports (``ss -tnie``; an MPTCP connection's subflows
carry the inode of its MPTCP socket), remembers when it first saw each, and a connection seen
for HANDSHAKE_S or more that has received fewer than REQUEST_MIN_BYTES in all its subflows is
shut down: the guard takes the proxy's descriptor of it (pidfd_getfd) and calls shutdown() on
it, the proxy reads end-of-file and closes it.  A real client sends its request (salt, header,
address: 50 bytes at the least) with its first data, or 300 ms after the connection opens when
the application is silent.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bonding.server.plan import Facts
    from bonding.server.store import Store
    from bonding.server.system import HostAPI

log = logging.getLogger("bonding-server")

HANDSHAKE_S = 10.0
GUARD_EVERY_S = 2.0
REQUEST_MIN_BYTES = 50
_SYS_PIDFD_GETFD = 438  # the same number on every architecture (Linux ≥ 5.6)

_PORT = re.compile(r":(\d+)$")
_INO = re.compile(r"\bino:(\d+)")
_BYTES = re.compile(r"\bbytes_received:(\d+)")


@dataclass(frozen=True)
class Conn:
    port: int  # the client port (local)
    ino: int  # the inode of the proxy's socket
    received: int  # bytes the client sent on this socket (subflow)


def parse_ss(text: str, ports: Iterable[int]) -> list[Conn]:
    """`ss -H -tnie state established` output → the connections of ``ports``."""
    wanted = set(ports)
    out = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        words = line.split()
        if len(words) < 4 or line[:1].isspace():
            continue
        m = _PORT.search(words[2])
        if not m or int(m.group(1)) not in wanted:
            continue
        info = line + (lines[i + 1] if i + 1 < len(lines) and lines[i + 1][:1].isspace() else "")
        ino, got = _INO.search(info), _BYTES.search(info)
        if ino is None or ino.group(1) == "0":
            continue
        out.append(Conn(int(m.group(1)), int(ino.group(1)), int(got.group(1)) if got else 0))
    return out


def socket_fds(pid: int) -> dict[int, int]:
    """inode → descriptor of every socket process ``pid`` holds."""
    out = {}
    with contextlib.suppress(OSError):
        for name in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{name}")
                if target.startswith("socket:["):
                    out[int(target[8:-1])] = int(name)
    return out


def shut_down(pid: int, fds: Iterable[int]) -> int:
    """shutdown() each of process ``pid``'s descriptors ``fds``; how many were shut down."""
    libc = ctypes.CDLL(None, use_errno=True)
    done = 0
    try:
        pidfd = os.pidfd_open(pid)
    except OSError as e:
        log.warning("guard: cannot reach proxy %d: %s", pid, e.strerror)
        return 0
    try:
        for fd in fds:
            dup = libc.syscall(_SYS_PIDFD_GETFD, pidfd, fd, 0)
            if dup < 0:
                log.warning("guard: cannot take descriptor %d of proxy %d: %s", fd, pid,
                            os.strerror(ctypes.get_errno()))
                continue
            s = socket.socket(fileno=dup)
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
                done += 1
            s.close()
    finally:
        os.close(pidfd)
    return done


def list_established(ports: Iterable[int]) -> str:
    """The `ss` listing the guard reads (established TCP sockets of ``ports``, with info)."""
    from bonding.server.system import run

    flt = " or ".join(f"sport = :{p}" for p in sorted(ports))
    return run(["ss", "-H", "-tnie", "state", "established", f"( {flt} )"],
               check=False).stdout


@dataclass
class Guard:
    """Call :meth:`tick` often; it scans every GUARD_EVERY_S.  ``list_sockets`` gives the `ss`
    text for some ports, ``shut`` shuts descriptors of a pid down (replaceable for tests)."""

    list_sockets: Callable[[Iterable[int]], str] = list_established
    shut: Callable[[int, Iterable[int]], int] = shut_down
    fds: Callable[[int], dict[int, int]] = socket_fds
    clock: Callable[[], float] = time.monotonic
    first_seen: dict[int, float] = field(default_factory=dict)
    passed: set[int] = field(default_factory=set)  # sockets that have sent a request
    next_scan: float = 0.0
    shut_total: int = 0

    def tick(self, proxies: Mapping[int, int]) -> int:
        """``proxies``: client port → pid of its proxy.  Returns how many were shut down."""
        now = self.clock()
        if now < self.next_scan or not proxies:
            return 0
        self.next_scan = now + GUARD_EVERY_S
        received: dict[int, int] = {}
        port_of: dict[int, int] = {}
        for c in parse_ss(self.list_sockets(list(proxies)), proxies):
            received[c.ino] = received.get(c.ino, 0) + c.received
            port_of[c.ino] = c.port
        self.first_seen = {ino: self.first_seen.get(ino, now) for ino in received}
        # once through, always through: the subflow that carried the request may close later
        self.passed = {ino for ino in received
                       if ino in self.passed or received[ino] >= REQUEST_MIN_BYTES}
        late = [ino for ino in received if ino not in self.passed
                and now - self.first_seen[ino] >= HANDSHAKE_S]
        done = 0
        for port, pid in proxies.items():
            mine = [ino for ino in late if port_of[ino] == port]
            if not mine:
                continue
            fds = self.fds(pid)
            n = self.shut(pid, [fds[ino] for ino in mine if ino in fds])
            if n:
                log.info("guard: port %d: shut down %d connection(s) without a request "
                         "after %g s", port, n, HANDSHAKE_S)
            done += n
        for ino in late:
            self.first_seen.pop(ino, None)
        self.shut_total += done
        return done


# --- under systemd: a service of its own ---------------------------------------------------------
UNIT = "bonding-server-guard.service"


def unit(facts: Facts) -> dict[str, str]:
    """The guard's unit file (path → text), beside plan.units'."""
    from bonding.server.plan import SERVICE, UNIT_DIR

    return {f"{UNIT_DIR}/{UNIT}": f"""\
[Unit]
Description=bonding-server: shut down client connections that send no request in time
After={SERVICE}

[Service]
Type=simple
ExecStart={facts.exe} --state-dir {facts.state_dir} guard
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
"""}


def run_forever(host: HostAPI, store: Store) -> int:
    """`bonding-server guard`: the guard over the systemd units' proxies (their MainPID)."""
    from bonding.server.plan import unit_name

    g = Guard()
    while True:
        proxies = {}
        for c in store.clients():
            show = host.systemctl("show", "-p", "MainPID", unit_name(c.name), check=False)
            pid = show.strip().partition("=")[2]
            if pid.isdigit() and int(pid) > 0:
                proxies[c.port] = int(pid)
        g.tick(proxies)
        time.sleep(GUARD_EVERY_S)

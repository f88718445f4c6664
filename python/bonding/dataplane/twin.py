"""Run two programs as one process, for a proxy that needs one process per address family.

    python3 -m bonding.dataplane.twin [--user UID:GID] PROGRAM ARGS... -- PROGRAM ARGS...

ss-redir listens on one address: 127.0.0.1 takes what tproxy hands it in IPv4, ::1 what it hands
it in IPv6 (one socket on :: would take both for TCP, but ss-redir then misses the original
destination of IPv4 datagrams).  The supervisor runs one process per proxy; this is that
process: it starts both programs (in its own session, where the supervisor stops everything),
passes SIGTERM and SIGINT on to them, and as soon as either ends it stops the other and ends
with the same status, so that the supervisor restarts the pair.  Their output is its output.
With --user, both programs run as that user with the proxy's capabilities only
(bonding.dataplane.privdrop); the twin itself stays root, as the proxy user may not be able to
run bondingd's interpreter.
Standard library only (and bonding.dataplane.privdrop, which is too).
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

from bonding.dataplane import privdrop

STOP_TIMEOUT_S = 2.0
USAGE = ("usage: python3 -m bonding.dataplane.twin [--user UID:GID] PROGRAM ARGS... -- "
         "PROGRAM ARGS...")


def split(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """The two command lines, around the first '--'; ValueError when one is missing."""
    if "--" not in argv:
        raise ValueError("no '--' between the two programs")
    at = list(argv).index("--")
    first, second = list(argv[:at]), list(argv[at + 1:])
    if not first or not second:
        raise ValueError("each side of '--' needs a program")
    return first, second


def status_of(rc: int) -> int:
    """A child's returncode as an exit status (128 + signal, as a shell says it)."""
    return 128 - rc if rc < 0 else rc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()


def run(first: Sequence[str], second: Sequence[str],
        user: privdrop.Identity | None = None) -> int:
    procs: list[subprocess.Popen[bytes]] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    try:
        for cmd in (first, second):
            procs.append(subprocess.Popen(
                list(cmd), stdin=subprocess.DEVNULL,
                preexec_fn=None if user is None else functools.partial(privdrop.drop, user)))
    except OSError as e:
        print(f"twin: cannot start {e.filename or ' '.join(cmd)}: {e.strerror}", file=sys.stderr,
              flush=True)
        for p in procs:
            _stop(p)
        return 127
    while True:
        for p in procs:
            rc = p.poll()
            if rc is not None:
                name = os.path.basename(p.args[0] if isinstance(p.args, list) else str(p.args))
                print(f"twin: {name} (pid {p.pid}) ended with status {status_of(rc)}: "
                      "stopping the other", file=sys.stderr, flush=True)
                for other in procs:
                    _stop(other)
                return status_of(rc)
        with contextlib.suppress(ChildProcessError, InterruptedError):
            os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)
        time.sleep(0.01)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    user = None
    try:
        if args[:1] == ["--user"]:
            uid, _, gid = args[1].partition(":")
            user = privdrop.Identity(uid, int(uid), int(gid))
            args = args[2:]
        first, second = split(args)
    except (ValueError, IndexError) as e:
        print(f"twin: {e or 'bad --user'}\n{USAGE}", file=sys.stderr)
        return 2
    return run(first, second, user)


if __name__ == "__main__":
    sys.exit(main())

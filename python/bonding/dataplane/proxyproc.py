"""The proxy process the supervisor runs: one it starts, or one a previous bondingd left running
(a restart by procd, a kill -9 and respawn) that it adopts, so that the LAN's connections through
it go on.

    proc, out = spawn(launch, run_dir)         # started; `out` reads its output
    Record.of(proc.pid, launch).write(run_dir)
    rec = Record.read(run_dir)                 # in the next bondingd
    if rec is not None and rec.alive(run_dir) and rec.runs(launch, run_dir):
        proc, out = Proc(rec.pid), reader(run_dir)     # adopted
    else:
        clear(run_dir, rec)                    # stopped, its files (the key) removed
    status = await proc.wait()                 # None: not our child (adopted), status unknown

The record (``<run_dir>/proxy.pid``, root only) holds the pid, its start time in clock ticks
after boot (a reused pid has another), its launch (backend, argv, environment, user) and the
names of its config files: bondingd adopts only the process it would start itself, the same
launch with the same contents in each config file.

Its output goes to a FIFO in the run directory (``proxy.out``), which the proxy holds open for
reading and writing: its writes never fail for want of a reader while no bondingd reads (a Go
program such as sing-box dies of SIGPIPE writing to a pipe nobody reads), what it writes then
waits in the pipe's buffer (PIPE_BYTES) for the next bondingd, which opens the FIFO by its name.
Its end is non-blocking: should no bondingd come back (procd gave up respawning it), a proxy in C
(ss-redir) loses the lines that no longer fit instead of stalling on them; a Go one (sing-box)
waits on them in its own poller.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import functools
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Final

from bonding import safefile
from bonding.dataplane import privdrop
from bonding.dataplane.backends import Launch

RECORD: Final = "proxy.pid"
OUTPUT: Final = "proxy.out"
PIPE_BYTES: Final = 1 << 20  # what the proxy may write while no bondingd reads
POLL_S: Final = 0.2  # how often an exit is looked for where pidfd_open is missing
STOP_TIMEOUT_S: Final = 3.0
_FILE_NAME: Final = re.compile(r"[\w-][\w.-]*")  # a file of the run directory, no path


def identity(launch: Launch) -> dict[str, Any]:
    """A launch but its files' contents, as the record keeps it (JSON)."""
    return {"backend": launch.backend, "argv": list(launch.argv), "env": dict(launch.env),
            "user": [launch.user.user, launch.user.uid, launch.user.gid]}


def start_ticks(pid: int, proc: Path = Path("/proc")) -> int | None:
    """When `pid` started, in clock ticks after boot (`proc`/PID/stat: another PID namespace's
    /proc too); None: no such process, or a zombie."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()  # after the command's name
    except (OSError, ValueError):
        return None
    if not fields or fields[0] in ("Z", "X"):
        return None
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


@dataclasses.dataclass(frozen=True)
class Record:
    pid: int
    start: int | None  # start_ticks(pid) when it was started
    since: float  # the wall-clock time it started
    launch: dict[str, Any]  # identity() of its launch ({}: a record of an older bondingd)
    files: tuple[str, ...] = ()  # its config files in the run directory

    @classmethod
    def of(cls, pid: int, launch: Launch) -> Record:
        return cls(pid, start_ticks(pid), time.time(), identity(launch),
                   tuple(sorted(launch.files)))

    def runs(self, launch: Launch, run_dir: Path) -> bool:
        """It was started for `launch`: the same backend, argv, environment and user, and its
        config files (still there) hold what `launch` would write."""
        if self.launch != identity(launch) or set(self.files) != set(launch.files):
            return False
        try:
            return all((run_dir / name).read_text() == text for name, text in launch.files.items())
        except (OSError, UnicodeDecodeError):
            return False

    def write(self, run_dir: Path) -> None:
        safefile.replace(run_dir / RECORD, json.dumps(dataclasses.asdict(self)).encode(), 0o600,
                         follow=False)

    @classmethod
    def read(cls, run_dir: Path) -> Record | None:
        try:
            text = (run_dir / RECORD).read_text()
        except OSError:
            return None
        try:
            d = json.loads(text)
            if isinstance(d, int):  # an older bondingd's record: the pid alone
                return cls(d, None, 0.0, {})
            files = tuple(f for f in d.get("files", [])
                          if isinstance(f, str) and _FILE_NAME.fullmatch(f))
            launch = d.get("launch")
            return cls(int(d["pid"]), d.get("start"), float(d.get("since", 0.0)),
                       launch if isinstance(launch, dict) else {}, files)
        except (ValueError, TypeError, KeyError, AttributeError):
            return None

    def alive(self, run_dir: Path) -> bool:
        """The process it names still runs (the same one: its start time, our run directory in
        its command line)."""
        ticks = start_ticks(self.pid)
        if ticks is None or (self.start is not None and ticks != self.start):
            return False
        try:
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes()
        except OSError:
            return False
        return str(run_dir).encode() in cmdline


def clear(run_dir: Path, rec: Record | None) -> bool:
    """Stop what `rec` names (its session: SIGKILL) and remove its files, the record and the
    FIFO; True when a process was stopped."""
    stopped = False
    if rec is not None and rec.alive(run_dir):
        for kill in (os.killpg, os.kill):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                kill(rec.pid, signal.SIGKILL)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while start_ticks(rec.pid) is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        stopped = True
    for name in (*(rec.files if rec is not None else ()), RECORD, OUTPUT):
        with contextlib.suppress(FileNotFoundError):
            (run_dir / name).unlink()
    return stopped


# --- output ----------------------------------------------------------------------------------
_READ: Final = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW


def output_pipe(run_dir: Path) -> tuple[int, int]:
    """A new FIFO: (our end to read, the proxy's stdout and stderr)."""
    path = run_dir / OUTPUT
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    os.mkfifo(path, 0o600)
    rfd = os.open(path, _READ)
    try:
        wfd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
    except BaseException:
        os.close(rfd)
        raise
    with contextlib.suppress(OSError):
        fcntl.fcntl(wfd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    return rfd, wfd


def reader(run_dir: Path) -> int | None:
    """Our end of an adopted proxy's FIFO (None: there is none)."""
    try:
        return os.open(run_dir / OUTPUT, _READ)
    except OSError:
        return None


# --- the process -----------------------------------------------------------------------------
class Proc:
    """A proxy process: ours (`popen`) or adopted (not our child: its status is unknown)."""

    def __init__(self, pid: int, popen: subprocess.Popen[bytes] | None = None) -> None:
        self.pid = pid
        self.popen = popen
        self.returncode: int | None = None
        self.ended = False

    def _running(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return start_ticks(self.pid) is not None

    async def wait(self) -> int | None:
        """Its exit status once it ended (-N: killed by signal N; None: adopted)."""
        if not self.ended:
            try:
                fd: int | None = os.pidfd_open(self.pid)
            except (AttributeError, OSError):  # gone already, or an old kernel
                fd = None
            try:
                if fd is not None:
                    loop = asyncio.get_running_loop()
                    done: asyncio.Future[None] = loop.create_future()

                    def ended() -> None:
                        if not done.done():
                            done.set_result(None)

                    loop.add_reader(fd, ended)
                    try:
                        await done
                    finally:
                        loop.remove_reader(fd)
                else:
                    while self._running():
                        await asyncio.sleep(POLL_S)
            finally:
                if fd is not None:
                    os.close(fd)
            if self.popen is not None:
                self.returncode = self.popen.wait()
            self.ended = True
        return self.returncode


def spawn(launch: Launch, run_dir: Path) -> tuple[Proc, int]:
    """Start `launch` in a session of its own, its output to a new FIFO: (it, our end)."""
    rfd, wfd = output_pipe(run_dir)
    try:
        popen = subprocess.Popen(
            launch.argv, stdin=subprocess.DEVNULL, stdout=wfd, stderr=wfd,
            start_new_session=True, env=privdrop.clean_env(launch.env),
            preexec_fn=None if launch.drops_itself
            else functools.partial(privdrop.drop, launch.user))
    except BaseException:
        os.close(rfd)
        raise
    finally:
        os.close(wfd)
    return Proc(popen.pid, popen), rfd

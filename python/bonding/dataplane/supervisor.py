"""Run the proxy bondingd generated, restart it with backoff when it dies, report its state.

States (the ``proxy`` object of ``ubus call bonding status``):
- ``disabled``: no proxy is configured (``option proxy 'none'``) or bonding is disabled;
- ``running``:  the process is alive;
- ``stopped``:  it exited and is restarted after a backoff delay (0.5 s doubling to 30 s);
- ``failed``:   it cannot be started (a missing program, no key, a cipher the backend does not
                speak: ``error`` says what to do; retried every 30 s, and on reload), or it keeps
                dying (5 exits in a row each within 10 s of its start; retried every 30 s and
                ``running`` again once a start survives 10 s).

The process runs in a session of its own (so it and anything it forks are stopped together),
its output goes to bondingd's log, its last lines to ``error`` when it exits.  A bondingd that
ends for a restart (:meth:`Supervisor.detach`) or dies leaves it running; the next one adopts it
when it would start the very same process (bonding.dataplane.proxyproc: its record in
``<run_dir>/proxy.pid``), so that the LAN's connections through it go on, and stops it otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import time
from collections import deque
from collections.abc import Callable, Collection, Coroutine
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from bonding import safefile
from bonding.dataplane import privdrop, proxyproc
from bonding.dataplane.backends import Launch
from bonding.dataplane.proxyproc import Proc

log = logging.getLogger("bondingd.proxy")

BACKOFF_S: Final = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
HEALTHY_S: Final = 10.0  # a run this long resets the backoff
CRASH_LOOP: Final = 5  # this many quick exits in a row: failed
RETRY_S: Final = 30.0  # a failed start is tried again after this
STOP_TIMEOUT_S: Final = 3.0
PID_FILE: Final = proxyproc.RECORD
TAIL_LINES: Final = 5
REPEAT_S: Final = 60.0
# What changes between two otherwise equal lines: ss-libev's date, sing-box's seconds counter.
_TIMESTAMP_RE: Final = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d\S*\s*|"
                                  r"(?<=^[A-Z]{4})\[\d+\]|(?<=^[A-Z]{5})\[\d+\]")


class State(StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"
    FAILED = "failed"
    DISABLED = "disabled"


def write_private(path: Path, text: str, owner: privdrop.Identity = privdrop.ROOT) -> None:
    """Write a file only `owner` (the proxy's user) can read (it holds a key), atomically."""
    if owner.uid != os.geteuid():
        safefile.replace(path, text.encode(), 0o400, (owner.uid, owner.gid), follow=False)
    else:
        safefile.replace(path, text.encode(), 0o600, follow=False)


class Supervisor:
    """One proxy process at a time, as :meth:`set` asks."""

    def __init__(self, run_dir: Path, on_change: Callable[[], None] | None = None) -> None:
        self.run_dir = run_dir
        self.on_change = on_change
        self.backend: str | None = None
        self.state = State.DISABLED
        self.pid: int | None = None
        self.restarts = 0
        self.since = time.time()
        self.error = ""
        self.launch: Launch | None = None
        self._task: asyncio.Task[None] | None = None
        self._proc: Proc | None = None
        self._tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._last_exit = ""
        self._logged: dict[str, float] = {}
        self._orphan_checked = False
        self._written: set[str] = set()  # files of ours in run_dir
        self._retiring: set[asyncio.Task[None]] = set()  # processes being stopped for good

    # --- what to run ---------------------------------------------------------------------------
    def set(self, launch: Launch | None) -> None:
        """Run `launch` (a running process that does the same is kept), or nothing (disabled)."""
        if launch is not None and self.launch is not None and launch.key() == self.launch.key():
            return
        old = self._cancel()
        self.launch = launch
        self.restarts = 0
        self._last_exit = ""
        if launch is None:
            self._take_over(None)
            self.backend = None
            self._remove_files()
            self._set_state(State.DISABLED)
            self._retire(old)
            self._task = None
            return
        self.backend = launch.backend
        adopted = self._take_over(launch)
        self._retire(old)
        self._task = self._spawn(self._run(launch, adopted))

    def fail(self, backend: str, error: str, retry: Callable[[], Launch] | None = None) -> None:
        """The proxy cannot be started: failed with `error`; `retry()` is tried every RETRY_S
        (it raises BackendError while the problem lasts)."""
        old = self._cancel()
        self.launch = None
        self._take_over(None)
        self._remove_files()
        self.backend = backend
        self.restarts = 0
        if error != self.error or self.state is not State.FAILED:
            log.error("proxy %s: %s", backend, error)
        self._set_state(State.FAILED, error)
        self._retire(old)
        self._task = self._spawn(self._retry(retry))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(coro)

    def _retire(self, old: Proc | None) -> None:
        """Stop `old` for good, in a task of its own that no later change cancels: handed to
        the next launch's task, it ran on (holding the port and the key) when a second change
        came before that task had started."""
        if old is not None:
            task = self._spawn(self._terminate(old))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    async def _retired(self) -> None:
        """Wait until every process being stopped has ended (it holds the port we need)."""
        if self._retiring:
            await asyncio.shield(asyncio.gather(*self._retiring, return_exceptions=True))

    async def _retry(self, make: Callable[[], Launch] | None) -> None:
        from bonding.dataplane.backends import BackendError

        await self._retired()
        if make is None:
            return
        while True:
            await asyncio.sleep(RETRY_S)
            try:
                launch = make()
            except BackendError as e:
                self._set_state(State.FAILED, str(e))
                continue
            self.launch = launch
            self.backend = launch.backend
            await self._run(launch)
            return

    def _cancel(self) -> Proc | None:
        """Stop the current task; its process (if alive) is returned to be terminated."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        proc, self._proc, self.pid = self._proc, None, None
        return proc if proc is not None and not proc.ended else None

    def _set_state(self, state: State, error: str = "") -> None:
        changed = state is not self.state or error != self.error
        if state is not self.state:
            self.since = time.time()
        self.state, self.error = state, error
        if changed:
            self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    # --- the process ---------------------------------------------------------------------------
    def _start(self, launch: Launch) -> tuple[Proc, int]:
        """Write its files and start it (OSError when it cannot be): (it, its output)."""
        self._remove_files(keep=launch.files)
        for fname, text in launch.files.items():
            write_private(self.run_dir / fname, text, launch.user)
            self._written.add(fname)
        self._tail.clear()
        proc, rfd = proxyproc.spawn(launch, self.run_dir)
        with contextlib.suppress(OSError):
            proxyproc.Record.of(proc.pid, launch).write(self.run_dir)
        log.info("proxy %s started: %s pid %d", launch.backend, launch.program, proc.pid)
        return proc, rfd

    async def _run(self, launch: Launch,
                   adopted: tuple[Proc, int | None] | None = None) -> None:
        await self._retired()  # the old process holds the port the new one needs
        quick = 0
        while True:
            if adopted is not None:
                (proc, rfd), adopted = adopted, None
            else:
                try:
                    proc, rfd = self._start(launch)
                except OSError as e:
                    self._set_state(State.FAILED,
                                    f"cannot start {launch.program}: {e.strerror or e}")
                    await asyncio.sleep(RETRY_S)
                    continue
            self._proc = proc
            self.pid = proc.pid
            started = time.monotonic()
            reader = (asyncio.get_running_loop().create_task(self._read(rfd, launch.program))
                      if rfd is not None else None)
            # After a restart `error` keeps why it last died (restarts > 0 says it did).
            last_exit = f"restarted after: {self._last_exit}" if self._last_exit else ""
            if quick < CRASH_LOOP:
                self._set_state(State.RUNNING, last_exit)
            else:
                self._changed()  # a new pid; failed until it survives HEALTHY_S
            waiter = asyncio.ensure_future(proc.wait())
            try:
                try:
                    rc = await asyncio.wait_for(asyncio.shield(waiter), HEALTHY_S)
                except TimeoutError:
                    quick = 0
                    self._set_state(State.RUNNING, last_exit)
                    rc = await waiter
                # What it forked dies with it (its session), then its output ends.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                if reader is not None:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(reader, 1.0)
            except asyncio.CancelledError:
                waiter.cancel()
                if reader is not None:
                    reader.cancel()
                raise
            ran = time.monotonic() - started
            self._proc = None
            self.pid = None
            self._clear_pid()
            quick = quick + 1 if ran < HEALTHY_S else 0
            self.restarts += 1
            how = ("ended (adopted from a previous bondingd: its status is unknown)" if rc is None
                   else f"killed by signal {-rc}" if rc < 0 else f"exited with status {rc}")
            last = self._tail[-1] if self._tail else ""
            err = f"{launch.program} {how} after {ran:.1f} s" + (f": {last}" if last else "")
            self._last_exit = err
            if quick >= CRASH_LOOP:
                delay = RETRY_S
                self._set_state(State.FAILED, f"keeps dying ({quick} times in a row): {err}")
            else:
                delay = BACKOFF_S[min(max(quick - 1, 0), len(BACKOFF_S) - 1)]
                self._set_state(State.STOPPED, err)
            log.warning("proxy %s: %s; restarting in %g s", launch.backend, err, delay)
            await asyncio.sleep(delay)

    async def _read(self, fd: int, program: str) -> None:
        """The proxy's output, line by line, to the log and the tail kept for `error`."""
        loop = asyncio.get_running_loop()
        stream = asyncio.StreamReader(limit=1 << 16)
        pipe = os.fdopen(fd, "rb", 0)
        try:
            transport, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(stream), pipe)
        except BaseException:
            pipe.close()
            raise
        try:
            while True:
                try:
                    line = await stream.readline()
                except ValueError:  # a line longer than the limit: skip it
                    continue
                if not line:
                    return
                text = " ".join(line.decode(errors="replace").split())
                if text:
                    self._tail.append(text[:300])
                    self._log_line(program, text[:300])
        finally:
            transport.close()

    def _log_line(self, program: str, text: str) -> None:
        """Log a line of the proxy's, the same message at most once a minute (ss-redir says
        'setting ipv6 dscp failed' for every connection on MPTCP sockets)."""
        key = _TIMESTAMP_RE.sub("", text)
        now = time.monotonic()
        last = self._logged.get(key)
        if last is not None and now - last < REPEAT_S:
            log.debug("%s: %s", program, text)
            return
        if len(self._logged) > 256:
            self._logged = {k: t for k, t in self._logged.items() if now - t < REPEAT_S}
        self._logged[key] = now
        log.info("%s: %s", program, text)

    # --- pid record and leftovers --------------------------------------------------------------
    def _clear_pid(self) -> None:
        with contextlib.suppress(OSError):
            (self.run_dir / PID_FILE).unlink()

    def _remove_files(self, keep: Collection[str] = ()) -> None:
        """Remove the config files written for earlier launches (they hold the key) but `keep`:
        nothing of a proxy stays in the run directory once it is stopped or replaced."""
        for fname in self._written - set(keep):
            with contextlib.suppress(FileNotFoundError):
                (self.run_dir / fname).unlink()
            self._written.discard(fname)

    def _take_over(self, launch: Launch | None) -> tuple[Proc, int | None] | None:
        """Once, at the first launch: what a previous bondingd left (a restart, a crash).  Its
        proxy is adopted when it runs what `launch` asks (the same argv, environment, user and
        config files): running, its files ours; else it is stopped (it holds our port) and
        its files are removed."""
        if self._orphan_checked:
            return None
        self._orphan_checked = True
        rec = proxyproc.Record.read(self.run_dir)
        if rec is None:
            return None
        if launch is None or not rec.alive(self.run_dir) or not rec.runs(launch, self.run_dir):
            if proxyproc.clear(self.run_dir, rec):
                log.warning("stopped proxy pid %d left by a previous bondingd (%s)", rec.pid,
                            "no proxy now" if launch is None else "it ran another launch")
            return None
        self._written = set(rec.files)
        proc = Proc(rec.pid)
        self._proc, self.pid = proc, proc.pid
        log.info("adopted proxy pid %d left running by a previous bondingd: %s, the same "
                 "command and config", rec.pid, launch.program)
        self._set_state(State.RUNNING)
        self.since = rec.since or self.since
        return proc, proxyproc.reader(self.run_dir)

    @staticmethod
    async def _terminate(proc: Proc) -> None:
        """SIGTERM to its session, SIGKILL after STOP_TIMEOUT_S; waits for it."""
        if not proc.ended:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()

    # --- stop and report -----------------------------------------------------------------------
    async def close(self) -> None:
        """Stop the process and everything it forked; state stopped (or as it was)."""
        task = self._task
        old = self._cancel()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._retire(old)
        await self._retired()
        self._clear_pid()
        self._remove_files()
        with contextlib.suppress(FileNotFoundError):
            (self.run_dir / proxyproc.OUTPUT).unlink()
        self.launch = None
        if self.state is State.RUNNING:
            self._set_state(State.STOPPED, "bondingd stopped it")

    async def detach(self) -> None:
        """bondingd ends for a restart: the process goes on for the next bondingd to adopt (its
        record, config files and output FIFO stay); nothing here is stopped or removed."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._retired()
        self._proc, self.pid = None, None

    def status(self) -> dict[str, Any]:
        return {"backend": self.backend, "state": str(self.state), "pid": self.pid,
                "restarts": self.restarts, "since": round(self.since, 3), "error": self.error}

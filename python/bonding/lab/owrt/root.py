"""A scratch OpenWrt root's processes and files: its PID 1 and what runs and is read in it.

:class:`OwrtRoot` runs bonding.lab.owrt.init as PID 1 of a new mount and PID namespace inside a
network namespace that exists already (`ns`): an overlay of the host's / with a tmpfs upper
(nothing written inside reaches the host), chrooted, with the repository and the prefix masked.
:meth:`OwrtRoot.start` fills it with the OpenWrt userland (bonding.lab.owrt.userland) and starts
busybox syslogd (/dev/log for `logger`), ubusd and `procd -S`.

Commands run inside with :meth:`OwrtRoot.sh` (nsenter into the namespaces and the chroot);
files are read and written from outside through /proc/<init>/root (:meth:`OwrtRoot.path`).
Both need only PID 1's host pid, so a root built by one process (`bonding-lab up`: `stay`, PID
1 outlives it) is driven by another (:meth:`OwrtRoot.attach`).  Long-running programs are
started as PID 1's children (:meth:`OwrtRoot.spawn`) by the process that built the root.
:meth:`close` ends PID 1 (so the kernel kills everything in the root, and its mounts go with its
mount namespace); it runs when setup fails too.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from bonding.dataplane.proxyproc import start_ticks
from bonding.lab.model import LabError

INIT = Path(__file__).resolve().parent / "init.py"
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
UBUS_SOCKET = "/var/run/ubus/ubus.sock"
HOST_PYTHON = "/usr/bin/python3"  # the host's, which runs bondingd in the root (Debian's)
MASKS = ("/work", "/opt", "/root", "/home")


class RootError(LabError):
    """The scratch root could not be built or a command in it failed."""


def _children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += [int(x) for x in (task / "children").read_text().split()]
    return out


def _ns_init(pid: int) -> int | None:
    """The host pid of the PID-namespace init below process `pid`."""
    todo = [pid]
    while todo:
        p = todo.pop()
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("NSpid:") and line.split()[-1] == "1" and len(line.split()) > 2:
                    return p
        todo += _children(p)
    return None


class OwrtRoot:
    """One root in network namespace `ns`, of the userland in `prefix` (its `parts`: further
    OpenWrt packages, PREFIX/share/owrt-parts), its tmpfs mounted on `stage`."""

    def __init__(self, prefix: Path, stage: Path, ns: str, parts: Iterable[str] = (), *,
                 stay: bool = False) -> None:
        self.prefix = prefix
        # jsonfilter is in every OpenWrt image: procd.sh (rc.common's `running`, what a
        # `reload` of a procd service asks first) reads procd's answers with it
        self.parts = tuple(dict.fromkeys(("jsonfilter", *parts)))
        self.stage = stage
        self.ns = ns
        self.stay = stay
        self.proc: subprocess.Popen[bytes] | None = None
        self.init_pid = 0
        self._stdout: IO[bytes] | None = None
        self.log_dir = "/tmp/log"
        self.pids: dict[str, int] = {}

    @classmethod
    def attach(cls, prefix: Path, stage: Path, ns: str, init_pid: int) -> OwrtRoot:
        """The root a `stay` root's builder left running, by its PID 1's host pid."""
        root = cls(prefix, stage, ns, stay=True)
        root.init_pid = init_pid
        return root

    # --- setup and teardown ------------------------------------------------------------------
    def start(self, base_packages: Iterable[str] = ()) -> None:
        from bonding.lab.owrt.userland import populate

        try:
            self._network()
            self._enter()
            populate(self, base_packages)
            self.spawn("syslogd", ["/sbin/syslogd", "-n", "-O", "/tmp/log/messages"])
            self.spawn("ubusd", ["/sbin/ubusd", "-s", UBUS_SOCKET])
            self.wait(lambda: self.path(UBUS_SOCKET).exists(), 5, "ubusd's socket")
            self.spawn("procd", ["/sbin/procd", "-S", "-s", UBUS_SOCKET])
            self.wait(lambda: self.sh("ubus -t 1 list service", check=False).returncode == 0,
                      5, "procd's 'service' object on ubus")
        except BaseException:
            self.close()
            raise

    def _network(self) -> None:
        """The network namespaces the root needs (made by the caller here: the lab's)."""

    def _enter(self) -> None:
        self.stage.mkdir(parents=True, exist_ok=True)
        err = self.stage.parent / f"{self.ns}-init.err"
        errlog = open(err, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, "unshare", "--mount", "--pid", "--fork",
             "--kill-child", "--propagation", "private", HOST_PYTHON, "-S", "-I", str(INIT),
             *(["--stay"] if self.stay else []), str(self.stage), *MASKS],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errlog,
            start_new_session=self.stay)
        errlog.close()
        assert self.proc.stdout is not None
        self._stdout = self.proc.stdout
        line = self._readline(15)
        if line != "ready":
            raise RootError(f"the root's init did not start: {line!r} {err.read_text()}")
        pid = _ns_init(self.proc.pid)
        if pid is None:
            raise RootError("cannot find the root's PID 1")
        self.init_pid = pid

    def _readline(self, timeout: float) -> str:
        assert self._stdout is not None
        ready, _, _ = select.select([self._stdout], [], [], timeout)
        if not ready:
            raise RootError(f"no answer from the root's init in {timeout} s")
        return self._stdout.readline().decode().strip()

    def detach(self) -> None:
        """Let go of a `stay` root: it runs on after this process (PID 1 keeps reaping)."""
        if self.proc is not None:
            for f in (self.proc.stdin, self._stdout):
                if f is not None:
                    with contextlib.suppress(OSError):
                        f.close()
            self.proc = None

    def close(self) -> None:
        """End PID 1: the kernel kills the rest of the root, and its mounts go with it."""
        if self.stay and self.init_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.init_pid, signal.SIGKILL)
        if self.proc is not None:
            if self.proc.stdin is not None:
                with contextlib.suppress(OSError):
                    self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            if self._stdout is not None:
                self._stdout.close()
            self.proc = None

    # --- files ---------------------------------------------------------------------------------
    def path(self, p: str) -> Path:
        """A path inside the root, seen from outside (/proc/<init>/root/...).

        The kernel resolves an absolute symbolic link met on the way (Debian's /var/run ->
        /run) against the caller's root, not the root's: the directories are resolved here,
        inside the root; the last component is left as it is (it may be a link to replace)."""
        base = Path(f"/proc/{self.init_pid}/root")
        todo = [x for x in p.split("/") if x and x != "."]
        done: list[str] = []
        hops = 0
        while len(todo) > 1:
            part = todo.pop(0)
            if part == "..":
                done = done[:-1]
                continue
            cand = base.joinpath(*done, part)
            if cand.is_symlink():
                hops += 1
                if hops > 40:
                    raise RootError(f"too many symbolic links in {p}")
                target = os.readlink(cand)
                if target.startswith("/"):
                    done = []
                todo = [x for x in target.split("/") if x and x != "."] + todo
                continue
            done.append(part)
        return base.joinpath(*done, *todo)

    def write(self, p: str, text: str | bytes, mode: int = 0o644) -> None:
        dst = self.path(p)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.is_symlink():
            dst.unlink()
        if isinstance(text, bytes):
            dst.write_bytes(text)
        else:
            dst.write_text(text)
        dst.chmod(mode)

    def copy(self, src: Path, p: str) -> None:
        dst = self.path(p)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.is_symlink() or dst.exists():
            dst.unlink()
        shutil.copy2(src, dst)

    def link(self, target: str, p: str) -> None:
        dst = self.path(p)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.is_symlink() or dst.is_file():
            dst.unlink()
        dst.symlink_to(target)

    def add_feed(self, feed_dir: Path, name: str = "bonding") -> None:
        """Copy a feed folder into the root (/tmp/<name>-feed) and list it in opkg's feeds."""
        for f in feed_dir.iterdir():
            self.copy(f, f"/tmp/{name}-feed/{f.name}")
        self.write("/etc/opkg/customfeeds.conf", f"src/gz {name} file:///tmp/{name}-feed\n")

    # --- processes -----------------------------------------------------------------------------
    def spawn(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> int:
        """Start a long-running program as a child of the root's PID 1; its pid inside."""
        if self.proc is None or self.proc.stdin is None:
            raise RootError(f"cannot start {name}: only the process that built the root can")
        full = {"PATH": PATH, "HOME": "/tmp"}
        full.update(env or {})
        req = {"op": "spawn", "argv": list(argv), "env": full, "log": f"{self.log_dir}/{name}.log"}
        self.proc.stdin.write((json.dumps(req) + "\n").encode())
        self.proc.stdin.flush()
        reply = json.loads(self._readline(10))
        if "pid" not in reply:
            raise RootError(f"cannot start {name}: {reply.get('error')}")
        self.pids[name] = int(reply["pid"])
        return self.pids[name]

    def sh(self, script: str, *, env: Mapping[str, str] | None = None, check: bool = True,
           timeout: float = 60, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run `script` with /bin/sh (busybox ash) inside the root, as root, OpenWrt's PATH."""
        full = {"PATH": PATH, "HOME": "/tmp", "TERM": "dumb"}
        full.update(env or {})
        r = subprocess.run(["nsenter", "-t", str(self.init_pid), "-m", "-p", "-n", "-r", "-w",
                            "/bin/sh", "-c", script], env=full, capture_output=True, text=True,
                           timeout=timeout, input=stdin, check=False)
        if check and r.returncode != 0:
            raise RootError(f"`{script}` exited {r.returncode}:\n{r.stdout}{r.stderr}")
        return r

    def ubus(self, *args: str, check: bool = True) -> Any:
        """`ubus call ...` inside the root; the answer parsed (None when empty)."""
        r = self.sh(" ".join(shlex.quote(a) for a in ("ubus", "-t", "5", *args)), check=check)
        if r.returncode != 0:
            return r
        return json.loads(r.stdout) if r.stdout.strip() else None

    def running(self, pid: int) -> bool:
        """Process `pid` of the root runs: it exists and is no zombie (one that ended without
        being its child's is reaped by the root's PID 1, a moment later)."""
        return start_ticks(pid, self.path("/proc")) is not None

    def log(self, name: str) -> str:
        p = self.path(f"{self.log_dir}/{name}.log")
        return p.read_text(errors="replace") if p.exists() else ""

    def host_pid(self, inner: int) -> int | None:
        """The host's pid of process `inner` of the root's PID namespace."""
        mine = os.readlink(f"/proc/{self.init_pid}/ns/pid")
        for p in Path("/proc").iterdir():
            if not p.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if os.readlink(p / "ns" / "pid") != mine:
                    continue
                for line in (p / "status").read_text().splitlines():
                    if line.startswith("NSpid:") and line.split()[-1] == str(inner):
                        return int(p.name)
        return None

    def wait(self, pred: Any, timeout: float, what: str, step: float = 0.05) -> float:
        """Seconds until pred() is true (errors count as false); RootError after `timeout`,
        with the end of the root's syslog."""
        t0 = time.monotonic()
        while True:
            with contextlib.suppress(Exception):
                if pred():
                    return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                tail = ""
                with contextlib.suppress(Exception):
                    tail = "\n".join(self.path("/tmp/log/messages").read_text().splitlines()[-15:])
                raise RootError(f"timed out after {timeout} s waiting for {what}; syslog:\n{tail}")
            time.sleep(step)

"""PID 1 of a scratch OpenWrt root (started by bonding.lab.owrt.root; standard library only).

Run as ``unshare --mount --pid --fork --propagation private python3 -S -I init.py [--stay] STAGE
MASK...`` inside the router's network namespace. It mounts a tmpfs on STAGE, an overlay of the
host's / there (lower: /, upper and work: in that tmpfs, so nothing written inside reaches the
host's disk), and in it: a new /proc whose /proc/sys is read-only but for /proc/sys/net (the
network namespace's own), a read-only sysfs of this network namespace, a /dev of a few device
nodes, tmpfs on /tmp and /run, and an empty tmpfs over each MASK (the repository, the OpenWrt
prefix: the root must not reach them). Then it chroots there, prints ``ready``, and serves
the test on stdin, one JSON object a line:

    {"op": "spawn", "argv": [...], "env": {...}, "log": "/tmp/log/x.log"}  -> {"pid": N}

(N as seen inside; the program runs in a session of its own, stdout and stderr to log).  It
reaps every orphan.  When stdin ends (the test is done, or died), it exits, and the kernel kills
every process of the PID namespace: nothing started inside outlives the root.  With
``--stay`` (the lab's router, which outlives the `bonding-lab up` that built it) it goes on
reaping instead, until it is killed (`bonding-lab down`): the kernel then kills the rest.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import sys
import time

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]

DEVICES = ("null", "zero", "full", "random", "urandom", "tty")


def mount(source: str, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    if _libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                   data.encode() if data else None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target} ({fstype}, {data}): {os.strerror(err)}")


def read_only_bind(path: str) -> None:
    mount(path, path, None, MS_BIND)
    mount(path, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def build(stage: str, masks: list[str]) -> str:
    mount("tmpfs", stage, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1g")
    upper, work, root = (os.path.join(stage, d) for d in ("upper", "work", "root"))
    for d in (upper, work, root):
        os.mkdir(d)
    mount("overlay", root, "overlay", 0, f"lowerdir=/,upperdir={upper},workdir={work}")
    proc = root + "/proc"
    mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    # sysctls: only the network namespace's own (/proc/sys/net) may be written from inside
    read_only_bind(proc + "/sys")
    mount(proc + "/sys/net", proc + "/sys/net", None, MS_BIND)  # read-only, as its source
    mount(proc + "/sys/net", proc + "/sys/net", None, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV)
    mount("sysfs", root + "/sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    dev = root + "/dev"
    mount("tmpfs", dev, "tmpfs", MS_NOSUID, "mode=0755,size=1m")
    for name in DEVICES:
        node = f"{dev}/{name}"
        open(node, "w").close()
        mount(f"/dev/{name}", node, None, MS_BIND)
    os.mkdir(dev + "/shm")
    mount("tmpfs", dev + "/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=16m")
    mount("tmpfs", root + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=256m")
    mount("tmpfs", root + "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64m")
    for d in ("/run/lock", "/run/ubus", "/tmp/log"):
        os.makedirs(root + d, exist_ok=True)
    for m in masks:
        if os.path.isdir(root + m):
            mount("tmpfs", root + m, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=16m")
    os.chroot(root)
    os.chdir("/")
    return root


def spawn(req: dict[str, object]) -> int:
    argv = [str(a) for a in req["argv"]]  # type: ignore[attr-defined]
    env = {str(k): str(v) for k, v in dict(req.get("env") or {}).items()}  # type: ignore[call-overload]
    log = str(req.get("log") or "/dev/null")
    acts = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2)]
    return os.posix_spawn(argv[0], argv, env, file_actions=acts, setsid=True)


def reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def linger() -> None:
    """Reap orphans until killed (stdin ended, --stay)."""
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            time.sleep(1)


def serve() -> None:
    buf = b""
    while True:
        ready, _, _ = select.select([0], [], [], 0.2)
        reap()
        if not ready:
            continue
        chunk = os.read(0, 65536)
        if not chunk:
            return
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            req = json.loads(line)
            try:
                if req.get("op") != "spawn":
                    raise ValueError(f"unknown op {req.get('op')!r}")
                reply: dict[str, object] = {"pid": spawn(req)}
            except (OSError, ValueError, KeyError) as e:
                reply = {"error": f"{type(e).__name__}: {e}"}
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()


def main() -> int:
    if os.getpid() != 1:
        print("init.py: run me as PID 1 of a new PID namespace (unshare --pid --fork)",
              file=sys.stderr)
        return 2
    args = sys.argv[1:]
    stay = args[:1] == ["--stay"]
    args = args[1:] if stay else args
    try:
        build(args[0], args[1:])
    except OSError as e:
        print(f"init.py: {e}", file=sys.stderr)
        return 1
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    serve()
    if stay:
        linger()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Per-link one-way delay for the lab: a userspace stage on a TUN device.

This kernel has neither netem nor NFQUEUE, so an ISP namespace delays its link like this: every
packet forwarded between its two veths (``r`` towards the customer, ``i`` towards the internet)
is policy-routed into a persistent tun device; this program reads it, holds it for D ms and
writes it back into the same tun, where the kernel receives it as coming from the tun and
routes it with the main table to its destination. Both directions share one tun and one D, so
the round trip grows by 2·D.

Run it as ``python3 -m bonding.lab.delay --tun dly --delay-ms 20`` inside the namespace, or use
:func:`setup_delay` and :func:`start_delay` from the lab builder. The program prints ``ready``
on stdout once attached, exits cleanly on SIGTERM/SIGINT and prints one ``stats ...`` line to
stderr on exit (and on SIGUSR1). It runs under SCHED_FIFO (``--rt-priority``, default 10) so
that busy lab processes do not make packets late. Standard library only.
"""

from __future__ import annotations

import argparse
import fcntl
import functools
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

from bonding import __version__

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFNAMSIZ = 16

READ_SIZE = 65536
"""Buffer for one read; a tun without offloads hands out packets of at most its MTU."""
READ_BATCH = 64
"""Packets read in one go before due packets are released again (keeps release on time)."""
RELEASE_BATCH = 256
"""Packets written in one go at most before reading again (so reads are not starved)."""
DEFAULT_MAX_QUEUE = 50000
"""Packets held at most: a wire of 100 Mbit/s and 2 s each way (data one way, ACKs back)."""
TUN_TXQUEUELEN = 10000
"""Kernel-side queue of the tun set by :func:`setup_delay` (rides out short stalls)."""
DEFAULT_RT_PRIORITY = 10
"""SCHED_FIFO priority: measured with two CPU hogs on 2 vCPUs at 100 Mbit/s, packets more than
1 ms late fell from ~10% (normal scheduling) to ~0.05%."""
LATE_THRESHOLD = 0.001


class DelayError(Exception):
    """The delay stage could not be set up or started."""


@dataclass
class Stats:
    """Counters of one run of the delay loop."""

    received: int = 0
    forwarded: int = 0
    dropped: int = 0
    write_errors: int = 0
    queue_max: int = 0
    late_max: float = 0.0
    late_over_1ms: int = 0

    def line(self) -> str:
        """One ``stats key=value ...`` line (late: ms after its due time a packet was written)."""
        return (
            f"stats received={self.received} forwarded={self.forwarded} dropped={self.dropped}"
            f" write_errors={self.write_errors} queue_max={self.queue_max}"
            f" late_max_ms={self.late_max * 1000:.3f} late_over_1ms={self.late_over_1ms}"
        )


def parse_stats(line: str) -> dict[str, float]:
    """Parse a line made by :meth:`Stats.line` into a dict (for tests and the lab)."""
    words = line.split()
    if not words or words[0] != "stats":
        raise ValueError(f"not a stats line: {line!r}")
    return {k: float(v) for k, v in (w.split("=", 1) for w in words[1:])}


class _Stop(Exception):
    """Raised by the SIGTERM/SIGINT handler to leave the loop."""


def open_tun(name: str) -> int:
    """Attach to the existing tun device ``name``; return a non-blocking fd."""
    if not name or len(name.encode()) >= IFNAMSIZ or "/" in name:
        raise DelayError(f"bad interface name {name!r}")
    try:
        socket.if_nametoindex(name)
    except OSError:
        raise DelayError(
            f"no interface {name!r} in this network namespace "
            f"(create it first: ip tuntap add dev {name} mode tun)"
        ) from None
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        ifr = struct.pack(f"{IFNAMSIZ}sH", name.encode(), IFF_TUN | IFF_NO_PI)
        fcntl.ioctl(fd, TUNSETIFF, ifr)
    except OSError as e:
        os.close(fd)
        raise DelayError(
            f"cannot attach to tun {name!r}: {e.strerror} "
            "(is it a tun (not tap, not multi_queue) device, already used by another process?)"
        ) from None
    return fd


def relay(
    fd: int,
    delay_s: float,
    max_queue: int,
    stats: Stats,
    now: Callable[[], float] = time.monotonic,
) -> None:
    """Read packets from ``fd`` and write each back ``delay_s`` seconds later, in order.

    ``fd`` must be non-blocking and packet-oriented (a tun, or a SOCK_SEQPACKET socket in
    tests). Returns when a read gives 0 bytes (end of file); a tun never does, so there the
    loop ends only by an exception from a signal handler. At most ``max_queue`` packets are
    held; more are dropped and counted.
    """
    read = os.read
    write = os.write
    sel = select.select
    rlist = [fd]
    # Two parallel deques of untracked objects (floats, bytes): no tuples for the GC to chase.
    dues: deque[float] = deque()
    pkts: deque[bytes] = deque()
    while True:
        # 1. Read what is there, up to a batch, stamping each with its due time.
        n = 0
        while n < READ_BATCH:
            try:
                pkt = read(fd, READ_SIZE)
            except BlockingIOError:
                break
            if not pkt:
                return
            n += 1
            if len(pkts) >= max_queue:
                stats.dropped += 1
                continue
            dues.append(now() + delay_s)
            pkts.append(pkt)
        stats.received += n
        if len(pkts) > stats.queue_max:
            stats.queue_max = len(pkts)
        # 2. Release what is due (due times only grow, so the head decides); lateness is
        #    measured per packet at the moment it is handed back to the kernel.
        if dues:
            t = now()
            late_max = stats.late_max
            k = over = 0
            while dues and dues[0] <= t and k < RELEASE_BATCH:
                late = t - dues.popleft()
                if late > late_max:
                    late_max = late
                if late > LATE_THRESHOLD:
                    over += 1
                try:
                    write(fd, pkts.popleft())
                except OSError:
                    stats.write_errors += 1
                k += 1
                t = now()
            stats.forwarded += k
            stats.late_over_1ms += over
            stats.late_max = late_max
        if n == READ_BATCH:
            continue  # more may be waiting: read again before sleeping
        # 3. Sleep until a packet arrives or the head is due (select: microsecond timeout).
        if dues:
            timeout = dues[0] - now()
            if timeout <= 0:
                continue
            sel(rlist, [], [], timeout)
        else:
            sel(rlist, [], [], None)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python3 -m bonding.lab.delay",
        description=(
            "Delay every packet routed into an existing tun device by a fixed time and "
            "write it back into the same device (lab link delay; no netem needed). "
            "Prints 'ready' when attached; SIGTERM/SIGINT stop it; a stats line goes to "
            "stderr on exit and on SIGUSR1."
        ),
    )
    p.add_argument("--tun", required=True, help="name of the existing tun device")
    p.add_argument(
        "--delay-ms", type=float, required=True, help="one-way delay in milliseconds (>= 0)"
    )
    p.add_argument(
        "--max-queue",
        type=int,
        default=DEFAULT_MAX_QUEUE,
        help=f"packets held at most; more are dropped (default {DEFAULT_MAX_QUEUE})",
    )
    p.add_argument(
        "--rt-priority",
        type=int,
        default=DEFAULT_RT_PRIORITY,
        help=(
            "run under SCHED_FIFO with this priority (1-99) so that other busy processes do "
            f"not make packets late; 0 = normal scheduling (default {DEFAULT_RT_PRIORITY})"
        ),
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python3 -m bonding.lab.delay``."""
    args = _parser().parse_args(argv)
    if not 0 <= args.delay_ms < 1e6:  # also rejects nan and inf
        _parser().error("--delay-ms must be >= 0 and finite")
    if args.max_queue < 1:
        _parser().error("--max-queue must be >= 1")
    if not 0 <= args.rt_priority <= 99:
        _parser().error("--rt-priority must be 0-99")
    try:
        fd = open_tun(args.tun)
    except DelayError as e:
        print(f"delay: {e}", file=sys.stderr)
        return 1
    if args.rt_priority:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(args.rt_priority))
        except OSError as e:
            print(f"delay: SCHED_FIFO not set ({e.strerror}); running normally", file=sys.stderr)
    stats = Stats()
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if not stopping:  # raise once: a second signal must not break the clean exit
            stopping = True
            raise _Stop

    def report(signum: int, frame: FrameType | None) -> None:
        print(stats.line(), file=sys.stderr, flush=True)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGUSR1, report)
    try:
        print("ready", flush=True)
        relay(fd, args.delay_ms / 1000.0, args.max_queue, stats)
    except _Stop:
        pass
    finally:
        stopping = True
        os.close(fd)
    print(stats.line(), file=sys.stderr, flush=True)
    return 0


# --- helpers for the lab builder -------------------------------------------------------------


def _run(cmd: list[str]) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise DelayError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")


# Where the lab keeps a copy of the venv's sing-box that every user can run.
STATE_ROOT = Path("/run/bonding-lab")  # a lab's state directory is STATE_ROOT/<prefix>
SHARED_BIN = STATE_ROOT / ".bin"  # not a lab prefix: those start with a letter
PROXY_USER = "nobody"  # stands for the lab bonding-server's proxy users (any unprivileged uid)


def tool_path() -> str:
    """$PATH with the venv's bin first: where tools/install-deps.sh puts sing-box.

    A program the proxies' user cannot use as it is comes first as a copy in
    /run/bonding-lab/.bin: sing-box when that user cannot reach the venv (a checkout under
    /root, mode 0700: the lab's servers run their proxies as 'nobody', and bonding-server
    refuses a program that user cannot run), and ss-redir when it has file capabilities (as
    Debian's has: the kernel then ignores mptcpize's LD_PRELOAD for the router's proxy user,
    and bondingd refuses it).  A copy has no file capabilities."""
    venv_bin = str(Path(sys.executable).parent)
    from bonding.dataplane.backends import has_file_caps
    ss_redir = shutil.which("ss-redir")
    shared = [_shared_sing_box(venv_bin),
              _shared_copy(ss_redir) if ss_redir and has_file_caps(ss_redir) else None]
    first = list(dict.fromkeys(d for d in (*shared, venv_bin) if d))
    rest = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d and d not in first]
    return os.pathsep.join([*first, *rest])


@functools.cache
def _shared_sing_box(venv_bin: str) -> str | None:
    from bonding.server.system import exec_problem
    program = Path(venv_bin) / "sing-box"
    if os.geteuid() != 0 or not program.is_file() or not exec_problem(str(program), PROXY_USER):
        return None
    return _shared_copy(str(program))


@functools.cache
def _shared_copy(where: str) -> str | None:
    """A copy of program `where` (without file capabilities) in SHARED_BIN; SHARED_BIN, or
    None when not root or there is no such program."""
    program = Path(where)
    if os.geteuid() != 0 or not program.is_file():
        return None
    copy = SHARED_BIN / program.name
    have = program.stat()
    try:
        st = copy.stat()
        fresh = (st.st_size, st.st_mtime_ns) == (have.st_size, have.st_mtime_ns)
    except FileNotFoundError:
        fresh = False
    if not fresh:
        SHARED_BIN.mkdir(parents=True, exist_ok=True)
        SHARED_BIN.chmod(0o755)
        SHARED_BIN.parent.chmod(0o755)
        tmp = SHARED_BIN / f".{program.name}.{os.getpid()}"
        shutil.copyfile(program, tmp)
        tmp.chmod(0o755)
        os.utime(tmp, ns=(have.st_atime_ns, have.st_mtime_ns))
        tmp.replace(copy)
    return str(SHARED_BIN)


def python_env() -> dict[str, str]:
    """The environment for a child Python that must import this package (as the lab runs it);
    its $PATH finds the lab's tools (:func:`tool_path`)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env["PATH"] = tool_path()
    return env


def setup_delay(netns: str, tun: str, ifaces: list[str], table: int = 10) -> None:
    """Create tun ``tun`` in ``netns`` and route everything arriving on ``ifaces`` into it.

    Sets forwarding on and rp_filter off (all, default, the tun and ``ifaces``), gives the tun a
    deep plain FIFO (``pfifo``, txqueuelen :data:`TUN_TXQUEUELEN`; needs ``tc``), adds
    ``default dev TUN`` to table ``table`` and ``ip rule add iif IFACE lookup TABLE`` for each
    iface, in IPv4 and, where the kernel has it, IPv6 (the tun then keeps IPv6 on without an
    address of its own, so it sends nothing itself: no router solicitation, no DAD, no MLD).
    Start the program with :func:`start_delay` afterwards.
    """
    ipn = ["ip", "-n", netns]
    _run([*ipn, "tuntap", "add", "dev", tun, "mode", "tun"])
    sysctls = [
        "net.ipv4.ip_forward=1",
        "net.ipv4.conf.all.rp_filter=0",
        "net.ipv4.conf.default.rp_filter=0",
        *(f"net.ipv4.conf.{dev}.rp_filter=0" for dev in (tun, *ifaces)),
    ]
    _run(["ip", "netns", "exec", netns, "sysctl", "-q", "-w", *sysctls])
    ipv6 = Path("/proc/sys/net/ipv6").exists()
    if ipv6:
        _run(["ip", "netns", "exec", netns, "sysctl", "-q", "-w",
              "net.ipv6.conf.all.forwarding=1", f"net.ipv6.conf.{tun}.addr_gen_mode=1",
              f"net.ipv6.conf.{tun}.accept_ra=0", f"net.ipv6.conf.{tun}.router_solicitations=0",
              f"net.ipv6.conf.{tun}.dad_transmits=0"])  # fmt: skip
    # One plain FIFO in front of the tun (pfifo_fast's bands would let a TOS overtake) and a
    # deep ring, so that a short stall of the program does not drop packets.
    _run([*ipn, "link", "set", tun, "txqueuelen", str(TUN_TXQUEUELEN)])
    _run(["tc", "-n", netns, "qdisc", "replace", "dev", tun, "root",
          "pfifo", "limit", str(TUN_TXQUEUELEN)])  # fmt: skip
    _run([*ipn, "link", "set", tun, "up"])
    for fam in (["-4", "-6"] if ipv6 else ["-4"]):
        _run([*ipn, fam, "route", "replace", "default", "dev", tun, "table", str(table)])
        for dev in ifaces:
            _run([*ipn, fam, "rule", "add", "iif", dev, "lookup", str(table)])


def start_delay(
    netns: str,
    tun: str,
    delay_ms: float,
    *,
    max_queue: int = DEFAULT_MAX_QUEUE,
    rt_priority: int = DEFAULT_RT_PRIORITY,
    timeout: float = 5.0,
    stderr: int | IO[bytes] | None = None,
) -> subprocess.Popen[bytes]:
    """Start the delay program in ``netns`` on ``tun`` and wait until it says ``ready``.

    The program runs under SCHED_FIFO ``rt_priority`` (0: normal scheduling) so that busy lab
    processes do not make its packets late. Returns the process (its pid is the program
    itself: ``ip netns exec`` execs it). Stop it
    with ``terminate()``; it then prints its stats line to ``stderr`` (inherited unless given,
    e.g. ``subprocess.PIPE``). Raises :class:`DelayError` if it exits or is not ready within
    ``timeout`` seconds (the process is killed then).
    """
    env = python_env()
    cmd = [
        "ip", "netns", "exec", netns, sys.executable, "-m", "bonding.lab.delay",
        "--tun", tun, "--delay-ms", str(delay_ms), "--max-queue", str(max_queue),
        "--rt-priority", str(rt_priority),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, env=env, bufsize=0)
    assert proc.stdout is not None
    out = proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    try:
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DelayError(f"delay stage in {netns} not ready after {timeout} s")
            ready, _, _ = select.select([out], [], [], left)
            if ready:
                chunk = os.read(out, 4096)
                if not chunk:
                    rc = proc.wait(timeout=timeout)
                    err = ""
                    if stderr == subprocess.PIPE and proc.stderr is not None:
                        err = ": " + proc.stderr.read().decode(errors="replace").strip()
                    raise DelayError(f"delay stage in {netns} exited with {rc}{err}")
                buf += chunk
        if buf.split(b"\n", 1)[0].strip() != b"ready":
            raise DelayError(f"delay stage in {netns} said {buf!r} instead of 'ready'")
    except BaseException:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        raise
    return proc


if __name__ == "__main__":
    sys.exit(main())

"""bondingd's footprint with 8 dual-stack paths probing at the default rate (root).

    .venv/bin/python bench/footprint.py [--seconds 60] [--runs 3]

Each run builds its own lab (8 links of 10 Mbit/s, 5 ms, IPv4 and IPv6 on every path), waits
until every path and both its families are up, then measures over `--seconds`:

- bondingd's CPU (utime + stime of its process, every thread, from /proc/PID/stat in clock
  ticks of os.sysconf('SC_CLK_TCK')) as % of one core;
- its peak resident memory VmHWM (and VmRSS) from /proc/PID/status at the end, so the start
  counts too;
- the echo requests it sent per second (its status' per-target `sent`);
- apart from bondingd: what the lab's own forwarding cost meanwhile, the delay stages' CPU (one
  process per link) and that of the host's ksoftirqd threads (host-wide: other work on the
  machine shows there too);
- a bare prober (BARE_SENDER: the same echoes, out of the same devices from the same addresses,
  the answers read, nothing else) for up to 20 s in the same lab: the floor any prober pays
  here.  Most of it is the kernel's, and much of that the lab's: this kernel charges the
  softirq work of a send to the sender, so bondingd's (and the bare prober's) system time holds
  the ISP namespace's forwarding behind the veth (nftables, tbf, the tun of the delay stage);
- the host's load average, since other work on the machine makes every figure larger.

Prints each run, then the median and range over the runs; a run that fails (the lab did not come
up, bondingd died) is counted and printed as a failure, not dropped.  Bars (issue 20): ≤ 1% of a
core, ≤ 20 MB VmHWM.  Asserts nothing.  Also a part of bench/run.py (`footprint`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bonding.lab.commands import nsx
from bonding.lab.delay import python_env
from bonding.lab.topology import Lab, parse_links
from bonding.lab.traffic import wait_all_up, wait_family_up

PREFIX = f"bp{os.getpid() % 100000}"  # this run's labs only
LINKS = ",".join(["10/5ms"] * 8)
CPU_BAR_PCT = 1.0
HWM_BAR_MB = 20.0


def clock_tick() -> int:
    """Clock ticks per second of /proc's CPU times (the kernel's USER_HZ)."""
    return int(os.sysconf("SC_CLK_TCK"))


def cpu_ticks(stat: str) -> tuple[int, int]:
    """(utime, stime) of a /proc/PID/stat line (the comm field may hold spaces and ')')."""
    f = stat.rsplit(")", 1)[1].split()
    return int(f[11]), int(f[12])


def status_kb(status: str, key: str) -> int:
    """A `key:  N kB` line of /proc/PID/status, in kB."""
    for line in status.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise ValueError(f"no {key} in /proc/PID/status (a kernel thread, or gone)")


def proc_cpu_s(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of process `pid`, all its threads."""
    user, system = cpu_ticks(Path(f"/proc/{pid}/stat").read_text())
    return user / clock_tick(), system / clock_tick()


def pids_named(prefix: str) -> list[int]:
    """Processes whose comm starts with `prefix` (e.g. the ksoftirqd/N threads)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "comm").read_text().startswith(prefix):
                    out.append(int(d.name))
            except OSError:
                continue
    return out


def exec_ns(pid: int) -> int:
    """Nanoseconds process `pid` ran on a CPU, all its threads (/proc/PID/task/*/schedstat:
    exact, where utime and stime are sampled at the clock tick)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            continue  # a thread gone meanwhile
    return total


def load_avg() -> float:
    """The host's 1-minute load average (other work on the machine makes every figure
    larger)."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def cpu_of(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += sum(proc_cpu_s(pid))
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return total


# A bare prober: the same echoes as bondingd (one per path and family every interval, each out of
# its device from its address, the answers read), with nothing else.  Its CPU is the floor any
# prober pays in this lab, most of it the kernel's: the router's stack and, in the sender's
# context, the lab's forwarding behind the veth (the ISP namespace's nftables, tbf and tun).
BARE_SENDER = r"""
import json, select, socket, struct, sys, time
spec, interval, seconds = json.loads(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
socks = {False: socket.socket(socket.AF_INET, socket.SOCK_RAW | socket.SOCK_NONBLOCK,
                              socket.IPPROTO_ICMP),
         True: socket.socket(socket.AF_INET6, socket.SOCK_RAW | socket.SOCK_NONBLOCK,
                             socket.IPPROTO_ICMPV6)}
fam = {False: socket.AF_INET, True: socket.AF_INET6}
def pktinfo(v6, ifindex, src):
    if v6:
        return socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, struct.pack("@16sI", src, ifindex)
    return socket.IPPROTO_IP, 8, struct.pack("@i4s4s", ifindex, src, bytes(4))
def echo_request(ident, seq, stamp, v6):
    body = struct.pack("!Q", stamp & (2**64 - 1)) + bytes(16)
    if v6:
        return struct.pack("!BBHHH", 128, 0, 0, ident, seq) + body
    data = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + body
    total = sum(struct.unpack("!16H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return struct.pack("!BBHHH", 8, 0, ~total & 0xFFFF, ident, seq) + body
items = [(socks[v6], [pktinfo(v6, socket.if_nametoindex(dev), socket.inet_pton(fam[v6], src))],
          dst, v6) for v6, dev, src, dst in spec]
ep = select.epoll()
for s in socks.values():
    ep.register(s.fileno(), select.EPOLLIN)
by_fd = {s.fileno(): s for s in socks.values()}
c0, t0, seq, sent, got = time.process_time(), time.monotonic(), 0, 0, 0
due = t0
while due < t0 + seconds:
    for sock, anc, dst, v6 in items:
        seq = (seq + 1) & 0xFFFF
        try:
            sock.sendmsg([echo_request(0x5EED, seq, time.monotonic_ns(), v6)], anc, 0, (dst, 0))
            sent += 1
        except OSError:
            pass
    due += interval
    while (wait := due - time.monotonic()) > 0:
        for fd, _ in ep.poll(wait):
            while True:
                try:
                    by_fd[fd].recvmsg(2048, 64)
                    got += 1
                except BlockingIOError:
                    break
dt = time.monotonic() - t0
print(json.dumps({"cpu_pct": 100 * (time.process_time() - c0) / dt, "sent_per_s": sent / dt,
                  "answers_per_s": got / dt}))
"""


def bare_sender(lab: Lab, seconds: float, interval_s: float = 0.15) -> dict[str, float]:
    """Run BARE_SENDER in the router namespace with bondingd's paths and targets."""
    st = lab.load()
    spec: dict[tuple[bool, str], tuple[bool, str, str, str]] = {}  # one per path and family
    for p in lab.status()["paths"].values():
        for name, f in p["families"].items():
            v6, targets = name == "ipv6", f.get("targets") or []
            if targets and f.get("address") and p.get("device"):
                # one target per round, as a healthy path's round asks
                spec.setdefault((v6, p["device"]),
                                (v6, p["device"], f["address"], targets[0]["address"]))
    r = subprocess.run(nsx(st.namespaces["router"], sys.executable, "-c", BARE_SENDER,
                           json.dumps(list(spec.values())), str(interval_s), str(seconds)),
                       capture_output=True, text=True, env=python_env(), check=True,
                       timeout=seconds + 30)
    out: dict[str, float] = json.loads(r.stdout)
    return out


@dataclass
class Run:
    cpu_pct: float  # bondingd, % of one core
    sys_pct: float  # of which in the kernel (its syscalls, and the softirq work they do)
    exec_pct: float  # the same from schedstat (ns, not sampled at the tick)
    hwm_mb: float
    rss_mb: float
    echoes_per_s: float
    delay_pct: float  # the delay stages together, % of one core
    softirq_pct: float  # the host's ksoftirqd threads together
    load: float  # the host's load average at the end
    bare_pct: float = float("nan")  # a bare prober of the same echoes (BARE_SENDER)
    bare_rate: float = float("nan")  # its echoes per second


def _echoes(lab: Lab) -> int:
    paths = lab.status()["paths"].values()
    return sum(t["sent"] for p in paths for f in p["families"].values()
               for t in f.get("targets", []))


def measure(lab: Lab, seconds: float) -> Run:
    st = lab.load()
    pid = st.daemon_pid
    if pid is None:
        raise RuntimeError("the lab has no bondingd")
    delays = [p for k, p in st.pids.items() if k.startswith("delay-")]
    softirqs = pids_named("ksoftirqd")
    c0, d0, s0, e0 = proc_cpu_s(pid), cpu_of(delays), cpu_of(softirqs), _echoes(lab)
    x0, t0 = exec_ns(pid), time.monotonic()
    time.sleep(seconds)
    x1 = exec_ns(pid)
    c1, d1, s1, e1 = proc_cpu_s(pid), cpu_of(delays), cpu_of(softirqs), _echoes(lab)
    dt = time.monotonic() - t0
    status = Path(f"/proc/{pid}/status").read_text()
    return Run(cpu_pct=100 * (sum(c1) - sum(c0)) / dt, sys_pct=100 * (c1[1] - c0[1]) / dt,
               exec_pct=(x1 - x0) / 1e7 / dt, load=load_avg(),
               hwm_mb=status_kb(status, "VmHWM") / 1024,
               rss_mb=status_kb(status, "VmRSS") / 1024, echoes_per_s=(e1 - e0) / dt,
               delay_pct=100 * (d1 - d0) / dt, softirq_pct=100 * (s1 - s0) / dt)


def one_run(seconds: float) -> Run:
    lab = Lab(PREFIX)
    lab.down(purge=True)
    try:
        lab.up(parse_links(LINKS))
        if not (wait_all_up(lab, 30) and wait_family_up(lab, 4, 20)
                and wait_family_up(lab, 6, 20)):
            raise RuntimeError(f"paths or families did not come up: {lab.status()['paths']}")
        r = measure(lab, seconds)
        bare = bare_sender(lab, min(seconds, 20.0))
        r.bare_pct, r.bare_rate = bare["cpu_pct"], bare["sent_per_s"]
        return r
    finally:
        lab.down(purge=True)


def spread(xs: Sequence[float], fmt: str = ".2f") -> str:
    """`median (min–max)` of xs."""
    return (f"{statistics.median(xs):{fmt}} ({min(xs):{fmt}}–{max(xs):{fmt}})"
            if xs else "n/a")


def footprint(seconds: float, runs: int = 3, *,
              run: Callable[[float], Run] = one_run) -> list[Run]:
    """`runs` runs of `seconds` each; prints each and the summary; returns the good ones."""
    good: list[Run] = []
    failed = 0
    print(f"footprint: bondingd, 8 dual-stack paths probing, {runs} runs of {seconds:g} s "
          f"(clock tick {clock_tick()} Hz)", flush=True)
    for i in range(runs):
        try:
            r = run(seconds)
        except Exception as e:  # a failed run is counted, not dropped
            failed += 1
            print(f"  run {i + 1}: FAILED: {e}", flush=True)
            continue
        good.append(r)
        print(f"  run {i + 1}: bondingd CPU {r.cpu_pct:.2f}% of a core (system "
              f"{r.sys_pct:.2f}%; schedstat {r.exec_pct:.2f}%), VmHWM {r.hwm_mb:.1f} "
              f"MB, VmRSS {r.rss_mb:.1f} MB, {r.echoes_per_s:.1f} echo requests/s; lab "
              f"forwarding: delay stages {r.delay_pct:.2f}%, ksoftirqd (host) "
              f"{r.softirq_pct:.2f}%; a bare prober of the same echoes {r.bare_pct:.2f}% "
              f"({r.bare_rate:.0f}/s); host load {r.load:.1f}", flush=True)
    print(f"footprint bondingd: CPU {spread([r.cpu_pct for r in good])}% of a core (bar ≤ "
          f"{CPU_BAR_PCT:g}%; system {spread([r.sys_pct for r in good])}%; schedstat "
          f"{spread([r.exec_pct for r in good])}%), VmHWM "
          f"{spread([r.hwm_mb for r in good], '.1f')} MB (bar ≤ "
          f"{HWM_BAR_MB:g} MB), VmRSS {spread([r.rss_mb for r in good], '.1f')} MB, echo "
          f"requests/s {spread([r.echoes_per_s for r in good], '.1f')}; median (range) of "
          f"{len(good)}, failed {failed} of {runs}", flush=True)
    print(f"footprint lab (not bondingd): delay stages {spread([r.delay_pct for r in good])}%"
          f", ksoftirqd {spread([r.softirq_pct for r in good])}% of a core; a bare prober of "
          f"bondingd's echoes (the floor here, mostly the kernel's sending through the lab) "
          f"{spread([r.bare_pct for r in good])}%", flush=True)
    return good


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args(argv)
    footprint(a.seconds, a.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""bondingd's footprint with 8 dual-stack paths probing at the default rate (root).

    OWRT_PREFIX=/opt/owrt .venv/bin/python bench/footprint.py [--seconds 60] [--runs 3]
                                                              [--links 10/5ms,10/5ms,...]

Each run builds its own lab (by default 8 links of 10 Mbit/s, 5 ms, IPv4 and IPv6 on every path;
`--links` for others, e.g. 3 paths), waits
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
- after the CPU window (the calls cost CPU too): STATUS_CALLS back-to-back `ubus call bonding
  status` through the ctypes binding, p50 and p99 (the lab's ubusd needs OWRT_PREFIX);
- the host's load average, since other work on the machine makes every figure larger.

Prints each run, then every figure's median and range over the runs (bench/figures.py); a run
that fails (the lab did not come up, bondingd died, no ubusd) is counted and printed as a failure
in every figure, not dropped.  Bars (issue 20): ≤ 1% of a core, ≤ 20 MB VmHWM, status p99 ≤ 5
ms.  Asserts nothing.  Also a part of bench/run.py (`footprint`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bonding.lab.commands import nsx
from bonding.lab.delay import python_env
from bonding.lab.topology import Lab, parse_links
from bonding.lab.traffic import wait_all_up, wait_family_up
from figures import Runs
from labs import prefix

LINKS = ",".join(["10/5ms"] * 8)
CPU_BAR_PCT = 1.0
HWM_BAR_MB = 20.0
STATUS_P99_BAR_MS = 5.0


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


STATUS_CALLS = 1000  # `status` calls per run, after the CPU window (they cost CPU too)


async def status_calls(sock: str, n: int, paths: int | None = None) -> list[float]:
    """Seconds of each of `n` back-to-back `status` calls over one ubus connection (each reply
    with `paths` paths, when given)."""
    from bonding.ubus import Ubus  # the binding needs the OpenWrt userland (OWRT_PREFIX)

    out = []
    async with Ubus(sock, reconnect=False) as bus:
        oid = bus.lookup_id("bonding")
        for _ in range(n):
            t0 = time.perf_counter()
            reply = await bus.invoke(oid, "status", {}, timeout=5)
            out.append(time.perf_counter() - t0)
            assert paths is None or len(reply["paths"]) == paths
    return out


def pct(xs: Sequence[float], q: float) -> float:
    """The q-quantile of xs (nearest rank)."""
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def status_latency(lab: Lab, calls: int = STATUS_CALLS) -> tuple[float, float]:
    """(p50, p99) in ms of `ubus call bonding status` through the ctypes binding."""
    sock = lab.load().ubus_socket
    if sock is None:
        raise RuntimeError("no ubusd in the lab: set OWRT_PREFIX to an OpenWrt userland build")
    asyncio.run(status_calls(sock, 50))  # warm-up: the first calls connect and look up
    ms = [x * 1000 for x in asyncio.run(status_calls(sock, calls))]
    return pct(ms, 0.5), pct(ms, 0.99)


# name → (what, unit, bar or None); one figure each, a Runs over the runs
FIGURES: dict[str, tuple[str, str, float | None]] = {
    "cpu_pct": ("CPU (utime+stime)", "% of a core", CPU_BAR_PCT),
    "sys_pct": ("  of which system", "% of a core", None),
    "exec_pct": ("CPU (schedstat)", "% of a core", None),
    "hwm_mb": ("VmHWM", "MB", HWM_BAR_MB),
    "rss_mb": ("VmRSS", "MB", None),
    "echoes_per_s": ("echo requests", "/s", None),
    "status_p50_ms": ("ubus status p50", "ms", None),
    "status_p99_ms": ("ubus status p99", "ms", STATUS_P99_BAR_MS),
    "delay_pct": ("lab: delay stages (not bondingd)", "% of a core", None),
    "softirq_pct": ("lab: ksoftirqd, host-wide (not bondingd)", "% of a core", None),
    "bare_pct": ("lab: a bare prober of the same echoes (the floor)", "% of a core", None),
    "load": ("host load average (1 min)", "", None),
}


def measure(lab: Lab, seconds: float) -> dict[str, float]:
    """bondingd's and the lab's figures over `seconds` of quiet probing."""
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
    return {"cpu_pct": 100 * (sum(c1) - sum(c0)) / dt, "sys_pct": 100 * (c1[1] - c0[1]) / dt,
            "exec_pct": (x1 - x0) / 1e7 / dt, "load": load_avg(),
            "hwm_mb": status_kb(status, "VmHWM") / 1024,
            "rss_mb": status_kb(status, "VmRSS") / 1024, "echoes_per_s": (e1 - e0) / dt,
            "delay_pct": 100 * (d1 - d0) / dt, "softirq_pct": 100 * (s1 - s0) / dt}


def _echoes(lab: Lab) -> int:
    paths = lab.status()["paths"].values()
    return sum(t["sent"] for p in paths for f in p["families"].values()
               for t in f.get("targets", []))


def one_run(seconds: float, links: str = LINKS) -> dict[str, float]:
    """One lab: every path and family up, then the figures; the lab removed."""
    lab = Lab(prefix("p"))
    lab.down(purge=True)
    try:
        lab.up(parse_links(links))
        if not (wait_all_up(lab, 30) and wait_family_up(lab, 4, 20)
                and wait_family_up(lab, 6, 20)):
            raise RuntimeError(f"paths or families did not come up: {lab.status()['paths']}")
        r = measure(lab, seconds)
        bare = bare_sender(lab, min(seconds, 20.0))
        r["bare_pct"] = bare["cpu_pct"]
        r["status_p50_ms"], r["status_p99_ms"] = status_latency(lab)
        return r
    finally:
        lab.down(purge=True)


def footprint(seconds: float, runs: int = 3, links: str = LINKS, *,
              run: Callable[[float, str], dict[str, float]] = one_run) -> dict[str, Runs]:
    """`runs` runs of `seconds` each; prints each run and every figure's median, range and
    failures (bench/figures.py); returns the figures."""
    figs = {k: Runs(what) for k, (what, _, _) in FIGURES.items()}
    n = len(links.split(","))
    print(f"footprint: bondingd, {n} dual-stack paths ({links}) probing at the default "
          f"interval, {runs} runs of {seconds:g} s (clock tick {clock_tick()} Hz)", flush=True)
    for i in range(runs):
        try:
            r = run(seconds, links)
        except Exception as e:  # a failed run is counted in every figure, not dropped
            reason = str(e).splitlines()[0][:100] if str(e) else type(e).__name__
            for f in figs.values():
                f.fail(reason)
            print(f"  run {i + 1}: FAILED: {reason}", flush=True)
            continue
        for k, v in r.items():
            figs[k].add(v)
        print(f"  run {i + 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in r.items()), flush=True)
    for k, (what, unit, bar) in FIGURES.items():
        u = f" ({unit})" if unit else ""
        b = f"; bar ≤ {bar:g}" if bar is not None else ""
        print(f"footprint {what}{u}: {figs[k].summary(lambda v: f'{v:.2f}')}{b}", flush=True)
    return figs


def compiled_like_a_router(cache: str) -> None:
    """bondingd loads byte-code compiled beforehand, as the package's postinst does on the router
    (compileall): PYTHONDONTWRITEBYTECODE would make it compile every module at each start, which
    costs about 1 MB of VmHWM that a router never pays.  The cache goes to `cache`, not the tree."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = cache
    pkg = str(Path(__file__).resolve().parents[1] / "python" / "bonding")
    subprocess.run([sys.executable, "-m", "compileall", "-q", pkg], check=True,
                   env=dict(os.environ), stdout=subprocess.DEVNULL)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="quiet probing per run")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--links", default=LINKS,
                   help="the lab's links, rate/delay each (default: 8 × 10/5ms)")
    a = p.parse_args(argv)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="footprint-pyc-") as cache:
        compiled_like_a_router(cache)
        footprint(a.seconds, max(1, a.runs), a.links)
    return 0


if __name__ == "__main__":
    sys.exit(main())

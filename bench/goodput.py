"""Goodput benchmarks: one TCP connection through the full path, upload and download, beside raw
kernel MPTCP over the same links in the same lab (root).

upload: the LAN host sends to the target (LAN host → router's proxy → links → server → target);
download: the target sends to the LAN host (iperf3 -R: target → server → links → router → LAN
host), what most users do most.  Raw MPTCP: iperf3 under mptcpize router → server, each way.
Goodput is what the receiver counted over the steady part of the transfer (the first WARMUP_S
and the last second left out), as a fraction of the header-limited capacity Σ rate × 1448/1514
(IPv4; × 1428/1514 for IPv6).  Each figure is the median and range of RUNS transfers; a run
that fails (iperf3 error, no steady interval) is counted and printed, never dropped.  The
congestion control is the one bondingd puts on its routes (`--cc`: each value is a figure); the
download's sender is the server, whose congestion control is what bonding-server locks on the
clients' routes (bonding.server.congestion: cubic by default).
After each lab, its links' delay stages say how many packets they released more than 1 ms late
(the lab's own timing error, which a busy host makes larger).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from bonding.lab.topology import (
    PROXY_BACKEND,
    SERVER_ADDR,
    SERVER_ADDR6,
    Lab,
    LabError,
    parse_links,
)
from bonding.lab.traffic import (
    HEADER_RATIO,
    HEADER_RATIO6,
    Transfer,
    goodput_between,
    lan_transfer,
    link_rates,
)
from figures import Runs
from labs import full_lab, set_cc, stages

WARMUP_S = 4.0
WAYS = ("upload", "download")
# (label, links, loss % on wan1 or None, bar in % of Σ rate × 1448/1514)
CASES: list[tuple[str, str, int | None, float]] = [
    ("2 links", "50/10ms,20/25ms", None, 97),
    ("3 links", "50/10ms,30/20ms,20/40ms", None, 97),
    ("4 links", "40/5ms,30/15ms,20/30ms,10/40ms", None, 97),
]
HARD_CASES: list[tuple[str, str, int | None, float]] = [
    ("1:8 RTT spread", "50/5ms,30/20ms,20/40ms", None, 90),
    ("1% loss on wan1", "50/10ms,30/20ms,20/40ms", 1, 90),
]
# (label, links, bonded over IPv6, header ratio, bar in % of Σ rate × that ratio)
V6_CASES: list[tuple[str, str, bool, float, float]] = [
    ("IPv6 over IPv6", "50/10ms,30/20ms,20/40ms", True, HEADER_RATIO6, 95),
    ("IPv6 over IPv4", "50/10ms,30/20ms,20/40ms", False, HEADER_RATIO, 95),
]

MakeTransfer = Callable[[float], Transfer]


def _measure(lab: Lab, make: MakeTransfer, seconds: float, way: str,
             runs: Runs, wire: Runs | None = None) -> None:
    """One transfer: its steady goodput (bit/s, the receiver's count) into `runs`, and the sum
    of the links' wire rates meanwhile (the way the data went) into `wire`."""
    t = make(seconds)
    try:
        t.start()
        rates = link_rates(lab, WARMUP_S, seconds - WARMUP_S - 1,
                           "tx" if way == "upload" else "rx")
        report = t.result(timeout=seconds + 30)
    except LabError as e:
        runs.fail(str(e).splitlines()[0][:80])
        return
    finally:
        t.stop()
    got = goodput_between(report, WARMUP_S, seconds - 1)
    if not got:
        runs.fail("no steady interval in the report")
        return
    runs.add(got)
    if wire is not None:
        wire.add(sum(rates.values()))


def _proxy_and_raw(lab: Lab, cc: str, seconds: float, n: int, *, ipv6: bool = False,
                   raw_dst: str = SERVER_ADDR) -> dict[str, tuple[Runs, Runs, Runs]]:
    """Per way: the proxy path's goodput, its wire sum, raw MPTCP's goodput (n runs each)."""
    first = "bbr" if cc == "mixed" else cc  # -C as the routes: iperf3's would hold otherwise
    out = {}
    for way in WAYS:
        rev = way == "download"
        proxy, wire, raw = Runs("proxy"), Runs("wire"), Runs("raw MPTCP")

        def through_proxy(s: float, r: bool = rev) -> Transfer:
            return lan_transfer(lab, s, reverse=r, ipv6=ipv6)

        def raw_mptcp(s: float, r: bool = rev) -> Transfer:
            return Transfer(lab, s, congestion=first or None, dst=raw_dst, reverse=r)

        for _ in range(n):
            _measure(lab, through_proxy, seconds, way, proxy, wire)
            _measure(lab, raw_mptcp, seconds, way, raw)
        out[way] = (proxy, wire, raw)
    return out


def _pct(cap: float) -> Callable[[float], str]:
    return lambda v: f"{100 * v / cap:.1f}%"


def _print(part: str, label: str, links: str, cc: str, cap: float, bar: float, ratio: str,
           figures: dict[str, tuple[Runs, Runs, Runs]]) -> None:
    for way, (proxy, wire, raw) in figures.items():
        print(f"{part} {label:16} {links:31} cc {cc or 'default':6} {way:8} "
              f"proxy {proxy.summary(_pct(cap))}; raw MPTCP {raw.summary(_pct(cap))}; "
              f"of {cap / 1e6:.1f} Mbit/s = Σ rate × {ratio} (bar {bar:g}%); wire "
              f"{wire.summary(lambda v: f'{v / 1e6:.1f} Mbit/s')}", flush=True)


def goodput(cases: Sequence[tuple[str, str, int | None, float]], seconds: float,
            ccs: Sequence[str], n: int, part: str = "goodput") -> None:
    """One TCP flow LAN host ↔ target through the proxy, beside raw MPTCP router ↔ server."""
    for label, links, loss, bar in cases:
        cap = sum(x.rate_mbit for x in parse_links(links)) * 1e6 * HEADER_RATIO
        lab = full_lab(links, ccs[0])
        try:
            if loss:
                lab.loss("wan1", loss)
            for cc in ccs:
                set_cc(lab, cc, lossy={"wan1"} if loss else set())
                time.sleep(1.0)
                _print(part, label, links, cc, cap, bar, "1448/1514",
                       _proxy_and_raw(lab, cc, seconds, n))
            print(stages(lab), flush=True)
        finally:
            lab.down(purge=True)


def goodput_v6(seconds: float, ccs: Sequence[str], n: int) -> None:
    """One TCP flow LAN host ↔ target over IPv6 through the proxy, beside raw MPTCP."""
    for label, links, tunnel6, ratio, bar in V6_CASES:
        cap = sum(x.rate_mbit for x in parse_links(links)) * 1e6 * ratio
        # sing-box bonds only towards an IPv4 server address (backends.sing_box): the run over
        # the links' IPv6 takes shadowsocks-libev
        lab = full_lab(links, ccs[0], tunnel6=tunnel6,
                       backend="shadowsocks-libev" if tunnel6 else PROXY_BACKEND)
        try:
            for cc in ccs:
                set_cc(lab, cc, lossy=set())
                time.sleep(1.0)
                _print("goodput-v6", label, links, cc, cap, bar, f"{round(ratio * 1514)}/1514",
                       _proxy_and_raw(lab, cc, seconds, n, ipv6=True,
                                      raw_dst=SERVER_ADDR6 if tunnel6 else SERVER_ADDR))
            print(stages(lab), flush=True)
        finally:
            lab.down(purge=True)


def unshaped(seconds: float, ccs: Sequence[str], n: int) -> None:
    """The proxy path against raw MPTCP with links the machine alone limits."""
    links = "10000/0ms,10000/0ms"
    lab = full_lab(links, ccs[0])
    try:
        for cc in ccs:
            set_cc(lab, cc, lossy=set())
            time.sleep(1.0)
            for way, (proxy, _, raw) in _proxy_and_raw(lab, cc, seconds, n).items():
                rm = raw.median()
                share = (f"proxy = {100 * (proxy.median() or 0) / rm:5.1f}% of raw "
                         "(medians; bar ≥ 50%)") if rm else "no raw figure"
                print(f"unshaped {links} cc {cc or 'default':6} {way:8} proxy "
                      f"{proxy.summary(lambda v: f'{v / 1e6:.1f} Mbit/s')}; raw MPTCP "
                      f"{raw.summary(lambda v: f'{v / 1e6:.1f} Mbit/s')}; {share}", flush=True)
    finally:
        lab.down(purge=True)

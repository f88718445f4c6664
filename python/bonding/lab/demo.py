"""`make demo`: the full path in the lab.

One plain TCP connection (iperf3) from the LAN host to the target: the router hands it to its
proxy (sing-box by default, on the server too; its name and version are printed), which carries
it over every link as MPTCP subflows to the aggregation server, which speaks to the target.
Two kinds of figures, each labelled as what it is:
- wire: what each link transmits (its device counters, headers and retransmissions included)
  against its line rate;
- goodput: what the target received of the LAN host's connection (iperf3's own count), against
  the header-limited capacity Σ rate × 1448/1514.
It kills one link silently mid-transfer (nftables drop at its ISP), shows how fast bondingd
noticed and that the transfer went on (phase 2's goodput counts from the moment the link died:
the outage is in it), restores the link, and tears down.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from bonding.dataplane.backends import BackendError, program_version
from bonding.lab.delay import tool_path
from bonding.lab.owrt.lab import kind
from bonding.lab.topology import PROXY_BACKEND, Lab, LabError, LabState, LinkSpec
from bonding.lab.traffic import (
    HEADER_RATIO,
    Rates,
    Transfer,
    endpoints,
    goodput_between,
    lan_transfer,
    path_state,
    wait_all_up,
    wait_for,
)

PHASE_S = 8.0
WARMUP_S = 2.0
REPORT_S = 0.2  # iperf3's interval: phase 2's goodput starts at most this long before the death


def _mbit(bps: float | None) -> str:
    return "     —" if bps is None else f"{bps / 1e6:6.1f}"


def _avg(samples: list[dict[str, float]], name: str) -> float:
    return sum(s[name] for s in samples) / len(samples) if samples else 0.0


def _watch(rates: Rates, seconds: float) -> list[dict[str, float]]:
    samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.5)
        samples.append(rates.sample())
    return samples


def run_demo(links: Sequence[LinkSpec], *, prefix: str = "bl", victim: str | None = None,
             out: Callable[[str], object] = print, backend: str = PROXY_BACKEND,
             openwrt: bool = False, owrt: str | None = None, manager: str = "opkg") -> int:
    """The demo on a lab built for it (`openwrt`: on the OpenWrt router, its userland in
    `owrt`, our packages installed by `manager`); 0 when bondingd saw the link die and come
    back and the transfer survived."""
    lab = Lab(prefix)
    if lab.existing_namespaces():
        out(f"removing a lab '{prefix}' left from before")
        lab.down()
    try:
        version = program_version(backend, tool_path())
    except BackendError as e:
        raise LabError(f"{e}; run `make deps`") from None
    router = kind(openwrt, manager)
    out(f"building the lab: {len(links)} links " + ", ".join(map(str, links))
        + f"; proxy {version} on both ends: bonding-server on the server, bondingd on the "
        f"router; router: {router}")
    rc = 1
    try:
        # each link set up as a wired one (WIRED_PATH): bbr for the first subflow (the global
        # default), cubic on each link, the set-up bench/run.py measures best for clean links
        t0 = time.monotonic()
        lab.up(links, proxy=True, backend=backend, openwrt=openwrt, owrt=owrt, manager=manager)
        out(f"lab up in {time.monotonic() - t0:.1f} s")
        rc = _demo(lab, links, victim, out)
        return rc
    finally:
        removed = lab.down()
        out(f"lab removed ({len(removed)} namespaces)")
        out(f"router: {router}; the demo " + ("passed" if rc == 0 else "FAILED")
            + ("" if openwrt else " (make demo OPENWRT=1, or bonding-lab demo --openwrt, runs "
               "it on an OpenWrt router)"))


def _ready(lab: Lab, victim: str | None, say: Callable[[str], object]) -> tuple[LabState, str]:
    """Every path up and the proxy running (said), and the link to kill."""
    st = lab.load()
    names = [x.name for x in st.links]
    victim = victim or names[0]
    if victim not in names:
        raise LabError(f"no link {victim!r}: the lab has {', '.join(names)}")
    if not wait_all_up(lab, 20):
        raise LabError(f"bondingd did not bring every path up; see {st.daemon_log}")
    if wait_for(lambda: lab.status().get("proxy", {}).get("state") == "running", 10) is None:
        raise LabError(f"the proxy is not running: {lab.status().get('proxy')}; "
                       f"see {st.daemon_log}")
    proxy = lab.status()["proxy"]
    if st.openwrt:
        say("OpenWrt router: bondingd (under procd, no path sections) bonds the WANs netifd "
            "has: " + ", ".join(f"{n} {p.get('address')}" for n, p in
                               lab.status().get("paths", {}).items())
            + "; congestion control cubic (globals: no path sections to set it per link)")
    else:
        say("congestion control: bbr for the first subflow (global default), cubic on every "
            "link (option congestion_control per path: clean links)")
    say(f"bondingd: all paths up; proxy {program_version(proxy['backend'], tool_path())} "
        f"running (pid {proxy['pid']}); MPTCP endpoints: "
        + ", ".join(f"{e.get('address')} id {e.get('id')}" for e in endpoints(lab)))
    return st, victim


def _demo(lab: Lab, links: Sequence[LinkSpec], victim: str | None,
          say: Callable[[str], object]) -> int:
    st, victim = _ready(lab, victim, say)
    cap = sum(x.rate_mbit for x in links) * 1e6
    total = WARMUP_S + 3 * PHASE_S + 2
    t: Transfer = lan_transfer(lab, total)
    t.interval = REPORT_S
    t.start()
    t_start = time.monotonic()
    try:
        time.sleep(WARMUP_S)  # slow start and subflow setup
        rates = Rates(lab)
        p1 = _all_links(st, rates, t_start, cap, say)
        noticed, p2 = _one_dead(lab, st, victim, rates, t_start, say)
        back = _restored(lab, victim, rates, say)
        report = t.result(timeout=total + 20)
    except BaseException:
        t.stop()
        raise
    rest = sum(x.rate_mbit for x in st.links if x.name != victim) * 1e6
    end = report["end"]["sum_received"]
    g1 = goodput_between(report, *p1)
    g2 = goodput_between(report, *p2)
    hcap = cap * HEADER_RATIO
    hrest = rest * HEADER_RATIO
    say("\ngoodput at the target (what the LAN host's connection delivered):")
    say(f"  all links up:      {_mbit(g1).strip()} Mbit/s of {hcap / 1e6:.1f} "
        f"(Σ rate × 1448/1514)" + (f" = {100 * g1 / hcap:.1f}%" if g1 else ""))
    say(f"  {victim} dead:        {_mbit(g2).strip()} Mbit/s of {hrest / 1e6:.1f}"
        + (f" = {100 * g2 / hrest:.1f}%" if g2 else "")
        + " (from the moment it died: the outage included)")
    say(f"the transfer survived: {end['bytes'] / 1e6:.1f} MB in {end['seconds']:.1f} s, "
        f"{end['bits_per_second'] / 1e6:.1f} Mbit/s on average")
    ok = noticed is not None and back is not None and end["seconds"] >= total - 1
    return 0 if ok else 1


def _all_links(st: LabState, rates: Rates, t_start: float, cap: float,
               say: Callable[[str], object]) -> tuple[float, float]:
    """Phase 1: what each link carries; the phase's span in the transfer."""
    p1 = (time.monotonic() - t_start, 0.0)
    steady = _watch(rates, PHASE_S - 0.5)
    p1 = (p1[0], time.monotonic() - t_start)
    say("\nphase 1: one TCP connection LAN host → target, bonded over all links")
    say(f"  {'link':6} {'rate':>6} {'wire':>8}  Mbit/s transmitted (upload), % of line rate")
    for link in st.links:
        got = _avg(steady, link.name)
        say(f"  {link.name:6} {link.rate_mbit:6g} {_mbit(got):>8}  "
            f"{100 * got / (link.rate_mbit * 1e6):5.1f}%")
    agg = sum(_avg(steady, x.name) for x in st.links)
    say(f"  {'all':6} {cap / 1e6:6g} {_mbit(agg):>8}  {100 * agg / cap:5.1f}%")
    return p1


def _one_dead(lab: Lab, st: LabState, victim: str, rates: Rates, t_start: float,
              say: Callable[[str], object]) -> tuple[float | None, tuple[float, float]]:
    """Phase 2: `victim` blackholed; when bondingd noticed, and the phase's span."""
    say(f"\nphase 2: {victim} blackholed silently (nftables drop at its ISP)")
    rates.sample()
    p2_start = time.monotonic() - t_start
    t0 = time.time()
    lab.blackhole(victim)
    noticed = wait_for(lambda: path_state(lab, victim) == "down", 10, 0.01)
    since = lab.status().get("paths", {}).get(victim, {}).get("since")
    detect = (since - t0) if since and since >= t0 else noticed
    vaddr = lab.link(victim).router_addr
    eps = [e.get("address") for e in endpoints(lab)]
    say(f"  bondingd declared {victim} down after "
        + (f"{detect:.2f} s" if detect is not None else "— not within 10 s"))
    say(f"  its MPTCP endpoint {vaddr}: {'still there' if vaddr in eps else 'removed'}")
    outage = rates.sample()  # the wire from the blackhole until bondingd noticed
    rest = sum(x.rate_mbit for x in st.links if x.name != victim) * 1e6
    others = sum(outage[x.name] for x in st.links if x.name != victim)
    say(f"  meanwhile the other links transmitted {_mbit(others).strip()} Mbit/s "
        f"({100 * others / rest:.1f}% of their line rate)")
    after = _watch(rates, max(1.0, PHASE_S - (time.monotonic() - t_start - p2_start)))
    # from the start of the report interval in which the link died: the whole outage counts
    p2 = (REPORT_S * int(p2_start / REPORT_S), time.monotonic() - t_start)
    agg2 = sum(_avg(after, x.name) for x in st.links if x.name != victim)
    say(f"  the transfer goes on over the others: {_mbit(agg2).strip()} Mbit/s on the "
        f"wire ({100 * agg2 / rest:.1f}% of their line rate)")
    return noticed, p2


def _restored(lab: Lab, victim: str, rates: Rates, say: Callable[[str], object]) -> float | None:
    """Phase 3: `victim` restored; when bondingd said it was up."""
    say(f"\nphase 3: {victim} restored")
    lab.clear(victim)
    back = wait_for(lambda: path_state(lab, victim) == "up", 10, 0.01)
    say("  bondingd declared it up after "
        + (f"{back:.2f} s" if back is not None else "— not within 10 s"))
    rates.sample()
    time.sleep(2.0)
    r3 = rates.sample()
    vaddr = lab.link(victim).router_addr
    back_ep = vaddr in [e.get("address") for e in endpoints(lab)]
    say(f"  {victim} carries {_mbit(r3[victim]).strip()} Mbit/s again "
        f"(endpoint {'back' if back_ep else 'missing'})")
    return back

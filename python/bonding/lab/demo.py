"""`make demo`: bond the lab's links, kill one silently mid-transfer, bring it back."""

from __future__ import annotations

import time
from collections.abc import Sequence

from bonding.lab.topology import Lab, LabError, LinkSpec
from bonding.lab.traffic import (
    HEADER_RATIO,
    Rates,
    Transfer,
    endpoints,
    path_state,
    received_bps,
    wait_all_up,
    wait_for,
)

PHASE_S = 8.0


def _mbit(bps: float) -> str:
    return f"{bps / 1e6:6.1f}"


def _avg(samples: list[dict[str, float]], name: str) -> float:
    return sum(s[name] for s in samples) / len(samples) if samples else 0.0


def run_demo(links: Sequence[LinkSpec], *, prefix: str = "bl", victim: str | None = None,
             out: object = print) -> int:
    say = out if callable(out) else print
    lab = Lab(prefix)
    if lab.existing_namespaces():
        say(f"removing a lab '{prefix}' left from before")
        lab.down()
    say(f"building the lab: {len(links)} links " + ", ".join(map(str, links)))
    lab.up(links)
    try:
        return _demo(lab, links, victim, say)
    finally:
        removed = lab.down()
        say(f"lab removed ({len(removed)} namespaces)")


def _demo(lab: Lab, links: Sequence[LinkSpec], victim: str | None, say: object) -> int:
    assert callable(say)
    st = lab.load()
    names = [x.name for x in st.links]
    victim = victim or names[0]
    if not wait_all_up(lab, 20):
        raise LabError(f"bondingd did not bring every path up; see {st.daemon_log}")
    say("bondingd: all paths up; MPTCP endpoints: "
        + ", ".join(f"{e.get('address')} id {e.get('id')}" for e in endpoints(lab)))
    total = 3 * PHASE_S + 2
    t = Transfer(lab, total)
    t.start()
    try:
        time.sleep(1.5)  # slow start and subflow setup
        rates = Rates(lab)
        steady: list[dict[str, float]] = []
        end = time.monotonic() + PHASE_S - 1.5
        while time.monotonic() < end:
            time.sleep(0.5)
            steady.append(rates.sample())
        cap = sum(x.rate_mbit for x in links) * 1e6
        say("\nphase 1: all links (upload router → server, one MPTCP connection)")
        say(f"  {'link':6} {'rate':>6} {'carried':>8}  Mbit/s")
        for link in st.links:
            say(f"  {link.name:6} {link.rate_mbit:6g} {_mbit(_avg(steady, link.name)):>8}")
        agg = sum(_avg(steady, n) for n in names)
        say(f"  {'total':6} {cap / 1e6:6g} {_mbit(agg):>8}  ({100 * agg / cap:.1f}% of the sum)")

        say(f"\nphase 2: {victim} blackholed silently (nftables drop at its ISP)")
        t0 = time.time()
        lab.blackhole(victim)
        noticed = wait_for(lambda: path_state(lab, victim) == "down", 10, 0.01)
        since = lab.status().get("paths", {}).get(victim, {}).get("since")
        detect = (since - t0) if since and since >= t0 else noticed
        eps = [e.get("address") for e in endpoints(lab)]
        vaddr = lab.link(victim).router_addr
        say(f"  bondingd declared {victim} down after "
            + (f"{detect:.2f} s" if detect is not None else "— not within 10 s"))
        say(f"  its MPTCP endpoint {vaddr}: {'still there' if vaddr in eps else 'removed'}")
        rates.sample()
        after: list[dict[str, float]] = []
        end = time.monotonic() + PHASE_S
        while time.monotonic() < end:
            time.sleep(0.5)
            after.append(rates.sample())
        rest = sum(x.rate_mbit for x in st.links if x.name != victim) * 1e6
        agg2 = sum(_avg(after, n) for n in names if n != victim)
        say(f"  the transfer goes on over the others: {_mbit(agg2).strip()} Mbit/s "
            f"({100 * agg2 / rest:.1f}% of their sum)")

        say(f"\nphase 3: {victim} restored")
        lab.clear(victim)
        back = wait_for(lambda: path_state(lab, victim) == "up", 10, 0.01)
        say("  bondingd declared it up after "
            + (f"{back:.2f} s" if back is not None else "— not within 10 s"))
        rates.sample()
        time.sleep(2.0)
        r3 = rates.sample()
        back_ep = vaddr in [e.get("address") for e in endpoints(lab)]
        say(f"  {victim} carries {_mbit(r3[victim]).strip()} Mbit/s again "
            f"(endpoint {'back' if back_ep else 'missing'})")
        report = t.result(timeout=total + 15)
    except BaseException:
        t.stop()
        raise
    got = received_bps(report)
    say(f"\nthe transfer survived: {report['end']['sum_received']['bytes'] / 1e6:.1f} MB in "
        f"{report['end']['sum_received']['seconds']:.1f} s, {got / 1e6:.1f} Mbit/s on average "
        f"(the header-limited capacity of all links is "
        f"{sum(x.rate_mbit for x in links) * HEADER_RATIO:.1f} Mbit/s)")
    ok = noticed is not None and back is not None
    return 0 if ok else 1

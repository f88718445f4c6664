"""The labs the benchmarks build: names of this run only, bondingd alone or the full path.

Labs of this run only (the prefix holds the process id): two runs at once (several engineers on
one machine) do not tear down each other's labs.
"""

from __future__ import annotations

import os

from bonding.lab.topology import PROXY_BACKEND, Lab, parse_links
from bonding.lab.traffic import wait_all_up, wait_proxy_running


def prefix(kind: str) -> str:
    """The lab prefix of this run for `kind` (a letter or two)."""
    return f"b{kind}{os.getpid() % 100000}"


def bondingd_lab(links: str) -> Lab:
    """bondingd and raw MPTCP over `links` (no proxy), every path up."""
    lab = Lab(prefix("b"))
    lab.down(purge=True)
    lab.up(parse_links(links))
    if not wait_all_up(lab, 20):
        status = lab.status()
        lab.down(purge=True)
        raise SystemExit(f"paths did not come up: {status}")
    return lab


def full_lab(links: str, cc: str, backend: str = PROXY_BACKEND, tunnel6: bool = False,
             config_extra: str = "") -> Lab:
    """The full path (the proxy on both ends) over `links`, every path up, the proxy running;
    `config_extra`: more sections of bondingd's config (e.g. rules)."""
    lab = Lab(prefix("g"))
    lab.down(purge=True)
    lab.up(parse_links(links), proxy=True, backend=backend, tunnel6=tunnel6,
           config_extra=config_extra,
           options={"congestion_control": "bbr" if cc == "mixed" else cc})
    ok = wait_all_up(lab, 20) and wait_proxy_running(lab, 10)
    if not ok:
        status = lab.status()
        lab.down(purge=True)
        raise SystemExit(f"lab not ready: {status.get('paths')} {status.get('proxy')}")
    return lab


def set_cc(lab: Lab, cc: str, lossy: set[str]) -> None:
    """`cc` everywhere, or 'mixed': bbr globally (the first subflow) and on the lossy links,
    cubic on the clean ones (per-path option congestion_control)."""
    links = [x.name for x in lab.load().links]
    if cc == "mixed":
        changes: dict[str, dict[str, str | None]] = {"globals": {"congestion_control": "bbr"}}
        changes.update({n: {"congestion_control": None if n in lossy else "cubic"}
                        for n in links})
    else:
        changes = {"globals": {"congestion_control": cc}}
        changes.update({n: {"congestion_control": None} for n in links})
    lab.set_options(changes)


def stages(lab: Lab) -> str:
    """The links' delay stages over the lab's life: how many releases were late, how late."""
    parts = []
    for name, st in lab.stage_stats().items():
        late = 100 * st["late_over_1ms"] / max(st["forwarded"], 1)
        parts.append(f"{name} {late:.1f}% late > 1 ms, worst {st['late_max_ms']:.1f} ms, "
                     f"{st['dropped']:.0f} dropped")
    return "  delay stages: " + "; ".join(parts)

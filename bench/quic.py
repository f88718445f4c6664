"""quic: what a rule's `block_quic` changes for a client of UDP port 443 (root).

    .venv/bin/python bench/quic.py [--runs 3] [--seconds 8]

One full-path lab (sing-box on both ends, links 50/30/20 Mbit/s at 20/40/80 ms RTT, 100 Mbit/s
together) with a rule for the LAN host's UDP to the target's port 443 (bonding.config.rules),
measured with `block_quic` off, then on:

- the client's first datagram: what comes back (the echo through the proxy, or 'refused': the
  router's ICMP port unreachable, which makes a browser give up QUIC for TCP at once) and
  after how many ms;
- off: a UDP flow to port 443 offered at the bond's capacity (iperf3 -u -b 100M, 1200-byte
  datagrams, what a QUIC download would push): what reaches the target and the share lost.
  UDP is not split over the links: it rides the proxy as datagrams;
- on, and off for comparison: the TCP flow a browser falls back to, to port 443 (iperf3,
  cubic): bonded over every link.

Each figure: median and range over the runs, failed runs counted (bench/figures.py).  Prints
figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from bonding.lab.iperf import Transfer, received_bps
from bonding.lab.topology import TARGET_ADDR, Lab
from bonding.lab.traffic import Service, first_answer_from, wait_for
from figures import Runs
from labs import full_lab

LINKS = "50/10ms,30/20ms,20/40ms"
CAPACITY_BPS = 100e6
QUIC = 443
RULE = f"""
config rule 'quic'
\toption dest_ip '{TARGET_ADDR}'
\toption proto 'udp'
\tlist dest_port '{QUIC}'
\toption block_quic '0'
"""


def _block(lab: Lab, on: bool) -> None:
    lab.set_options({"quic": {"block_quic": "1" if on else "0"}})

    def applied() -> bool:
        rules: list[dict[str, Any]] = lab.status().get("rules", [])
        rule = next((r for r in rules if r["name"] == "quic"), {})
        return rule.get("block_quic") is on

    if wait_for(applied, 15) is None:
        raise SystemExit(f"block_quic {on} not applied: {lab.status().get('rules')}")


def _transfer(lab: Lab, seconds: float, udp: bool) -> Transfer:
    return Transfer(lab, seconds, src_role="lan", dst=TARGET_ADDR, dst_role="target",
                    mptcp=False, port=QUIC, congestion=None if udp else "cubic",
                    udp_bps=CAPACITY_BPS if udp else None)


def _udp_figures(report: dict[str, Any]) -> tuple[float, float]:
    """(Mbit/s that reached the target, % lost) of an iperf3 -u report: the client's sum holds
    what was sent and, from the receiver, what was lost."""
    s = report["end"]["sum"]
    lost = float(s["lost_percent"])
    return float(s["bits_per_second"]) * (1 - lost / 100) / 1e6, lost


def _case(lab: Lab, on: bool, runs: int, seconds: float) -> dict[str, Runs]:
    figs = {k: Runs(k) for k in ("first_ms", "udp_mbps", "udp_lost", "tcp_mbps")}
    answers: list[str] = []
    for _ in range(runs):
        try:
            with Service(lab, "target", "udp-echo", QUIC):
                answer, ms = first_answer_from(lab, "lan", TARGET_ADDR, QUIC)
            answers.append(answer.split()[0])
            figs["first_ms"].add(ms)
        except Exception as e:  # a failed run is counted, with its reason
            figs["first_ms"].fail(f"{type(e).__name__}: {str(e)[:80]}")
        for udp in ((False, True) if not on else (False,)):
            key = "udp_mbps" if udp else "tcp_mbps"
            t = _transfer(lab, seconds, udp)
            try:
                t.start()
                report = t.result(timeout=seconds + 30)
                if udp:
                    mbps, lost = _udp_figures(report)
                    figs["udp_mbps"].add(mbps)
                    figs["udp_lost"].add(lost)
                else:
                    figs[key].add(received_bps(report) / 1e6)
            except Exception as e:
                figs[key].fail(f"{type(e).__name__}: {str(e)[:80]}")
                if udp:
                    figs["udp_lost"].fail(f"{type(e).__name__}")
            finally:
                t.stop()
            time.sleep(1.0)
    print(f"quic block_quic {'on ' if on else 'off'}: first datagram got "
          f"{', '.join(sorted(set(answers))) or 'nothing'}", flush=True)
    return figs


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8.0)
    a = ap.parse_args(argv)
    print(f"quic: links {LINKS}, UDP and TCP to the target's port {QUIC} from the LAN host, "
          f"{a.runs} runs of {a.seconds:g} s (the host may be shared with other work)",
          flush=True)
    lab = full_lab(LINKS, "cubic", config_extra=RULE)
    try:
        for on in (False, True):
            _block(lab, on)
            figs = _case(lab, on, a.runs, a.seconds)
            name = "on " if on else "off"
            print(f"quic {name} first datagram answered in "
                  f"{figs['first_ms'].summary(lambda v: f'{v:.1f} ms')}", flush=True)
            if not on:
                print(f"quic {name} UDP 443 at {CAPACITY_BPS / 1e6:.0f} Mbit/s offered: "
                      f"{figs['udp_mbps'].summary(lambda v: f'{v:.1f} Mbit/s')} reached, "
                      f"{figs['udp_lost'].summary(lambda v: f'{v:.1f}%')} lost", flush=True)
            print(f"quic {name} TCP 443 (bonded): "
                  f"{figs['tcp_mbps'].summary(lambda v: f'{v:.1f} Mbit/s')}", flush=True)
    finally:
        lab.down(purge=True)


if __name__ == "__main__":
    main()

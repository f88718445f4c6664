"""Voice under load (root): a 50 pps "voice" stream LAN host → UDP echo at the target through
the full path (sing-box on both ends, links 50/30/20 Mbit/s at 20/40/80 ms RTT), idle and
while one bulk TCP flow (iperf3, cubic) fills the bond, upload then download; without policy
(today: the stream rides the proxy) and with it (option realtime: natively by the lowest-RTT
path; option shaping: htb just below each link's declared rate, realtime first).

    .venv/bin/python bench/voice.py [--runs 3] [--seconds 8]

Per case: the stream's round-trip p50 and p99 and its loss, each the median and range of the
runs (bench/figures.py); and the bulk flow's goodput with and without policy (the cost of
shaping).  Bar (DESIGN.md section 6): p99 ≤ the best path's RTT (20 ms) + 20 ms, ≤ 1 % lost.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import time

from bonding.lab.iperf import lan_transfer, received_bps
from bonding.lab.topology import TARGET_ADDR, Lab
from bonding.lab.traffic import Service, Stream, wait_all_up, wait_for
from figures import Runs
from labs import full_lab

LINKS = "50/10ms,30/20ms,20/40ms"
PORT = 7007
POLICY = {"realtime": "1", "realtime_port": str(PORT), "shaping": "1"}
NO_POLICY = {"realtime": None, "realtime_port": None, "shaping": None}


def _pct(xs: list[float], p: float) -> float:
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def _policy(lab: Lab, on: bool) -> None:
    lab.set_options({"globals": POLICY if on else NO_POLICY})

    def ready() -> bool:
        st = lab.status()
        return (st.get("realtime") is not None and bool(st.get("shaping"))) if on else (
            st.get("realtime") is None and not st.get("shaping"))

    if wait_for(ready, 15) is None:
        raise SystemExit(f"policy {'on' if on else 'off'} not applied: "
                         f"{lab.status().get('realtime')} {lab.status().get('shaping')}")
    wait_all_up(lab, 20)


def _case(lab: Lab, load: str, runs: int, seconds: float) -> tuple[Runs, Runs, Runs, Runs]:
    p50, p99, loss, bulk = (Runs("p50"), Runs("p99"), Runs("loss"), Runs("bulk"))
    for _ in range(runs):
        t = None
        try:
            if load != "idle":
                t = lan_transfer(lab, seconds + 5, reverse=load == "download")
                t.start()
                time.sleep(3.0)  # past slow start: the queues are full
            r = Stream(lab, "lan", TARGET_ADDR, PORT, seconds).result()
            rtt = sorted((a[2] - a[1]) * 1000 for a in r["arrivals"])
            if not rtt:
                raise RuntimeError("no echo came back")
            p50.add(_pct(rtt, 0.5))
            p99.add(_pct(rtt, 0.99))
            loss.add(100 * r["lost"] / max(r["sent"], 1))
            if t is not None:
                bulk.add(received_bps(t.result(timeout=seconds + 30)) / 1e6)
        except Exception as e:  # a failed run is counted, with its reason
            for f in (p50, p99, loss, bulk):
                f.fail(f"{type(e).__name__}: {str(e)[:80]}")
        finally:
            if t is not None:
                t.stop()
        time.sleep(1.0)
    return p50, p99, loss, bulk


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8.0)
    a = ap.parse_args(argv)
    print("(the host is shared with other work: figures are under that load)", flush=True)
    lab = full_lab(LINKS, "cubic")
    try:
        with Service(lab, "target", "udp-echo", PORT):
            for on in (False, True):
                _policy(lab, on)
                name = "with policy   " if on else "without policy"
                for load in ("idle", "upload", "download"):
                    p50, p99, loss, bulk = _case(lab, load, a.runs, a.seconds)
                    print(f"voice {name} {load:8} p50 {p50.summary(lambda v: f'{v:.0f} ms')}",
                          flush=True)
                    print(f"      {'':14} {'':8} p99 {p99.summary(lambda v: f'{v:.0f} ms')}  "
                          "(bar ≤ 40 ms)", flush=True)
                    print(f"      {'':14} {'':8} lost {loss.summary(lambda v: f'{v:.1f}%')}  "
                          "(bar ≤ 1%)", flush=True)
                    if load != "idle":
                        print(f"      {'':14} {'':8} bulk goodput "
                              f"{bulk.summary(lambda v: f'{v:.1f} Mbit/s')}", flush=True)
    finally:
        lab.down(purge=True)


if __name__ == "__main__":
    main()

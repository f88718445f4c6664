"""bonding-server under a flood of unauthenticated connections: the real client's time to first
byte with and without it (root; the bonding-server tests' namespaces, tests/server).

    .venv/bin/python bench/server_flood.py [--runs 3] [--count 7000] [--probes 20]
                                           [--proxy sing-box,shadowsocks-libev]

Per proxy: one server (`init --no-systemd`, one client, `run`), the client's tunnel into it,
and per run first PROBES connections through the tunnel to the target's echo without a flood,
then PROBES more while three other addresses of the client's network each hold COUNT silent
connections to the client's port (netpeer.py flood, started 5 s before; it stops by itself).
Time to first byte: connect() on the tunnel until the first byte of the echo (the tunnel opens
the bonded connection to the proxy, the proxy the one to the target).  Prints per phase the
median of the runs' medians, the range of the runs' medians, the worst probe, and the failed
probes (no reply within 5 s) of all runs.  Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from tempfile import mkdtemp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "server"))

from server_world import (
    ATTACK_SOURCES,
    ECHO_PORT,
    SERVER_ADDR,
    TARGET_ADDR,
    World,
    root_skip_reason,
)

LOCAL_PORT = 13000
LEAD_S = 5.0  # the flood's head start: every source at its limit before the probes


def _phase(label: str, runs: list[list[float | None]]) -> str:
    medians = [statistics.median(x for x in r if x is not None) * 1000 for r in runs
               if any(x is not None for x in r)]
    good = [x for r in runs for x in r if x is not None]
    failed = sum(x is None for r in runs for x in r)
    total = sum(len(r) for r in runs)
    if not medians:
        return f"{label:15} no reply at all ({failed}/{total} failed)"
    return (f"{label:15} median {statistics.median(medians):.2f} ms (runs' medians "
            f"{min(medians):.2f}–{max(medians):.2f} ms, n={len(medians)} runs), worst "
            f"{max(good) * 1000:.1f} ms, failed {failed}/{total}")


def bench(proxy: str, runs: int, count: int, probes: int) -> None:
    top = Path(mkdtemp(prefix="bonding-flood-"))
    w = World(f"bsf{os.getpid() % 100000}", top / "state", proxy=proxy)
    try:
        w.build()
        r = w.cli("init", "--no-systemd", "--public-address", SERVER_ADDR, "--proxy", proxy)
        if r.returncode != 0:
            raise SystemExit(f"init failed: {r.stderr}")
        client = w.cli_json("add-client", "--name", "bench")
        w.start_supervisor()
        w.wait_running(["bench"])
        quiet: list[list[float | None]] = []
        loud: list[list[float | None]] = []
        held: list[int] = []
        with w.tunnel(client, LOCAL_PORT, f"{TARGET_ADDR}:{ECHO_PORT}"):
            w.ttfb(LOCAL_PORT, 3)  # warm up
            for _ in range(runs):
                quiet.append(w.ttfb(LOCAL_PORT, probes))
                with w.attack(client["port"], count) as flood:
                    time.sleep(LEAD_S)
                    loud.append(w.ttfb(LOCAL_PORT, probes))
                    stats = flood(120)
                held.append(max(int(s["open"] + s["closed_by_server"]) for s in stats.values()))
                time.sleep(2)
        print(f"flood {proxy}: {len(ATTACK_SOURCES)} sources × {count} silent connections; "
              f"time to first byte through the tunnel, {probes} probes × {runs} runs")
        print(f"  {_phase('without flood', quiet)}")
        print(f"  {_phase('under flood', loud)}")
        print(f"  connections the busiest source got accepted over the flood, per run: {held}")
    finally:
        w.down()
        shutil.rmtree(top, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--count", type=int, default=7000, help="silent connections per source")
    p.add_argument("--probes", type=int, default=20)
    p.add_argument("--proxy", default="sing-box,shadowsocks-libev")
    a = p.parse_args(argv)
    reason = root_skip_reason()
    if reason:
        print(f"server_flood: {reason}", file=sys.stderr)
        return 1
    for proxy in (x.strip() for x in a.proxy.split(",")):
        bench(proxy, max(a.runs, 3), a.count, a.probes)
    return 0


if __name__ == "__main__":
    sys.exit(main())

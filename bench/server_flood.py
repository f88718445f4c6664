"""bonding-server under a flood of unauthenticated connections: the real client's time to first
byte and download goodput with and without it (root; the bonding-server tests' namespaces,
tests/server).

    .venv/bin/python bench/server_flood.py [--runs 3] [--count 7000] [--probes 20]
                                           [--seconds 6] [--bitrate 200M]
                                           [--proxy sing-box,shadowsocks-libev]

Per proxy: one server (`init --no-systemd`, one client, `run`), the client's tunnel into it,
and per run first PROBES connections through the tunnel to the target's echo without a flood,
then PROBES more while three other addresses of the client's network each hold COUNT silent
connections to the client's port (netpeer.py flood, started 5 s before; it stops by itself).
Time to first byte: connect() on the tunnel until the first byte of the echo (the tunnel opens
the bonded connection to the proxy, the proxy the one to the target).  Prints per phase the
median of the runs' medians, the range of the runs' medians, the worst probe, and the failed
probes (no reply within 5 s) of all runs.  Goodput: after the probes of each phase, a download
(iperf3 -R through a second tunnel, SECONDS long after a 1 s omit, the sender paced at BITRATE:
an unpaced multi-Gbit/s burst into ss-server once leaked this kernel's TCP memory accounting,
see tests/server/test_server_lab.py) from the target to the client, which is what the client
received; a run whose iperf3 fails is counted as failed.  The flood lasts ATTACK_HOLD_S (25 s),
which covers the lead, the probes and the download.  Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
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

from figures import Runs

LOCAL_PORT = 13000
IPERF_LOCAL_PORT = 13001
IPERF_PORT = 5201  # the target's iperf3
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


def _goodput(w: World, into: Runs, seconds: int, bitrate: str) -> None:
    """One download through the iperf3 tunnel: Mbit/s received, or the run counted as failed."""
    p = w.iperf(IPERF_LOCAL_PORT, reverse=True, seconds=seconds, omit=1, bitrate=bitrate)
    out, err = p.communicate(timeout=seconds + 60)
    try:
        into.add(json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e6)
    except (ValueError, KeyError, TypeError):
        into.fail(f"iperf3 exit {p.returncode}: {(err or out)[-200:].strip()}")


def bench(proxy: str, runs: int, count: int, probes: int, seconds: int, bitrate: str) -> None:
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
        rate_quiet, rate_loud = Runs("goodput without flood"), Runs("goodput under flood")
        with w.tunnel(client, LOCAL_PORT, f"{TARGET_ADDR}:{ECHO_PORT}"), \
                w.tunnel(client, IPERF_LOCAL_PORT, f"{TARGET_ADDR}:{IPERF_PORT}"):
            w.ttfb(LOCAL_PORT, 3)  # warm up
            for _ in range(runs):
                quiet.append(w.ttfb(LOCAL_PORT, probes))
                _goodput(w, rate_quiet, seconds, bitrate)
                with w.attack(client["port"], count) as flood:
                    time.sleep(LEAD_S)
                    loud.append(w.ttfb(LOCAL_PORT, probes))
                    _goodput(w, rate_loud, seconds, bitrate)
                    stats = flood(120)
                held.append(max(int(s["open"] + s["closed_by_server"]) for s in stats.values()))
                time.sleep(2)
        print(f"flood {proxy}: {len(ATTACK_SOURCES)} sources × {count} silent connections; "
              f"time to first byte through the tunnel, {probes} probes × {runs} runs")
        print(f"  {_phase('without flood', quiet)}")
        print(f"  {_phase('under flood', loud)}")
        print(f"download goodput (iperf3 -R, {seconds} s, sender paced at {bitrate}), Mbit/s:")
        print(f"  {'without flood':15} {rate_quiet.summary()}")
        print(f"  {'under flood':15} {rate_loud.summary()}")
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
    p.add_argument("--seconds", type=int, default=6, help="length of each download")
    p.add_argument("--bitrate", default="200M", help="iperf3 -b: the download's paced rate")
    p.add_argument("--proxy", default="sing-box,shadowsocks-libev")
    a = p.parse_args(argv)
    reason = root_skip_reason()
    if reason:
        print(f"server_flood: {reason}", file=sys.stderr)
        return 1
    for proxy in (x.strip() for x in a.proxy.split(",")):
        bench(proxy, max(a.runs, 3), a.count, a.probes, a.seconds, a.bitrate)
    return 0


if __name__ == "__main__":
    sys.exit(main())

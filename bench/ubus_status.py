"""`ubus call bonding status` latency through the ctypes binding, 8 paths (root + OWRT_PREFIX).

    OWRT_PREFIX=/opt/owrt .venv/bin/python bench/ubus_status.py [--calls N]

A lab with 8 links (every path probing at the default rate), a real ubusd in the router
namespace, bondingd registered there.  One client connection (bonding.ubus.Ubus) calls `status`
back to back and times each call; also `ubus call` (the CLI, a process per call) for comparison.
Prints p50/p99/max and bondingd's RSS before/after.  Bar (DESIGN §6): p99 ≤ 5 ms.  Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bonding.lab.topology import Lab, find_ubusd, parse_links
from bonding.lab.traffic import rss_kb, wait_all_up
from footprint import pct, status_calls


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=10_000)
    p.add_argument("--prefix", default="bu")
    a = p.parse_args(argv)
    ubusd = find_ubusd()
    if ubusd is None:
        print("no ubusd: set OWRT_PREFIX to an OpenWrt userland build (see tests/owrt)",
              file=sys.stderr)
        return 2
    prefix = Path(ubusd).parents[1]
    lab = Lab(a.prefix)
    lab.down(purge=True)
    try:
        lab.up(parse_links(",".join(["10/5ms"] * 8)))
        if not wait_all_up(lab, 30):
            print(f"paths did not come up: {lab.status()}", file=sys.stderr)
            return 1
        st = lab.load()
        assert st.ubus_socket and st.daemon_pid
        asyncio.run(status_calls(st.ubus_socket, 500, paths=8))  # warm-up
        rss0 = rss_kb(st.daemon_pid)
        lat = asyncio.run(status_calls(st.ubus_socket, a.calls, paths=8))
        rss1 = rss_kb(st.daemon_pid)
        ms = [x * 1000 for x in lat]
        print(f"status through the binding, 8 paths, {len(ms)} calls: "
              f"p50 {statistics.median(ms):.2f} ms, p99 {pct(ms, 0.99):.2f} ms, "
              f"max {max(ms):.2f} ms (bar: p99 ≤ 5 ms); bondingd RSS {rss0 / 1024:.1f} → "
              f"{rss1 / 1024:.1f} MB")
        cli = []
        env = dict(os.environ, LD_LIBRARY_PATH=str(prefix / "lib"))
        for _ in range(200):
            t0 = time.perf_counter()
            subprocess.run([str(prefix / "bin" / "ubus"), "-s", st.ubus_socket, "call",
                            "bonding", "status"], capture_output=True, check=True, env=env)
            cli.append((time.perf_counter() - t0) * 1000)
        print(f"`ubus call bonding status` (CLI, 200 runs): p50 {statistics.median(cli):.2f} ms, "
              f"p99 {pct(cli, 0.99):.2f} ms")
    finally:
        lab.down(purge=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

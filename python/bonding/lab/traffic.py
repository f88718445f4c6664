"""Traffic in the lab: iperf3 over MPTCP (mptcpize), per-link counters, waiting on bondingd.

The parts: bonding.lab.iperf (transfers and their reports), bonding.lab.measure (rates,
waiting on bondingd's snapshot), bonding.lab.services (whoami, udp-echo, dns and their
clients), bonding.lab.voice (the UDP "voice" stream), bonding.lab.flows (those run inside a
lab namespace).  This module is the command line the namespaces run them by:

    python3 -m bonding.lab.traffic serve {whoami,udp-echo,dns} --port N
    python3 -m bonding.lab.traffic ask {whoami,udp-echo,dns} HOST PORT
    python3 -m bonding.lab.traffic until KIND HOST PORT EXPECT [--limit S]
    python3 -m bonding.lab.traffic stream HOST PORT --seconds S [--pps N]

and the names callers use are importable from here.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from bonding.lab.flows import (
    NewConnections,
    Service,
    Stream,
    ask_from,
    first_answer_from,
    try_ask_from,
)
from bonding.lab.iperf import (
    HEADER_RATIO,
    HEADER_RATIO6,
    Transfer,
    goodput_between,
    lan_transfer,
    need,
    received_bps,
    receiver_intervals,
)
from bonding.lab.measure import (
    Rates,
    endpoints,
    family_state,
    link_rates,
    path_state,
    rss_kb,
    wait_all_up,
    wait_family_up,
    wait_for,
    wait_proxy_running,
)
from bonding.lab.services import (
    DNS_ANSWER,
    DNS_NAME,
    ask,
    dns_query,
    parse_dns_a,
    serve,
    until_answer,
)
from bonding.lab.voice import VOICE_BYTES, VOICE_PPS, longest_silence, stream

__all__ = [
    "DNS_ANSWER", "DNS_NAME", "HEADER_RATIO", "HEADER_RATIO6",
    "VOICE_BYTES", "VOICE_PPS", "NewConnections", "Rates", "Service", "Stream", "Transfer",
    "ask", "ask_from", "dns_query", "endpoints", "family_state", "first_answer_from",
    "goodput_between",
    "lan_transfer", "link_rates", "longest_silence", "main", "need", "parse_dns_a", "path_state",
    "received_bps", "receiver_intervals", "rss_kb", "serve", "stream", "try_ask_from",
    "until_answer", "wait_all_up", "wait_family_up", "wait_for", "wait_proxy_running",
]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m bonding.lab.traffic",
                                description="lab services and their clients")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("kind", choices=["whoami", "udp-echo", "dns"])
    s.add_argument("--port", type=int, required=True)
    a = sub.add_parser("ask")
    a.add_argument("kind", choices=["whoami", "udp-echo", "dns"])
    a.add_argument("host")
    a.add_argument("port", type=int)
    a.add_argument("--timeout", type=float, default=3.0)
    u = sub.add_parser("until", help="print 'ready', read t0 (monotonic) from stdin, then open "
                                     "connections until one answers EXPECT; print the seconds "
                                     "since t0 (or 'none')")
    u.add_argument("kind", choices=["whoami", "udp-echo", "dns"])
    u.add_argument("host")
    u.add_argument("port", type=int)
    u.add_argument("expect")
    u.add_argument("--limit", type=float, default=15.0)
    st = sub.add_parser("stream", help="a 'voice' stream to a udp-echo; prints a JSON report")
    st.add_argument("host")
    st.add_argument("port", type=int)
    st.add_argument("--pps", type=float, default=VOICE_PPS)
    st.add_argument("--seconds", type=float, required=True)
    args = p.parse_args(argv)
    if args.cmd == "serve":
        serve(args.kind, args.port)
        return 0
    if args.cmd == "until":
        print("ready", flush=True)
        t0 = float(sys.stdin.readline())
        took = until_answer(args.kind, args.host, args.port, args.expect, t0, args.limit)
        print("none" if took is None else f"{took:.4f}")
        return 0
    if args.cmd == "stream":
        print(json.dumps(stream(args.host, args.port, args.pps, args.seconds)))
        return 0
    try:
        print(ask(args.kind, args.host, args.port, args.timeout))
    except OSError as e:
        print(f"no answer: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The lab's traffic parts that need no namespace: the DNS codec, the services and their
clients on loopback, iperf3 report arithmetic, per-link rates, waiting (no root)."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bonding.lab import measure
from bonding.lab.iperf import goodput_between, received_bps, receiver_intervals
from bonding.lab.services import DNS_ANSWER, ask, dns_answer, dns_query, parse_dns_a, until_answer

PYTHON = str(Path(__file__).parents[2] / "python")


def test_dns_a_query_answered() -> None:
    reply = dns_answer(dns_query("bonding.example", qid=0x1234))
    assert reply is not None
    assert struct.unpack("!H", reply[:2])[0] == 0x1234
    assert parse_dns_a(reply) == [DNS_ANSWER]


def test_dns_other_type_gets_no_answer_and_junk_none() -> None:
    aaaa = dns_query("bonding.example")[:-4] + struct.pack("!HH", 28, 1)
    reply = dns_answer(aaaa)
    assert reply is not None and parse_dns_a(reply) == []
    assert struct.unpack("!H", reply[6:8])[0] == 0  # no answer record
    assert dns_answer(b"short") is None
    assert dns_answer(dns_answer(dns_query("x.example")) or b"") is None  # a reply: not a query


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def service(kind: str, port: int) -> Iterator[None]:
    proc = subprocess.Popen([sys.executable, "-m", "bonding.lab.traffic", "serve", kind,
                             "--port", str(port)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": PYTHON})
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def udp_port() -> Iterator[int]:
    port = free_port(socket.SOCK_DGRAM)
    with service("udp-echo", port):
        yield port


def test_whoami_names_the_peer_in_ipv4_form() -> None:
    port = free_port(socket.SOCK_STREAM)
    with service("whoami", port):
        assert ask("whoami", "127.0.0.1", port) == "127.0.0.1"
        assert ask("whoami", "::1", port) == "::1"


def test_udp_echo_and_until_answer(udp_port: int) -> None:
    assert ask("udp-echo", "127.0.0.1", udp_port) == "127.0.0.1 ping"
    took = until_answer("udp-echo", "127.0.0.1", udp_port, "127.0.0.1 ping", time.monotonic(), 5)
    assert took is not None and took < 1
    never = until_answer("udp-echo", "127.0.0.1", udp_port, "other", time.monotonic(), 0.3,
                         attempt=0.1)
    assert never is None


def interval(start: float, end: float, bps: float, omitted: bool = False) -> dict[str, Any]:
    return {"sum": {"start": start, "end": end, "bits_per_second": bps, "omitted": omitted}}


def test_receiver_intervals_from_the_receiving_side() -> None:
    server = {"intervals": [interval(0, 1, 10e6, omitted=True), interval(1, 2, 20e6),
                            interval(2, 3, 40e6)]}
    upload = {"start": {"test_start": {"reverse": 0}}, "server_output_json": server,
              "intervals": [interval(0, 1, 99e6)],
              "end": {"sum_received": {"bits_per_second": 25e6}}}
    assert receiver_intervals(upload) == [(1, 2, 20e6), (2, 3, 40e6)]
    assert goodput_between(upload, 1, 3) == 30e6
    assert goodput_between(upload, 5, 9) is None
    assert received_bps(upload) == 25e6
    download = {"start": {"test_start": {"reverse": 1}}, "intervals": [interval(0, 1, 99e6)]}
    assert receiver_intervals(download) == [(0, 1, 99e6)]  # the client received


class FakeLab:
    """counters() as the router's devices would count a steady upload."""

    def __init__(self) -> None:
        self.tx = 0

    def counters(self) -> dict[str, dict[str, int]]:
        self.tx += 1_000_000
        return {"wan1": {"rx": 0, "tx": self.tx}}


def test_rates_between_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([10.0, 12.0, 13.0])
    monkeypatch.setattr(measure.time, "monotonic", lambda: next(clock))
    rates = measure.Rates(FakeLab())  # type: ignore[arg-type]
    assert rates.sample() == {"wan1": 1_000_000 * 8 / 2}
    assert rates.sample() == {"wan1": 1_000_000 * 8 / 1}


def test_link_rates_waits_then_measures(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    monkeypatch.setattr(measure.time, "sleep", sleep)
    monkeypatch.setattr(measure.time, "monotonic", lambda: now[0])
    assert measure.link_rates(FakeLab(), 2, 4) == {"wan1": 2e6}  # type: ignore[arg-type]
    assert slept == [2, 4]


def test_wait_for() -> None:
    calls = iter([False, False, True])
    took = measure.wait_for(lambda: next(calls), 1, 0.001)
    assert took is not None and took < 1
    assert measure.wait_for(lambda: False, 0.05, 0.01) is None

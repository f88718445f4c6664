"""Server probing (bonding.serverprobe) against the real kernel, in two throwaway namespaces.

    client ──wan1 (100.64.1.0/24)── server (203.0.113.10 on lo)
           ──wan2 (100.64.2.0/24)──

The client has a routing table per link, chosen by source address (as bondingd sets up); the
prober runs in a worker thread inside the client namespace, the listener in one inside the
server namespace.  Faults are nftables drops in the server namespace, per link.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from netns_thread import Space, client_and_far_end, drop

from bonding.connects import Via
from bonding.core.servers import Round
from bonding.serverprobe import ServerProber, Target

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create network namespaces"),
    pytest.mark.skipif(shutil.which("nft") is None, reason="needs nftables `nft`"),
]

SERVER = "203.0.113.10"
PORT = 65101
VIAS = (Via("wan1", "wan1", "100.64.1.2"), Via("wan2", "wan2", "100.64.2.2"))


class Listener:
    """A TCP server in the server namespace that counts connections and bytes received."""

    def __init__(self, space: Space) -> None:
        self.sock: socket.socket = space.run(self._open)
        self.accepted = 0
        self.received = 0
        self.resets = 0
        self._stop = False
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    @staticmethod
    def _open() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((SERVER, PORT))
        s.listen(64)
        s.settimeout(0.1)
        return s

    def _loop(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.settimeout(0.5)
            try:
                self.received += len(conn.recv(4096))
            except ConnectionResetError:
                self.resets += 1
            except OSError:
                pass
            conn.close()

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def world() -> Iterator[tuple[Space, Space]]:
    with client_and_far_end([SERVER], links=2) as w:
        yield w


def _open_sockets(client: Space) -> list[str]:
    """The client's TCP sockets towards the server in any state but TIME-WAIT."""
    out = client.sh("ss", "-Htan", f"dst {SERVER}")
    return [ln for ln in out.splitlines() if ln.strip() and not ln.startswith("TIME-WAIT")]


def one_round(client: Space, timeout_s: float = 0.4, port: int = PORT,
              vias: tuple[Via, ...] = VIAS) -> tuple[Round, float]:
    """One round of the prober in the client namespace: the result and how long it took."""
    async def body() -> tuple[Round, float]:
        got: asyncio.Future[Round] = asyncio.get_running_loop().create_future()
        p = ServerProber(interval_s=60, targets=lambda: [Target("vps", SERVER, port)],
                         paths=lambda: vias, timeout_s=lambda s, v: timeout_s,
                         on_round=lambda name, r: got.set_result(r))
        t0 = time.monotonic()
        p.round()
        r = await asyncio.wait_for(got, 5)
        took = time.monotonic() - t0
        p.close()
        return r, took
    return client.run(lambda: asyncio.run(body()))


def test_a_listening_server_answers_through_every_path(world: tuple[Space, Space]) -> None:
    client, server = world
    lis = Listener(server)
    try:
        r, took = one_round(client)
        assert r.ok
        assert sorted((a.path, a.ok) for a in r.attempts) == [("wan1", True), ("wan2", True)]
        assert all(a.rtt_ms is not None and 0 <= a.rtt_ms < 100 for a in r.attempts)
        assert took < 0.2
        time.sleep(0.3)
        assert lis.accepted == 2 and lis.received == 0  # nothing is sent to the proxy
        assert lis.resets == 0  # an orderly close: the proxy sees end-of-file, not an error
        # nothing left open on the client (TIME-WAIT only)
        assert _open_sockets(client) == []
    finally:
        lis.close()


def test_nothing_listening_is_refused_at_once(world: tuple[Space, Space]) -> None:
    client, _ = world
    r, took = one_round(client)
    assert not r.ok
    assert {a.error for a in r.attempts} == {"connection refused"}
    assert took < 0.2
    assert "wan1 connection refused" in r.failure() and "wan2 connection refused" in r.failure()


def test_each_probe_leaves_by_its_own_link(world: tuple[Space, Space]) -> None:
    client, server = world
    lis = Listener(server)
    try:
        drop(server, "iifname isp2 drop")  # the second link is a blackhole
        r, took = one_round(client, timeout_s=0.3)
        by = {a.path: a for a in r.attempts}
        assert by["wan1"].ok and not by["wan2"].ok
        assert by["wan2"].error == "no answer within 300 ms"
        assert r.ok  # one path dying is not the server dying
        assert 0.28 < took < 0.6
        drop(server, "iifname isp1 drop")
        r, _ = one_round(client, timeout_s=0.3)
        by = {a.path: a for a in r.attempts}
        assert not by["wan1"].ok and by["wan2"].ok
    finally:
        drop(server, None)
        lis.close()
    # the timed-out attempts are gone too
    assert _open_sockets(client) == []


def test_rounds_repeat_and_close_stops_them(world: tuple[Space, Space]) -> None:
    client, server = world
    lis = Listener(server)

    async def body() -> list[tuple[float, Round]]:
        seen: list[tuple[float, Round]] = []
        p = ServerProber(interval_s=0.1, targets=lambda: [Target("vps", SERVER, PORT)],
                         paths=lambda: VIAS, timeout_s=lambda s, v: 0.3,
                         on_round=lambda name, r: seen.append((time.monotonic(), r)))
        p.start()
        await asyncio.sleep(0.55)
        p.close()
        n = len(seen)
        await asyncio.sleep(0.3)
        assert len(seen) == n  # nothing reported after close
        return seen

    try:
        seen = client.run(lambda: asyncio.run(body()))
    finally:
        lis.close()
    assert 5 <= len(seen) <= 7
    assert all(r.ok for _, r in seen)


def test_no_path_is_a_round_that_judges_nothing(world: tuple[Space, Space]) -> None:
    client, _ = world
    r, _ = one_round(client, vias=())
    assert not r.judged


def test_a_path_whose_address_is_gone_fails_with_the_reason(world: tuple[Space, Space]) -> None:
    client, server = world
    lis = Listener(server)
    try:
        r, _ = one_round(client, vias=(VIAS[0], Via("wan3", "wan3", "100.64.3.2")))
    finally:
        lis.close()
    by = {a.path: a for a in r.attempts}
    assert by["wan1"].ok
    assert not by["wan3"].ok and by["wan3"].error == "no such device"

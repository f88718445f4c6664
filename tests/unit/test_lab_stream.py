"""The lab's "voice" stream and its gap measure (no root: loopback only)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from bonding.lab.traffic import longest_silence, stream


def report(arrivals: list[tuple[int, float, float]], last: float = 8.0) -> dict[str, object]:
    return {"first": 0.0, "last": last, "arrivals": [list(a) for a in arrivals]}


EVERY_20MS = [(i, i * 0.02, i * 0.02 + 0.04) for i in range(400)]


@pytest.mark.parametrize(("arrivals", "start", "gap"), [
    (EVERY_20MS, None, 0.04),  # the first echo 40 ms after the first send, then every 20 ms
    (EVERY_20MS, 3.0, 0.02),
    ([a for a in EVERY_20MS if not 150 <= a[0] < 250], None, 2.02),  # 2 s lost
    ([a for a in EVERY_20MS if a[0] < 150], 3.0, 4.98),  # silent from 3.02 s to the end
    ([], None, 8.0),  # nothing came back
    # nothing lost, but 100 echoes held back and delivered at once (a stall): still a gap
    ([(i, i * 0.02, max(i * 0.02 + 0.04, 4.5) if 150 <= i < 250 else i * 0.02 + 0.04)
      for i in range(400)], None, 1.48),
])
def test_longest_silence(arrivals: list[tuple[int, float, float]], start: float | None,
                         gap: float) -> None:
    assert longest_silence(report(arrivals), start=start) == pytest.approx(gap, abs=1e-6)


@pytest.fixture
def echo() -> Iterator[tuple[int, list[int]]]:
    """A UDP echo on loopback that drops the datagrams whose sequence number is in `drop`."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    drop: list[int] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(2048)
            except TimeoutError:
                continue
            if int.from_bytes(data[:8], "big") not in drop:
                sock.sendto(b"127.0.0.1 " + data, peer)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    yield sock.getsockname()[1], drop
    stop.set()
    t.join()
    sock.close()


def test_stream_counts_what_came_back(echo: tuple[int, list[int]]) -> None:
    port, drop = echo
    drop.extend(range(20, 30))  # 10 datagrams (0.2 s at 50 pps) get no echo
    r = stream("127.0.0.1", port, 50, 1.0, linger=0.3)
    assert (r["sent"], r["received"], r["lost"]) == (50, 40, 10)
    assert sorted({a[0] for a in r["arrivals"]}) == [i for i in range(50) if i not in drop]
    assert 0.95 <= r["last"] - r["first"] <= 1.2  # 50 pps for one second
    assert 0.2 <= longest_silence(r) < 0.5

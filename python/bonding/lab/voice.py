"""The lab's "voice" stream: VOICE_PPS datagrams a second of VOICE_BYTES (a 20 ms G.711
frame), each carrying its sequence number and send time, through one socket (one UDP flow) to a
udp-echo; and the longest silence a listener would hear in its echoes."""

from __future__ import annotations

import contextlib
import itertools
import select
import socket
import struct
import time
from typing import Any

VOICE_PPS = 50
VOICE_BYTES = 160
_VOICE = struct.Struct("!Qd")


def stream(host: str, port: int, pps: float, seconds: float, size: int = VOICE_BYTES,
           linger: float = 2.0) -> dict[str, Any]:
    """Send the stream for `seconds`, take echoes until `linger` s after the last one.

    Returns {"sent", "received", "lost", "pps", "first", "last" (when the first and the last
    datagram were sent), "arrivals": [[seq, sent_at, received_at]], "via": [[seq, address]]:
    the address the target saw the stream come from, at each change (echo order)} (times: the
    wall clock, as time.time(), so a fault's moment taken elsewhere compares)."""
    if not 0 < pps <= 1000 or not 0 < seconds <= 600:
        raise ValueError("pps 0–1000, seconds 0–600")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((host, port))
    sock.setblocking(False)
    pad = b"\0" * max(0, size - _VOICE.size)
    interval = 1.0 / pps
    n = int(seconds * pps)
    arrivals: dict[int, tuple[float, float]] = {}
    via: list[list[Any]] = []  # [seq, the address the target saw] whenever that changes
    t0 = time.monotonic()
    wall0 = time.time()
    sent = 0
    last = wall0
    end = t0 + n * interval + linger
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if sent < n and now >= t0 + sent * interval:
            last = wall0 + (now - t0)
            with contextlib.suppress(OSError):  # ECONNREFUSED from an earlier ICMP: go on
                sock.send(_VOICE.pack(sent, last) + pad)
            sent += 1
            continue
        wait = (t0 + sent * interval if sent < n else end) - now
        ready, _, _ = select.select([sock], [], [], max(0.0, wait))
        while ready:
            try:
                data = sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                continue
            head, _, body = data.partition(b" ")  # udp-echo puts the sender's address first
            if len(body) >= _VOICE.size:
                seq, at = _VOICE.unpack_from(body)
                arrivals.setdefault(seq, (at, wall0 + (time.monotonic() - t0)))
                seen = head.decode(errors="replace")
                if not via or via[-1][1] != seen:
                    via.append([seq, seen])
    sock.close()
    return {"sent": sent, "received": len(arrivals), "lost": sent - len(arrivals), "pps": pps,
            "first": wall0, "last": last,
            "arrivals": sorted([q, a, b] for q, (a, b) in arrivals.items()), "via": via}


def longest_silence(report: dict[str, Any], start: float | None = None,
                    end: float | None = None) -> float:
    """The longest time without an echo arriving (seconds) between `start` and `end` (wall
    clock; default: the first and the last send): what a listener hears as a gap.  An echo
    of the last datagram counts up to one second after it was sent."""
    lo = report["first"] if start is None else start
    hi = report["last"] if end is None else end
    points = [lo, *sorted(a[2] for a in report["arrivals"] if lo <= a[2] <= hi + 1.0)]
    if points[-1] < hi:  # silent to the end
        points.append(hi)
    return max(b - a for a, b in itertools.pairwise(points)) if len(points) > 1 else 0.0



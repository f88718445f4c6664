"""Samplers: each path's byte counters and rates (sysfs), and the MPTCP subflows per local
address (sock_diag).  The readers are small callables, so the samplers are tested with fakes."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from bonding.bondingd.runtime import PathRuntime
from bonding.netlink.core import NetlinkError
from bonding.netlink.diag import Subflow, SubflowCounter

log = logging.getLogger("bondingd")

SUBFLOW_REFRESH_S = 2.0  # subflow counts: one sock_diag dump this often

CounterReader = Callable[[str], "tuple[int, int] | None"]


def sysfs_counters(device: str, root: Path = Path("/sys/class/net")) -> tuple[int, int] | None:
    """(rx_bytes, tx_bytes) of a network device, None when it cannot be read."""
    base = root / device / "statistics"
    try:
        return int((base / "rx_bytes").read_text()), int((base / "tx_bytes").read_text())
    except (OSError, ValueError):
        return None


def sample_counters(paths: Iterable[PathRuntime], now: float,
                    read: CounterReader = sysfs_counters) -> None:
    """Read each path's counters; the rates are over the time since the last reading."""
    for rt in paths:
        got = read(rt.device) if rt.device is not None else None
        if got is None:
            rt.counters = None
            continue
        rx, tx = got
        if rt.counters is not None and now > rt.counters[0]:
            dt = now - rt.counters[0]
            rt.rx_bps = max(0, rx - rt.counters[1]) * 8 / dt
            rt.tx_bps = max(0, tx - rt.counters[2]) * 8 / dt
        rt.counters = (now, rx, tx)


class SubflowSource(Protocol):
    def dump(self) -> list[Subflow]: ...
    def close(self) -> None: ...


class SubflowSampler:
    """Established MPTCP subflows per local address, from a sock_diag dump now and then.

    (The kernel's mptcp_pm_events do not say `closed` for every connection, so counting
    events drifts; a dump is the truth.)  `counts` is None while they cannot be read."""

    def __init__(self, open_source: Callable[[], SubflowSource] = SubflowCounter,
                 refresh_s: float = SUBFLOW_REFRESH_S) -> None:
        self._open = open_source
        self.refresh_s = refresh_s
        self.source: SubflowSource | None = None
        self.counts: Counter[str] | None = None
        self.subflows: list[Subflow] | None = None  # the last dump (None: unknown)
        self._at: float | None = None

    def sample(self, now: float) -> bool:
        """Dump again when `refresh_s` has passed; True when the counts changed."""
        if self._at is not None and now - self._at < self.refresh_s:
            return False
        self._at = now
        try:
            if self.source is None:
                self.source = self._open()
            self.subflows = self.source.dump()
        except (NetlinkError, OSError, ValueError) as e:
            if self.counts is not None or self.source is None:
                log.warning("counting MPTCP subflows (sock_diag): %s", e)
            changed, self.counts, self.subflows = self.counts is not None, None, None
            return changed
        counts = Counter(s.local for s in self.subflows)
        if counts == self.counts:
            return False
        self.counts = counts
        return True

    def close(self) -> None:
        if self.source is not None:
            self.source.close()

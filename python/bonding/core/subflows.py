"""Live MPTCP subflows per local address, counted from the kernel's mptcp_pm_events.

`created` carries the initial subflow of a connection, `sub_established` each further one,
`sub_closed` ends one and `closed` ends the connection with every subflow it had.  Counts start
when the daemon starts listening (earlier connections are not seen); when events were lost the
counts are unknown until every connection seen has closed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

Subflow = tuple[str, int, str, int]  # saddr, sport, daddr, dport


@dataclass
class SubflowTracker:
    conns: dict[int, set[Subflow]] = field(default_factory=dict)
    lost: bool = False  # events were dropped: counts may be short

    def on_event(self, name: str, token: int | None, saddr: str | None, sport: int | None,
                 daddr: str | None, dport: int | None) -> bool:
        """Account one event; True when a count may have changed."""
        if token is None:
            return False
        if name == "closed":
            return self.conns.pop(token, None) is not None
        if saddr is None or daddr is None:
            return False
        sub = (saddr, sport or 0, daddr, dport or 0)
        if name in ("created", "established", "sub_established"):
            subs = self.conns.setdefault(token, set())
            if sub in subs:
                return False
            subs.add(sub)
            return True
        if name == "sub_closed":
            live = self.conns.get(token)
            if live is None or sub not in live:
                return False
            live.discard(sub)
            return True
        return False

    def events_lost(self) -> None:
        self.lost = True

    def by_address(self) -> Counter[str]:
        """Live subflows per local address."""
        if self.lost and not self.conns:
            self.lost = False
        return Counter(s[0] for subs in self.conns.values() for s in subs)

    def count(self, address: str | None) -> int | None:
        """Live subflows leaving from `address`; None when unknown (no address, events lost)."""
        if address is None:
            return None
        counts = self.by_address()
        if self.lost:
            return None
        return counts.get(address, 0)

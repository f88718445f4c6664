"""One lab instance: its prefix, its namespaces' names and its state file (lab.json).

The parts of `Lab` (bonding.lab.topology) build on this: each reads the state with
`self.state or self.load()` and writes it back with `save()`.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path

from bonding.lab.commands import run
from bonding.lab.delay import STATE_ROOT
from bonding.lab.model import LabError, LabState, Link


class LabBase:
    """A lab's name and state (namespaces named `<prefix>-…`, state under `state_root`)."""

    def __init__(self, prefix: str = "bl", *, state_root: Path = STATE_ROOT) -> None:
        if not re.match(r"^[a-z][a-z0-9]{0,7}$", prefix):
            raise LabError(f"prefix {prefix!r}: 1–8 lowercase letters/digits, starting a letter")
        self.prefix = prefix
        self.state_dir = state_root / prefix
        self.state: LabState | None = None

    def ns(self, role: str) -> str:
        return f"{self.prefix}-{role}"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "lab.json"

    def load(self) -> LabState:
        try:
            raw = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            raise LabError(f"no lab '{self.prefix}' is up ({self.state_file} is missing)") from None
        raw["links"] = [Link(**x) for x in raw["links"]]
        self.state = LabState(**raw)
        return self.state

    def save(self) -> None:
        assert self.state is not None
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self.state), indent=2))
        tmp.replace(self.state_file)

    def existing_namespaces(self) -> list[str]:
        out = run(["ip", "netns", "list"]).stdout
        names = [line.split()[0] for line in out.splitlines() if line.strip()]
        return [n for n in names if n.startswith(self.prefix + "-")]

    def server_roles(self) -> list[str]:
        """The aggregation servers' roles: 'server' (preferred), then 'server2'."""
        st = self.state or self.load()
        return ["server", "server2"][:st.servers]

    def link(self, name: str) -> Link:
        st = self.state or self.load()
        for link in st.links:
            if link.name == name:
                return link
        raise LabError(f"no link {name!r}: the lab has " + ", ".join(x.name for x in st.links))

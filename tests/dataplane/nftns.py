"""The real nft in a throwaway network namespace (root): load a ruleset, read it back as JSON.
The `netns` fixture (conftest.py) makes the namespace and removes it, also on failure."""

from __future__ import annotations

import json
import subprocess
from typing import Any


def nft_load(ns: str, text: str) -> None:
    subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=text, text=True,
                   check=True, capture_output=True)


def nft_items(ns: str) -> list[dict[str, Any]]:
    """The namespace's ruleset as `nft -j` lists it, without its metainfo."""
    r = subprocess.run(["ip", "netns", "exec", ns, "nft", "-j", "list", "ruleset"],
                       capture_output=True, text=True, check=True)
    items: list[dict[str, Any]] = json.loads(r.stdout)["nftables"]
    return [i for i in items if "metainfo" not in i]

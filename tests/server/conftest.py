"""Fixtures for the bonding-server tests (the world itself is in server_world.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from server_world import World, root_skip_reason

from bonding.lab.lifetime import up_then_down


@pytest.fixture(scope="module", params=["sing-box", "shadowsocks-libev"])
def world(tmp_path_factory: pytest.TempPathFactory,
          request: pytest.FixtureRequest) -> Iterator[World]:
    """The world with bonding-server running sing-box (the default), then ss-server."""
    reason = root_skip_reason()
    if reason:
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("bonding-server")
    w = World(f"bst{os.getpid() % 100000}", base / "state", proxy=request.param)
    with up_then_down(w.build, lambda _purge: w.down()):
        yield w

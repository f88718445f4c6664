"""Path probing (bonding.probe.PathProber) against the real kernel, in two throwaway namespaces.

    client ──wan1 (100.64.1.0/24)── far end (203.0.113.10 and 198.51.100.10 on lo)

The prober runs in a worker thread inside the client namespace with raw ICMP sockets, as
bondingd does; the far end's kernel answers the echoes.  Faults are nftables drops there.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator

import pytest
from netns_thread import Space, client_and_far_end, drop

from bonding.core.health import Round
from bonding.probe import PathProber, TargetStats

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create network namespaces"),
    pytest.mark.skipif(shutil.which("nft") is None, reason="needs nftables `nft`"),
]

TARGETS = ("203.0.113.10", "198.51.100.10")
INTERVAL_S = 0.1


@pytest.fixture
def world() -> Iterator[tuple[Space, Space]]:
    with client_and_far_end(TARGETS, links=1) as w:
        yield w


def probe(client: Space, seconds: float) -> tuple[list[Round], dict[str, TargetStats]]:
    """Probe wan1 every INTERVAL_S for `seconds`: the finished rounds and the targets' stats."""
    async def body() -> tuple[list[Round], dict[str, TargetStats]]:
        rounds: list[Round] = []
        p = PathProber(device="wan1", source="100.64.1.2", targets=TARGETS,
                       interval_s=INTERVAL_S, timeout_s=lambda: 0.25, srtt_s=lambda: None,
                       on_round=rounds.append)
        p.start()
        await asyncio.sleep(seconds)
        p.close()
        return rounds, p.stats
    return client.run(lambda: asyncio.run(body()))


def test_a_healthy_path_costs_one_echo_a_round_and_the_targets_take_turns(
        world: tuple[Space, Space]) -> None:
    client, _ = world
    rounds, stats = probe(client, 2.0)
    assert len(rounds) >= 15
    assert all(r.ok for r in rounds)
    assert all((r.sent, r.received, len(r.rtts_ms)) == (1, 1, 1) for r in rounds), rounds
    sent = [stats[t].sent for t in TARGETS]
    assert sum(sent) == len(rounds) or sum(sent) == len(rounds) + 1  # one still out at close
    assert min(sent) >= len(rounds) // 2 - 1, sent  # each leads every other round
    assert all(stats[t].received > 0 and stats[t].last_error is None for t in TARGETS)


def test_a_dead_target_makes_its_rounds_ask_the_next_one(world: tuple[Space, Space]) -> None:
    client, far = world
    drop(far, f"ip daddr {TARGETS[1]} drop")
    rounds, stats = probe(client, 2.0)
    assert all(r.ok for r in rounds)  # the path is fine: the other target answers
    # rounds led by the dead target sent two echoes, got one answer
    assert {(r.sent, r.received) for r in rounds} == {(1, 1), (2, 1)}, rounds
    dead, live = stats[TARGETS[1]], stats[TARGETS[0]]
    assert dead.received == 0 and dead.sent >= len(rounds) // 2 - 1
    assert dead.last_error == "timeout"
    assert live.received >= len(rounds) - 1  # asked every round


def test_a_blackholed_path_fails_its_rounds_after_asking_every_target(
        world: tuple[Space, Space]) -> None:
    client, far = world
    drop(far, "iifname isp1 drop")
    rounds, stats = probe(client, 1.5)
    assert len(rounds) >= 8
    assert all(not r.ok and r.sent == 2 and r.received == 0 for r in rounds), rounds
    assert all(stats[t].last_error == "timeout" and stats[t].received == 0 for t in TARGETS)

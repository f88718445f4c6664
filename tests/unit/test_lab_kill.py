"""The lab's one namespace kill loop (`commands.kill_netns`), driven by a fake `ip netns pids` and a
fake os.kill: no root, no namespaces."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Sequence

import pytest

from bonding.lab import commands


class FakeNetns:
    """Processes that go away when sent one of the signals in `dies_on`."""

    def __init__(self, pids: list[int], dies_on: set[signal.Signals]) -> None:
        self.pids = pids
        self.dies_on = dies_on
        self.sent: list[tuple[int, signal.Signals]] = []

    def run(self, cmd: Sequence[str], **_: object) -> subprocess.CompletedProcess[str]:
        assert list(cmd[:3]) == ["ip", "netns", "pids"]
        out = "".join(f"{p}\n" for p in self.pids)
        return subprocess.CompletedProcess(list(cmd), 0, out, "")

    def kill(self, pid: int, sig: signal.Signals) -> None:
        self.sent.append((pid, sig))
        if sig in self.dies_on and pid in self.pids:
            self.pids.remove(pid)


@pytest.mark.parametrize(
    ("signals", "dies_on", "expect_ok", "expect_sent"),
    [
        # down(): SIGTERM suffices, no SIGKILL sent
        ((signal.SIGTERM, signal.SIGKILL), {signal.SIGTERM}, True, [signal.SIGTERM] * 2),
        # down(): SIGTERM ignored, SIGKILL needed
        ((signal.SIGTERM, signal.SIGKILL), {signal.SIGKILL}, True,
         [signal.SIGTERM] * 2 + [signal.SIGKILL] * 2),
        # stop_server(): SIGKILL only
        ((signal.SIGKILL,), {signal.SIGKILL}, True, [signal.SIGKILL] * 2),
        # nothing kills them: reported, not raised
        ((signal.SIGKILL,), set(), False, [signal.SIGKILL] * 2),
    ],
)
def test_kill_netns(monkeypatch: pytest.MonkeyPatch, signals: tuple[signal.Signals, ...],
                    dies_on: set[signal.Signals], expect_ok: bool,
                    expect_sent: list[signal.Signals]) -> None:
    fake = FakeNetns([101, 102], dies_on)
    monkeypatch.setattr(commands, "run", fake.run)
    monkeypatch.setattr(commands.os, "kill", fake.kill)
    monkeypatch.setattr(commands.time, "sleep", lambda _s: None)
    assert commands.kill_netns("bl-x", signals, 0.0) is expect_ok
    assert [s for _, s in fake.sent] == expect_sent


def test_kill_netns_empty_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeNetns([], set())
    monkeypatch.setattr(commands, "run", fake.run)
    monkeypatch.setattr(commands.os, "kill", fake.kill)
    assert commands.kill_netns("bl-x", (signal.SIGTERM, signal.SIGKILL), 2.0)
    assert fake.sent == []

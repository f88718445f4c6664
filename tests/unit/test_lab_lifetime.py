"""The lab fixtures' one lifetime (`up_then_down`): down whatever happens, purged only when
nothing failed (no root)."""

from __future__ import annotations

import pytest

from bonding.lab.lifetime import up_then_down


class Thing:
    def __init__(self, fail_up: bool = False) -> None:
        self.fail_up = fail_up
        self.events: list[str] = []

    def up(self) -> None:
        self.events.append("up")
        if self.fail_up:
            raise RuntimeError("build failed")

    def down(self, purge: bool) -> None:
        self.events.append(f"down purge={purge}")


def test_clean_run_is_purged() -> None:
    t = Thing()
    with up_then_down(t.up, t.down):
        t.events.append("used")
    assert t.events == ["up", "used", "down purge=True"]


def test_failed_build_is_down_unpurged_and_raises() -> None:
    t = Thing(fail_up=True)
    with pytest.raises(RuntimeError, match="build failed"), up_then_down(t.up, t.down):
        t.events.append("used")  # never
    assert t.events == ["up", "down purge=False"]


def test_failure_in_the_block_keeps_the_logs() -> None:
    t = Thing()
    with pytest.raises(ValueError), up_then_down(t.up, t.down):
        raise ValueError
    assert t.events == ["up", "down purge=False"]


def test_clean_says_whether_something_else_failed() -> None:
    t = Thing()
    with up_then_down(t.up, t.down, clean=lambda: False):
        pass
    assert t.events == ["up", "down purge=False"]

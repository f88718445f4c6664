"""The restart mark: a restart leaves the data plane to the next bondingd, a stop removes it."""

from __future__ import annotations

import os
import time
from pathlib import Path

from bonding.bondingd import handover


def test_no_mark_is_a_stop(tmp_path: Path) -> None:
    assert handover.requested(tmp_path) is False


def test_a_fresh_mark_is_a_restart_and_is_consumed(tmp_path: Path) -> None:
    (tmp_path / handover.MARK).touch()
    assert handover.requested(tmp_path) is True
    assert not (tmp_path / handover.MARK).exists()
    assert handover.requested(tmp_path) is False  # the next end is a stop again


def test_a_stale_mark_is_a_stop(tmp_path: Path) -> None:
    mark = tmp_path / handover.MARK
    mark.touch()
    old = time.time() - handover.MARK_S - 1
    os.utime(mark, (old, old))
    assert handover.requested(tmp_path) is False
    assert not mark.exists()


def test_a_starting_bondingd_clears_a_mark_none_read(tmp_path: Path) -> None:
    (tmp_path / handover.MARK).touch()
    handover.clear(tmp_path)
    handover.clear(tmp_path)  # none there: fine
    assert handover.requested(tmp_path) is False


"""bench/figures.py: a figure's runs, the failed ones counted and shown beside the median."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))

from figures import Runs


def test_failed_runs_are_counted_beside_the_median_and_range() -> None:
    r = Runs("goodput")
    for v in (97.0, 95.0, 98.0):
        r.add(v)
    r.fail("iperf3 failed")
    r.fail("iperf3 failed")
    assert r.median() == 97.0
    assert r.summary() == ("median 97.0 (range 95.0–98.0), 5 runs, 2 failed: iperf3 failed")


def test_no_value_at_all_is_said_not_hidden() -> None:
    r = Runs("goodput")
    r.fail("no steady interval in the report")
    assert r.median() is None
    assert r.summary() == "no figure: 1 runs, 1 failed: no steady interval in the report"
    assert Runs("x").summary() == "no figure: 0 runs, 0 failed"

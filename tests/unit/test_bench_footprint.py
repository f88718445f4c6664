"""bench/footprint.py: every figure is the median and range of the runs, failed runs counted."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))

import footprint as fp


def test_a_failed_run_is_counted_in_every_figure_and_the_rest_give_median_and_range(
        capsys: pytest.CaptureFixture[str]) -> None:
    values = iter([0.9, None, 1.3, 0.7])

    def run(seconds: float, links: str) -> dict[str, float]:
        v = next(values)
        if v is None:
            raise RuntimeError("paths or families did not come up\nmore")
        return {k: v for k in fp.FIGURES}

    figs = fp.footprint(1, 4, "10/5ms,10/5ms,10/5ms", run=run)
    assert figs["cpu_pct"].values == [0.9, 1.3, 0.7]
    assert all(f.failures == ["paths or families did not come up"] for f in figs.values())
    out = capsys.readouterr().out
    assert "3 dual-stack paths" in out
    assert ("footprint CPU (utime+stime) (% of a core): median 0.90 (range 0.70–1.30), 4 runs, "
            "1 failed: paths or families did not come up; bar ≤ 1") in out
    assert "footprint ubus status p99 (ms): median 0.90" in out


def test_status_quantiles_are_nearest_rank() -> None:
    xs = [float(i) for i in range(1, 101)]
    assert fp.pct(xs, 0.5) == 51.0
    assert fp.pct(xs, 0.99) == 100.0

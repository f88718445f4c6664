"""bonding.teardown: every step of a stop runs, also after one fails (no root)."""

from __future__ import annotations

import asyncio

import pytest

from bonding import teardown


def test_every_step_runs_after_a_failure_and_the_failures_are_named(
        caplog: pytest.LogCaptureFixture) -> None:
    ran: list[str] = []

    def fails() -> None:
        ran.append("rules")
        raise ValueError("bad device name")

    async def proxy() -> None:
        await asyncio.sleep(0)
        ran.append("proxy")

    failed = asyncio.run(teardown.run_all([("the proxy", proxy), ("our rules", fails),
                                           ("status.json", lambda: ran.append("status"))]))
    assert ran == ["proxy", "rules", "status"]
    assert failed == ["our rules"]
    assert "stopping: our rules failed; going on with the rest" in caplog.text

"""Teardown that goes on after a step fails: every step runs, each failure is logged.

bondingd's stop removes what it put in the kernel (rules, routes, endpoints), stops the proxy
and removes its nftables table and files.  One step raising (a bug, a kernel refusing) must not
leave the others undone: orphaned ip rules or a proxy that outlives bondingd are worse than the
failure itself.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence

log = logging.getLogger("bondingd")

Step = tuple[str, Callable[[], object]]


async def run_all(steps: Sequence[Step]) -> list[str]:
    """Run each `(what, fn)` in order (awaiting what returns an awaitable); returns the `what`
    of each step that raised, after logging it with its traceback."""
    failed = []
    for what, fn in steps:
        try:
            result = fn()
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("stopping: %s failed; going on with the rest", what)
            failed.append(what)
    return failed


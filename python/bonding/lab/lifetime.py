"""A lab's lifetime around a block: built, used, taken down whatever happens, its logs kept
when something failed.  The one up/down pattern of the lab test fixtures (tests/lab, and the
bonding-server tests' world)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator


def _always() -> bool:
    return True


@contextlib.contextmanager
def up_then_down(up: Callable[[], object], down: Callable[[bool], object],
                 clean: Callable[[], bool] = _always) -> Iterator[None]:
    """`up()`, then the block, then `down(purge)`, whatever happened.

    A failing `up()` is taken down at once (`down(False)`) and its error goes on; after the
    block, `purge` is true only when the block raised nothing and `clean()` says nothing else
    failed (a test fixture: no test of its own failed), so that a failure's logs stay."""
    try:
        up()
    except BaseException:
        down(False)
        raise
    ok = False
    try:
        yield
        ok = True
    finally:
        down(ok and clean())

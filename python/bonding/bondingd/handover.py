"""Stop or restart: what bondingd leaves behind when it ends.

bondingd's SIGTERM means stop, and it removes everything of its own: routes, rules, MPTCP
endpoints, the proxy (and its files, which hold the key), the nftables tables.  The init script's
`restart` first leaves a mark, ``<run_dir>/restart``; a bondingd that ends with the mark there
(fresh: made within MARK_S) leaves all of it in place, and the next one takes it over: the
reconciler changes only what differs, the supervisor adopts the proxy when it would start the
same one (bonding.dataplane.proxyproc), so a LAN connection through the proxy survives the
restart.  The mark is consumed by the bondingd that reads it, and a bondingd that starts removes
a stale one (a restart while none ran).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Final

MARK: Final = "restart"
MARK_S: Final = 60.0  # procd's term_timeout is 10 s: an older mark is not this restart's


def requested(run_dir: Path) -> bool:
    """The init script's `restart` asked this end (the mark is consumed)."""
    path = run_dir / MARK
    try:
        st = path.lstat()
        path.unlink()
    except OSError:
        return False
    return st.st_uid == os.geteuid() and time.time() - st.st_mtime < MARK_S


def clear(run_dir: Path) -> None:
    """A mark no bondingd read (a restart while none ran): not for this one's end."""
    with contextlib.suppress(FileNotFoundError):
        (run_dir / MARK).unlink()

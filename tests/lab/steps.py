"""Steps the lab tests share: a transfer measured while it runs, bondingd's config rewritten."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from bonding.lab.iperf import Transfer
from bonding.lab.topology import Lab
from bonding.lab.traffic import link_rates


def rates_during(lab: Lab, t: Transfer, after: float, over: float,
                 timeout: float) -> tuple[dict[str, float], dict[str, Any]]:
    """Start `t`; bits/s on each link from `after` s for `over` s (link_rates), and the report
    the transfer ends with (within `timeout` s); the transfer is stopped whatever happens."""
    t.start()
    try:
        rates = link_rates(lab, after, over)
        report = t.result(timeout=timeout)
    finally:
        t.stop()
    return rates, report


def reload_with(lab: Lab, text: str) -> None:
    """bondingd's /etc/config/bonding becomes `text`, and bondingd reloads it (SIGHUP)."""
    st = lab.load()
    (Path(st.config_dir) / "bonding").write_text(text)
    assert st.daemon_pid is not None
    os.kill(st.daemon_pid, signal.SIGHUP)

"""bondingd's command line, and `bondingd --check-config`: validate /etc/config/bonding and,
held against it, /etc/config/bonding_secrets; print every problem; exit 1 on errors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bonding import __version__, config
from bonding.config import Severity, secretsfile


def check_config(config_dir: Path) -> int:
    """Validate /etc/config/bonding and, held against it, /etc/config/bonding_secrets."""
    cfg, problems = config.load(config_dir)
    for pc in cfg.paths:
        if pc.device and not Path("/sys/class/net", pc.device).exists():
            problems.append(config.Problem(
                Severity.WARNING, pc.name, "device", pc.device,
                f"device '{pc.device}' does not exist (now): the path stays down until it "
                "appears; check the name with `ip link`"))
    if not any(p.severity is Severity.ERROR for p in problems):
        problems += secretsfile.check_file(config_dir, cfg)
    for prob in problems:
        print(prob)
    errors = sum(1 for p in problems if p.severity is Severity.ERROR)
    where = config_dir / config.PACKAGE
    if any(p.package == config.SECRETS_PACKAGE for p in problems):
        where = config_dir / f"{{{config.PACKAGE},{config.SECRETS_PACKAGE}}}"
    if errors:
        print(f"{where}: {errors} error(s): fix them, then `bondingd --check-config` again",
              file=sys.stderr)
        return 1
    print(f"{where}: OK" + (f" ({len(problems)} warning(s))" if problems else ""))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bondingd",
        description="Bond several internet links with Multipath TCP: probes every path, keeps "
                    "MPTCP endpoints, routes and rules on the live ones, and reports the state.")
    p.add_argument("--config-dir", type=Path, default=Path("/etc/config"),
                   help="where the UCI file 'bonding' is (default: %(default)s)")
    p.add_argument("--run-dir", type=Path, default=Path("/var/run/bonding"),
                   help="where status.json is written (default: %(default)s)")
    p.add_argument("--hooks-dir", type=Path, default=Path("/etc/hotplug.d/bonding"),
                   help="scripts run with ACTION=path-up/path-down (default: %(default)s)")
    p.add_argument("--ubus-socket", default=None,
                   help="ubusd socket (default: libubus's own default)")
    p.add_argument("--check-config", action="store_true",
                   help="validate the config, print the problems, exit 1 on errors")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p

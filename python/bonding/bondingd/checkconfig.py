"""`bondingd --check-config`: validate /etc/config/bonding and, held against it,
/etc/config/bonding_secrets; print every problem; exit 1 on errors."""

from __future__ import annotations

import sys
from pathlib import Path

from bonding import config, secretsfile
from bonding.config import Severity


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

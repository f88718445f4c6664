"""What a (re)load of /etc/config/bonding does besides building the model: logging its
problems, its log level, and pruning the keys of removed servers from bonding_secrets."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from bonding import config
from bonding.config import Config, Problem, Severity, secretsfile

log = logging.getLogger("bondingd")

LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "notice": logging.INFO,
              "warning": logging.WARNING, "error": logging.ERROR}


def log_problems(problems: Iterable[Problem]) -> None:
    for p in problems:
        (log.error if p.severity is Severity.ERROR else log.warning)("config: %s", p)


def has_errors(problems: Iterable[Problem]) -> bool:
    return any(p.severity is Severity.ERROR for p in problems)


def from_file(problems: Iterable[Problem]) -> bool:
    """The config was read from a file (not the defaults for a missing one)."""
    return not any(p.section == "(file)" for p in problems)


def set_log_level(cfg: Config) -> None:
    logging.getLogger().setLevel(LOG_LEVELS.get(cfg.globals.log_level, logging.INFO))


def prune_removed_keys(config_dir: Path, previous: Config, cfg: Config) -> None:
    """Drop the keys of server sections this reload removed from bonding_secrets."""
    gone = {s.name for s in previous.servers} - {s.name for s in cfg.servers}
    if not gone:
        return
    where = config_dir / config.SECRETS_PACKAGE
    try:
        removed = secretsfile.prune(config_dir, gone)
    except (OSError, secretsfile.SecretsFileError) as e:
        log.error("%s: cannot remove the keys of removed servers (%s): %s", where,
                  ", ".join(sorted(gone)), e)
        return
    for name in removed:
        log.warning("%s: removed the key of server '%s' (its server section is gone)", where,
                    name)

"""The config in use and what a (re)load of /etc/config/bonding does besides building the
model: logging its problems, keeping the last good config on errors, the core's parameters,
the log level, and pruning the keys of removed servers from bonding_secrets.  The reader is a
callable (bonding.config.load), so `ConfigInUse` is tested with a fake."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from bonding import config
from bonding.bondingd.params import health_params
from bonding.config import Config, Problem, Severity, secretsfile
from bonding.core.health import Params

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


class ConfigInUse:
    """The config bondingd runs with, its problems and the core's parameters from it."""

    def __init__(self, config_dir: Path,
                 load: Callable[[Path], tuple[Config, list[Problem]]] = config.load) -> None:
        self.config_dir = config_dir
        self.cfg = Config()
        self.problems: list[Problem] = []
        self.params = Params()
        self._from_file = False  # the config in use was read from a file (not the defaults)
        self._load = load

    def reload(self) -> bool:
        """(Re)load the config; on errors keep the last good one.  True when it changed."""
        cfg, problems = self._load(self.config_dir)
        log_problems(problems)
        self.problems = problems
        if has_errors(problems):
            log.error("config has errors: keeping the last good config")
            return False
        read = from_file(problems)
        previous = self.cfg if self._from_file and read else None
        self._from_file = read
        self.cfg = cfg
        self.params = health_params(cfg.globals)
        set_log_level(cfg)
        if previous is not None:
            prune_removed_keys(self.config_dir, previous, cfg)
        return True

    def add_problems(self, more: Iterable[Problem]) -> None:
        """Problems found when a part applied the config (the proxy's)."""
        more = list(more)
        log_problems(more)
        self.problems.extend(more)

"""/etc/config/bonding_secrets → `Secrets` (the server keys), validated; never shown."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from bonding import uci
from bonding.config.loading import _NAME_RE, _section_label
from bonding.config.problems import Problem, Severity

SECRETS_PACKAGE: Final = "bonding_secrets"
_KEY_RE = re.compile(r"^[\x21-\x7e]{1,256}$")


def invalid_server_name(name: str) -> str | None:
    """Why `name` cannot name a server's key section (None: it can)."""
    if _NAME_RE.fullmatch(name):
        return None
    return (f"server name {name!r} must be 1–32 letters, digits or '_' (the name of its "
            "config server section in /etc/config/bonding)")


def key_shape_problem(key: str) -> str | None:
    """Why `key` is no key bondingd takes (None: it is); the message never quotes the key."""
    if _KEY_RE.fullmatch(key):
        return None
    return "the key must be 1–256 printable ASCII characters without spaces (value not shown)"


class Secrets:
    """Server keys from /etc/config/bonding_secrets, by server section name.

    Nothing here is ever shown: repr() and str() name the servers only.
    """

    def __init__(self, keys: Mapping[str, str] | None = None) -> None:
        self._keys = dict(keys or {})

    def key(self, server: str) -> str | None:
        return self._keys.get(server)

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._keys))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secrets) and other._keys == self._keys

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._keys.items())))

    def __repr__(self) -> str:
        return f"Secrets(servers={list(self.names())})"

    __str__ = __repr__


def secrets_from_sections(sections: Sequence[uci.Section]) -> tuple[Secrets, list[Problem]]:
    """Validate parsed `bonding_secrets` sections.  A problem never carries a key."""
    problems: list[Problem] = []
    keys: dict[str, str] = {}

    def problem(sev: Severity, label: str, option: str | None, msg: str) -> None:
        problems.append(Problem(sev, label, option, None, msg, package=SECRETS_PACKAGE))

    for s in sections:
        label = _section_label(s)
        if s.type != "server":
            problem(Severity.WARNING, label, None,
                    f"unknown section type '{s.type}', ignored; known: server")
            continue
        if s.name is None or not _NAME_RE.fullmatch(s.name):
            problem(Severity.ERROR, label, None, "needs the name of its server section "
                    "(config server 'vps1', as in /etc/config/bonding)")
            continue
        for opt in s.options:
            if opt != "key":
                problem(Severity.WARNING, label, opt, "unknown option, ignored; known: key")
        raw = s.options.get("key")
        if raw is None:
            problem(Severity.ERROR, label, "key", "missing: the key bonding-server add-client "
                    "printed")
            continue
        if not isinstance(raw, str):
            problem(Severity.ERROR, label, "key", "takes one value: write 'option key', not "
                    "'list'")
            continue
        if key_shape_problem(raw) is not None:
            problem(Severity.ERROR, label, "key", "must be 1–256 printable characters without "
                    "spaces (value not shown)")
            continue
        keys[label] = raw
    return Secrets(keys), problems


def secrets_mode_problem(path: Path, mode: int) -> Problem | None:
    """The problem of a bonding_secrets file others may read: an error when every user can
    (any local user or service gets the keys), a warning when its group can."""
    if not mode & 0o077:
        return None
    who = "every user" if mode & 0o007 else "its group"
    return Problem(Severity.ERROR if mode & 0o007 else Severity.WARNING, "(file)", None, None,
                   f"{path} has mode {mode & 0o777:04o}: {who} can read or change the keys; "
                   f"chmod 600 {path}", package=SECRETS_PACKAGE)


def load_secrets(config_dir: Path) -> tuple[Secrets, list[Problem]]:
    """Read `<config_dir>/bonding_secrets`; a missing file means no keys (a warning)."""
    path = config_dir / SECRETS_PACKAGE
    problems: list[Problem] = []
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return Secrets(), [Problem(Severity.WARNING, "(file)", None, None,
                                   f"{path} does not exist: no server keys",
                                   package=SECRETS_PACKAGE)]
    except OSError as e:
        return Secrets(), [Problem(Severity.ERROR, "(file)", None, None, f"{path}: {e.strerror}",
                                   package=SECRETS_PACKAGE)]
    mode_problem = secrets_mode_problem(path, mode)
    if mode_problem is not None:
        problems.append(mode_problem)
    try:
        package = uci.load(config_dir, SECRETS_PACKAGE)
    except uci.UciParseError as e:
        # The parser's message quotes the offending text, which may be a key: say where only.
        at = f" at line {e.line}" if e.line > 0 else ""
        return Secrets(), [*problems, Problem(Severity.ERROR, "(file)", None, None,
                                              f"{path} is not a valid UCI file{at}: {e.reason}",
                                              package=SECRETS_PACKAGE)]
    except OSError as e:
        return Secrets(), [*problems, Problem(Severity.ERROR, "(file)", None, None,
                                              f"{path}: {e.strerror}", package=SECRETS_PACKAGE)]
    secrets, more = secrets_from_sections(package.sections)
    return secrets, problems + more



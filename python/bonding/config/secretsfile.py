"""/etc/config/bonding_secrets against /etc/config/bonding: checks, and pruning removed servers.

check() holds the keys against the servers (`bondingd --check-config` prints its problems like
the config's; none ever carries a key):
- an enabled server without a key: an error when a proxy is configured (the data plane cannot
  use that server, nor fail over to it), a warning otherwise;
- a key of the wrong shape for its server's cipher (bonding.config.key_problem, as the data plane
  checks it: the Shadowsocks-2022 ciphers take base64 of exactly 16 or 32 bytes); a password
  shorter than 16 characters for the others is a warning (guessable);
- a key whose server section does not exist: a warning (nothing uses it).
The file's mode is checked where it is read (bonding.config.load_secrets).

set_key() stores one server's key: bondingd's ubus method for LuCI, which never writes
bonding_secrets through rpcd's uci (nor reads it: nothing hands a key back).

prune() removes the sections of servers that a reload took out of /etc/config/bonding.  What is
safe: bondingd prunes only servers that were in the previous config it applied and are gone
from the new one, both read from the file (never when the file is missing or has errors, so a
deleted or broken /etc/config/bonding never wipes the keys), and never a key for a server it has
not seen (a key written before its server section, e.g. by a script, is kept).

Both rewrite the file as libuci's commit does: the file locked (flock) while it is re-read
and replaced, the new text written to a temporary file beside it, synced and renamed over it,
mode 0600; a symlinked bonding_secrets stays a link and the file it points to is rewritten
(bonding.safefile.replace).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Final

from bonding import safefile, uci
from bonding.config import (
    SECRETS_PACKAGE,
    SS2022_KEY_BYTES,
    Config,
    Problem,
    Secrets,
    Severity,
    invalid_server_name,
    key_problem,
    key_shape_problem,
    load_secrets,
    secrets_mode_problem,
)

MIN_PASSWORD: Final = 16


class SecretsFileError(Exception):
    """bonding_secrets cannot be rewritten (unparsable); the message never quotes it."""


def check(cfg: Config, secrets: Secrets) -> list[Problem]:
    """Problems of the keys against the servers of `cfg` (never quoting a key)."""
    problems: list[Problem] = []

    def problem(sev: Severity, section: str, message: str) -> None:
        problems.append(Problem(sev, section, "key", None, message, package=SECRETS_PACKAGE))

    proxy = cfg.globals.proxy != "none"
    for s in cfg.servers:
        key = secrets.key(s.name)
        if key is None:
            if s.enabled:
                problem(Severity.ERROR if proxy else Severity.WARNING, s.name,
                        f"missing: enabled server '{s.name}' has no key; add config server "
                        f"'{s.name}' with option key as bonding-server add-client printed it"
                        + ("" if proxy else " (not needed while option proxy is 'none')"))
            continue
        bad = key_problem(s.cipher, key)
        if bad is not None:
            problem(Severity.ERROR, s.name, bad)
        elif s.cipher not in SS2022_KEY_BYTES and len(key) < MIN_PASSWORD:
            problem(Severity.WARNING, s.name,
                    f"shorter than {MIN_PASSWORD} characters: a guessable password; use the "
                    "key bonding-server add-client printed (value not shown)")
    known = {s.name for s in cfg.servers}
    for name in secrets.names():
        if name not in known:
            problems.append(Problem(
                Severity.WARNING, name, None, None,
                f"no server section '{name}' in /etc/config/bonding: this key is not used",
                package=SECRETS_PACKAGE))
    return problems


def check_file(config_dir: Path, cfg: Config) -> list[Problem]:
    """The problems of `<config_dir>/bonding_secrets`: its own (mode, syntax, sections) and,
    when it could be read, those of check()."""
    secrets, problems = load_secrets(config_dir)
    path = config_dir / SECRETS_PACKAGE
    try:
        mode_problem = secrets_mode_problem(path, path.stat().st_mode)
    except OSError:
        mode_problem = None
    unread = [p for p in problems if p.section == "(file)" and p.severity is Severity.ERROR
              and p != mode_problem]
    return problems if unread else problems + check(cfg, secrets)


def set_key(config_dir: Path, server: str, key: str, cipher: str | None = None) -> None:
    """Store `key` as the key of `server` (add or replace it), as bondingd's ubus method
    `set_key` does for LuCI: the file is created (mode 0600) when missing, other sections and
    options are kept.  SecretsFileError for a bad name or key (the message never quotes the
    key), a section of that name that is no server, or an unparsable file."""
    bad = invalid_server_name(server) or key_shape_problem(key) or (
        key_problem(cipher, key) if cipher is not None else None)
    if bad is not None:
        raise SecretsFileError(bad)

    def edit(sections: tuple[uci.Section, ...]) -> tuple[uci.Section, ...] | None:
        out, found = [], False
        for s in sections:
            if s.name == server:
                if s.type != "server":
                    raise SecretsFileError(f"section '{server}' is a '{s.type}', not a server: "
                                           f"fix {SECRETS_PACKAGE} by hand")
                s = uci.Section(s.type, s.name, {**s.options, "key": key}, sid=s.sid)
                found = True
            out.append(s)
        if not found:
            out.append(uci.Section("server", server, {"key": key}))
        return tuple(out)

    _rewrite(config_dir, edit, create=True)


def prune(config_dir: Path, names: Collection[str]) -> list[str]:
    """Remove the `server` sections called `names` from bonding_secrets; returns those removed.

    A missing file removes nothing.  SecretsFileError when the file does not parse (it is then
    left as it is)."""
    removed: list[str] = []

    def edit(sections: tuple[uci.Section, ...]) -> tuple[uci.Section, ...] | None:
        removed.extend(s.name for s in sections
                       if s.type == "server" and s.name is not None and s.name in names)
        if not removed:
            return None
        return tuple(uci.Section(s.type, s.name, s.options, sid=s.sid) for s in sections
                     if not (s.type == "server" and s.name in removed))

    _rewrite(config_dir, edit, create=False)
    return removed


def _rewrite(config_dir: Path,
             edit: Callable[[tuple[uci.Section, ...]], tuple[uci.Section, ...] | None],
             *, create: bool) -> None:
    """Re-read bonding_secrets under its lock, let `edit` change the sections (None: nothing to
    write) and replace the file atomically (mode 0600), as libuci's commit does."""
    path = config_dir / SECRETS_PACKAGE
    flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileNotFoundError:
        if create:  # no config directory
            raise
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read()
        try:
            pkg = uci.loads(data, SECRETS_PACKAGE, str(path))
        except uci.UciParseError as e:
            at = f" at line {e.line}" if e.line > 0 else ""
            raise SecretsFileError(f"not a valid UCI file{at}: {e.reason}") from None
        keep = edit(pkg.sections)
        if keep is None:
            return
        text = uci.dumps(uci.Package(SECRETS_PACKAGE, keep))
        safefile.replace(path, text.encode("utf-8", "surrogateescape"), 0o600)
    finally:
        os.close(fd)

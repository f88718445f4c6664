"""/etc/config/bonding_secrets (bonding.config.secrets): the keys, read and never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from bonding import config
from bonding.config import Problem, Secrets, Severity

ERROR, WARNING = Severity.ERROR, Severity.WARNING


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity is ERROR]


def load(config_dir: Path, text: str, mode: int = 0o600) -> tuple[Secrets, list[Problem]]:
    """Write `text` as <config_dir>/bonding_secrets with `mode`, and load it."""
    f = config_dir / "bonding_secrets"
    f.write_text(text)
    f.chmod(mode)
    return config.load_secrets(config_dir)


def where(problems: list[Problem]) -> list[tuple[Severity, str, str | None, str | None]]:
    return [(p.severity, p.section, p.option, p.value) for p in problems]


SECRET = "s3cr3t-K3y+/="


def test_secrets_load(tmp_path: Path) -> None:
    secrets, problems = load(tmp_path, f"config server 'vps1'\n\toption key '{SECRET}'\n"
                             "config server 'vps2'\n\toption key 'other'\n")
    assert problems == []
    assert secrets.key("vps1") == SECRET
    assert secrets.key("vps2") == "other"
    assert secrets.key("nope") is None
    assert secrets.names() == ("vps1", "vps2")


def test_secrets_are_never_shown(tmp_path: Path) -> None:
    secrets = config.Secrets({"vps1": SECRET})
    assert SECRET not in repr(secrets) and SECRET not in str(secrets)
    assert SECRET not in f"{secrets!r} {secrets}"
    assert "vps1" in repr(secrets)


def test_secrets_missing_file_is_a_warning(tmp_path: Path) -> None:
    secrets, problems = config.load_secrets(tmp_path)
    assert secrets.names() == ()
    assert [(p.severity, p.package) for p in problems] == [(WARNING, "bonding_secrets")]
    assert "does not exist" in str(problems[0])


@pytest.mark.parametrize(("mode", "severity", "who"), [
    (0o644, ERROR, "every user"),
    (0o604, ERROR, "every user"),
    (0o602, ERROR, "every user"),
    (0o640, WARNING, "its group"),
    (0o660, WARNING, "its group"),
])
def test_secrets_readable_by_others(tmp_path: Path, mode: int, severity: Severity,
                                    who: str) -> None:
    secrets, problems = load(tmp_path, f"config server 'vps1'\n\toption key '{SECRET}'\n", mode)
    assert secrets.key("vps1") == SECRET  # still used: the daemon keeps serving
    assert len(problems) == 1 and problems[0].severity is severity
    assert f"mode {mode:04o}: {who}" in str(problems[0]) and "chmod 600" in str(problems[0])
    assert SECRET not in str(problems[0])


@pytest.mark.parametrize(("text", "where_", "message"), [
    ("config server 'vps1'\n", ("vps1", "key"), "missing"),
    (f"config server 'vps1'\n\tlist key '{SECRET}'\n", ("vps1", "key"), "takes one value"),
    (f"config server 'vps1'\n\toption key '{SECRET} {SECRET}'\n", ("vps1", "key"),
     "printable characters without spaces"),
    (f"config server\n\toption key '{SECRET}'\n", ("@server[0]", None),
     "needs the name of its server section"),
])
def test_secrets_errors_name_the_place_never_the_key(tmp_path: Path, text: str,
                                                     where_: tuple[str, str | None],
                                                     message: str) -> None:
    _, problems = load(tmp_path, text)
    errs = errors(problems)
    assert [(p.section, p.option) for p in errs] == [where_]
    assert message in errs[0].message
    assert errs[0].value is None
    assert SECRET not in str(errs[0])
    assert str(errs[0]).startswith(f"error: bonding_secrets.{where_[0]}")


def test_secrets_unparsable_file_does_not_quote_it(tmp_path: Path) -> None:
    unterminated = f"config server 'vps1'\n\toption key '{SECRET}\n"
    secrets, problems = load(tmp_path, unterminated)
    assert secrets.names() == ()
    assert [p.severity for p in problems] == [ERROR]
    assert SECRET not in str(problems[0])
    assert "not a valid UCI file" in str(problems[0])


def test_secrets_unknown_option_and_section_are_warnings(tmp_path: Path) -> None:
    secrets, problems = load(tmp_path, f"config server 'vps1'\n\toption key '{SECRET}'\n"
                             "\toption uuid 'x'\nconfig client 'c'\n")
    assert secrets.key("vps1") == SECRET
    assert where(problems) == [(WARNING, "vps1", "uuid", None), (WARNING, "c", None, None)]

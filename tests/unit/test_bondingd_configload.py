"""bondingd.configload: problem logging, pruning removed servers' keys."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bonding.bondingd import configload
from bonding.config import Config, Problem, Server, Severity


def test_problems_are_logged_by_severity_and_errors_found(
        caplog: pytest.LogCaptureFixture) -> None:
    problems = [Problem(Severity.WARNING, "wan", "backup", "x", "a warning"),
                Problem(Severity.ERROR, "(file)", None, None, "missing")]
    with caplog.at_level(logging.WARNING, logger="bondingd"):
        configload.log_problems(problems)
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.ERROR]
    assert configload.has_errors(problems) and not configload.has_errors(problems[:1])
    assert not configload.from_file(problems) and configload.from_file(problems[:1])


def test_only_the_keys_of_removed_servers_are_pruned(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    f = tmp_path / "bonding_secrets"
    f.write_text("config server 'a'\n\toption key 'k-a-0123456789abcdef'\n\n"
                 "config server 'b'\n\toption key 'k-b-0123456789abcdef'\n")
    f.chmod(0o600)
    before = Config(servers=(Server("a", "192.0.2.1"), Server("b", "192.0.2.2")))
    after = Config(servers=(Server("a", "192.0.2.1"),))
    with caplog.at_level(logging.WARNING, logger="bondingd"):
        configload.prune_removed_keys(tmp_path, before, after)
    assert "k-b-" not in f.read_text() and "k-a-" in f.read_text()
    assert "removed the key of server 'b'" in caplog.text and "k-b-" not in caplog.text
    f.write_text("not uci '")
    configload.prune_removed_keys(tmp_path, after, Config())
    assert "cannot remove the keys of removed servers (a)" in caplog.text

"""bondingd.configload: problem logging, pruning removed servers' keys."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bonding.bondingd import configload
from bonding.bondingd.configload import ConfigInUse
from bonding.config import Config, Globals, Problem, Server, Severity


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


class FakeReader:
    """bonding.config.load: hands out the next (config, problems)."""

    def __init__(self, *results: tuple[Config, list[Problem]]) -> None:
        self.results = list(results)

    def __call__(self, config_dir: Path) -> tuple[Config, list[Problem]]:
        return self.results.pop(0)


MISSING = Problem(Severity.WARNING, "(file)", None, None, "no /etc/config/bonding")
BROKEN = Problem(Severity.ERROR, "wan", "backup", "maybe", "not a boolean")


def test_a_config_with_errors_keeps_the_last_good_one_and_reports_its_problems(
        tmp_path: Path) -> None:
    good = Config(globals=Globals(down_count=5))
    conf = ConfigInUse(tmp_path, FakeReader((good, []), (Config(), [BROKEN])))
    assert conf.reload() and conf.cfg is good and conf.params.down_count == 5
    assert not conf.reload()
    assert conf.cfg is good and conf.params.down_count == 5 and conf.problems == [BROKEN]


def test_the_log_level_follows_the_config(tmp_path: Path) -> None:
    root = logging.getLogger()
    level = root.level
    try:
        ConfigInUse(tmp_path, FakeReader((Config(globals=Globals(log_level="debug")), []))
                    ).reload()
        assert root.level == logging.DEBUG
    finally:
        root.setLevel(level)


def test_keys_are_pruned_only_between_two_configs_read_from_the_file(tmp_path: Path) -> None:
    f = tmp_path / "bonding_secrets"
    f.write_text("config server 'a'\n\toption key 'k-a-0123456789abcdef'\n")
    f.chmod(0o600)
    with_a = Config(servers=(Server("a", "192.0.2.1"),))
    # defaults (no file) in between: a server section seen missing then is not "removed"
    conf = ConfigInUse(tmp_path, FakeReader((with_a, []), (Config(), [MISSING]),
                                            (Config(), []), (Config(), [])))
    conf.reload()
    conf.reload()
    conf.reload()
    assert "k-a-" in f.read_text()
    conf = ConfigInUse(tmp_path, FakeReader((with_a, []), (Config(), [])))
    conf.reload()
    conf.reload()
    assert "k-a-" not in f.read_text()


def test_problems_a_part_finds_are_added_and_logged(tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    conf = ConfigInUse(tmp_path, FakeReader((Config(), [MISSING])))
    conf.reload()
    late = Problem(Severity.WARNING, "proxy", "backend", "x", "not installed")
    with caplog.at_level(logging.WARNING, logger="bondingd"):
        conf.add_problems([late])
    assert conf.problems == [MISSING, late] and "not installed" in caplog.text

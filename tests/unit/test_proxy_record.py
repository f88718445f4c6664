"""The record of the proxy a bondingd started (bonding.dataplane.proxyproc), as the next bondingd
reads it: what it may name, and an older bondingd's record."""

from __future__ import annotations

from pathlib import Path

from bonding.dataplane import proxyproc


def test_a_proxy_record_names_only_files_of_the_run_directory(tmp_path: Path) -> None:
    (tmp_path / proxyproc.RECORD).write_text(
        '{"pid": 1, "start": 5, "since": 0, "launch": {}, '
        '"files": ["sing-box.json", "..", "../etc/passwd", ".hidden", "/etc/shadow", 7]}')
    rec = proxyproc.Record.read(tmp_path)
    assert rec is not None and rec.files == ("sing-box.json",)
    (tmp_path / proxyproc.RECORD).write_text("4242\n")  # an older bondingd's: the pid alone
    assert proxyproc.Record.read(tmp_path) == proxyproc.Record(4242, None, 0.0, {})

"""The UCI file reader and writer (bonding.uci), no OpenWrt needed.

ACCEPTED and REJECTED are libuci's behaviour written down; tests/owrt/test_uci_vs_real.py runs
the same tables through the real `uci` binary and pyuci, so every row here is checked against
libuci whenever OWRT_PREFIX is set.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from bonding import uci

Opts = list[tuple[str, str | tuple[str, ...]]]
Shape = list[tuple[str, str | None, Opts]]


def shape(p: uci.Package) -> Shape:
    return [(s.type, s.name, list(s.options.items())) for s in p.sections]


T1 = uci.anonymous_sid("t", 1)

# (id, file text, sections as (type, name or None, options in order))
ACCEPTED: list[tuple[str, str, Shape]] = [
    ("empty file", "", []),
    ("only comments and blanks", "# one\n\n   # two\n\t\n", []),
    ("anonymous section", "config t\n", [("t", None, [])]),
    ("named section, option", "config t 'n'\n\toption a 'b'\n", [("t", "n", [("a", "b")])]),
    ("short command words", "c t n\no a b\nl l x\nl l y\n",
     [("t", "n", [("a", "b"), ("l", ("x", "y"))])]),
    ("unquoted, single and double quotes", "config t\n\toption a x\n\toption b 'x y'\n"
     "\toption c \"x y\"\n", [("t", None, [("a", "x"), ("b", "x y"), ("c", "x y")])]),
    ("adjacent pieces are one value", "config t\n\toption a 'x'\"y\"z'w'\n",
     [("t", None, [("a", "xyzw")])]),
    ("backslash escapes outside quotes", "config t\n\toption a x\\ y\\'z\\\\\\q\n",
     [("t", None, [("a", "x y'z\\q")])]),
    ("backslash is literal in single quotes", "config t\n\toption a 'x\\y\\\\'\n",
     [("t", None, [("a", "x\\y\\\\")])]),
    ("backslash escapes in double quotes", "config t\n\toption a \"x\\\"y\\\\z\\n\"\n",
     [("t", None, [("a", "x\"y\\zn")])]),
    ("export's quote escape", "config t\n\toption a 'it'\\''s'\n", [("t", None, [("a", "it's")])]),
    ("quoted value spans lines", "config t\n\toption a 'x\ny'\n\toption b \"p\n\nq\"\n",
     [("t", None, [("a", "x\ny"), ("b", "p\n\nq")])]),
    ("backslash-newline joins lines", "config t\n\toption a x\\\ny\n",
     [("t", None, [("a", "xy")])]),
    ("backslash-newline in double quotes", "config t\n\toption a \"x\\\n  y\"\n",
     [("t", None, [("a", "x  y")])]),
    ("backslash-newline in single quotes is kept", "config t\n\toption a 'x\\\ny'\n",
     [("t", None, [("a", "x\\\ny")])]),
    ("backslash-CRLF joins lines", "config t\r\n\toption a x\\\r\ny\r\n",
     [("t", None, [("a", "xy")])]),
    ("comments after commands", "config t # c\n\toption a b # c\n\toption c 'd'#e\n",
     [("t", None, [("a", "b"), ("c", "d")])]),
    ("'#' inside a word ends the line", "config t\n\toption a b#c d\n",
     [("t", None, [("a", "b")])]),
    ("'#' inside quotes is text", "config t\n\toption a 'b#c'\n", [("t", None, [("a", "b#c")])]),
    ("empty option value changes nothing", "config t\n\toption a x\n\toption a ''\n\toption b\n",
     [("t", None, [("a", "x")])]),
    ("empty list item is kept", "config t\n\tlist a ''\n\tlist a x\n",
     [("t", None, [("a", ("", "x"))])]),
    ("option then list makes a list", "config t\n\toption a x\n\toption b y\n\tlist a z\n",
     [("t", None, [("a", ("x", "z")), ("b", "y")])]),
    ("option replaces a list in place", "config t\n\tlist a x\n\tlist a y\n\toption b z\n"
     "\toption a w\n", [("t", None, [("a", "w"), ("b", "z")])]),
    ("option replaces in place", "config t\n\toption a 1\n\toption b 2\n\toption a 3\n",
     [("t", None, [("a", "3"), ("b", "2")])]),
    ("named section continues", "config t 'n'\n\toption a 1\nconfig u 'm'\nconfig t 'n'\n"
     "\toption b 2\n", [("t", "n", [("a", "1"), ("b", "2")]), ("u", "m", [])]),
    ("empty name is anonymous", "config t ''\n", [("t", None, [])]),
    ("package line is checked, then ignored", "package other\nconfig t\n", [("t", None, [])]),
    ("CRLF line ends", "config t 'n'\r\n\toption a 'b'\r\n\toption c d\r\n",
     [("t", "n", [("a", "b"), ("c", "d")])]),
    ("';' after a quoted piece splits commands", "config t 'n'; option a b\n",
     [("t", "n", [("a", "b")])]),
    ("';' after a bare word ends the line", "config t; option a b\nconfig u\n\toption c d;"
     "option e f\n", [("t", None, []), ("u", None, [("c", "d")])]),
    ("no newline at the end", "config t\n\toption a b", [("t", None, [("a", "b")])]),
    ("type with punctuation", "config 'a.b-c:d@e'\n", [("a.b-c:d@e", None, [])]),
    ("tabs and spaces", "\t config\tt\t'n' \t\n  \toption\ta\t'b'\n", [("t", "n", [("a", "b")])]),
    ("vertical tab separates arguments", "config t\n\toption a\x0bb\n",
     [("t", None, [("a", "b")])]),
    ("UTF-8 values", "config t\n\toption a 'héllo wörld ✓'\n",
     [("t", None, [("a", "héllo wörld ✓")])]),
    ("section named like an anonymous id continues it",
     f"config t\n\toption a 1\nconfig t '{T1}'\n\toption b 2\n",
     [("t", None, [("a", "1"), ("b", "2")])]),
    ("many sections keep order", "config a\nconfig b 'x'\nconfig a\nconfig c\nconfig a 'y'\n",
     [("a", None, []), ("b", "x", []), ("a", None, []), ("c", None, []), ("a", "y", [])]),
]

# (id, file text, libuci's reason, line)
REJECTED: list[tuple[str, str, str, int]] = [
    ("unknown command", "config t\nfoo bar\n", "invalid command", 2),
    ("command word glued to the newline", "config\n", "invalid command", 1),
    ("command word glued to a quote", "config'x'\n", "invalid command", 1),
    ("option before any section", "\n  option a b\n",
     "option/list command found before the first section", 2),
    ("section name with '-'", "config t 'a-b'\n", "invalid character in name field", 1),
    ("option name with '.'", "config t\n\toption a.b c\n", "invalid character in name field", 2),
    ("non-ASCII option name", "config t\n\toption é x\n", "invalid character in name field", 2),
    ("empty type", "config ''\n", "insufficient arguments", 1),
    ("empty option name", "config t\n\tlist '' x\n", "insufficient arguments", 2),
    ("type with a space", "config 'a b'\n", "invalid character in type field", 1),
    ("type with a newline", "config 'a\nb'\n", "invalid character in type field", 2),
    ("extra argument to config", "config t n extra\n", "too many arguments", 1),
    ("unquoted value with a space", "config t\n\toption a b c\n", "too many arguments", 2),
    ("continuation line starting with a blank", "config t\n\toption a b\\\n c\n",
     "too many arguments", 3),
    ("unterminated single quote", "config t\n\toption a 'b\n", "EOF with unterminated '", 2),
    ("unterminated double quote", "config t\n\toption a \"b\n\n", "EOF with unterminated \"", 3),
    ("same name, other type", "config t 'n'\nconfig u 'n'\n",
     "section of different type overwrites prior section with same name", 2),
    ("bad package name", "package 'a b'\n", "invalid character in name field", 1),
    ("'config' alone on the last line", "config t\nconfig", "config without name", 2),
    ("'list' alone on the last line", "config t\nlist", "option without name", 2),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in ACCEPTED],
                         ids=[c[0] for c in ACCEPTED])
def test_accepted(text: str, expected: Shape) -> None:
    p = uci.loads(text, "pkg")
    assert shape(p) == expected
    assert [s.index for s in p.sections] == list(range(len(expected)))


@pytest.mark.parametrize(("text", "reason", "line"), [c[1:] for c in REJECTED],
                         ids=[c[0] for c in REJECTED])
def test_rejected(text: str, reason: str, line: int) -> None:
    with pytest.raises(uci.UciParseError) as ei:
        uci.loads(text, "pkg", "/etc/config/pkg")
    e = ei.value
    assert (e.reason, e.line) == (reason, line)
    assert str(e).startswith(f"/etc/config/pkg:{line}:")
    assert reason in str(e)


def test_nul_byte_is_rejected_with_its_line() -> None:
    with pytest.raises(uci.UciParseError) as ei:
        uci.loads(b"config t\n\toption a 'x\0'\n", "pkg")
    assert ei.value.line == 2 and "NUL" in ei.value.reason


def test_error_message_names_file_line_and_text() -> None:
    with pytest.raises(uci.UciParseError) as ei:
        uci.loads("config t\n\toption wan-1 x\n", "bonding", "/etc/config/bonding")
    msg = str(ei.value)
    assert msg.startswith("/etc/config/bonding:2:")
    assert "'wan-1'" in msg and "letters, digits" in msg and "option wan-1 x" in msg


def test_anonymous_ids_and_refs() -> None:
    # ids as the real uci shows them (uci -X show): cfg + section count + hash of the type
    p = uci.loads("config t\n\toption a 1\nconfig t 'n'\nconfig t\nconfig zone\n", "pkg")
    assert [s.sid for s in p.sections] == ["cfg01b619", "n", "cfg03b619",
                                          uci.anonymous_sid("zone", 4)]
    assert [s.ref for s in p.sections] == ["@t[0]", "n", "@t[2]", "@zone[0]"]
    assert [s.anonymous for s in p.sections] == [True, False, True, True]
    assert p.section("@t[-1]") is p.sections[2]
    assert p.section("@t[1]") is p.sections[1]
    assert p.section("n") is p.sections[1]
    assert p.section("cfg03b619") is p.sections[2]
    assert p.section("@t[3]") is None and p.section("nope") is None
    assert p.of_type("zone") == (p.sections[3],)


def test_undecodable_bytes_survive_a_round_trip() -> None:
    raw = b"config t\n\toption a '\xff\xfe'\n"
    p = uci.loads(raw, "pkg")
    assert p.sections[0].options["a"] == "\udcff\udcfe"
    assert uci.dumps(p).encode("utf-8", "surrogateescape") == b"\n" + raw + b"\n"


# --- writing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in ACCEPTED],
                         ids=[c[0] for c in ACCEPTED])
def test_dumps_round_trips_every_accepted_file(text: str, expected: Shape) -> None:
    p = uci.loads(text, "pkg")
    out = uci.dumps(p)
    again = uci.loads(out, "pkg")
    assert shape(again) == expected
    assert [s.sid for s in again.sections] == [s.sid for s in p.sections]
    assert uci.dumps(again) == out


def test_dumps_layout_is_uci_export() -> None:
    p = uci.Package("bonding", (
        uci.Section("globals", "globals", {"enabled": "1", "targets": ("a", "b c")}),
        uci.Section("path", None, {"device": "it's"}),
    ))
    assert uci.dumps(p, header=True) == (
        "package bonding\n"
        "\nconfig globals 'globals'\n\toption enabled '1'\n"
        "\tlist targets 'a'\n\tlist targets 'b c'\n"
        "\nconfig path\n\toption device 'it'\\''s'\n"
        "\n")
    assert uci.dumps(p).startswith("\nconfig globals")


def test_dumps_quotes_types_that_need_it() -> None:
    for stype in ("a'b", 'a"b', "a#b", "a;b", "a\\b", "x"):
        p = uci.Package("pkg", (uci.Section(stype, None, {"o": "v"}),))
        assert shape(uci.loads(uci.dumps(p), "pkg")) == [(stype, None, [("o", "v")])]


@pytest.mark.parametrize(("section", "what"), [
    (uci.Section("t", None, {"a": ""}), "empty"),
    (uci.Section("t", None, {"a": ()}), "empty"),
    (uci.Section("t", "a-b", {}), "invalid name"),
    (uci.Section("t", None, {"a.b": "x"}), "invalid option name"),
    (uci.Section("a b", None, {}), "invalid type"),
    (uci.Section("", None, {}), "invalid type"),
    (uci.Section("t", None, {"a": "x\0y"}), "NUL"),
])
def test_dumps_refuses_what_uci_cannot_hold(section: uci.Section, what: str) -> None:
    with pytest.raises(ValueError, match=what):
        uci.dumps(uci.Package("pkg", (section,)))


def test_dumps_refuses_duplicate_names_and_id_clashes() -> None:
    with pytest.raises(ValueError, match="twice"):
        uci.dumps(uci.Package("pkg", (uci.Section("t", "n"), uci.Section("t", "n"))))
    clash = uci.Package("pkg", (uci.Section("t", None), uci.Section("t", T1, {"a": "1"})))
    with pytest.raises(ValueError, match="reads back"):
        uci.dumps(clash)


def test_model_normalises_lists_and_numbers_sections() -> None:
    p = uci.Package("pkg", (uci.Section("a", None, {"l": ("x", "y")}), uci.Section("b", "n"),
                            uci.Section("a", None)))
    assert p.sections[0].options == {"l": ("x", "y")}
    assert [(s.index, s.type_index, s.sid) for s in p.sections] == [
        (0, 0, uci.anonymous_sid("a", 1)), (1, 0, "n"), (2, 1, uci.anonymous_sid("a", 3))]
    with pytest.raises(TypeError):
        uci.Section("a", None, {"x": 1})  # type: ignore[dict-item]


_ALPHABET = "ab '\"\\#;\t\n\r\x0b$é✓\x01"


def test_dumps_round_trips_random_values() -> None:
    rng = random.Random(20240611)
    for _ in range(300):
        sections = []
        for i in range(rng.randrange(1, 4)):
            opts: dict[str, uci.OptionValue] = {}
            for j in range(rng.randrange(0, 4)):
                val = "".join(rng.choice(_ALPHABET) for _ in range(rng.randrange(1, 12)))
                if rng.random() < 0.3:
                    opts[f"o{j}"] = tuple(
                        "".join(rng.choice(_ALPHABET) for _ in range(rng.randrange(0, 6)))
                        for _ in range(rng.randrange(1, 4)))
                else:
                    opts[f"o{j}"] = val
            sections.append(uci.Section(rng.choice(["t", "a.b", "x'y"]),
                                        rng.choice([None, f"s{i}"]), opts))
        p = uci.Package("pkg", tuple(sections))
        assert shape(uci.loads(uci.dumps(p), "pkg")) == shape(p)


# --- load() ----------------------------------------------------------------------------------


def test_load_reads_a_config_dir(tmp_path: Path) -> None:
    (tmp_path / "bonding").write_text("config globals 'globals'\n\toption enabled '1'\n")
    p = uci.load(tmp_path, "bonding", use_pyuci=False)
    assert p.name == "bonding"
    assert shape(p) == [("globals", "globals", [("enabled", "1")])]


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        uci.load(tmp_path, "missing", use_pyuci=False)
    (tmp_path / "adir").mkdir()
    with pytest.raises(FileNotFoundError):
        uci.load(tmp_path, "adir", use_pyuci=False)
    with pytest.raises(ValueError, match="package name"):
        uci.load(tmp_path, "../etc", use_pyuci=False)
    (tmp_path / "bad").write_text("config t\n\toption a b c\n")
    with pytest.raises(uci.UciParseError) as ei:
        uci.load(tmp_path, "bad", use_pyuci=False)
    assert ei.value.path == str(tmp_path / "bad") and ei.value.line == 2


def test_load_without_pyuci_uses_the_parser(tmp_path: Path) -> None:
    (tmp_path / "p").write_text("config t\n")
    if uci.have_pyuci():
        pytest.skip("pyuci is importable here; tests/owrt compares the two")
    assert shape(uci.load(tmp_path, "p")) == [("t", None, [])]
    with pytest.raises(uci.UciError, match="pyuci"):
        uci.load(tmp_path, "p", use_pyuci=True)


# --- size: the parser is linear (issue 19: a 2.4 MB line took 65 s, 20k sections 7.8 s) ---------

# (id, file text, sections, length of the first section's option 'a'); each parses in about a
# second here, where the quadratic parser took 18–25 s.
BIG: list[tuple[str, str, int, int]] = [
    ("a 2 MB line of commands", "config t 'n'" + "; option a 'b'" * 150_000 + "\n", 1, 1),
    ("a 2 MB value of quoted pieces", "config t\n\toption a " + "'x'" * 700_000 + "\n", 1,
     700_000),
    ("a 2 MB value over 1M lines", "config t\n\toption a '" + "x\n" * 1_000_000 + "'\n", 1,
     2_000_000),
    ("40k named sections",
     "".join(f"config t 's{i}'\n\toption a 'b'\n" for i in range(40_000)), 40_000, 1),
]


@pytest.mark.parametrize(("text", "sections", "length"), [b[1:] for b in BIG],
                         ids=[b[0] for b in BIG])
def test_big_files_parse_in_linear_time(text: str, sections: int, length: int) -> None:
    start = time.perf_counter()
    p = uci.loads(text, "big")
    took = time.perf_counter() - start
    assert len(p.sections) == sections
    a = p.sections[0].options["a"]
    assert isinstance(a, str) and len(a) == length
    assert took < 6.0, f"{took:.1f} s: quadratic again?"

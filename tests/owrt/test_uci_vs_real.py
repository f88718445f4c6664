"""bonding.uci against libuci itself: the real `uci` binary and pyuci (needs OWRT_PREFIX).

A corpus of files (the unit tests' tables, hand-written corner cases, generated valid files with
every quoting style, mutations of those, and random fragment soup) is written to a config dir.
For each file:
- where `uci export` fails, our parser must fail too, with libuci's reason and line;
- where it succeeds, our model must print exactly what `uci export`, `uci show` and
  `uci -X show` print (sections, order, anonymous ids, values, lists);
- generated files must also give the model they were generated from;
- pyuci (when $OWRT_PREFIX/venv has it) must read the same data, and `load(use_pyuci=True)`
  must give the same `Package` as our parser.

UCI_FUZZ_SEED and UCI_FUZZ_COUNT change the generated part (default: fixed seed, 300 files of
each generated kind; at most 5000).
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from bonding import uci

Opts = list[tuple[str, str | tuple[str, ...]]]
Shape = list[tuple[str, str | None, Opts]]

REPO = Path(__file__).resolve().parents[2]
SEED = int(os.environ.get("UCI_FUZZ_SEED", "1729"))
COUNT = max(1, min(int(os.environ.get("UCI_FUZZ_COUNT", "300")), 5000))


def _unit_tables() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_uci_unit_tables",
                                                  REPO / "tests" / "unit" / "test_uci.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def shape(p: uci.Package) -> Shape:
    return [(s.type, s.name, list(s.options.items())) for s in p.sections]


# --- corpus ------------------------------------------------------------------------------------


@dataclass
class Case:
    id: str
    data: bytes
    expected: Shape | None = None  # from the generator or the unit table, when known
    reason: str | None = None  # expected rejection (unit table)


HAND: list[tuple[str, bytes]] = [
    ("CR only line ends", b"config t\roption a b\r"),
    ("CR only, valid", b"config t 'n'\r"),
    ("form feed between args", b"config t\n\toption\fa b\n"),
    ("form feed before command", b"\fconfig t\n"),
    ("vertical tab after command word", b"config\x0bt\n"),
    ("option value control chars", b"config t\n\toption a '\x01\x02\x1b'\n"),
    ("latin-1 value", b"config t\n\toption a '\xe9t\xe9'\n"),
    ("latin-1 type", b"config \xe9\n"),
    ("DEL in type", b"config a\x7fb\n"),
    ("tilde type", b"config ~!$%&()*+,-./:<=>?@[]^_`{|}~\n"),
    ("quote in type", b"config \"a'b\"\n"),
    ("hash in type", b"config 'a#b'\n"),
    ("semicolon in type", b"config 'a;b'\n"),
    ("backslash in type", b"config 'a\\b'\n"),
    ("semicolon alone", b";\n"),
    ("semicolon first arg", b"config ;\n"),
    ("semicolon as name", b"config t ;\n"),
    ("semicolon after name bare", b"config t n;\n\toption a b\n"),
    ("semicolon then comment", b"config t 'n';# x\n"),
    ("double semicolon", b"config t 'n';; option a b\n"),
    ("semicolon value", b"config t\n\toption a ';'\n"),
    ("quoted then semicolon then list", b"config t\n\tlist a 'x';list a 'y';list a z\n"),
    ("semicolon without space", b"config t 'n';option a b\n"),
    ("hash right after command", b"config# t\n"),
    ("hash as type", b"config #\n"),
    ("hash after type", b"config t#\n"),
    ("backslash at EOF", b"config t\n\toption a b\\"),
    ("backslash newline at EOF", b"config t\n\toption a b\\\n"),
    ("backslash in whitespace", b"config t\n\toption a \\\nb\n"),
    ("backslash before blank next line", b"config t\n\toption a b\\\n\n\toption c d\n"),
    ("double backslash newline", b"config t\n\toption a b\\\\\n"),
    ("continued command word", b"conf\\\nig t\n"),
    ("continued after command", b"config \\\nt\n"),
    ("continued name", b"config t n\\\nm\n"),
    ("backslash CR not at end", b"config t\n\toption a b\\\rc\n"),
    ("backslash CR LF in double quotes", b"config t\n\toption a \"b\\\r\nc\"\n"),
    ("unterminated quote at EOF, no newline", b"config t\n\toption a 'b"),
    ("unterminated double quote with continuation", b"config t\n\toption a \"b\\\n"),
    ("empty double quotes as name", b"config t \"\"\n"),
    ("empty quoted option name", b"config t\n\toption '' b\n"),
    ("quoted option name", b"config t\n\toption 'a' b\n"),
    ("quoted command word", b"'config' t\n"),
    ("upper-case command", b"Config t\n"),
    ("command prefix", b"conf t\n"),
    ("command with suffix", b"configs t\n"),
    ("p alone", b"p pkg\nconfig t\n"),
    ("package with dash", b"package a-b\nconfig t\n"),
    ("package without name at EOF", b"package"),
    ("package then nothing", b"package x"),
    ("two packages", b"package a\npackage b\nconfig t\n"),
    ("list at EOF without value", b"config t\nlist a"),
    ("option at EOF", b"config t\noption"),
    ("option name at EOF", b"config t\noption a"),
    ("config name with digits first", b"config t 0abc\n"),
    ("section named cfg id, other type", b"config t\nconfig u 'cfg01b619'\n"),
    ("anonymous id collides with an earlier named section",
     b"config t 'cfg02b619'\n\toption a 1\nconfig t\n\toption b 2\n"),
    ("redefine anonymous by id then add", b"config t\nconfig t 'cfg01b619'\n\tlist a x\n"),
    ("many anonymous sections", b"".join(b"config t%d\n" % (i % 3) for i in range(300))),
    ("long value", b"config t\n\toption a '" + b"x" * 5000 + b"'\n"),
    ("long line of lists", b"config t\n" + b";".join(b"list a 'v%d'" % i for i in range(200))
     + b"\n"),
    ("very long type", b"config " + b"t" * 300 + b"\n"),
    ("whitespace only", b" \t \n\t\n"),
    ("no newline, comment", b"# x"),
    ("trailing spaces after quote", b"config t 'n'   \n\toption a 'b' \t \n"),
    ("list turns option into list and back",
     b"config t\n\toption a x\n\tlist a y\n\toption a z\n\tlist a w\n"),
    ("option empty deletes nothing", b"config t\n\tlist a x\n\toption a ''\n"),
    ("option empty via double quotes", b"config t\n\toption a x\n\toption a \"\"\n"),
    ("options on reopened section", b"config t 'n'\n\toption a 1\nconfig t\nconfig t 'n'\n"
     b"\toption a 2\n\tlist b 3\n"),
]


def _piece_encodings(rng: random.Random, piece: str) -> str:
    """Encode a non-empty piece of a value in one of libuci's quoting styles."""
    styles = ["double"]
    if "'" not in piece:
        styles.append("single")
    if "\n" not in piece and "\r" not in piece:
        styles.append("bare")
    style = rng.choice(styles)
    if style == "single":
        return "'" + piece + "'"
    out = []
    for i, c in enumerate(piece):
        if style == "double":
            if c in '"\\':
                out.append("\\" + c)
            elif c not in "\n\r" and rng.random() < 0.1:
                out.append("\\" + c)  # a needless escape is the character itself
            else:
                out.append(c)
            if 0 < i < len(piece) - 1 and rng.random() < 0.05:
                out.append("\\\n")  # continuation inside the quotes: removed
        else:
            if c in " \t\x0b\x0c'\"\\#;" or rng.random() < 0.05:
                out.append("\\" + c)
            else:
                out.append(c)
            if 0 < i < len(piece) - 1 and rng.random() < 0.05:
                out.append("\\" + rng.choice(["\n", "\r\n"]))
    return ('"' + "".join(out) + '"') if style == "double" else "".join(out)


def encode_arg(rng: random.Random, value: str) -> str:
    """A text that libuci parses to `value` (non-empty), in random pieces and styles."""
    if value == "":
        return rng.choice(["''", '""', "''\"\""])
    cuts = sorted(rng.sample(range(1, len(value)), min(len(value) - 1, rng.randrange(0, 3))))
    pieces = [value[a:b] for a, b in zip([0, *cuts], [*cuts, len(value)], strict=True)]
    out = []
    for p in pieces:
        if rng.random() < 0.05:
            out.append(rng.choice(["''", '""']))
        out.append(_piece_encodings(rng, p))
    return "".join(out)


_VALUE_CHARS = "abcXYZ019 _-./:'\"\\#;\t\n\r\x0b\x0c$%@éü✓\x01"
_TYPE_CHARS = "abcxyz_-.:@!%'\"#;\\"


def _rand(rng: random.Random, chars: str, lo: int, hi: int) -> str:
    return "".join(rng.choice(chars) for _ in range(rng.randrange(lo, hi + 1)))


def generate_valid(rng: random.Random) -> tuple[bytes, Shape]:
    """A random valid file and the model libuci must build from it (computed independently)."""
    lines: list[str] = []
    model: list[tuple[str, str | None, dict[str, str | tuple[str, ...]]]] = []
    named: dict[str, int] = {}

    def sep() -> str:
        return rng.choice([" ", "\t", "  ", " \t"])

    def eol() -> str:
        return rng.choice(["\n"] * 5 + ["\r\n", " \n", "\t# note\n", " # c 'x' \"\n"])

    types = [_rand(rng, _TYPE_CHARS, 1, 6) for _ in range(3)]
    for _ in range(rng.randrange(0, 5)):
        if rng.random() < 0.2:
            lines.append(rng.choice(["\n", "# comment\n", "  \t# c\n", "\t\n"]))
        name: str | None
        if rng.random() < 0.3 and named:
            name = rng.choice(list(named))
            stype = model[named[name]][0]
        else:
            stype = rng.choice(types)
            name = None if rng.random() < 0.5 else _rand(rng, "abcdefXYZ_0123456789", 1, 8)
            if name is not None and name in named:
                stype = model[named[name]][0]
        if name is None:
            model.append((stype, None, {}))
            current = model[-1][2]
        elif name in named:
            current = model[named[name]][2]
        else:
            named[name] = len(model)
            model.append((stype, name, {}))
            current = model[-1][2]
        word = rng.choice(["config", "c"])
        head = rng.choice(["", " ", "\t"]) + word + sep() + encode_arg(rng, stype)
        if name is not None:
            head += sep() + encode_arg(rng, name)
        elif rng.random() < 0.1:
            head += sep() + "''"
        lines.append(head + eol())
        for _ in range(rng.randrange(0, 6)):
            oname = rng.choice(["a", "b", "c_1", "Opt2", "x" * rng.randrange(1, 4)])
            is_list = rng.random() < 0.35
            value = _rand(rng, _VALUE_CHARS, 0 if is_list else 1, 10)
            cmd = rng.choice(["list", "l"] if is_list else ["option", "o"])
            lines.append(rng.choice(["\t", "  ", ""]) + cmd + sep() + encode_arg(rng, oname) + sep()
                         + encode_arg(rng, value) + eol())
            old = current.get(oname)
            if not is_list:
                current[oname] = value
            elif old is None:
                current[oname] = (value,)
            elif isinstance(old, str):
                current[oname] = (old, value)
            else:
                current[oname] = (*old, value)
    text = "".join(lines)
    if rng.random() < 0.1:
        text = text.rstrip("\n")
    return text.encode("utf-8"), [(t, n, list(o.items())) for t, n, o in model]


_FRAGMENTS = [b"config", b"option", b"list", b"package", b"c", b"o", b"l", b"p", b" ", b" ",
              b"\t", b"\n", b"\n", b"\r\n", b"\r", b"'", b"'", b'"', b"\\", b"\\\n", b";", b"#",
              b"a", b"b", b"t", b"n", b"xy", b"cfg01b619", b"-", b".", b"\xc3\xa9", b"\xff",
              b"\x0b", b"\x0c", b"\x01", b"''", b"'\\''", b"\"\\\"\""]


def mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randrange(1, 4)):
        op = rng.randrange(3)
        at = rng.randrange(0, len(b) + 1)
        if op == 0 and b:
            del b[min(at, len(b) - 1):min(at, len(b) - 1) + rng.randrange(1, 4)]
        elif op == 1:
            b[at:at] = rng.choice(_FRAGMENTS)
        elif b:
            b[min(at, len(b) - 1)] = rng.choice(b" \t\n'\";#\\ax")
    return bytes(b)


def soup(rng: random.Random) -> bytes:
    parts = [rng.choice(_FRAGMENTS) for _ in range(rng.randrange(1, 30))]
    if rng.random() < 0.5:
        parts.insert(0, b"config t\n")
    return b"".join(parts)


def build_corpus() -> list[Case]:
    unit = _unit_tables()
    cases: list[Case] = []
    for cid, text, expected in unit.ACCEPTED:
        cases.append(Case(f"unit accepted: {cid}", text.encode(), expected=expected))
    for cid, text, reason, _line in unit.REJECTED:
        cases.append(Case(f"unit rejected: {cid}", text.encode(), reason=reason))
    cases += [Case(f"hand: {cid}", data) for cid, data in HAND]
    rng = random.Random(SEED)
    valid = [generate_valid(rng) for _ in range(COUNT)]
    cases += [Case(f"generated #{i}", d, expected=e) for i, (d, e) in enumerate(valid)]
    cases += [Case(f"mutated #{i}", mutate(rng, rng.choice(valid)[0])) for i in range(COUNT)]
    cases += [Case(f"soup #{i}", soup(rng)) for i in range(COUNT)]
    return [c for c in cases if b"\0" not in c.data]  # NUL: we refuse; libuci misreads


# --- what the real tools print, and the same from our model ----------------------------------


def q(v: str) -> str:
    return "'" + v.replace("'", "'\\''") + "'"


def render_show(p: uci.Package, extended: bool) -> bytes:
    out = []
    for s in p.sections:
        ref = s.ref if extended else s.sid
        out.append(f"{p.name}.{ref}={s.type}\n")
        for k, v in s.options.items():
            shown = q(v) if isinstance(v, str) else " ".join(q(i) for i in v)
            out.append(f"{p.name}.{ref}.{k}={shown}\n")
    return "".join(out).encode("utf-8", "surrogateescape")


def render_export(p: uci.Package) -> bytes:
    """uci_export_package(): like dumps(header=True), but the type unquoted even when that does
    not read back (libuci's own bug for types with a quote)."""
    def esc(v: str) -> str:
        return v.replace("'", "'\\''")

    out = [f"package {p.name}\n"]
    for s in p.sections:
        out.append(f"\nconfig {esc(s.type)}" + ("" if s.name is None else f" '{esc(s.name)}'")
                   + "\n")
        for k, v in s.options.items():
            for item in (v,) if isinstance(v, str) else v:
                out.append(f"\t{'option' if isinstance(v, str) else 'list'} {k} '{esc(item)}'\n")
    out.append("\n")
    return "".join(out).encode("utf-8", "surrogateescape")


_PARSE_ERR = re.compile(rb"Parse error \((.*)\) at line (\d+), byte (\d+)")


@dataclass
class Real:
    ok: bool
    export: bytes = b""
    show: bytes = b""
    show_x: bytes = b""
    reason: str = ""
    line: int = 0
    stderr: bytes = b""


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Case]]]:
    confdir = tmp_path_factory.mktemp("uci-corpus")
    token = secrets.token_hex(3)
    cases: dict[str, Case] = {}
    for i, c in enumerate(build_corpus()):
        name = f"bt{token}_{i:04d}"
        # libuci also reads /tmp/.uci/<name> (saved changes) and /var/run/uci/<name>: keep clear
        assert not Path("/tmp/.uci", name).exists() and not Path("/var/run/uci", name).exists()
        (confdir / name).write_bytes(c.data)
        cases[name] = c
    yield confdir, cases


@pytest.fixture(scope="module")
def real(owrt_prefix: Path, owrt_env: dict[str, str],
         corpus_dir: tuple[Path, dict[str, Case]]) -> dict[str, Real]:
    confdir, cases = corpus_dir
    binary = str(owrt_prefix / "bin" / "uci")

    def run(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([binary, "-c", str(confdir), "-C", "", *args], env=owrt_env,
                              capture_output=True, timeout=30, check=False)

    out: dict[str, Real] = {}
    for name in cases:
        r = run("export", name)
        if r.returncode != 0:
            m = _PARSE_ERR.search(r.stderr)
            out[name] = Real(False, reason=m.group(1).decode() if m else "",
                             line=int(m.group(2)) if m else -1, stderr=r.stderr)
            continue
        show = run("show", name)
        show_x = run("-X", "show", name)
        assert show.returncode == 0 and show_x.returncode == 0, (show.stderr, show_x.stderr)
        out[name] = Real(True, r.stdout, show.stdout, show_x.stdout)
    return out


def _ours(case: Case, name: str) -> uci.Package | uci.UciParseError:
    try:
        return uci.loads(case.data, name)
    except uci.UciParseError as e:
        return e


def _describe(case: Case) -> str:
    return f"{case.id}: {case.data[:400]!r}"


def test_corpus_is_varied(corpus_dir: tuple[Path, dict[str, Case]], real: dict[str, Real]) -> None:
    """The comparison means something only if both outcomes occur often."""
    accepted = sum(r.ok for r in real.values())
    rejected = len(real) - accepted
    reasons = {r.reason for r in real.values() if not r.ok}
    print(f"\ncorpus: {len(real)} files, uci accepted {accepted}, rejected {rejected}; "
          f"reasons: {sorted(reasons)}")
    assert accepted >= len(real) // 4 and rejected >= len(real) // 10
    assert len(reasons) >= 8


def test_accept_and_reject_exactly_as_uci(corpus_dir: tuple[Path, dict[str, Case]],
                                          real: dict[str, Real]) -> None:
    _, cases = corpus_dir
    failures: list[str] = []
    for name, case in cases.items():
        r = real[name]
        ours = _ours(case, name)
        if not r.ok:
            if not isinstance(ours, uci.UciParseError):
                failures.append(f"uci rejects ({r.stderr!r}), we accept: {_describe(case)}")
                continue
            # libuci counts newline-terminated lines read; we count the unterminated last one too
            lines_ok = ours.line == r.line or (ours.line == r.line + 1
                                               and not case.data.endswith(b"\n"))
            if ours.reason != r.reason or not lines_ok:
                failures.append(f"uci: {r.reason!r} line {r.line}; we: {ours.reason!r} line "
                                f"{ours.line}: {_describe(case)}")
            if case.reason is not None and case.reason != r.reason:
                failures.append(f"unit table says {case.reason!r}, uci {r.reason!r}: "
                                f"{_describe(case)}")
            continue
        if isinstance(ours, uci.UciParseError):
            failures.append(f"uci accepts, we reject ({ours}): {_describe(case)}")
            continue
        for what, mine, theirs in (("export", render_export(ours), r.export),
                                   ("show", render_show(ours, True), r.show),
                                   ("show -X", render_show(ours, False), r.show_x)):
            if mine != theirs:
                failures.append(f"{what} differs: {_describe(case)}\n  uci: {theirs[:600]!r}\n"
                                f"  we:  {mine[:600]!r}")
        if case.reason is not None:
            failures.append(f"unit table expects rejection, uci accepts: {_describe(case)}")
        if case.expected is not None and shape(ours) != case.expected:
            failures.append(f"not the model it was generated from: {_describe(case)}\n"
                            f"  expected {case.expected!r}\n  got      {shape(ours)!r}")
    assert not failures, f"{len(failures)} disagreements:\n" + "\n".join(failures[:15])


def test_dumps_reads_back_in_real_uci(owrt_prefix: Path, owrt_env: dict[str, str],
                                      corpus_dir: tuple[Path, dict[str, Case]],
                                      real: dict[str, Real], tmp_path: Path) -> None:
    """What dumps() writes, the real uci reads back to the same sections."""
    _, cases = corpus_dir
    failures = []
    checked = 0
    for name, case in cases.items():
        if not real[name].ok:
            continue
        ours = uci.loads(case.data, name)
        try:
            text = uci.dumps(ours)
        except ValueError:
            continue  # e.g. an anonymous id taken by a named section: dumps refuses, as it says
        (tmp_path / name).write_bytes(text.encode("utf-8", "surrogateescape"))
        r = subprocess.run([str(owrt_prefix / "bin" / "uci"), "-c", str(tmp_path), "-C", "",
                            "-X", "show", name], env=owrt_env, capture_output=True, timeout=30,
                           check=False)
        checked += 1
        if r.returncode != 0 or r.stdout != render_show(ours, False):
            failures.append(f"{_describe(case)}\n  dumps: {text[:300]!r}\n  uci: {r.stdout[:300]!r}"
                            f" {r.stderr!r}")
    assert checked > len(cases) // 4
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures[:10])


_PYUCI_SCRIPT = r"""
import json, sys
from pathlib import Path
import uci as pyuci
from bonding import uci as ours

confdir = sys.argv[1]
out = {}
for name in sys.stdin.read().split():
    r = {}
    try:
        c = pyuci.Uci(confdir=confdir)
        data = c.get_all(name)
        r["raw"] = [[sid, c.get(name, sid),
                     [[k, v if isinstance(v, str) else list(v)] for k, v in opts.items()]]
                    for sid, opts in data.items()]
    except (UnicodeDecodeError, SystemError):  # pyuci wraps some in a SystemError
        r["raw"] = "not utf-8"
    except pyuci.UciException as e:
        r["raw"] = {"error": type(e).__name__}
    try:
        p = ours.load(Path(confdir), name, use_pyuci=True)
        r["load"] = [[s.type, s.name, s.sid,
                      [[k, v if isinstance(v, str) else list(v)] for k, v in s.options.items()]]
                     for s in p.sections]
    except ours.UciParseError as e:
        r["load"] = {"reason": e.reason, "line": e.line}
    out[name] = r
json.dump(out, sys.stdout)
"""


def test_pyuci_reads_the_same(owrt_python: Path, owrt_env: dict[str, str],
                              corpus_dir: tuple[Path, dict[str, Case]]) -> None:
    confdir, cases = corpus_dir
    env = dict(owrt_env, PYTHONPATH=str(REPO / "python"))
    r = subprocess.run([str(owrt_python), "-c", _PYUCI_SCRIPT, str(confdir)],
                       input="\n".join(cases).encode(), env=env, capture_output=True,
                       timeout=300, check=False)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-2000:]
    results = json.loads(r.stdout)

    def opts_json(s: uci.Section) -> list[list[object]]:
        return [[k, v if isinstance(v, str) else list(v)] for k, v in s.options.items()]

    failures: list[str] = []
    compared = {"accepted": 0, "rejected": 0}
    for name, case in cases.items():
        ours = _ours(case, name)
        res = results[name]
        raw, loaded = res["raw"], res["load"]
        if isinstance(ours, uci.UciParseError):
            compared["rejected"] += 1
            if not (isinstance(raw, dict) and raw["error"] == "UciExceptionInvalidInput"):
                failures.append(f"pyuci: {raw!r}, we reject: {_describe(case)}")
            if loaded != {"reason": ours.reason, "line": ours.line}:
                failures.append(f"load(use_pyuci=True) gave {loaded!r}, parser {ours}: "
                                f"{_describe(case)}")
            continue
        compared["accepted"] += 1
        sids = [s.sid for s in ours.sections]
        if raw != "not utf-8" and len(set(sids)) == len(sids):  # pyuci's dict keeps one per id
            mine = [[s.sid, s.type, opts_json(s)] for s in ours.sections]
            if raw != mine:
                failures.append(f"pyuci data differs: {_describe(case)}\n  pyuci {raw!r}\n"
                                f"  we    {mine!r}")
        if len(set(sids)) == len(sids):
            mine_l = [[s.type, s.name, s.sid, opts_json(s)] for s in ours.sections]
            if loaded != mine_l:
                failures.append(f"load(use_pyuci=True) differs: {_describe(case)}\n"
                                f"  pyuci path {loaded!r}\n  parser     {mine_l!r}")
    print(f"\npyuci compared: {compared}")
    assert compared["accepted"] > 50 and compared["rejected"] > 50
    assert not failures, f"{len(failures)} disagreements:\n" + "\n".join(failures[:15])


def test_load_goes_through_libuci_when_pyuci_imports(owrt_prefix: Path, owrt_python: Path,
                                                     owrt_env: dict[str, str],
                                                     tmp_path: Path) -> None:
    """With pyuci, load() reads through libuci, which applies changes saved but not committed
    (``uci set`` without ``commit`` writes /tmp/.uci/<package>); the parser reads the file only."""
    name = f"bt{secrets.token_hex(4)}_delta"
    (tmp_path / name).write_text("config t 'n'\n\toption a '1'\n")
    delta_dir = Path("/tmp/.uci")
    created = not delta_dir.exists()
    try:
        r = subprocess.run([str(owrt_prefix / "bin" / "uci"), "-c", str(tmp_path), "-C", "",
                            "set", f"{name}.n.a=2"], env=owrt_env, capture_output=True,
                           text=True, timeout=30, check=False)
        assert r.returncode == 0, r.stderr
        assert (delta_dir / name).is_file()
        script = ("import sys\nfrom pathlib import Path\nfrom bonding import uci\n"
                  "p = uci.load(Path(sys.argv[1]), sys.argv[2])\n"
                  "q = uci.load(Path(sys.argv[1]), sys.argv[2], use_pyuci=False)\n"
                  "print(uci.have_pyuci(), p.sections[0].options['a'], q.sections[0].options['a'])")
        r = subprocess.run([str(owrt_python), "-c", script, str(tmp_path), name],
                           env=dict(owrt_env, PYTHONPATH=str(REPO / "python")),
                           capture_output=True, text=True, timeout=60, check=False)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["True", "2", "1"]
    finally:
        (delta_dir / name).unlink(missing_ok=True)
        if created and delta_dir.is_dir() and not any(delta_dir.iterdir()):
            delta_dir.rmdir()


def test_pruning_a_symlinked_secrets_file_does_what_libuci_commit_does(
        owrt_prefix: Path, owrt_env: dict[str, str], tmp_path: Path) -> None:
    """The real `uci delete` + `commit` and bondingd's pruning leave the same two trees: the
    link kept, the file it points to rewritten without the removed server."""
    from bonding.config import secretsfile
    text = ("config server 'vps1'\n\toption key 'one-0123456789abcdef'\n\n"
            "config server 'vps2'\n\toption key 'two-0123456789abcdef'\n")
    trees = {}
    for who in ("libuci", "bondingd"):
        top = tmp_path / who
        (top / "keys").mkdir(parents=True)
        (top / "config").mkdir()
        real_file = top / "keys" / "bonding_secrets"
        real_file.write_text(text)
        real_file.chmod(0o600)
        (top / "config" / "bonding_secrets").symlink_to(real_file)
        if who == "libuci":
            for args in (("delete", "bonding_secrets.vps2"), ("commit", "bonding_secrets")):
                subprocess.run([str(owrt_prefix / "bin" / "uci"), "-c", str(top / "config"),
                                *args], env=owrt_env, check=True, timeout=30)
        else:
            assert secretsfile.prune(top / "config", {"vps2"}) == ["vps2"]
        link = top / "config" / "bonding_secrets"
        trees[who] = (link.is_symlink(), sorted(p.name for p in (top / "keys").iterdir()),
                      uci.loads(real_file.read_bytes(), "bonding_secrets").sections)
    assert trees["libuci"][0] and trees["libuci"] == trees["bondingd"]
    assert [s.name for s in trees["bondingd"][2]] == ["vps1"]

#!/usr/bin/env python3
"""Generate luci-app-bonding/po/templates/bonding.pot from the app's sources.

Produces what LuCI's build/i18n-scan.pl produces (xgettext + msguniq), without perl or gettext:

* JavaScript: ``_('msgid')``, ``_('msgid', 'context')``,
  ``N_(n, 'singular', 'plural'[, 'context'])`` with string literals, also literals joined by ``+``;
* menu.d and acl.d JSON: every ``"title"`` and ``"description"`` value;
* ``\\n``/``\\t`` become spaces, runs of spaces collapse, one leading and one trailing space go;
* entries sorted by msgid then context (bytewise), references one per line sorted by file and line,
  msgids longer than a 79-column line wrapped after spaces and hyphens, as msguniq wraps them.

    tools/luci-pot.py                 # rewrite the template
    tools/luci-pot.py --check         # exit 1 and show a diff when the template is stale
    tools/luci-pot.py -o FILE         # write elsewhere ('-' for stdout)
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = "luci-app-bonding"
POT = Path(APP) / "po" / "templates" / "bonding.pot"
HEADER = 'msgid ""\nmsgstr "Content-Type: text/plain; charset=UTF-8"\n'
WIDTH = 79


class PotError(Exception):
    """A source the scanner cannot read as JavaScript (unterminated string, say)."""


@dataclass
class Entry:
    msgid: str
    msgctxt: str | None = None
    plural: str | None = None
    refs: set[tuple[str, int]] = field(default_factory=set)


@dataclass(frozen=True)
class Token:
    kind: str  # "str", "name", "punct", "num", "regex"
    value: str
    line: int


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}
_PUNCT = re.compile(r"=>|\.\.\.|[=!]==?|[<>]=?|&&|\|\||\?\?|\+\+|--|[-+*%&|^~!?:;,.(){}\[\]=<>]")
_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_NUM = re.compile(r"0[xX][0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+")
# After these tokens a '/' divides; anywhere else it starts a regular expression literal.
_DIVIDES_AFTER = {")", "]", "}"}
_KEYWORDS_BEFORE_REGEX = {"return", "typeof", "instanceof", "in", "of", "new", "delete", "void",
                          "throw", "case", "do", "else"}


def _read_string(src: str, i: int, quote: str, line: int) -> tuple[str, int, int]:
    """Decode a string literal starting after its opening quote; (value, next index, line)."""
    out: list[str] = []
    n = len(src)
    while i < n:
        c = src[i]
        if c == quote:
            return "".join(out), i + 1, line
        if c == "\n" and quote != "`":
            raise PotError(f"line {line}: unterminated string")
        if quote == "`" and c == "$" and src.startswith("${", i):
            raise PotError(f"line {line}: template literal with substitutions")
        if c == "\\":
            i += 1
            e = src[i] if i < n else ""
            if e == "\n":
                line += 1
            elif e == "u":
                if src.startswith("{", i + 1):
                    end = src.index("}", i)
                    out.append(chr(int(src[i + 2:end], 16)))
                    i = end
                else:
                    out.append(chr(int(src[i + 1:i + 5], 16)))
                    i += 4
            elif e == "x":
                out.append(chr(int(src[i + 1:i + 3], 16)))
                i += 2
            else:
                out.append(_ESCAPES.get(e, e))
            i += 1
            continue
        if c == "\n":
            line += 1
        out.append(c)
        i += 1
    raise PotError(f"line {line}: unterminated string")


def tokenize(src: str) -> Iterator[Token]:
    """JavaScript tokens, enough to find calls with string arguments: no comments, no spaces."""
    i, line, n = 0, 1, len(src)
    prev: Token | None = None
    while i < n:
        c = src[i]
        if c == "\n":
            line += 1
            i += 1
            continue
        if c.isspace():
            i += 1
            continue
        if src.startswith("//", i):
            i = src.find("\n", i)
            i = n if i < 0 else i
            continue
        if src.startswith("/*", i):
            end = src.find("*/", i + 2)
            if end < 0:
                raise PotError(f"line {line}: unterminated comment")
            line += src.count("\n", i, end)
            i = end + 2
            continue
        tok: Token
        if c in "'\"`":
            start_line = line
            value, i, line = _read_string(src, i + 1, c, line)
            tok = Token("str", value, start_line)
        elif c == "/" and not (prev is not None and (
                prev.kind in ("str", "num", "regex")
                or (prev.kind == "name" and prev.value not in _KEYWORDS_BEFORE_REGEX)
                or (prev.kind == "punct" and prev.value in _DIVIDES_AFTER))):
            j, in_class = i + 1, False
            while j < n:
                d = src[j]
                if d == "\\":
                    j += 2
                    continue
                if d == "\n":
                    raise PotError(f"line {line}: unterminated regular expression")
                if d == "[":
                    in_class = True
                elif d == "]":
                    in_class = False
                elif d == "/" and not in_class:
                    break
                j += 1
            j += 1
            while j < n and (src[j].isalnum()):
                j += 1
            tok = Token("regex", src[i:j], line)
            i = j
        elif m := _NAME.match(src, i):
            tok = Token("name", m.group(), line)
            i = m.end()
        elif (m := _NUM.match(src, i)) and (c.isdigit() or c == "."):
            tok = Token("num", m.group(), line)
            i = m.end()
        elif m := _PUNCT.match(src, i):
            tok = Token("punct", m.group(), line)
            i = m.end()
        else:
            tok = Token("punct", c, line)
            i += 1
        prev = tok
        yield tok


def _arguments(tokens: list[Token], i: int) -> tuple[list[list[Token]], int]:
    """Split the call arguments starting at tokens[i] == '(' on top-level commas."""
    args: list[list[Token]] = [[]]
    depth = 0
    while i < len(tokens):
        t = tokens[i]
        if t.kind == "punct" and t.value in "([{":
            depth += 1
            if depth > 1:
                args[-1].append(t)
        elif t.kind == "punct" and t.value in ")]}":
            depth -= 1
            if depth == 0:
                return ([] if args == [[]] else args), i
            args[-1].append(t)
        elif t.kind == "punct" and t.value == "," and depth == 1:
            args.append([])
        else:
            args[-1].append(t)
        i += 1
    raise PotError("unterminated call")


def _literal(arg: list[Token]) -> tuple[str, int] | None:
    """A string literal, or literals joined by '+': (value, line of the first); else None."""
    if not arg or len(arg) % 2 == 0:
        return None
    if any(t.kind != "str" for t in arg[::2]) or any(t.value != "+" for t in arg[1::2]):
        return None
    return "".join(t.value for t in arg[::2]), arg[0].line


def extract_js(src: str) -> Iterator[tuple[str, str | None, str | None, int]]:
    """(msgid, msgctxt, msgid_plural, line) of every translatable string in JavaScript."""
    tokens = list(tokenize(src))
    for i, t in enumerate(tokens):
        if t.kind != "name" or t.value not in ("_", "N_"):
            continue
        if i > 0 and tokens[i - 1].kind == "punct" and tokens[i - 1].value == ".":
            continue
        if i + 1 >= len(tokens) or tokens[i + 1].value != "(":
            continue
        args, _ = _arguments(tokens, i + 1)
        lits = [_literal(a) for a in args]
        if t.value == "_" and len(args) in (1, 2) and lits[0] is not None:
            ctx = lits[1][0] if len(args) == 2 and lits[1] is not None else None
            if len(args) == 2 and lits[1] is None:
                continue
            yield lits[0][0], ctx, None, lits[0][1]
        elif t.value == "N_" and len(args) in (3, 4):
            if lits[1] is None or lits[2] is None:
                continue
            ctx = None
            if len(args) == 4:
                if lits[3] is None:
                    continue
                ctx = lits[3][0]
            yield lits[1][0], ctx, lits[2][0], lits[1][1]


_JSON_KEY = re.compile(r'"(title|description)"\s*:\s*"((?:[^"\\]|\\.)*)"', re.S)


def extract_json(src: str) -> Iterator[tuple[str, str | None, str | None, int]]:
    """Every "title" and "description" string of a menu.d or acl.d file."""
    json.loads(src)  # a broken file is an error, not an empty template
    for m in _JSON_KEY.finditer(src):
        value = json.loads('"' + m.group(2) + '"')
        yield value, None, None, src.count("\n", 0, m.start(2)) + 1


def _po_escape(s: str) -> str:
    s = s.replace("\\", "\\\\").replace('"', '\\"')
    return s.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


def _collapse(escaped: str) -> str:
    """i18n-scan.pl's whitespace_collapse, applied to the escaped string."""
    s = re.sub(r"\\(.)", lambda m: " " if m.group(1) in "nt" else m.group(0), escaped)
    s = re.sub(" {2,}", " ", s)
    s = s[1:] if s.startswith(" ") else s
    return s[:-1] if s.endswith(" ") else s


def _pieces(escaped: str) -> list[str]:
    """Split where gettext may break a line in English text: after a run of spaces, or after a
    hyphen between two letters; never inside an escape sequence."""
    pieces: list[str] = []
    cur = ""
    i = 0
    while i < len(escaped):
        c = escaped[i]
        if c == "\\":
            cur += escaped[i:i + 2]
            i += 2
            continue
        cur += c
        i += 1
        nxt = escaped[i] if i < len(escaped) else ""
        if (c == " " and nxt != " ") or (
                c == "-" and nxt.isalpha() and len(cur) > 1 and cur[-2].isalpha()):
            pieces.append(cur)
            cur = ""
    if cur:
        pieces.append(cur)
    return pieces


def _wrap(keyword: str, escaped: str) -> list[str]:
    """One 'keyword "..."' line, or msguniq's wrapping of it into lines of at most 79 columns."""
    if len(keyword) + len(escaped) + 3 <= WIDTH:
        return [f'{keyword} "{escaped}"']
    lines = [f'{keyword} ""']
    cur = ""
    for piece in _pieces(escaped):
        if cur and len(cur) + len(piece) + 2 > WIDTH:
            lines.append(f'"{cur}"')
            cur = ""
        cur += piece
    if cur:
        lines.append(f'"{cur}"')
    return lines


def scan(root: Path = ROOT) -> dict[tuple[str | None, str], Entry]:
    app = root / APP
    sources = sorted(app.glob("htdocs/**/*.js"))
    sources += sorted(app.glob("root/usr/share/luci/menu.d/*.json"))
    sources += sorted(app.glob("root/usr/share/rpcd/acl.d/*.json"))
    entries: dict[tuple[str | None, str], Entry] = {}
    for path in sources:
        rel = path.relative_to(root).as_posix()
        src = path.read_text(encoding="utf-8")
        try:
            found = list(extract_json(src) if path.suffix == ".json" else extract_js(src))
        except (PotError, ValueError) as e:
            raise PotError(f"{rel}: {e}") from None
        for msgid, ctx, plural, line in found:
            key_id = _collapse(_po_escape(msgid))
            if not key_id:
                continue
            key_ctx = None if ctx is None else _collapse(_po_escape(ctx))
            entry = entries.setdefault((key_ctx, key_id), Entry(key_id, key_ctx))
            if plural is not None and entry.plural is None:
                entry.plural = _collapse(_po_escape(plural))
            entry.refs.add((rel, line))
    return entries


def render(entries: dict[tuple[str | None, str], Entry]) -> str:
    def order(e: Entry) -> tuple[bytes, int, bytes]:
        ctx = b"" if e.msgctxt is None else e.msgctxt.encode()
        return e.msgid.encode(), 0 if e.msgctxt is None else 1, ctx

    out = [HEADER]
    for e in sorted(entries.values(), key=order):
        lines = [f"#: {f}:{n}" for f, n in sorted(e.refs)]
        if e.msgctxt is not None:
            lines += _wrap("msgctxt", e.msgctxt)
        lines += _wrap("msgid", e.msgid)
        if e.plural is not None:
            lines += _wrap("msgid_plural", e.plural)
            lines += ['msgstr[0] ""', 'msgstr[1] ""']
        else:
            lines.append('msgstr ""')
        out.append("\n" + "\n".join(lines) + "\n")
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=ROOT, help="the repository (default: %(default)s)")
    ap.add_argument("-o", "--output", help="where to write (default: the template; '-': stdout)")
    ap.add_argument("--check", action="store_true",
                    help="compare with the template instead of writing; exit 1 when it is stale")
    args = ap.parse_args(argv)
    try:
        text = render(scan(args.root))
    except PotError as e:
        print(f"luci-pot: {e}", file=sys.stderr)
        return 2
    target = args.root / POT
    if args.check:
        old = target.read_text(encoding="utf-8") if target.exists() else ""
        if old == text:
            return 0
        sys.stdout.writelines(difflib.unified_diff(
            old.splitlines(keepends=True), text.splitlines(keepends=True),
            str(POT), f"{POT} (regenerated)"))
        print(f"luci-pot: {POT} is stale: run tools/luci-pot.py", file=sys.stderr)
        return 1
    if args.output == "-":
        sys.stdout.write(text)
    else:
        out = Path(args.output) if args.output else target
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

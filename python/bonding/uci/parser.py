"""The parser: libuci's file.c, step by step (the rules are in `bonding.uci`'s docstring)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Final

from bonding.uci.model import (
    _ENCODING,
    _ERRORS,
    _SPACE,
    Package,
    Section,
    UciParseError,
    _valid,
    anonymous_sid,
)

_HINTS: Final = {
    "invalid command": "a line starts with package, config, option, list or #",
    "invalid character in name field": "names may contain only letters, digits and '_'",
    "invalid character in type field": "a section type is printable ASCII without spaces",
    "insufficient arguments": "a name is missing",
    "too many arguments": "quote a value that contains spaces",
    "option/list command found before the first section": "start a section with 'config <type>'",
    "section of different type overwrites prior section with same name":
        "two sections have the same name",
}


class _Abort(Exception):
    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


@dataclass
class _MSection:
    type: bytes
    sid: bytes
    anonymous: bool
    options: dict[bytes, bytes | list[bytes]] = field(default_factory=dict)


class _Parser:
    """A port of libuci's parser that works on the same kind of buffer (the quirks of ``;``,
    ``#`` and line continuations come from where it writes NUL bytes into that buffer)."""

    def __init__(self, data: bytes, path: str) -> None:
        self.src = data
        self.srcpos = 0
        self.path = path
        self.buf = bytearray(64)
        self.pos = 0
        self.filled = 0
        self.eof = False
        self.physline = 0  # physical lines read so far
        self.starts: list[tuple[int, int, int]] = []  # (buffer offset, line number, src offset)
        self.sections: list[_MSection] = []
        self.by_sid: dict[bytes, _MSection] = {}  # the first section of each sid
        self.section: _MSection | None = None

    # -- buffer primitives
    def ch(self, i: int) -> int:
        return self.buf[i] if i < len(self.buf) else 0

    def setch(self, i: int, c: int) -> None:
        if i >= len(self.buf):
            self.buf.extend(bytes(i + 1 - len(self.buf) + 64))
        self.buf[i] = c

    def cstr(self, i: int) -> bytes:
        end = self.buf.find(0, i)
        return bytes(self.buf[i:end if end >= 0 else len(self.buf)])

    def getln(self, offset: int) -> None:
        """uci_getln(): read the next line (with its newline) into the buffer at `offset`."""
        self.setch(offset, 0)
        if self.srcpos >= len(self.src):
            self.eof = True
            return
        nl = self.src.find(b"\n", self.srcpos)
        end = len(self.src) if nl < 0 else nl + 1
        chunk = self.src[self.srcpos:end]
        if nl < 0:
            self.eof = True
        if offset == 0:
            self.starts = []
        self.physline += 1
        self.starts.append((offset, self.physline, self.srcpos))
        self.srcpos = end
        need = offset + len(chunk) + 1
        if need > len(self.buf):
            self.buf.extend(bytes(need - len(self.buf) + 64))
        self.buf[offset:offset + len(chunk)] = chunk
        self.buf[offset + len(chunk)] = 0
        self.filled = offset + len(chunk)

    def error(self, reason: str, detail: str | None = None) -> _Abort:
        return _Abort(reason, detail)

    # -- tokenizer (parse_backslash, skip_whitespace, parse_*_quote, parse_str, next_arg)
    def parse_backslash(self) -> bool:
        self.pos += 1
        c = self.ch(self.pos)
        if c == 0 or c == 0x0A or (
            c == 0x0D and self.ch(self.pos + 1) == 0x0A and self.ch(self.pos + 2) == 0
        ):
            self.getln(self.pos)
            return False
        return True

    def skip_whitespace(self) -> None:
        while self.ch(self.pos) and self.ch(self.pos) in _SPACE:
            self.pos += 1

    def addc(self, target: int) -> int:
        self.setch(target, self.ch(self.pos))
        self.pos += 1
        return target + 1

    def parse_quoted(self, target: int, quote: int) -> int:
        opened = self.start_of(self.pos)[1]
        self.pos += 1
        while True:
            c = self.ch(self.pos)
            if c == quote:
                self.pos += 1
                return target
            if c == 0:
                self.getln(self.pos)
                if not self.ch(self.pos):
                    raise self.error("EOF with unterminated " + chr(quote),
                                     f"the quote opened on line {opened}")
                continue
            if c == 0x5C and quote == 0x22 and not self.parse_backslash():  # '\\' in "..."
                continue
            target = self.addc(target)

    def parse_str(self, target: int) -> int:
        nxt = True
        while True:
            c = self.ch(self.pos)
            if c in (0x27, 0x22):  # ' "
                target = self.parse_quoted(target, c)
            elif c == 0x23:  # '#': the rest of the line is a comment
                self.setch(self.pos, 0)
                break
            elif c == 0:
                break
            elif c == 0x3B:  # ';'
                nxt = False
                break
            elif c == 0x5C:  # '\\'
                if self.parse_backslash():
                    target = self.addc(target)
            else:
                target = self.addc(target)
            c = self.ch(self.pos)
            if c == 0 or c in _SPACE:
                break
        # An unquoted word stopped at whitespace: step over it, the NUL may overwrite it.  When it
        # stopped at ';' with nothing removed before it, the NUL overwrites the ';' (libuci then
        # ignores the rest of the line; after a quoted piece the ';' survives and splits it).
        if self.ch(self.pos) and nxt:
            self.pos += 1
        self.setch(target, 0)
        return target

    def next_arg(self, required: bool, name: bool, package: bool) -> int:
        self.skip_whitespace()
        val = self.pos
        if self.ch(self.pos) == 0x3B:
            self.setch(self.pos, 0)
            self.pos += 1
        else:
            self.parse_str(val)
        if not self.ch(val):
            if required:
                raise self.error("insufficient arguments")
            return val
        if name and not _valid(self.cstr(val), name=name, package=package):
            raise self.error("invalid character in name field", _show(self.cstr(val)))
        return val

    def assert_eol(self) -> None:
        self.skip_whitespace()
        v = self.next_arg(False, False, False)
        if self.ch(v):
            raise self.error("too many arguments", _show(self.cstr(v)))

    def increase_pos(self, add: int, reason: str) -> None:
        if self.pos + add > self.filled:
            raise self.error(reason)
        self.pos += add

    def skip_command(self, reason: str) -> None:
        # "command string null-terminated by strtok": step over it
        self.increase_pos(len(self.cstr(self.pos)) + 1, reason)

    # -- commands
    def parse_package(self) -> None:
        self.skip_command("package without name")
        self.next_arg(True, True, True)
        self.assert_eol()  # a config dir's file names its package: the line is only checked

    def parse_config(self) -> None:
        self.skip_command("config without name")
        ofs_type = self.next_arg(True, False, False)
        stype = self.cstr(ofs_type)
        if not _valid(stype, name=False, package=False):
            raise self.error("invalid character in type field", _show(stype))
        ofs_name = self.next_arg(False, True, False)
        self.assert_eol()
        stype = self.cstr(ofs_type)
        name = self.cstr(ofs_name)
        if not name:
            count = len(self.sections) + 1
            sid = anonymous_sid(stype.decode(_ENCODING, _ERRORS), count).encode()
            self.add_section(_MSection(stype, sid, True))
            return
        found = self.by_sid.get(name)
        if found is not None:
            if found.type != stype:
                raise self.error(
                    "section of different type overwrites prior section with same name",
                    f"{_show(name)} is a {_show(found.type)}, not a {_show(stype)}")
            self.section = found
            return
        self.add_section(_MSection(stype, name, False))

    def add_section(self, section: _MSection) -> None:
        self.section = section
        self.sections.append(section)
        self.by_sid.setdefault(section.sid, section)

    def parse_option(self, is_list: bool) -> None:
        if self.section is None:
            raise self.error("option/list command found before the first section")
        self.skip_command("option without name")
        ofs_name = self.next_arg(True, True, False)
        ofs_value = self.next_arg(False, False, False)
        self.assert_eol()
        name = self.cstr(ofs_name)
        value = self.cstr(ofs_value)
        opts = self.section.options
        old = opts.get(name)
        if is_list:
            if old is None:
                opts[name] = [value]
            elif isinstance(old, list):
                old.append(value)
            else:
                opts[name] = [old, value]
        elif value:  # libuci: setting an empty value through the parser changes nothing
            opts[name] = value

    def parse_line(self) -> None:
        self.skip_whitespace()
        while True:
            # strtok(cur, " \t"): skip blanks, cut the word with a NUL
            s = self.pos
            while self.ch(s) in (0x20, 0x09):
                s += 1
            if self.ch(s) == 0:
                return
            e = s
            while self.ch(e) not in (0, 0x20, 0x09):
                e += 1
            word = bytes(self.buf[s:e])
            self.setch(e, 0)
            if word[:1] == b"#":
                return
            if word in (b"p", b"package"):
                self.parse_package()
            elif word in (b"c", b"config"):
                self.parse_config()
            elif word in (b"o", b"option"):
                self.parse_option(False)
            elif word in (b"l", b"list"):
                self.parse_option(True)
            else:
                raise self.error("invalid command", _show(word))

    def run(self) -> list[_MSection]:
        if b"\0" in self.src:
            line = self.src.count(b"\n", 0, self.src.index(b"\0")) + 1
            raise UciParseError(self.path, line, "NUL byte in file",
                                hint="a config file is text; libuci cannot read it reliably")
        while not self.eof:
            self.pos = 0
            self.getln(0)
            if self.ch(0):
                try:
                    self.parse_line()
                except _Abort as a:
                    raise self.located(a) from None
        return self.sections

    def start_of(self, pos: int) -> tuple[int, int, int]:
        """(buffer offset, line number, src offset) of the physical line holding buffer position
        `pos` (the buffer offsets of a logical line's physical lines increase)."""
        i = bisect.bisect_right(self.starts, pos, key=lambda st: st[0])
        return self.starts[max(i - 1, 0)] if self.starts else (0, 0, 0)

    def line_of(self, pos: int) -> tuple[int, int, str | None]:
        """(line, column, text) of a buffer position, as in the file."""
        if not self.starts:
            return 0, 0, None
        off, line, src = self.start_of(pos)
        end = self.src.find(b"\n", src)
        raw = self.src[src:end if end >= 0 else len(self.src)].rstrip(b"\r")
        return line, max(pos - off, 0) + 1, raw.decode(_ENCODING, "replace")

    def located(self, a: _Abort) -> UciParseError:
        line, column, text = self.line_of(self.pos)
        hint = _HINTS.get(a.reason)
        if a.detail:
            hint = f"{a.detail}: {hint}" if hint else a.detail
        return UciParseError(self.path, line, a.reason, column=column, text=text, hint=hint)


def _show(b: bytes) -> str:
    return repr(b.decode(_ENCODING, "replace").rstrip("\r\n"))


def _dec(b: bytes) -> str:
    return b.decode(_ENCODING, _ERRORS)


def loads(data: str | bytes, package: str, path: str | None = None) -> Package:
    """Parse the text of ``/etc/config/<package>``; raise `UciParseError` where libuci would."""
    raw = data if isinstance(data, bytes) else data.encode(_ENCODING, _ERRORS)
    sections = _Parser(raw, path or f"<{package}>").run()
    return Package(package, tuple(
        Section(
            _dec(s.type),
            None if s.anonymous else _dec(s.sid),
            {_dec(k): (_dec(v) if isinstance(v, bytes) else tuple(_dec(i) for i in v))
             for k, v in s.options.items()},
            sid=_dec(s.sid),
        )
        for s in sections
    ))

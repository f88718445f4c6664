"""`dumps()`: a `Package` as the text of its config file, in ``uci export``'s layout."""

from __future__ import annotations

import re
from typing import Final

from bonding.uci.model import OptionValue, Package, valid_name, valid_package_name, valid_type
from bonding.uci.parser import loads


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


_PLAIN_TYPE: Final = re.compile(r"[!$-&(-:<-\[\]-~]+")  # printable, no ' " # ; \ space


def dumps(package: Package, *, header: bool = False) -> str:
    """The text of a config file for `package`, in ``uci export``'s layout (with ``header`` the
    ``package`` line too, exactly as ``uci export`` prints it).  `loads` of the result gives the
    same sections back; what the format cannot hold raises ValueError: an empty option value
    (libuci ignores it), an empty list, a repeated section name, bad names or NUL bytes."""
    if not valid_package_name(package.name):
        raise ValueError(f"invalid package name {package.name!r}")
    out: list[str] = [f"package {package.name}\n"] if header else []
    seen: set[str] = set()
    for s in package.sections:
        where = f"section {s.ref}"
        if not valid_type(s.type):
            raise ValueError(f"{where}: invalid type {s.type!r} (printable ASCII, no spaces)")
        if s.name is not None:
            if not valid_name(s.name):
                raise ValueError(f"{where}: invalid name {s.name!r} (letters, digits, '_')")
            if s.name in seen:
                raise ValueError(f"{where}: the name {s.name!r} is used twice")
            seen.add(s.name)
        stype = s.type if _PLAIN_TYPE.fullmatch(s.type) else _quote(s.type)
        named = f" {_quote(s.name)}" if s.name is not None else ""
        out.append(f"\nconfig {stype}{named}\n")
        for k, v in s.options.items():
            if not valid_name(k):
                raise ValueError(f"{where}: invalid option name {k!r} (letters, digits, '_')")
            values = (v,) if isinstance(v, str) else v
            if isinstance(v, str) and not v:
                raise ValueError(f"{where}: option {k!r} is empty, which UCI cannot store")
            if not values:
                raise ValueError(f"{where}: list {k!r} is empty, which UCI cannot store")
            for item in values:
                if "\0" in item:
                    raise ValueError(f"{where}: option {k!r} holds a NUL character")
                kw = "option" if isinstance(v, str) else "list"
                out.append(f"\t{kw} {k} {_quote(item)}\n")
    out.append("\n")
    text = "".join(out)
    back = loads(text, package.name)
    if _shape(back) != _shape(package):
        raise ValueError("the package cannot be written so that it reads back the same "
                         "(a section name equal to an anonymous section's cfgNNHHHH id?)")
    return text


def _shape(p: Package) -> list[tuple[str, str | None, list[tuple[str, OptionValue]]]]:
    return [(s.type, s.name, list(s.options.items())) for s in p.sections]

"""`load()`: a package through pyuci (libuci's Python binding) when it is there, else parsed."""

from __future__ import annotations

import functools
import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

from bonding.uci.model import (
    OptionValue,
    Package,
    Section,
    UciError,
    UciParseError,
    _looks_anonymous,
    valid_package_name,
)
from bonding.uci.parser import loads


@functools.cache
def _pyuci() -> ModuleType | None:
    try:
        mod = importlib.import_module("uci")
    except ImportError:
        return None
    return mod if hasattr(mod, "Uci") and hasattr(mod, "UciException") else None


def have_pyuci() -> bool:
    """True when ``import uci`` gives pyuci (then `load` reads through libuci)."""
    return _pyuci() is not None


def _load_pyuci(mod: ModuleType, config_dir: Path, package: str) -> Package:
    path = config_dir / package
    not_found: type[BaseException] = getattr(mod, "UciExceptionNotFound", LookupError)
    ctx: Any = mod.Uci(confdir=str(config_dir))
    try:
        data: Any = ctx.get_all(package)
        sections: list[Section] = []
        for sid, opts in data.items():
            stype = str(ctx.get(package, sid))
            anonymous = _looks_anonymous(str(sid), stype)
            options: dict[str, OptionValue] = {
                str(k): (str(v) if isinstance(v, str) else tuple(str(i) for i in v))
                for k, v in opts.items()
            }
            sections.append(Section(stype, None if anonymous else str(sid), options, sid=str(sid)))
    except (UnicodeDecodeError, SystemError) as e:
        # libuci took the file, but pyuci can only hand out UTF-8 (and then sometimes raises a
        # SystemError around the UnicodeDecodeError): read it here, with the same result.
        if not isinstance(e, UnicodeDecodeError) and not isinstance(e.__cause__,
                                                                      UnicodeDecodeError):
            raise
        return loads(path.read_bytes(), package, str(path))
    except not_found:
        raise FileNotFoundError(2, "No such UCI package", str(path)) from None
    except mod.UciException as e:
        # pyuci says no more than "invalid input": let the parser (which agrees with libuci) say
        # where and why.
        try:
            loads(path.read_bytes(), package, str(path))
        except UciParseError as pe:
            raise pe from None
        except OSError:
            pass
        raise UciParseError(str(path), 0, f"libuci rejected the package ({type(e).__name__}: "
                            f"{e or 'no detail'})") from None
    finally:
        del ctx
    return Package(package, tuple(sections))


def load(config_dir: Path, package: str, *, use_pyuci: bool | None = None) -> Package:
    """Read `package` from `config_dir` (e.g. ``Path("/etc/config")``).

    With pyuci (``use_pyuci`` None and ``import uci`` works, or True) libuci reads it, applying
    uncommitted changes saved under ``/tmp/.uci`` and preferring ``/var/run/uci/<package>`` as
    every libuci user does; otherwise the file is parsed here.  Raises FileNotFoundError when
    there is no such package, `UciParseError` when the file is malformed.

    pyuci does not say which sections are anonymous: a section whose id has libuci's anonymous
    form for its type (``cfgNN`` + the type's hash) is taken as anonymous.
    """
    if not valid_package_name(package):
        raise ValueError(f"invalid UCI package name {package!r}: use letters, digits, '_', '-'")
    mod = _pyuci() if use_pyuci is not False else None
    if use_pyuci and mod is None:
        raise UciError("pyuci (import uci) is not available")
    if mod is not None:
        return _load_pyuci(mod, Path(config_dir), package)
    path = Path(config_dir) / package
    if not path.is_file():  # libuci: a directory or a missing file is "not found"
        raise FileNotFoundError(2, "No such UCI package", str(path))
    return loads(path.read_bytes(), package, str(path))

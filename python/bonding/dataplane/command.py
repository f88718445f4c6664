"""One external command of the data plane (nft, tc, ip), run with a timeout.

A program that is not there, or one that hangs, becomes the caller's error type with a message
that says what to install or what took too long; the exit status and stderr are the caller's to
judge (each tool words its failures its own way).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence


def run(argv: Sequence[str], *, error: Callable[[str], Exception], install: str, what: str,
        timeout_s: float, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `argv` (text, output captured, never `check`); `error(message)` is raised when
    argv[0] is not found ("… not found: install `install`") or when it runs past `timeout_s`
    ("`what` took more than …")."""
    try:
        return subprocess.run(list(argv), input=input, capture_output=True, text=True,
                              timeout=timeout_s, check=False)
    except FileNotFoundError:
        raise error(f"{argv[0]} not found: install {install}") from None
    except subprocess.TimeoutExpired:
        raise error(f"{what} took more than {timeout_s:g} s") from None

"""The state directory: server settings, one record per client, runtime files.

Layout (everything 0600 in 0700 directories, owned by root)::

    STATE/server.json           what `init` decided (ServerConfig)
    STATE/clients/NAME.json     one record per client (Client), the key included
    STATE/run/NAME.sing-box.json  the client's proxy config, derived from the record (NAME.ss.json
                                when the proxy is ss-server)
    STATE/run/applied.json      fingerprints of the firewall and shaping last applied
    STATE/run/supervisor.pid    the `run` supervisor's pid, flock-held while it lives
    STATE/run/supervisor.json   the supervisor's view of its proxies (pid, restarts, state)
    STATE/.lock                 flock serialising the commands that change something

Every file is written atomically: a temporary file in the same directory, fsync, rename over
the old one, fsync of the directory.  A crash leaves either the old file or the new one, never
half of one; a stray temporary file is ignored by readers and removed by the next writer.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bonding.server.model import Client, ServerConfig, ServerError, UsageError

_RECORD_RE = re.compile(r"([A-Za-z0-9_]{1,32})\.json")
_TMP_PREFIX = ".tmp-"


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` so that a crash at any point leaves old or new, whole."""
    tmp = path.parent / f"{_TMP_PREFIX}{path.name}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)  # O_CREAT's mode is masked by the umask
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_unlink(path: Path) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    fsync_dir(path.parent)
    return True


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (also when it belongs to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_json(path: Path) -> Any:
    """The JSON in ``path``; None when the file does not exist."""
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        return None


class Store:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.server_file = self.root / "server.json"
        self.clients_dir = self.root / "clients"
        self.run_dir = self.root / "run"
        self.lock_file = self.root / ".lock"

    # --- directories and locking --------------------------------------------------------------
    def ensure_dirs(self) -> None:
        for d in (self.root, self.clients_dir, self.run_dir):
            try:
                d.mkdir(mode=0o700, parents=d is self.root, exist_ok=True)
                os.chmod(d, 0o700)
            except OSError as e:
                raise ServerError(f"cannot create the state directory {d}: {e.strerror}") from e

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Serialise the commands that change state (add, remove, init, apply, reload)."""
        self.ensure_dirs()
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self.remove_stale_tmp()
            yield
        finally:
            os.close(fd)

    def remove_stale_tmp(self) -> None:
        """Remove temporary files a crashed writer left (not those of a live process)."""
        for d in (self.root, self.clients_dir, self.run_dir):
            with contextlib.suppress(FileNotFoundError):
                for p in d.iterdir():
                    if not p.name.startswith(_TMP_PREFIX):
                        continue
                    pid = p.name.rsplit(".", 1)[-1]
                    if pid.isdigit() and int(pid) != os.getpid() and process_alive(int(pid)):
                        continue
                    with contextlib.suppress(OSError):
                        p.unlink()

    # --- server settings ----------------------------------------------------------------------
    def load_server(self) -> ServerConfig | None:
        try:
            raw = read_json(self.server_file)
            return None if raw is None else ServerConfig.from_json(raw)
        except PermissionError as e:
            raise ServerError(f"cannot read {self.server_file}: {e.strerror} (run as root)") from e
        except (ValueError, KeyError, TypeError, UsageError) as e:
            raise ServerError(f"{self.server_file} is damaged ({e}): run "
                              "`bonding-server init` with your options to rewrite it") from e

    def require_server(self) -> ServerConfig:
        cfg = self.load_server()
        if cfg is None:
            raise ServerError(f"this server is not set up ({self.server_file} is missing): run "
                              "`bonding-server init` first")
        return cfg

    def save_server(self, cfg: ServerConfig) -> None:
        self.ensure_dirs()
        atomic_write(self.server_file,
                     (json.dumps(cfg.to_json(), indent=2, sort_keys=True) + "\n").encode())

    # --- client records -----------------------------------------------------------------------
    def record_path(self, name: str) -> Path:
        return self.clients_dir / f"{name}.json"

    def names(self) -> list[str]:
        try:
            entries = os.listdir(self.clients_dir)
        except FileNotFoundError:
            return []
        except PermissionError as e:
            raise ServerError(f"cannot read {self.clients_dir}: {e.strerror} (run as root)") from e
        return sorted(m.group(1) for e in entries if (m := _RECORD_RE.fullmatch(e)))

    def load(self, name: str) -> Client:
        path = self.record_path(name)
        try:
            raw = read_json(path)
        except PermissionError as e:
            raise ServerError(f"cannot read {path}: {e.strerror} (run as root)") from e
        except ValueError as e:
            raise ServerError(f"client record {path} is damaged ({e}): restore it from a "
                              f"backup or drop it with `bonding-server remove-client "
                              f"{name}`") from e
        if raw is None:
            raise UsageError(f"unknown client {name!r}: `bonding-server list` shows the "
                             "clients")
        try:
            client = Client.from_json(raw)
        except (ValueError, KeyError, TypeError, UsageError) as e:
            raise ServerError(f"client record {path} is damaged ({e}): restore it from a "
                              f"backup or drop it with `bonding-server remove-client "
                              f"{name}`") from e
        if client.name != name:
            raise ServerError(f"client record {path} names {client.name!r}, not {name!r}: "
                              "rename the file back or remove it")
        return client

    def clients(self) -> list[Client]:
        return [self.load(n) for n in self.names()]

    def exists(self, name: str) -> bool:
        return self.record_path(name).exists()

    def write(self, client: Client) -> None:
        self.ensure_dirs()
        atomic_write(self.record_path(client.name), client.dumps())

    def delete(self, name: str) -> bool:
        return atomic_unlink(self.record_path(name))

    # --- runtime files ------------------------------------------------------------------------
    def proxy_config_path(self, name: str, suffix: str) -> Path:
        """STATE/run/NAME.SUFFIX.json (suffix: plan.config_suffix of the proxy)."""
        return self.run_dir / f"{name}.{suffix}.json"

    def proxy_config_paths(self) -> list[Path]:
        """Every proxy config in STATE/run, of any proxy."""
        if not self.run_dir.exists():
            return []
        return [p for p in self.run_dir.glob("*.*.json") if _RECORD_RE.fullmatch(
            p.name.split(".", 1)[0] + ".json") and not p.name.startswith(_TMP_PREFIX)]

    @property
    def applied_file(self) -> Path:
        return self.run_dir / "applied.json"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "supervisor.pid"

    @property
    def supervisor_file(self) -> Path:
        return self.run_dir / "supervisor.json"

    def load_applied(self) -> dict[str, Any]:
        try:
            raw = read_json(self.applied_file)
        except (ValueError, OSError):
            return {}
        return raw if isinstance(raw, dict) else {}

    def save_applied(self, applied: dict[str, Any]) -> None:
        self.ensure_dirs()
        atomic_write(self.applied_file,
                     (json.dumps(applied, indent=2, sort_keys=True) + "\n").encode())

    def supervisor_pid(self) -> int | None:
        """The pid of the live `run` supervisor (it holds a flock on the pid file), else None."""
        try:
            fd = os.open(self.pid_file, os.O_RDONLY)
        except (FileNotFoundError, PermissionError):
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                text = os.pread(fd, 32, 0).decode(errors="replace").strip()
                return int(text) if text.isdigit() else None
            return None  # nobody holds it: a stale file
        finally:
            os.close(fd)

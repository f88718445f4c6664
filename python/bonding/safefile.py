"""Files replaced whole and safely, also in directories that someone else could write to.

A file is written to a fresh temporary name beside it (random, created with O_EXCL|O_NOFOLLOW,
so a planted file or symlink is never opened), synced and renamed over the old one; the
directory is then synced.  Directories are opened with O_NOFOLLOW and used by descriptor, so a
path component swapped for a symlink mid-way is never followed.

:func:`open_dir` refuses a directory that another user could change under us: one not owned by
us (or root), or writable by its group or by others without being ours and sticky.  Such a
directory lets its other writers replace what we write (a first-boot script, a key) after we
wrote it, which no file mode prevents.

:func:`replace` rewrites a file the way libuci's commit does (uci/file.c): a symlink is kept
and the file it points to is replaced, so a config kept elsewhere by a link stays one file.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafeDirError(OSError):
    """A directory others could write to, or one that is a symlink where we need a directory."""


def _check_dir(fd: int, where: str) -> None:
    st = os.fstat(fd)
    me = os.geteuid()
    if st.st_uid not in (me, 0):
        raise UnsafeDirError(f"{where} belongs to uid {st.st_uid}, not to you: another user "
                             "could replace what is written there; use a directory of your own")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeDirError(f"{where} is writable by others (mode "
                             f"{stat.S_IMODE(st.st_mode):04o}): they could replace what is "
                             f"written there; chmod go-w it or use a directory of your own")


def open_dir(path: Path, *, create: bool = False, mode: int = 0o755) -> int:
    """An O_NOFOLLOW descriptor of directory `path` (made first when `create`), checked."""
    if create:
        with contextlib.suppress(FileExistsError):
            os.makedirs(path, mode)
    try:
        fd = os.open(path, _DIR_FLAGS)
    except OSError as e:
        if os.path.islink(path):
            raise UnsafeDirError(f"{path} is a symlink: give the directory itself") from None
        raise e
    try:
        _check_dir(fd, str(path))
    except BaseException:
        os.close(fd)
        raise
    return fd


def subdir(dir_fd: int, name: str, where: str, *, mode: int = 0o755) -> int:
    """Directory `name` inside `dir_fd` (made when missing), opened without following links."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, mode, dir_fd=dir_fd)
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as e:
        raise UnsafeDirError(f"{where}: not a directory of its own ({e.strerror}); remove it "
                             "and run again") from None
    try:
        _check_dir(fd, where)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_at(dir_fd: int, name: str, data: bytes, mode: int,
             owner: tuple[int, int] | None = None) -> None:
    """Replace `name` in `dir_fd` with `data` (mode `mode`, owned by `owner` = (uid, gid) when
    given): temp file, fsync, rename."""
    tmp = f".{name}.{os.urandom(6).hex()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 mode, dir_fd=dir_fd)
    try:
        try:
            if owner is not None:
                os.fchown(fd, *owner)
            os.fchmod(fd, mode)  # the umask does not apply
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    os.fsync(dir_fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def replace(path: Path, data: bytes, mode: int, owner: tuple[int, int] | None = None, *,
            follow: bool = True) -> None:
    """Replace the file `path` points to (a symlink is kept, as libuci does) with `data`;
    with follow=False, `path` itself (a symlink there is replaced, never followed)."""
    real = Path(os.path.realpath(path)) if follow else path
    dfd = os.open(real.parent, _DIR_FLAGS)
    try:
        write_at(dfd, real.name, data, mode, owner)
    finally:
        os.close(dfd)

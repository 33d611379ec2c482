"""The store's files kept private: a new SQLite database is created with mode 0600 (SQLite gives its -wal and -shm
files the database's mode), and :func:`open_files` lists a store's files that others may read or write, for the
check at start-up."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from sqlalchemy.engine import URL, make_url

__all__ = ["create_private_sqlite", "open_files", "sqlite_files"]

_SIDE_FILES = ("-wal", "-shm", "-journal", "-writer.lock")


def _sqlite_path(url: URL | str) -> Path | None:
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    if parsed.database.startswith("file:"):  # a URI filename: SQLite's to interpret
        return None
    return Path(parsed.database)


def sqlite_files(url: URL | str) -> list[Path]:
    """A SQLite URL's database file and the files SQLite and the store keep beside it (none for other databases)."""
    path = _sqlite_path(url)
    return [] if path is None else [path, *(path.with_name(path.name + side) for side in _SIDE_FILES)]


def create_private_sqlite(url: URL | str) -> None:
    """Create a SQLite URL's database file, empty and with mode 0600, when it does not exist and its folder does."""
    path = _sqlite_path(url)
    if path is None or not path.parent.is_dir():
        return
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def open_files(paths: list[Path]) -> list[str]:
    """Each existing file of ``paths`` that others than its owner may read or write, as "path (mode 0644)"."""
    found = []
    for path in paths:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o066:
            found.append(f"{path} (mode {mode:04o})")
    return found

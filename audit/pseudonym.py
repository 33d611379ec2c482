"""Pseudonymous case ids: an HMAC of the child's id and the episode, under a secret kept outside the store."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import os
import secrets
import stat
import tempfile
from pathlib import Path

__all__ = ["Pseudonymiser", "load_or_create_key"]


def load_or_create_key(path: Path, *, what: str = "pseudonym key") -> bytes:
    """The secret at ``path``; a new random one (file mode 0600) when it does not exist yet (``what``: its name).

    Race-free: a new key is written whole to a private temporary file and linked into place, which fails if another
    process got there first; then that process's key is read. A key file that others may read or write is refused.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=".key-", dir=path.parent)  # created 0600
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(secrets.token_bytes(32))
                out.flush()
                os.fsync(out.fileno())
            with contextlib.suppress(FileExistsError):  # another process linked its key first: use that one
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ValueError(
            f"{path}: the {what}'s mode is {mode:04o}; it must be readable by its owner only: chmod 600 {path}"
        )
    key = path.read_bytes()
    if len(key) < 32:
        raise ValueError(f"{path}: the {what} must be at least 32 bytes")
    return key


class Pseudonymiser:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def case_id(self, la_child_id: str, episode_referral_date: dt.date) -> str:
        """The same child and episode always give the same id; without the key it cannot be reversed."""
        message = f"{la_child_id}\x1f{episode_referral_date.isoformat()}".encode()
        return "case_" + hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]

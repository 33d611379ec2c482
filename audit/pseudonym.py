"""Pseudonymous case ids: an HMAC of the child's id and the episode, under a secret kept outside the store."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import secrets
from pathlib import Path

__all__ = ["Pseudonymiser", "load_or_create_key"]


def load_or_create_key(path: Path) -> bytes:
    """The secret at ``path``; a new random one (file mode 0600) when it does not exist yet."""
    if path.exists():
        key = path.read_bytes()
        if len(key) < 32:
            raise ValueError(f"{path}: the pseudonym key must be at least 32 bytes")
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key)
    return key


class Pseudonymiser:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def case_id(self, la_child_id: str, episode_referral_date: dt.date) -> str:
        """The same child and episode always give the same id; without the key it cannot be reversed."""
        message = f"{la_child_id}\x1f{episode_referral_date.isoformat()}".encode()
        return "case_" + hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]

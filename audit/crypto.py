"""A score's personal inputs sealed at rest: AES-256-GCM under a key kept outside the store.

What a score row keeps about the child (the model's input values, every reason with its value, the what-ifs, the
caller's warnings and the ethnic group kept for the fairness summary) is sealed into one blob
(``scores.sealed_inputs``) with the id of the key that sealed it (``scores.inputs_key``); the row's own id is the
associated data, so a blob moved to another row does not open. The store keeps only what says which model decided
what: ids, the pseudonymous case id, the date, the probability, band and raw score, the names of out-of-range
features. Reproducing or explaining a score (the report, ``GET /v1/scores/{id}``, the monitor) needs the key.

The calling system's case reference is sealed with them (revision 0010). To find a case by it without opening every
row, the row also keeps a blind index (``scores.case_reference_index``): HMAC-SHA256 of the normalised reference
(:func:`normalise_reference`) under an index key derived (HKDF-SHA256, its own label) from the same inputs key. It
is kept beside the inputs key, not the pseudonym key, because whoever can search the store by reference must also be
able to open the rows found (the same key, the same reach), a store opened without the inputs key can neither
search nor read, and the pseudonym key, which the scoring side needs and must never rotate, is not given a second
use. Equal references give equal indexes (that is what makes them searchable), but without the key a guessed
reference cannot be tested against them. After a rotation, new rows are indexed under the new key and a search
asks for the reference's index under every key held (:meth:`InputsCipher.reference_indexes`). Rows stored before
revision 0010 keep their reference in plain in ``scores.case_reference`` (the chain and the triggers forbid
rewriting them): :func:`open_score` reads it from there, so a reader sees the reference whichever way it was kept.

The key file (``CCR_INPUTS_KEY_FILE``, default ``var/inputs.key``) is created race-free with mode 0600 and refused
when others may read it. Rotation (:func:`rotate_inputs_key`, ``closure-risk keys rotate-inputs``) moves the key to
``<key file>.retired/<key id>.key`` and creates a new one: new rows are sealed with the new key, older rows keep
opening with the retired one (a row is never rewritten: the audit tables are append-only).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import os
import secrets
import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from audit.pseudonym import load_or_create_key
from audit.rows import ScoreRow, StoreError

__all__ = [
    "SEALED_FIELDS",
    "InputsCipher",
    "InputsUnavailable",
    "inputs_key_id",
    "load_inputs_cipher",
    "normalise_reference",
    "open_score",
    "rotate_inputs_key",
    "seal_score",
]

SEALED_FIELDS = ("features", "reasons", "what_ifs", "warnings", "ethnic_group", "case_reference")
_NONCE_BYTES = 12
_KEY_BYTES = 32  # AES-256
_WHAT = "inputs key"
_INDEX_LABEL = b"case-closure-risk case reference index v1"


class InputsUnavailable(StoreError):  # noqa: N818 (reads as what happened)
    """A score's sealed inputs cannot be opened: no key, not the key that sealed them, or the blob was changed."""


def inputs_key_id(key: bytes) -> str:
    """The key's public name (16 hex digits of a hash of it): stored with each row; says nothing of the key."""
    return hashlib.sha256(b"case-closure-risk inputs key\x1f" + key).hexdigest()[:16]


class InputsCipher:
    """Seals with the current key; opens with it or any retired key, chosen by the id stored with the row."""

    def __init__(self, current: bytes, retired: Iterable[bytes] = ()) -> None:
        keys = [current[:_KEY_BYTES], *(key[:_KEY_BYTES] for key in retired)]
        if any(len(key) != _KEY_BYTES for key in keys):
            raise ValueError(f"an inputs key is {_KEY_BYTES} random bytes")
        self.key_id = inputs_key_id(keys[0])
        self._aead = {inputs_key_id(key): AESGCM(key) for key in keys}
        # The blind index's keys: derived, so the AES key itself never keys an HMAC; current first.
        self._index_keys = [_index_key(key) for key in keys]

    @property
    def key_ids(self) -> frozenset[str]:
        """Every key this cipher can open with (the current one included)."""
        return frozenset(self._aead)

    def reference_index(self, reference: str) -> str:
        """The blind index a new row keeps for ``reference``: HMAC-SHA256 (hex) of it normalised, current key."""
        return _reference_index(self._index_keys[0], reference)

    def reference_indexes(self, reference: str) -> list[str]:
        """The reference's blind index under every key held (the current one first): what a search looks for."""
        return list(dict.fromkeys(_reference_index(key, reference) for key in self._index_keys))

    def seal(self, payload: Mapping[str, Any], *, row_id: str) -> str:
        """The payload (plain JSON) sealed for the row ``row_id``: base64 of nonce and ciphertext."""
        if not _finite(payload):
            raise ValueError("a value is not a finite number")
        # orjson: a tenth of the standard encoder's time on a score's inputs (all its reasons), the same JSON values;
        # dates and other objects refused (TypeError), as the standard encoder refuses them.
        data = orjson.dumps(payload, default=_plain_float, option=orjson.OPT_PASSTHROUGH_DATETIME)
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead[self.key_id].encrypt(nonce, data, _associated(row_id))
        return base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, sealed: str, *, key_id: str, row_id: str) -> dict[str, Any]:
        aead = self._aead.get(key_id)
        if aead is None:
            raise InputsUnavailable(
                f"score {row_id}: its inputs are sealed with key {key_id}, which this service does not hold "
                "(a retired key belongs in the key file's .retired folder)"
            )
        try:
            blob = base64.b64decode(sealed.encode("ascii"), validate=True)
            data = aead.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], _associated(row_id))
        except (InvalidTag, ValueError) as exc:
            raise InputsUnavailable(f"score {row_id}: its sealed inputs do not open: changed or moved") from exc
        opened: dict[str, Any] = json.loads(data)
        return opened


def normalise_reference(reference: str) -> str:
    """The reference as it is indexed and searched: Unicode NFKC, runs of white space as one space, no space at
    either end. The case is kept: the reference is the calling system's, and "AB-1" and "ab-1" may be two cases."""
    return " ".join(unicodedata.normalize("NFKC", reference).split())


def _index_key(key: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INDEX_LABEL).derive(key)


def _reference_index(key: bytes, reference: str) -> str:
    return hmac.new(key, normalise_reference(reference).encode("utf-8"), hashlib.sha256).hexdigest()


def _finite(value: Any) -> bool:
    """No NaN or infinity anywhere in ``value`` (JSON has neither; orjson would write them as null). Containers on a
    stack, their items in a plain loop: a score's inputs hold some five hundred values, and this runs for each."""
    stack: list[Any] = [[value]]
    while stack:
        container = stack.pop()
        for item in container.values() if isinstance(container, dict) else container:
            kind = type(item)
            if kind is float:
                if item - item != 0.0:  # NaN or infinity
                    return False
            elif kind is dict or kind is list or kind is tuple:
                stack.append(item)
            elif kind is str or kind is int or item is None:
                continue
            elif isinstance(item, dict | list | tuple):  # a subclass: orjson writes it as its base
                stack.append(item)
            elif isinstance(item, float) and not math.isfinite(item):
                return False
    return True


def _plain_float(value: Any) -> float:
    """A float subclass (numpy's float64) as a float; anything else orjson cannot write is refused."""
    if isinstance(value, float):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _associated(row_id: str) -> bytes:
    return b"case-closure-risk score\x1f" + row_id.encode()


def seal_score(row: ScoreRow, cipher: InputsCipher | None) -> dict[str, Any]:
    """The values a score row is stored as: its personal fields sealed into ``sealed_inputs`` (and None in their
    own columns), the case reference's blind index in ``case_reference_index``, every other field as it is. Without
    a cipher nothing is stored: ``InputsUnavailable``."""
    if cipher is None:
        raise InputsUnavailable("this audit store was opened without the inputs key, so it cannot store a score")
    values = {name: getattr(row, name) for name in ScoreRow.__dataclass_fields__}
    payload = {name: values[name] for name in SEALED_FIELDS}
    values.update(dict.fromkeys(SEALED_FIELDS))
    try:
        values["sealed_inputs"] = cipher.seal(payload, row_id=row.id)
    except (TypeError, ValueError) as exc:  # NaN, infinity or a value JSON cannot hold: the row is refused
        raise ValueError(f"score {row.id}: its inputs are not plain JSON ({exc})") from None
    values["inputs_key"] = cipher.key_id
    reference = row.case_reference
    values["case_reference_index"] = None if reference is None else cipher.reference_index(reference)
    return values


def open_score(values: Mapping[str, Any], cipher: InputsCipher | None) -> ScoreRow:
    """A stored score row as a ``ScoreRow``, its sealed fields opened (rows stored before revision 0005 were not
    sealed and are read as they are; a reference stored before revision 0010 is in plain in its own column, and its
    row's sealed inputs do not hold it). Raises ``InputsUnavailable`` when they cannot be opened."""
    fields = {name: values[name] for name in ScoreRow.__dataclass_fields__}
    sealed = values.get("sealed_inputs")
    if sealed is not None:
        if cipher is None:
            raise InputsUnavailable("this audit store was opened without the inputs key: a score's inputs are sealed")
        opened = cipher.open(sealed, key_id=str(values["inputs_key"]), row_id=str(values["id"]))
        if opened.get("case_reference") is None:  # sealed before revision 0010, or none given: the plain column's
            opened.pop("case_reference", None)
        fields.update(opened)
    return ScoreRow(**fields)


def _retired_folder(path: Path) -> Path:
    return path.with_name(path.name + ".retired")


def load_inputs_cipher(path: Path) -> InputsCipher:
    """The cipher of the key at ``path`` (created, mode 0600, when missing) and of every retired key beside it.
    A key file that others may read is refused (ValueError naming it)."""
    current = load_or_create_key(path, what=_WHAT)
    folder = _retired_folder(path)
    retired = [load_or_create_key(p, what=f"retired {_WHAT}") for p in sorted(folder.glob("*.key"))]
    return InputsCipher(current, retired)


def rotate_inputs_key(path: Path) -> tuple[str, str]:
    """Retire the key at ``path`` (kept to open older rows) and create a new one; returns (old id, new id)."""
    old = load_or_create_key(path, what=_WHAT)
    folder = _retired_folder(path)
    folder.mkdir(mode=0o700, exist_ok=True)
    old_id = inputs_key_id(old[:_KEY_BYTES])
    retired = folder / f"{old_id}.key"
    if not retired.exists():
        os.link(path, retired)
    os.unlink(path)
    return old_id, inputs_key_id(load_or_create_key(path, what=_WHAT)[:_KEY_BYTES])

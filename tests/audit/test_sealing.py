"""Personal data at rest, on SQLite and PostgreSQL: a score's inputs are sealed under a key kept outside the store,
reproducing a score needs that key, the store's files and the key files are private to their owner."""

from __future__ import annotations

import json
import os
import secrets
import stat
from pathlib import Path

import pytest
from sqlalchemy import text

from audit import AuditStore, InputsCipher, InputsUnavailable, load_inputs_cipher, rotate_inputs_key
from audit.crypto import SEALED_FIELDS
from tests.audit.stores import INPUTS, make_score, raw_engine
from tests.audit.test_chain import triggers_off

# A child's age to the day and the days since the referral: with as_of they gave the exact birth and referral dates.
AGE, DAYS_OPEN = 7.341546885694729, 123.0


def _stored_text(url: str, score_id: str) -> str:
    engine = raw_engine(url)
    try:
        with engine.connect() as connection:
            row = connection.execute(text("SELECT * FROM scores WHERE id = :id"), {"id": score_id}).mappings().one()
    finally:
        engine.dispose()
    # The sealed blob is base64 of ciphertext: left out, since any short word may appear in it by chance.
    return json.dumps({k: str(v) for k, v in row.items() if k != "sealed_inputs"})


def test_stored_inputs_are_sealed_and_no_exact_value_is_kept(store: AuditStore, store_url: str) -> None:
    features = {"age_years": AGE, "days_open": DAYS_OPEN, "referral_source": "1B"}
    score = make_score(features=features, ethnic_group="WBRI",
                       what_ifs=[{"change": "completes the parenting programme", "probability": 0.2}],
                       warnings=["age_years is outside the training range"])  # fmt: skip
    store.save_scores([score])
    stored = _stored_text(store_url, score.id)
    # (Feature names are kept: which inputs were out of range, never their values.)
    for value in (repr(AGE), "7.34", "123.0", "WBRI", "days_open", "parenting", "training range", "1B"):
        assert value not in stored, f"{value!r} is stored in plain"
    engine = raw_engine(store_url)
    try:
        with engine.connect() as connection:
            found = connection.execute(
                text(f"SELECT {', '.join(SEALED_FIELDS)}, sealed_inputs, inputs_key FROM scores")
            ).one()
    finally:
        engine.dispose()
    assert all(value in (None, "null") for value in found[: len(SEALED_FIELDS)])
    assert found.inputs_key == INPUTS.key_id
    assert store.get_score(score.id) == score  # opened with the key, exactly


def test_reproducing_a_score_needs_the_key_that_sealed_it(store: AuditStore, store_url: str) -> None:
    score = make_score()
    store.save_scores([score])
    for inputs in (None, InputsCipher(secrets.token_bytes(32))):
        other = AuditStore(store_url, inputs=inputs)
        try:
            with pytest.raises(InputsUnavailable):
                other.get_score(score.id)
            if inputs is None:
                with pytest.raises(InputsUnavailable):
                    other.save_scores([make_score()])
            assert other.verify_chain().problems == []  # the chain needs no key
        finally:
            other.close()


def test_a_sealed_blob_moved_to_another_row_does_not_open(store: AuditStore, store_url: str) -> None:
    first, second = make_score(), make_score(probability=0.9)
    store.save_scores([first, second])
    with triggers_off(store_url) as connection:
        connection.execute(
            text("UPDATE scores SET sealed_inputs = (SELECT sealed_inputs FROM scores WHERE id = :a) WHERE id = :b"),
            {"a": first.id, "b": second.id},
        )
    with pytest.raises(InputsUnavailable, match="changed or moved"):
        store.get_score(second.id)
    assert any(second.id in problem and "changed" in problem for problem in store.verify_chain().problems)


def test_rotated_key_seals_new_rows_and_still_opens_old_ones(store_url: str, tmp_path: Path) -> None:
    path = tmp_path / "keys" / "inputs.key"
    store = AuditStore(store_url, inputs=load_inputs_cipher(path))
    old = make_score()
    store.save_scores([old])
    store.close()
    old_id, new_id = rotate_inputs_key(path)
    assert old_id != new_id
    assert stat.S_IMODE((path.parent / "inputs.key.retired" / f"{old_id}.key").stat().st_mode) == 0o600
    rotated = load_inputs_cipher(path)
    assert (rotated.key_id, rotated.key_ids) == (new_id, frozenset({old_id, new_id}))
    store = AuditStore(store_url, inputs=rotated)
    try:
        new = make_score()
        store.save_scores([new])
        assert (store.get_score(old.id), store.get_score(new.id)) == (old, new)
        assert store.verify_chain().problems == []
    finally:
        store.close()


def test_inputs_key_is_private_and_one_open_to_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "inputs.key"
    load_inputs_cipher(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    os.chmod(path, 0o644)
    with pytest.raises(ValueError, match="inputs key's mode is 0644"):
        load_inputs_cipher(path)


def test_a_new_sqlite_store_and_its_side_files_are_private(tmp_path: Path) -> None:
    os.umask(0o022)  # what a login shell gives: files would be 0644 unless created private
    store = AuditStore(f"sqlite:///{tmp_path / 'audit.db'}", inputs=INPUTS)
    try:
        store.migrate()
        store.save_scores([make_score()])
        files = sorted(tmp_path.glob("audit.db*"))
        assert {p.name for p in files} >= {"audit.db", "audit.db-wal", "audit.db-shm", "audit.db-writer.lock"}
        assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {p.name: "0o600" for p in files}
    finally:
        store.close()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("where", ["features", "reasons", "what_ifs"])
def test_a_non_finite_input_anywhere_is_refused_not_written_as_null(bad: float, where: str) -> None:
    """The sealed JSON is written by orjson, which writes NaN as null: the cipher refuses it instead, as the
    standard encoder with ``allow_nan=False`` did, wherever it sits."""
    payload: dict[str, object] = {"features": {"age_years": 4.5}, "reasons": [], "what_ifs": [], "warnings": []}
    if where == "features":
        payload["features"] = {"age_years": 4.5, "days_open": bad}
    else:
        payload[where] = [{"feature": "x", "contribution": 0.1}, {"feature": "y", "contribution": (1.0, bad)}]
    with pytest.raises(ValueError, match="finite"):
        INPUTS.seal(payload, row_id="r1")


def test_sealed_inputs_open_to_the_values_the_standard_encoder_would_have_written() -> None:
    import numpy as np

    payload = {
        "features": {"age_years": 4.731006160164271, "sex": "M", "tiny": 1e-05, "big": 1e21, "none": None},
        "reasons": [{"feature": "é\u202e", "contribution": np.float64(-0.25), "value": 3}],
        "what_ifs": [],
        "warnings": ["Not recorded"],
        "ethnic_group": "WBRI",
    }
    opened = INPUTS.open(INPUTS.seal(payload, row_id="r2"), key_id=INPUTS.key_id, row_id="r2")
    assert opened == json.loads(json.dumps(payload, default=float))
    with pytest.raises(TypeError):
        INPUTS.seal({"features": {"when": __import__("datetime").date(2024, 1, 1)}}, row_id="r3")


def test_a_non_finite_value_inside_a_container_subclass_is_refused() -> None:
    from collections import OrderedDict

    with pytest.raises(ValueError, match="finite"):
        INPUTS.seal({"features": OrderedDict(days_open=float("nan"))}, row_id="r4")

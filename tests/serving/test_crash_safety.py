"""Crash safety: the real server (uvicorn, its own process) killed with SIGKILL under load loses nothing it answered.

Threads score single cases and batches and record decisions concurrently; when enough answers are in, the server is
killed mid-load. Then, on the same database: every score and decision a client got an answer for is in the audit
store, every row is whole, every request's scores are all there or none is (one transaction per request), the
schema is at the newest migration and the store opens and migrates cleanly, and the restarted server serves the
stored scores and scores again. Bounded: a fixed number of answers, loopback only, SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from audit import AuditStore, load_inputs_cipher
from audit.tables import alembic_config
from features import ChildRecord, Role
from tests.audit.stores import postgres_database, raw_engine

AS_OF = dt.date(2025, 3, 31)
ANSWERS_BEFORE_KILL = 40  # scores answered before the kill; with threads still sending when it lands
THREADS = 6
BATCH = 3
LOAD_DEADLINE_S = 120  # bounds the run on a slow machine; nothing is asserted about time


@pytest.fixture(params=["sqlite", "postgresql"])
def crash_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of its own (the server and this test both write to it)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/audit.db"
        return
    with postgres_database(request.getfixturevalue("postgres_admin")) as url:
        yield url


@dataclass
class Ledger:
    """What the clients sent and what they were told, shared by the load threads."""

    sizes: dict[str, int] = field(default_factory=dict)  # request id -> cases sent
    scores: dict[str, float] = field(default_factory=dict)  # score id answered -> probability answered
    decisions: dict[str, str] = field(default_factory=dict)  # decision id answered -> score id
    unanswered: int = 0  # requests cut off by the kill
    other: list[str] = field(default_factory=list)  # any answer that is not a success
    lock: threading.Lock = field(default_factory=threading.Lock)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start(env: dict[str, str], folder: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    command = [sys.executable, "-m", "uvicorn", "--factory", "serving.app:create_app", "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "info"]  # fmt: skip
    with log.open("ab") as out:
        server = subprocess.Popen(command, env=env, cwd=folder, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if server.poll() is not None:
            pytest.fail(f"the server exited with {server.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return server, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.kill()
    pytest.fail("the server did not become ready")


def _load(url: str, keys: dict[str, str], bodies: list[dict[str, Any]], ledger: Ledger, stop: threading.Event) -> None:
    """Score, batch-score and decide until told to stop or the server goes away."""
    rng = random.Random(threading.get_ident())
    system = {"Authorization": f"Bearer {keys['system']}"}
    manager = {"Authorization": f"Bearer {keys['manager']}"}
    with httpx.Client(base_url=url, timeout=30) as client:
        while not stop.is_set():
            request_id = uuid.uuid4().hex
            try:
                with ledger.lock:
                    undecided = [s for s in ledger.scores if s not in ledger.decisions.values()]
                if undecided and rng.random() < 0.25:
                    score_id = rng.choice(undecided)
                    body = {"decision": rng.choice(["close", "keep_open"]), "reason": "crash safety test"}
                    response = client.post(f"/v1/scores/{score_id}/decision", json=body, headers=manager)
                    with ledger.lock:
                        if response.status_code == 201:
                            ledger.decisions[response.json()["decision_id"]] = score_id
                        elif response.status_code != 409:  # another thread decided it first
                            ledger.other.append(f"decision {response.status_code}: {response.text[:200]}")
                    continue
                size = BATCH if rng.random() < 0.3 else 1
                cases = rng.sample(bodies, size)
                with ledger.lock:
                    ledger.sizes[request_id] = size
                headers = {**system, "X-Request-ID": request_id}
                if size == 1:
                    response = client.post("/v1/score", json=cases[0], headers=headers)
                    answered = [response.json()] if response.status_code == 200 else []
                else:
                    response = client.post("/v1/score/batch", json={"cases": cases}, headers=headers)
                    answered = response.json()["scores"] if response.status_code == 200 else []
                with ledger.lock:
                    if response.status_code != 200:
                        ledger.other.append(f"score {response.status_code}: {response.text[:200]}")
                    for score in answered:
                        ledger.scores[score["score_id"]] = score["probability"]
            except httpx.TransportError:
                with ledger.lock:
                    ledger.unanswered += 1
                return


def _rows(engine: Engine, sql: str) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(text(sql)))


def test_sigkill_under_load_loses_no_answered_score_or_decision(
    crash_database: str, bundle: Path, open_records: list[ChildRecord], tmp_path: Path
) -> None:
    url_db = crash_database
    store = AuditStore(url_db)
    store.migrate()
    keys = {role: store.create_key(name=f"crash-{role}", role=Role(role))[0] for role in ("system", "manager")}
    store.close()
    env = {
        **os.environ,
        "CCR_MODEL_URI": str(bundle),
        "CCR_DATABASE_URL": url_db,
        "CCR_PSEUDONYM_KEY_FILE": str(tmp_path / "pseudonym.key"),
    }
    log = tmp_path / "server.log"
    bodies = [
        {"record": json.loads(r.model_dump_json(exclude_none=True)), "as_of": AS_OF.isoformat()}
        for r in open_records[:30]
    ]

    server, url = _start(env, tmp_path, log)
    ledger, stop = Ledger(), threading.Event()
    threads = [threading.Thread(target=_load, args=(url, keys, bodies, ledger, stop)) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + LOAD_DEADLINE_S
    try:
        while time.monotonic() < deadline:
            with ledger.lock:
                if len(ledger.scores) >= ANSWERS_BEFORE_KILL and ledger.decisions:
                    break
            time.sleep(0.02)
        os.kill(server.pid, signal.SIGKILL)  # mid-load: the threads are still sending
        server.wait(timeout=30)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        if server.poll() is None:
            server.kill()
    assert server.returncode == -signal.SIGKILL
    assert not ledger.other, ledger.other[:5]
    assert len(ledger.scores) >= ANSWERS_BEFORE_KILL, "too few answers before the deadline to test anything"
    assert ledger.decisions

    # The database as the killed server left it: at the newest migration, and it opens and migrates cleanly.
    engine = raw_engine(url_db)
    try:
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert [row[0] for row in _rows(engine, "SELECT version_num FROM alembic_version")] == [head]
        if url_db.startswith("sqlite"):
            assert _rows(engine, "PRAGMA integrity_check") == [("ok",)]
            assert _rows(engine, "PRAGMA foreign_key_check") == []
        nulls = _rows(
            engine,
            "SELECT count(*) FROM scores WHERE id IS NULL OR created_at IS NULL OR caller IS NULL OR request_id IS NULL"
            " OR model_name IS NULL OR model_version IS NULL OR case_id IS NULL OR as_of IS NULL OR probability IS NULL"
            " OR band IS NULL OR raw_score IS NULL OR base_value IS NULL OR in_scope IS NULL"
            " OR out_of_distribution IS NULL OR features IS NULL OR reasons IS NULL",
        )
        assert nulls == [(0,)], "a score row is partly written"
        per_request = dict(_rows(engine, "SELECT request_id, count(*) FROM scores GROUP BY request_id"))
    finally:
        engine.dispose()
    for request_id, count in per_request.items():
        assert count == ledger.sizes[request_id], f"request {request_id}: {count} of {ledger.sizes[request_id]} stored"
    # The inputs key the service made beside its pseudonym key: the stored inputs open only with it.
    store = AuditStore(url_db, inputs=load_inputs_cipher(tmp_path / "inputs.key"))
    try:
        store.migrate()
        for score_id, probability in ledger.scores.items():
            row = store.get_score(score_id)
            assert row is not None, f"score {score_id} was answered but is not in the audit store"
            assert row.probability == probability
            assert row.features
            assert len(row.reasons) == len(row.features)  # every feature's contribution, not a cut-down list
        for decision_id, score_id in ledger.decisions.items():
            assert decision_id in {d.id for d in store.decisions(score_id)}, f"decision {decision_id} lost"
    finally:
        store.close()

    # The restarted server serves what was stored and scores again.
    server, url = _start(env, tmp_path, log)
    try:
        some_score = next(iter(ledger.scores))
        stored = httpx.get(f"{url}/v1/scores/{some_score}", headers={"Authorization": f"Bearer {keys['manager']}"})
        assert stored.status_code == 200
        assert stored.json()["probability"] == ledger.scores[some_score]
        again = httpx.post(f"{url}/v1/score", json=bodies[0], headers={"Authorization": f"Bearer {keys['system']}"})
        assert again.status_code == 200, again.text
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    logged = log.read_text(errors="replace")
    assert "Application startup complete" in logged
    for secret in [*keys.values(), *(r.la_child_id for r in open_records[:30])]:
        assert secret not in logged, "a key or a child's id reached the server's log"
    print(
        f"\ncrash safety ({url_db.split(':')[0]}): {len(ledger.scores)} scores and {len(ledger.decisions)} decisions "
        f"answered before SIGKILL, {ledger.unanswered} requests cut off, {sum(per_request.values())} scores stored; "
        "lost: 0"
    )

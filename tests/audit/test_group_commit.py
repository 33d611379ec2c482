"""Group commit on SQLite and PostgreSQL: concurrent writes share a transaction, return only once it is committed,
and fail only for their own rows."""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from audit import AuditStore, ScoreRow, StoreError
from features import Band
from tests.audit.stores import INPUTS, count_rows, make_score, raw_engine


@contextmanager
def writes_blocked(store_url: str) -> Iterator[None]:
    """Hold back every score write on the database until the block is left (the writer lock, or a table lock)."""
    if store_url.startswith("sqlite"):
        fd = os.open(f"{store_url.removeprefix('sqlite:///')}-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        return
    engine = raw_engine(store_url)
    with engine.connect() as connection, connection.begin():
        connection.exec_driver_sql("LOCK TABLE scores IN EXCLUSIVE MODE")
        yield
    engine.dispose()


def _queued(store: AuditStore, count: int) -> None:
    """Wait until ``count`` writes wait in the store's queue (no clock in the assertion: it only waits)."""
    for _ in range(3000):
        if store._group_commit.waiting == count:
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"{count} writes were never queued")


def _taken(store: AuditStore, transactions: int) -> None:
    """Wait until the writer has begun transaction number ``transactions`` (no clock in the assertion)."""
    for _ in range(3000):
        if store._group_commit.transactions >= transactions:
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"the writer never began transaction {transactions}")


def _start_behind_a_blocked_write(store: AuditStore, threads: list[threading.Thread]) -> None:
    """The first thread's write is taken by the writer, which then waits on the block; the others queue behind.
    (Waiting for an empty queue alone would race: it is empty before the first thread has handed its write over.)"""
    began = store._group_commit.transactions
    threads[0].start()
    _taken(store, began + 1)
    _queued(store, 0)
    for thread in threads[1:]:
        thread.start()
    _queued(store, len(threads) - 1)


def test_save_scores_concurrent_calls_share_a_commit_and_return_only_once_committed(
    store: AuditStore, store_url: str
) -> None:
    before = store._group_commit.transactions
    rows = [make_score() for _ in range(6)]
    returned: list[str] = []

    def save(row: ScoreRow) -> None:
        store.save_scores([row])
        returned.append(row.id)

    with writes_blocked(store_url):
        threads = [threading.Thread(target=save, args=(row,)) for row in rows]
        _start_behind_a_blocked_write(store, threads)
        assert returned == []  # nobody is told "saved" before the commit
    for thread in threads:
        thread.join()
    # the first alone, then the five queued behind it in one transaction
    assert store._group_commit.transactions - before == 2
    assert sorted(returned) == sorted(r.id for r in rows)
    assert all(store.get_score(r.id) is not None for r in rows)


def test_save_scores_a_failing_request_in_a_group_fails_alone(store: AuditStore, store_url: str) -> None:
    stored = make_score()
    store.save_scores([stored])
    good = [make_score() for _ in range(3)]
    outcome: dict[str, str] = {}

    def save(name: str, rows: list[ScoreRow]) -> None:
        try:
            store.save_scores(rows)
            outcome[name] = "saved"
        except StoreError:
            outcome[name] = "refused"

    with writes_blocked(store_url):
        jobs = [("first", [make_score()]), ("clash", [make_score(), dataclasses.replace(stored, band=Band.HIGH)])]
        jobs += [(f"good{i}", [row]) for i, row in enumerate(good)]
        threads = [threading.Thread(target=save, args=job) for job in jobs]
        _start_behind_a_blocked_write(store, threads)
    for thread in threads:
        thread.join()
    assert outcome == {"first": "saved", "clash": "refused", "good0": "saved", "good1": "saved", "good2": "saved"}
    assert count_rows(store_url, "scores") == 5  # the stored one, first, and the three good ones


def test_close_finishes_the_writes_handed_over(store_url: str) -> None:
    store = AuditStore(store_url, inputs=INPUTS)
    rows = [make_score() for _ in range(4)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda r: store.save_scores([r]), rows))
    store.close()
    assert count_rows(store_url, "scores") == 4


def test_save_scores_async_returns_once_committed_and_shares_the_writer(store: AuditStore, store_url: str) -> None:
    """A coroutine's rows go through the same writer: its future is settled only after the commit, and a refused
    row fails its own caller only."""
    rows = [make_score() for _ in range(4)]
    clash = dataclasses.replace(rows[1], case_id="another")  # the same id: refused by the primary key

    async def main() -> list[BaseException | None]:
        saved = await asyncio.gather(*(store.save_scores_async([row]) for row in rows), return_exceptions=True)
        refused = await asyncio.gather(store.save_scores_async([clash]), return_exceptions=True)
        return [*saved, *refused]

    outcomes = asyncio.run(main())
    assert outcomes[:4] == [None] * 4
    assert isinstance(outcomes[4], StoreError)
    assert all(store.get_score(r.id) is not None for r in rows)
    assert count_rows(store_url, "scores") == 4

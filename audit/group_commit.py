"""Group commit: many threads hand their rows to one writer thread, which writes everything handed over while the
previous commit was being flushed in one transaction and wakes the threads only once it is committed.

So a row is still committed before its caller returns, and one disk flush serves many callers. A group that fails
is retried caller by caller, so a caller fails only for its own rows. On SQLite, writers of every process on the
same file queue on an exclusive file lock (``<file>-writer.lock``, :class:`WriterLock`) rather than polling
SQLite's busy timeout, which sleeps in steps of up to 100 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Generic, TypeVar

__all__ = ["GroupCommit", "WriterLock"]

RowT = TypeVar("RowT")


class _Pending(Generic[RowT]):
    """Rows handed to the writer thread, and what became of them: a thread waits on ``done``; a coroutine on its
    future, which the writer thread settles through the event loop."""

    __slots__ = ("done", "error", "future", "loop", "rows")

    def __init__(self, rows: Sequence[RowT], loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.rows = rows
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.loop = loop
        self.future: asyncio.Future[None] | None = loop.create_future() if loop is not None else None

    def settle(self) -> None:
        self.done.set()
        if self.loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
                self.loop.call_soon_threadsafe(self._settle_future)

    def _settle_future(self) -> None:
        future = self.future
        if future is None or future.done():  # cancelled: its caller has gone (the rows were still written)
            return
        if self.error is not None:
            future.set_exception(self.error)
        else:
            future.set_result(None)


class GroupCommit(Generic[RowT]):
    """One writer thread, started on the first hand-over, that calls ``write`` (one transaction) per group."""

    def __init__(self, write: Callable[[Sequence[RowT]], None], *, name: str) -> None:
        self._write = write
        self._name = name
        self._pending: queue.SimpleQueue[_Pending[RowT] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.transactions = 0  # how many times ``write`` was called: one transaction each

    @property
    def waiting(self) -> int:
        """How many hand-overs wait for the writer thread to take them."""
        return self._pending.qsize()

    def write(self, rows: Sequence[RowT]) -> None:
        """Write ``rows`` in the writer's next transaction: returns once it is committed, or raises what failed."""
        pending = _Pending(rows)
        self._pending.put(pending)
        if self._thread is None:
            self._start()
        pending.done.wait()
        if pending.error is not None:
            raise pending.error

    async def write_async(self, rows: Sequence[RowT]) -> None:
        """``write`` for a coroutine: the event loop runs on while the writer commits the group."""
        pending = _Pending(rows, asyncio.get_running_loop())
        self._pending.put(pending)
        if self._thread is None:
            self._start()
        assert pending.future is not None
        await asyncio.shield(pending.future)  # a cancelled caller does not undo or hide the write

    def close(self) -> None:
        """Finish the writes handed over and stop the writer thread (a later write starts a new one)."""
        with self._start_lock:
            if self._thread is not None:
                self._pending.put(None)
                self._thread.join()
                self._thread = None

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._write_groups, name=self._name, daemon=True)
                self._thread.start()

    def _write_groups(self) -> None:
        """The writer thread: everything queued while the last commit was flushed goes in the next transaction."""
        stopping = False
        while not stopping:
            first = self._pending.get()
            if first is None:
                return
            group = [first]
            while True:
                try:
                    more = self._pending.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                group.append(more)
            try:
                self.transactions += 1
                self._write([row for pending in group for row in pending.rows])
            except BaseException as exc:  # handed to the waiting callers: none of them may take it for success
                if len(group) == 1:
                    group[0].error = exc
                else:  # one caller's rows must not fail the others': each alone, in its own transaction
                    for pending in group:
                        try:
                            self.transactions += 1
                            self._write(pending.rows)
                        except BaseException as own:
                            pending.error = own
            finally:
                for pending in group:
                    pending.settle()


class WriterLock:
    """Writers of every process and thread on one SQLite file, one at a time: a thread lock, then a file lock."""

    def __init__(self, database: str) -> None:
        self._path = f"{database}-writer.lock"
        self._threads = threading.Lock()
        self._fd: int | None = None

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._threads:
            if self._fd is None:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._threads:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

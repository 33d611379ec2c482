"""Group commit: many threads hand their rows to one writer thread, which writes everything handed over while the
previous commit was being flushed in one transaction and wakes the threads only once it is committed.

So a row is still committed before its caller returns, and one disk flush serves many callers. A group that fails
is retried caller by caller, so a caller fails only for its own rows. On SQLite, writers of every process on the
same file queue on an exclusive file lock (``<file>-writer.lock``, :class:`WriterLock`) rather than polling
SQLite's busy timeout, which sleeps in steps of up to 100 ms.
"""

from __future__ import annotations

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
    """Rows handed to the writer thread, and what became of them."""

    __slots__ = ("done", "error", "rows")

    def __init__(self, rows: Sequence[RowT]) -> None:
        self.rows = rows
        self.done = threading.Event()
        self.error: BaseException | None = None


class GroupCommit(Generic[RowT]):
    """One writer thread, started on the first hand-over, that calls ``write`` (one transaction) per group."""

    def __init__(self, write: Callable[[Sequence[RowT]], None], *, name: str) -> None:
        self._write = write
        self._name = name
        self._pending: queue.SimpleQueue[_Pending[RowT] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

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
                self._write([row for pending in group for row in pending.rows])
            except BaseException as exc:  # handed to the waiting callers: none of them may take it for success
                if len(group) == 1:
                    group[0].error = exc
                else:  # one caller's rows must not fail the others': each alone, in its own transaction
                    for pending in group:
                        try:
                            self._write(pending.rows)
                        except BaseException as own:
                            pending.error = own
            finally:
                for pending in group:
                    pending.done.set()


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

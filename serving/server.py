"""Running the service under uvicorn with timeouts for idle, slow and half-sent connections.

uvicorn closes a keep-alive connection left idle after a response (``timeout_keep_alive``), but a connection that
never sends a byte, or sends its request line and headers a byte at a time, is kept open for ever. The protocol here
gives every request ``header_timeout_s`` from the connection's start (or the previous response) to finish its
headers, and the app's ``BodyLimits`` gives a body ``body_timeout_s`` between chunks (408 after that).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from serving.settings import ServingSettings, get_settings

__all__ = ["GuardedProtocol", "run", "uvicorn_options"]


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for each request's headers (``CCR_HEADER_TIMEOUT_S``). Named by
    import path in uvicorn's options, so worker processes import it rather than receive it."""

    header_timeout_s: float | None = None  # None: the settings'

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._timeout_s = type(self).header_timeout_s or get_settings().header_timeout_s
        super().connection_made(transport)
        self._headers_due: asyncio.TimerHandle | None = self.loop.call_later(self._timeout_s, self._late)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._headers_due is None:
            self._headers_due = self.loop.call_later(self._timeout_s, self._late)

    def on_headers_complete(self) -> None:
        self._cancel()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._headers_due is None and not self.transport.is_closing():  # the next request's headers are due too
            self._headers_due = self.loop.call_later(self._timeout_s, self._late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def _cancel(self) -> None:
        if self._headers_due is not None:
            self._headers_due.cancel()
            self._headers_due = None

    def _late(self) -> None:
        self._headers_due = None  # the headers never came (their completion cancels this)
        if not self.transport.is_closing():
            self.transport.close()


def uvicorn_options(settings: ServingSettings) -> dict[str, Any]:
    """The timeouts as uvicorn's options."""
    return {
        "http": "serving.server:GuardedProtocol",
        "timeout_keep_alive": max(1, round(settings.idle_timeout_s)),
    }


def run(*, host: str, port: int, workers: int, log_level: str = "info") -> None:
    """Serve ``serving.app:create_app`` with the timeouts of the settings."""
    uvicorn.run(
        "serving.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
        **uvicorn_options(get_settings()),
    )


if __name__ == "__main__":  # python -m serving.server: what the benchmarks start
    parser = argparse.ArgumentParser(description="serve the API with its timeouts")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--log-level", default="warning")
    options = parser.parse_args()
    run(host=options.host, port=options.port, workers=options.workers, log_level=options.log_level)

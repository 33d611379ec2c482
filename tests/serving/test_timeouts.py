"""Timeouts for slow, half-sent and idle connections: none holds the service for ever."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import uvicorn
from fastapi.testclient import TestClient

from features import Role
from serving.app import create_app
from serving.server import GuardedProtocol
from serving.settings import ServingSettings


def _settings(bundle: Path, tmp_path: Path) -> ServingSettings:
    return ServingSettings(model_uri=str(bundle), database_url=f"sqlite:///{tmp_path}/audit.db",
                           pseudonym_key_file=str(tmp_path / "pseudonym.key"), body_timeout_s=0.5)  # fmt: skip


def test_a_half_sent_body_is_answered_408(bundle: Path, tmp_path: Path) -> None:
    with TestClient(create_app(_settings(bundle, tmp_path))) as client:
        key, _ = client.app.state.store.create_key(name="slow", role=Role.SYSTEM)  # type: ignore[attr-defined]
        parts = [{"type": "http.request", "body": b'{"record": ', "more_body": True}]
        answered: list[int] = []

        async def receive() -> dict[str, Any]:
            if parts:
                return parts.pop()
            await asyncio.sleep(3600)  # the rest never comes
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answered.append(message["status"])

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": "/v1/score", "raw_path": b"/v1/score", "query_string": b"",
                 "root_path": "", "client": ("203.0.113.7", 5000), "server": ("testserver", 80),
                 "headers": [(b"content-type", b"application/json"), (b"content-length", b"5000"),
                             (b"authorization", f"Bearer {key}".encode())]}  # fmt: skip
        asyncio.run(asyncio.wait_for(client.app(scope, receive, send), timeout=30))
        assert answered == [408]


def _serve(app: Any, protocol: type) -> tuple[uvicorn.Server, threading.Thread, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", http=protocol))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive()
        time.sleep(0.05)
    return server, thread, port


def _closed_within(port: int, sent: bytes, seconds: float) -> bool:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(seconds)
        if sent:
            sock.sendall(sent)
        try:
            return sock.recv(1024) == b""
        except TimeoutError:
            return False


def test_connections_that_never_finish_their_headers_are_closed(bundle: Path, tmp_path: Path) -> None:
    quick = type("Quick", (GuardedProtocol,), {"header_timeout_s": 0.5})
    server, thread, port = _serve(create_app(_settings(bundle, tmp_path)), quick)
    try:
        assert _closed_within(port, b"", 10)  # silent from the start
        assert _closed_within(port, b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-", 10)  # headers cut short
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:  # a complete request is answered
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(1024).startswith(b"HTTP/1.1 200")
    finally:
        server.should_exit = True
        thread.join(timeout=30)

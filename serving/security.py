"""Security headers on every response, and CORS only where ``CCR_CORS_ORIGINS`` opens it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

__all__ = ["CONTENT_SECURITY_POLICY", "NO_CSP_PATHS", "STATIC_PREFIX", "SecurityHeaders"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
NO_CSP_PATHS: Final = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
STATIC_PREFIX: Final = "/v1/ui/static/"
_ALWAYS: Final = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)


class SecurityHeaders:
    """Pure ASGI middleware (it wraps ``send`` only): the headers are added to whatever the app answers.

    Every response gets ``X-Content-Type-Options``, ``Referrer-Policy`` and ``X-Frame-Options``; every response that may
    carry case data (everything but static assets) gets ``Cache-Control: no-store``, so no browser or proxy keeps a
    copy; every HTML page gets a strict Content-Security-Policy (no script, styles and images from the service only,
    forms post back to it, never framed). FastAPI's ``/docs`` and ``/redoc`` load their scripts from a CDN, so they are
    left without a CSP: they describe the API and hold no case data.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[tuple[bytes, bytes]] = list(message.get("headers") or [])
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in _ALWAYS if name not in present]
                if b"cache-control" not in present and not path.startswith(STATIC_PREFIX):
                    headers.append((b"cache-control", b"no-store"))
                content_type = next((v for n, v in headers if n.lower() == b"content-type"), b"")
                if content_type.lower().startswith(b"text/html") and path not in NO_CSP_PATHS:
                    headers = [(n, v) for n, v in headers if n.lower() != b"content-security-policy"]
                    headers.append((b"content-security-policy", CONTENT_SECURITY_POLICY.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)

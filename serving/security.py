"""Security headers on every response, CORS only where ``CCR_CORS_ORIGINS`` opens it, validation errors that
echo no value, and unexpected errors logged without their messages (which may quote a request's values)."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import traceback
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final, get_args

from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic_core.core_schema import ErrorType

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "NO_CSP_PATHS",
    "STATIC_PREFIX",
    "QuietErrors",
    "SecurityHeaders",
    "security_event",
    "validation_errors",
    "validation_response",
]

log = logging.getLogger("case_closure_risk.serving")
security_log = logging.getLogger("case_closure_risk.security")


def security_event(event: str, **fields: str | None) -> None:
    """One structured line (JSON) per security event: failed sign-ins and key checks, key changes, reloads. Keys are
    named by id, never by name or value; no client address, no case data."""
    security_log.info("security %s", json.dumps({"event": event, **fields}, sort_keys=True))


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


# The record's own rules word their messages for a data officer and quote the dates they compare; an API answer
# (which a caller may log) names the field and the rule without them.
_QUOTED_DATE = re.compile(r"\s*\([^()]*\d{4}-\d{2}-\d{2}[^()]*\)")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# pydantic's own rules, whose messages and ``ctx`` hold limits, never values ("value_error" carries a validator's text).
_PYDANTIC_TYPES: Final = frozenset(get_args(ErrorType)) - {"value_error", "assertion_error"}


def _unquoted(message: str) -> str:
    return _DATE.sub("the date given", _QUOTED_DATE.sub("", message))


def validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Each error's place, rule and message, never the value it was given (pydantic's ``input`` would echo a child's
    data, and a ``NaN`` or ``Infinity`` there cannot even be written as JSON); ``ctx`` only when it is plain JSON and
    the rule is pydantic's own (its limits, never a value); the record's rules' messages without the dates they
    quote."""
    errors: list[dict[str, Any]] = []
    for error in exc.errors():
        own = error["type"] in _PYDANTIC_TYPES
        message = error["msg"] if own else _unquoted(error["msg"])
        out: dict[str, Any] = {"type": error["type"], "loc": list(error["loc"]), "msg": message}
        given = error.get("input")
        if isinstance(given, float) and not math.isfinite(given):
            out["type"], out["msg"] = "finite_number", "NaN and Infinity are not allowed: send null or a number"
        elif "ctx" in error and own:
            with contextlib.suppress(TypeError, ValueError):
                out["ctx"] = json.loads(json.dumps(jsonable_encoder(error["ctx"]), allow_nan=False))
        errors.append(out)
    return errors


def validation_response(exc: RequestValidationError) -> JSONResponse:
    return JSONResponse({"detail": validation_errors(exc)}, status_code=422)


class QuietErrors:
    """Pure ASGI middleware inside Starlette's error middleware: an exception no handler took is logged as its type,
    the route and the stack's frames, never its message or its chain's (a validation error's text quotes every
    value of the body, unknown fields included), and answered with a plain 500. It is not raised further, so the
    server's own traceback log (which prints the messages) never sees it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as exc:
            route = getattr(scope.get("route"), "path", "unmatched")
            frames = "".join(traceback.format_list(traceback.extract_tb(exc.__traceback__)))
            log.error("unhandled %s on %s %s\n%s", type(exc).__name__, scope.get("method"), route, frames)
            if not started:
                await JSONResponse({"detail": "internal error: it is logged; try again"}, status_code=500)(
                    scope, receive, send
                )

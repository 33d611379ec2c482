"""API keys checked before any work: an in-memory cache of verified keys that a revocation on any worker empties at
once, a limit on failed attempts per client (429 with ``Retry-After``), and a gate that refuses a request for want
of a key before its body is read."""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

from fastapi import HTTPException, status
from fastapi.responses import JSONResponse

from audit import ApiKey, AuditStore, StoreError
from serving.security import security_event

__all__ = ["GATED_PREFIXES", "MODEL_GENERATION", "AuthGate", "FailureLimiter", "KeyCache", "authenticate", "bearer_key"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The API routes that take a key (the pages under /v1/ui sign in with a session instead).
GATED_PREFIXES: Final = ("/v1/score", "/v1/scores/", "/v1/admin/", "/v1/model")
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
NO_KEY: Final = "an API key is required: Authorization: Bearer <key>"
BAD_KEY: Final = "the API key is not valid or has been revoked"
MODEL_GENERATION: Final = "model_generation"  # the request state's key: the latest model reload seen at the key check
STORE_DOWN: Final = "the audit store cannot be reached or written just now, so nothing was done or recorded; try again"


class KeyCache:
    """Keys verified against the store, kept by digest while the store's key generation stays the same.

    The generation (the count of revocations, only ever appended) is read on every check: one plain SELECT, so a
    revocation made through any worker or the command line is seen by the very next request on every worker, and
    the cache is emptied. The same SELECT reads the latest model reload's generation, which the request then follows
    (``serving.reloads``). Unknown keys are not cached (the failure limit deals with guessing)."""

    def __init__(self, store: Callable[[], AuditStore], *, size: int = 1024) -> None:
        self._store = store  # the store being served (looked up each time: the app's may be replaced)
        self._size = size
        self._keys: dict[str, ApiKey] = {}
        self._generation: tuple[int, int] | None = None
        self._lock = threading.Lock()

    def verify(self, plaintext: str) -> ApiKey | None:
        """The key's record when valid and not revoked, else None; StoreError when the store cannot answer."""
        return self.check(plaintext)[0]

    def check(self, plaintext: str) -> tuple[ApiKey | None, int]:
        """``verify``'s answer, and the latest model reload's generation read with it (0 for an empty key)."""
        if not plaintext:
            return None, 0
        store = self._store()
        generations = store.generations()
        return self._verify(store, plaintext, (id(store), generations.keys)), generations.models

    def _verify(self, store: AuditStore, plaintext: str, generation: tuple[int, int]) -> ApiKey | None:
        digest = hashlib.sha256(plaintext.encode("utf-8")).hexdigest()
        with self._lock:
            if generation != self._generation:
                self._keys.clear()
                self._generation = generation
            key = self._keys.get(digest)
        if key is not None:
            return key
        key = store.verify_key(plaintext)
        if key is not None:
            with self._lock:
                if self._generation == generation and len(self._keys) < self._size:
                    self._keys[digest] = key
        return key


class FailureLimiter:
    """At most ``limit`` refused keys per client in ``window_s`` seconds; past that the client is answered 429
    until its oldest failure leaves the window. Kept per worker process, for at most ``clients`` clients."""

    def __init__(self, *, limit: int, window_s: float, clients: int = 10_000) -> None:
        self.limit, self.window_s, self._clients = limit, window_s, clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> int | None:
        """Seconds until this client may try again, or None when it may now."""
        now = time.monotonic()
        with self._lock:
            failures = self._failures.get(client)
            if failures is None:
                return None
            while failures and failures[0] <= now - self.window_s:
                failures.popleft()
            if len(failures) < self.limit:
                return None
            return max(1, math.ceil(failures[0] + self.window_s - now))

    def failed(self, client: str) -> None:
        with self._lock:
            failures = self._failures.pop(client, None) or deque()
            failures.append(time.monotonic())
            self._failures[client] = failures  # most recent last: the oldest client is dropped first
            if len(self._failures) > self._clients:
                self._failures.popitem(last=False)


def bearer_key(scope: Scope) -> str | None:
    """The key of an ``Authorization: Bearer`` header, or None."""
    for name, value in scope.get("headers") or ():
        if name == b"authorization":
            scheme, _, key = value.decode("latin-1").partition(" ")
            return key.strip() if scheme.lower() == "bearer" and key.strip() else None
    return None


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def authenticate(scope: Scope, keys: KeyCache, limiter: FailureLimiter) -> ApiKey:
    """The caller's verified key, or the HTTPException to answer (401, 429 or 503). A refused key counts against
    the client; a client past the limit is refused before its key is even looked at."""
    client = _client(scope)
    wait = limiter.retry_after(client)
    if wait is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many refused API keys from this client: try again in {wait} seconds",
            headers={"Retry-After": str(wait)},
        )
    plaintext = bearer_key(scope)
    if plaintext is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, NO_KEY, headers={"WWW-Authenticate": "Bearer"})
    try:
        key, model_generation = keys.check(plaintext)
    except StoreError:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, STORE_DOWN, headers={"Retry-After": "5"}) from None
    if key is None:
        limiter.failed(client)
        route = scope.get("route")
        security_event("key_refused", method=scope.get("method"), route=getattr(route, "path", None))
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, BAD_KEY, headers={"WWW-Authenticate": "Bearer"})
    scope.setdefault("state", {})[MODEL_GENERATION] = model_generation
    return key


class AuthGate:
    """Pure ASGI middleware: a request with a body to an API route is refused for want of a valid key before a byte
    of its body is read (so a keyless 15 MB upload costs microseconds), and the verified key is left in the request's
    state for the route's own check. Requests without a body are checked by the routes' dependency, as before."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") not in _BODY_METHODS
            or not scope.get("path", "").startswith(GATED_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        try:
            key = authenticate(scope, state.keys, state.failures)
        except HTTPException as refusal:
            # The connection is closed after the refusal: the body it did not read is never parsed either (kept
            # open, the server would read and discard a 15 MB upload to reuse the connection).
            headers = {**(refusal.headers or {}), "Connection": "close"}
            response = JSONResponse({"detail": refusal.detail}, refusal.status_code, headers=headers)
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["caller"] = key
        await self.app(scope, receive, send)

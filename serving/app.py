"""The FastAPI application: ``create_app()`` builds it; the model and the store open in the lifespan."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from audit import AuditStore, Pseudonymiser, StoreError, load_or_create_key
from models.registry import load_model_uri, use_store
from serving.auth import AuthGate, FailureLimiter, KeyCache
from serving.deps import ModelHolder, start_store
from serving.front import install_front_door
from serving.metrics import ServiceMetrics
from serving.routers import admin, model, operations, review, rights, scores, scoring
from serving.routers.monitoring import install_monitoring
from serving.security import QuietErrors, SecurityHeaders, validation_response
from serving.settings import ServingSettings, get_settings
from serving.ui import STATIC, is_page, render_error, render_invalid
from serving.ui import router as pages

__all__ = ["create_app"]

log = logging.getLogger("case_closure_risk.serving")
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

STORE_UNAVAILABLE = "the audit store cannot be reached or written just now, so nothing was done or recorded; try again"
DESCRIPTION = """
Scores open child-neglect cases on the likelihood that the child is referred to children's social care again
within 12 months if the case is closed now, explains every score (exact TreeSHAP contributions), and keeps the
evidence: every score is written to the audit store with the model version and its inputs before it is returned,
and the manager's decision is kept beside it. The score is advisory: a person decides.

Authenticate with an API key: `Authorization: Bearer <key>`. Roles: `system` scores; `manager` reads scores and
records decisions; `admin` manages keys and reloads the model. `/healthz` and `/readyz` are open.
"""


class BodySizeLimit:
    """413 for a body over the limit, whether it declares its length or not; nothing past the limit is read.

    A streamed (chunked) body is counted as it arrives: past the limit the 413 is sent at once and the app is told
    the client went away, and whatever the app answers after that is dropped (it would otherwise turn the broken
    read into a misleading 400).
    """

    def __init__(self, app: ASGIApp, *, limit: int, timeout_s: float = 10.0) -> None:
        self.app, self.limit, self.timeout_s = app, limit, timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        seen = 0
        refused = started = False

        async def limited() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            try:  # a half-sent body must not hold the request (and its connection) for ever
                message = await asyncio.wait_for(receive(), self.timeout_s)
            except TimeoutError:
                refused = True
                if not started:
                    late = f"the request body did not arrive within {self.timeout_s:g} seconds"
                    await JSONResponse({"detail": late}, status_code=408)(scope, receive, send)
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    refused = True
                    if not started:
                        await self._refuse(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if refused:
                return
            started = True
            await send(message)

        await self.app(scope, limited, guarded)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {"detail": f"the request body is larger than the limit of {self.limit} bytes"}, status_code=413
        )
        await response(scope, receive, send)


class RequestMetrics:
    """Count and time every request by route and status (plain ASGI: Starlette's BaseHTTPMiddleware costs a
    measurable share of a scoring request)."""

    def __init__(self, app: ASGIApp, *, metrics: ServiceMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless the app answers

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(method=scope["method"], route=route, status=str(status)).inc()
            self.metrics.latency.labels(route=route).observe(time.perf_counter() - started)


class ChainWatch:
    """Verifies the audit trail's hash chain in a background thread, at once and then every ``every_s`` seconds: it
    reads every audited row, far too slow per request, so readiness and the pages show the last result."""

    def __init__(self, store: AuditStore, *, every_s: float) -> None:
        self._store, self._every_s = store, every_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-chain-verify", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                report = self._store.verify_chain()
                if not report.verified:  # ids only: the problems name rows by table and id
                    log.error("audit chain does not verify: %d problems, first: %s", len(report.problems),
                              report.problems[0])  # fmt: skip
            except StoreError:
                log.warning("audit chain not verified: the audit store is unavailable")
            self._stopped.wait(self._every_s)

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=30)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: ServingSettings = app.state.settings
    use_store(settings.tracking_uri)
    store = start_store(settings)  # its files and keys checked, migrated
    # The champion stands for the latest reload recorded so far (read before the load: a reload recorded meanwhile
    # is followed by the first request, never missed), so a new worker does not load that reload's model again.
    try:
        latest = store.latest_reload()
        model = load_model_uri(settings.model_uri)
    except BaseException:
        store.close()
        raise
    app.state.store = store
    metrics: ServiceMetrics = app.state.metrics
    app.state.models = ModelHolder(
        model,
        generation=latest.generation if latest is not None else 0,
        on_swap=lambda swapped: metrics.serving(swapped.name, swapped.version),
    )
    app.state.pseudonymiser = Pseudonymiser(load_or_create_key(Path(settings.pseudonym_key_file)))
    app.state.keys = KeyCache(lambda: app.state.store)
    app.state.metrics.serving(model.name, model.version)
    log.info("serving model %s version %s", model.name, model.version)
    watch = ChainWatch(store, every_s=settings.chain_verify_minutes * 60)
    try:
        yield
    finally:
        watch.stop()
        store.close()


def create_app(settings: ServingSettings | None = None) -> FastAPI:
    """Run it with ``closure-risk serve`` (or ``uvicorn --factory serving.app:create_app``). Nothing heavy happens at
    import: the model is loaded once at start-up, from the registry alias or a local bundle (``CCR_MODEL_URI``).
    """
    settings = settings or get_settings()
    app = FastAPI(
        title="case-closure-risk",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served from installed files by install_front_door, not from a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = ServiceMetrics()
    app.state.failures = FailureLimiter(limit=settings.key_failures_per_minute, window_s=60)
    for routes in (scoring, scores, model, admin, rights, operations):
        app.include_router(routes.router)
    app.include_router(pages)
    app.include_router(review.router)
    app.mount("/v1/ui/static", StaticFiles(directory=STATIC), name="static")
    install_front_door(app)

    @app.exception_handler(HTTPException)
    async def page_errors(request: Request, exc: HTTPException) -> Response:
        """A refusal on a page is a page (the JSON API keeps its JSON errors)."""
        if is_page(request) and exc.status_code >= 400:
            return render_error(request, exc)
        return await http_exception_handler(request, exc)

    @app.exception_handler(StoreError)
    async def store_unavailable(request: Request, exc: StoreError) -> Response:
        """A store that cannot be reached or written is the service's outage, not the caller's fault: 503, and the
        transaction that failed left nothing behind. The database's message stays out of the answer and the log."""
        log.warning("audit store unavailable: %s on %s %s", type(exc.__cause__ or exc).__name__, request.method,
                    getattr(request.scope.get("route"), "path", "unmatched"))  # fmt: skip
        refusal = HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, STORE_UNAVAILABLE, headers={"Retry-After": "5"})
        return await page_errors(request, refusal)

    @app.exception_handler(RequestValidationError)
    async def page_validation_errors(request: Request, exc: RequestValidationError) -> Response:
        if is_page(request):
            return render_invalid(request, exc)
        return validation_response(exc)

    install_monitoring(app)

    app.add_middleware(QuietErrors)  # innermost: it sees an unhandled exception before anything logs it
    app.add_middleware(AuthGate)  # the key before the body: a refusal reads none of it
    app.add_middleware(RequestMetrics, metrics=app.state.metrics)
    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes, timeout_s=settings.body_timeout_s)
    if settings.cors_origin_list:  # closed unless configured: no CORS headers at all by default
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
        )
    app.add_middleware(SecurityHeaders)  # added last, so outermost: refusals by the limits above get it too
    return app

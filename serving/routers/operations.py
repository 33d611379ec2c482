"""Health, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from audit import chain_summary
from serving.deps import AUTH_RESPONSES, CallerDep, ModelHolder, StoreDep, get_model
from serving.metrics import ServiceMetrics

__all__ = ["router"]

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Ready: a model is loaded and the audit store can be written",
    responses={503: {"description": "not ready, and why"}},
)
def readyz(request: Request, store: StoreDep) -> dict[str, str]:
    holder: ModelHolder | None = getattr(request.app.state, "models", None)
    if holder is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "not ready: no model loaded")
    unready = store.unready_reason()
    if unready is not None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"not ready: {unready}")
    model = get_model(request)  # this worker's, once it has followed the latest reload
    # A chain that does not verify is reported, not a reason to stop: the trail keeps recording the evidence.
    return {"status": "ready", "model_version": model.version, "audit_chain": chain_summary(store.chain_report)}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response, responses=AUTH_RESPONSES)
def metrics(caller: CallerDep, request: Request) -> Response:
    registry: ServiceMetrics = request.app.state.metrics
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)

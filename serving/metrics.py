"""Prometheus metrics of one app instance (its own registry, so several apps can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["ServiceMetrics"]


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ccr_http_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "ccr_http_request_duration_seconds",
            "request latency",
            ["route"],
            buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.scores = Counter("ccr_scores", "cases scored", ["band"], registry=self.registry)
        self.probability = Histogram(
            "ccr_score_probability",
            "calibrated probabilities returned",
            buckets=tuple(i / 10 for i in range(1, 11)),
            registry=self.registry,
        )
        self.model = Gauge(
            "ccr_model_info",
            "the model being served (1 for the current version)",
            ["name", "version"],
            registry=self.registry,
        )

    def serving(self, name: str, version: str) -> None:
        self.model.clear()
        self.model.labels(name=name, version=version).set(1)

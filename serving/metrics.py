"""Prometheus metrics of one app instance (its own registry, so several apps can live in one process)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["MonitoringFigures", "MonitoringGauges", "ServiceMetrics"]


@dataclass(frozen=True)
class MonitoringFigures:
    """The served version's latest monitoring figures."""

    version: str
    calibration_error: float | None
    largest_drift_feature: str | None
    largest_drift_psi: float | None


class MonitoringGauges(Collector):
    """Gauges read at scrape time from ``source`` (set once the app knows where to look): the realised calibration
    error and the largest feature drift (PSI) of the served version's latest monitoring run; absent when none."""

    def __init__(self) -> None:
        self.source: Callable[[], MonitoringFigures | None] = lambda: None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        figures = self.source()
        ece = GaugeMetricFamily(
            "ccr_monitoring_calibration_error",
            "realised expected calibration error of the served version (latest monitoring run)",
            labels=["version"],
        )
        psi = GaugeMetricFamily(
            "ccr_monitoring_largest_drift_psi",
            "largest feature population stability index of the served version (latest monitoring run)",
            labels=["version", "feature"],
        )
        if figures is not None and figures.calibration_error is not None:
            ece.add_metric([figures.version], figures.calibration_error)
        if figures is not None and figures.largest_drift_psi is not None:
            psi.add_metric([figures.version, figures.largest_drift_feature or ""], figures.largest_drift_psi)
        yield ece
        yield psi


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
        self.monitoring = MonitoringGauges()
        self.registry.register(self.monitoring)

    def serving(self, name: str, version: str) -> None:
        self.model.clear()
        self.model.labels(name=name, version=version).set(1)

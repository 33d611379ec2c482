"""Outcome monitoring: later census returns joined to past scores (only the command line imports it)."""

from monitoring.outcomes import STATUSES, ScoredOutcome, join_outcomes
from monitoring.report import build_summary, feature_drift, render_report, wilson_interval
from monitoring.run import MonitoringError, monitor, run_metrics
from monitoring.settings import MonitoringSettings, get_settings

__all__ = [
    "STATUSES",
    "MonitoringError",
    "MonitoringSettings",
    "ScoredOutcome",
    "build_summary",
    "feature_drift",
    "get_settings",
    "join_outcomes",
    "monitor",
    "render_report",
    "run_metrics",
    "wilson_interval",
]

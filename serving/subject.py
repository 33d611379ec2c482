"""The subject access export as a readable document: HTML rendered from the export, printed to PDF by WeasyPrint.

Used by the admin route and by ``closure-risk subject --pdf``. The document is self-contained (its style is inline)
and fetches nothing: a child's records are never sent anywhere to be printed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from audit.subject import SubjectExport
from features import FEATURE_NAMES, Agreement, Decision, feature_spec
from serving.report import format_value, percent

__all__ = ["subject_html", "subject_pdf"]

_TEMPLATES = Path(__file__).resolve().with_name("templates")
_env = Environment(
    loader=FileSystemLoader(_TEMPLATES),
    autoescape=select_autoescape(["html"], default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _label(feature: str) -> str:
    return feature_spec(feature).label if feature in FEATURE_NAMES else feature


def _shown(feature: str, value: Any) -> str:
    return format_value(feature, value) if feature in FEATURE_NAMES else str(value)


_env.globals.update(
    percent=percent,
    label=_label,
    shown=_shown,
    decision_labels={d.value: d.label for d in Decision},
    agreement_labels={a.value: a.label for a in Agreement},
)


def subject_html(export: SubjectExport) -> str:
    """The export as one HTML document, every score with its inputs, reasons, what-ifs, decisions and notes."""
    return _env.get_template("subject.html").render(export=export)


def subject_pdf(export: SubjectExport) -> bytes:
    """The export printed to PDF (A4)."""
    from weasyprint import HTML  # imported here: loading Pango is not worth it for a process that never prints
    from weasyprint.urls import URLFetcher

    class NothingFetched(URLFetcher):  # type: ignore[misc]
        def fetch(self, url: str, headers: object = None) -> Any:
            raise ValueError(f"the subject export fetches nothing, not {url}")

    pdf: bytes = HTML(string=subject_html(export), url_fetcher=NothingFetched(fail_on_errors=True)).write_pdf()
    return pdf

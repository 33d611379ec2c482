"""The case record, census code lists, the CIN census XML reader and writer (``census/``), and ingestion.

The feature builder (``features.build``, which needs pandas and numpy) is imported when one of its names is first
used, so reading returns and the command line start without them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from features.census import IngestError, Problem, census_child, write_census_elements, write_census_return
from features.codes import (
    AbuseCategory,
    AssessmentFactor,
    ClosureReason,
    Disability,
    EthnicGroup,
    Ethnicity,
    PrimaryNeed,
    ReferralSource,
    Sex,
    ethnic_group,
)
from features.extension import (
    EXTENSION_FIELDS,
    Agency,
    AgencyInvolvement,
    EpisodeExtension,
    Forum,
    PlanReview,
    Service,
    ServiceType,
    Visit,
)
from features.ingest import (
    IngestResult,
    Part,
    extension_lines,
    ingest,
    merge_summaries,
    write_extension_jsonl,
    write_problems_csv,
    write_records_jsonl,
)
from features.record import (
    Assessment,
    ChildRecord,
    CINPlan,
    Episode,
    PreProceedings,
    ProtectionPlan,
    Section47,
    record_as_of,
)
from features.spec import FEATURE_NAMES, FEATURES, FeatureGroup, FeatureSpec, feature_spec, spec_as_dicts
from features.vocabulary import Agreement, Band, Decision, Role

if TYPE_CHECKING:
    from features.build import KEY_COLUMNS, FeatureRows, build_features, current_episode, edited_row, feature_rows

_ON_DEMAND = dict.fromkeys(
    ("KEY_COLUMNS", "FeatureRows", "build_features", "current_episode", "edited_row", "feature_rows"), "features.build"
)

__all__ = [
    "EXTENSION_FIELDS",
    "FEATURES",
    "FEATURE_NAMES",
    "KEY_COLUMNS",
    "AbuseCategory",
    "Agency",
    "AgencyInvolvement",
    "Agreement",
    "Assessment",
    "AssessmentFactor",
    "Band",
    "CINPlan",
    "ChildRecord",
    "ClosureReason",
    "Decision",
    "Disability",
    "Episode",
    "EpisodeExtension",
    "EthnicGroup",
    "Ethnicity",
    "FeatureGroup",
    "FeatureRows",
    "FeatureSpec",
    "Forum",
    "IngestError",
    "IngestResult",
    "Part",
    "PlanReview",
    "PreProceedings",
    "PrimaryNeed",
    "Problem",
    "ProtectionPlan",
    "ReferralSource",
    "Role",
    "Section47",
    "Service",
    "ServiceType",
    "Sex",
    "Visit",
    "build_features",
    "census_child",
    "current_episode",
    "edited_row",
    "ethnic_group",
    "extension_lines",
    "feature_rows",
    "feature_spec",
    "ingest",
    "merge_summaries",
    "record_as_of",
    "spec_as_dicts",
    "write_census_elements",
    "write_census_return",
    "write_extension_jsonl",
    "write_problems_csv",
    "write_records_jsonl",
]


def __getattr__(name: str) -> Any:
    """A name of a module imported on first use (PEP 562); it is then cached in this package's namespace."""
    module = _ON_DEMAND.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

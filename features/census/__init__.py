"""CIN census XML: a safe, streaming reader for one annual return and a deterministic writer."""

from features.census.paths import census_words, element_path
from features.census.problems import RULE_NAMES, IngestError, Problem, Severity
from features.census.stream import CensusReturn, ParsedChild, read_census_header, read_census_return
from features.census.writer import census_child, write_census_elements, write_census_return

__all__ = [
    "RULE_NAMES",
    "CensusReturn",
    "IngestError",
    "ParsedChild",
    "Problem",
    "Severity",
    "census_child",
    "census_words",
    "element_path",
    "read_census_header",
    "read_census_return",
    "write_census_elements",
    "write_census_return",
]

"""Start-up: reading returns from the command line imports neither pandas nor numpy (the feature builder's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.strategies import census_xml, child_xml, episode_xml

_HEAVY = ("pandas", "numpy", "lightgbm", "sklearn", "shap", "mlflow", "fastapi")

_PROBE = """
import json, sys
from cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "loaded": sorted(m for m in %r if m in sys.modules)}))
"""


def _run(*argv: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE % (_HEAVY,), *argv], capture_output=True, text=True, check=False, timeout=120
    )
    found: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def test_ingest_of_one_child_imports_no_model_or_frame_library(tmp_path: Path) -> None:
    path = tmp_path / "cin_2025.xml"
    path.write_text(census_xml(child_xml("C1", episode_xml("2024-06-01")), year=2025), encoding="utf-8")
    assert _run("ingest", str(path)) == {"code": 0, "loaded": []}


def test_feature_builder_names_are_still_reached_through_the_package() -> None:
    import features

    assert callable(features.build_features)
    assert features.KEY_COLUMNS
    assert "build_features" in features.__all__
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = features.no_such_name

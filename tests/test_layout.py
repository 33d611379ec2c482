"""The architecture's one-way imports: features -> models -> training | serving."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# package -> packages it must never import (monitoring is a leaf: only the command line imports it)
FORBIDDEN = {
    "features": {"models", "training", "serving", "monitoring"},
    "models": {"training", "serving", "monitoring"},
    "training": {"serving", "monitoring"},
    "serving": {"training", "monitoring"},
    "monitoring": {"benchmarks", "closure_risk"},
}


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_point_one_way(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no Python files"
    offenders = {
        str(f.relative_to(ROOT)): sorted(_imported_packages(f) & FORBIDDEN[package])
        for f in files
        if _imported_packages(f) & FORBIDDEN[package]
    }
    assert offenders == {}


def test_mlflow_is_touched_only_by_the_registry_module() -> None:
    users = [
        str(f.relative_to(ROOT))
        for pkg in FORBIDDEN
        for f in (ROOT / pkg).rglob("*.py")
        if "mlflow" in _imported_packages(f)
    ]
    assert set(users) <= {"models/registry.py"}

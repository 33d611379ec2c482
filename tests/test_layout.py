"""The architecture's rooms and one-way imports (docs/architecture.md):

    features -> {models, outcomes, audit, synthetic} -> {training, serving, batch} -> monitoring -> CLI

A room imports only rooms below it; rooms on one floor never import each other; no production module passes 500
lines; MLflow is touched only by ``models/registry.py`` and the model-from-code file it logs; the models room's tests
build their bundle without training.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLOORS: tuple[frozenset[str], ...] = (
    frozenset({"features"}),
    frozenset({"models", "outcomes", "audit", "synthetic"}),
    frozenset({"training", "serving", "batch"}),
    frozenset({"monitoring"}),
    frozenset({"cli"}),
)
OURS = frozenset().union(*FLOORS) | {"benchmarks", "docs", "tests", "closure_risk"}
FLOOR = {room: n for n, rooms in enumerate(FLOORS) for room in rooms}
MAX_LINES = 500


def _may_import(room: str) -> frozenset[str]:
    return frozenset(r for r, n in FLOOR.items() if n < FLOOR[room]) | {room}


def _sources(room: str) -> list[Path]:
    found = sorted((ROOT / room).rglob("*.py"))
    return [ROOT / "closure_risk.py", *found] if room == "cli" else found


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("room", sorted(FLOOR))
def test_room_imports_only_rooms_below_it(room: str) -> None:
    files = _sources(room)
    assert files, f"{room} has no Python files"
    offenders = {
        str(f.relative_to(ROOT)): sorted((_imported_packages(f) & OURS) - _may_import(room))
        for f in files
        if (_imported_packages(f) & OURS) - _may_import(room)
    }
    assert offenders == {}


def test_training_serving_and_batch_never_import_each_other() -> None:
    assert FLOORS[2] == {"training", "serving", "batch"}
    for room in FLOORS[2]:
        assert not (_may_import(room) & (FLOORS[2] - {room}))


def test_layout_check_catches_an_upward_import(tmp_path: Path) -> None:
    """The check above must be able to fail: a models module importing serving is an offender."""
    module = tmp_path / "bad.py"
    module.write_text("from serving.app import create_app\nimport training.pipeline\n", encoding="utf-8")
    assert (_imported_packages(module) & OURS) - _may_import("models") == {"serving", "training"}


@pytest.mark.parametrize("room", sorted(FLOOR))
def test_no_production_module_passes_the_size_limit(room: str) -> None:
    long = {str(f.relative_to(ROOT)): n for f in _sources(room) if (n := len(f.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_mlflow_is_touched_only_by_the_registry_module() -> None:
    """Only the registry, and the file the registry logs as a model from code: MLflow runs that file to load the
    model and needs ``mlflow.models.set_model`` called in it."""
    users = [str(f.relative_to(ROOT)) for room in FLOOR for f in _sources(room) if "mlflow" in _imported_packages(f)]
    assert set(users) <= {"models/registry.py", "models/mlflow_model.py"}


def _loaded_by_importing(path: Path, seen: set[Path]) -> set[str]:
    """Packages importing a test module loads: every import in it, and what the test modules it imports (``tests.x``)
    load at module level (imports inside their functions and under ``if TYPE_CHECKING`` run only when called)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree) if path.is_relative_to(ROOT / "tests" / "models") else tree.body:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            continue
        for name in names:
            found.add(name.split(".")[0])
            module = ROOT.joinpath(*name.split("."))
            for target in (module.with_suffix(".py"), module / "__init__.py"):
                if name.startswith("tests.") and target.is_file() and target not in seen:
                    seen.add(target)
                    found |= _loaded_by_importing(target, seen)
    return found


def test_models_tests_never_import_training() -> None:
    """tests/models builds its tiny bundle from ``models`` types and LightGBM: the room below training is tested
    without it."""
    files = sorted((ROOT / "tests" / "models").glob("*.py"))
    assert ROOT / "tests" / "models" / "conftest.py" in files
    offenders = [str(f.relative_to(ROOT)) for f in files if "training" in _loaded_by_importing(f, set())]
    assert offenders == []


def test_models_tests_check_catches_a_training_import_through_a_test_module(tmp_path: Path) -> None:
    helper = ROOT / "tests" / "conftest.py"
    assert "training" not in _loaded_by_importing(helper, set())
    module = tmp_path / "uses_helper.py"
    module.write_text("import tests.training.test_fit\n", encoding="utf-8")
    assert "training" in _loaded_by_importing(module, set())

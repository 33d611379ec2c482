"""The registry in a real MLflow store in tmp_path: a version is loaded from its own files, checked against the
digests of its training run, never unpickled; MLflow's own serving returns the service's exact explanations."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.pyfunc.model import PythonModel

from features import FEATURE_NAMES, ChildRecord
from models import RiskModel, assess, registry
from models.bundle import bundle_digests
from models.registry import ModelRefusedError, ModelUnavailableError
from tests.conftest import AS_OF
from tests.models.conftest import Closures

CARD = "# Model card\n\nA tiny model for tests.\n"


@dataclass(frozen=True)
class Store:
    uri: str
    artifacts: Path
    version: str  # the tiny model, registered by the registry itself


@pytest.fixture(scope="module")
def registered(tiny_model: RiskModel, tmp_path_factory: pytest.TempPathFactory) -> Store:
    folder = tmp_path_factory.mktemp("registry")
    store = Store(uri=f"sqlite:///{folder}/mlflow.db", artifacts=folder / "mlruns", version="")
    _use(store)
    card = folder / "report"
    card.mkdir()
    (card / "model_card.md").write_text(CARD, encoding="utf-8")
    with registry.start_run("test"):
        version = registry.log_and_register(tiny_model).version
        registry.log_artifacts(card, artifact_path="report")
    return Store(uri=store.uri, artifacts=store.artifacts, version=version)


@pytest.fixture
def store(registered: Store) -> Store:
    _use(registered)  # MLflow's store is global to the process: other tests may have pointed it elsewhere
    return registered


def _use(store: Store) -> None:
    registry.configure_tracking(store.uri, experiment="test-registry", artifact_location=str(store.artifacts))


def _model_files(version: str) -> Path:
    """Where the (local) store keeps a registered version's logged model."""
    client = mlflow.MlflowClient()
    source = str(client.get_model_version(registry.MODEL_NAME, version).source)
    return Path(str(client.get_logged_model(source.removeprefix("models:/")).artifact_location).removeprefix("file://"))


def _bundle_files(version: str) -> Path:
    return _model_files(version) / "artifacts" / registry.BUNDLE_ARTIFACT


def test_registered_version_loads_from_its_files_with_the_same_scores(
    store: Store, tiny_model: RiskModel, closures: Closures
) -> None:
    loaded = registry.load_model(store.version)
    assert (loaded.version, loaded.metadata.run_id) == (store.version, registry_run(store.version))
    np.testing.assert_array_equal(loaded.predict_proba(closures.held_out), tiny_model.predict_proba(closures.held_out))
    params = mlflow.MlflowClient().get_run(registry_run(store.version)).data.params
    recorded = {
        k.removeprefix(registry.DIGEST_PARAM): v for k, v in params.items() if k.startswith(registry.DIGEST_PARAM)
    }
    assert recorded == bundle_digests(_bundle_files(store.version))


def registry_run(version: str) -> str:
    return str(mlflow.MlflowClient().get_model_version(registry.MODEL_NAME, version).run_id)


def test_tampered_bundle_file_is_refused(store: Store, tiny_model: RiskModel) -> None:
    with registry.start_run("tampered"):
        version = registry.log_and_register(tiny_model).version
    bundle_json = _bundle_files(version) / "bundle.json"
    bundle = json.loads(bundle_json.read_text(encoding="utf-8"))
    bundle["bands"]["high_from"] = 0.99  # almost no case would be flagged high any more
    bundle_json.write_text(json.dumps(bundle, indent=2, sort_keys=True), encoding="utf-8")
    with pytest.raises(ModelRefusedError, match=r"bundle\.json differs from the file recorded at training"):
        registry.load_model(version)
    booster = _bundle_files(version) / "booster.txt"
    booster.unlink()
    with pytest.raises(ModelRefusedError, match="could not be read"):
        registry.load_model(version)
    with pytest.raises(ModelUnavailableError, match="could not be read from the registry"):
        registry.load_model("999")


class _WritesOnUnpickle(PythonModel):
    """A registered model whose pickle, once unpickled, creates a file: what an attacker with registry write would
    plant (a file stands for any command)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))

    def predict(self, model_input: list[str], params: dict[str, Any] | None = None  # type: ignore[override]
                ) -> list[str]:  # fmt: skip
        return model_input


def _register_pickle(marker: Path, bundle: Path, *, digests: bool) -> str:
    """A version logged the old way, as a pickled PythonModel, carrying a genuine bundle (and its digests)."""
    with registry.start_run("pickled"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow advises type hints and a signature: beside the point here
        if digests:
            mlflow.log_params({f"{registry.DIGEST_PARAM}{k}": v for k, v in bundle_digests(bundle).items()})
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=_WritesOnUnpickle(marker),
            artifacts={registry.BUNDLE_ARTIFACT: str(bundle)},
            registered_model_name=registry.MODEL_NAME,
            pip_requirements=[],  # else MLflow loads (unpickles) the model to infer them
        )
    assert not marker.exists()  # logging pickled it; nothing has unpickled it
    return str(info.registered_model_version)


def test_pickled_version_is_never_unpickled(
    store: Store, tiny_model: RiskModel, closures: Closures, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "ran.txt"
    bundle = tmp_path / registry.BUNDLE_ARTIFACT
    tiny_model.save(bundle)
    with_digests = _register_pickle(marker, bundle, digests=True)
    registry.set_alias(registry.CHAMPION, with_digests)
    # The service reads the bundle's own files: the genuine bundle is served, its pickle never touched.
    loaded = registry.load_model(registry.CHAMPION)
    assert loaded.version == with_digests
    np.testing.assert_array_equal(loaded.predict_proba(closures.held_out), tiny_model.predict_proba(closures.held_out))
    assert registry.load_model_uri(f"models:/{registry.MODEL_NAME}@{registry.CHAMPION}").version == with_digests
    assert not marker.exists()

    without_digests = _register_pickle(marker, bundle, digests=False)
    registry.set_alias(registry.CHAMPION, without_digests)
    with pytest.raises(ModelRefusedError, match="no file digests"):
        registry.load_model(registry.CHAMPION)
    assert not marker.exists()

    # A process that reads models forbids MLflow itself to unpickle one.
    monkeypatch.delenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", raising=False)  # restored after the test
    registry.use_store(store.uri)
    assert os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] == "false"
    with pytest.raises(MlflowException, match="Deserializing model using pickle is disallowed"):
        mlflow.pyfunc.load_model(f"models:/{registry.MODEL_NAME}/{with_digests}")
    assert not marker.exists()


def test_input_example_is_made_up_not_a_training_row(store: Store, tiny_model: RiskModel, closures: Closures) -> None:
    example = json.loads((_model_files(store.version) / "input_example.json").read_text(encoding="utf-8"))
    rows = example if isinstance(example, list) else pd.DataFrame(**example).to_dict("records")
    assert rows == registry.example_features(tiny_model)
    learned = closures.learned[list(FEATURE_NAMES)]
    for row in rows:
        same = np.ones(len(learned), dtype=bool)
        for name, value in row.items():
            column = learned[name].astype("object")
            same &= column.isna().to_numpy() if value is None else (column == value).to_numpy()
        assert not same.any()


def test_model_card_leaves_no_temporary_folder(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = registry.load_model(store.version)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    cards = {registry.model_card(model) for _ in range(50)}
    assert cards == {CARD}
    assert list(scratch.iterdir()) == []


def test_pyfunc_returns_the_service_explanations(
    store: Store, tiny_model: RiskModel, open_records: list[ChildRecord]
) -> None:
    """MLflow's generic loader runs the registered model from code: the service's probability, band, raw score and
    every feature's exact contribution, for rows of features or a DataFrame."""
    assessed = assess(tiny_model, open_records[:40], AS_OF, what_ifs=False).assessments
    rows = [a.features for a in assessed]
    pyfunc = mlflow.pyfunc.load_model(f"models:/{registry.MODEL_NAME}/{store.version}")
    for given in (rows, pd.DataFrame(rows)):
        _assert_explained_as_served([p.model_dump() for p in pyfunc.predict(given)], assessed)


def _assert_explained_as_served(predictions: list[dict[str, Any]], assessed: list[Any]) -> None:
    assert len(predictions) == len(assessed)
    for prediction, a in zip(predictions, assessed, strict=True):
        assert prediction["probability"] == a.probability
        assert prediction["band"] == a.band
        assert prediction["raw_score"] == a.raw_score
        assert prediction["base_value"] == a.base_value
        assert list(prediction["contributions"]) == list(FEATURE_NAMES)
        assert list(prediction["contributions"].values()) == a.contributions.tolist()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(store: Store, tmp_path: Path) -> Iterator[str]:
    """``mlflow models serve`` of the registered version, on a free port, in this environment."""
    port = _free_port()
    scripts = Path(sys.executable).parent  # the server starts this environment's uvicorn by name
    env = {**os.environ, "MLFLOW_TRACKING_URI": store.uri, "MLFLOW_REGISTRY_URI": store.uri,
           "PATH": f"{scripts}{os.pathsep}{os.environ.get('PATH', '')}"}  # fmt: skip
    command = [str(scripts / "mlflow"), "models", "serve", "-m",
               f"models:/{registry.MODEL_NAME}/{store.version}", "-h", "127.0.0.1", "-p", str(port),
               "--env-manager", "local", "-w", "1"]  # fmt: skip
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow models serve did not start:\n{(tmp_path / 'serve.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.mark.slow
def test_mlflow_models_serve_returns_the_service_explanations(
    served: str, tiny_model: RiskModel, open_records: list[ChildRecord]
) -> None:
    assessed = assess(tiny_model, open_records[:40], AS_OF, what_ifs=False).assessments
    body = json.dumps({"inputs": [a.features for a in assessed]}).encode()
    request = urllib.request.Request(f"{served}/invocations", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        predictions = json.loads(answer.read())["predictions"]
    _assert_explained_as_served(predictions, assessed)


def test_a_new_embedded_store_is_private_to_its_owner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tracking store names the authority's model versions and runs: created 0600, never world-readable."""
    import stat

    for name in ("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"):
        monkeypatch.setenv(name, "true")  # restored after the test, as the tracking URI below
    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    store = tmp_path / "nested" / "mlflow.db"
    try:
        registry.use_store(f"sqlite:///{store}")
    finally:
        mlflow.set_tracking_uri(before[0])
        mlflow.set_registry_uri(before[1])
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false"

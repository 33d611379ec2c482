"""The models room's own tiny bundle: LightGBM trained directly on the tiny authority's closures, no ``training``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from features import FEATURES, build_features, ingest
from models import Bands, Calibrator, ModelMetadata, Reference, RiskModel
from outcomes import label_closures

TREES = 40
PARAMS = {"objective": "binary", "num_leaves": 7, "max_depth": 3, "min_data_in_leaf": 50, "learning_rate": 0.1,
          "monotone_constraints_method": "advanced", "deterministic": True, "force_row_wise": True, "num_threads": 1,
          "seed": 1, "verbosity": -1}  # fmt: skip


@dataclass(frozen=True)
class Closures:
    """Labelled closures with their features at closure: earlier ones to learn from, the latest quarter held out."""

    learned: pd.DataFrame
    held_out: pd.DataFrame


@pytest.fixture(scope="session")
def closures(tiny_authority: Path) -> Closures:
    result = ingest(sorted(tiny_authority.glob("*.xml")), extension=tiny_authority / "extension.jsonl")
    assert result.data_end is not None
    records = result.records
    labelled, _ = label_closures(records, data_end=result.data_end)
    # Each closure seen on its closure date, its child's later episodes cut away.
    views = [
        records[c.record_index].model_copy(update={"episodes": records[c.record_index].episodes[: c.episode_index + 1]})
        for c in labelled
    ]
    frame = build_features(views, [c.closure_date for c in labelled])
    frame["label"] = np.array([c.label for c in labelled], dtype=np.int8)
    frame = frame.sort_values("as_of", kind="stable").reset_index(drop=True)
    cut = int(0.75 * len(frame))
    return Closures(learned=frame.iloc[:cut].reset_index(drop=True), held_out=frame.iloc[cut:].reset_index(drop=True))


@pytest.fixture(scope="session")
def tiny_model(closures: Closures) -> RiskModel:
    """A few dozen shallow trees, constrained where the domain knows the direction, as training constrains them."""
    learned = closures.learned
    monotone = [spec.direction if spec.kind != "categorical" else 0 for spec in FEATURES]
    booster = lgb.train(
        {**PARAMS, "monotone_constraints": monotone},
        lgb.Dataset(RiskModel.model_input(learned), learned["label"].to_numpy()),
        num_boost_round=TREES,
    )
    # The booster's own log-odds as the probability, recalibrated in the neglect population (population-aware), so
    # every scoring path is checked to give that population its own calibration as training does.
    calibrator = Calibrator("platt", neglect=(1.3, 0.4))
    held_out = calibrator.apply(np.asarray(booster.predict(RiskModel.model_matrix(closures.held_out), raw_score=True)))
    low_below, high_from = np.quantile(held_out, [0.4, 0.8])
    return RiskModel(
        booster=booster,
        calibrator=calibrator,
        bands=Bands(float(low_below), float(high_from)),
        reference=Reference.from_frame(learned),
        metadata=ModelMetadata(params={k: PARAMS[k] for k in ("num_leaves", "max_depth")}, trees=TREES),
    )


@pytest.fixture(scope="session")
def bundle(tiny_model: RiskModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny bundle saved as a folder (overrides the root conftest's trained one for this room)."""
    folder = tmp_path_factory.mktemp("models-bundle") / "model"
    tiny_model.save(folder)
    return folder

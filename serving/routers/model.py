"""``GET /v1/model``: the model being served, its metrics and model card."""

from __future__ import annotations

from fastapi import APIRouter

from models.registry import model_card
from serving.deps import AUTH_RESPONSES, CallerDep, ModelDep
from serving.schemas import ModelFacts

__all__ = ["router"]

router = APIRouter(prefix="/v1/model", tags=["model"])


@router.get("", response_model=ModelFacts, summary="The model being served", responses=AUTH_RESPONSES)
def model_facts(caller: CallerDep, model: ModelDep) -> ModelFacts:
    return ModelFacts(
        name=model.name,
        version=model.version,
        data_end=model.metadata.data_end,
        test_metrics=model.metadata.test_metrics,
        backtest_metrics=model.metadata.backtest_metrics,
        backtest_years=model.metadata.backtest_years,
        bands=model.bands.to_dict(),
        features=model.feature_spec,
        model_card=model_card(model),
    )

"""The training frame: labels equal the generator's truth; each row is the open case on its closure date."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features import FEATURE_NAMES, build_features
from training import TrainingFrame, load_training_frame


def test_training_frame_labels_equal_the_generators_truth(tiny_frame: TrainingFrame) -> None:
    truth = tiny_frame.summary["truth"]
    assert isinstance(truth, dict)
    assert truth["rows_matched"] == len(tiny_frame.frame) > 500
    assert truth["label_agrees_with_truth"] == 1.0
    assert 0.25 <= tiny_frame.frame["label"].mean() <= 0.38


def test_training_frame_row_equals_the_open_case_scored_that_day(
    tiny_frame: TrainingFrame, tiny_authority: Path
) -> None:
    from features import ingest

    records = {
        r.la_child_id: r
        for r in ingest(sorted(tiny_authority.glob("*.xml")), extension=tiny_authority / "extension.jsonl").records
    }
    sample = tiny_frame.frame.sample(200, random_state=1)
    for _, row in sample.iterrows():
        record = records[row["la_child_id"]]
        index = next(i for i, e in enumerate(record.episodes) if e.referral_date == row["episode_referral_date"])
        closing = record.episodes[index]
        # The same case while still open on its closure date, as serving would see it.
        open_case = record.model_copy(update={"episodes": [
            *record.episodes[:index], closing.model_copy(update={"closure_date": None, "closure_reason": None})
        ]})  # fmt: skip
        served = build_features([open_case], row["closure_date"]).iloc[0]
        pd.testing.assert_series_equal(
            served[list(FEATURE_NAMES)], row[list(FEATURE_NAMES)], check_names=False, check_dtype=False
        )


def test_training_frame_keeps_ids_and_dates_for_splitting_and_the_truth(tiny_frame: TrainingFrame) -> None:
    frame = tiny_frame.frame
    assert {"la_child_id", "closure_date", "label", "true_probability", "ethnic_group", "in_scope"} <= set(frame)
    assert frame["true_probability"].notna().all()
    assert (frame["closure_date"] >= frame["episode_referral_date"]).all()
    labels = tiny_frame.labels
    assert labels.eligible == len(frame)
    assert labels.censored > 0


def test_training_frame_refuses_a_folder_without_returns(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no CIN census returns"):
        load_training_frame(tmp_path)


def _messy_copy(tiny_authority: Path, folder: Path) -> Path:
    """The tiny authority with what real returns carry: a child with an invalid date, an element the schema does not
    know, a return cut short mid-child, and extension lines that are bad or name no episode."""
    import shutil

    for source in tiny_authority.iterdir():
        shutil.copy(source, folder / source.name)
    first, *_, last = sorted(folder.glob("*.xml"))
    text = first.read_text(encoding="utf-8")
    start = text.index("<PersonBirthDate>") + len("<PersonBirthDate>")
    text = text[:start] + "2019-02-30" + text[text.index("<", start) :]
    text = text.replace("</ChildIdentifiers>", "<Nickname>x</Nickname></ChildIdentifiers>", 1)
    first.write_text(text, encoding="utf-8")
    cut = last.read_text(encoding="utf-8")
    last.write_text(cut[: len(cut) // 2], encoding="utf-8")
    with (folder / "extension.jsonl").open("a", encoding="utf-8") as lines:
        lines.write('{"la_child_id": "NOBODY", "referral_date": "2020-01-01"}\n{"la_child_id": 3}\nnot json\n')
    return folder


@pytest.mark.parametrize("messy", [False, True])
def test_training_frame_built_in_shares_is_the_frame_built_in_one_process(
    tiny_authority: Path, tmp_path: Path, messy: bool
) -> None:
    data = _messy_copy(tiny_authority, tmp_path) if messy else tiny_authority
    one = load_training_frame(data, workers=1)
    for workers in (2, 3):
        shared = load_training_frame(data, workers=workers)
        pd.testing.assert_frame_equal(shared.frame, one.frame)
        assert shared.summary == one.summary
        assert shared.labels == one.labels
    ingested = one.summary["ingest"]
    assert isinstance(ingested, dict)
    if messy:
        assert ingested["partial"] is True
        assert {"extension_unmatched", "unknown_element", "not_well_formed"} <= set(ingested["problems_by_rule"])
        assert ingested["children_with_problems"] > 0

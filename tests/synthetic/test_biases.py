"""Planted biases: off by default (the calibrated authority's bytes unchanged), each doing what it says when on."""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from features import ethnic_group
from synthetic import PlantedBiases, Window, generate_cohort, simulate_child
from synthetic.cohort import Cohort, simulate_cohort

# sha256 of every file `generate_cohort(children=400, seed=20, start=2019, end=2022, workers=1)` wrote before
# planted biases existed: with none planted, the generator must write the same bytes.
GOLDEN = {
    "cin_2019.xml": "ee4f106bfe68bad096313ba65a3fff3195c4ed236f330d6e469b118cf20b0b20",
    "cin_2020.xml": "664ee7ba8a9616302970b1faebde4b43abcae7447fd6a8bfa714b49bed94d29c",
    "cin_2021.xml": "4c14d18b4fcd3a36db0b4fcfc298fa2c8e8ccc0bac43f448869c06e67be89f13",
    "cin_2022.xml": "f4ba32554e2e15d08ea760fad06bbfdb5e485f7b36bb0ac6a4719cb5f926cd2a",
    "extension.jsonl": "e8b93c5e828192f4f3e34243fb1433e8719acc0b7af06654ac2f96dddbf2c6f6",
    "manifest.json": "42af7c2231ad923383ee331fa61eff2fe2a435bac135c3bc0d5c82cbb0c17421",
    "truth.csv": "7efcaa442e5d330fc884e0c2c60320f8f200a8039a3fda3bfc8d237f7858571e",
}
CHILDREN, SEED, START, END = 1_500, 31, 2019, 2023


@pytest.mark.parametrize("biases", [None, PlantedBiases()], ids=["no argument", "none planted"])
def test_generate_without_planted_biases_writes_the_same_bytes_as_before(
    tmp_path: Path, biases: PlantedBiases | None
) -> None:
    generate_cohort(children=400, seed=20, start=2019, end=2022, out=tmp_path, workers=1, biases=biases)
    written = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()}
    assert written == GOLDEN


def _cohort(**biases: Any) -> Cohort:
    return simulate_cohort(children=CHILDREN, seed=SEED, start=START, end=END, workers=1,
                           biases=PlantedBiases(**biases))  # fmt: skip


def _group(cohort: Cohort) -> dict[str, str]:
    return {r.la_child_id: ethnic_group(r.ethnicity).value for r in cohort.records}


def _first_closures(**biases: Any) -> dict[str, tuple[str, float]]:
    """Each child's group and the probability at their first closure ever, for the first 600 children simulated."""
    window = Window(start=START, end=END, biases=PlantedBiases(**biases))
    first = {}
    for index in range(600):
        child = simulate_child(SEED, index, window)
        if child.truth:
            first[child.record.la_child_id] = (ethnic_group(child.record.ethnicity).value,
                                               child.truth[0].true_probability)  # fmt: skip
    return first


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


@pytest.fixture(scope="module")
def control() -> Cohort:
    # A bias planted in a group nobody here is in: the ethnicity stream of a biased cohort, nothing else changed.
    return _cohort(surveillance="CHNE")


def test_planted_bias_unknown_group_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown group 'purple'"):
        PlantedBiases(elsewhere="purple")


@pytest.mark.parametrize("kind", ["undermeasured", "surveillance"])
def test_bias_moves_the_groups_chance_of_a_new_referral_by_its_size_only(kind: str) -> None:
    # The same children (a bias planted nowhere still draws ethnicity first): before their first closure nothing
    # differs, so the chance of a new referral at it moves by exactly the planted log-odds, in the group alone.
    before, after = _first_closures(missing_extension="CHNE"), _first_closures(**{kind: "white"})
    assert before.keys() == after.keys()
    counted = Counter[bool]()
    for child, (group, p) in before.items():
        moved = _logit(after[child][1]) - _logit(p)
        assert moved == pytest.approx(0.6 if group == "white" else 0.0, abs=1e-9)
        counted[group == "white"] += 1
    assert counted[True] > 100
    assert counted[False] > 50


def _nfa_share_of_rereferrals(cohort: Cohort, group: dict[str, str], name: str) -> float:
    nfa = total = 0
    for record in cohort.records:
        if group[record.la_child_id] != name:
            continue
        for earlier, later in zip(record.episodes, record.episodes[1:], strict=False):
            if earlier.closure_date is not None and (later.referral_date - earlier.closure_date).days <= 365:
                total += 1
                nfa += later.referral_nfa
    return nfa / total


def test_surveillance_bias_adds_referrals_that_find_no_need(control: Cohort) -> None:
    biased = _cohort(surveillance="white")
    group = _group(biased) | _group(control)
    # the extra re-referrals are screened out: far more of them end with no further action than in the control
    assert _nfa_share_of_rereferrals(biased, group, "white") > _nfa_share_of_rereferrals(control, group, "white") + 0.1


def test_elsewhere_bias_hides_half_of_the_groups_rereferrals(control: Cohort) -> None:
    biased = _cohort(elsewhere="white")
    group = _group(biased)
    episodes = {r.la_child_id: r.episodes for r in biased.records}
    seen = Counter[tuple[bool, bool]]()
    for row in biased.truth:
        if not row.rereferred_within_365 or row.next_referral_date is None:
            continue
        if row.next_referral_date > biased.window.data_end:  # after the last return: unseen for every group
            continue
        visible = any(e.referral_date == row.next_referral_date for e in episodes[row.la_child_id])
        seen[(group[row.la_child_id] == "white", visible)] += 1
    hidden_share = seen[(True, False)] / (seen[(True, False)] + seen[(True, True)])
    assert 0.4 <= hidden_share <= 0.6
    assert seen[(False, False)] == 0
    assert seen[(False, True)] > 20


def test_missing_extension_bias_leaves_the_groups_episodes_unrecorded(control: Cohort) -> None:
    biased = _cohort(missing_extension="white")
    group = _group(biased)
    missing = Counter[tuple[bool, bool]]()
    for record in biased.records:
        for e in record.episodes:
            missing[(group[record.la_child_id] == "white", e.services is None)] += 1
    white_share = missing[(True, True)] / (missing[(True, True)] + missing[(True, False)])
    others_share = missing[(False, True)] / (missing[(False, True)] + missing[(False, False)])
    assert 0.4 <= white_share <= 0.55  # 45% planted, plus the 3% of single fields missing
    assert others_share < 0.16

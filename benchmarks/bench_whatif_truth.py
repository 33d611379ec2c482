"""How far are the report's what-ifs from the truth?

For each seed a synthetic authority is generated and a model trained on it exactly as ``closure-risk train`` does
(nothing registered). Every test closure is then assessed as a manager would see it on the closure date
(``models.assess``: score, reasons, what-ifs), and every what-if offered is compared with the generator's true
effect of the same change on the same child (``synthetic.intervene``: the change made to the closing episode's
record, the true risk function recomputed, everything else about the child, the unobserved family included, as it
was). Per change offered: how many cases, the model's and the true mean change, the error (model minus truth: mean,
standard deviation, worst), and how often the direction is right (the same sign; a true change of zero counts as
right only where the model's is under one point). The policy (``[whatif]`` in the gate's policy file) withdraws a
change whose direction is right in under 90% of cases over seeds.

    .venv/bin/python -m benchmarks.bench_whatif_truth --children 8000 --seeds 3
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np

from features import FEATURE_NAMES
from models.assess import assess
from models.whatif import OpenCase, _changes, what_ifs_of_cases
from synthetic.cohort import simulate_cohort
from synthetic.intervene import true_change
from training.evaluation import evaluate_bundle
from training.fit import BASE_PARAMS, fit_bundle
from training.frame import build_training_frame
from training.settings import TrainingSettings
from training.split import split_by_time

NEGLIGIBLE = 0.01  # a model change under one point where the truth does not move counts as the right direction
MIN_CASES = 30  # fewer offers over all seeds: too few to judge a change's direction


@dataclass(frozen=True)
class Pair:
    seed: int
    change: str
    model: float  # the what-if's change in the estimate
    truth: float  # the true change in the probability of re-referral

    @property
    def direction_right(self) -> bool:
        if abs(self.truth) < 1e-9:
            return abs(self.model) < NEGLIGIBLE
        return bool(np.sign(self.model) == np.sign(self.truth))


def pairs_of_seed(
    seed: int, *, children: int, start: int, end: int, workers: int, one_candidate: bool = False
) -> list[Pair]:
    BASE_PARAMS["num_threads"] = 1  # one LightGBM thread per seed: ``--jobs`` seeds share the cores
    cohort = simulate_cohort(children=children, seed=seed, start=start, end=end, workers=workers)
    data_end = cohort.window.data_end
    built = build_training_frame(cohort.records, data_end=data_end)
    split = split_by_time(built.frame, data_end=data_end, seed=seed)
    settings = TrainingSettings(seed=seed, bootstrap=50)
    search = settings.search
    if one_candidate:  # the search's middle candidate only: a fifth of the fitting, for small machines
        search = search.model_copy(update={"candidates": (search.candidates[len(search.candidates) // 2],)})
    fitted = fit_bundle(split, seed=seed, search=search)
    model = evaluate_bundle(fitted, split, data_end=data_end, n_boot=settings.bootstrap, seed=seed).model
    records = {r.la_child_id: r for r in cohort.records}
    states = {(t.la_child_id, t.referral_date): t.state for t in cohort.truth}
    views, dates, keys = [], [], []
    for child, referral, closed in zip(split.test["la_child_id"], split.test["episode_referral_date"],
                                       split.test["closure_date"], strict=True):  # fmt: skip
        record = records[str(child)]
        index = next(i for i, e in enumerate(record.episodes) if e.referral_date == referral)
        views.append(record.model_copy(update={"episodes": record.episodes[: index + 1]}))
        dates.append(closed)
        keys.append((str(child), referral))
    # Scored and explained as the service does; the what-ifs come from the same function, withdrawn ones included.
    assessed = assess(model, views, dates, what_ifs=False).assessments
    cases = [
        OpenCase(a.episode, a.as_of, a.values.tolist(), a.probability,
                 frozenset(FEATURE_NAMES[j] for j in np.flatnonzero(a.contributions > 0).tolist()))
        for a in assessed
    ]  # fmt: skip
    pairs = []
    for case, what_ifs in zip(assessed, what_ifs_of_cases(model, cases, withdrawn=frozenset()), strict=True):
        state = states.get(keys[case.position])
        if state is None or not what_ifs:
            continue
        episode, day = case.episode, case.as_of
        edits = {label: apply for label, _, apply in _changes(episode, set(FEATURE_NAMES), day)}
        for what_if in what_ifs:
            apply = edits.get(what_if.change)
            if apply is None:
                continue
            field, items = apply(episode, day)  # the change as the what-if makes it: one field of the episode
            truth = true_change(state, episode, episode.model_copy(update={field: items}), day)
            pairs.append(Pair(seed, what_if.change, what_if.difference, truth))
    return pairs


def summarise(pairs: list[Pair]) -> list[dict[str, object]]:
    by_change: dict[str, list[Pair]] = defaultdict(list)
    for pair in pairs:
        by_change[pair.change].append(pair)
    rows = []
    for change, found in sorted(by_change.items(), key=lambda kv: -len(kv[1])):
        model = np.array([p.model for p in found])
        truth = np.array([p.truth for p in found])
        error = model - truth
        right = np.array([p.direction_right for p in found])
        per_seed = [float(np.mean([p.direction_right for p in found if p.seed == s])) for s in {p.seed for p in found}]
        rows.append({
            "change": change, "cases": len(found), "model_mean": float(model.mean()), "truth_mean": float(truth.mean()),
            "error_mean": float(error.mean()), "error_sd": float(error.std(ddof=1)) if len(found) > 1 else 0.0,
            "error_worst": float(error[np.argmax(np.abs(error))]), "direction_right": float(right.mean()),
            "direction_right_worst_seed": min(per_seed), "truth_zero_share": float(np.mean(np.abs(truth) < 1e-9)),
        })  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--children", type=int, default=8_000)
    parser.add_argument("--seeds", type=int, default=3, help="seeds 1..N")
    parser.add_argument("--start", type=int, default=2019)
    parser.add_argument("--end", type=int, default=2025)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--one-candidate", action="store_true", help="fit the search's middle candidate only")
    parser.add_argument("--jobs", type=int, default=1, help="seeds at a time (processes)")
    parser.add_argument("--json", help="also write the summary here")
    args = parser.parse_args()
    load_before = os.getloadavg()
    began = time.monotonic()
    pairs: list[Pair] = []
    common = {"children": args.children, "start": args.start, "end": args.end, "workers": args.workers,
              "one_candidate": args.one_candidate}  # fmt: skip
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for found in pool.map(partial(pairs_of_seed, **common), range(1, args.seeds + 1)):
            pairs += found
            print(f"seed {found[0].seed if found else '?'}: {len(found)} what-ifs compared", flush=True)
    rows = summarise(pairs)
    print(
        f"load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}; {args.children} children, "
        f"collection years {args.start}-{args.end}, seeds 1-{args.seeds}"
        f"{', middle search candidate only' if args.one_candidate else ''}; "
        f"{(time.monotonic() - began) / 60:.0f} min wall, {args.jobs} at a time"
    )
    print(
        "| change offered | cases | model: mean change | truth: mean change | error: mean (sd) | worst error "
        "| direction right (worst seed) | truth zero | verdict |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if int(r["cases"]) < MIN_CASES:  # type: ignore[call-overload]
            verdict = "too few to judge"
        else:
            verdict = "keep" if r["direction_right_worst_seed"] >= 0.9 else "withdraw"  # type: ignore[operator]
        print(
            f"| {r['change']} | {r['cases']} | {r['model_mean']:+.3f} | {r['truth_mean']:+.3f} "
            f"| {r['error_mean']:+.3f} ({r['error_sd']:.3f}) | {r['error_worst']:+.3f} "
            f"| {r['direction_right']:.0%} ({r['direction_right_worst_seed']:.0%}) | {r['truth_zero_share']:.0%} "
            f"| {verdict} |"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(rows, out, indent=1)


if __name__ == "__main__":
    main()

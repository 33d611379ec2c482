"""Does the fairness audit catch a planted bias, and does it cry wolf without one?

For each seed, the same synthetic authority is generated without a planted bias (the control) and with each bias
of ``synthetic/biases.py`` planted in one ethnic group; each cohort is labelled, split, fitted, evaluated and gated
exactly as ``closure-risk train`` does (no MLflow store: nothing is registered). Reported per condition, over
seeds: the planted group's test closures, how often the audit flagged the group (any finding, block or warning,
on it), how often the gate blocked on it, and, for the control, how often the audit or the gate flagged anything
at all by chance. Targets (issue 20): each bias flagged in at least 9 of 10 seeds at 500 test closures in the group;
chance flags in at most 1 of 10 seeds. Under fairness policy 8 the audit reads the test year's closures with the
backtest's earlier years (``training.pipeline.audited_closures``), as ``closure-risk train`` does.

    .venv/bin/python -m benchmarks.bench_fairness_audit --children 20000 --seeds 3 --group black
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from outcomes.disparity import FairnessReport
from synthetic import BIAS_KINDS, PlantedBiases
from synthetic.cohort import simulate_cohort
from training.evaluation import evaluate_bundle
from training.fit import BASE_PARAMS, fit_bundle
from training.frame import build_training_frame
from training.gate import gate_bundle
from training.pipeline import audited_closures, earlier_origins
from training.settings import TrainingSettings
from training.split import split_by_time

CONTROL = "none (control)"


@dataclass(frozen=True)
class Outcome:
    condition: str
    seed: int
    group_test_cases: int  # the group's closures in the test year
    group_audited_cases: int  # the group's closures the audit read (with the backtest's earlier years, by policy)
    flagged: bool  # any finding on the planted group (its ethnic group)
    blocked: bool  # a blocking finding on it
    calibration_breach: bool  # the gate's older check (group calibration error beyond chance) named the group
    any_block: bool  # any blocking fairness finding at all
    any_ethnic_warning: bool  # any finding on an ethnic group or detailed ethnicity
    any_finding: bool  # any finding at all, on any group (the chance rate, in the control)
    on_group: list[str]  # label:metric of each finding on the planted group
    gate_promoted: bool
    findings: list[str]
    seconds: float


def run_one(
    condition: str,
    *,
    seed: int,
    children: int,
    group: str,
    share: float,
    start: int,
    end: int,
    workers: int,
    one_candidate: bool = False,
    save: str | None = None,
) -> Outcome:
    began = time.process_time()
    # One LightGBM thread per run: ``--jobs`` runs share the cores, and two threads each on a busy shared machine
    # spend their time waiting for each other.
    BASE_PARAMS["num_threads"] = 1
    biases = PlantedBiases(share_group=group, share=share)
    if condition != CONTROL:
        planted: dict[str, Any] = {condition: group}
        biases = dataclasses.replace(biases, **planted)
    cohort = simulate_cohort(children=children, seed=seed, start=start, end=end, workers=workers, biases=biases)
    data_end = cohort.window.data_end
    built = build_training_frame(cohort.records, data_end=data_end)
    split = split_by_time(built.frame, data_end=data_end, seed=seed)
    settings = TrainingSettings(seed=seed, bootstrap=100)
    search = settings.search
    if one_candidate:  # the search's middle candidate only: a fifth of the fitting, for small machines
        search = search.model_copy(update={"candidates": (search.candidates[len(search.candidates) // 2],)})
    fitted = fit_bundle(split, seed=seed, search=search)
    evaluated = evaluate_bundle(fitted, split, data_end=data_end, n_boot=settings.bootstrap, seed=seed)
    fairness = settings.gate_policy().fairness
    audited = None
    if fairness is not None and fairness.audited_closures == "backtest":  # as ``fit_and_judge`` does
        earlier = earlier_origins(built.frame, split, fitted, data_end=data_end, settings=settings,
                                  calibration=settings.gate_policy().calibrator)  # fmt: skip
        audited = audited_closures(evaluated, earlier, fitted)
    decision = gate_bundle(evaluated, p_champion=None, settings=settings, audited=audited)
    frame = evaluated.audit_frame if audited is None else audited
    if save:
        frame.to_parquet(os.path.join(save, f"{condition.split()[0]}-{seed}.parquet"))
    report = decision.fairness
    if not isinstance(report, FairnessReport):
        raise RuntimeError("the policy file has no [fairness] section: nothing to benchmark")
    on_group = report.flags("ethnic_group", group)
    return Outcome(
        condition=condition,
        seed=seed,
        group_test_cases=int((evaluated.audit_frame["ethnic_group"] == group).sum()),
        group_audited_cases=int((frame["ethnic_group"] == group).sum()),
        flagged=bool(on_group),
        blocked=any(f.severity == "block" for f in on_group),
        calibration_breach=any(
            r.startswith("group calibration") and f"ethnic_group={group}:" in r for r in decision.reasons
        ),
        any_block=bool(report.blocking),
        any_ethnic_warning=any(f.dimension in ("ethnic_group", "ethnicity") for f in report.findings),
        any_finding=bool(report.findings),
        on_group=sorted({f"{f.label}:{f.metric}" for f in on_group}),
        gate_promoted=decision.promote,
        findings=[f"{f.severity}: {f.text}" for f in report.findings],
        seconds=time.process_time() - began,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--children", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, default=3, help="how many seeds")
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--group", default="black", help="the major ethnic group the biases are planted in")
    parser.add_argument("--share", type=float, default=0.4, help="the group's share of the authority's children")
    parser.add_argument("--start", type=int, default=2019)
    parser.add_argument("--end", type=int, default=2025)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--conditions", nargs="*", default=[CONTROL, *BIAS_KINDS])
    parser.add_argument("--one-candidate", action="store_true", help="fit the search's middle candidate only")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (processes; each fits on one thread)")
    parser.add_argument("--json", help="also write every outcome here")
    parser.add_argument("--save", help="also write each run's audited closures here (parquet, one file a run)")
    args = parser.parse_args()
    load_before = os.getloadavg()
    began = time.monotonic()
    outcomes: list[Outcome] = []
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    grid = [(seed, condition) for seed in seeds for condition in args.conditions]
    common = {"children": args.children, "group": args.group, "share": args.share, "start": args.start,
              "end": args.end, "workers": args.workers, "one_candidate": args.one_candidate,
              "save": args.save}  # fmt: skip
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_one, condition, seed=seed, **common) for seed, condition in grid]
        for future in futures:
            outcome = future.result()
            outcomes.append(outcome)
            print(json.dumps({k: v for k, v in outcome.__dict__.items() if k != "findings"}), flush=True)
    print(
        f"\nload average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}; {args.children} children, "
        f"collection years {args.start}-{args.end}, group {args.group} ({args.share:.0%} of children), "
        f"seeds {seeds[0]}-{seeds[-1]}; {(time.monotonic() - began) / 60:.0f} min wall, {args.jobs} at a time"
    )
    print(
        "| planted bias | test closures in the group (mean, min) | audited closures in the group (mean, min) "
        "| audit flagged the group | audit blocked on it "
        "| group calibration check named it | any fairness block | any ethnic finding | any finding at all "
        "| gate refused | CPU s per run | what flagged it (label:metric, seeds) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for condition in args.conditions:
        rows = [o for o in outcomes if o.condition == condition]
        n = len(rows)
        sizes = [o.group_test_cases for o in rows]
        audited = [o.group_audited_cases for o in rows]
        print(
            f"| {condition} | {sum(sizes) / n:.0f}, {min(sizes)} | {sum(audited) / n:.0f}, {min(audited)} "
            f"| {sum(o.flagged for o in rows)}/{n} "
            f"| {sum(o.blocked for o in rows)}/{n} | {sum(o.calibration_breach for o in rows)}/{n} "
            f"| {sum(o.any_block for o in rows)}/{n} "
            f"| {sum(o.any_ethnic_warning for o in rows)}/{n} | {sum(o.any_finding for o in rows)}/{n} "
            f"| {sum(not o.gate_promoted for o in rows)}/{n} | {sum(o.seconds for o in rows) / n:.0f} "
            f"| {', '.join(f'{k} {v}' for k, v in Counter(x for o in rows for x in o.on_group).most_common())} |"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump([o.__dict__ for o in outcomes], out, indent=1)


if __name__ == "__main__":
    main()

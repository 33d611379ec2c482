"""The retention schedule of the audit store's records about children, and its application.

A score is due for erasure once the schedule's date has passed: by default the child's 25th birthday (26th for a
child 17 or older when scored), which the store knows only through the score's ``age_years`` input, so the date
is the latest the birthday can be (``as_of`` plus the whole years left to it); when the age is not known, a fixed
number of years after ``as_of``. Never early, at worst a year late. The plan is worked out first and shown
(``closure-risk retention plan``); applying it erases each due score and what it holds, after a chained tombstone
per row, so ``closure-risk audit verify`` still passes and still proves the rows that remain
(``AuditStore.erase_scores``).
"""

from __future__ import annotations

import datetime as dt
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from audit.rows import ScoreRow
from audit.store import AuditStore

__all__ = ["DEFAULT_SCHEDULE", "RetentionPlan", "RetentionSchedule", "apply_retention", "plan_retention"]

DEFAULT_SCHEDULE = Path(__file__).resolve().with_name("retention.toml")


@dataclass(frozen=True)
class RetentionSchedule:
    name: str
    until_birthday: int
    until_birthday_if_17: int
    without_age_years: int
    source: str

    @classmethod
    def load(cls, path: Path = DEFAULT_SCHEDULE) -> RetentionSchedule:
        """The schedule in a TOML file; ValueError naming the field that is missing or not sensible."""
        with path.open("rb") as file:
            values = tomllib.load(file)
        try:
            schedule = cls(
                name=str(values["name"]),
                until_birthday=int(values["until_birthday"]),
                until_birthday_if_17=int(values["until_birthday_if_17"]),
                without_age_years=int(values["without_age_years"]),
                source=str(values["source"]),
            )
        except KeyError as exc:
            raise ValueError(f"{path}: the retention schedule has no {exc.args[0]}") from None
        for name in ("until_birthday", "until_birthday_if_17", "without_age_years"):
            if not 1 <= getattr(schedule, name) <= 120:
                raise ValueError(f"{path}: {name} must be a number of years from 1 to 120")
        return schedule

    def due(self, score: ScoreRow) -> tuple[dt.date, str]:
        """The date from which the score may be erased, and the rule that sets it."""
        age = score.features.get("age_years")
        if isinstance(age, int | float) and math.isfinite(age) and age >= 0:
            whole = math.floor(age)
            birthday = self.until_birthday_if_17 if whole >= 17 else self.until_birthday
            return _years_after(
                score.as_of, max(birthday - whole, 0)
            ), f"{self.name}: until the {_nth(birthday)} birthday"
        return _years_after(score.as_of, self.without_age_years), f"{self.name}: {self.without_age_years} years"


def _years_after(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def _nth(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


@dataclass
class RetentionPlan:
    """What applying the schedule on ``today`` erases: score id -> the rule and date that made it due."""

    schedule: RetentionSchedule
    today: dt.date
    due: dict[str, str] = field(default_factory=dict)
    kept: int = 0
    next_due: dt.date | None = None  # the earliest date a kept score becomes due

    def summary(self) -> dict[str, object]:
        return {
            "schedule": self.schedule.name,
            "today": self.today.isoformat(),
            "scores_due": len(self.due),
            "scores_kept": self.kept,
            "next_due": self.next_due.isoformat() if self.next_due else None,
        }


def plan_retention(store: AuditStore, schedule: RetentionSchedule, *, today: dt.date | None = None) -> RetentionPlan:
    """Which scores are past the schedule on ``today`` (default: today)."""
    plan = RetentionPlan(schedule=schedule, today=today or dt.date.today())
    for score in store.scores_between():
        until, rule = schedule.due(score)
        if until <= plan.today:
            plan.due[score.id] = f"{rule}, due {until.isoformat()}"
        else:
            plan.kept += 1
            plan.next_due = until if plan.next_due is None else min(plan.next_due, until)
    return plan


def apply_retention(store: AuditStore, plan: RetentionPlan, *, erased_by: str) -> dict[str, int]:
    """Erase what the plan found due; how many rows of each table went."""
    return store.erase_scores(plan.due, erased_by=erased_by) if plan.due else {}

"""The case-management extension: case-file facts the census does not carry, joined to an episode.

Every field is optional: a missing value is None, never zero.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated

from pydantic import Field, ValidationInfo, model_validator

from features.validation import RecordModel, Violation, check_order, rules_wanted

__all__ = [
    "EXTENSION_FIELDS",
    "Agency",
    "AgencyInvolvement",
    "EpisodeExtension",
    "Forum",
    "PlanReview",
    "Service",
    "ServiceType",
    "Visit",
]


class ServiceType(StrEnum):
    """Services a family is referred to during an episode."""

    PARENTING_PROGRAMME = "parenting_programme"
    COUNSELLING = "counselling"
    FAMILY_SUPPORT = "family_support"
    DOMESTIC_ABUSE_SUPPORT = "domestic_abuse_support"
    SUBSTANCE_MISUSE_TREATMENT = "substance_misuse_treatment"
    PARENTAL_MENTAL_HEALTH = "parental_mental_health"


class Agency(StrEnum):
    """Partner agencies besides children's social care."""

    HEALTH = "health"
    POLICE = "police"
    EDUCATION = "education"
    YOUTH_JUSTICE = "youth_justice"
    PROBATION = "probation"
    ADULT_MENTAL_HEALTH = "adult_mental_health"
    SUBSTANCE_MISUSE = "substance_misuse"


class Forum(StrEnum):
    """Where a partner agency took part in a decision."""

    STRATEGY_DISCUSSION = "strategy_discussion"
    ASSESSMENT = "assessment"
    PLAN_MEETING = "plan_meeting"


class Service(RecordModel):
    """A service the family was referred to; completed is known only once it has ended."""

    service: ServiceType
    referred_date: dt.date
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    completed: bool | None = Field(default=None, description="true if finished as planned; needs end_date")

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> Service:
        if rules_wanted(info):
            self.rules().raise_if_any()
        return self

    def rules(self) -> Violation:
        """This object's own rules (those of the objects it holds are theirs)."""
        v = Violation("Service")
        check_order(v, ("referred_date", self.referred_date), ("start_date", self.start_date))
        check_order(v, ("start_date", self.start_date), ("end_date", self.end_date))
        if self.end_date is not None and self.start_date is None:
            v.add(("end_date",), "end_without_start", "end_date is set but start_date is not", self.end_date)
        if self.completed is not None and self.end_date is None:
            v.add(
                ("completed",),
                "completed_without_end",
                "completed is set but end_date is not",
                self.completed,
            )
        return v


class AgencyInvolvement(RecordModel):
    """A partner agency taking part in a strategy discussion, assessment or plan meeting on a date."""

    agency: Agency
    forum: Forum
    date: dt.date


class Visit(RecordModel):
    """A statutory or planned home visit."""

    date: dt.date
    child_seen: bool | None = None


class PlanReview(RecordModel):
    """A review of the child's plan: how many of its goals were met."""

    date: dt.date
    goals_set: Annotated[int, Field(ge=1, le=50)]
    goals_met: Annotated[int, Field(ge=0, le=50)]

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> PlanReview:
        if rules_wanted(info):
            self.rules().raise_if_any()
        return self

    def rules(self) -> Violation:
        """This object's own rules (those of the objects it holds are theirs)."""
        v = Violation("PlanReview")
        if self.goals_met > self.goals_set:
            v.add(
                ("goals_met",),
                "goals_met_exceeds_set",
                f"goals_met ({self.goals_met}) exceeds goals_set ({self.goals_set})",
                self.goals_met,
            )
        return v


class EpisodeExtension(RecordModel):
    """A line of the extension file: one episode's case-file facts, joined on child and referral date."""

    la_child_id: str = Field(min_length=1, max_length=100)
    referral_date: dt.date
    services: list[Service] | None = None
    agencies: list[AgencyInvolvement] | None = None
    visits: list[Visit] | None = None
    plan_reviews: list[PlanReview] | None = None


EXTENSION_FIELDS = ("services", "agencies", "visits", "plan_reviews")

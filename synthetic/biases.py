"""Biases the generator can plant in one group of children, so the fairness audit can be tried on a known bias.

Every bias is off by default (the calibrated authority has none: ethnicity has no effect on anything). A group is
a major census ethnic group (``white``, ``mixed``, ``asian``, ``black``, ``other``, ``unknown``) or a detailed
census code (``WROM``, ``BAFR``, ...). With any bias on, a child's ethnicity is drawn first, from a stream of its
own, so the simulation can depend on it; without one the simulation is exactly the calibrated authority's.

- ``surveillance``: the group is referred again more often for the same need. At each closure the chance of a new
  referral gets ``surveillance_log_odds`` on top of the true risk; the extra referrals find no need (no further
  action). The label over-states the group's need; a label that asks for need confirmed does not, and the
  re-referrals that found no need carry the whole excess (what the audit reads, ``outcomes/disparity.py``).
- ``missing_extension``: the case-management extension (services, partners, visits, reviews) is missing for a
  share ``missing_extension_rate`` of the group's episodes, not the calibrated 7%.
- ``elsewhere``: a share ``elsewhere_share`` of the group's re-referrals happen in another authority (the family
  moved): real in the truth, invisible in this authority's data, and the child's history here ends.
- ``undermeasured``: the group's true risk is ``undermeasured_log_odds`` higher than the features show (a cause
  the census and the extension never record).

The default strengths (+0.6 log-odds: an odds ratio of 1.8, 11-13 points at a re-referral rate of a third; 45% of
episodes without the extension against 7%; half of re-referrals elsewhere) are at the strong end of realistic and
no stronger (``synthetic/README.md`` says why).

A population setting goes with them: ``share_group`` makes up ``share`` of the children (the calibrated mix is
England's; an authority where one group is a quarter of the children is not unusual), so a benchmark can reach a
realistic group size without simulating a huge authority.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from features import Ethnicity, ethnic_group
from synthetic.draws import ETHNICITY

__all__ = ["BIAS_KINDS", "PlantedBiases", "in_group"]

BIAS_KINDS = ("surveillance", "missing_extension", "elsewhere", "undermeasured")
_MAJOR_GROUPS = ("white", "mixed", "asian", "black", "other", "unknown")
P_EXTENSION_MISSING = 0.07  # the calibrated authority: episodes without any extension record


def in_group(group: str, ethnicity: str) -> bool:
    """Whether a child of this detailed ethnicity code belongs to ``group`` (a major group or a detailed code)."""
    if group in _MAJOR_GROUPS:
        return ethnic_group(Ethnicity(ethnicity)).value == group
    return ethnicity == group


def _check_group(kind: str, group: str | None) -> None:
    if group is None:
        return
    if group not in _MAJOR_GROUPS and group not in {e.value for e in Ethnicity}:
        raise ValueError(
            f"{kind}: unknown group {group!r}; use a major ethnic group ({', '.join(_MAJOR_GROUPS)}) or a detailed "
            "census ethnicity code"
        )


@dataclass(frozen=True)
class PlantedBiases:
    """Which group (if any) carries each planted bias, and how strong it is."""

    surveillance: str | None = None
    missing_extension: str | None = None
    elsewhere: str | None = None
    undermeasured: str | None = None
    surveillance_log_odds: float = 0.6
    missing_extension_rate: float = 0.45
    elsewhere_share: float = 0.5
    undermeasured_log_odds: float = 0.6
    share_group: str | None = None
    share: float = 0.0

    def __post_init__(self) -> None:
        for kind in (*BIAS_KINDS, "share_group"):
            _check_group(kind, getattr(self, kind))
        if not 0.0 <= self.share < 1.0:
            raise ValueError(f"share must be 0..1 (exclusive), got {self.share}")
        if not 0.0 <= self.missing_extension_rate <= 1.0:
            raise ValueError(f"missing_extension_rate must be 0..1, got {self.missing_extension_rate}")
        if not 0.0 <= self.elsewhere_share <= 1.0:
            raise ValueError(f"elsewhere_share must be 0..1, got {self.elsewhere_share}")

    @property
    def active(self) -> bool:
        return any(getattr(self, kind) is not None for kind in BIAS_KINDS) or self.share_group is not None

    def draw_ethnicity(self, rng: random.Random) -> str:
        """A child's detailed ethnicity: England's mix, or with ``share_group`` making up ``share`` of children."""
        if self.share_group is None:
            return ETHNICITY.draw(rng)
        inside = rng.random() < self.share
        while True:  # England's mix within (or outside) the group
            code = ETHNICITY.draw(rng)
            if in_group(self.share_group, code) == inside:
                return code

    def applies(self, kind: str, ethnicity: str | None) -> bool:
        """Whether bias ``kind`` is planted and this child (of this detailed ethnicity) is in its group."""
        group = getattr(self, kind)
        return group is not None and ethnicity is not None and in_group(group, ethnicity)

    def describe(self) -> dict[str, object]:
        """The biases that are on, with their groups and strengths (for the manifest)."""
        strength = {
            "surveillance": ("log_odds", self.surveillance_log_odds),
            "missing_extension": ("rate", self.missing_extension_rate),
            "elsewhere": ("share", self.elsewhere_share),
            "undermeasured": ("log_odds", self.undermeasured_log_odds),
        }
        planted: dict[str, object] = {
            kind: {"group": getattr(self, kind), strength[kind][0]: strength[kind][1]}
            for kind in BIAS_KINDS
            if getattr(self, kind) is not None
        }
        if self.share_group is not None:
            planted["population"] = {"group": self.share_group, "share": self.share}
        return planted

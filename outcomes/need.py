"""The sensitivity label: a re-referral that found need, not just any re-referral.

Re-referral partly measures how closely a family is watched (DOMAIN.md): a family in closer contact with police,
schools or health is referred again more often for the same need, and many of those referrals find nothing. The
fairness audit therefore also reads a stricter label: re-referred within 365 days *and* the new referral led to a
section 47 enquiry, or to an assessment that found a factor (not factor 21, "no factors identified") and did not
end in no further action (RC8). It is audited the same way as the label, never trained on.
"""

from __future__ import annotations

import datetime as dt

from features import ChildRecord, ClosureReason, Episode
from outcomes.labels import closure_outcome

__all__ = ["need_confirmed", "need_confirmed_label"]


def need_confirmed(episode: Episode, *, data_end: dt.date) -> bool:
    """Whether this referral led to a section 47 enquiry or to an assessment that confirmed need, by ``data_end``."""
    if episode.referral_nfa:
        return False
    if any(s.start_date <= data_end for s in episode.section47s):
        return True
    if episode.closure_reason == ClosureReason.RC8 and episode.closure_date is not None:
        return False
    return any(
        a.authorisation_date is not None and a.authorisation_date <= data_end and any(f != "21" for f in a.factors)
        for a in episode.assessments
    )


def need_confirmed_label(record: ChildRecord, episode_index: int, *, data_end: dt.date) -> int | None:
    """1 when the closure's label is 1 and the re-referral confirmed need; 0 when the label is 0 or it did not;
    None where the closure has no label (open, excluded or censored)."""
    outcome = closure_outcome(record, episode_index, data_end=data_end)
    if outcome.label is None:
        return None
    if outcome.label == 0:
        return 0
    return int(need_confirmed(record.episodes[episode_index + 1], data_end=data_end))

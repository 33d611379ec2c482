"""The review half of the report's decision form: the manager's view of the estimate, the grounds weighed, and how
long the report was open before the decision.

The pages run no JavaScript, so the time open is measured by the server: the report carries the moment it was
rendered, signed with the session's CSRF secret (so a form cannot claim a longer reading than it had), and the
decision's post subtracts it from its own arrival. A missing or altered stamp records no time rather than a wrong one.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from audit import DecisionReview
from features import Agreement
from serving.schemas import hidden_characters

__all__ = ["GROUNDS", "MAX_OPEN_S", "open_seconds", "opened_stamp", "review_from_form"]

# The structured grounds, as the form and the pages word them: a field of ``DecisionReview`` each.
GROUNDS = (
    ("child_voice", "The child's wishes and feelings were heard"),
    ("family_strengths", "The family's strengths were weighed"),
    ("partner_views", "Partner agencies' views were sought"),
    ("multi_agency", "A multi-agency discussion was held"),
)
MAX_OPEN_S = 7 * 24 * 3600  # a stamp older than a week is not a reading of this report


def _signature(secret: str, moment: str) -> str:
    return hmac.new(secret.encode(), f"report-opened\x1f{moment}".encode(), hashlib.sha256).hexdigest()[:32]


def opened_stamp(secret: str, *, now: float | None = None) -> str:
    """The render time (milliseconds since the epoch) and its signature, for the form's hidden field."""
    moment = str(int((time.time() if now is None else now) * 1000))
    return f"{moment}.{_signature(secret, moment)}"


def open_seconds(secret: str, stamp: str, *, now: float | None = None) -> float | None:
    """Seconds since the stamped render, or None when the stamp is missing, altered, in the future or too old."""
    moment, _, signature = stamp.partition(".")
    if not moment.isdigit() or not hmac.compare_digest(signature.encode(), _signature(secret, moment).encode()):
        return None
    seconds = (time.time() if now is None else now) - int(moment) / 1000
    return round(seconds, 1) if 0 <= seconds <= MAX_OPEN_S else None


def review_from_form(
    *, agreement: str, ticked: dict[str, bool], grounds: str, open_s: float | None
) -> DecisionReview | str:
    """The review the form describes, or what the manager must put right (a sentence for the page)."""
    if agreement not in set(Agreement):
        return "Say whether the estimate looks about right, too low or too high to you."
    if hidden_characters(grounds):
        return "The grounds hold control or bidirectional characters: type them again without them."
    return DecisionReview(
        agreement=Agreement(agreement),
        child_voice=ticked.get("child_voice", False),
        family_strengths=ticked.get("family_strengths", False),
        partner_views=ticked.get("partner_views", False),
        multi_agency=ticked.get("multi_agency", False),
        grounds=grounds.strip(),
        report_open_s=open_s,
    )

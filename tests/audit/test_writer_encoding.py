"""The driver-level writer's canonical form of a column's value: its fast scalar text is the encoder's text."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from audit.chain import plain_scalar
from audit.writer import _dumps, _scalar
from features import Band

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),  # control characters, quotes, backslashes, surrogate-free unicode
    st.sampled_from(list(Band)),
    st.dates(),
    st.datetimes(timezones=st.just(dt.UTC)),
)


@given(_SCALARS)
def test_scalar_text_is_the_encoders_text(value: object) -> None:
    assert _scalar(value) == _dumps(plain_scalar(value))


def test_a_non_finite_float_is_still_refused() -> None:
    for bad in (float("nan"), float("inf")):
        try:
            _scalar(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad} was written")

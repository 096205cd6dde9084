"""Human durations."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from playbook.duration import format_duration, parse_duration


@pytest.mark.parametrize(("text", "seconds"), [
    ("90s", 90), ("15m", 900), ("2h", 7200), ("3d", 259200), ("1h30m", 5400), ("0m", 0),
    ("1d 2h", 93600),
])
def test_parse(text: str, seconds: int) -> None:
    """Units d, h, m, s combine largest first."""
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["10", "1:30", "m", "1x", "30m1h", "1h1h", "", "1.5h"])
def test_refuses_ambiguous_or_malformed(text: str) -> None:
    """Bare numbers, clock notation, repeated or disordered units are refused."""
    with pytest.raises(ValueError, match=r"duration|twice|order"):
        parse_duration(text)


@given(st.integers(min_value=0, max_value=60 * 86400))
def test_format_round_trips(seconds: int) -> None:
    """Formatting then parsing gives back the same duration."""
    value = timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value

"""Upstream timestamps ("YYYY-MM-DD HH:MM:SS", epoch ms, ISO 8601) and Retry-After values."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.providers.timestamps import parse_retry_after, parse_timestamp, timestamp_iso

NEW_YEAR = "2025-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("2025-01-01 00:00:00", NEW_YEAR, id="space-separated-as-utc"),
        pytest.param(" 2025-01-01 00:00:00 ", NEW_YEAR, id="surrounding-spaces"),
        pytest.param(1735689600000, NEW_YEAR, id="epoch-ms-int"),
        pytest.param(1735689600000.0, NEW_YEAR, id="epoch-ms-float"),
        pytest.param("1735689600000", NEW_YEAR, id="epoch-ms-string"),
        pytest.param(1735689600123, "2025-01-01T00:00:00.123000Z", id="epoch-ms-fraction"),
        pytest.param(1735689600, NEW_YEAR, id="epoch-seconds-tolerated"),
        pytest.param("2025-01-01T00:00:00Z", NEW_YEAR, id="iso-z"),
        pytest.param("2025-01-01T00:00:00+00:00", NEW_YEAR, id="iso-offset-0"),
        pytest.param("2025-01-01T05:30:00+05:30", NEW_YEAR, id="iso-offset"),
        pytest.param("2024-12-31T19:00:00-05:00", NEW_YEAR, id="iso-negative-offset"),
        pytest.param("2025-01-01T00:00:00", NEW_YEAR, id="iso-naive-as-utc"),
        pytest.param("2025-01-01T00:00:00.250Z", "2025-01-01T00:00:00.250000Z", id="iso-millis"),
        pytest.param("2025-01-01", NEW_YEAR, id="date-only"),
    ],
)
def test_accepted_formats(value, expected):
    assert timestamp_iso(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        "",
        "   ",
        "yesterday",
        "2025-13-01 00:00:00",
        "2025-01-01 25:00:00",
        "01/02/2025",
        "-1735689600000",
        -5,
        float("nan"),
        float("inf"),
        10**30,
        10**400,
        "9" * 60,
        "1" * 65,
        [],
        {},
        ["2025-01-01"],
        {"createTime": "2025-01-01"},
    ],
    ids=repr,
)
def test_unparseable_is_none_never_an_error(value):
    assert parse_timestamp(value) is None
    assert timestamp_iso(value) is None


def test_result_is_aware_utc():
    parsed = parse_timestamp("2025-01-01T05:30:00+05:30")
    assert parsed == datetime(2025, 1, 1, tzinfo=UTC)
    assert parsed is not None and parsed.utcoffset() is not None


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)


@given(JSONISH)
def test_any_value_gives_iso_or_none(value):
    result = timestamp_iso(value)
    assert result is None or (isinstance(result, str) and result.endswith("Z"))


# --- Retry-After -----------------------------------------------------------------------------

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("30", 30.0, id="seconds"),
        pytest.param("0", 0.0, id="zero"),
        pytest.param(" 1.5 ", 1.5, id="fraction"),
        pytest.param("Thu, 01 Jan 2026 00:02:00 GMT", 120.0, id="http-date"),
        pytest.param("Thu, 01 Jan 2026 01:02:00 +0100", 120.0, id="date-with-offset"),
        pytest.param("Mon, 01 Dec 2025 00:00:00 GMT", 0.0, id="date-in-past"),
        pytest.param(None, None, id="absent"),
        pytest.param("", None, id="empty"),
        pytest.param("-3", None, id="negative"),
        pytest.param("inf", None, id="inf"),
        pytest.param("soon", None, id="word"),
        pytest.param("x" * 100, None, id="long"),
    ],
)
def test_retry_after(header, expected):
    assert parse_retry_after(header, NOW) == expected


@given(st.text(max_size=70))
def test_retry_after_never_raises(text):
    result = parse_retry_after(text, NOW)
    assert result is None or result >= 0

"""Local validation says what the upstream would say: for every kind, random params are
refused by :func:`orchestrator.kinds.validate_params` exactly when the sandbox's own
validation (our imitation of the upstream's documented rules) refuses them. A request that
would fail upstream fails at ``submit``, before a credit is at stake; one the upstream takes
is never refused here. (References to other tasks are the upstream's business: not here.)"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from orchestrator.exceptions import InvalidParams
from orchestrator.kinds import KINDS, validate_params
from orchestrator.sandbox.validation import validate

GOOD: dict[str, dict[str, Any]] = {
    "generate_music": {"customMode": False, "instrumental": False, "model": "V4_5", "prompt": "p"},
    "extend": {"defaultParamFlag": False, "audioId": "a", "model": "V4_5"},
    "replace_section": {
        "taskId": "t", "audioId": "a", "prompt": "p", "tags": "pop", "title": "T",
        "infillStartS": 10.0, "infillEndS": 20.0, "fullLyrics": "la",
    },
    "music_video": {"taskId": "t", "audioId": "a"},
    "wav": {"taskId": "t", "audioId": "a"},
    "vocal_removal": {"taskId": "t", "audioId": "a"},
    "lyrics": {"prompt": "rain"},
}  # fmt: skip

#: every field either side knows, per kind
FIELDS: dict[str, tuple[str, ...]] = {
    "generate_music": (
        "customMode", "instrumental", "model", "prompt", "style", "title", "negativeTags",
        "personaId", "vocalGender", "styleWeight", "weirdnessConstraint", "audioWeight",
    ),
    "extend": (
        "defaultParamFlag", "audioId", "model", "continueAt", "prompt", "style", "title",
        "negativeTags",
    ),
    "replace_section": (
        "taskId", "audioId", "prompt", "tags", "title", "infillStartS", "infillEndS",
        "fullLyrics", "negativeTags",
    ),
    "music_video": ("taskId", "audioId", "author", "domainName"),
    "wav": ("taskId", "audioId"),
    "vocal_removal": ("taskId", "audioId", "type"),
    "lyrics": ("prompt",),
}  # fmt: skip

LENGTHS = (0, 1, 49, 50, 51, 79, 80, 81, 99, 100, 101, 199, 200, 201, 499, 500, 501, 999, 1000,
           1001, 2999, 3000, 3001, 4999, 5000, 5001)  # fmt: skip
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-5, max_value=300),
    st.floats(min_value=-5, max_value=300, allow_nan=False, allow_infinity=False),
    st.sampled_from(LENGTHS).map(lambda n: "x" * n),
    st.sampled_from(
        ["", " ", "V4", "V4_5", "V5_5", "V9", "m", "f", "separate_vocal", "split_stem", "all"]
    ),
    st.sampled_from([0.0, 0.5, 1.0, 1.5, 10.25, 10.123, 16.0, 70.0, 6.0]),
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    kind = draw(st.sampled_from(sorted(GOOD)))
    params = dict(GOOD[kind])
    for name in draw(st.lists(st.sampled_from(FIELDS[kind]), max_size=4, unique=True)):
        if draw(st.booleans()) and name in params:
            del params[name]
        else:
            params[name] = draw(VALUES)
    return kind, params


def ours(kind: str, params: dict[str, Any]) -> str | None:
    try:
        validate_params(kind, params)
    except InvalidParams as exc:
        return str(exc)
    return None


def theirs(kind: str, params: dict[str, Any]) -> str | None:
    rejection = validate(kind, {**params, "callBackUrl": "https://example.org/cb"})  # type: ignore[arg-type]
    return None if rejection is None else f"{rejection.reason} {rejection.field}"


def test_every_kind_is_covered() -> None:
    assert set(GOOD) == set(KINDS)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
@example(("music_video", {"taskId": "", "audioId": "a"}))
@example(("music_video", {"taskId": "t", "audioId": "a", "author": None}))
@example(
    ("extend", {"defaultParamFlag": False, "audioId": "a", "model": "V4_5", "prompt": "x" * 6000})
)
@example(("generate_music", {**GOOD["generate_music"], "styleWeight": 1.5}))
def test_local_validation_agrees_with_the_upstream(request: tuple[str, dict[str, Any]]) -> None:
    kind, params = request
    mine, upstream = ours(kind, params), theirs(kind, params)
    assert (mine is None) == (upstream is None), (kind, params, mine, upstream)

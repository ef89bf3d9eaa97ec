"""Secrets never reach a log line: the redaction processor and the configured logger."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest
import structlog

from orchestrator import logs
from orchestrator.logs import REDACTED, configure, get_logger, redact, redact_text, register_secret

SECRET = "sk-live-7f3a9c1e55d04b2b"
TOKEN = "Qm9vdGxlZ2dpbmdfdG9rZW5fdGhhdF9pc19sb25nX2Vub3Vn"
SECRET_KEYS = [
    "api_key",
    "apiKey",
    "API-KEY",
    "authorization",
    "Authorization",
    "token",
    "token_hash",
    "secret",
    "hmac_key",
    "signature",
    "password",
    "callback_url",
    "callbackUrl",
    "callBackUrl",
]


@pytest.fixture(autouse=True)
def _isolated_secrets(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fresh registry of secrets per test, and structlog back to its defaults afterwards."""
    monkeypatch.setattr(logs, "_secrets", set())
    yield
    structlog.reset_defaults()


def run(event_dict: dict[str, Any]) -> MutableMapping[str, Any]:
    return redact(None, "info", dict(event_dict))


def dumped(value: object) -> str:
    return json.dumps(value)


# --- the processor ----------------------------------------------------------------------------


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_secret_keys_are_redacted_at_top_level(key: str) -> None:
    out = run({"event": "x", key: SECRET})
    assert out[key] == REDACTED


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_secret_keys_are_redacted_at_any_depth(key: str) -> None:
    nested = {"outer": [{"inner": {key: SECRET, "ok": 1}}, ({key: [SECRET]},)]}
    out = run({"event": "x", "data": nested})
    assert SECRET not in dumped(out)
    assert out["data"]["outer"][0]["inner"] == {key: REDACTED, "ok": 1}
    assert out["data"]["outer"][1][0] == {key: REDACTED}


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_secret_key_holding_a_structure_is_redacted_whole(key: str) -> None:
    out = run({"event": "x", key: {"a": SECRET, "b": [1, 2]}})
    assert out[key] == REDACTED


def test_non_secret_values_are_kept() -> None:
    out = run({"event": "job_transitioned", "key": "song-1", "polls": 3, "ok": None, "f": 1.5})
    assert out == {"event": "job_transitioned", "key": "song-1", "polls": 3, "ok": None, "f": 1.5}


@pytest.mark.parametrize(
    "event", ["token_issued", "callback_url_built", "secret_rotated", "api_key_missing"]
)
def test_the_event_field_is_kept(event: str) -> None:
    assert run({"event": event})["event"] == event


@pytest.mark.parametrize(
    "text",
    [
        f"Bearer {SECRET}",
        f"bearer {SECRET}",
        f"Authorization: Bearer {SECRET}",
        f"request failed (headers={{'Authorization': 'Bearer {SECRET}'}}) retrying",
        f"BEARER   {SECRET}.x/y+z=",
    ],
)
def test_bearer_values_are_redacted_inside_any_string(text: str) -> None:
    out = redact_text(text)
    assert SECRET not in out
    assert "Bearer [redacted]" in out
    nested = run({"event": "x", "msg": text, "deep": [{"m": text}]})
    assert SECRET not in dumped(nested)


@pytest.mark.parametrize(
    "text",
    [
        f"/callbacks/{TOKEN}",
        f"http://127.0.0.1:8787/callbacks/{TOKEN}",
        f"POST https://hooks.example.org/base/callbacks/{TOKEN}?x=1 -> 200",
    ],
)
def test_callback_token_paths_are_redacted(text: str) -> None:
    out = redact_text(text)
    assert TOKEN not in out
    assert "/callbacks/[redacted]" in out
    assert TOKEN not in dumped(run({"event": "x", "url": text, "more": [text]}))


def test_callback_path_without_token_is_left_alone() -> None:
    assert redact_text("/callbacks/") == "/callbacks/"
    assert redact_text("GET /healthz") == "GET /healthz"


def test_registered_secret_is_redacted_inside_longer_strings() -> None:
    register_secret(SECRET)
    out = redact_text(f"upstream said: invalid key {SECRET}!!")
    assert out == f"upstream said: invalid key {REDACTED}!!"
    event = run({"event": "x", "msg": f"k={SECRET}", "list": [f"a{SECRET}b"]})
    assert SECRET not in dumped(event)


def test_register_secret_ignores_empty_and_tiny_values() -> None:
    register_secret(None)
    register_secret("")
    register_secret("abc")
    assert redact_text("abc def") == "abc def"


def test_non_string_values_pass_through() -> None:
    out = run({"event": "x", "n": 5, "b": True, "none": None, "l": [1, None, 2.5]})
    assert out["n"] == 5
    assert out["b"] is True
    assert out["l"] == [1, None, 2.5]


# --- the configured logger --------------------------------------------------------------------


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_configured_json_logger_never_writes_a_secret() -> None:
    stream = io.StringIO()
    configure("debug", "json", stream=stream)
    register_secret(SECRET)
    log = get_logger("test")

    log.info("plain_key", api_key=SECRET)
    log.info("header", authorization=f"Bearer {SECRET}")
    log.info("nested", data={"outer": [{"inner": {"token": SECRET}}]}, hmac=SECRET)
    log.info("nested_url", data=[{"cfg": {"callBackUrl": f"http://h/callbacks/{TOKEN}"}}])
    log.info("bearer_in_text", message=f"sent Authorization: Bearer {TOKEN}")
    log.info("callback_path", path=f"/callbacks/{TOKEN}")
    log.info("registered", message=f"upstream echoed the key {SECRET} back")
    log.warning("signature", signature=SECRET, secret=SECRET)
    try:
        raise RuntimeError(f"boom with {SECRET} and /callbacks/{TOKEN}")
    except RuntimeError:
        log.exception("crashed")

    text = stream.getvalue()
    assert SECRET not in text
    assert TOKEN not in text
    records = lines(stream)
    assert [r["event"] for r in records] == [
        "plain_key",
        "header",
        "nested",
        "nested_url",
        "bearer_in_text",
        "callback_path",
        "registered",
        "signature",
        "crashed",
    ]
    assert records[0]["api_key"] == REDACTED
    assert records[0]["level"] == "info"
    assert records[2]["data"] == {"outer": [{"inner": {"token": REDACTED}}]}
    assert "exception" in records[-1]
    assert "RuntimeError" in records[-1]["exception"]


def test_configured_level_filters() -> None:
    stream = io.StringIO()
    configure("warning", "json", stream=stream)
    log = get_logger("test")
    log.info("quiet")
    log.warning("loud", token=SECRET)
    (record,) = lines(stream)
    assert record["event"] == "loud"
    assert record["token"] == REDACTED


def test_console_format_is_redacted_too() -> None:
    stream = io.StringIO()
    configure("info", "console", stream=stream)
    get_logger("test").info("hello", api_key=SECRET, note=f"Bearer {SECRET}")
    assert "hello" in stream.getvalue()
    assert SECRET not in stream.getvalue()

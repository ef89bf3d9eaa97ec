"""Structured logging: structlog JSON lines with stable snake_case event names.

Configured once, at the entry point (:func:`configure`). A redaction processor runs last
before rendering: any key that names a secret, any bearer header, any callback token in a
URL path, and any registered secret value is replaced by ``"[redacted]"``.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
import threading
from collections.abc import MutableMapping
from enum import StrEnum
from typing import Any, TextIO

import structlog

REDACTED = "[redacted]"
_SECRET_KEYS = re.compile(
    r"(api[_-]?key|authorization|token|secret|hmac|password|signature|callback_?url|callBackUrl)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/=-]+")
#: callback URLs carry the job's token as the last path segment
_CALLBACK_PATH = re.compile(r"(/callbacks/)[A-Za-z0-9_-]{8,}")

_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Redact this exact value wherever it appears in a log line (API keys, HMAC keys)."""
    if value and len(value) >= 4:
        with _lock:
            _secrets.add(value)


def redact_text(text: str) -> str:
    text = _BEARER.sub("Bearer " + REDACTED, text)
    text = _CALLBACK_PATH.sub(r"\1" + REDACTED, text)
    for secret in tuple(_secrets):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(k, str) and _SECRET_KEYS.search(k) else _redact_value(v))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_redact_value(v) for v in value]
    return value


def redact(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: scrub secrets from every field."""
    for key in list(event_dict):
        value = event_dict[key]
        if key != "event" and _SECRET_KEYS.search(key) and value is not None:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _redact_value(value)
    return event_dict


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # "nan", "inf": a string, so the line stays strict JSON
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _strict_log_json(event_dict: Any, **options: Any) -> str:
    """Log lines are strict JSON: a non-finite number becomes a string, never ``NaN``."""
    try:
        return json.dumps(event_dict, allow_nan=False, **options)
    except ValueError:
        return json.dumps(_finite(event_dict), allow_nan=False, **options)


class LogFormat(StrEnum):
    JSON = "json"  #: one JSON object per line (the default; for log shippers)
    CONSOLE = "console"  #: human-readable lines


def configure(
    level: str = "info", fmt: LogFormat | str = LogFormat.JSON, stream: TextIO | None = None
) -> None:
    """Set up structlog once for the process."""
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_strict_log_json)
        if LogFormat(fmt) == LogFormat.JSON
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)

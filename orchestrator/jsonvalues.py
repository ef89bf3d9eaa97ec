"""Strict JSON: what the project accepts, stores, sends and prints.

Python's ``json`` accepts and writes ``NaN``, ``Infinity`` and ``-Infinity``, which are not
JSON (RFC 8259): another program reading our output, the upstream reading our request, or
PostgreSQL reading our rows may refuse them. So every JSON value that enters (job params,
upstream answers) is checked here, and every JSON text that leaves is written with
``allow_nan=False``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def loads_strict(text: str | bytes) -> Any:
    """``json.loads`` that refuses ``NaN``, ``Infinity`` and ``-Infinity``."""
    return json.loads(text, parse_constant=_refuse_constant)


def dumps_strict(value: Any, **options: Any) -> str:
    """``json.dumps`` that raises :class:`ValueError` instead of writing non-JSON numbers."""
    return json.dumps(value, allow_nan=False, **options)


def dumps_body(value: Any) -> bytes:
    """A request body: compact strict JSON in UTF-8 (lone surrogates raise ValueError)."""
    text = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8")


def json_problem(value: Any, where: str = "params") -> str | None:
    """Why ``value`` is not a strict JSON value (naming the place), or None if it is one."""
    if value is None or isinstance(value, bool | int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where} is {value!r}, which JSON cannot hold"
    if isinstance(value, str):
        return None if is_unicode_text(value) else f"{where} is not valid Unicode text"
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            problem = json_problem(item, f"{where}[{index}]")
            if problem:
                return problem
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{where} has a key {key!r} that is not a string"
            if not is_unicode_text(key):
                return f"{where} has a key that is not valid Unicode text"
            problem = json_problem(item, f"{where}.{key}")
            if problem:
                return problem
        return None
    return f"{where} is a {type(value).__name__}, not a JSON value"


def is_unicode_text(text: str) -> bool:
    """True if ``text`` encodes as UTF-8 (no lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_storable_word(text: str) -> bool:
    """An identifier or URL from upstream that may go into a plain text column: printable
    (no NUL or other control characters, which PostgreSQL refuses) and valid Unicode."""
    return text.isprintable() and is_unicode_text(text)

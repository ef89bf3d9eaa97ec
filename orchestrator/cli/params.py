"""Job params from the command line: ``--params JSON`` and repeated ``--param NAME=VALUE``."""

from __future__ import annotations

import argparse
from typing import Any

from orchestrator.exceptions import UsageError
from orchestrator.jsonvalues import loads_strict


def parse_param(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise UsageError(f"--param takes NAME=VALUE, got {text!r}")
    try:
        return name, loads_strict(value)  # "NaN" is not JSON: it stays the string "NaN"
    except ValueError:
        return name, value


def params_from(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if args.params:
        try:
            loaded = loads_strict(args.params)
        except ValueError as exc:
            raise UsageError(f"--params is not valid JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise UsageError("--params must be a JSON object")
        params.update(loaded)
    for item in args.param or []:
        name, value = parse_param(item)
        params[name] = value
    return params

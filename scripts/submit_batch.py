#!/usr/bin/env python3
"""Submit a batch of jobs from a JSON or CSV file, then (optionally) wait for them.

JSON: a list of {"key": ..., "kind": ..., "params": {...}}.
CSV:  columns key, kind, and params (a JSON object) -- or one column per param, where a value
      that parses as JSON is taken as JSON, otherwise as a string.

    python scripts/submit_batch.py jobs.json [--config config.toml] [--wait] [--timeout 900]

Idempotent: re-running it with the same file returns the existing jobs. Exit 0 when every
job was recorded (and, with --wait, completed); 1 otherwise; 2 for a bad file.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

from orchestrator.api import Orchestrator
from orchestrator.exceptions import OrchestratorError
from orchestrator.states import JobState


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def load_batch(path: Path) -> list[dict[str, Any]]:
    if path.suffix.lower() == ".json":
        rows = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ValueError("a JSON batch is a list of objects")
        return rows
    if path.suffix.lower() == ".csv":
        out = []
        with path.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                key, kind = row.pop("key", None), row.pop("kind", None)
                if "params" in row:
                    params = json.loads(row.pop("params") or "{}")
                else:
                    params = {k: _value(v) for k, v in row.items() if v != ""}
                out.append({"key": key or None, "kind": kind, "params": params})
        return out
    raise ValueError("the batch file must end in .json or .csv")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--wait", action="store_true")
    parser.add_argument("--timeout", type=float, default=None)
    args = parser.parse_args(argv)
    try:
        rows = load_batch(args.file)
    except (OSError, ValueError) as exc:
        print(f"error: {args.file}: {exc}", file=sys.stderr)
        return 2
    failures = 0
    with Orchestrator(args.config) as orc:
        keys = []
        for index, row in enumerate(rows, start=1):
            try:
                job = orc.submit(row.get("kind", ""), row.get("params") or {}, key=row.get("key"))
            except OrchestratorError as exc:
                print(f"row {index}: error: {exc}", file=sys.stderr)
                failures += 1
                continue
            print(f"{job.key}\t{job.state.value}")
            keys.append(job.key)
        if args.wait:
            for key in keys:
                try:
                    done = orc.wait(key, timeout=args.timeout)
                except TimeoutError as exc:
                    print(f"{key}: {exc}", file=sys.stderr)
                    failures += 1
                    continue
                print(f"{key}\t{done.state.value}")
                failures += done.state != JobState.COMPLETED
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`orchestrator [--config PATH] COMMAND`: the command line.

Exit codes: 0 success; 1 the thing asked for did not happen (a job failed, `--wait` ended in
another state); 2 a user mistake (bad config, unknown key, bad params) with a one-line error
and no traceback; 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from orchestrator import __version__
from orchestrator.exceptions import (
    ConfigError,
    InvalidTransition,
    OrchestratorError,
    SchemaMismatch,
    StoreError,
    UsageError,
)
from orchestrator.states import JobState


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator",
        description="Submit, track, poll and download jobs of a slow, paid generation API.",
    )
    parser.add_argument(
        "--config", type=Path, help="config file (default: $ORCHESTRATOR_CONFIG or ./config.toml)"
    )
    parser.add_argument("--version", action="version", version=f"orchestrator {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("run", help="the daemon, in the foreground (stops cleanly on SIGTERM/SIGINT)")

    p = sub.add_parser("submit", help="record a job and print its key")
    p.add_argument("kind", help="the job kind (generate_music, music_video, wav, ...)")
    p.add_argument(
        "--param",
        action="append",
        metavar="NAME=VALUE",
        help="a param (VALUE as JSON if it parses)",
    )
    p.add_argument("--params", metavar="JSON", help="params as a JSON object")
    p.add_argument("--key", help="the job's key (default: generated)")
    p.add_argument(
        "--after",
        action="append",
        metavar="KEY",
        help="wait for this recorded job to complete first (repeatable); params may refer "
        "to it: 'audioId=${KEY.tracks[0].id}'",
    )
    p.add_argument(
        "--for-each", metavar="KEY.tracks", help="one child job per item of a parent's list"
    )
    p.add_argument("--wait", action="store_true", help="follow the job until it finishes")
    p.add_argument(
        "--timeout", type=float, default=None, help="with --wait: give up after N seconds"
    )
    p.add_argument("--json", action="store_true", help="print the job as JSON")

    p = sub.add_parser("status", help="every job, as a table or JSON")
    p.add_argument("--json", action="store_true")
    p.add_argument("--state", choices=[s.value for s in JobState])
    p.add_argument("--kind")

    p = sub.add_parser("show", help="one job with its event timeline")
    p.add_argument("key")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("cancel", help="stop tracking a job")
    p.add_argument("key")
    p.add_argument("--tree", action="store_true", help="and every job below it in its pipeline")
    p = sub.add_parser("retry", help="a new attempt for a failed, cancelled or timed-out job")
    p.add_argument("key")

    p = sub.add_parser("resolve", help="decide an uncertain job")
    p.add_argument("key")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--resubmit", action="store_true", help="submit it again (may pay twice)")
    group.add_argument("--fail", action="store_true", help="mark it failed")
    group.add_argument("--task-id", metavar="ID", help="the upstream accepted it as this taskId")

    p = sub.add_parser("top", help="a live view: counts, rates, the breaker, transitions")
    p.add_argument("--once", action="store_true", help="print one frame and exit")

    p = sub.add_parser("init", help="write a commented config.toml and the var/ layout")
    p.add_argument("dir", nargs="?", type=Path, default=Path("."), help="default: here")
    p.add_argument("--force", action="store_true", help="replace an existing config.toml")

    p = sub.add_parser("db", help="the database")
    db = p.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    q = db.add_parser("backup", help="an online, consistent copy of the SQLite database")
    q.add_argument("path", type=Path, help="the copy (must not exist)")
    db.add_parser("current", help="the schema revision of the database, and this code's")
    db.add_parser("upgrade", help="migrate the database to this orchestrator's schema")

    p = sub.add_parser("notify", help="the notifications sent to your application")
    notify = p.add_subparsers(dest="notify_command", required=True, metavar="ACTION")
    q = notify.add_parser("list", help="the outbox: every notification and its state")
    q.add_argument("--state", choices=["pending", "delivered", "dead"])
    q.add_argument("--json", action="store_true")
    q = notify.add_parser("replay", help="send notifications again (the same webhook-id)")
    q.add_argument("ids", nargs="*", type=int, metavar="ID")
    q.add_argument("--since", metavar="TIME", help="every notification made since (ISO 8601)")
    q.add_argument("--dead", action="store_true", help="every dead notification")
    q = notify.add_parser("test", help="send a signed ping to a target now")
    q.add_argument("name", help="the [[notify]] name")
    q = notify.add_parser("enable", help="let a target a 410 disabled receive again")
    q.add_argument("name", help="the [[notify]] name")

    p = sub.add_parser("sandbox", help="the local imitation of the upstream API")
    from orchestrator.sandbox.cli import add_arguments as sandbox_arguments

    sandbox_arguments(p)

    p = sub.add_parser("demo", help="sandbox + daemon + sample jobs, end to end")
    p.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="where to keep the demo's database and files (default: ./var/demo)",
    )
    p.add_argument(
        "--time-scale", type=float, default=0.15, help="sandbox speed (smaller is faster)"
    )
    p.add_argument("--no-callbacks", action="store_true", help="drop every callback: polling only")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "run":
        # before any heavy import: a SIGTERM from here on is a clean stop, not a death
        import threading

        from orchestrator.daemon.signals import stop_on_signals

        args.stop_event = threading.Event()
        args.restore_signals = stop_on_signals(args.stop_event)
    from orchestrator.logs import configure

    configure("warning", "json")  # `run` reconfigures from the settings; stdout stays clean
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ConfigError, UsageError, InvalidTransition, SchemaMismatch) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"error: the database failed: {exc}", file=sys.stderr)
        return 1
    except OrchestratorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    from orchestrator.cli import commands

    if args.command == "sandbox":
        from orchestrator.sandbox.cli import run as run_sandbox

        code: int = run_sandbox(args)
        return code
    if args.command == "demo":
        from orchestrator.cli.demo import run_demo

        demo_code: int = run_demo(args)
        return demo_code
    handler = getattr(commands, f"cmd_{args.command}")
    result: int = handler(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

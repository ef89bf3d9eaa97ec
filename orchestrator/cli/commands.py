"""The CLI's commands: thin wrappers over :class:`orchestrator.api.Orchestrator`."""

from __future__ import annotations

import argparse
import sys
import threading
from datetime import UTC, datetime

from orchestrator.api import Orchestrator
from orchestrator.cli import render
from orchestrator.cli.params import params_from
from orchestrator.config import load_settings
from orchestrator.daemon.signals import stop_on_signals
from orchestrator.domain import Job
from orchestrator.exceptions import UsageError
from orchestrator.jsonvalues import dumps_strict
from orchestrator.observations import Resolution
from orchestrator.service import notification_json
from orchestrator.states import JobState


def _client(args: argparse.Namespace) -> Orchestrator:
    return Orchestrator(args.config)


def cmd_run(args: argparse.Namespace) -> int:
    # main() routed SIGTERM/SIGINT to this event before any heavy import: a signal during
    # start-up is a clean stop, never Python's default death (docs/durability.md)
    stop: threading.Event = getattr(args, "stop_event", None) or threading.Event()
    restore = getattr(args, "restore_signals", None) or stop_on_signals(stop)
    try:
        from orchestrator.daemon.runner import Daemon
        from orchestrator.logs import configure

        settings = load_settings(args.config)
        configure(settings.logging.level, settings.logging.format)
        return Daemon(settings, stop_event=stop).run_forever()
    finally:
        restore()


def cmd_submit(args: argparse.Namespace) -> int:
    with _client(args) as orc:
        job = orc.submit(
            args.kind,
            params_from(args),
            key=args.key,
            after=args.after or None,
            for_each=args.for_each,
        )
        if not args.wait:
            if args.json:
                print(dumps_strict(job.to_json(), indent=2))
            else:
                print(job.key)
            return 0
        print(job.key, file=sys.stderr if args.json else sys.stdout, flush=True)

        def progress(j: Job) -> None:
            render.progress_line(j, sys.stderr)

        try:
            done = orc.wait(job.key, timeout=args.timeout, on_change=progress)
        except TimeoutError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        if args.json:
            print(dumps_strict(done.to_json(), indent=2))
        return 0 if done.state == JobState.COMPLETED else 1


def cmd_status(args: argparse.Namespace) -> int:
    with _client(args) as orc:
        if args.json:
            print(dumps_strict(orc.status_json(state=args.state, kind=args.kind), indent=2))
            return 0
        render.status_table(orc.list(state=args.state, kind=args.kind), orc.service.hold())
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with _client(args) as orc:
        detail = orc.detail(args.key)
    if args.json:
        print(dumps_strict(detail.show_json(), indent=2))
    else:
        render.show(detail)
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    with _client(args) as orc:
        if args.tree:
            cancelled = orc.cancel_tree(args.key)
            for job in cancelled:
                print(f"{job.key}: {job.state.value}")
            if not cancelled:
                print(f"{args.key}: nothing left to cancel in its tree")
            return 0
        job = orc.cancel(args.key)
    print(f"{job.key}: {job.state.value}")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    with _client(args) as orc:
        job = orc.retry(args.key)
    print(f"{job.key}: {job.state.value}")
    return 0


def cmd_notify(args: argparse.Namespace) -> int:
    with _client(args) as orc:
        action = args.notify_command
        if action == "list":
            rows = orc.notifications(state=args.state)
            disabled = orc.service.disabled_targets()
            if args.json:
                body = {
                    "notifications": [notification_json(n) for n in rows],
                    "disabled_targets": disabled,
                }
                print(dumps_strict(body, indent=2))
            else:
                render.notifications_table(rows, disabled)
            return 0
        if action == "replay":
            since = _parse_time(args.since) if args.since else None
            count = orc.replay(args.ids, since=since, dead=args.dead)
            print(f"{count} notification(s) due again (the daemon sends them)")
            return 0
        if action == "enable":
            enabled = orc.enable_target(args.name)
            print(f"{args.name}: {'enabled' if enabled else 'was not disabled'}")
            return 0
        answer = orc.test_target(args.name)
        shown = answer.status if answer.status is not None else "no answer"
        print(f"{args.name}: ping {'delivered' if answer.delivered else 'failed'} ({shown})")
        if answer.error:
            print(f"  {answer.error}")
        return 0 if answer.delivered else 1


def _parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--since {text!r}: expected an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def cmd_top(args: argparse.Namespace) -> int:
    from orchestrator.cli.top import run_top

    with _client(args) as orc:
        return run_top(orc, once=args.once)


def cmd_init(args: argparse.Namespace) -> int:
    """A commented config.toml (every option, the embedded defaults) and var/ under DIR."""
    from importlib.resources import files

    target = args.dir / "config.toml"
    if target.exists() and not args.force:
        raise UsageError(f"{target} exists; --force replaces it")
    args.dir.mkdir(parents=True, exist_ok=True)
    template = files("orchestrator.cli").joinpath("config_template.toml").read_text("utf-8")
    target.write_text(template, encoding="utf-8")
    (args.dir / "var" / "artifacts").mkdir(parents=True, exist_ok=True)
    print(f"wrote {target} and {args.dir / 'var'}/")
    print(f"next: orchestrator --config {target} run   (see docs/deploy.md)")
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    if args.db_command == "current":
        from orchestrator.stores.migrate import current
        from orchestrator.stores.schema import HEAD, UPGRADE_HINT

        found = current(settings.database_url)
        print(f"database: {found.describe()} ({found.state}); this orchestrator: revision {HEAD}")
        if found.state == "behind":
            print(UPGRADE_HINT)
        return 0 if found.state in ("current", "empty") else 2
    if args.db_command == "upgrade":
        from orchestrator.stores.migrate import upgrade

        done = upgrade(settings.database_url)
        if done.changed:
            print(f"upgraded the database from {done.before.describe()} to revision {done.after}")
        else:
            print(f"the database is at revision {done.after} already: nothing to do")
        return 0
    from orchestrator.stores.backup import backup

    copied = backup(settings.database_url, args.path)
    print(f"backed up to {copied} ({copied.stat().st_size} bytes)")
    return 0


def cmd_resolve(args: argparse.Namespace) -> int:
    if args.resubmit:
        action = Resolution.RESUBMIT
    elif args.fail:
        action = Resolution.FAIL
    else:
        action = Resolution.TASK_ID
    with _client(args) as orc:
        job = orc.resolve(args.key, action.value, args.task_id)
    print(f"{job.key}: {job.state.value}")
    return 0

"""``orchestrator sandbox``: run the imitation upstream in the foreground."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from types import FrameType

from orchestrator.sandbox.config import SandboxConfig
from orchestrator.sandbox.durations import parse_durations
from orchestrator.sandbox.faults import parse_faults
from orchestrator.sandbox.profiles import PROFILES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The sandbox's flags, for the main CLI's ``sandbox`` subcommand."""
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8900, help="port, 0 for any (default 8900)")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("SUNO_API_KEY") or "sandbox-key",
        help="the accepted bearer key (default: $SUNO_API_KEY, else sandbox-key)",
    )
    parser.add_argument(
        "--profile", choices=sorted(PROFILES), default="sunoapi", help="provider profile"
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="multiplies every duration (0.01: a 100 s lifecycle takes 1 s)",
    )
    parser.add_argument(
        "--faults",
        default="",
        help="e.g. drop=0.3,duplicate=0.2,early=0.1,lag=2 (see docs/sandbox.md)",
    )
    parser.add_argument(
        "--durations",
        default="uniform",
        help="task durations: uniform (default), lognormal, or lognormal:first=40/0.2,gap=20/0.35"
        " (see docs/sandbox.md)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    parser.add_argument(
        "--hmac-key", default=None, help="kie profile: sign callbacks with this key"
    )
    parser.add_argument(
        "--url-ttl",
        type=float,
        default=None,
        help="artifact URL lifetime in seconds (default: 14 days sunoapi, 20 min kie)",
    )
    parser.add_argument("--credits", type=int, default=1_000_000, help="starting balance")


def build_config(args: argparse.Namespace) -> SandboxConfig:
    """The config the flags describe; raises ValueError with a one-line reason."""
    return SandboxConfig(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        profile=args.profile,
        time_scale=args.time_scale,
        faults=parse_faults(args.faults or ""),
        durations=parse_durations(args.durations or "uniform"),
        seed=args.seed,
        hmac_key=args.hmac_key,
        url_ttl_s=args.url_ttl,
        credits=args.credits,
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; 0 on a clean stop, 2 on bad flags or a busy port."""
    from orchestrator.sandbox.server import SandboxServer  # the app only when it is served

    try:
        config = build_config(args)
    except ValueError as exc:
        print(f"orchestrator sandbox: error: {exc}", file=sys.stderr)
        return 2
    server = SandboxServer(config)
    try:
        server.start()
    except OSError as exc:
        print(
            f"orchestrator sandbox: error: cannot listen on {config.host}:{config.port}: "
            f"{exc.strerror or exc}",
            file=sys.stderr,
        )
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        faults = config.faults.to_spec() or "none"
        print(
            f"sandbox listening on {server.url} (profile {config.profile}, "
            f"time-scale {config.time_scale:g}, durations {config.durations.to_spec()}, "
            f"faults {faults}, seed {config.seed})",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.stop()
    return 0

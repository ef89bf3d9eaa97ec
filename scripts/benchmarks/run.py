"""scripts/bench: the orchestrator against three baselines, side by side, in one run.

Every scenario starts one sandbox on loopback and runs every system against it at the same
time, with the same jobs and faults; figures come from the sandbox ledger (what the upstream
saw) and each system's own record (what it saw, and when). See docs/performance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from metrics import latency_figures, lateness_figures, pct, submits_by_system
from report import chart, markdown
from systems import (
    ROOT,
    BaselineSystem,
    OrchestratorSystem,
    System,
)

from orchestrator.sandbox.config import SandboxConfig
from orchestrator.sandbox.faults import parse_faults
from orchestrator.sandbox.server import SandboxServer

#: the faults of the chaos scenario (scripts/chaos's mix, without process kills)
CHAOS_FAULTS = (
    "drop=0.3,duplicate=0.3,early=0.2,reorder=0.3,poll_error=0.1,submit_error=0.1,"
    "rate_limit=0.05,reset=0.05,http200=0.05,fail=0.1,lag=2,slow=0.02,slow_s=1"
)
BASELINES = ("recipe", "apscheduler", "celery")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def redis_available() -> str | None:
    """None if Redis answers PING on 127.0.0.1:6379, else the reason."""
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1) as s:
            s.sendall(b"PING\r\n")
            answer = s.recv(16)
    except OSError as exc:
        return f"Redis on 127.0.0.1:6379 unreachable: {exc}"
    return None if answer.startswith(b"+PONG") else f"Redis answered {answer!r}"


def sandbox(faults: str, time_scale: float, seed: int) -> SandboxServer:
    server = SandboxServer(
        SandboxConfig(
            port=0,
            time_scale=time_scale,
            faults=parse_faults(faults),
            seed=seed,
            rate_limit_count=0,
            threads=32,
        )
    )
    server.start()
    return server


class Run:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.quick = args.quick
        self.scale = args.time_scale
        self.interval = 30.0 * self.scale
        self.baselines = [b for b in BASELINES if b not in args.skip]
        self.unavailable: dict[str, str] = {}
        if "celery" in self.baselines:
            reason = redis_available()
            if reason:
                self.unavailable["celery"] = reason
                self.baselines.remove("celery")
        self.results: dict[str, Any] = {
            "mode": "quick" if self.quick else "full",
            "started_at": datetime.now(UTC).isoformat(),
            "time_scale": self.scale,
            "poll_interval_wall_s": self.interval,
            "unavailable": self.unavailable,
            "scenarios": {},
        }

    def systems(self, tag: str, url: str, keys: dict[str, list[str]], **kw: Any) -> list[System]:
        out: list[System] = []
        orch = OrchestratorSystem(
            self.work / tag / "orchestrator",
            url,
            interval_s=self.interval,
            scale=self.scale,
            **kw.get("orch", {}),
        )
        orch.record(keys["orchestrator"])
        out.append(orch)
        for name in self.baselines:
            out.append(
                BaselineSystem(
                    name,
                    self.work / tag / name,
                    url,
                    interval_s=kw.get("interval", self.interval),
                    keys=keys[name],
                    timeout_s=kw.get("timeout", 120),
                    serve=kw.get("serve", False),
                )
            )
        return out

    # --- scenarios -----------------------------------------------------------------------

    def latency(self, tag: str, faults: str, n: int, seed: int) -> None:
        log(f"{tag}: {n} jobs per system, faults {faults or 'none'!r}")
        names = ["orchestrator", *self.baselines]
        keys = {name: [f"{tag}-{name}-{i}" for i in range(n)] for name in names}
        timeout = 180 * self.scale + 8 * self.interval + 20
        server = sandbox(faults, self.scale, seed)
        systems: list[System] = []
        try:
            systems = self.systems(tag, server.url, keys, timeout=timeout)
            for s in systems:
                s.start()
            deadline = time.monotonic() + timeout + 5
            orch = systems[0]
            assert isinstance(orch, OrchestratorSystem)
            while time.monotonic() < deadline:
                for s in systems:
                    s.sample()
                baselines_done = all(
                    isinstance(s, BaselineSystem) and s.finished() for s in systems[1:]
                )
                if baselines_done and orch.terminal_count() >= n:
                    break
                time.sleep(0.25)
            ledger = server.ledger()
            owned = submits_by_system(ledger, systems)
            figures = {}
            for s in systems:
                s.stop()
                figures[s.name] = latency_figures(ledger, s, keys[s.name], owned[s.name])
            self.results["scenarios"][tag] = {"faults": faults, "jobs": n, "systems": figures}
        finally:
            for s in systems:
                s.stop()
            server.stop()

    def scale_run(self, n: int, rounds: int, seed: int) -> None:
        tag = f"scale-{n}"
        log(f"{tag}: {n} in-flight jobs per system, 30 s interval, {rounds} round(s)")
        names = ["orchestrator", *self.baselines]
        keys = {name: [f"{tag}-{name}-{i}" for i in range(n)] for name in names}
        # lifecycles 100x longer than real: every task stays in flight; no callbacks
        server = sandbox("drop=1", 100.0, seed)
        systems: list[System] = []
        interval = 30.0
        try:
            systems = self.systems(
                tag,
                server.url,
                keys,
                interval=interval,
                timeout=3600,
                orch={"jitter": 0.0, "tick_s": 0.5, "concurrency": 16, "callbacks": True},
            )
            orch = systems[0]
            assert isinstance(orch, OrchestratorSystem)
            # the orchestrator's own interval is 30 s here, not the scaled one
            orch.config.write_text(
                orch.config.read_text().replace(
                    f"interval_s = {self.interval}\n", f"interval_s = {interval}\n"
                )
            )
            for s in systems:
                s.start()
            # bounded wait for every system's submits to land
            submit_deadline = time.monotonic() + max(60, n / 50)
            while time.monotonic() < submit_deadline:
                for s in systems:
                    s.sample()
                if len(server.ledger()["submits"]) >= n * len(systems):
                    break
                time.sleep(1.0)
            window_end = time.time() + interval * rounds + 3
            while time.time() < window_end:
                for s in systems:
                    s.sample()
                time.sleep(0.5)
            ledger = server.ledger()
            owned = submits_by_system(ledger, systems)
            figures = {}
            for s in systems:
                s.sample()
                fig = lateness_figures(ledger, owned[s.name], interval, window_end)
                assert s.monitor is not None
                fig["cpu_s"] = s.monitor.cpu_s
                fig["peak_rss_mb"] = s.monitor.peak_rss / 1e6
                figures[s.name] = fig
            self.results["scenarios"][tag] = {"jobs": n, "rounds": rounds, "systems": figures}
        finally:
            for s in systems:
                s.stop()
            server.stop()

    def ingest(self, jobs: int, duration: float, seed: int) -> None:
        import subprocess

        tag = "ingest"
        log(f"{tag}: {duration:g} s of callbacks per system from 2 load processes")
        figures: dict[str, Any] = {}
        for name in ["orchestrator", *self.baselines]:
            server = sandbox("drop=1", 100.0, seed)
            systems: list[System] = []
            try:
                keys = {name: [f"{tag}-{name}-{i}" for i in range(jobs)]}
                saved = self.baselines
                self.baselines = [] if name == "orchestrator" else [name]
                made = self.systems(
                    f"{tag}-{name}",
                    server.url,
                    {"orchestrator": [], **keys},
                    serve=True,
                    timeout=600,
                )
                self.baselines = saved
                systems = made if name == "orchestrator" else made[1:]
                system = systems[0]
                system.start()
                deadline = time.monotonic() + 30
                targets: list[dict[str, str]] = []
                while time.monotonic() < deadline:
                    ledger = server.ledger()
                    targets = [
                        {"url": e["params"]["callBackUrl"], "task_id": e["taskId"]}
                        for e in ledger["submits"]
                        if e.get("taskId") and system.owns(e["params"].get("callBackUrl", ""))
                    ]
                    if len(targets) >= jobs:
                        break
                    time.sleep(0.2)
                tfile = self.work / f"{tag}-{name}-targets.json"
                tfile.write_text(json.dumps(targets))
                procs = []
                for i in range(2):
                    out = self.work / f"{tag}-{name}-load{i}.json"
                    procs.append(
                        (
                            out,
                            subprocess.Popen(
                                [
                                    sys.executable,
                                    str(Path(__file__).with_name("loadgen.py")),
                                    "--targets",
                                    str(tfile),
                                    "--duration",
                                    str(duration),
                                    "--threads",
                                    "8",
                                    "--offset",
                                    str(i * 7),
                                    "--out",
                                    str(out),
                                ]
                            ),
                        )
                    )
                while any(p.poll() is None for _, p in procs):
                    system.sample()
                    time.sleep(0.2)
                acked, errors, elapsed, lat = 0, 0, 0.0, []
                for out, p in procs:
                    p.wait(duration + 60)
                    data = json.loads(out.read_text())
                    acked += data["acked"]
                    errors += data["errors"]
                    elapsed = max(elapsed, data["elapsed_s"])
                    lat += data["latencies_ms"]
                system.stop()
                if isinstance(system, OrchestratorSystem):
                    stored = system.callback_events()
                else:
                    assert isinstance(system, BaselineSystem)
                    stored = int(system.results()["callbacks_stored"])
                figures[name] = {
                    "acked": acked,
                    "errors": errors,
                    "callbacks_per_s": acked / elapsed if elapsed else None,
                    "response_ms_p99": pct(lat, 99),
                    "response_ms_p50": pct(lat, 50),
                    "stored": stored,
                    "lost": max(0, acked - stored),
                }
                log(
                    f"{tag} {name}: {figures[name]['callbacks_per_s']:.0f}/s, lost "
                    f"{figures[name]['lost']}"
                )
            finally:
                for s in systems:
                    s.stop()
                server.stop()
        self.results["scenarios"][tag] = {"duration_s": duration, "systems": figures}


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench")
    parser.add_argument("--quick", action="store_true", help="small N, under 2 minutes")
    parser.add_argument("--jobs", type=int, help="jobs per system per latency scenario")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=None,
        help="sandbox time scale (0.03 quick, 0.05 full); the 30 s poll interval scales with it",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        help="leave a baseline out (recipe, apscheduler, celery)",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help="run only these scenarios (latency, chaos, scale, ingest)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    args = parser.parse_args()
    n = args.jobs or (20 if args.quick else 100)
    if args.time_scale is None:
        args.time_scale = 0.03 if args.quick else 0.05
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = args.out / stamp
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    only = set(args.only) or {"latency", "chaos", "scale", "ingest"}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        run = Run(args, Path(tmp))
        for name, reason in run.unavailable.items():
            log(f"{name}: unavailable ({reason})")
        try:
            if "latency" in only:
                run.latency("healthy", "", n, args.seed)
                run.latency("drop-50", "drop=0.5", n, args.seed)
                run.latency("drop-all", "drop=1", n, args.seed)
            if "chaos" in only:
                run.latency("chaos", CHAOS_FAULTS, n, args.seed)
            if "scale" in only:
                if args.quick:
                    run.scale_run(1000, 1, args.seed)
                else:
                    run.scale_run(10_000, 2, args.seed)
            if "ingest" in only:
                run.ingest(50, 2.0 if args.quick else 10.0, args.seed)
        except KeyboardInterrupt:
            log("interrupted: writing what was measured")
        finally:
            run.results["elapsed_s"] = time.monotonic() - started
            (out / "results.json").write_text(json.dumps(run.results, indent=2))
            table = markdown(run.results)
            (out / "results.md").write_text(table)
            with contextlib.suppress(Exception):
                chart(run.results, out / "chart.png")
    print(table)
    log(f"results in {out} ({run.results['elapsed_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""scripts/bench: the orchestrator against three baselines, side by side, in one run.

Every scenario starts one sandbox on loopback and runs every system against it at the same
time, with the same jobs and faults; figures come from the sandbox ledger (what the upstream
saw) and each system's own record (what it saw, and when). See docs/performance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster import ClusterSystem
from metrics import latency_figures, lateness_figures, pct, submits_by_system
from report import adaptive_markdown, chart, cluster_markdown, curve, markdown
from systems import (
    ROOT,
    BaselineSystem,
    OrchestratorSystem,
    System,
)

from orchestrator.sandbox.config import SandboxConfig
from orchestrator.sandbox.durations import parse_durations
from orchestrator.sandbox.faults import parse_faults
from orchestrator.sandbox.server import SandboxServer

sys.path.insert(0, str(ROOT))
#: the faults of the chaos scenario: scripts/chaos.py's own mix, imported so the two cannot
#: drift (the bench leaves out only its process kills)
from scripts.chaos import FAULTS as CHAOS_FAULTS

BASELINES = ("recipe", "apscheduler", "celery")
#: the orchestrators' tick in the adaptive scenario, and its warm-up's wave (see Run.adaptive)
ADAPTIVE_TICK_S = 0.05
WAVE = 10


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


def start_all(systems: list[System]) -> None:
    """Start every system at once (the orchestrator records its jobs first, in its thread)."""
    with ThreadPoolExecutor(max(1, len(systems))) as pool:
        for future in [pool.submit(s.start) for s in systems]:
            future.result()


def stop_all(systems: list[System]) -> None:
    """Stop every system at once (each waits for its own process)."""
    with ThreadPoolExecutor(max(1, len(systems))) as pool:
        list(pool.map(lambda s: s.stop(), systems))


def wait_until_done(systems: list[System], n: int, timeout: float) -> None:
    """Sample every system until each orchestrator has ``n`` jobs terminal and each baseline
    says it finished, or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for s in systems:
            s.sample()
        if all(
            s.terminal_count() >= n if isinstance(s, OrchestratorSystem) else s.finished()
            for s in systems
            if isinstance(s, OrchestratorSystem | BaselineSystem)
        ):
            return
        time.sleep(0.25)


def wakes_sent(system: ClusterSystem) -> int:
    """Wake-ups the daemons handed each other (their logs' ``wake`` counter is not kept, so
    count what /metrics says on each node before it stops)."""
    import httpx

    total = 0
    for node in system.nodes:
        try:
            text = httpx.get(f"http://127.0.0.1:{node.port}/metrics", timeout=5).text
        except httpx.HTTPError:
            continue
        for line in text.splitlines():
            if line.startswith('orchestrator_wakes_total{direction="sent"}'):
                total += int(float(line.split()[-1]))
    return total


def submit_count(server: SandboxServer) -> int:
    """Submits in the sandbox ledger so far, without a snapshot (the bench runs in-process)."""
    ledger = server.engine.ledger
    with ledger._lock:
        return len(ledger._submits)


def sandbox(faults: str, time_scale: float, seed: int, durations: str = "uniform") -> SandboxServer:
    server = SandboxServer(
        SandboxConfig(
            port=0,
            time_scale=time_scale,
            faults=parse_faults(faults),
            durations=parse_durations(durations),
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
        #: PostgreSQL for the cluster scenarios (the test database's URL unless told)
        self.pg_url = os.environ.get("ORCHESTRATOR_BENCH_PG_URL") or os.environ.get(
            "ORCHESTRATOR_TEST_PG_URL"
        )
        if self.pg_url is None:
            self.unavailable["cluster"] = "set ORCHESTRATOR_BENCH_PG_URL (or _TEST_PG_URL)"
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

    def systems(
        self,
        tag: str,
        url: str,
        keys: dict[str, list[str]],
        names: list[str] | None = None,
        **kw: Any,
    ) -> list[System]:
        """The systems of ``names`` (default: the orchestrator and every baseline)."""
        names = names if names is not None else ["orchestrator", *self.baselines]
        interval = kw.get("interval", self.interval)
        out: list[System] = []
        for name in names:
            if name == "orchestrator":
                orch = OrchestratorSystem(
                    self.work / tag / "orchestrator",
                    url,
                    interval_s=interval,
                    scale=self.scale,
                    **kw.get("orch", {}),
                )
                orch.record_on_start(keys["orchestrator"])
                out.append(orch)
            else:
                out.append(
                    BaselineSystem(
                        name,
                        self.work / tag / name,
                        url,
                        interval_s=interval,
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
            start_all(systems)
            log(f"{tag}: systems started")
            wait_until_done(systems, n, timeout + 5)
            ledger = server.ledger()
            owned = submits_by_system(ledger, systems)
            stop_all(systems)
            figures = {}
            for s in systems:
                figures[s.name] = latency_figures(ledger, s, keys[s.name], owned[s.name])
            self.results["scenarios"][tag] = {"faults": faults, "jobs": n, "systems": figures}
        finally:
            stop_all(systems)
            server.stop()

    def adaptive(self, n: int, seed: int, tag: str = "adaptive", faults: str = "drop=1") -> None:
        """Log-normal durations, every callback dropped (or ``faults``): the orchestrator with
        fixed intervals of 10, 20, 30 and 60 s and adaptive (after a warm-up it learned from,
        in the same database), and the baselines at 30 s, all at once on one sandbox."""
        durations = "lognormal"
        log(
            f"{tag}: warm-up of {n} jobs in waves of {WAVE}, then {n} jobs per system,"
            f" durations {durations}"
        )
        server = sandbox(faults, self.scale, seed, durations)
        work = self.work / tag / "orch-adaptive"  # (faults) the warm-up's as the run's
        systems: list[System] = []
        try:
            # a finer tick than the latency scenarios' 0.1 s: at time scale 0.03 that would be
            # 3.3 s of scaled time, as coarse as the slices the schedule aims at; not finer
            # than 0.05 s, or five daemons ticking share two cores with the baselines
            tick = ADAPTIVE_TICK_S
            warm = OrchestratorSystem(
                work, server.url, interval_s=self.interval, scale=self.scale, tick_s=tick
            )
            # the warm-up arrives in waves, as jobs reach a running daemon: a batch submitted
            # all at once is polled at the cold start's fixed times, and brackets that all
            # share their ends say nothing of where inside them the jobs finished
            waves = [
                [f"{tag}-warm-{i}" for i in range(start, min(n, start + WAVE))]
                for start in range(0, n, WAVE)
            ]
            warm.record_on_start(waves[0])
            start_all([warm])
            for done, wave in enumerate(waves):
                if done:
                    warm.measured |= set(wave)
                    warm.record(wave)
                wait_until_done([warm], len(warm.measured), 200 * self.scale + 30)
            stop_all([warm])
            names = ["adaptive", "fixed-10", "fixed-20", "fixed-30", "fixed-60"]
            keys = {name: [f"{tag}-{name}-{i}" for i in range(n)] for name in names}
            for name in names:
                strategy, _, every = name.partition("-")
                orch = OrchestratorSystem(
                    work if name == "adaptive" else self.work / tag / f"orch-{name}",
                    server.url,
                    interval_s=self.interval if name == "adaptive" else float(every) * self.scale,
                    scale=self.scale,
                    tick_s=tick,
                    strategy=strategy,
                    name=f"orchestrator-{name}",
                )
                orch.record_on_start(keys[name])
                systems.append(orch)
            base_keys = {b: [f"{tag}-{b}-{i}" for i in range(n)] for b in self.baselines}
            timeout = 200 * self.scale + 8 * 60 * self.scale + 20
            systems += self.systems(tag, server.url, base_keys, self.baselines, timeout=timeout)
            start_all(systems)
            wait_until_done(systems, n, timeout + 5)
            ledger = server.ledger()
            owned = submits_by_system(ledger, systems)
            stop_all(systems)
            figures = {}
            for s in systems:
                own = keys.get(s.name.removeprefix("orchestrator-"), base_keys.get(s.name, []))
                figures[s.name] = latency_figures(ledger, s, own, owned[s.name])
            self.results["scenarios"][tag] = {
                "faults": faults,
                "durations": durations,
                "jobs": n,
                "systems": figures,
            }
        finally:
            stop_all(systems)
            server.stop()

    def lag(self, n: int, seed: int) -> None:
        """Healthy callbacks, record-info lagging each terminal callback by L (2, 5, 10 s
        scaled): the orchestrator's detection against L + 3 s."""
        figures: dict[str, Any] = {}
        for lag in (2.0, 5.0, 10.0):
            tag = f"lag-{lag:g}"
            log(f"{tag}: {n} jobs, record-info {lag:g} s behind the callbacks")
            server = sandbox(f"lag={lag}", self.scale, seed)
            systems: list[System] = []
            try:
                keys = {"orchestrator": [f"{tag}-{i}" for i in range(n)]}
                systems = self.systems(tag, server.url, keys, ["orchestrator"])
                start_all(systems)
                wait_until_done(systems, n, 200 * self.scale + 30)
                ledger = server.ledger()
                owned = submits_by_system(ledger, systems)
                stop_all(systems)
                fig = latency_figures(
                    ledger, systems[0], keys["orchestrator"], owned["orchestrator"]
                )
                # the upstream's record shows the outcome L after the callback: detection is
                # measured from the callback (completed_at), the target is L + 3 s (scaled)
                fig["lag_s_scaled"] = lag
                fig["target_ms"] = (lag + 3.0) * self.scale * 1000
                figures[tag] = fig
            finally:
                stop_all(systems)
                server.stop()
        self.results["scenarios"]["lag"] = {"jobs": n, "systems": figures}

    def scale_run(self, n: int, rounds: int, seed: int, together: bool) -> None:
        """N in-flight jobs per system at a real 30 s interval. ``together``: every system at
        once on one sandbox (quick: 4 x 1,000 jobs = 133 polls/s for the sandbox); otherwise
        one system at a time, each on a fresh sandbox with the same config and seed (full:
        4 x 10,000 jobs at once would need 1,333 polls/s from the in-process sandbox, more
        than a Python HTTP server answers on 2 cores, and would measure the sandbox)."""
        tag = f"scale-{n}"
        names = ["orchestrator", *self.baselines]
        how = "all systems at once" if together else "one system at a time"
        log(f"{tag}: {n} in-flight jobs per system, 30 s interval, {rounds} round(s), {how}")
        figures: dict[str, Any] = {}
        for group in [names] if together else [[name] for name in names]:
            figures.update(self._scale_group(tag, group, n, rounds, seed))
        self.results["scenarios"][tag] = {
            "jobs": n,
            "rounds": rounds,
            "together": together,
            "systems": figures,
        }

    def _scale_group(
        self, tag: str, names: list[str], n: int, rounds: int, seed: int
    ) -> dict[str, Any]:
        keys = {name: [f"{tag}-{name}-{i}" for i in range(n)] for name in names}
        # lifecycles 100x longer than real: every task stays in flight; no callbacks
        server = sandbox("drop=1", 100.0, seed)
        systems: list[System] = []
        interval = 30.0
        try:
            # the orchestrator: jitter 0 (lateness is measured against exact due times), the
            # daemon's default tick_s, 16 concurrent polls (--poll-concurrency), no rate limit
            systems = self.systems(
                f"{tag}-{'-'.join(names)}",
                server.url,
                keys,
                names,
                interval=interval,
                timeout=3600,
                orch={
                    "jitter": 0.0,
                    "tick_s": None,
                    "concurrency": self.args.poll_concurrency,
                    "callbacks": True,
                },
            )
            return self._measure_scale(tag, names, systems, server, n, rounds, interval)
        finally:
            stop_all(systems)
            server.stop()

    def _measure_scale(
        self,
        tag: str,
        names: list[str],
        systems: list[System],
        server: SandboxServer,
        n: int,
        rounds: int,
        interval: float,
    ) -> dict[str, Any]:
        """Start ``systems`` with ``n`` jobs each, wait for the submits, then measure poll
        lateness, polls made and CPU over ``rounds`` intervals."""
        for s in systems:
            if isinstance(s, OrchestratorSystem):
                s.presubmit_on_start(threads=8, timeout_s=max(60, n / 50))
        started = time.monotonic()
        start_all(systems)
        # bounded wait for every system's submits to land (a cheap count: a full ledger
        # snapshot deep-copies every entry, under the sandbox's lock)
        submit_deadline = time.monotonic() + max(60, n / 50)
        while time.monotonic() < submit_deadline:
            for s in systems:
                s.sample()
            if submit_count(server) >= n * len(systems):
                break
            time.sleep(0.5)
        log(
            f"{tag} {'+'.join(names)}: {submit_count(server)} submits in "
            f"{time.monotonic() - started:.0f} s"
        )
        window_end = time.time() + interval * rounds + 2
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
            log(
                f"{tag} {s.name}: lateness p99 {fig['lateness_s_p99']} s, "
                f"{fig['polls_per_s']:.0f}/{fig['polls_per_s_due']:.0f} polls/s made/due, "
                f"submits over {fig['submit_span_s']:.1f} s, rss {fig['peak_rss_mb']:.0f} MB"
            )
        return figures

    # --- several daemons on one PostgreSQL -------------------------------------------------

    def cluster_systems(
        self, tag: str, url: str, daemons: int, keys: list[str], seed: int, **orch: Any
    ) -> ClusterSystem:
        assert self.pg_url is not None
        system = ClusterSystem(self.work / tag / f"{daemons}d", url, daemons=daemons,
                               pg_url=self.pg_url, seed=seed, scale=self.scale, **orch)  # fmt: skip
        system.record_on_start(keys)
        return system

    def cluster_latency(self, n: int, seed: int) -> None:
        """Healthy callbacks through a balancer handing each to a random daemon, with 1, 2
        and 3 daemons on one PostgreSQL schema (one cluster at a time, each on a fresh
        sandbox with the same seed): the detection latency a cluster adds over one daemon."""
        figures: dict[str, Any] = {}
        for daemons in (0, 1, 2, 3):  # 0: the usual single daemon on SQLite, for reference
            tag = f"cluster-healthy-{daemons}d"
            keys = [f"{tag}-{i}" for i in range(n)]
            server = sandbox("", self.scale, seed)
            system: OrchestratorSystem
            if daemons:
                system = self.cluster_systems(tag, server.url, daemons, keys, seed,
                                              interval_s=self.interval)  # fmt: skip
            else:
                system = OrchestratorSystem(
                    self.work / tag,
                    server.url,
                    interval_s=self.interval,
                    scale=self.scale,
                    name="orchestrator-sqlite",
                )
                system.record_on_start(keys)
            try:
                start_all([system])
                wait_until_done([system], n, 180 * self.scale + 8 * self.interval + 20)
                ledger = server.ledger()
                owned = submits_by_system(ledger, [system])
                wakes = wakes_sent(system) if isinstance(system, ClusterSystem) else 0
                stop_all([system])
                fig = latency_figures(ledger, system, keys, owned[system.name])
                fig["wakes"] = wakes
                figures[system.name] = fig
                log(
                    f"{tag}: detection p50 {fig['latency_ms_p50']} ms, p99 "
                    f"{fig['latency_ms_p99']} ms, {fig['correct']}/{n} correct, wakes {wakes}"
                )
            finally:
                stop_all([system])
                if isinstance(system, ClusterSystem):
                    system.drop()
                server.stop()
        self.results["scenarios"]["cluster-healthy"] = {"jobs": n, "systems": figures}

    def cluster_scale(self, n: int, seed: int) -> None:
        """``n`` in-flight jobs on a cluster of 1, 2 and 3 daemons (no callbacks, a real 30 s
        interval): polls per second made, lateness, CPU per poll summed over the daemons."""
        figures: dict[str, Any] = {}
        for daemons in (1, 2, 3):
            tag = f"cluster-scale-{daemons}d"
            keys = [f"{tag}-{i}" for i in range(n)]
            server = sandbox("drop=1", 100.0, seed)
            system = self.cluster_systems(tag, server.url, daemons, keys, seed, interval_s=30.0,
                                          jitter=0.0, tick_s=None,
                                          concurrency=self.args.poll_concurrency)  # fmt: skip
            try:
                got = self._measure_scale(tag, [system.name], [system], server, n, 1, 30.0)
                fig = got[system.name]
                fig["cpu_ms_per_poll"] = 1000 * fig["cpu_s"] / max(1, fig["polls"])
                figures[system.name] = fig
            finally:
                stop_all([system])
                system.drop()
                server.stop()
        self.results["scenarios"][f"cluster-scale-{n}"] = {"jobs": n, "systems": figures}

    def ingest(self, jobs: int, duration: float, seed: int) -> None:
        """Per system: 50 jobs in flight, then callbacks from two load processes. All systems
        start at once (each on its own sandbox, a real 30 s poll interval so that background
        polls stay negligible), then the load runs against one system at a time."""
        import subprocess

        tag = "ingest"
        log(f"{tag}: {duration:g} s of callbacks per system from 2 load processes")
        figures: dict[str, Any] = {}
        names = ["orchestrator", *self.baselines]
        servers: dict[str, SandboxServer] = {}
        started: dict[str, System] = {}
        try:
            for name in names:
                servers[name] = sandbox("drop=1", 100.0, seed)
                keys = {"orchestrator": [], name: [f"{tag}-{name}-{i}" for i in range(jobs)]}
                (started[name],) = self.systems(
                    f"{tag}-{name}",
                    servers[name].url,
                    keys,
                    [name],
                    serve=True,
                    timeout=600,
                    interval=30.0,
                )
            start_all(list(started.values()))
            for name in names:
                server, system = servers[name], started[name]
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
                    time.sleep(0.1)
                tfile = self.work / f"{tag}-{name}-targets.json"
                tfile.write_text(json.dumps(targets))
                procs = []
                for i in range(2):
                    out = self.work / f"{tag}-{name}-load{i}.json"
                    cmd = [
                        sys.executable,
                        str(Path(__file__).with_name("loadgen.py")),
                        *("--targets", str(tfile), "--duration", str(duration)),
                        *("--threads", "8", "--offset", str(i * 7), "--out", str(out)),
                    ]
                    procs.append((out, subprocess.Popen(cmd)))
                load_deadline = time.monotonic() + duration + 60
                while any(p.poll() is None for _, p in procs) and time.monotonic() < load_deadline:
                    system.sample()
                    time.sleep(0.2)
                acked, errors, elapsed, lat = 0, 0, 0.0, []
                for out, p in procs:
                    p.wait(max(1.0, load_deadline - time.monotonic()))
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
                    f"{tag} {name}: {figures[name]['callbacks_per_s']:.0f}/s, p99 "
                    f"{figures[name]['response_ms_p99']:.0f} ms, lost {figures[name]['lost']}"
                )
        finally:
            stop_all(list(started.values()))
            for server in servers.values():
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
        help="run only these scenarios (latency, chaos, scale, ingest, adaptive, lag, cluster);"
        " adaptive runs with every callback dropped and with half of them; cluster needs"
        " PostgreSQL",
    )
    parser.add_argument(
        "--scale",
        type=int,
        action="append",
        default=[],
        help="in-flight jobs per system in the scale scenario (1000 quick, 10000 full; repeat)",
    )
    parser.add_argument(
        "--poll-concurrency",
        type=int,
        default=16,
        help="the orchestrator's polling.concurrency in the scale scenario (default 16)",
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
    only = set(args.only) or {"latency", "chaos", "scale", "ingest", "adaptive", "lag", "cluster"}
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
                for n in args.scale or ([1000] if args.quick else [10_000]):
                    run.scale_run(n, 1, args.seed, together=args.quick and n <= 1000)
            if "ingest" in only:
                run.ingest(50, 2.0 if args.quick else 10.0, args.seed)
            if "adaptive" in only:
                run.adaptive(n, args.seed)
                run.adaptive(n, args.seed, "adaptive-drop-50", "drop=0.5")
            if "lag" in only:
                run.lag(max(5, n // 4), args.seed)
            if "cluster" in only and run.pg_url is not None:
                run.cluster_latency(n, args.seed)
                run.cluster_scale(500 if args.quick else 3000, args.seed)
        except KeyboardInterrupt:
            log("interrupted: writing what was measured")
        finally:
            run.results["elapsed_s"] = time.monotonic() - started
            (out / "results.json").write_text(json.dumps(run.results, indent=2))
            table = (
                markdown(run.results)
                + adaptive_markdown(run.results)
                + cluster_markdown(run.results)
            )
            (out / "results.md").write_text(table)
            with contextlib.suppress(Exception):
                chart(run.results, out / "chart.png")
            with contextlib.suppress(Exception):
                curve(run.results, out / "curve.png")
    print(table)
    log(f"results in {out} ({run.results['elapsed_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

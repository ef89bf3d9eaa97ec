"""Prometheus metrics: what the daemon counts, in one registry of its own (prometheus-client).

A shared helper: the daemon's loops, the provider and the web app record into
:data:`METRICS`; ``GET /metrics`` exposes it. The job counts are read from the database at
each scrape (one GROUP BY), so they are right whichever daemon made the change.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from orchestrator import __version__

#: seconds: from a poll round trip to a slow job's whole life
_LATENCY = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 1800)
_REQUEST = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class _JobCounts(Collector):
    """``orchestrator_jobs{state,kind}`` from the store, at scrape time."""

    def __init__(self) -> None:
        self.count: Callable[[], Iterable[tuple[str, str, int]]] | None = None

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "orchestrator_jobs",
            "Jobs per state and kind (from the database)",
            labels=["state", "kind"],
        )
        if self.count is not None:
            for state, kind, n in self.count():
                family.add_metric([state, kind], n)
        yield family


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.jobs = _JobCounts()
        r.register(self.jobs)
        self.build = Info("orchestrator_build", "The daemon's version", registry=r)
        self.build.info({"version": __version__})
        self.transitions = Counter(
            "orchestrator_transitions",
            "Job state changes",
            ["kind", "from_state", "to_state"],
            registry=r,
        )
        self.upstream_requests = Counter(
            "orchestrator_upstream_requests",
            "Requests to the upstream API by endpoint and outcome",
            ["endpoint", "outcome"],
            registry=r,
        )
        self.upstream_duration = Histogram(
            "orchestrator_upstream_request_duration_seconds",
            "How long upstream requests took",
            ["endpoint"],
            buckets=_REQUEST,
            registry=r,
        )
        self.callbacks = Counter(
            "orchestrator_callbacks",
            "Callbacks received: accepted, or refused by reason",
            ["outcome"],
            registry=r,
        )
        self.submits = Counter(
            "orchestrator_submits", "Submit attempts by outcome", ["outcome"], registry=r
        )
        self.detection = Histogram(
            "orchestrator_detection_seconds",
            "From the latest moment the upstream could have finished a job to the daemon seeing "
            "it (exact when a callback announced it; an upper bound from polls otherwise)",
            buckets=_LATENCY,
            registry=r,
        )
        self.poll_lateness = Histogram(
            "orchestrator_poll_lateness_seconds",
            "How long after its due time a poll was made",
            buckets=_LATENCY,
            registry=r,
        )
        self.breaker_open = Gauge(
            "orchestrator_breaker_open", "1 while the upstream circuit breaker is open", registry=r
        )
        self.download_bytes = Counter(
            "orchestrator_downloads_bytes", "Bytes of artifacts stored", registry=r
        )
        self.notifications = Counter(
            "orchestrator_notifications",
            "Notification attempts by target and outcome",
            ["target", "outcome"],
            registry=r,
        )
        self.wakes = Counter(
            "orchestrator_wakes",
            "Wake-ups between daemons on one PostgreSQL (LISTEN/NOTIFY) sent and heard",
            ["direction"],
            registry=r,
        )

    def exposition(self) -> bytes:
        return bytes(generate_latest(self.registry))

    @contextmanager
    def upstream(self, endpoint: str) -> Iterator[None]:
        """Time one upstream request; its outcome is "ok" or the error's kind."""
        started = time.monotonic()
        outcome = "ok"
        try:
            yield
        except Exception as exc:
            outcome = _outcome(exc)
            raise
        finally:
            self.upstream_duration.labels(endpoint).observe(time.monotonic() - started)
            self.upstream_requests.labels(endpoint, outcome).inc()


def _outcome(exc: BaseException) -> str:
    """``UpstreamRateLimited`` -> "rate_limited" (the error class, without the prefix)."""
    import re

    name = type(exc).__name__.removeprefix("Upstream")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower() or "error"


#: the one registry of this process (every daemon built in it records here)
METRICS = Metrics()


def labels_of(value: Any) -> str:
    return str(getattr(value, "value", value))

"""Faults on demand: what can go wrong, how often, parsed from ``--faults``.

A spec is a comma-separated list of ``name=value`` items, for example
``drop=0.3,duplicate=0.2,lag=2,slow_s=1``. Rates are probabilities in [0, 1]; ``lag`` and
``slow_s`` are durations in seconds (``lag`` is multiplied by the time scale, ``slow_s`` is
not: it is meant to outlast a client's HTTP timeout). docs/sandbox.md describes each fault.

Draws are seeded: :class:`FaultDice` keeps one random stream per fault name, so enabling one
fault never changes the draws of another and a run with the same seed and the same requests
in the same order is replayed exactly.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass, fields

#: Faults whose value is a probability in [0, 1].
RATE_FAULTS: tuple[str, ...] = (
    "drop",
    "duplicate",
    "early",
    "reorder",
    "poll_error",
    "submit_error",
    "rate_limit",
    "slow",
    "reset",
    "accept_5xx",
    "http200",
    "expire",
    "fail",
)
#: Faults whose value is a duration in seconds (>= 0).
DURATION_FAULTS: tuple[str, ...] = ("lag", "slow_s")


@dataclass(frozen=True)
class FaultSpec:
    """How often each fault happens. Every rate defaults to 0 (a well-behaved upstream)."""

    #: a stage's callback is never sent
    drop: float = 0.0
    #: a stage's callback is sent twice (two independent deliveries)
    duplicate: float = 0.0
    #: the task's first callback is delivered before the submit response is written
    early: float = 0.0
    #: the next-to-last callback of a task is delivered after the terminal one
    reorder: float = 0.0
    #: record-info answers 500 or 455
    poll_error: float = 0.0
    #: a submit answers 500 or 455 and creates no task
    submit_error: float = 0.0
    #: a submit is refused as rate limited (430 sunoapi, 429 kie)
    rate_limit: float = 0.0
    #: an API answer is delayed by ``slow_s`` real seconds
    slow: float = 0.0
    #: the connection is closed without an answer (a submit still creates its task)
    reset: float = 0.0
    #: a submit creates its task, then answers 500 or 455 anyway; the task's first callback
    #: (never dropped) proves it: delivered before the answer or just after it (half each)
    accept_5xx: float = 0.0
    #: an error answer is sent with HTTP status 200, the error only in the envelope ``code``
    http200: float = 0.0
    #: an artifact URL is handed out already expired
    expire: float = 0.0
    #: a task fails at random (GENERATE_AUDIO_FAILED / GENERATE_MP4_FAILED ...)
    fail: float = 0.0
    #: record-info shows each status this many (scaled) seconds after its callback was sent
    lag: float = 0.0
    #: how long a ``slow`` answer is delayed, in real (unscaled) seconds
    slow_s: float = 15.0

    def __post_init__(self) -> None:
        for name in RATE_FAULTS:
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"fault {name}={value!r}: a rate must be between 0 and 1")
        for name in DURATION_FAULTS:
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"fault {name}={value!r}: a duration must be >= 0 seconds")

    def to_spec(self) -> str:
        """The canonical spec string: only the items that differ from the defaults."""
        default = FaultSpec()
        items = [
            f"{f.name}={getattr(self, f.name):g}"
            for f in fields(self)
            if getattr(self, f.name) != getattr(default, f.name)
        ]
        return ",".join(items)

    def as_dict(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}


def parse_faults(spec: str) -> FaultSpec:
    """Parse ``name=value[,name=value...]``; an empty spec is the fault-free upstream.

    Raises :class:`ValueError` naming the bad item for an unknown name, a value that is not
    a number, a rate outside [0, 1], a negative duration, or a name given twice.
    """
    known = RATE_FAULTS + DURATION_FAULTS
    values: dict[str, float] = {}
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep:
            raise ValueError(f"fault item {item!r}: expected name=value")
        if name not in known:
            raise ValueError(
                f"fault item {item!r}: unknown fault {name!r} (known: {', '.join(known)})"
            )
        if name in values:
            raise ValueError(f"fault item {item!r}: {name!r} is given twice")
        try:
            value = float(text.strip())
        except ValueError:
            raise ValueError(f"fault item {item!r}: {text.strip()!r} is not a number") from None
        if not math.isfinite(value):
            raise ValueError(f"fault item {item!r}: {text.strip()!r} is not a finite number")
        if name in RATE_FAULTS and not 0.0 <= value <= 1.0:
            raise ValueError(f"fault item {item!r}: a rate must be between 0 and 1")
        if name in DURATION_FAULTS and value < 0:
            raise ValueError(f"fault item {item!r}: a duration must be >= 0 seconds")
        values[name] = value
    return FaultSpec(**values)


class FaultDice:
    """Seeded draws for request-level faults: one independent stream per fault name.

    Every call draws from its stream whatever the rate (also at rate 0), so the n-th request
    of a kind meets the same number in every run with the same seed.
    """

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._streams: dict[str, random.Random] = {}
        self._lock = threading.Lock()

    def _stream(self, name: str) -> random.Random:
        stream = self._streams.get(name)
        if stream is None:
            stream = random.Random(f"{self._seed}:dice:{name}")
            self._streams[name] = stream
        return stream

    def roll(self, name: str, rate: float) -> bool:
        """True with probability ``rate``."""
        with self._lock:
            return self._stream(name).random() < rate

    def choice(self, name: str, options: tuple[int, ...]) -> int:
        with self._lock:
            return self._stream(name).choice(options)


@dataclass(frozen=True)
class RequestFaults:
    """The request-level faults drawn for one API request."""

    #: delay the answer by ``slow_s``
    slow: bool = False
    #: close the connection instead of answering
    reset: bool = False
    #: send an error answer with HTTP 200 (the error only in the envelope ``code``)
    http200: bool = False

    def names(self, error: bool = True) -> list[str]:
        """The faults that shaped an answer (``http200`` only matters for an ``error``)."""
        names = [name for name in ("slow", "reset") if getattr(self, name)]
        if self.http200 and error:
            names.append("http200")
        return names

"""How long the sandbox's tasks take: a named, configurable distribution per kind and stage.

Two models, chosen with ``SandboxConfig.durations`` (``--durations`` on the command line):

- ``uniform`` (the default, and every earlier run's): generate / extend / replace section
  reach TEXT_SUCCESS 5-10 s, FIRST_SUCCESS 30-40 s and SUCCESS 60-180 s after submit, each
  uniform and independent; music video, WAV and vocal removal succeed 40-120 s in.
- ``lognormal``: what generation services look like from outside. Each stage is
  log-normal (a median and a spread, ``sigma``, the standard deviation of its logarithm), so
  most tasks cluster and a few are slow; the stages are ordered and FIRST_SUCCESS is close to
  done (the tracks are made in parallel: SUCCESS follows the first track by a short ``gap``).

Parameters override the log-normal defaults: ``lognormal:first=40/0.2,gap=10/0.3`` means
FIRST_SUCCESS with median 40 s and sigma 0.2, SUCCESS a gap of median 10 s (sigma 0.3)
after it; ``text=`` (TEXT_SUCCESS) and ``single=`` (the one-stage kinds' SUCCESS) likewise.
Durations are unscaled seconds; the time scale multiplies them, as everything else.

The values come from the task's seeded uniform draws through the normal quantile function,
so no extra random number is drawn: a seed gives the same tasks (faults, ids, order) under
either model, only their durations differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist

MODELS: tuple[str, ...] = ("uniform", "lognormal")

#: the log-normal model's defaults: stage -> (median s, sigma)
LOGNORMAL_DEFAULTS: dict[str, tuple[float, float]] = {
    "text": (7.0, 0.25),
    "first": (40.0, 0.2),
    "gap": (10.0, 0.3),
    "single": (60.0, 0.3),
}

_NORMAL = NormalDist()
#: draws are clipped this far from 0 and 1, so no duration is infinite or zero (+-3.7 sigma)
_EDGE = 1e-4


@dataclass(frozen=True)
class Durations:
    """A duration model: ``uniform`` or ``lognormal`` with its per-stage parameters."""

    model: str = "uniform"
    params: dict[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"durations must be one of {', '.join(MODELS)}, not {self.model!r}")
        if self.params and self.model != "lognormal":
            raise ValueError("duration parameters are only for the lognormal model")
        for stage, (median, sigma) in self.params.items():
            if stage not in LOGNORMAL_DEFAULTS:
                known = ", ".join(LOGNORMAL_DEFAULTS)
                raise ValueError(f"unknown duration stage {stage!r} (known: {known})")
            if not (math.isfinite(median) and median > 0 and math.isfinite(sigma) and sigma >= 0):
                raise ValueError(f"{stage}: median must be > 0 and sigma >= 0")

    def lognormal(self, stage: str, u: float) -> float:
        """The ``stage`` duration at quantile ``u`` of its log-normal (unscaled seconds)."""
        median, sigma = self.params.get(stage, LOGNORMAL_DEFAULTS[stage])
        z = _NORMAL.inv_cdf(min(1.0 - _EDGE, max(_EDGE, u)))
        return median * math.exp(sigma * z)

    def to_spec(self) -> str:
        if not self.params:
            return self.model
        parts = [f"{k}={m:g}/{s:g}" for k, (m, s) in sorted(self.params.items())]
        return f"{self.model}:{','.join(parts)}"


def parse_durations(spec: str) -> Durations:
    """``uniform``, ``lognormal`` or ``lognormal:first=40/0.2,...``; ValueError if malformed."""
    model, _, rest = spec.strip().partition(":")
    params: dict[str, tuple[float, float]] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        stage, eq, value = item.partition("=")
        median, slash, sigma = value.partition("/")
        try:
            if not eq:
                raise ValueError
            params[stage.strip()] = (float(median), float(sigma) if slash else 0.0)
        except ValueError:
            raise ValueError(
                f"bad duration parameter {item!r}: expected stage=median/sigma"
            ) from None
    return Durations(model.strip() or "uniform", params)


def unit(value: float, low: float, high: float) -> float:
    """Where ``value`` lies in [low, high], as a number in [0, 1]."""
    return (value - low) / (high - low)

"""The sandbox's settings, one frozen record."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from orchestrator.sandbox.durations import Durations
from orchestrator.sandbox.faults import FaultSpec
from orchestrator.sandbox.profiles import Profile, get_profile


@dataclass(frozen=True)
class SandboxConfig:
    """Everything that shapes one sandbox run. Same seed and requests -> same run."""

    #: interface to listen on (loopback by default)
    host: str = "127.0.0.1"
    #: TCP port; 0 picks a free one (read it back from ``SandboxServer.url``)
    port: int = 8900
    #: the only key accepted in ``Authorization: Bearer <key>``
    api_key: str = "sandbox-key"
    #: "sunoapi" or "kie": which provider's error-code table (and callback signing) to use
    profile: str = "sunoapi"
    #: multiplies every lifecycle duration, callback backoff and ``lag`` (0.01: 100 s -> 1 s)
    time_scale: float = 1.0
    #: faults on demand
    faults: FaultSpec = field(default_factory=FaultSpec)
    #: how long tasks take: ``uniform`` (60-180 s songs) or ``lognormal`` (clustered, with a
    #: slow tail; FIRST_SUCCESS close to done), see :mod:`orchestrator.sandbox.durations`
    durations: Durations = field(default_factory=Durations)
    #: seeds task ids, durations and every fault draw
    seed: int = 0
    #: kie only: sign callbacks (X-Webhook-Timestamp / X-Webhook-Signature) with this key
    hmac_key: str | None = None
    #: artifact URL lifetime in real seconds; None: the profile's (14 days / 20 minutes)
    url_ttl_s: float | None = None
    #: starting credit balance
    credits: int = 1_000_000
    #: HTTP timeout of one callback attempt, real seconds; None: 15 s music video, WAV and
    #: vocal removal, 10 s the music family (generate, extend, replace section)
    callback_timeout_s: float | None = None
    #: submits admitted per window per API key (the real limit: 20 per 10 s); 0 disables
    rate_limit_count: int = 20
    #: the window of that limit, real seconds
    rate_limit_window_s: float = 10.0
    #: polls of one taskId admitted per second (kie documents 3); 0 disables (default)
    poll_limit_per_s: int = 0
    #: after the terminal callback gives up, record-info says CALLBACK_EXCEPTION
    callback_exception_on_give_up: bool = True
    #: kie only: refuse requests without a browser-like User-Agent (its CDN does) with 403
    require_browser_user_agent: bool = False
    #: base of the artifact URLs it hands out; None: http://<host>:<bound port>
    public_url: str | None = None
    #: waitress worker threads (slow answers each hold one)
    threads: int = 16

    def __post_init__(self) -> None:
        resolved = get_profile(self.profile)  # raises ValueError for an unknown profile
        if not (math.isfinite(self.time_scale) and self.time_scale > 0):
            raise ValueError(f"time_scale must be > 0, not {self.time_scale!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be between 0 and 65535, not {self.port!r}")
        if not self.api_key:
            raise ValueError("api_key must not be empty")
        if self.hmac_key is not None and not resolved.signs_callbacks:
            raise ValueError(f"hmac_key is only supported by the kie profile, not {self.profile}")
        if self.url_ttl_s is not None and not self.url_ttl_s > 0:
            raise ValueError(f"url_ttl_s must be > 0, not {self.url_ttl_s!r}")
        if self.credits < 0:
            raise ValueError(f"credits must be >= 0, not {self.credits!r}")
        if self.callback_timeout_s is not None and not self.callback_timeout_s > 0:
            raise ValueError(f"callback_timeout_s must be > 0, not {self.callback_timeout_s!r}")
        if self.rate_limit_count < 0 or not self.rate_limit_window_s > 0:
            raise ValueError("rate_limit_count must be >= 0 and rate_limit_window_s > 0")
        if self.poll_limit_per_s < 0:
            raise ValueError("poll_limit_per_s must be >= 0")
        if self.threads < 1:
            raise ValueError("threads must be >= 1")

    @property
    def provider(self) -> Profile:
        return get_profile(self.profile)

    @property
    def effective_url_ttl_s(self) -> float:
        return self.url_ttl_s if self.url_ttl_s is not None else self.provider.default_url_ttl_s

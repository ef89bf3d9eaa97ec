"""Configuration: ``config.toml`` parsed and validated into frozen settings.

The file is optional: without one, the embedded defaults run against SQLite under ``./var``
and the local sandbox. Relative paths are relative to the config file (or the current
directory without one). Unknown sections or keys are errors, so a typo never silently falls
back to a default. Secrets never live in the file: ``api_key_env`` names the variable.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from orchestrator.credits import CreditRules
from orchestrator.durations import KEPT_PER_GROUP
from orchestrator.exceptions import ConfigError
from orchestrator.logs import LogFormat
from orchestrator.machine import Policy, UncertainPolicy
from orchestrator.networks import is_loopback, parse_networks
from orchestrator.notifications import Target
from orchestrator.providers.profiles import ProfileName
from orchestrator.schedule import Adaptive, PollStrategy

DEFAULT_CONFIG_NAME = "config.toml"
SANDBOX_KEY = "sandbox-key"


class CallbackMode(StrEnum):
    """How far a callback is believed (docs/security.md)."""

    VERIFY = "verify"  #: a callback only triggers the verifying poll (the default)
    TRUST = "trust"  #: a callback's data is applied directly (authenticated callbacks only)


@dataclass(frozen=True)
class StorageSettings:
    url: str = "sqlite:///var/orchestrator.db"
    artifacts_dir: Path = Path("var/artifacts")


@dataclass(frozen=True)
class ProviderSettings:
    profile: ProfileName = ProfileName.SUNOAPI
    base_url: str = "http://127.0.0.1:8900"
    api_key_env: str = "SUNO_API_KEY"
    timeout_s: float = 30.0
    #: submits allowed per window per account (the upstream rejects the excess)
    submit_rate: int = 20
    submit_window_s: float = 10.0
    #: detail queries per second across all tasks (0 = unlimited)
    poll_rate_per_s: float = 50.0
    #: consecutive transient upstream failures that open the circuit breaker
    breaker_threshold: int = 5
    breaker_cooldown_s: float = 30.0
    #: the credit guard (orchestrator.credits): no submit below this balance (0: at zero)
    min_credits: int = 0
    #: the balance is read before submitting, at most this often
    credit_check_s: float = 60.0
    #: submits per UTC day at most (0: no cap)
    max_submits_per_day: int = 0


@dataclass(frozen=True)
class PollingSettings:
    interval_s: float = 30.0
    #: adaptive: polls placed from learned durations (within the fixed interval's budget);
    #: fixed: every interval_s
    strategy: PollStrategy = Adaptive.strategy
    jitter: float = 0.1
    deadline_s: float = 1800.0
    #: the scheduler's tick: how often due work is looked for (callbacks wake it at once)
    tick_s: float = 0.2
    concurrency: int = 8
    batch: int = 200
    confirm_delay_s: float = 2.0
    callback_poll_factor: float = 3.0
    backoff_base_s: float = 5.0
    backoff_max_s: float = 600.0
    late_poll_interval_s: float = 300.0
    late_window_s: float = 86400.0
    #: the adaptive strategy's knobs (orchestrator.schedule.Adaptive, whose defaults these
    #: are): never two polls of a job closer than this
    min_gap_s: float = Adaptive.min_gap_s
    #: learned jobs of a kind needed before its schedule leaves the fixed interval
    min_samples: int = Adaptive.min_samples
    #: the share of learned jobs the last budgeted poll (and the safety net) waits for
    quantile: float = Adaptive.quantile
    #: after a progress callback: poll this long after the terminal callback was due
    safety_margin_s: float = Adaptive.safety_margin_s
    #: confirmation polls of a terminal callback: confirm_delay_s, growing by this factor,
    #: gaps at most confirm_max_gap_s, for up to confirm_window_s
    confirm_growth: float = Adaptive.confirm_growth
    confirm_max_gap_s: float = Adaptive.confirm_max_gap_s
    confirm_window_s: float = Adaptive.confirm_window_s
    #: completed jobs remembered per kind and model, and how fast old ones fade (a sample's
    #: weight halves with every half_life newer ones)
    history: int = 200
    half_life: float = 50.0


@dataclass(frozen=True)
class SubmitSettings:
    max_attempts: int = 8
    backoff_base_s: float = 2.0
    backoff_max_s: float = 300.0
    #: what to do with a job whose submit outcome is unknown: hold | resubmit | fail
    uncertain_policy: UncertainPolicy = UncertainPolicy.HOLD
    uncertain_grace_s: float = 900.0


@dataclass(frozen=True)
class DownloadSettings:
    allowed_networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    max_bytes: int = 512 * 1024 * 1024
    timeout_s: float = 300.0
    max_redirects: int = 5
    max_attempts: int = 6
    backoff_base_s: float = 2.0
    backoff_max_s: float = 300.0
    concurrency: int = 4


@dataclass(frozen=True)
class CallbackSettings:
    enabled: bool = True
    listen: str = "127.0.0.1:8787"
    public_url: str = "http://127.0.0.1:8787"
    mode: CallbackMode = CallbackMode.VERIFY
    threads: int = 8
    max_body_bytes: int = 1024 * 1024
    #: name of the environment variable holding kie.ai's callback HMAC key ("" = no signing)
    hmac_key_env: str = ""
    #: how far a signature's timestamp may be from now, seconds (both directions)
    hmac_tolerance_s: float = 300.0
    #: CIDRs callbacks may come from (empty = anyone)
    allowed_sources: tuple[str, ...] = ()
    #: CIDRs of reverse proxies whose X-Forwarded-For is believed (empty = none)
    trusted_proxies: tuple[str, ...] = ()
    #: name of the environment variable holding the job API's bearer token ("" = the job API
    #: answers loopback callers only)
    api_token_env: str = ""


@dataclass(frozen=True)
class DaemonSettings:
    lease_s: float = 60.0
    #: graceful shutdown: how long in-flight work may take before leases are released
    shutdown_grace_s: float = 10.0


@dataclass(frozen=True)
class LoggingSettings:
    level: str = "info"
    format: LogFormat = LogFormat.JSON


@dataclass(frozen=True)
class JobEntry:
    key: str
    kind: str
    params: dict[str, Any]
    #: parents (a pipeline): the job waits for them; its params may refer to their results
    after: tuple[str, ...] = ()
    for_each: str | None = None


@dataclass(frozen=True)
class Settings:
    storage: StorageSettings = field(default_factory=StorageSettings)
    provider: ProviderSettings = field(default_factory=ProviderSettings)
    polling: PollingSettings = field(default_factory=PollingSettings)
    submit: SubmitSettings = field(default_factory=SubmitSettings)
    downloads: DownloadSettings = field(default_factory=DownloadSettings)
    callbacks: CallbackSettings = field(default_factory=CallbackSettings)
    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    jobs: tuple[JobEntry, ...] = ()
    #: where the user's application is told (``[[notify]]``; orchestrator.notifications)
    notify: tuple[Target, ...] = ()
    #: where relative paths are resolved from
    base_dir: Path = field(default_factory=Path.cwd)
    source: Path | None = None

    @property
    def database_url(self) -> str:
        return resolve_db_url(self.storage.url, self.base_dir)

    @property
    def artifacts_path(self) -> Path:
        path = self.storage.artifacts_dir
        return path if path.is_absolute() else self.base_dir / path

    def credit_rules(self) -> CreditRules:
        p = self.provider
        return CreditRules(p.min_credits, p.credit_check_s, p.max_submits_per_day)

    def policy(self) -> Policy:
        p, s, d = self.polling, self.submit, self.downloads
        return Policy(
            poll_interval_s=p.interval_s,
            poll_jitter=p.jitter,
            deadline_s=p.deadline_s,
            poll_backoff_base_s=p.backoff_base_s,
            poll_backoff_max_s=p.backoff_max_s,
            confirm_delay_s=p.confirm_delay_s,
            callback_poll_factor=p.callback_poll_factor,
            submit_max_attempts=s.max_attempts,
            submit_backoff_base_s=s.backoff_base_s,
            submit_backoff_max_s=s.backoff_max_s,
            download_max_attempts=d.max_attempts,
            download_backoff_base_s=d.backoff_base_s,
            download_backoff_max_s=d.backoff_max_s,
            late_poll_interval_s=p.late_poll_interval_s,
            late_window_s=p.late_window_s,
            uncertain_policy=s.uncertain_policy,
            uncertain_grace_s=s.uncertain_grace_s,
            # the [polling] keys of the same names (their defaults are Adaptive's own)
            adaptive=Adaptive(
                **{
                    k.name: getattr(p, k.name)
                    for k in fields(Adaptive)
                    if k.init and k.name != "book"
                }
            ),
        )

    def api_key(self) -> str:
        """The upstream API key, from the environment only.

        Against a loopback base URL (the sandbox) a missing variable falls back to the
        sandbox's default key, so the embedded defaults run with nothing set.
        """
        value = os.environ.get(self.provider.api_key_env, "").strip()
        if value:
            return value
        host = urlsplit(self.provider.base_url).hostname or ""
        if is_loopback(host):
            return SANDBOX_KEY
        raise ConfigError(
            f"the API key is missing: set the environment variable {self.provider.api_key_env}"
        )


def resolve_db_url(url: str, base_dir: Path) -> str:
    """Make a relative SQLite path absolute against ``base_dir``."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////"):
        rel = url[len(prefix) :]
        if rel and rel != ":memory:" and not rel.startswith("file:"):
            return prefix + str((base_dir / rel).resolve())
    return url


_SECTIONS: dict[str, type] = {
    "storage": StorageSettings,
    "provider": ProviderSettings,
    "polling": PollingSettings,
    "submit": SubmitSettings,
    "downloads": DownloadSettings,
    "callbacks": CallbackSettings,
    "daemon": DaemonSettings,
    "logging": LoggingSettings,
}


def default_config_path() -> Path:
    return Path(os.environ.get("ORCHESTRATOR_CONFIG") or DEFAULT_CONFIG_NAME)


def load_settings(path: Path | str | None = None) -> Settings:
    """Load and validate settings.

    ``path`` None means ``$ORCHESTRATOR_CONFIG`` or ``./config.toml``; a missing default file
    gives the embedded defaults, a missing explicit one is an error.
    """
    explicit = path is not None or bool(os.environ.get("ORCHESTRATOR_CONFIG"))
    config_path = Path(path) if path is not None else default_config_path()
    if not config_path.exists():
        if explicit:
            raise ConfigError(f"config file not found: {config_path}")
        return Settings(base_dir=Path.cwd())
    try:
        with config_path.open("rb") as fh:
            raw = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config_path}: not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{config_path}: cannot read: {exc.strerror}") from exc
    return parse_settings(raw, base_dir=config_path.resolve().parent, source=config_path)


def parse_settings(
    raw: Mapping[str, Any], *, base_dir: Path, source: Path | None = None
) -> Settings:
    where = str(source) if source else "config"
    unknown = set(raw) - set(_SECTIONS) - {"jobs", "notify"}
    if unknown:
        raise ConfigError(
            f"{where}: unknown section(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted([*_SECTIONS, 'jobs', 'notify']))}"
        )
    sections: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        value = raw.get(name, {})
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: [{name}] must be a table")
        sections[name] = _build(cls, value, f"{where} [{name}]")
    jobs = _parse_jobs(raw.get("jobs", []), where)
    notify = _parse_notify(raw.get("notify", []), where)
    settings = Settings(**sections, jobs=jobs, notify=notify, base_dir=base_dir, source=source)
    _validate(settings, where)
    return settings


def _build(cls: type, values: Mapping[str, Any], where: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(known)}"
        )
    defaults = cls()
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        default = getattr(defaults, name)
        kwargs[name] = _coerce(value, default, f"{where} {name}")
    return cls(**kwargs)


def _coerce(value: Any, default: Any, where: str) -> Any:
    if isinstance(default, StrEnum):  # a choice, parsed once here
        choices = [member.value for member in type(default)]
        if not isinstance(value, str) or value not in choices:
            listed = ", ".join(choices[:-1]) + f" or {choices[-1]}"
            raise ConfigError(f"{where}: must be {listed}, got {value!r}")
        return type(default)(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: must be true or false, got {value!r}")
        return value
    if isinstance(default, int) and not isinstance(default, bool):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: must be a whole number, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: must be a number, got {value!r}")
        if not math.isfinite(value):  # TOML allows nan and inf; no option means either
            raise ConfigError(f"{where}: must be a finite number, got {value!r}")
        return float(value)
    if isinstance(default, Path):
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}: must be a path string, got {value!r}")
        return Path(value)
    if isinstance(default, tuple):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: must be a list of strings, got {value!r}")
        return tuple(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{where}: must be a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported value {value!r}")  # pragma: no cover


def _parse_jobs(raw_jobs: Any, where: str) -> tuple[JobEntry, ...]:
    from orchestrator.exceptions import InvalidParams
    from orchestrator.kinds import validate_params
    from orchestrator.pipelines import Known, Spec, check_all, unresolved_fields

    if not isinstance(raw_jobs, list):
        raise ConfigError(f"{where}: jobs must be an array of tables ([[jobs]])")
    entries: list[JobEntry] = []
    seen: set[str] = set()
    for index, item in enumerate(raw_jobs, start=1):
        label = f"{where} [[jobs]] #{index}"
        if not isinstance(item, Mapping):
            raise ConfigError(f"{label}: must be a table")
        unknown = set(item) - {"key", "kind", "params", "after", "for_each"}
        if unknown:
            raise ConfigError(f"{label}: unknown key(s) {', '.join(sorted(unknown))}")
        key, kind, params = item.get("key"), item.get("kind"), item.get("params", {})
        if not isinstance(key, str) or not key.strip():
            raise ConfigError(f"{label}: key must be a non-empty string")
        validate_job_key(key, label)
        if key in seen:
            raise ConfigError(f"{label}: duplicate key {key!r}")
        seen.add(key)
        if not isinstance(kind, str):
            raise ConfigError(f"{label} ({key}): kind must be a string")
        if not isinstance(params, Mapping):
            raise ConfigError(f"{label} ({key}): params must be a table")
        after_raw = item.get("after", [])
        after = (after_raw,) if isinstance(after_raw, str) else after_raw
        if not isinstance(after, list | tuple) or not all(isinstance(a, str) for a in after):
            raise ConfigError(f"{label} ({key}): after must be a job key or a list of job keys")
        for_each = item.get("for_each")
        if for_each is not None and not isinstance(for_each, str):
            raise ConfigError(f"{label} ({key}): for_each must be a string (KEY.tracks)")
        entry = JobEntry(
            key=key, kind=kind, params=dict(params), after=tuple(after), for_each=for_each
        )
        try:
            validate_params(kind, params, unresolved_fields(params) if after else frozenset())
        except InvalidParams as exc:
            raise ConfigError(f"{label} ({key}): {exc}") from exc
        entries.append(entry)
    specs = [Spec(e.key, e.kind, e.params, e.after, e.for_each) for e in entries]
    try:
        # parents among the file's jobs (one recorded earlier is checked at `run`)
        check_all(specs, lambda key: Known("?"))
    except InvalidParams as exc:
        raise ConfigError(f"{where} [[jobs]]: {exc}") from exc
    return tuple(entries)


_NOTIFY_KEYS = frozenset(
    {"name", "url", "command", "secret_env", "events", "kinds", "retry_schedule_s"}
)


def _parse_notify(raw: Any, where: str) -> tuple[Target, ...]:
    """``[[notify]]``: each an HTTP target (``url``) or a local ``command``."""
    import re

    from orchestrator.kinds import KINDS
    from orchestrator.notifications import DEFAULT_EVENTS, DEFAULT_SCHEDULE, EVENT_TYPES

    if not isinstance(raw, list):
        raise ConfigError(f"{where}: notify must be an array of tables ([[notify]])")
    targets: list[Target] = []
    for index, item in enumerate(raw, start=1):
        label = f"{where} [[notify]] #{index}"
        if not isinstance(item, Mapping):
            raise ConfigError(f"{label}: must be a table")
        unknown = set(item) - _NOTIFY_KEYS
        if unknown:
            known = ", ".join(sorted(_NOTIFY_KEYS))
            raise ConfigError(
                f"{label}: unknown key(s) {', '.join(sorted(unknown))}; known: {known}"
            )
        name = item.get("name", f"notify{index}")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
            raise ConfigError(f"{label}: name must be 1-64 letters, digits, '.', '_', '-'")
        if any(t.name == name for t in targets):
            raise ConfigError(f"{label}: duplicate name {name!r}")
        url, command = item.get("url"), item.get("command")
        if (url is None) == (command is None):
            raise ConfigError(f"{label} ({name}): give url or command (one of them)")
        if url is not None and (
            not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https")
        ):
            raise ConfigError(f"{label} ({name}) url: must be an http(s) URL")
        if command is not None and (
            not isinstance(command, list)
            or not command
            or not all(isinstance(part, str) and part for part in command)
        ):
            raise ConfigError(f"{label} ({name}) command: must be a list of strings")
        secret_env = item.get("secret_env", "")
        if not isinstance(secret_env, str) or (url is not None and not secret_env):
            raise ConfigError(
                f"{label} ({name}) secret_env: name the environment variable holding the "
                "Standard Webhooks secret (whsec_...); the secret never goes in this file"
            )
        events = item.get("events", list(DEFAULT_EVENTS))
        if not isinstance(events, list) or not all(e in EVENT_TYPES for e in events) or not events:
            raise ConfigError(
                f"{label} ({name}) events: a list of {', '.join(sorted(EVENT_TYPES))}"
            )
        kinds = item.get("kinds", [])
        if not isinstance(kinds, list) or not all(k in KINDS for k in kinds):
            raise ConfigError(f"{label} ({name}) kinds: a list of {', '.join(sorted(KINDS))}")
        schedule = item.get("retry_schedule_s", list(DEFAULT_SCHEDULE))
        if (
            not isinstance(schedule, list)
            or not schedule
            or not all(
                isinstance(s, int | float) and not isinstance(s, bool) and 0 <= s < 1e7
                for s in schedule
            )
        ):
            raise ConfigError(
                f"{label} ({name}) retry_schedule_s: a non-empty list of seconds (>= 0)"
            )
        targets.append(
            Target(
                name=name,
                url=url,
                command=tuple(command or ()),
                secret_env=secret_env,
                events=tuple(events),
                kinds=tuple(kinds),
                schedule_s=tuple(float(s) for s in schedule),
            )
        )
    return tuple(targets)


def validate_job_key(key: str, where: str = "job key") -> None:
    """Keys name a folder under artifacts_dir: keep them to a safe alphabet."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", key):
        raise ConfigError(
            f"{where}: key {key!r} must be 1-128 characters of letters, digits, '.', '_', '-' "
            "and start with a letter or digit"
        )


def _validate(s: Settings, where: str) -> None:
    from orchestrator.downloads.addresses import AddressPolicy

    if urlsplit(s.provider.base_url).scheme not in ("http", "https"):
        raise ConfigError(f"{where} [provider] base_url: must be an http(s) URL")
    if urlsplit(s.callbacks.public_url).scheme not in ("http", "https"):
        raise ConfigError(f"{where} [callbacks] public_url: must be an http(s) URL")
    parse_listen(s.callbacks.listen, f"{where} [callbacks] listen")
    _validate_callback_auth(s.callbacks, where)
    if s.logging.level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"{where} [logging] level: must be debug, info, warning or error")
    for name, value in (
        ("[polling] interval_s", s.polling.interval_s),
        ("[polling] deadline_s", s.polling.deadline_s),
        ("[polling] tick_s", s.polling.tick_s),
        ("[daemon] lease_s", s.daemon.lease_s),
        ("[provider] timeout_s", s.provider.timeout_s),
        ("[provider] credit_check_s", s.provider.credit_check_s),
    ):
        if value <= 0:
            raise ConfigError(f"{where} {name}: must be greater than 0")
    for name, count in (
        ("[provider] min_credits", s.provider.min_credits),
        ("[provider] max_submits_per_day", s.provider.max_submits_per_day),
    ):
        if count < 0:
            raise ConfigError(f"{where} {name}: must be 0 or more")
    if not 0 <= s.polling.jitter < 1:
        raise ConfigError(f"{where} [polling] jitter: must be in [0, 1)")
    _validate_adaptive(s.polling, where)
    for name, count in (
        ("[polling] concurrency", s.polling.concurrency),
        ("[downloads] concurrency", s.downloads.concurrency),
        ("[callbacks] threads", s.callbacks.threads),
        ("[provider] submit_rate", s.provider.submit_rate),
    ):
        if count < 1:
            raise ConfigError(f"{where} {name}: must be at least 1")
    try:
        AddressPolicy(s.downloads.allowed_networks)
    except ValueError as exc:
        raise ConfigError(f"{where} [downloads] allowed_networks: {exc}") from exc
    if not s.storage.url.startswith(("sqlite:", "postgresql")):
        raise ConfigError(f"{where} [storage] url: must be a sqlite:/// or postgresql URL")


def _validate_adaptive(p: PollingSettings, where: str) -> None:
    for name, value in (
        ("min_gap_s", p.min_gap_s),
        ("confirm_delay_s", p.confirm_delay_s),
        ("confirm_max_gap_s", p.confirm_max_gap_s),
        ("half_life", p.half_life),
        ("callback_poll_factor", p.callback_poll_factor),
    ):
        if not value > 0:
            raise ConfigError(f"{where} [polling] {name}: must be greater than 0")
    for name, value in (
        ("safety_margin_s", p.safety_margin_s),
        ("confirm_window_s", p.confirm_window_s),
    ):
        if value < 0:
            raise ConfigError(f"{where} [polling] {name}: must be 0 or more")
    if not 0 < p.quantile <= 1:
        raise ConfigError(f"{where} [polling] quantile: must be in (0, 1]")
    if p.confirm_growth < 1:
        raise ConfigError(f"{where} [polling] confirm_growth: must be at least 1")
    if p.min_samples < 1:
        raise ConfigError(f"{where} [polling] min_samples: must be at least 1")
    if not 1 <= p.history <= KEPT_PER_GROUP:
        raise ConfigError(f"{where} [polling] history: must be between 1 and {KEPT_PER_GROUP}")


def _validate_callback_auth(c: CallbackSettings, where: str) -> None:

    if c.max_body_bytes < 1:
        raise ConfigError(f"{where} [callbacks] max_body_bytes: must be at least 1")
    if not c.hmac_tolerance_s > 0:
        raise ConfigError(f"{where} [callbacks] hmac_tolerance_s: must be greater than 0")
    for name, values in (
        ("allowed_sources", c.allowed_sources),
        ("trusted_proxies", c.trusted_proxies),
    ):
        try:
            parse_networks(values, name)
        except ValueError as exc:
            raise ConfigError(f"{where} [callbacks] {exc}") from None


def parse_listen(value: str, where: str = "listen") -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    # isascii: str.isdigit() also accepts "²" and non-ASCII digits, which int() refuses or
    # misreads
    valid = port.isascii() and port.isdigit()
    if not sep or not host or not valid or not 0 <= int(port) < 65536:
        raise ConfigError(f"{where}: must be HOST:PORT, got {value!r}")
    return host, int(port)

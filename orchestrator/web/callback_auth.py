"""Who may call back: kie.ai's HMAC signature and a source-address allowlist.

Modelled on svix's ``webhooks.py``: one verification error (:class:`CallbackUnauthorized`),
checks in a fixed order, the signature compared in constant time, a timestamp tolerance.

kie.ai signs ``task_id + "." + timestamp`` only (not the body):
``X-Webhook-Signature = base64(HMAC-SHA256(key, task_id + "." + X-Webhook-Timestamp))``.
A valid signature therefore proves "the upstream sent *a* callback for this task recently",
never what the body says; that is why verify mode (only record-info changes a job's outcome)
stays the security boundary even with signing on.

Replays: what is remembered is the signature together with the SHA-256 of the body, so two
different callbacks of one task signed in the same second (the same signature) are both
accepted, while the same request sent again is refused. A request is remembered only once its
callback has committed (:meth:`ReplayTicket.commit`): the upstream's retry after our 503 is
not a replay. Entries expire in timestamp order in O(1) per entry (buckets of one second).
With ``store`` given (the daemon does) it is shared by every daemon on the database
(:class:`SharedReplay`).

Source addresses: ``allowed_sources`` (CIDRs; empty = anyone) is checked against the peer
address, or, only when the peer is one of ``trusted_proxies``, against the right-most
``X-Forwarded-For`` entry that is not itself a trusted proxy.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from orchestrator.exceptions import CallbackUnauthorized, ConfigError
from orchestrator.logs import register_secret
from orchestrator.networks import Address, Network, parse_address, parse_networks

if TYPE_CHECKING:
    from orchestrator.config import CallbackSettings

TIMESTAMP_HEADER = "X-Webhook-Timestamp"
SIGNATURE_HEADER = "X-Webhook-Signature"
#: more remembered signatures than this: the oldest are forgotten first (memory bound)
MAX_REMEMBERED = 100_000


class _Headers(Protocol):
    def get(self, key: str) -> str | None: ...


def sign(key: str, task_id: str, timestamp: str) -> str:
    """kie.ai's signature of one callback (what the upstream sends)."""
    digest = hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class ReplayCache:
    """Requests already accepted, each remembered until its timestamp leaves the window.

    Keys are added in :meth:`reserve` (refused if present or reserved) and made permanent by
    :meth:`commit` or dropped by :meth:`release`. Expiry times are bucketed by whole second,
    so forgetting expired keys costs O(1) per key however they arrived; a full memory forgets
    the earliest-expiring keys first.
    """

    def __init__(self, max_items: int = MAX_REMEMBERED) -> None:
        self._seen: dict[str, float] = {}
        self._pending: set[str] = set()
        self._buckets: dict[int, list[str]] = {}
        #: every bucket below this second has been emptied
        self._floor: int | None = None
        self._lock = threading.Lock()
        self._max = max_items

    def reserve(self, key: str, now: float) -> bool:
        """Claim ``key`` for a request in progress; False if it was seen or is in progress."""
        with self._lock:
            self._expire(now)
            if key in self._seen or key in self._pending:
                return False
            self._pending.add(key)
            return True

    def commit(self, key: str, expires_at: float) -> None:
        """The request's callback committed: remember ``key`` until ``expires_at``."""
        with self._lock:
            self._pending.discard(key)
            if key in self._seen:
                return
            self._seen[key] = expires_at
            second = int(expires_at)
            self._buckets.setdefault(second, []).append(key)
            if self._floor is None or second < self._floor:
                self._floor = second
            while len(self._seen) > self._max:
                self._drop_earliest()

    def release(self, key: str) -> None:
        """The request failed before its commit: forget the reservation."""
        with self._lock:
            self._pending.discard(key)

    def add(self, key: str, expires_at: float, now: float) -> bool:
        """Reserve and commit at once; False if ``key`` was already there (a replay)."""
        if not self.reserve(key, now):
            return False
        self.commit(key, expires_at)
        return True

    def _expire(self, now: float) -> None:
        if self._floor is None:
            return
        limit = int(now)  # buckets below this second hold only expired keys
        if limit - self._floor > len(self._buckets):
            seconds = sorted(s for s in self._buckets if s < limit)  # a long idle gap
        else:
            seconds = [s for s in range(self._floor, limit) if s in self._buckets]
        for second in seconds:
            for key in self._buckets.pop(second):
                if self._seen.get(key, now) < now:
                    del self._seen[key]
        self._floor = max(self._floor, limit)

    def _drop_earliest(self) -> None:
        second = min(self._buckets)  # at most (2 * tolerance + 1) buckets exist
        keys = self._buckets[second]
        self._seen.pop(keys.pop(0), None)
        if not keys:
            del self._buckets[second]

    def __len__(self) -> int:
        return len(self._seen)


@dataclass
class ReplayTicket:
    """A verified request's place in the replay memory: commit it after the callback commits,
    release it if the callback could not be committed."""

    cache: ReplayCache
    key: str
    expires_at: float

    def commit(self) -> None:
        self.cache.commit(self.key, self.expires_at)

    def release(self) -> None:
        self.cache.release(self.key)


class _ReplayStore(Protocol):
    def replay_known(self, key: str, now: datetime) -> bool: ...

    def remember_replay(self, key: str, expires_at: datetime, now: datetime) -> None: ...


class SharedReplay(ReplayCache):
    """The replay memory of every daemon on one database: this process's memory (and its
    requests in progress) in front, the store's ``replay_memory`` table behind, so a request
    replayed to another node is refused too. Two nodes handed the same request within the
    same few milliseconds may both accept it (each checks before either has committed): in
    verify mode that costs one extra poll."""

    def __init__(self, store: _ReplayStore, max_items: int = MAX_REMEMBERED) -> None:
        super().__init__(max_items)
        self._store = store

    def reserve(self, key: str, now: float) -> bool:
        if not super().reserve(key, now):
            return False
        if self._store.replay_known(key, datetime.fromtimestamp(now, UTC)):
            super().release(key)
            return False
        return True

    def commit(self, key: str, expires_at: float) -> None:
        super().commit(key, expires_at)
        until = datetime.fromtimestamp(expires_at, UTC)
        self._store.remember_replay(key, until, datetime.now(UTC))


def replay_key(signature: bytes, body: bytes) -> str:
    """What identifies one signed request: its signature and its body."""
    return base64.b64encode(signature).decode() + ":" + hashlib.sha256(body).hexdigest()


class KieSignature:
    """Verify ``X-Webhook-Timestamp`` / ``X-Webhook-Signature`` for one task id."""

    def __init__(
        self, key: str, tolerance_s: float = 300.0, replay: ReplayCache | None = None
    ) -> None:
        if not key:
            raise ValueError("the HMAC key must not be empty")
        self._key = key.encode()
        self.tolerance_s = tolerance_s
        self.replay = replay if replay is not None else ReplayCache()

    def __repr__(self) -> str:  # never the key
        return f"KieSignature(tolerance_s={self.tolerance_s})"

    def verify_headers(
        self, task_id: str, headers: _Headers, now: float, body: bytes = b""
    ) -> ReplayTicket:
        """:meth:`verify` with the two headers read from a request's headers."""
        return self.verify(
            task_id, headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_HEADER), now, body
        )

    def verify(
        self,
        task_id: str,
        timestamp: str | None,
        signature: str | None,
        now: float,
        body: bytes = b"",
    ) -> ReplayTicket:
        """Raise :class:`CallbackUnauthorized` unless the headers sign ``task_id`` freshly and
        this request (signature + body) is not a replay; the ticket to commit or release."""
        if not timestamp or not signature:
            raise CallbackUnauthorized(f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")
        timestamp = timestamp.strip()
        if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
            raise CallbackUnauthorized(f"{TIMESTAMP_HEADER} is not a unix time in seconds")
        sent = int(timestamp)
        if sent < now - self.tolerance_s:
            raise CallbackUnauthorized("signature timestamp too old")
        if sent > now + self.tolerance_s:
            raise CallbackUnauthorized("signature timestamp too new")
        try:
            given = base64.b64decode(signature.strip().encode("ascii"), validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise CallbackUnauthorized(f"{SIGNATURE_HEADER} is not base64") from None
        expected = hmac.new(self._key, f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, given):
            raise CallbackUnauthorized("signature does not match")
        key = replay_key(given, body)
        if not self.replay.reserve(key, now):
            raise CallbackUnauthorized("signature already used (replay)")
        return ReplayTicket(self.replay, key, sent + self.tolerance_s)


@dataclass(frozen=True)
class SourcePolicy:
    allowed: tuple[Network, ...] = ()
    trusted_proxies: tuple[Network, ...] = ()

    @classmethod
    def from_strings(
        cls, allowed: Sequence[str] = (), trusted_proxies: Sequence[str] = ()
    ) -> SourcePolicy:
        return cls(
            parse_networks(allowed, "allowed_sources"),
            parse_networks(trusted_proxies, "trusted_proxies"),
        )

    def _trusted(self, ip: Address) -> bool:
        return any(ip in net for net in self.trusted_proxies)

    def client(self, remote_addr: str | None, forwarded_for: str | None) -> Address | None:
        """The caller's address: the peer, or what trusted proxies say the peer was."""
        peer = parse_address(remote_addr)
        if peer is None or not forwarded_for or not self._trusted(peer):
            return peer
        for hop in reversed(forwarded_for.split(",")):
            ip = parse_address(hop)
            if ip is None:
                return None  # a garbled chain proves nothing
            if not self._trusted(ip):
                return ip
        return peer  # every hop is a trusted proxy: the last one is as close as we get

    def check(self, remote_addr: str | None, forwarded_for: str | None) -> None:
        if not self.allowed:
            return
        ip = self.client(remote_addr, forwarded_for)
        if ip is None or not any(ip in net for net in self.allowed):
            raise CallbackUnauthorized("source address not allowed", status_code=403)


@dataclass(frozen=True)
class CallbackAuth:
    """Everything the endpoint checks beyond the per-job token."""

    signature: KieSignature | None = None
    sources: SourcePolicy = field(default_factory=SourcePolicy)

    @classmethod
    def from_settings(
        cls,
        settings: CallbackSettings,
        environ: Mapping[str, str] | None = None,
        store: _ReplayStore | None = None,
    ) -> CallbackAuth:
        """Build from ``[callbacks]``; the HMAC key is read from the named variable only."""
        env = os.environ if environ is None else environ
        signature = None
        if settings.hmac_key_env:
            key = env.get(settings.hmac_key_env, "")
            if not key:
                raise ConfigError(
                    f"[callbacks] hmac_key_env: environment variable {settings.hmac_key_env} "
                    "is not set (or empty)"
                )
            register_secret(key)
            replay = SharedReplay(store) if store is not None else ReplayCache()
            signature = KieSignature(key, settings.hmac_tolerance_s, replay)
        try:
            sources = SourcePolicy.from_strings(settings.allowed_sources, settings.trusted_proxies)
        except ValueError as exc:
            raise ConfigError(f"[callbacks] {exc}") from None
        return cls(signature=signature, sources=sources)

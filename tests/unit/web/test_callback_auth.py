"""kie.ai signature verification and the source allowlist: one test per failure case."""

from __future__ import annotations

import pytest

from orchestrator.config import CallbackSettings
from orchestrator.exceptions import CallbackUnauthorized, ConfigError
from orchestrator.logs import redact_text
from orchestrator.web.callback_auth import (
    CallbackAuth,
    KieSignature,
    ReplayCache,
    SourcePolicy,
    sign,
)

KEY = "unit-test-hmac-key"
NOW = 1_735_732_800.0
TS = str(int(NOW))


def _verify(
    timestamp: str | None, signature: str | None, *, key: str = KEY, task: str = "t1"
) -> None:
    KieSignature(key, 300).verify(task, timestamp, signature, NOW)


def test_a_fresh_signature_verifies() -> None:
    _verify(TS, sign(KEY, "t1", TS))


@pytest.mark.parametrize(
    ("timestamp", "signature", "message"),
    [
        (None, "AAAA", "missing"),
        (TS, None, "missing"),
        ("", "", "missing"),
        ("12.5", "AAAA", "unix time"),
        ("-5", "AAAA", "unix time"),
        ("9" * 40, "AAAA", "unix time"),
        (TS, "not base64!", "base64"),
        (TS, "ÿÿ", "base64"),
        (TS, sign("another-key", "t1", TS), "does not match"),
        (TS, sign(KEY, "t2", TS), "does not match"),
        (str(int(NOW) - 301), sign(KEY, "t1", str(int(NOW) - 301)), "too old"),
        (str(int(NOW) + 301), sign(KEY, "t1", str(int(NOW) + 301)), "too new"),
    ],
)
def test_each_failure_is_one_error_with_a_reason(
    timestamp: str | None, signature: str | None, message: str
) -> None:
    with pytest.raises(CallbackUnauthorized, match=message) as info:
        _verify(timestamp, signature)
    assert info.value.status_code == 401


def test_a_replayed_signature_is_refused_within_the_window() -> None:
    verifier = KieSignature(KEY, 300)
    signature = sign(KEY, "t1", TS)
    verifier.verify("t1", TS, signature, NOW)
    with pytest.raises(CallbackUnauthorized, match="replay"):
        verifier.verify("t1", TS, signature, NOW + 10)


def test_a_refused_signature_is_not_remembered() -> None:
    verifier = KieSignature(KEY, 300)
    with pytest.raises(CallbackUnauthorized):
        verifier.verify("t1", TS, sign("wrong", "t1", TS), NOW)
    assert len(verifier.replay) == 0


def test_the_replay_cache_forgets_after_the_window_and_is_bounded() -> None:
    cache = ReplayCache(max_items=2)
    assert cache.add("a", expires_at=10, now=0)
    assert not cache.add("a", expires_at=10, now=5)
    assert cache.add("a", expires_at=30, now=11)  # expired: forgotten
    cache.add("b", 100, 11)
    cache.add("c", 100, 11)
    assert len(cache) == 2


def test_the_key_never_shows_in_repr() -> None:
    assert KEY not in repr(KieSignature(KEY))


def test_source_policy_empty_allows_anyone() -> None:
    SourcePolicy().check("198.51.100.1", None)
    SourcePolicy().check(None, None)


@pytest.mark.parametrize(
    ("remote", "xff", "allowed"),
    [
        ("203.0.113.5", None, True),
        ("198.51.100.5", None, False),
        ("::ffff:203.0.113.5", None, True),  # IPv4-mapped
        (None, None, False),
        ("not-an-ip", None, False),
        ("198.51.100.5", "203.0.113.5", False),  # the peer is no trusted proxy
        ("10.0.0.2", "203.0.113.5", True),
        ("10.0.0.2", "203.0.113.5, 10.0.0.9", True),  # chained trusted proxies
        ("10.0.0.2", "203.0.113.5, 198.51.100.5", False),  # spoofed left part ignored
        ("10.0.0.2", "garbage, 203.0.113.5", True),
        ("10.0.0.2", "203.0.113.5, garbage", False),
    ],
)
def test_source_policy(remote: str | None, xff: str | None, allowed: bool) -> None:
    policy = SourcePolicy.from_strings(["203.0.113.0/24"], ["10.0.0.0/8"])
    if allowed:
        policy.check(remote, xff)
    else:
        with pytest.raises(CallbackUnauthorized) as info:
            policy.check(remote, xff)
        assert info.value.status_code == 403


def test_from_settings_reads_the_key_from_the_environment_and_redacts_it() -> None:
    settings = CallbackSettings(hmac_key_env="MY_HMAC", allowed_sources=("203.0.113.0/24",))
    auth = CallbackAuth.from_settings(settings, {"MY_HMAC": "from-env-hmac-key"})
    assert auth.signature is not None and auth.sources.allowed
    assert "from-env-hmac-key" not in redact_text("key=from-env-hmac-key")
    with pytest.raises(ConfigError, match="MY_HMAC"):
        CallbackAuth.from_settings(settings, {})
    assert CallbackAuth.from_settings(CallbackSettings(), {}).signature is None


def test_bad_networks_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="allowed_sources"):
        CallbackAuth.from_settings(CallbackSettings(allowed_sources=("nope",)), {})

"""Config validation, profiles, timestamps, the kie signature, and the CLI's flag errors."""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest

from orchestrator.sandbox import SandboxConfig
from orchestrator.sandbox.cli import add_arguments, build_config, run
from orchestrator.sandbox.delivery import backoff_s, sign
from orchestrator.sandbox.payloads import format_time
from orchestrator.sandbox.profiles import KIE, SUNOAPI, get_profile


def test_defaults() -> None:
    config = SandboxConfig()
    assert (config.host, config.port, config.api_key, config.profile) == (
        "127.0.0.1",
        8900,
        "sandbox-key",
        "sunoapi",
    )
    assert config.effective_url_ttl_s == 14 * 86400
    assert SandboxConfig(profile="kie").effective_url_ttl_s == 1200
    assert SandboxConfig(url_ttl_s=5).effective_url_ttl_s == 5


@pytest.mark.parametrize(
    "kwargs",
    [
        {"profile": "suno"},
        {"time_scale": 0},
        {"port": 70000},
        {"api_key": ""},
        {"hmac_key": "k"},
        {"url_ttl_s": 0},
        {"credits": -1},
        {"callback_timeout_s": 0},
    ],
)
def test_bad_configs(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SandboxConfig(**kwargs)  # type: ignore[arg-type]


def test_profiles_disagree_where_the_providers_do() -> None:
    assert SUNOAPI.code_for("insufficient_credits") == 429 == KIE.code_for("rate_limited")
    assert SUNOAPI.code_for("rate_limited") == 430 and KIE.code_for("insufficient_credits") == 402
    assert KIE.code_for("missing_field") == 422 and SUNOAPI.code_for("missing_field") == 400
    assert SUNOAPI.code_for("too_long") == 413
    assert KIE.message_for("missing_field", "callBackUrl") == "Please enter callBackUrl"
    with pytest.raises(ValueError, match="unknown profile"):
        get_profile("other")


def test_timestamps_in_three_formats() -> None:
    epoch = datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC).timestamp()
    assert format_time(epoch, 0) == "2025-01-02 03:04:05"
    assert format_time(epoch, 1) == int(epoch * 1000)
    assert format_time(epoch, 2) == "2025-01-02T03:04:05.678Z"


def test_kie_signature_formula() -> None:
    expected = base64.b64encode(
        hmac.new(b"key", b"abc.1700000000", hashlib.sha256).digest()
    ).decode()
    assert sign("key", "abc", "1700000000") == expected


def test_backoff_is_exponential_and_scaled() -> None:
    assert [backoff_s(n, 1.0) for n in (1, 2)] == [5.0, 10.0]
    assert backoff_s(2, 0.01) == pytest.approx(0.1)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_flags_build_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUNO_API_KEY", "env-key")
    config = build_config(
        parse(
            "--port",
            "0",
            "--profile",
            "kie",
            "--faults",
            "drop=0.5",
            "--hmac-key",
            "h",
            "--url-ttl",
            "60",
            "--credits",
            "7",
            "--seed",
            "3",
            "--time-scale",
            "0.1",
        )
    )
    assert config.api_key == "env-key" and config.profile == "kie" and config.faults.drop == 0.5
    assert (config.hmac_key, config.url_ttl_s, config.credits, config.seed) == ("h", 60, 7, 3)
    assert config.time_scale == 0.1
    monkeypatch.delenv("SUNO_API_KEY")
    assert build_config(parse()).api_key == "sandbox-key"


def test_run_refuses_bad_faults_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(parse("--faults", "drop=7")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "drop=7" in err and "Traceback" not in err

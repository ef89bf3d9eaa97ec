from __future__ import annotations

import pytest

from orchestrator.daemon.runner import api_token
from orchestrator.exceptions import ConfigError
from orchestrator.logs import redact_text


def test_no_variable_means_loopback_only() -> None:
    assert api_token("") is None


def test_the_token_comes_from_the_environment_and_is_redacted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORCH_API_TOKEN", "s3cret-token-0123456789")
    assert api_token("ORCH_API_TOKEN") == "s3cret-token-0123456789"
    assert "s3cret" not in redact_text("got s3cret-token-0123456789 from a client")


@pytest.mark.parametrize("value", [None, "", "short"])
def test_a_missing_or_weak_token_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("ORCH_API_TOKEN", raising=False)
    else:
        monkeypatch.setenv("ORCH_API_TOKEN", value)
    with pytest.raises(ConfigError, match="ORCH_API_TOKEN"):
        api_token("ORCH_API_TOKEN")

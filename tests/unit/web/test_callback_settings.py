"""The [callbacks] security options: defaults and validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.config import CallbackSettings, parse_settings
from orchestrator.exceptions import ConfigError


def test_defaults_sign_nothing_and_allow_anyone() -> None:
    c = CallbackSettings()
    assert (c.hmac_key_env, c.hmac_tolerance_s, c.allowed_sources, c.trusted_proxies) == (
        "",
        300.0,
        (),
        (),
    )
    assert c.max_body_bytes == 1024 * 1024


def test_the_options_parse() -> None:
    raw = {
        "callbacks": {
            "hmac_key_env": "KIE_HMAC",
            "hmac_tolerance_s": 60,
            "allowed_sources": ["203.0.113.0/24", "2001:db8::/32"],
            "trusted_proxies": ["10.0.0.1"],
        }
    }
    c = parse_settings(raw, base_dir=Path.cwd()).callbacks
    assert c.hmac_key_env == "KIE_HMAC" and c.hmac_tolerance_s == 60.0
    assert c.allowed_sources == ("203.0.113.0/24", "2001:db8::/32")


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"hmac_tolerance_s": 0}, "hmac_tolerance_s: must be greater than 0"),
        ({"allowed_sources": ["10.0.0.0/33"]}, "allowed_sources"),
        ({"allowed_sources": "10.0.0.0/8"}, "must be a list of strings"),
        ({"trusted_proxies": ["proxy.local"]}, "trusted_proxies"),
        ({"max_body_bytes": 0}, "max_body_bytes: must be at least 1"),
        ({"hmac_key": "inline"}, "unknown key"),
    ],
)
def test_bad_values_are_refused(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_settings({"callbacks": section}, base_dir=Path.cwd())

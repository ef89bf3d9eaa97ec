"""Shared fixtures."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The PostgreSQL URL for integration tests; skips the test when it is not configured."""
    url = os.environ.get("ORCHESTRATOR_TEST_PG_URL")
    if not url:
        pytest.skip("ORCHESTRATOR_TEST_PG_URL is not set: PostgreSQL contract tests skipped")
    return url

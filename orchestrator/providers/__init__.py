"""Providers: adapters to an upstream API family, behind :class:`Provider`."""

from __future__ import annotations

from orchestrator.providers.base import Provider

__all__ = ["Provider"]

"""Fetching generated artifacts: SSRF-safe HTTP downloads into caller-chosen files.

* :mod:`.addresses` — which IP addresses may be contacted (:class:`AddressPolicy`);
* :mod:`.resolver` — host name resolution behind a Protocol (:class:`SystemResolver`);
* :mod:`.fetcher` — the download itself, pinned, capped, atomic (:class:`Fetcher`);
* file names from upstream identifiers live in :mod:`orchestrator.names` (:func:`safe_name`).
"""

from __future__ import annotations

from orchestrator.downloads.addresses import AddressPolicy
from orchestrator.downloads.fetcher import Fetcher, FetchResult
from orchestrator.downloads.resolver import Resolver, SystemResolver
from orchestrator.names import ALLOWED_EXTENSIONS, safe_name

__all__ = [
    "ALLOWED_EXTENSIONS",
    "AddressPolicy",
    "FetchResult",
    "Fetcher",
    "Resolver",
    "SystemResolver",
    "safe_name",
]

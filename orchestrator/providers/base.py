"""The provider interface: what the daemon needs from an upstream.

A provider owns its endpoints, its table of remote statuses and error codes to internal
outcomes, and its callback parser. The ``httpx.Client`` is injected (one pooled client per
daemon); tests inject ``httpx.MockTransport`` or point it at the sandbox.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from orchestrator.observations import UpstreamReport


class Provider(Protocol):
    #: the profile name ("sunoapi" | "kie"), shown in job JSON as ``provider``
    profile: str

    def submit(self, kind: str, params: Mapping[str, Any], callback_url: str) -> str:
        """Send one submit; return the upstream taskId.

        Raises :class:`UpstreamTransient` when it is safe to retry (the upstream answered an
        error that created nothing, or the connection never reached it),
        :class:`UpstreamRateLimited` with ``retry_after`` when asked to slow down,
        :class:`UpstreamRejected` when retrying cannot help, and :class:`UpstreamAmbiguous`
        when the request may have landed but no answer came back.
        """
        ...

    def fetch(self, kind: str, task_id: str) -> UpstreamReport:
        """Poll the kind's detail endpoint once; the normalised report.

        Raises :class:`UpstreamTransient` (incl. garbage answers, unknown task) or
        :class:`UpstreamRejected` (auth).
        """
        ...

    def credits(self) -> int:
        """The account's credit balance (``GET /api/v1/generate/credit``).

        Raises :class:`UpstreamTransient` (down, garbage) or :class:`UpstreamRejected` (auth).
        """
        ...

    def parse_callback(self, kind: str, body: Mapping[str, Any]) -> UpstreamReport:
        """Validate and normalise a callback body; :class:`CallbackRejected` if malformed."""
        ...

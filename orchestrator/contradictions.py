"""Mark callbacks that the authoritative poll contradicts.

Verify mode already guarantees a callback never changes a job's outcome or result URLs; this
module makes forgeries *visible*. When a poll reports a final outcome (SUCCESS or FAILED), the
job's ``callback_received`` events not yet checked are compared with it:

* a callback that claimed the other final outcome (failure vs success);
* a callback that claimed success with URLs that record-info does not give (compared by
  scheme, host and path: the query string carries only expiry and signature, and the
  upstream hands out freshly signed URLs with every answer);
* a callback that claimed success with a task id or track ids the poll does not know.

Each contradicted callback gets one ``callback_contradicted`` event (listing the callback
event ids it covers, so a later poll never reports it twice) naming what differed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from orchestrator.domain import Event, Job
from orchestrator.logs import get_logger
from orchestrator.observations import UpstreamReport, UpstreamStatus
from orchestrator.reconciler import Reconciler

log = get_logger("orchestrator.contradictions")

EVENT = "callback_contradicted"
_FINAL = {UpstreamStatus.SUCCESS.value, UpstreamStatus.FAILED.value}
_URL_FIELDS = ("audio_url", "stream_url", "image_url")


def url_identity(url: str) -> str:
    """What two URLs must share to name the same file: scheme, host (and port), path."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return url
    return f"{parts.scheme.lower()}://{host}{port}{parts.path}"


def _urls(tracks: Iterable[Any], video_url: Any, files: Any = None) -> dict[str, set[str]]:
    """Track id (or "video", or a media file's label) -> the identities of its URLs."""
    found: dict[str, set[str]] = {}
    for track in tracks:
        if not isinstance(track, dict):
            continue
        ident = str(track.get("id"))
        for name in _URL_FIELDS:
            value = track.get(name)
            if isinstance(value, str) and value:
                found.setdefault(ident, set()).add(url_identity(value))
    if isinstance(video_url, str) and video_url:
        found["video"] = {url_identity(video_url)}
    for label, url in (files or {}).items() if isinstance(files, dict) else ():
        if isinstance(url, str) and url:
            found.setdefault(f"file:{label}", set()).add(url_identity(url))
    return found


def differences(claim: dict[str, Any], truth: UpstreamReport) -> list[str]:
    """What a callback's normalised report (``claim``) says that ``truth`` contradicts."""
    status = claim.get("status")
    if status not in _FINAL or truth.status.value not in _FINAL:
        return []
    found: list[str] = []
    if status != truth.status.value:
        found.append(f"callback claimed {status}, record-info says {truth.status.value}")
        return found
    if truth.status is not UpstreamStatus.SUCCESS:
        return found
    if claim.get("task_id") and truth.task_id and claim["task_id"] != truth.task_id:
        found.append("callback claimed another task_id")
    real = _urls(
        [
            {
                "id": t.id,
                "audio_url": t.audio_url,
                "stream_url": t.stream_url,
                "image_url": t.image_url,
            }
            for t in truth.tracks
        ],
        truth.video_url,
        dict(truth.files),
    )
    known = set().union(*real.values()) if real else set()
    claimed = _urls(claim.get("tracks") or [], claim.get("video_url"), claim.get("files"))
    for ident, urls in sorted(claimed.items()):
        if ident != "video" and not ident.startswith("file:") and ident not in real:
            found.append(f"callback named track {ident[:40]!r} that record-info does not list")
            continue
        unknown = urls - known
        if unknown:
            hosts = sorted({urlsplit(u).hostname or "?" for u in unknown})
            found.append(
                f"callback gave {len(unknown)} URL(s) for {ident[:40]!r} that record-info "
                f"does not (host {', '.join(h[:60] for h in hosts)})"
            )
    return found


def _checked_ids(events: Sequence[Event]) -> set[int]:
    ids: set[int] = set()
    for event in events:
        if event.type == EVENT:
            covered = event.payload.get("callback_events")
            if isinstance(covered, list):
                ids.update(i for i in covered if isinstance(i, int))
    return ids


def check(reconciler: Reconciler, job: Job, truth: UpstreamReport, now: datetime) -> list[str]:
    """Record a ``callback_contradicted`` event if earlier callbacks disagree with ``truth``."""
    if truth.status.value not in _FINAL:
        return []
    events = reconciler.store.events(job.id)
    checked = _checked_ids(events)
    covered: list[int] = []
    found: list[str] = []
    for event in events:
        if event.type != "callback_received" or event.id in checked:
            continue
        claim = event.payload.get("report")
        if not isinstance(claim, dict):
            continue
        diffs = differences(claim, truth)
        if diffs:
            covered.append(event.id)
            found.extend(d for d in diffs if d not in found)
    if not covered:
        return []
    current = reconciler.store.get_job(job.id)
    reconciler.record(
        current,
        source="poll",
        type=EVENT,
        payload={"callback_events": covered, "differences": found},
        note="; ".join(found)[:500],
        now=now,
    )
    log.warning(EVENT, key=job.key, callbacks=len(covered), differences=found)
    return found

"""File names for stored artifacts, built from upstream identifiers, never from URLs (pure)."""

from __future__ import annotations

import hashlib
import re

from orchestrator.exceptions import DownloadRefused

#: Extensions an artifact may be stored under.
ALLOWED_EXTENSIONS: frozenset[str] = frozenset(
    {"mp3", "jpeg", "jpg", "png", "mp4", "wav", "webp", "txt"}
)

#: Longest name returned, extension included.
MAX_NAME_LENGTH = 100

_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9._-]+")
_DIGEST_CHARS = 8


def safe_name(identifier: str, ext: str) -> str:
    """A file name for ``identifier`` with extension ``ext``, safe on any POSIX filesystem.

    Keeps ``[A-Za-z0-9._-]``, turns every run of other characters into one ``_``, strips
    leading dots, and caps the whole name at :data:`MAX_NAME_LENGTH`. The result is never
    empty, ``.`` or ``..``, and never contains a path separator.

    When the identifier had to be changed (characters replaced, dots stripped, truncated or
    empty), a short digest of the original is appended, so two different identifiers never
    share a name: ``safe_name("a/b", "mp3")`` is ``"a_b-<8 hex>.mp3"``, not ``"a_b.mp3"``.
    An identifier that is already safe is kept as is.

    ``ext`` (case-insensitive, leading dot optional) must be one of
    :data:`ALLOWED_EXTENSIONS`, else :class:`DownloadRefused`.
    """
    extension = ext.lower().removeprefix(".")
    if extension not in ALLOWED_EXTENSIONS:
        raise DownloadRefused(
            f"file extension {ext!r} not allowed (allowed: {', '.join(sorted(ALLOWED_EXTENSIONS))})"
        )
    limit = MAX_NAME_LENGTH - len(extension) - 1
    stem = _UNSAFE_RUN.sub("_", identifier).lstrip(".")
    if stem == identifier and 0 < len(stem) <= limit:
        return f"{stem}.{extension}"
    digest = hashlib.sha256(identifier.encode("utf-8", "surrogatepass")).hexdigest()
    suffix = f"-{digest[:_DIGEST_CHARS]}"
    stem = (stem or "file")[: limit - len(suffix)]
    return f"{stem}{suffix}.{extension}"

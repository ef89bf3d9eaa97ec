"""The files the sandbox hands out: deterministic bytes per name, signed expiring URLs.

Every artifact is a small *valid* media file built from a sample shipped in ``media/`` with
the artifact's name embedded, so two names never share bytes and one name always has the
same bytes:

- ``.mp3``: an ID3v2.3 tag (TIT2 = the name) before the sample MP3 frames;
- ``.jpeg``: a COM segment (the name) after the JFIF APP0 segment of the sample JPEG;
- ``.mp4``: the sample MP4 followed by a top-level ``free`` box holding the name;
- ``.wav``: 0.5 s of 8 kHz 8-bit mono PCM, a triangle wave whose pitch derives from the name.

URLs are ``{base}{prefix}/{name}?expires=<epoch ms>&sig=<hmac>``; the signature covers the
path and the expiry, so a client cannot extend a URL by editing it.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import struct
import wave
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from typing import Any, Literal

CONTENT_TYPES: dict[str, str] = {
    "mp3": "audio/mpeg",
    "jpeg": "image/jpeg",
    "mp4": "video/mp4",
    "wav": "audio/wav",
}

UrlCheck = Literal["ok", "expired", "bad_signature"]


class RangeNotSatisfiable(Exception):
    """The Range header asks for bytes beyond the end of the file."""


@cache
def sample(ext: str) -> bytes:
    """The shipped sample file for an extension (mp3, mp4, jpeg)."""
    return (resources.files("orchestrator.sandbox") / "media" / f"sample.{ext}").read_bytes()


def extension(name: str) -> str:
    return name.rsplit(".", 1)[-1] if "." in name else ""


def content_type(name: str) -> str:
    return CONTENT_TYPES.get(extension(name), "application/octet-stream")


def is_known_extension(name: str) -> bool:
    return extension(name) in CONTENT_TYPES


@lru_cache(maxsize=512)
def artifact_bytes(name: str) -> bytes:
    """The bytes of artifact ``name``: a valid file of its type, unique to the name."""
    ext = extension(name)
    label = name.encode("utf-8")
    if ext == "mp3":
        return _id3_tag(label) + sample("mp3")
    if ext == "jpeg":
        return _jpeg_with_comment(sample("jpeg"), b"sandbox:" + label)
    if ext == "mp4":
        payload = b"sandbox:" + label
        return sample("mp4") + struct.pack(">I", 8 + len(payload)) + b"free" + payload
    if ext == "wav":
        return _triangle_wav(label)
    raise ValueError(f"no artifact type for {name!r}")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _id3_tag(title: bytes) -> bytes:
    body = b"\x00" + title  # text encoding ISO-8859-1, then the text
    frame = b"TIT2" + struct.pack(">I", len(body)) + b"\x00\x00" + body
    size = len(frame)
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    return b"ID3\x03\x00\x00" + syncsafe + frame


def _jpeg_with_comment(jpeg: bytes, comment: bytes) -> bytes:
    assert jpeg[:2] == b"\xff\xd8", "sample.jpeg is not a JPEG"
    at = 2
    if jpeg[2:4] == b"\xff\xe0":  # keep JFIF APP0 right after SOI, as the spec wants
        at = 4 + struct.unpack(">H", jpeg[4:6])[0]
    segment = b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment
    return jpeg[:at] + segment + jpeg[at:]


def _triangle_wav(label: bytes) -> bytes:
    digest = hashlib.sha256(label).digest()
    period = 8 + digest[0] % 56  # 8000 / period: 125..1000 Hz, integer maths only
    half = period // 2 or 1
    frames = bytearray()
    for i in range(4000):
        phase = i % period
        level = phase if phase < half else period - phase
        frames.append(64 + (level * 128) // period)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(1)
        out.setframerate(8000)
        out.writeframes(bytes(frames))
    return buffer.getvalue()


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte range a ``Range`` header asks for, or None to send everything.

    One ``bytes=`` range is honoured (``a-b``, ``a-``, ``-n``); a malformed header or a
    multi-range request is ignored (the whole file is sent with 200, as RFC 9110 allows).
    Raises :class:`RangeNotSatisfiable` when the range starts beyond the end.
    """
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    first, last = first.strip(), last.strip()
    try:
        if not first:  # suffix range: the last n bytes
            count = int(last)
            if count <= 0:
                raise RangeNotSatisfiable(header)
            return max(0, size - count), size - 1
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size:
        raise RangeNotSatisfiable(header)
    if start < 0 or end < start:
        return None
    return start, min(end, size - 1)


class UrlSigner:
    """Signs and checks artifact URLs."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def signature(self, path: str, expires_ms: int) -> str:
        message = f"{path}\n{expires_ms}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]

    def query(self, path: str, expires_ms: int) -> str:
        return f"expires={expires_ms}&sig={self.signature(path, expires_ms)}"

    def check(self, path: str, expires: str | None, sig: str | None, now: float) -> UrlCheck:
        if not expires or not sig:
            return "bad_signature"
        try:
            expires_ms = int(expires)
        except ValueError:
            return "bad_signature"
        if not hmac.compare_digest(self.signature(path, expires_ms), sig):
            return "bad_signature"
        if now * 1000 >= expires_ms:
            return "expired"
        return "ok"


@dataclass(frozen=True)
class ArtifactResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def serve(name: str, range_header: str | None) -> ArtifactResponse:
    """The answer to a GET of a known artifact: its bytes, whole or the asked range."""
    data = artifact_bytes(name)
    headers = {
        "Content-Type": content_type(name),
        "Accept-Ranges": "bytes",
        "ETag": f'"{sha256_hex(data)[:32]}"',
        "Cache-Control": "private, max-age=0",
    }
    try:
        wanted = parse_range(range_header, len(data))
    except RangeNotSatisfiable:
        headers = {"Content-Range": f"bytes */{len(data)}", "Content-Type": "text/plain"}
        return ArtifactResponse(416, headers, b"")
    if wanted is None:
        headers["Content-Length"] = str(len(data))
        return ArtifactResponse(200, headers, data)
    start, end = wanted
    headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
    headers["Content-Length"] = str(end - start + 1)
    return ArtifactResponse(206, headers, data[start : end + 1])


def xml_error(status: int, code: str, message: str) -> ArtifactResponse:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    ).encode()
    headers = {"Content-Type": "application/xml", "Content-Length": str(len(body))}
    return ArtifactResponse(status, headers, body)


def describe(name: str, task_id: str) -> dict[str, Any]:
    """What the ledger records of an artifact the first time it is handed out."""
    data = artifact_bytes(name)
    return {
        "bytes": len(data),
        "sha256": sha256_hex(data),
        "content_type": content_type(name),
        "taskId": task_id,
    }


def signed_url(
    signer: UrlSigner,
    base_url: str,
    route: str,
    name: str,
    now: float,
    ttl_s: float,
    *,
    expired: bool = False,
) -> str:
    """A signed URL for artifact ``name`` on ``route`` (files, cdn, stream), valid for
    ``ttl_s`` from ``now``, or already expired (the ``expire`` fault)."""
    ttl_ms = int(ttl_s * 1000)
    expires_ms = int(now * 1000) - 1000 if expired else int(now * 1000) + ttl_ms
    segment = name.rsplit(".", 1)[0] if route == "stream" else name
    path = f"/{route}/{segment}"
    return f"{base_url}{path}?{signer.query(path, expires_ms)}"

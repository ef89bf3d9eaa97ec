"""Artifact bytes, ranges and URL signatures, without a network."""

from __future__ import annotations

import io
import struct
import wave

import pytest

from orchestrator.sandbox.artifacts import (
    RangeNotSatisfiable,
    UrlSigner,
    artifact_bytes,
    content_type,
    parse_range,
)


def test_mp3_has_an_id3_tag_then_mpeg_frames() -> None:
    data = artifact_bytes("abc.mp3")
    assert data[:3] == b"ID3"
    size = data[6] << 21 | data[7] << 14 | data[8] << 7 | data[9]
    frames = data[10 + size :]
    assert frames[0] == 0xFF and frames[1] & 0xE0 == 0xE0  # MPEG frame sync
    assert b"abc.mp3" in data[: 10 + size]


def test_jpeg_keeps_jfif_first_and_carries_the_name() -> None:
    data = artifact_bytes("cover.jpeg")
    assert data[:4] == b"\xff\xd8\xff\xe0" and data[6:10] == b"JFIF"
    assert data.endswith(b"\xff\xd9") and b"sandbox:cover.jpeg" in data


def test_mp4_is_boxes_to_the_end() -> None:
    data = artifact_bytes("video.mp4")
    at, kinds = 0, []
    while at < len(data):
        size = struct.unpack(">I", data[at : at + 4])[0]
        kinds.append(data[at + 4 : at + 8])
        assert size >= 8
        at += size
    assert at == len(data)
    assert kinds[0] == b"ftyp" and b"moov" in kinds and b"mdat" in kinds and kinds[-1] == b"free"


def test_wav_parses() -> None:
    with wave.open(io.BytesIO(artifact_bytes("t.wav"))) as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getnframes()) == (1, 8000, 4000)


@pytest.mark.parametrize("ext", ["mp3", "jpeg", "mp4", "wav"])
def test_bytes_are_deterministic_and_unique(ext: str) -> None:
    artifact_bytes.cache_clear()
    first = artifact_bytes(f"one.{ext}")
    artifact_bytes.cache_clear()
    assert artifact_bytes(f"one.{ext}") == first
    assert artifact_bytes(f"two.{ext}") != first
    assert len(first) < 20_000


def test_content_types_and_unknown_extensions() -> None:
    assert content_type("a.mp3") == "audio/mpeg" and content_type("a.wav") == "audio/wav"
    assert content_type("a.jpeg") == "image/jpeg" and content_type("a.mp4") == "video/mp4"
    with pytest.raises(ValueError):
        artifact_bytes("a.exe")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-9", (0, 9)),
        ("bytes=5-", (5, 99)),
        ("bytes=-10", (90, 99)),
        ("bytes=-500", (0, 99)),
        ("bytes=90-200", (90, 99)),
        ("bytes=0-1,3-4", None),
        ("lines=0-1", None),
        ("bytes=x-1", None),
        ("bytes=9-3", None),
        ("bytes=7", None),
    ],
)
def test_parse_range(header: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=150-160", "bytes=-0"])
def test_unsatisfiable_ranges(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, 100)


def test_url_signatures_cover_path_and_expiry() -> None:
    signer = UrlSigner(b"secret")
    sig = signer.signature("/files/a.mp3", 2_000)
    assert signer.check("/files/a.mp3", "2000", sig, now=1.0) == "ok"
    assert signer.check("/files/a.mp3", "2000", sig, now=2.0) == "expired"
    assert signer.check("/files/b.mp3", "2000", sig, now=1.0) == "bad_signature"
    assert signer.check("/files/a.mp3", "3000", sig, now=1.0) == "bad_signature"
    assert signer.check("/files/a.mp3", None, sig, now=1.0) == "bad_signature"
    assert signer.check("/files/a.mp3", "x", sig, now=1.0) == "bad_signature"
    assert UrlSigner(b"other").signature("/files/a.mp3", 2_000) != sig
